//! `primer generate`: stream text from a GPT directory.

use anyhow::{Context, Result};
use primer::infer::beam::EarlyStopping;
use primer::infer::generate::{
    beam_search, check, generate, GenerationConfig, Sampling, SamplingFlags, GENERATION_CONFIG,
};
use primer::models::gpt::Gpt;
use primer::tokenize::TextTokenizer;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Directory with config.json, model.safetensors and tokenizer.json (or a GPT-2 vocab.json + merges.txt).
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value = "")]
    prompt: String,
    /// [default: the model's generation_config.json, else 200]
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// 0 = greedy [default: the model's generation_config.json, else 0.8]
    #[arg(long)]
    temperature: Option<f32>,
    /// 0 = off [default: the model's generation_config.json, else 0]
    #[arg(long)]
    top_k: Option<usize>,
    /// 1.0 = off [default: the model's generation_config.json, else 1.0]
    #[arg(long)]
    top_p: Option<f32>,
    /// Keep only tokens at least this fraction as probable as the likeliest; 0 = off [default: the model's
    /// generation_config.json, else 0]
    #[arg(long)]
    min_p: Option<f32>,
    /// 1.0 = off [default: the model's generation_config.json, else 1.0]
    #[arg(long)]
    repetition_penalty: Option<f32>,
    /// Never repeat an n-gram of this size (the prompt's included); 0 = off [default: the model's
    /// generation_config.json, else 0]
    #[arg(long)]
    no_repeat_ngram_size: Option<usize>,
    /// Do not end before this many new tokens [default: the model's generation_config.json, else 0]
    #[arg(long)]
    min_new_tokens: Option<usize>,
    /// Beam search with this many beams (1 = off); prints the likeliest text it finds once it is over. With
    /// --temperature above 0, --top-k, --top-p or --min-p (over the model's generation_config.json, even one that
    /// says do_sample: false) it is beam sampling: candidates drawn at random, not the best [default: the model's
    /// generation_config.json, else 1]
    #[arg(long)]
    num_beams: Option<usize>,
    /// Beam search scores a text by its log-probability over length^P: above 0 favours longer texts
    /// [default: the model's generation_config.json, else 1.0]
    #[arg(long, allow_negative_numbers = true)]
    length_penalty: Option<f64>,
    /// When beam search stops: true = once it has --num-beams texts; false = once no running beam, scored at
    /// its current length, can beat them; never = as false, but scored at the length limit when
    /// --length-penalty is above 0 [default: the model's generation_config.json, else false]
    #[arg(long)]
    early_stopping: Option<EarlyStopping>,
    /// Print this many texts, each after a `--- k/N ---` line: the best of the beams (with their scores), or
    /// samples drawn with seeds S, S+1, … [default: the model's generation_config.json, else 1]
    #[arg(long)]
    num_return_sequences: Option<usize>,
    /// Stop once the text holds TEXT (repeatable), which it then ends with; e.g. `--stop $'\n\n'` for a blank
    /// line [default: the model's generation_config.json (stop_strings), else none]
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// Never generate TEXT (repeatable): its tokens, on its own and after a space, as transformers'
    /// bad_words_ids bans them [default: the model's generation_config.json (bad_words_ids), else none]
    #[arg(long, value_name = "TEXT")]
    bad_words: Vec<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    let model = Gpt::load(&a.model)?;
    let tok = TextTokenizer::from_dir(&a.model)?;
    let settings = GenerationConfig::read(&a.model)?;
    let flags = SamplingFlags {
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repetition_penalty: a.repetition_penalty,
        no_repeat_ngram_size: a.no_repeat_ngram_size,
        min_new_tokens: a.min_new_tokens,
        num_beams: a.num_beams,
        length_penalty: a.length_penalty,
        early_stopping: a.early_stopping,
        num_return_sequences: a.num_return_sequences,
        stop_strings: (!a.stop.is_empty()).then_some(a.stop),
        bad_words: match a.bad_words.is_empty() {
            true => None,
            false => Some(bad_word_ids(&tok, &a.bad_words)?),
        },
    };
    // the flags are checked before the prompt is echoed, so that a bad setting or prompt prints nothing but the
    // error (the file's settings were checked as it was read)
    settings.sampling(&flags, 0, Vec::new(), a.seed)?;
    let ids = prompt_ids(&tok, &a.prompt)
        .with_context(|| format!("--prompt, for the model in {}", a.model.display()))?;
    let vocab = model.config.vocab_size;
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        anyhow::bail!(
            "the prompt encodes to token id {bad}, outside the vocabulary of the model in {} ({vocab} ids): \
             its tokenizer does not fit the model",
            a.model.display()
        );
    }
    let s = settings.sampling(&flags, ids.len(), settings.stop_ids(&model, &tok)?, a.seed)?;
    check(&model, &tok, &ids, &s)?;
    report_settings(&a.model, &settings, &flags);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let texts = s.num_return_sequences;
    if texts > 1 && s.beam.is_some() {
        // the best finished texts of one search
        let found = beam_search(&model, &tok, &ids, &s)?;
        for (k, text) in found.iter().take(texts).enumerate() {
            let continuation = tok.decode_text(text.text(&s.stop_tokens))?;
            writeln!(out, "--- {}/{} score {:.4} ---", k + 1, texts, text.score)?;
            writeln!(out, "{}{continuation}", a.prompt)?;
        }
        return Ok(());
    }
    for k in 0..texts {
        if texts > 1 {
            writeln!(out, "--- {}/{texts} ---", k + 1)?;
        }
        write!(out, "{}", a.prompt)?;
        out.flush()?;
        let sample = Sampling {
            seed: s.seed.wrapping_add(k as u64),
            ..s.clone()
        };
        complete(&model, &tok, ids.clone(), &sample, |piece| {
            write!(out, "{piece}")?;
            out.flush()?;
            Ok(())
        })?;
        writeln!(out)?;
    }
    Ok(())
}

/// The token sequences `--bad-words` bans: each text as the tokenizer encodes it on its own and, unless it
/// begins with whitespace, after a space, where a byte-level BPE spells a word with other tokens.
fn bad_word_ids(tok: &TextTokenizer, words: &[String]) -> Result<Vec<Vec<u32>>> {
    let mut out: Vec<Vec<u32>> = Vec::new();
    for w in words {
        let spaced = (!w.starts_with(char::is_whitespace)).then(|| format!(" {w}"));
        for spelling in std::iter::once(w.clone()).chain(spaced) {
            let ids = tok
                .encode(&spelling)
                .with_context(|| format!("--bad-words {w:?}"))?;
            anyhow::ensure!(!ids.is_empty(), "--bad-words {w:?} encodes to no tokens");
            if !out.contains(&ids) {
                out.push(ids);
            }
        }
    }
    Ok(out)
}

/// Says on stderr which settings of the model's generation_config.json are used, and which are not.
fn report_settings(dir: &Path, settings: &GenerationConfig, flags: &SamplingFlags) {
    let path = dir.join(GENERATION_CONFIG);
    let followed = settings.followed(flags);
    if !followed.is_empty() {
        eprintln!(
            "note: {}: {} (a flag overrides each)",
            path.display(),
            followed.join(", ")
        );
    }
    let ignored = settings.not_followed();
    if !ignored.is_empty() {
        eprintln!(
            "note: {} also sets {}, which primer's generate does not do",
            path.display(),
            ignored.join(", ")
        );
    }
}

/// The token ids generation starts from: the prompt's (see [`TextTokenizer::encode_prompt`]: a tokenizer that
/// begins a text with a special token begins the prompt with it), or for an empty prompt without one a line
/// break (which every corpus has), else `<|endoftext|>`.
pub fn prompt_ids(tok: &TextTokenizer, prompt: &str) -> Result<Vec<u32>> {
    let mut ids = tok.encode_prompt(prompt)?;
    if ids.is_empty() {
        ids = tok.encode("\n").unwrap_or_default();
        if ids.is_empty() {
            ids.extend(tok.eos_id());
        }
        anyhow::ensure!(
            !ids.is_empty(),
            "the prompt is empty and the tokenizer has no line break or end-of-text token to start from: \
             give a --prompt of text the model knows"
        );
    }
    Ok(ids)
}

/// Generates after the prompt `ids` and streams the decoded text piece by piece to `emit`; returns the whole
/// continuation. Text is emitted up to the last complete character (byte-level tokens can split one); bytes
/// left over at the end are emitted as U+FFFD, as transformers decodes them.
pub fn complete(
    model: &Gpt,
    tok: &TextTokenizer,
    ids: Vec<u32>,
    s: &Sampling,
    mut emit: impl FnMut(&str) -> Result<()>,
) -> Result<String> {
    let mut new_ids = Vec::new();
    let mut shown = 0;
    let mut err = None;
    let result = generate(model, tok, &ids, s, |t| {
        new_ids.push(t);
        let text = tok.decode_text(&new_ids)?;
        let complete_len = text.trim_end_matches('\u{fffd}').len();
        if complete_len > shown {
            if let Err(e) = emit(&text[shown..complete_len]) {
                err = Some(e);
                // stop generating: nobody reads the rest
                return Err(primer::Error::Config("output closed".into()));
            }
            shown = complete_len;
        }
        Ok(())
    });
    if let Some(e) = err {
        return Err(e);
    }
    result?;
    let text = tok.decode_text(&new_ids)?;
    if let Some(rest) = text.get(shown..).filter(|rest| !rest.is_empty()) {
        emit(rest)?;
    }
    Ok(text)
}

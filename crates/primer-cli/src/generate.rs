//! `primer generate`: stream text from a GPT directory.

use anyhow::{Context, Result};
use primer::infer::generate::{generate, stop_ids, Sampling};
use primer::models::gpt::Gpt;
use primer::tokenize::TextTokenizer;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Directory with config.json, model.safetensors and tokenizer.json.
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value = "")]
    prompt: String,
    #[arg(long, default_value_t = 200)]
    max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// 0 = off.
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// 1.0 = off.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// 1.0 = off.
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    let model = Gpt::load(&a.model)?;
    let tok = TextTokenizer::from_dir(&a.model)?;
    let s = Sampling {
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        repetition_penalty: a.repetition_penalty,
        stop_tokens: stop_ids(&a.model, &model, &tok)?,
        seed: a.seed,
    };
    // before the prompt is echoed, so that a bad setting or prompt prints nothing but the error
    s.validate()?;
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
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write!(out, "{}", a.prompt)?;
    out.flush()?;
    complete(&model, &tok, ids, &s, |piece| {
        write!(out, "{piece}")?;
        out.flush()?;
        Ok(())
    })?;
    writeln!(out)?;
    Ok(())
}

/// The token ids generation starts from: the prompt's, or for an empty prompt a line break (which every
/// corpus has), else `<|endoftext|>`.
pub fn prompt_ids(tok: &TextTokenizer, prompt: &str) -> Result<Vec<u32>> {
    let mut ids = tok.encode(prompt)?;
    if ids.is_empty() {
        ids = tok.encode("\n").unwrap_or_default();
        if ids.is_empty() {
            ids.extend(tok.eos_id());
        }
        anyhow::ensure!(
            !ids.is_empty(),
            "the prompt is empty and the tokenizer cannot encode a line break"
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
        let text = tok.decode(&new_ids)?;
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
    let text = tok.decode(&new_ids)?;
    if let Some(rest) = text.get(shown..).filter(|rest| !rest.is_empty()) {
        emit(rest)?;
    }
    Ok(text)
}

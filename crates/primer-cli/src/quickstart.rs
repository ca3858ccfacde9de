//! `primer quickstart`: the whole pretraining loop on primer's own generated corpus, in a few minutes: a GPT
//! that writes, then a BERT that fills in blanks.

use crate::generate::{complete, prompt_ids};
use anyhow::{Context, Result};
use primer::data::synth::{generate_corpus, write_corpus};
use primer::infer::fill_mask::FillMask;
use primer::infer::generate::{GenerationConfig, Sampling};
use primer::models::bert::Bert;
use primer::models::gpt::Gpt;
use primer::tokenize::TextTokenizer;
use primer::train::pretrain_bert::{self, BertTrainConfig};
use primer::train::pretrain_gpt::{self, GptTrainConfig};
use primer::train::Start;
use std::path::{Path, PathBuf};

/// The files each of the two runs leaves in its directory.
const WRITTEN: &str =
    "config.json, model.safetensors, tokenizer.json, tokenizer_config.json, metrics.jsonl, loss.png";

#[derive(clap::Args)]
pub struct Args {
    /// Where the corpus and the two runs (gpt/, bert/: tokenizer, checkpoint, metrics.jsonl, loss.png) go.
    #[arg(long, default_value = "runs/quickstart")]
    out: PathBuf,
    /// GPT training steps (the default fits in a few minutes on 2 cores).
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u32).range(1..))]
    max_iters: u32,
    /// BERT training steps.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u32).range(1..))]
    bert_iters: u32,
    /// Size of the generated corpus in bytes (at least 50000, so that both models have blocks to validate on).
    #[arg(long, default_value_t = 3_000_000, value_parser = clap::value_parser!(u64).range(50_000..=1 << 32))]
    corpus_bytes: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Make the corpus and the two runs again in an --out that holds them (without it, primer refuses, so that a
    /// run extended with `pretrain --resume` is not lost).
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args) -> Result<()> {
    let held: Vec<&str> = ["corpus.txt", "gpt", "bert"]
        .into_iter()
        .filter(|name| a.out.join(name).exists())
        .collect();
    anyhow::ensure!(
        held.is_empty() || a.overwrite,
        "--out {}: already holds {} from an earlier quickstart (or runs made from it): pass --overwrite to make \
         them again, or choose another --out",
        a.out.display(),
        held.join(", ")
    );
    std::fs::create_dir_all(&a.out).with_context(|| format!("--out {}", a.out.display()))?;
    let corpus = a.out.join("corpus.txt");
    let bytes = write_corpus(&corpus, a.seed, a.corpus_bytes as usize)?;
    primer::tell!(
        "1/5 wrote {} ({bytes} bytes of generated English-like text, documents separated by blank lines; \
         point `primer pretrain` at your own)",
        corpus.display(),
    );
    gpt(&a, &corpus)?;
    bert(&a, &corpus)?;
    // as the user started primer: through cargo (which sets CARGO for what it runs), or the binary itself
    let primer = if std::env::var_os("CARGO").is_some() {
        let release = if cfg!(debug_assertions) {
            ""
        } else {
            " --release"
        };
        format!("cargo run{release} --")
    } else {
        let program = std::env::args_os()
            .next()
            .map_or("primer".into(), |p| p.to_string_lossy().into_owned());
        if program.contains(char::is_whitespace) {
            format!("'{program}'")
        } else {
            program
        }
    };
    primer::tell!(
        "try: {primer} generate --model {0}/gpt --prompt \"The weather\"\n     \
         {primer} fill-mask --model {0}/bert \"Maria lives in [MASK] and works at a school.\"",
        a.out.display()
    );
    Ok(())
}

/// The warm-up of a quickstart run of `steps` steps: `full` steps, but at most a tenth of the run, so that a short
/// trial run (`--max-iters 30`) still warms up, then decays, instead of being warned about a warm-up it has no
/// flag to change.
fn warmup(full: usize, steps: u32) -> usize {
    full.min(steps as usize / 10)
}

/// The quickstart's GPT settings.
fn gpt_config(a: &Args) -> GptTrainConfig {
    GptTrainConfig {
        tokenizer: "bpe".into(),
        vocab_size: 1024,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        block_size: 64,
        batch_size: 16,
        max_iters: a.max_iters as usize,
        lr: 3e-3,
        min_lr: 3e-4,
        warmup_iters: warmup(50, a.max_iters),
        eval_interval: (a.max_iters as usize / 5).max(1),
        eval_iters: 10,
        seed: a.seed,
        ..GptTrainConfig::default()
    }
}

fn gpt(a: &Args, corpus: &Path) -> Result<()> {
    let out = a.out.join("gpt");
    let cfg = gpt_config(a);
    primer::tell!(
        "2/5 GPT: a byte-level BPE tokenizer (vocab {}) and a causal LM ({} layers, {} heads, {} wide, context {}), \
         {} steps",
        cfg.vocab_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.max_iters
    );
    let s = pretrain_gpt::pretrain(corpus, &out, &cfg, Start::Overwrite)?;
    primer::tell!(
        "    validation loss {:.3} (train {:.3}) after {} steps, {:.0} tokens/s, {:.0} s",
        s.val_loss,
        s.train_loss,
        s.steps,
        s.tokens_per_sec,
        s.elapsed_s
    );
    primer::tell!("3/5 GPT samples (temperature 0.8):");
    let model = Gpt::load(&out)?;
    let tok = TextTokenizer::from_dir(&out)?;
    let stop_tokens = GenerationConfig::read(&out)?.stop_ids(&model, &tok)?;
    for (i, prompt) in ["The", "Maria", "Can you"].iter().enumerate() {
        let sampling = Sampling {
            max_new_tokens: 40,
            temperature: 0.8,
            stop_tokens: stop_tokens.clone(),
            seed: a.seed + i as u64,
            ..Default::default()
        };
        let text = complete(&model, &tok, prompt_ids(&tok, prompt)?, &sampling, |_| {
            Ok(())
        })?;
        let line = text.lines().next().unwrap_or_default();
        primer::tell!("    {prompt}{line}");
    }
    primer::tell!("    wrote {}/: {WRITTEN}", out.display());
    Ok(())
}

/// The quickstart's BERT settings.
fn bert_config(a: &Args) -> BertTrainConfig {
    BertTrainConfig {
        vocab_size: 2048,
        n_layer: 2,
        n_head: 4,
        n_embd: 128,
        block_size: 64,
        batch_size: 32,
        dropout: 0.0,
        max_iters: a.bert_iters as usize,
        lr: 2e-3,
        min_lr: 2e-4,
        warmup_iters: warmup(100, a.bert_iters),
        eval_interval: (a.bert_iters as usize / 5).max(1),
        eval_iters: 10,
        seed: a.seed,
        ..BertTrainConfig::default()
    }
}

fn bert(a: &Args, corpus: &Path) -> Result<()> {
    let out = a.out.join("bert");
    let cfg = bert_config(a);
    primer::tell!(
        "4/5 BERT: a WordPiece tokenizer (vocab {}) and an encoder ({} layers, {} heads, {} wide, {} tokens per \
         sentence pair), masked-LM + next-sentence prediction, {} steps",
        cfg.vocab_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.max_iters
    );
    let s = pretrain_bert::pretrain(corpus, &out, &cfg, Start::Overwrite)?;
    primer::tell!(
        "    validation: masked-word accuracy {:.3} (loss {:.3}), next-sentence accuracy {:.3}, after {} steps, \
         {:.0} tokens/s, {:.0} s",
        s.val.mlm_accuracy(),
        s.val.mlm_loss(),
        s.val.nsp_accuracy(),
        s.steps,
        s.tokens_per_sec,
        s.elapsed_s
    );
    let model = Bert::load(&out)?.into_inference();
    let tok = TextTokenizer::from_dir(&out)?;
    // sentences the model has not seen: the same grammar, another seed
    let fresh = generate_corpus(a.seed + 1_000_003, 40_000);
    let blanks = fresh.lines().filter_map(|line| blank_out(line, &tok));
    primer::tell!(
        "5/5 BERT fills in blanks in new sentences (top 3, probability; the hidden word after =):"
    );
    let fm = FillMask::new(&model, &tok, 3, None)?;
    // a sentence whose blank lies past the model's positions is passed over
    let (masked, words): (Vec<_>, Vec<_>) = blanks
        .filter_map(|(text, word)| Some((fm.prepare(&text).ok()?, (text, word))))
        .take(200)
        .unzip();
    let (mut shown, mut right, total) = (0, 0, masked.len());
    for (fills, (text, word)) in fm.run(&masked)?.iter().zip(&words) {
        let Some(f) = fills.first() else { continue };
        right += usize::from(f.candidates[0].token == *word);
        if shown < 6 {
            let cands: Vec<String> = f
                .candidates
                .iter()
                .map(|c| format!("{} {:.2}", c.token, c.prob))
                .collect();
            primer::tell!("    {text}\n        {}   = {word}", cands.join(" | "));
            shown += 1;
        }
    }
    primer::tell!("    top-1 right for {right} of {total} new sentences");
    primer::tell!("    wrote {}/: {WRITTEN}", out.display());
    Ok(())
}

/// The sentence with its longest word that is one vocabulary token replaced by [MASK], and that word.
fn blank_out(line: &str, tok: &TextTokenizer) -> Option<(String, String)> {
    let word = line
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.len() > 2 && tok.token_to_id(&w.to_lowercase()).is_some())
        .max_by_key(|w| w.len())?;
    let at = line.find(word)?;
    let masked = format!("{}[MASK]{}", &line[..at], &line[at + word.len()..]);
    Some((masked, word.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use primer::train::schedule::{warmup_warning, DecayFrom};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// No step count the quickstart takes gets the warning about --warmup-iters, a flag it does not have; the
    /// default runs keep their warm-up.
    #[test]
    fn warm_up_fits_every_run_length() {
        for steps in ["1", "2", "9", "30", "499", "800", "1500", "100000"] {
            let a = Cli::parse_from(["q", "--max-iters", steps, "--bert-iters", steps]).args;
            let (g, b) = (gpt_config(&a), bert_config(&a));
            assert!(
                warmup_warning(g.warmup_iters, g.max_iters, DecayFrom::MaxIters).is_none(),
                "{steps}"
            );
            assert!(
                warmup_warning(b.warmup_iters, b.max_iters, DecayFrom::MaxIters).is_none(),
                "{steps}"
            );
        }
        let a = Cli::parse_from(["q"]).args;
        assert_eq!(
            (gpt_config(&a).warmup_iters, bert_config(&a).warmup_iters),
            (50, 100)
        );
    }
}

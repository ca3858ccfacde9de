//! `primer quickstart`: the whole pretraining loop on primer's own generated corpus, in a few minutes.

use crate::generate::complete;
use anyhow::Result;
use primer::data::synth::write_corpus;
use primer::infer::generate::Sampling;
use primer::models::gpt::Gpt;
use primer::tokenize::TextTokenizer;
use primer::train::pretrain_gpt::{pretrain, GptTrainConfig};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Where the corpus, tokenizer, checkpoint, metrics.jsonl and loss.png go.
    #[arg(long, default_value = "runs/quickstart")]
    out: PathBuf,
    /// Training steps (the default fits in a few minutes on 2 cores).
    #[arg(long, default_value_t = 1000)]
    max_iters: usize,
    /// Size of the generated corpus in bytes.
    #[arg(long, default_value_t = 3_000_000)]
    corpus_bytes: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    std::fs::create_dir_all(&a.out)?;
    let corpus = a.out.join("corpus.txt");
    write_corpus(&corpus, a.seed, a.corpus_bytes)?;
    println!(
        "1/3 wrote {} ({} bytes of generated English-like text; point `primer pretrain gpt --corpus` at your own)",
        corpus.display(),
        a.corpus_bytes
    );
    let cfg = GptTrainConfig {
        tokenizer: "bpe".into(),
        vocab_size: 1024,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        block_size: 64,
        batch_size: 16,
        max_iters: a.max_iters,
        lr: 2e-3,
        min_lr: 2e-4,
        warmup_iters: 50,
        eval_interval: (a.max_iters / 5).max(1),
        eval_iters: 10,
        seed: a.seed,
        ..GptTrainConfig::default()
    };
    println!(
        "2/3 training a byte-level BPE tokenizer (vocab {}) and a GPT ({} layers, {} heads, {} wide, context {}) for {} steps",
        cfg.vocab_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.max_iters
    );
    let s = pretrain(&corpus, &a.out, &cfg, false)?;
    println!(
        "    validation loss {:.3} (train {:.3}) after {} steps, {:.0} tokens/s, {:.0} s",
        s.val_loss, s.train_loss, s.steps, s.tokens_per_sec, s.elapsed_s
    );
    println!("3/3 samples (temperature 0.8):");
    let model = Gpt::load(&a.out)?;
    let tok = TextTokenizer::from_dir(&a.out)?;
    for (i, prompt) in ["The", "Maria", "Can you"].iter().enumerate() {
        let sampling = Sampling {
            max_new_tokens: 40,
            temperature: 0.8,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop_token: tok.eos_id(),
            seed: a.seed + i as u64,
        };
        let text = complete(&model, &tok, prompt, &sampling, |_| Ok(()))?;
        let line = text.lines().next().unwrap_or_default();
        println!("    {prompt}{line}");
    }
    println!(
        "wrote {0}/config.json, model.safetensors, tokenizer.json, metrics.jsonl, loss.png\n\
         try: cargo run --release -- generate --model {0} --prompt \"The weather\"",
        a.out.display()
    );
    Ok(())
}

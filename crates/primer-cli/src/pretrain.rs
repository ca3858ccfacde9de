//! `primer pretrain gpt`.

use anyhow::Result;
use clap::Subcommand;
use primer::train::pretrain_gpt::{pretrain, saved_corpus, GptTrainConfig};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Model {
    /// GPT-2 style causal language model on packed blocks of the corpus.
    Gpt(GptArgs),
}

/// Flags left out keep the value from `--config` (or, with `--resume`, the run's saved config), else the default.
#[derive(clap::Args)]
pub struct GptArgs {
    /// UTF-8 text file to train on (with --resume: the run's own, unless given).
    #[arg(long, required_unless_present = "resume")]
    corpus: Option<PathBuf>,
    /// Output directory: checkpoint, tokenizer, metrics.jsonl, loss.png.
    #[arg(long)]
    out: PathBuf,
    /// TOML file with any of the settings below (snake_case names, e.g. n_layer = 4).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run saved in --out (with its saved settings; --max-iters and the evaluation and optimizer
    /// flags may change).
    #[arg(long, conflicts_with = "config")]
    resume: bool,
    /// char or bpe [default: char]
    #[arg(long)]
    tokenizer: Option<String>,
    /// BPE vocabulary size [default: 2048]
    #[arg(long)]
    vocab_size: Option<usize>,
    /// [default: 4]
    #[arg(long)]
    n_layer: Option<usize>,
    /// [default: 4]
    #[arg(long)]
    n_head: Option<usize>,
    /// [default: 128]
    #[arg(long)]
    n_embd: Option<usize>,
    /// Context length [default: 64]
    #[arg(long)]
    block_size: Option<usize>,
    /// [default: 0.0]
    #[arg(long)]
    dropout: Option<f32>,
    /// [default: 12]
    #[arg(long)]
    batch_size: Option<usize>,
    /// Micro-batches per optimizer step [default: 1]
    #[arg(long)]
    grad_accum: Option<usize>,
    /// [default: 2000]
    #[arg(long)]
    max_iters: Option<usize>,
    /// Peak learning rate [default: 1e-3]
    #[arg(long)]
    lr: Option<f32>,
    /// [default: 1e-4]
    #[arg(long)]
    min_lr: Option<f32>,
    /// [default: 100]
    #[arg(long)]
    warmup_iters: Option<usize>,
    /// Step where cosine decay ends [default: max-iters]
    #[arg(long)]
    lr_decay_iters: Option<usize>,
    /// [default: 0.1]
    #[arg(long)]
    weight_decay: Option<f32>,
    /// [default: 0.9]
    #[arg(long)]
    beta1: Option<f32>,
    /// [default: 0.99]
    #[arg(long)]
    beta2: Option<f32>,
    /// Global gradient-norm clip, 0 = off [default: 1.0]
    #[arg(long)]
    grad_clip: Option<f32>,
    /// [default: 250]
    #[arg(long)]
    eval_interval: Option<usize>,
    /// Batches per loss estimate [default: 20]
    #[arg(long)]
    eval_iters: Option<usize>,
    /// Tail of the token stream held out for validation [default: 0.1]
    #[arg(long)]
    val_fraction: Option<f64>,
    /// [default: 1337]
    #[arg(long)]
    seed: Option<u64>,
}

macro_rules! overlay {
    ($cfg:ident, $args:ident, $($f:ident),*) => { $( if let Some(v) = $args.$f.clone() { $cfg.$f = v; } )* };
}

impl GptArgs {
    fn config(&self) -> Result<GptTrainConfig> {
        let mut c = if self.resume {
            primer::hf::read_config(&self.out.join("train_config.json"))?
        } else if let Some(path) = &self.config {
            GptTrainConfig::from_toml(path)?
        } else {
            GptTrainConfig::default()
        };
        overlay!(
            c,
            self,
            tokenizer,
            vocab_size,
            n_layer,
            n_head,
            n_embd,
            block_size,
            dropout,
            batch_size,
            grad_accum,
            max_iters,
            lr,
            min_lr,
            warmup_iters,
            lr_decay_iters,
            weight_decay,
            beta1,
            beta2,
            grad_clip,
            eval_interval,
            eval_iters,
            val_fraction,
            seed
        );
        Ok(c)
    }
}

pub fn run(m: Model) -> Result<()> {
    match m {
        Model::Gpt(a) => {
            let cfg = a.config()?;
            let corpus = match &a.corpus {
                Some(c) => c.clone(),
                None => saved_corpus(&a.out)?,
            };
            let s = pretrain(&corpus, &a.out, &cfg, a.resume)?;
            println!(
                "done: {} steps, train loss {:.4}, val loss {:.4}, {:.0} tok/s, {:.1} s; model in {}",
                s.steps,
                s.train_loss,
                s.val_loss,
                s.tokens_per_sec,
                s.elapsed_s,
                a.out.display()
            );
            Ok(())
        }
    }
}

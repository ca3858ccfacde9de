//! `primer pretrain gpt` and `primer pretrain bert`.

use anyhow::{Context, Result};
use clap::Subcommand;
use primer::train::{pretrain_bert, pretrain_gpt, Start};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum Model {
    /// GPT-2 style causal language model on packed blocks of the corpus.
    Gpt(GptArgs),
    /// BERT masked-LM + next-sentence prediction (or masked-LM alone with --no-nsp).
    Bert(BertArgs),
}

/// Where a run reads and writes. Flags left out keep the value from `--config` (or, with `--resume`, the run's
/// saved config), else the default.
#[derive(clap::Args)]
pub struct RunArgs {
    /// UTF-8 text file to train on, a regular file (not a pipe: it is read more than once). With --resume: the
    /// run's own; give it only if the file has moved.
    #[arg(long, required_unless_present = "resume")]
    corpus: Option<PathBuf>,
    /// Output directory: checkpoint, tokenizer, metrics.jsonl, loss.png.
    #[arg(long)]
    out: PathBuf,
    /// TOML file with any of the settings (snake_case names, e.g. n_layer = 4).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run saved in --out with its saved settings: --max-iters, the batch size and accumulation, the
    /// optimizer and the evaluation flags may change; settings that shape the model, the data or the schedule's end
    /// are refused, by flag.
    #[arg(long, conflicts_with = "config")]
    resume: bool,
    /// Start afresh in an --out that already holds a run, deleting that run's files (without it, primer refuses).
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
}

impl RunArgs {
    /// The settings this run starts from: the saved ones on resume, else `--config`, else the defaults. `model`
    /// is the command's (gpt or bert): a run of the other kind is named as such.
    fn base<C: DeserializeOwned + Default>(
        &self,
        model: &str,
        from_toml: fn(&Path) -> primer::Result<C>,
    ) -> Result<C> {
        Ok(if self.resume {
            primer::train::check_resumable(&self.out)?;
            let path = self.out.join("train_config.json");
            let other = if model == "gpt" { "bert" } else { "gpt" };
            if saved_by(&path) == Some(other) {
                anyhow::bail!(
                    "{}: holds a `pretrain {other}` run: resume it with `primer pretrain {other} --resume`",
                    self.out.display()
                );
            }
            primer::hf::read_config(&path)?
        } else if let Some(path) = &self.config {
            check_config_file(path)?;
            from_toml(path)?
        } else {
            C::default()
        })
    }

    /// How a setting the run would ignore was given, for the error that refuses it: the flag when it was
    /// given, else `--config`'s file when that sets it, else `None`.
    fn given(&self, flag: bool, key: &str) -> Result<Option<String>> {
        if flag {
            return Ok(Some(flag_of(key)));
        }
        let Some(path) = self.fresh_config() else {
            return Ok(None);
        };
        Ok(config_table(path)?
            .contains_key(key)
            .then(|| format!("{key} in {}", path.display())))
    }

    /// The `--config` file a fresh run reads (a resumed one reads its saved settings instead).
    fn fresh_config(&self) -> Option<&PathBuf> {
        self.config.as_ref().filter(|_| !self.resume)
    }

    /// Refuses 0 for a setting whose default is derived from other settings (in the settings a run saves, 0
    /// means "the default"), rather than quietly giving the default: as the flag `value`, or as `key` in the
    /// `--config` file when the flag is left out.
    fn refuse_zero(&self, key: &str, value: Option<usize>) -> Result<()> {
        let how = match value {
            Some(v) => (v == 0).then(|| flag_of(key)),
            None => match self.fresh_config() {
                Some(path) => config_table(path)?
                    .get(key)
                    .is_some_and(|v| v.as_integer() == Some(0))
                    .then(|| format!("{key} in {}", path.display())),
                None => None,
            },
        };
        match how {
            Some(how) => anyhow::bail!("{how} must be positive (leave it out for its default)"),
            None => Ok(()),
        }
    }

    /// A settings error names flags (`--dropout must be in [0, 1)`); when a named setting came from the
    /// `--config` file instead of the command line, the error says so, with the file's key.
    fn name_config_keys(&self, e: primer::Error) -> anyhow::Error {
        let message = e.to_string();
        let (primer::Error::Config(_), Some(path)) = (&e, self.fresh_config()) else {
            return e.into();
        };
        let table = config_table(path).unwrap_or_default();
        let typed: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut keys: Vec<String> = message
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter_map(|word| word.strip_prefix("--"))
            .map(|flag| flag.replace('-', "_"))
            .filter(|key| table.contains_key(key))
            .filter(|key| {
                let flag = flag_of(key);
                !typed
                    .iter()
                    .any(|t| t == &flag || t.starts_with(&format!("{flag}=")))
            })
            .collect();
        keys.dedup();
        if keys.is_empty() {
            return e.into();
        }
        anyhow::anyhow!(
            "{message} (set as {} in {})",
            keys.join(", "),
            path.display()
        )
    }

    /// How the run starts in `--out`.
    fn start(&self) -> Start {
        if self.resume {
            Start::Resume
        } else if self.overwrite {
            Start::Overwrite
        } else {
            Start::Fresh
        }
    }

    /// The corpus to read. A resumed run keeps its own: `--corpus` may only name it again, or where it is now
    /// when it is no longer at the saved path.
    fn corpus(&self, saved: fn(&Path) -> primer::Result<PathBuf>) -> Result<PathBuf> {
        let given = self.corpus.clone();
        if !self.resume {
            return given.ok_or_else(|| anyhow::anyhow!("--corpus is required"));
        }
        let saved = saved(&self.out)?;
        match given {
            None => Ok(saved),
            Some(c) if primer::train::same_input(&saved, &c) => Ok(c),
            Some(c) => anyhow::bail!(
                "--corpus {}: a resumed run keeps its corpus, {} (leave --corpus out, or start a new run)",
                c.display(),
                saved.display()
            ),
        }
    }
}

/// The flag that sets the `--config` key `key` (`lr_decay_iters` → `--lr-decay-iters`).
fn flag_of(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// Refuses a `--config` that is not a regular file (a pipe or FIFO, `<(…)`): it is read more than once, and a
/// FIFO's second open would wait forever.
fn check_config_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => anyhow::bail!(
            "{}: is a directory: --config names a TOML file",
            path.display()
        ),
        Ok(m) if !m.is_file() => anyhow::bail!(
            "{}: --config is not a regular file (a pipe or FIFO): it is read more than once, so save it to a \
             file first",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// The settings a `--config` file names, as its table of keys.
fn config_table(path: &Path) -> Result<toml::Table> {
    check_config_file(path)?;
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Which trainer wrote a `train_config.json`, from a setting only that one has.
fn saved_by(path: &Path) -> Option<&'static str> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if v.get("mlm_probability").is_some() {
        Some("bert")
    } else if v.get("tokenizer").is_some_and(|t| t.is_string()) {
        Some("gpt")
    } else {
        None
    }
}

/// Optimizer, schedule and evaluation flags both trainers share.
#[derive(clap::Args)]
pub struct OptimArgs {
    /// Sequences per micro-batch [default: gpt 12, bert 16]
    #[arg(long)]
    batch_size: Option<usize>,
    /// Micro-batches per optimizer step [default: 1]
    #[arg(long)]
    grad_accum: Option<usize>,
    /// [default: 2000]
    #[arg(long)]
    max_iters: Option<usize>,
    /// Peak learning rate [default: gpt 1e-3, bert 5e-4]
    #[arg(long)]
    lr: Option<f32>,
    /// [default: gpt 1e-4, bert 5e-5]
    #[arg(long)]
    min_lr: Option<f32>,
    /// [default: 100]
    #[arg(long)]
    warmup_iters: Option<usize>,
    /// Step where cosine decay ends [default: max-iters]
    #[arg(long)]
    lr_decay_iters: Option<usize>,
    /// [default: gpt 0.1, bert 0.01]
    #[arg(long)]
    weight_decay: Option<f32>,
    /// [default: 0.9]
    #[arg(long)]
    beta1: Option<f32>,
    /// [default: gpt 0.99, bert 0.999]
    #[arg(long)]
    beta2: Option<f32>,
    /// Global gradient-norm clip, 0 = off [default: 1.0]
    #[arg(long)]
    grad_clip: Option<f32>,
    /// [default: 250]
    #[arg(long)]
    eval_interval: Option<usize>,
    /// Batches per loss estimate [default: gpt 20, bert 10]
    #[arg(long)]
    eval_iters: Option<usize>,
    /// Part of the corpus held out for validation [default: gpt 0.1 (tail of the tokens), bert 0.05 (last
    /// documents)]
    #[arg(long)]
    val_fraction: Option<f64>,
    /// [default: 1337]
    #[arg(long)]
    seed: Option<u64>,
}

macro_rules! overlay {
    ($cfg:ident, $args:expr, $($f:ident),*) => { $( if let Some(v) = $args.$f.clone() { $cfg.$f = v; } )* };
}

macro_rules! overlay_optim {
    ($cfg:ident, $o:expr) => {
        overlay!(
            $cfg,
            $o,
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
        )
    };
}

#[derive(clap::Args)]
pub struct GptArgs {
    #[command(flatten)]
    run: RunArgs,
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
    #[command(flatten)]
    optim: OptimArgs,
}

#[derive(clap::Args)]
pub struct BertArgs {
    #[command(flatten)]
    run: RunArgs,
    /// A tokenizer to reuse instead of training a WordPiece vocabulary on the corpus: a tokenizer.json, a BERT
    /// vocab.txt, or a model directory (its tokenizer.json, else its vocab.txt).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// WordPiece vocabulary size [default: 8192]
    #[arg(long)]
    vocab_size: Option<usize>,
    /// Lowercase and strip accents in the trained WordPiece tokenizer [default: true]
    #[arg(long)]
    lowercase: Option<bool>,
    /// [default: 4]
    #[arg(long)]
    n_layer: Option<usize>,
    /// [default: 4]
    #[arg(long)]
    n_head: Option<usize>,
    /// [default: 256]
    #[arg(long)]
    n_embd: Option<usize>,
    /// Feed-forward width [default: 4 × n-embd]
    #[arg(long)]
    intermediate_size: Option<usize>,
    /// Tokens per sequence, [CLS] and [SEP] included [default: 128]
    #[arg(long)]
    block_size: Option<usize>,
    /// Hidden and attention dropout [default: 0.1]
    #[arg(long)]
    dropout: Option<f32>,
    /// Masked-LM only, on sequences packed with whole sentences (RoBERTa style) instead of sentence pairs.
    #[arg(long)]
    no_nsp: bool,
    /// Fraction of tokens chosen for prediction [default: 0.15]
    #[arg(long)]
    mlm_probability: Option<f32>,
    /// Of the chosen tokens, the fraction replaced by [MASK] [default: 0.8]
    #[arg(long)]
    mask_replace: Option<f32>,
    /// Of the chosen tokens, the fraction replaced by a random token; the rest stay as they are [default: 0.1]
    #[arg(long)]
    random_replace: Option<f32>,
    /// Choose whole words: all WordPiece pieces of a chosen word are masked together.
    #[arg(long)]
    whole_word_mask: bool,
    /// Validate on this file (same format as the corpus, a regular file) instead of holding out part of the
    /// corpus. With --resume: give it only if the file has moved.
    #[arg(long)]
    val_corpus: Option<PathBuf>,
    #[command(flatten)]
    optim: OptimArgs,
}

pub fn run(m: Model) -> Result<()> {
    match m {
        Model::Gpt(a) => {
            let mut c = a.run.base("gpt", pretrain_gpt::GptTrainConfig::from_toml)?;
            overlay!(c, a, tokenizer, vocab_size, n_layer, n_head, n_embd, block_size, dropout);
            overlay_optim!(c, a.optim);
            a.run
                .refuse_zero("lr_decay_iters", a.optim.lr_decay_iters)?;
            if c.tokenizer == "char" {
                if let Some(how) = a.run.given(a.vocab_size.is_some(), "vocab_size")? {
                    anyhow::bail!(
                        "{how}: the vocabulary size applies to --tokenizer bpe; a character tokenizer's \
                         vocabulary is the characters of the corpus"
                    );
                }
            }
            let corpus = a.run.corpus(pretrain_gpt::saved_corpus)?;
            let s = pretrain_gpt::pretrain(&corpus, &a.run.out, &c, a.run.start())
                .map_err(|e| a.run.name_config_keys(e))?;
            primer::tell!(
                "done: {} steps, train loss {:.4}, val loss {:.4}, {:.0} tok/s, {:.1} s; model in {}",
                s.steps,
                s.train_loss,
                s.val_loss,
                s.tokens_per_sec,
                s.elapsed_s,
                a.run.out.display()
            );
            Ok(())
        }
        Model::Bert(a) => {
            let mut c = a
                .run
                .base("bert", pretrain_bert::BertTrainConfig::from_toml)?;
            overlay!(
                c,
                a,
                vocab_size,
                lowercase,
                n_layer,
                n_head,
                n_embd,
                intermediate_size,
                block_size,
                dropout,
                mlm_probability,
                mask_replace,
                random_replace
            );
            overlay_optim!(c, a.optim);
            a.run
                .refuse_zero("lr_decay_iters", a.optim.lr_decay_iters)?;
            a.run
                .refuse_zero("intermediate_size", a.intermediate_size)?;
            if a.tokenizer.is_some() {
                c.tokenizer = a.tokenizer.clone();
            }
            if let Some(file) = &c.tokenizer {
                for (flag, key) in [
                    (a.vocab_size.is_some(), "vocab_size"),
                    (a.lowercase.is_some(), "lowercase"),
                ] {
                    if let Some(how) = a.run.given(flag, key)? {
                        anyhow::bail!(
                            "{how}: the vocabulary size and lowercasing shape the WordPiece tokenizer primer \
                             trains; the tokenizer {} is used as it is",
                            file.display()
                        );
                    }
                }
            }
            if a.val_corpus.is_some() {
                c.val_corpus = a.val_corpus.clone();
            }
            if c.val_corpus.is_some()
                && a.run
                    .given(a.optim.val_fraction.is_some(), "val_fraction")?
                    .is_some()
            {
                anyhow::bail!(
                    "--val-fraction holds out part of the corpus, --val-corpus validates on another file: give one"
                );
            }
            // a path from the config file is read from the working directory, as a flag's is; one that is not
            // there is named with its key and file, as other settings from the file are
            for (from_flag, key, path) in [
                (a.tokenizer.is_some(), "tokenizer", &c.tokenizer),
                (a.val_corpus.is_some(), "val_corpus", &c.val_corpus),
            ] {
                if let (false, Some(path), Some(file)) = (from_flag, path, a.run.fresh_config()) {
                    anyhow::ensure!(
                        path.exists(),
                        "{}: no such file or directory (set as {key} in {}; a relative path there is read from \
                         the working directory, as a flag's is)",
                        path.display(),
                        file.display()
                    );
                }
            }
            if a.no_nsp {
                c.nsp = false;
            }
            if a.whole_word_mask {
                c.whole_word_mask = true;
            }
            let corpus = a.run.corpus(pretrain_bert::saved_corpus)?;
            let s = pretrain_bert::pretrain(&corpus, &a.run.out, &c, a.run.start())
                .map_err(|e| a.run.name_config_keys(e))?;
            let line = format!(
                "done: {} steps, {}",
                s.steps,
                pretrain_bert::describe(&s.val)
            );
            primer::tell!(
                "{line}, {:.0} tok/s, {:.1} s; model in {}",
                s.tokens_per_sec,
                s.elapsed_s,
                a.run.out.display()
            );
            Ok(())
        }
    }
}

//! `primer pretrain gpt`: causal language modelling on packed blocks of a tokenized corpus, nanoGPT style.
//!
//! The corpus is tokenized once into `OUT/tokens.bin` and read memory-mapped; the last `val_fraction` of the
//! tokens is the validation split. Every `eval_interval` steps (and at the end) the run estimates train and
//! validation loss, appends a line to `OUT/metrics.jsonl`, redraws `OUT/loss.png` and writes a checkpoint:
//! `config.json` + `model.safetensors` (Hugging Face GPT-2) and the trainer state that `--resume` continues from.

use crate::data::tokens::{encode_corpus, TokenFile};
use crate::engine::adamw::{clip_grad_norm, AdamW, AdamWConfig};
use crate::engine::rng::{derive_seed, Rng};
use crate::error::{Error, Result};
use crate::hf::{self, TokenIds};
use crate::models::gpt::{Gpt, GptConfig};
use crate::progress::{progress_bar, report};
use crate::tokenize::TextTokenizer;
use crate::train::checkpoint::{
    absolute, adamw_config, check_resume, commit_fresh, ensure_checkpointable, ensure_finite,
    in_run_dir, note_vocab_size, prepare_out, pretrain_way_on, restore_optimizer, save_checkpoint,
    Start,
};
use crate::train::data_parallel::GptShards;
use crate::train::inputs::{check_readable, check_recordable, content_crc, same_file};
use crate::train::memory::{check_fits, lower_bound, product};
use crate::train::metrics::{truncate_after_step, MetricsWriter};
use crate::train::run_dir::TOKENS_PARTIAL;
use crate::train::schedule::{cosine_lr, past_schedule_note, warmup_warning, DecayFrom};
use crate::viz::plot::plot_jsonl;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything that defines a GPT pretraining run. Read from `--config FILE.toml` (same field names) and
/// overridden by command-line flags; saved as `OUT/train_config.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GptTrainConfig {
    /// `char` or `bpe`.
    pub tokenizer: String,
    /// Vocabulary size of a trained BPE tokenizer.
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    pub dropout: f32,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub max_iters: usize,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup_iters: usize,
    /// Step at which the cosine decay reaches `min_lr`; `0` means `max_iters`.
    pub lr_decay_iters: usize,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    /// Clip the global gradient norm to this; `0` disables clipping.
    pub grad_clip: f32,
    pub eval_interval: usize,
    pub eval_iters: usize,
    pub val_fraction: f64,
    pub seed: u64,
}

impl Default for GptTrainConfig {
    fn default() -> Self {
        GptTrainConfig {
            tokenizer: "char".into(),
            vocab_size: 2048,
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            block_size: 64,
            dropout: 0.0,
            batch_size: 12,
            grad_accum: 1,
            max_iters: 2000,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_iters: 100,
            lr_decay_iters: 0,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            grad_clip: 1.0,
            eval_interval: 250,
            eval_iters: 20,
            val_fraction: 0.1,
            seed: 1337,
        }
    }
}

impl GptTrainConfig {
    /// Reads a TOML file of `GptTrainConfig` fields (unknown fields are errors naming the file).
    pub fn from_toml(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        toml::from_str(&text).map_err(|e| Error::format(path, e.to_string()))
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.tokenizer != "char" && self.tokenizer != "bpe" {
            return bad("--tokenizer must be char or bpe");
        }
        for (flag, v) in [
            ("--batch-size", self.batch_size),
            ("--grad-accum", self.grad_accum),
            ("--block-size", self.block_size),
            ("--n-layer", self.n_layer),
            ("--n-head", self.n_head),
            ("--n-embd", self.n_embd),
        ] {
            if v == 0 {
                return bad(&format!("{flag} must be positive"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(&format!(
                "--n-embd {} is not divisible by --n-head {}: each head gets an equal share of the width",
                self.n_embd, self.n_head
            ));
        }
        if !(0.0..0.5).contains(&self.val_fraction) || self.val_fraction == 0.0 {
            return bad("--val-fraction must be in (0, 0.5)");
        }
        if self.eval_interval == 0 || self.eval_iters == 0 {
            return bad("--eval-interval and --eval-iters must be positive");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("--dropout must be in [0, 1)");
        }
        if self.max_iters == 0 {
            return bad("--max-iters must be positive");
        }
        // the model's shape is checked before the corpus is tokenized; its vocabulary is known only after
        self.model_config(self.vocab_size.max(1)).validate()?;
        self.adamw()?;
        self.check_memory()
    }

    /// Refuses sizes whose weights and activations could not fit in memory, before anything is allocated.
    fn check_memory(&self) -> Result<()> {
        let (c, l) = (self.n_embd, self.n_layer);
        let bpe = self.tokenizer == "bpe";
        let vocab = if bpe { self.vocab_size } else { 1 };
        // token and position embeddings, and per layer at least the 12·C² of attention and MLP weights
        let params = product(&[vocab.saturating_add(self.block_size), c])
            .saturating_add(product(&[12, l, c, c]));
        // per token and layer, at least eight C-wide activations are kept for backward
        let acts = product(&[self.batch_size, self.block_size, l, 8, c]);
        // --vocab-size is named only where it counts (and is allowed): with a BPE tokenizer
        let flags = if bpe {
            "--n-embd, --n-layer, --vocab-size, --batch-size or --block-size"
        } else {
            "--n-embd, --n-layer, --batch-size or --block-size"
        };
        check_fits(lower_bound(params, acts), flags)?;
        // the micro-batches of a step run one after another, but their tokens are counted together
        if product(&[self.batch_size, self.block_size, self.grad_accum]) > 1 << 48 {
            return Err(Error::Config(
                "--batch-size × --block-size × --grad-accum, the tokens of one step, must stay below 2^48".into(),
            ));
        }
        Ok(())
    }

    fn adamw(&self) -> Result<AdamWConfig> {
        adamw_config(
            (self.lr, self.min_lr),
            (self.beta1, self.beta2),
            self.weight_decay,
            self.grad_clip,
        )
    }

    fn model_config(&self, vocab_size: usize) -> GptConfig {
        let mut c = GptConfig::new(
            vocab_size,
            self.block_size,
            self.n_layer,
            self.n_head,
            self.n_embd,
        );
        c.resid_pdrop = self.dropout;
        c.embd_pdrop = self.dropout;
        c.attn_pdrop = self.dropout;
        c
    }

    fn decay_iters(&self) -> usize {
        if self.lr_decay_iters == 0 {
            self.max_iters
        } else {
            self.lr_decay_iters
        }
    }
}

/// What a resumed run needs beyond the model and optimizer moments.
#[derive(Debug, Serialize, Deserialize)]
struct TrainerState {
    step: usize,
    rng_state: u64,
    adam_t: u64,
    corpus: PathBuf,
    /// The corpus's size and CRC-32 when the run started (`None` in runs from before they were recorded).
    #[serde(default)]
    corpus_bytes: Option<u64>,
    #[serde(default)]
    corpus_crc32: Option<u32>,
    tokens_seen: u64,
    elapsed_s: f64,
}

/// A resumed run trains on `OUT/tokens.bin`, made of its corpus when it started; the corpus itself is only
/// recorded. So a corpus given in another place (the recorded one has moved) must still be that file, by its
/// size and CRC-32, and another file is refused; the recorded file changed in place gets a note that the run
/// goes on with the text as it was.
fn check_resumed_corpus(corpus: &Path, state: &TrainerState, out: &Path) -> Result<()> {
    let (Some(started), Ok(meta)) = (state.corpus_bytes, std::fs::metadata(corpus)) else {
        return Ok(());
    };
    let now = meta.len();
    // the CRC is read only when the sizes agree (runs from before it was recorded have none to compare)
    if now == started
        && state
            .corpus_crc32
            .map_or(Ok(true), |crc| Ok(content_crc(corpus)? == crc))?
    {
        return Ok(());
    }
    if same_file(corpus, &state.corpus) {
        crate::say!(
            "note: {} has changed since the run started ({now} bytes now, {started} then): a resumed run goes \
             on with the tokens it made of the corpus then ({}); start a new run to train on the changed text",
            corpus.display(),
            out.join("tokens.bin").display()
        );
        return Ok(());
    }
    let differs = if now == started {
        format!(
            "has the size of the run's corpus, {}, but other bytes",
            state.corpus.display()
        )
    } else {
        format!(
            "is {now} bytes, but the run's corpus, {}, was {started}",
            state.corpus.display()
        )
    };
    Err(Error::format(
        corpus,
        format!(
            "{differs}: not the same file, and a resumed run keeps its corpus (leave --corpus out, or start a \
             new run to use this one)"
        ),
    ))
}

/// A finished (or interrupted-and-saved) run: final losses and where it lives.
pub struct RunSummary {
    pub steps: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub tokens_per_sec: f64,
    pub elapsed_s: f64,
}

/// Train and validation token ranges of the token file.
struct Splits {
    tokens: TokenFile,
    train_end: usize,
}

impl Splits {
    fn open(path: &Path, val_fraction: f64, block: usize, corpus: &Path) -> Result<Splits> {
        let tokens = TokenFile::open(path)?;
        let n = tokens.len();
        let train_end = ((n as f64) * (1.0 - val_fraction)) as usize;
        let need = block + 1;
        let val_tokens = n - train_end;
        if train_end < need {
            return Err(Error::format(
                corpus,
                format!(
                    "corpus has {n} tokens: the training split ({train_end}) is too short for blocks of {block} \
                     (it needs at least {need}; lower --block-size or use a longer corpus)"
                ),
            ));
        }
        if val_tokens < need {
            return Err(Error::format(
                corpus,
                format!(
                    "corpus has {n} tokens: the validation split (its last part, --val-fraction {val_fraction}) \
                     has {val_tokens}, too few for blocks of {block} (it needs at least {need}; raise --val-fraction, \
                     lower --block-size or use a longer corpus)"
                ),
            ));
        }
        Ok(Splits { tokens, train_end })
    }

    /// Fills `x` and `y` (`[batch, block]`) with random windows of the given split.
    fn batch(&self, val: bool, rng: &mut Rng, block: usize, x: &mut [u32], y: &mut [i32]) {
        let (lo, hi) = if val {
            (self.train_end, self.tokens.len())
        } else {
            (0, self.train_end)
        };
        let mut buf = vec![0u32; block + 1];
        for (xb, yb) in x.chunks_exact_mut(block).zip(y.chunks_exact_mut(block)) {
            let start = lo + rng.below((hi - lo - block) as u64) as usize;
            self.tokens.read(start, &mut buf);
            xb.copy_from_slice(&buf[..block]);
            yb.iter_mut()
                .zip(&buf[1..])
                .for_each(|(y, &t)| *y = t as i32);
        }
    }
}

/// Settings a resumed run cannot change (they shape the model, the data or the schedule): each flag, with whether
/// the setting is unchanged.
fn fixed_on_resume(saved: &GptTrainConfig, cfg: &GptTrainConfig) -> Vec<(&'static str, bool)> {
    [
        ("--tokenizer", saved.tokenizer == cfg.tokenizer),
        ("--vocab-size", saved.vocab_size == cfg.vocab_size),
        ("--n-layer", saved.n_layer == cfg.n_layer),
        ("--n-head", saved.n_head == cfg.n_head),
        ("--n-embd", saved.n_embd == cfg.n_embd),
        ("--block-size", saved.block_size == cfg.block_size),
        ("--dropout", saved.dropout == cfg.dropout),
        ("--val-fraction", saved.val_fraction == cfg.val_fraction),
        (
            "--lr-decay-iters",
            saved.lr_decay_iters == cfg.lr_decay_iters,
        ),
        ("--seed", saved.seed == cfg.seed),
    ]
    .into()
}

/// The corpus a run in `out` was started on (for `--resume` without `--corpus`).
pub fn saved_corpus(out: &Path) -> Result<PathBuf> {
    let state: TrainerState = hf::read_config(&out.join("trainer_state.json"))?;
    Ok(state.corpus)
}

/// A fresh run's tokenizer (trained on `corpus`) and the corpus tokenized into `out/tokens.bin`. The token file
/// is written under another name first, and the run's first files (through [`commit_fresh`]: the token file and
/// the tokenizer) go into `out` only once both splits are known to hold a block; before that, a failure leaves
/// `out` as it was, an old run replaced by `--overwrite` included.
fn tokenize_fresh(
    corpus: &Path,
    out: &Path,
    cfg: &GptTrainConfig,
    start: Start,
) -> Result<(TextTokenizer, Splits)> {
    let files = [corpus.to_path_buf()];
    let t = if cfg.tokenizer == "char" {
        TextTokenizer::train_char(&files)?
    } else {
        let t = TextTokenizer::train_bpe(&files, cfg.vocab_size)?;
        note_vocab_size(corpus, t.vocab_size(), cfg.vocab_size);
        t
    };
    let partial = out.join(TOKENS_PARTIAL);
    let info = encode_corpus(corpus, &t, &partial)?;
    crate::say!(
        "tokenized {}: {} bytes -> {} tokens (vocab {})",
        corpus.display(),
        info.bytes,
        info.tokens,
        t.vocab_size()
    );
    let fits = Splits::open(&partial, cfg.val_fraction, cfg.block_size, corpus).map(drop);
    let committed = fits.and_then(|()| {
        commit_fresh(out, start)?;
        let bin_path = out.join("tokens.bin");
        std::fs::rename(&partial, &bin_path).map_err(Error::io(&bin_path))
    });
    if let Err(e) = committed {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    t.save_in(out, cfg.block_size)?;
    let splits = Splits::open(
        &out.join("tokens.bin"),
        cfg.val_fraction,
        cfg.block_size,
        corpus,
    )?;
    Ok((t, splits))
}

/// Runs (or resumes) GPT pretraining on `corpus`, writing everything into `out`. A fresh run records the
/// resolved settings in `OUT/train_config.json`; a resumed run may change only the length of the run and
/// the evaluation and optimizer settings, not what shapes the model, the data or the schedule.
pub fn pretrain(
    corpus: &Path,
    out: &Path,
    cfg: &GptTrainConfig,
    start: Start,
) -> Result<RunSummary> {
    cfg.validate()?;
    let decay_from = DecayFrom::of(start == Start::Resume, cfg.lr_decay_iters);
    let mut cfg = cfg.clone();
    if cfg.lr_decay_iters == 0 {
        cfg.lr_decay_iters = cfg.max_iters;
    }
    in_run_dir(out, || run(corpus, out, &cfg, start, decay_from))
}

fn run(
    corpus: &Path,
    out: &Path,
    cfg: &GptTrainConfig,
    start: Start,
    decay_from: DecayFrom,
) -> Result<RunSummary> {
    let resume = start == Start::Resume;
    let _lock = prepare_out(out, start)?;
    // a resumed run reads its token file, not the corpus, whose path it only records
    check_recordable(corpus)?;
    if !resume {
        check_readable(corpus, "--corpus", false)?;
    }
    let tok_path = out.join("tokenizer.json");
    let bin_path = out.join("tokens.bin");
    let state_path = out.join("trainer_state.json");
    let cfg_path = out.join("train_config.json");
    let (tokenizer, state, splits) = if resume {
        let state: TrainerState = hf::read_config(&state_path)?;
        check_resume(out, cfg, fixed_on_resume, cfg.max_iters, state.step)?;
        if !bin_path.exists() {
            return Err(Error::format(
                &bin_path,
                "is missing: a resumed run trains on this file, the corpus as the run tokenized it when it \
                 started; without it, start the run afresh with --overwrite",
            ));
        }
        check_resumed_corpus(corpus, &state, out)?;
        let t = TextTokenizer::from_file(&tok_path)?;
        let splits = Splits::open(&bin_path, cfg.val_fraction, cfg.block_size, corpus)?;
        (t, Some(state), splits)
    } else {
        let (t, splits) = tokenize_fresh(corpus, out, cfg, start)?;
        (t, None, splits)
    };
    let (corpus_bytes, corpus_crc32) = match &state {
        Some(s) => (s.corpus_bytes, s.corpus_crc32),
        None => (
            Some(std::fs::metadata(corpus).map_err(Error::io(corpus))?.len()),
            Some(content_crc(corpus)?),
        ),
    };
    let mut model = if resume {
        Gpt::load(out)?
    } else {
        let mut mc = cfg.model_config(tokenizer.vocab_size());
        mc.eos_token_id = TokenIds::one(tokenizer.eos_id());
        mc.bos_token_id = TokenIds::one(tokenizer.eos_id());
        Gpt::new(mc, cfg.seed)?
    };
    // once the run's data and model are read, so that a run refused for them is not warned of
    let (warmup, decay) = (cfg.warmup_iters, cfg.lr_decay_iters);
    if let Some(warning) = warmup_warning(warmup, decay, decay_from) {
        crate::say!("{warning}");
    }
    if let Some(note) =
        past_schedule_note(cfg.max_iters, (warmup, decay), cfg.min_lr).filter(|_| resume)
    {
        crate::say!("{note}");
    }
    if splits.tokens.vocab_size() as usize != model.config.vocab_size {
        return Err(Error::format(
            &bin_path,
            format!(
                "token file vocabulary {} differs from the model's {}",
                splits.tokens.vocab_size(),
                model.config.vocab_size
            ),
        ));
    }
    hf::write_json(&cfg_path, cfg)?;
    let mut opt = AdamW::new(cfg.adamw()?, model.num_params());
    let mut rng = Rng::new(derive_seed(cfg.seed, &[1]));
    let (mut step, mut tokens_seen, mut elapsed0) = (0usize, 0u64, 0.0f64);
    if let Some(s) = &state {
        restore_optimizer(out, &mut opt, s.step, s.adam_t)?;
        rng = Rng::new(s.rng_state);
        (step, tokens_seen, elapsed0) = (s.step, s.tokens_seen, s.elapsed_s);
        crate::say!("resuming from step {step}");
    }
    let metrics_path = out.join("metrics.jsonl");
    if resume {
        truncate_after_step(&metrics_path, step as u64)?;
    }
    let mut metrics = MetricsWriter::open(&metrics_path, !resume)?;

    let (b, t) = (cfg.batch_size, cfg.block_size);
    let mut shards = GptShards::for_pool(&model, b, t);
    let mut grads = vec![0.0f32; model.num_params()];
    let (mut x, mut y) = (vec![0u32; b * t], vec![0i32; b * t]);
    let tokens_per_step = (b * t * cfg.grad_accum) as u64;
    let bar = progress_bar(cfg.max_iters, step)?;
    if step == 0 {
        let (tl, vl) = estimate_loss(&model, &mut shards, &splits, cfg, &mut x, &mut y)?;
        // lr: the first step's; no tokens trained yet, so no speed
        let lr = cosine_lr(0, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.decay_iters());
        metrics.write(&serde_json::json!({
            "step": 0, "train_loss": tl, "val_loss": vl, "lr": lr, "tokens_per_sec": 0.0, "tokens": 0
        }))?;
        report(
            &bar,
            format!("step 0: train loss {tl:.4}, val loss {vl:.4}"),
        );
    }
    let start = Instant::now();
    let mut window = (Instant::now(), 0u64);
    let mut last = (f64::NAN, f64::NAN, 0.0);
    // the step of the last checkpoint, which a diverging run leaves as it is
    let mut saved = state.as_ref().map(|s| s.step);
    while step < cfg.max_iters {
        let lr = cosine_lr(
            step,
            cfg.lr,
            cfg.min_lr,
            cfg.warmup_iters,
            cfg.decay_iters(),
        );
        grads.fill(0.0);
        let mut loss = 0.0;
        for micro in 0..cfg.grad_accum {
            splits.batch(false, &mut rng, t, &mut x, &mut y);
            let seed = derive_seed(cfg.seed, &[2, step as u64, micro as u64]);
            let scale = 1.0 / (b * t * cfg.grad_accum) as f32;
            loss += shards.forward_backward(&model, &x, &y, &mut grads, scale, seed)?
                / cfg.grad_accum as f64;
        }
        let way_on = || pretrain_way_on(saved, step);
        ensure_finite("the training loss", loss, step, way_on)?;
        let gnorm = clip_grad_norm(&mut grads, cfg.grad_clip);
        ensure_finite("the gradient norm", gnorm, step, way_on)?;
        let layout = &model.layout;
        opt.step(&mut model.params, &grads, layout, lr);
        step += 1;
        tokens_seen += tokens_per_step;
        window.1 += tokens_per_step;
        let tps = window.1 as f64 / window.0.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(step as u64);
        bar.set_message(format!("loss {loss:.4} lr {lr:.2e} {tps:.0} tok/s"));
        if step % cfg.eval_interval == 0 || step == cfg.max_iters {
            let (tl, vl) = estimate_loss(&model, &mut shards, &splits, cfg, &mut x, &mut y)?;
            let way_on = || pretrain_way_on(saved, step);
            ensure_finite("the validation loss", vl, step, way_on)?;
            ensure_finite("the evaluated training loss", tl, step, way_on)?;
            ensure_checkpointable(&model.params, &opt, step, way_on)?;
            let elapsed = elapsed0 + start.elapsed().as_secs_f64();
            metrics.write(&serde_json::json!({
                "step": step, "train_loss": tl, "val_loss": vl, "lr": lr, "tokens_per_sec": tps,
                "grad_norm": gnorm, "tokens": tokens_seen, "elapsed_s": elapsed,
            }))?;
            report(
                &bar,
                format!("step {step}: train loss {tl:.4}, val loss {vl:.4}, {tps:.0} tok/s"),
            );
            let state = TrainerState {
                step,
                rng_state: rng.state(),
                adam_t: opt.t,
                corpus: absolute(corpus),
                corpus_bytes,
                corpus_crc32,
                tokens_seen,
                elapsed_s: elapsed,
            };
            save_checkpoint(out, step, |dir, meta| model.save(dir, meta), &opt, &state)?;
            saved = Some(step);
            plot_jsonl(
                &metrics_path,
                &out.join("loss.png"),
                "step",
                &["train_loss", "val_loss"],
                "GPT pretraining",
                "cross-entropy loss (nats/token)",
            )?;
            last = (tl, vl, tps);
            window = (Instant::now(), 0);
        }
    }
    bar.finish_and_clear();
    Ok(RunSummary {
        steps: step,
        train_loss: last.0,
        val_loss: last.1,
        tokens_per_sec: last.2,
        elapsed_s: elapsed0 + start.elapsed().as_secs_f64(),
    })
}

/// Mean loss over `eval_iters` batches of each split; the batches are the same at every evaluation.
fn estimate_loss(
    model: &Gpt,
    shards: &mut GptShards,
    splits: &Splits,
    cfg: &GptTrainConfig,
    x: &mut [u32],
    y: &mut [i32],
) -> Result<(f64, f64)> {
    let mut out = [0.0; 2];
    for (i, val) in [false, true].into_iter().enumerate() {
        let mut rng = Rng::new(derive_seed(cfg.seed, &[3, i as u64]));
        for _ in 0..cfg.eval_iters {
            splits.batch(val, &mut rng, cfg.block_size, x, y);
            out[i] += shards.loss(model, x, y)? / cfg.eval_iters as f64;
        }
    }
    Ok((out[0], out[1]))
}

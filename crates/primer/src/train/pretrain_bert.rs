//! `primer pretrain bert`: masked-LM (+ next-sentence) pretraining of a BERT encoder.
//!
//! The corpus is documents separated by blank lines, one sentence (or paragraph) per line. It is tokenized once
//! into segments; the last `val_fraction` of the documents (or of the lines, for a single document) is the
//! validation split, unless a separate `val_corpus` is given. Every step draws fresh sentence pairs (or packed
//! sentences with `nsp = false`) and fresh masks from a seed derived from the step number, so a resumed run sees
//! exactly the batches an uninterrupted one would. The validation batches are drawn once from a fixed seed, so
//! evaluations compare.
//!
//! Every `eval_interval` steps (and at the end) the run appends to `OUT/metrics.jsonl` the training losses
//! averaged since the last evaluation (`loss`, `mlm_loss`, `nsp_loss`, `mlm_accuracy`, `nsp_accuracy`) and the
//! validation ones (`val_…`), redraws `OUT/loss.png` and writes a checkpoint: `config.json` +
//! `model.safetensors` (Hugging Face `BertForPreTraining`, or `BertForMaskedLM` without NSP) and the trainer
//! state `--resume` continues from.

use crate::data::bert_batches::{BertBatch, BertBatcher};
use crate::data::masking::{MaskConfig, Masker};
use crate::data::segments::SegmentCorpus;
use crate::engine::adamw::{clip_grad_norm, AdamW, AdamWConfig};
use crate::engine::rng::{derive_seed, Rng};
use crate::engine::xent::IGNORE;
use crate::error::{Error, Result};
use crate::hf;
use crate::models::bert::{Bert, BertConfig, BertInput, Heads, PretrainStats};
use crate::progress::{progress_bar, report};
use crate::tokenize::TextTokenizer;
use crate::train::checkpoint::{
    absolute, adamw_config, check_resume, commit_fresh, ensure_checkpointable, ensure_finite,
    in_run_dir, note_vocab_size, prepare_out, pretrain_way_on, restore_optimizer, save_checkpoint,
    Start,
};
use crate::train::data_parallel::BertShards;
use crate::train::inputs::{
    check_readable, check_recordable, check_unchanged, content_crc, same_input,
};
use crate::train::memory::{check_fits, lower_bound, product};
use crate::train::metrics::{truncate_after_step, MetricsWriter};
use crate::train::schedule::{cosine_lr, past_schedule_note, warmup_warning, DecayFrom};
use crate::viz::plot::plot_jsonl;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything that defines a BERT pretraining run. Read from `--config FILE.toml` (same field names) and
/// overridden by command-line flags; saved as `OUT/train_config.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BertTrainConfig {
    /// A tokenizer to reuse (a `tokenizer.json`, a BERT `vocab.txt` or a model directory, read by
    /// [`TextTokenizer::from_path`]); when absent a WordPiece vocabulary is trained on the corpus.
    pub tokenizer: Option<PathBuf>,
    /// Vocabulary size of a trained WordPiece tokenizer.
    pub vocab_size: usize,
    /// Lowercase (and strip accents) in a trained WordPiece tokenizer.
    pub lowercase: bool,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Feed-forward width; `0` means 4·n_embd.
    pub intermediate_size: usize,
    /// Tokens per row, [CLS] and [SEP]s included (also the model's max_position_embeddings).
    pub block_size: usize,
    /// Hidden and attention dropout.
    pub dropout: f32,
    /// Next-sentence prediction on sentence pairs; false packs whole sentences (RoBERTa style).
    pub nsp: bool,
    pub mlm_probability: f32,
    pub mask_replace: f32,
    pub random_replace: f32,
    pub whole_word_mask: bool,
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
    /// Part of the corpus held out for validation (ignored with `val_corpus`).
    pub val_fraction: f64,
    /// A separate validation file (same format); then the whole corpus trains.
    pub val_corpus: Option<PathBuf>,
    pub seed: u64,
}

impl Default for BertTrainConfig {
    fn default() -> Self {
        let mask = MaskConfig::default();
        BertTrainConfig {
            tokenizer: None,
            vocab_size: 8192,
            lowercase: true,
            n_layer: 4,
            n_head: 4,
            n_embd: 256,
            intermediate_size: 0,
            block_size: 128,
            dropout: 0.1,
            nsp: true,
            mlm_probability: mask.probability,
            mask_replace: mask.mask_replace,
            random_replace: mask.random_replace,
            whole_word_mask: mask.whole_word,
            batch_size: 16,
            grad_accum: 1,
            max_iters: 2000,
            lr: 5e-4,
            min_lr: 5e-5,
            warmup_iters: 100,
            lr_decay_iters: 0,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            grad_clip: 1.0,
            eval_interval: 250,
            eval_iters: 10,
            val_fraction: 0.05,
            val_corpus: None,
            seed: 1337,
        }
    }
}

impl BertTrainConfig {
    /// Reads a TOML file of `BertTrainConfig` fields (unknown fields are errors naming the file).
    pub fn from_toml(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        toml::from_str(&text).map_err(|e| Error::format(path, e.to_string()))
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        for (flag, v) in [
            ("--batch-size", self.batch_size),
            ("--grad-accum", self.grad_accum),
            ("--max-iters", self.max_iters),
        ] {
            if v == 0 {
                return bad(&format!("{flag} must be positive"));
            }
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
        // [CLS] A [SEP] B [SEP] needs a token of each sentence; a packed row [CLS] … [SEP] one token
        let least = if self.nsp { 5 } else { 3 };
        if self.block_size < least {
            return Err(Error::Config(format!(
                "--block-size {} is too short: a row needs at least {least} tokens",
                self.block_size
            )));
        }
        self.mask_config().validate()?;
        self.model_config(self.vocab_size.max(8))
            .validate()
            .map_err(|e| {
                Error::Config(format!(
                    "{e} (config.json's names: --n-layer sets num_hidden_layers, --n-head num_attention_heads, \
                     --n-embd hidden_size, --intermediate-size intermediate_size, --block-size \
                     max_position_embeddings)"
                ))
            })?;
        self.adamw()?;
        self.check_memory()
    }

    /// Refuses sizes whose weights, activations and drawn batches could not fit in memory, before anything is
    /// allocated.
    fn check_memory(&self) -> Result<()> {
        let m = self.model_config(self.vocab_size.max(8));
        let (c, i, l) = (m.hidden_size, m.intermediate_size, m.num_hidden_layers);
        let (b, t) = (self.batch_size, self.block_size);
        // word and position embeddings; per layer the attention's 4·C² and the feed-forward's 2·C·I weights
        let layer = c.saturating_mul(4).saturating_add(i.saturating_mul(2));
        let params =
            product(&[m.vocab_size.saturating_add(t), c]).saturating_add(product(&[l, layer, c]));
        // per token and layer at least 4·C + I activations are kept for backward; every micro-batch of a step is
        // drawn before the step (ids, segments, labels)
        let per_token = c.saturating_mul(4).saturating_add(i);
        let acts =
            product(&[b, t, l, per_token]).saturating_add(product(&[self.grad_accum, b, t, 3]));
        check_fits(
            lower_bound(params, acts),
            "--n-embd, --intermediate-size, --n-layer, --vocab-size, --batch-size, --block-size or --grad-accum",
        )
    }

    fn adamw(&self) -> Result<AdamWConfig> {
        adamw_config(
            (self.lr, self.min_lr),
            (self.beta1, self.beta2),
            self.weight_decay,
            self.grad_clip,
        )
    }

    fn mask_config(&self) -> MaskConfig {
        MaskConfig {
            probability: self.mlm_probability,
            mask_replace: self.mask_replace,
            random_replace: self.random_replace,
            whole_word: self.whole_word_mask,
        }
    }

    fn model_config(&self, vocab_size: usize) -> BertConfig {
        let mut c = BertConfig::new(
            vocab_size,
            self.block_size,
            self.n_layer,
            self.n_head,
            self.n_embd,
        );
        if self.intermediate_size > 0 {
            c.intermediate_size = self.intermediate_size;
        }
        c.hidden_dropout_prob = self.dropout;
        c.attention_probs_dropout_prob = self.dropout;
        c
    }

    fn heads(&self) -> Heads {
        if self.nsp {
            Heads::PRETRAINING
        } else {
            Heads::MASKED_LM
        }
    }
}

/// Settings a resumed run cannot change (they shape the model, the data, the masks or the schedule): each flag,
/// with whether the setting is unchanged. The batch size and accumulation may change, as for GPT: every step
/// draws its batches from a seed derived from the step number alone.
fn fixed_on_resume(saved: &BertTrainConfig, cfg: &BertTrainConfig) -> Vec<(&'static str, bool)> {
    // a file is the same when the paths name it, however spelled (or when the saved one has moved)
    let same_file = |a: &Option<PathBuf>, b: &Option<PathBuf>| match (a, b) {
        (Some(a), Some(b)) => same_input(a, b),
        (a, b) => a == b,
    };
    [
        ("--tokenizer", same_file(&saved.tokenizer, &cfg.tokenizer)),
        ("--vocab-size", saved.vocab_size == cfg.vocab_size),
        ("--lowercase", saved.lowercase == cfg.lowercase),
        ("--n-layer", saved.n_layer == cfg.n_layer),
        ("--n-head", saved.n_head == cfg.n_head),
        ("--n-embd", saved.n_embd == cfg.n_embd),
        (
            "--intermediate-size",
            saved.intermediate_size == cfg.intermediate_size,
        ),
        ("--block-size", saved.block_size == cfg.block_size),
        ("--dropout", saved.dropout == cfg.dropout),
        ("--no-nsp", saved.nsp == cfg.nsp),
        (
            "--mlm-probability",
            saved.mlm_probability == cfg.mlm_probability,
        ),
        ("--mask-replace", saved.mask_replace == cfg.mask_replace),
        (
            "--random-replace",
            saved.random_replace == cfg.random_replace,
        ),
        (
            "--whole-word-mask",
            saved.whole_word_mask == cfg.whole_word_mask,
        ),
        ("--val-fraction", saved.val_fraction == cfg.val_fraction),
        (
            "--val-corpus",
            same_file(&saved.val_corpus, &cfg.val_corpus),
        ),
        (
            "--lr-decay-iters",
            saved.lr_decay_iters == cfg.lr_decay_iters,
        ),
        ("--seed", saved.seed == cfg.seed),
    ]
    .into()
}

/// What a resumed run needs beyond the model and optimizer moments (the batches derive from the step).
#[derive(Debug, Serialize, Deserialize)]
struct TrainerState {
    step: usize,
    adam_t: u64,
    corpus: PathBuf,
    /// The corpus's size when the run started, to refuse resuming on a corpus that changed since (absent in
    /// runs saved before it was recorded).
    #[serde(default)]
    corpus_bytes: Option<u64>,
    /// The same for `--val-corpus`.
    #[serde(default)]
    val_corpus_bytes: Option<u64>,
    /// The corpus's CRC-32 when the run started, to tell it from another text of the same size (absent in runs
    /// saved before it was recorded).
    #[serde(default)]
    corpus_crc32: Option<u32>,
    /// The same for `--val-corpus`.
    #[serde(default)]
    val_corpus_crc32: Option<u32>,
    tokens_seen: u64,
    elapsed_s: f64,
}

/// The corpus a run in `out` was started on (for `--resume` without `--corpus`).
pub fn saved_corpus(out: &Path) -> Result<PathBuf> {
    let state: TrainerState = hf::read_config(&out.join("trainer_state.json"))?;
    Ok(state.corpus)
}

/// The end of a run: the last validation numbers and the speed.
pub struct BertRunSummary {
    pub steps: usize,
    pub val: PretrainStats,
    pub tokens_per_sec: f64,
    pub elapsed_s: f64,
}

/// Runs (or resumes) BERT pretraining on `corpus`, writing everything into `out`.
pub fn pretrain(
    corpus: &Path,
    out: &Path,
    cfg: &BertTrainConfig,
    start: Start,
) -> Result<BertRunSummary> {
    cfg.validate()?;
    let decay_from = DecayFrom::of(start == Start::Resume, cfg.lr_decay_iters);
    let mut cfg = cfg.clone();
    if cfg.lr_decay_iters == 0 {
        cfg.lr_decay_iters = cfg.max_iters;
    }
    // recorded absolute, as the corpus is, so that the run resumes from any working directory
    cfg.val_corpus = cfg.val_corpus.as_deref().map(absolute);
    cfg.tokenizer = cfg.tokenizer.as_deref().map(absolute);
    in_run_dir(out, || run(corpus, out, &cfg, start, decay_from))
}

fn run(
    corpus: &Path,
    out: &Path,
    cfg: &BertTrainConfig,
    start: Start,
    decay_from: DecayFrom,
) -> Result<BertRunSummary> {
    let resume = start == Start::Resume;
    let _lock = prepare_out(out, start)?;
    // the corpus (read again on resume) and the files the settings name
    check_recordable(corpus)?;
    check_readable(corpus, "--corpus", resume)?;
    if let Some(val) = &cfg.val_corpus {
        check_recordable(val)?;
        check_readable(val, "--val-corpus", resume)?;
    }
    if let Some(tokenizer) = &cfg.tokenizer {
        check_recordable(tokenizer)?;
    }
    let tok_path = out.join("tokenizer.json");
    let state_path = out.join("trainer_state.json");
    let cfg_path = out.join("train_config.json");
    let size = |path: &Path| Ok(std::fs::metadata(path).map_err(Error::io(path))?.len());
    let corpus_bytes = size(corpus)?;
    let val_corpus_bytes = cfg.val_corpus.as_deref().map(size).transpose()?;
    let (tok, state) = if resume {
        let state: TrainerState = hf::read_config(&state_path)?;
        check_resume(out, cfg, fixed_on_resume, cfg.max_iters, state.step)?;
        let started = (state.corpus_bytes, state.corpus_crc32);
        check_unchanged(corpus, "corpus", corpus_bytes, started, out)?;
        if let (Some(val), Some(now)) = (&cfg.val_corpus, val_corpus_bytes) {
            let started = (state.val_corpus_bytes, state.val_corpus_crc32);
            check_unchanged(val, "validation corpus", now, started, out)?;
        }
        (TextTokenizer::from_file(&tok_path)?, Some(state))
    } else {
        let t = match &cfg.tokenizer {
            Some(path) => {
                let mut t = TextTokenizer::from_path(path)?;
                if t.frame_for_bert()? {
                    crate::say!(
                        "note: {} does not frame texts as [CLS] A [SEP] B [SEP]; the run's tokenizer.json does, \
                         as primer frames a BERT's inputs, so that transformers' tokenizer gives the same ids",
                        path.display()
                    );
                }
                t
            }
            None => {
                let files = [corpus.to_path_buf()];
                let t = TextTokenizer::train_wordpiece(&files, cfg.vocab_size, cfg.lowercase)?;
                note_vocab_size(corpus, t.vocab_size(), cfg.vocab_size);
                t
            }
        };
        (t, None)
    };
    // the fingerprints recorded at each checkpoint: the run's own, or (for a run saved before they were
    // recorded, whose files' sizes have just been found unchanged) the files' now
    let crc_of =
        |path: &Path, recorded: Option<u32>| recorded.map_or_else(|| content_crc(path), Ok);
    let corpus_crc32 = crc_of(corpus, state.as_ref().and_then(|s| s.corpus_crc32))?;
    let val_corpus_crc32 = cfg
        .val_corpus
        .as_deref()
        .map(|val| crc_of(val, state.as_ref().and_then(|s| s.val_corpus_crc32)))
        .transpose()?;
    // what is wrong with a tokenizer is named by its file
    let specials = tok.bert_specials()?;
    let masker = Masker::for_tokenizer(&tok, cfg.mask_config())?;
    let batcher = BertBatcher::new(specials, masker, cfg.block_size, cfg.nsp)?;
    let segments = SegmentCorpus::from_file(corpus, &tok)?;
    crate::say!(
        "{}: {} documents, {} lines, {} tokens (vocab {})",
        corpus.display(),
        segments.n_documents(),
        segments.n_segments(),
        segments.n_tokens(),
        tok.vocab_size()
    );
    // a resumed run keeps its --no-nsp, so only a fresh one is pointed to it
    let one_line = segments.n_documents() > 1 && segments.n_documents() == segments.n_segments();
    if cfg.nsp && one_line && !resume {
        crate::say!(
            "note: every document of {} is one line, so no pair has a true next segment and next-sentence \
             prediction learns only NotNext: pass --no-nsp to pack whole lines instead (RoBERTa style)",
            corpus.display()
        );
    }
    let (train, val) = match &cfg.val_corpus {
        Some(path) => (segments, SegmentCorpus::from_file(path, &tok)?),
        None => segments.split_validation(cfg.val_fraction)?,
    };
    let mut model = if resume {
        Bert::load(out)?
    } else {
        let mut mc = cfg.model_config(tok.vocab_size());
        mc.pad_token_id = specials.pad;
        Bert::new(mc, cfg.heads(), cfg.seed)?
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
    if model.config.vocab_size != tok.vocab_size() {
        return Err(Error::format(
            &out.join("config.json"),
            format!(
                "vocab_size {} differs from the tokenizer's {}",
                model.config.vocab_size,
                tok.vocab_size()
            ),
        ));
    }
    // a fresh run writes its first file only now, once the corpus and the settings have passed every check
    if !resume {
        commit_fresh(out, start)?;
        tok.save_in(out, model.config.max_position_embeddings)?;
    }
    hf::write_json(&cfg_path, cfg)?;
    let mut opt = AdamW::new(cfg.adamw()?, model.num_params());
    let (mut step, mut tokens_seen, mut elapsed0) = (0usize, 0u64, 0.0f64);
    if let Some(s) = &state {
        restore_optimizer(out, &mut opt, s.step, s.adam_t)?;
        (step, tokens_seen, elapsed0) = (s.step, s.tokens_seen, s.elapsed_s);
        crate::say!("resuming from step {step}");
    }
    let metrics_path = out.join("metrics.jsonl");
    if resume {
        truncate_after_step(&metrics_path, step as u64)?;
    }
    let mut metrics = MetricsWriter::open(&metrics_path, !resume)?;

    let (b, t) = (cfg.batch_size, cfg.block_size);
    let val_batches = batcher.fixed_batches(&val, cfg.eval_iters, b, derive_seed(cfg.seed, &[3]));
    note_one_class(&val_batches);
    let mut shards = BertShards::for_pool(&model, b, t);
    let mut grads = vec![0.0f32; model.num_params()];
    let bar = progress_bar(cfg.max_iters, step)?;
    if step == 0 {
        let v = evaluate(&model, &mut shards, &val_batches)?;
        metrics.write(&stats_record(0, None, &v))?;
        report(&bar, format!("step 0: {}", describe(&v)));
    }
    let start = Instant::now();
    let mut window = (Instant::now(), 0u64, PretrainStats::default());
    let mut last = (PretrainStats::default(), 0.0);
    // the step of the last checkpoint, which a diverging run leaves as it is
    let mut saved = state.as_ref().map(|s| s.step);
    while step < cfg.max_iters {
        let lr = cosine_lr(
            step,
            cfg.lr,
            cfg.min_lr,
            cfg.warmup_iters,
            cfg.lr_decay_iters,
        );
        let mut rng = Rng::new(derive_seed(cfg.seed, &[2, step as u64]));
        let batches: Vec<BertBatch> = (0..cfg.grad_accum)
            .map(|_| batcher.draw(&train, b, &mut rng))
            .collect();
        // mean over every label of the step, as one big batch would give
        let count = |f: fn(&BertBatch) -> &[i32]| {
            batches
                .iter()
                .map(|x| f(x).iter().filter(|&&l| l != IGNORE).count())
                .sum::<usize>()
                .max(1) as f32
        };
        let scales = (
            1.0 / count(|x| &x.mlm_labels),
            1.0 / count(|x| &x.nsp_labels),
        );
        grads.fill(0.0);
        let mut st = PretrainStats::default();
        for (micro, x) in batches.iter().enumerate() {
            let seed = derive_seed(cfg.seed, &[4, step as u64, micro as u64]);
            let labels = (&x.mlm_labels[..], &x.nsp_labels[..]);
            let s = shards.pretrain_forward_backward(
                &model,
                &input(x),
                labels,
                &mut grads,
                scales,
                seed,
            )?;
            st.add(&s);
        }
        let way_on = || pretrain_way_on(saved, step);
        ensure_finite("the training loss", st.total_loss(), step, way_on)?;
        let gnorm = clip_grad_norm(&mut grads, cfg.grad_clip);
        ensure_finite("the gradient norm", gnorm, step, way_on)?;
        opt.step(&mut model.params, &grads, &model.layout, lr);
        step += 1;
        let step_tokens: u64 = batches
            .iter()
            .map(|x| x.lens.iter().sum::<usize>() as u64)
            .sum();
        tokens_seen += step_tokens;
        window.1 += step_tokens;
        window.2.add(&st);
        let tps = window.1 as f64 / window.0.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(step as u64);
        bar.set_message(format!(
            "mlm {:.3} nsp {:.3} lr {lr:.2e} {tps:.0} tok/s",
            st.mlm_loss(),
            st.nsp_loss()
        ));
        if step % cfg.eval_interval == 0 || step == cfg.max_iters {
            let v = evaluate(&model, &mut shards, &val_batches)?;
            let way_on = || pretrain_way_on(saved, step);
            ensure_finite("the validation loss", v.total_loss(), step, way_on)?;
            ensure_checkpointable(&model.params, &opt, step, way_on)?;
            let elapsed = elapsed0 + start.elapsed().as_secs_f64();
            let mut rec = stats_record(step, Some(&window.2), &v);
            rec["lr"] = serde_json::json!(lr);
            rec["tokens_per_sec"] = serde_json::json!(tps);
            rec["grad_norm"] = serde_json::json!(gnorm);
            rec["tokens"] = serde_json::json!(tokens_seen);
            rec["elapsed_s"] = serde_json::json!(elapsed);
            metrics.write(&rec)?;
            report(
                &bar,
                format!("step {step}: {}, {tps:.0} tok/s", describe(&v)),
            );
            let state = TrainerState {
                step,
                adam_t: opt.t,
                corpus: absolute(corpus),
                corpus_bytes: Some(corpus_bytes),
                val_corpus_bytes,
                corpus_crc32: Some(corpus_crc32),
                val_corpus_crc32,
                tokens_seen,
                elapsed_s: elapsed,
            };
            save_checkpoint(out, step, |dir, meta| model.save(dir, meta), &opt, &state)?;
            saved = Some(step);
            let keys: &[&str] = if cfg.nsp {
                &["mlm_loss", "val_mlm_loss", "nsp_loss", "val_nsp_loss"]
            } else {
                &["mlm_loss", "val_mlm_loss"]
            };
            plot_jsonl(
                &metrics_path,
                &out.join("loss.png"),
                "step",
                keys,
                "BERT pretraining",
                "cross-entropy loss",
            )?;
            last = (v, tps);
            window = (Instant::now(), 0, PretrainStats::default());
        }
    }
    bar.finish_and_clear();
    Ok(BertRunSummary {
        steps: step,
        val: last.0,
        tokens_per_sec: last.1,
        elapsed_s: elapsed0 + start.elapsed().as_secs_f64(),
    })
}

fn input(x: &BertBatch) -> BertInput<'_> {
    BertInput {
        batch: x.batch,
        seq: x.seq,
        ids: &x.ids,
        type_ids: &x.type_ids,
        lens: &x.lens,
    }
}

/// Validation losses and accuracies summed over the fixed batches.
fn evaluate(model: &Bert, shards: &mut BertShards, batches: &[BertBatch]) -> Result<PretrainStats> {
    let mut st = PretrainStats::default();
    for x in batches {
        let labels = (&x.mlm_labels[..], &x.nsp_labels[..]);
        st.add(&shards.pretrain_loss(model, &input(x), labels)?);
    }
    Ok(st)
}

/// Says so when every validation pair has the same next-sentence label (a validation corpus of one-line
/// documents has no true next segment, so all its pairs are NotNext): the NSP accuracy then scores one class.
fn note_one_class(batches: &[BertBatch]) {
    let mut labels = batches
        .iter()
        .flat_map(|b| b.nsp_labels.iter().copied())
        .filter(|&l| l != IGNORE);
    let Some(first) = labels.next() else { return };
    if labels.all(|l| l == first) {
        let (class, why) = if first == 0 {
            ("IsNext", "")
        } else {
            (
                "NotNext",
                " (a validation corpus of one-line documents has no true next segment)",
            )
        };
        crate::say!(
            "note: every validation pair is {class}, so next-sentence accuracy there scores that one class{why}"
        );
    }
}

/// The validation numbers as one line: masked-LM loss and accuracy, and next-sentence loss and accuracy when
/// the run predicts it.
pub fn describe(v: &PretrainStats) -> String {
    let mut s = if v.mlm_count == 0 {
        "no token was masked in the validation batches (raise --eval-iters or --mlm-probability)"
            .to_string()
    } else {
        format!(
            "val mlm loss {:.4}, mlm accuracy {:.3}",
            v.mlm_loss(),
            v.mlm_accuracy()
        )
    };
    if v.nsp_count > 0 {
        s += &format!(
            ", nsp loss {:.4}, nsp accuracy {:.3}",
            v.nsp_loss(),
            v.nsp_accuracy()
        );
    }
    s
}

/// One metrics line: training averages since the last evaluation (when there were steps) and validation.
fn stats_record(
    step: usize,
    train: Option<&PretrainStats>,
    val: &PretrainStats,
) -> serde_json::Value {
    let mut rec = serde_json::json!({ "step": step });
    let mut put = |prefix: &str, s: &PretrainStats| {
        rec[format!("{prefix}mlm_loss")] = serde_json::json!(s.mlm_loss());
        rec[format!("{prefix}mlm_accuracy")] = serde_json::json!(s.mlm_accuracy());
        if s.nsp_count > 0 {
            rec[format!("{prefix}loss")] = serde_json::json!(s.total_loss());
            rec[format!("{prefix}nsp_loss")] = serde_json::json!(s.nsp_loss());
            rec[format!("{prefix}nsp_accuracy")] = serde_json::json!(s.nsp_accuracy());
        } else {
            rec[format!("{prefix}loss")] = serde_json::json!(s.mlm_loss());
        }
    };
    if let Some(t) = train {
        put("", t);
    }
    put("val_", val);
    rec
}

//! The fine-tuning loop shared by every task: epochs over shuffled batches (grouped by length, padded to the
//! longest in the batch), AdamW with linear warm-up then linear decay to zero, no weight decay on biases and
//! LayerNorm, dropout in training only, an evaluation on the dev split after each epoch, the best epoch's model
//! kept in OUT and early stopping on the task metric.
//!
//! OUT ends up with `config.json` (label names in `id2label`), `model.safetensors`, `tokenizer.json`,
//! `task.json`, `metrics.jsonl`, `curves.png` and, last, `eval.json`; the best model's files are replaced
//! as one unit, as a checkpoint is. `OUT/checkpoint/` holds the latest epoch's model and optimizer so `--resume`
//! continues a stopped run. Nothing is written before all data has been read and checked.

use super::data::{labels_from_train, prepare, Gold, Prepared, Split, TaskInfo};
use super::evaluate::{main_metric, run, run_telling, score};
use super::features::Feature;
use super::load::{load_backbone, load_finetuned, save_finetuned};
use super::model::{HeadSizes, Task, TaskModel, Workspace};
use crate::engine::adamw::{clip_grad_norm, AdamW};
use crate::engine::rng::{derive_seed, Rng};
use crate::error::{Error, Result};
use crate::hf;
use crate::progress::{progress_bar, report};
use crate::tasks::datasets::{Columns, JOINT_FILES};
use crate::train::checkpoint::{
    adamw_config, ensure_all_finite, ensure_checkpointable, ensure_finite, in_run_dir, refuse_file,
    remove_all, restore_optimizer, save_checkpoint, Start,
};
use crate::train::inputs::crc_update;
use crate::train::metrics::{truncate_after_step, MetricsWriter};
use crate::train::schedule::linear_lr;
use crate::train::{journal, run_dir, same_input};
use crate::viz::plot::plot_jsonl;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Settings of a fine-tuning run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FinetuneConfig {
    pub task: Task,
    pub epochs: usize,
    pub lr: f32,
    pub batch_size: usize,
    pub max_len: usize,
    pub seed: u64,
    /// Use only the first N training examples.
    pub train_limit: Option<usize>,
    /// Fraction of the steps spent warming the learning rate up.
    pub warmup_ratio: f32,
    pub weight_decay: f32,
    pub grad_clip: f32,
    /// Stop after this many epochs without a better dev metric (0 = never).
    pub patience: usize,
    /// Start from the model's shape and tokenizer with fresh weights.
    pub from_scratch: bool,
    /// Weight of the intent loss (joint task).
    pub alpha: f32,
    pub doc_stride: usize,
    pub max_query_len: usize,
    pub max_answer_len: usize,
    pub text_column: String,
    pub pair_column: Option<String>,
    pub label_column: String,
    /// Batches of similar lengths (less padding); the batch order is still shuffled.
    pub group_by_length: bool,
    /// End this invocation once this many epochs are done (the schedule still follows `epochs`); `--resume`
    /// continues. Not a setting of the run: it may differ between invocations.
    #[serde(skip)]
    pub stop_after_epochs: Option<usize>,
    /// Whether `max_len` was asked for (`--max-len`): a default longer than the model's positions is cut to
    /// them, an asked-for one is refused. Not a setting of the run either.
    #[serde(skip)]
    pub max_len_given: bool,
}

impl FinetuneConfig {
    /// Defaults for `task`.
    pub fn new(task: Task) -> FinetuneConfig {
        FinetuneConfig {
            task,
            epochs: 3,
            lr: 5e-5,
            batch_size: 32,
            max_len: if task == Task::Qa { 384 } else { 128 },
            seed: 0,
            train_limit: None,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            grad_clip: 1.0,
            patience: 2,
            from_scratch: false,
            alpha: 0.5,
            doc_stride: 128,
            max_query_len: 64,
            max_answer_len: 30,
            text_column: "sentence".into(),
            pair_column: None,
            label_column: "label".into(),
            group_by_length: true,
            stop_after_epochs: None,
            max_len_given: false,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.epochs == 0 || self.batch_size == 0 {
            return bad("--epochs and --batch-size must be positive");
        }
        if self.max_len < 8 {
            return bad("--max-len must be at least 8");
        }
        if self.train_limit == Some(0) {
            return bad("--train-limit must be positive");
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad("--warmup-ratio must be in [0, 1)");
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return bad("--alpha must be in [0, 1]");
        }
        if self.max_answer_len == 0 || self.max_query_len == 0 {
            return bad("--max-answer-len and --max-query-len must be positive");
        }
        if self.stop_after_epochs == Some(0) {
            return bad("--stop-after-epochs must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("--lr must be positive and finite");
        }
        adamw_config(
            (self.lr, 0.0),
            (0.9, 0.999),
            self.weight_decay,
            self.grad_clip,
        )
        .map(|_| ())
    }

    fn columns(&self) -> Columns {
        Columns {
            text: self.text_column.clone(),
            pair: self.pair_column.clone(),
            label: self.label_column.clone(),
        }
    }
}

/// Where a run is (`OUT/checkpoint/trainer_state.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TrainerState {
    epoch: usize,
    step: usize,
    adam_t: u64,
    best: Option<f64>,
    best_epoch: usize,
    /// The dev scores of the best epoch.
    #[serde(default)]
    best_scores: BTreeMap<String, f64>,
    bad_epochs: usize,
    elapsed_s: f64,
    tokens: u64,
    /// What the run trains on and picks its best epoch by, so that a resumed run refuses other data (absent
    /// from runs of earlier versions, which are resumed unchecked).
    #[serde(default)]
    data: Option<[SplitRecord; 2]>,
    /// The test split evaluated at the end, if any, so that `--resume` alone evaluates it too.
    #[serde(default)]
    test: Option<SplitRecord>,
    /// The model the run started from (absent from runs of earlier versions).
    #[serde(default)]
    model: Option<PathBuf>,
}

/// A split as a run recorded it: where it was, its size and checksum, and the part of it used.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct SplitRecord {
    path: PathBuf,
    /// Bytes of the file, or of a JointBERT split directory's files (absent for such a directory in runs of
    /// earlier versions).
    bytes: Option<u64>,
    /// CRC-32 of those bytes (absent from runs of earlier versions).
    #[serde(default)]
    crc32: Option<u32>,
    joint_split: Option<String>,
    articles: Option<Range<usize>>,
}

impl SplitRecord {
    fn of(split: &Split) -> SplitRecord {
        let path = &split.path;
        let (bytes, crc32) = fingerprint(split).unzip();
        SplitRecord {
            path: path.canonicalize().unwrap_or_else(|_| path.clone()),
            bytes,
            crc32,
            joint_split: split.joint_split.clone(),
            articles: split.articles.clone(),
        }
    }

    /// The split to read again.
    fn split(&self) -> Split {
        Split {
            path: self.path.clone(),
            joint_split: self.joint_split.clone(),
            articles: self.articles.clone(),
        }
    }

    /// Refuses `given` (the data of `flag`) unless it holds the data recorded here: the same bytes (by size and
    /// checksum, wherever the file is now) and the same part of them; else gives `given`'s record. A record of an
    /// earlier version, without a checksum, takes the same file by any path (or any path when the recorded one
    /// has moved) of the same size.
    fn check(&self, given: &Split, flag: &str, out: &Path) -> Result<SplitRecord> {
        let now = SplitRecord::of(given);
        let was = format!(
            "the run in {} used {}{}{}",
            out.display(),
            location(&self.path, self.joint_split.as_deref()).display(),
            self.bytes
                .map(|b| format!(" ({b} bytes)"))
                .unwrap_or_default(),
            self.articles
                .as_ref()
                .map(|r| format!(", articles {}:{}", r.start, r.end))
                .unwrap_or_default()
        );
        let where_now = location(&given.path, given.joint_split.as_deref());
        let Some(bytes) = now.bytes else {
            // the file that cannot be read (of a split directory: the one missing)
            let unreadable = split_files(given)
                .into_iter()
                .find(|f| !is_regular(f))
                .unwrap_or(where_now);
            return Err(Error::format(
                &unreadable,
                format!("{flag}: cannot be read; {was}: pass {flag} with where it is now"),
            ));
        };
        let same_data = match self.crc32 {
            Some(_) => now.crc32 == self.crc32 && now.bytes == self.bytes,
            None => {
                (!self.path.exists() || same_input(&self.path, &given.path))
                    && (self.bytes.is_none() || now.bytes == self.bytes)
            }
        };
        // with a checksum, a split directory may also have been renamed
        let same_split = self.crc32.is_some() || now.joint_split == self.joint_split;
        if same_data && same_split && now.articles == self.articles {
            return Ok(now);
        }
        let differs = if same_data {
            String::new()
        } else {
            let content = self.crc32.is_some() && now.bytes == self.bytes;
            format!(
                " ({bytes} bytes{})",
                if content { ", other content" } else { "" }
            )
        };
        Err(Error::format(
            &where_now,
            format!(
                "{flag}{differs}: {was}; a resumed run keeps its data (pass that, or start a new run)"
            ),
        ))
    }
}

/// Where a split's data is: its file, or a JointBERT split's directory.
fn location(path: &Path, joint_split: Option<&str>) -> PathBuf {
    match joint_split {
        Some(name) => path.join(name),
        None => path.to_path_buf(),
    }
}

/// The size and CRC-32 of a split's bytes: its file, or a JointBERT split directory's three files; `None` when
/// one is not a regular file (a pipe is not read a second time) or cannot be read.
fn fingerprint(split: &Split) -> Option<(u64, u32)> {
    let mut crc = crc32fast::Hasher::new();
    let mut bytes = 0u64;
    for file in split_files(split) {
        if !is_regular(&file) {
            return None;
        }
        bytes += crc_update(&mut crc, &file).ok()?;
    }
    Some((bytes, crc.finalize()))
}

/// The files a split reads: its file, or a JointBERT split directory's three.
fn split_files(split: &Split) -> Vec<PathBuf> {
    match &split.joint_split {
        None => vec![split.path.clone()],
        Some(name) => JOINT_FILES
            .iter()
            .map(|f| split.path.join(name).join(f))
            .collect(),
    }
}

fn is_regular(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// The end of a run.
#[derive(Clone, Debug)]
pub struct FinetuneSummary {
    pub dev: BTreeMap<String, f64>,
    pub test: Option<BTreeMap<String, f64>>,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub tokens_per_sec: f64,
    pub elapsed_s: f64,
}

/// The data splits of a run.
pub struct Splits<'a> {
    pub train: &'a Split,
    pub dev: &'a Split,
    pub test: Option<&'a Split>,
}

impl Splits<'_> {
    /// The training and dev splits as a run records them.
    fn records(&self) -> [SplitRecord; 2] {
        [SplitRecord::of(self.train), SplitRecord::of(self.dev)]
    }
}

/// What a fine-tuning run whose values stop being finite can do next, given the epoch of its last checkpoint, if
/// any (kept as it was, with the best model): a resumed run keeps its settings, the learning rate among them.
fn way_on(saved: Option<usize>) -> String {
    let kept = match saved {
        Some(e) => format!("its checkpoint of epoch {e} and its best model are kept, but a resumed run keeps its --lr"),
        None => "it has no checkpoint yet".into(),
    };
    format!("{kept}: start it again with a lower --lr and --overwrite")
}

/// What a fine-tuning run writes into OUT (`checkpoint` is a directory).
const RUN_FILES: [&str; 10] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "task.json",
    "metrics.jsonl",
    "curves.png",
    "eval.json",
    "train_config.json",
    "checkpoint",
];

/// What a stopped run in OUT continues with: its settings and the data it recorded.
pub struct SavedRun {
    pub config: FinetuneConfig,
    /// The training and dev splits; `None` for a run of an earlier version, which did not record them.
    pub data: Option<[Split; 2]>,
    pub test: Option<Split>,
    /// The model the run started from (`None` for a run of an earlier version).
    pub model: Option<PathBuf>,
}

/// The run in `out` that [`Start::Resume`] continues, so that a resumed run needs no flag but `--out`: refuses
/// a directory without a finished epoch, as [`finetune`] does.
pub fn saved_run(out: &Path) -> Result<SavedRun> {
    refuse_missing(out, Start::Resume)?;
    let _lock = open_out(out)?;
    resumable(out)?;
    let state: TrainerState = hf::read_config(&out.join("checkpoint/trainer_state.json"))?;
    Ok(SavedRun {
        config: hf::read_config(&out.join("train_config.json"))?,
        data: state.data.map(|[train, dev]| [train.split(), dev.split()]),
        test: state.test.map(|t| t.split()),
        model: state.model,
    })
}

/// Fine-tunes the model in `model_dir` (or a fresh one of its shape) on `splits`, writing into `out`.
/// `start` says what to do with a run already in `out`: refuse it ([`Start::Fresh`]), replace it once every
/// input has been read and checked ([`Start::Overwrite`]), or continue it ([`Start::Resume`], from the run's
/// own checkpoint: `model_dir` is not read then).
pub fn finetune(
    model_dir: &Path,
    out: &Path,
    splits: &Splits,
    cfg: &FinetuneConfig,
    start: Start,
) -> Result<FinetuneSummary> {
    cfg.validate()?;
    refuse_missing(out, start)?;
    // a directory this call creates is removed again when the run is refused
    in_run_dir(out, || {
        std::fs::create_dir_all(out).map_err(Error::io(out))?;
        train_in(model_dir, out, splits, cfg, start)
    })
}

/// Refuses a file as `out`, and for a resumed run a directory that does not exist.
fn refuse_missing(out: &Path, start: Start) -> Result<()> {
    refuse_file(out)?;
    if start == Start::Resume && !out.is_dir() {
        return Err(Error::format(
            out,
            "there is no run to resume here (no such directory)",
        ));
    }
    Ok(())
}

/// Locks `out` (an existing directory) for this process and makes whole the best model and checkpoint whose
/// writing a killed run cut short, before anything reads them or writes others (a second run into the same new
/// directory waits for the lock too).
fn open_out(out: &Path) -> Result<run_dir::RunLock> {
    let lock = run_dir::lock_dir(out)?;
    journal::recover(out)?;
    journal::recover(&out.join("checkpoint"))?;
    Ok(lock)
}

/// [`finetune`] in an `out` that exists.
fn train_in(
    model_dir: &Path,
    out: &Path,
    splits: &Splits,
    cfg: &FinetuneConfig,
    start: Start,
) -> Result<FinetuneSummary> {
    let mut cfg = cfg.clone();
    let resume = start == Start::Resume;
    let ckpt = out.join("checkpoint");
    let _lock = open_out(out)?;
    check_out(model_dir, out, start)?;
    let (mut model, info, enc, state) = if resume {
        let saved_path = out.join("train_config.json");
        let mut saved: FinetuneConfig = hf::read_config(&saved_path)?;
        saved.stop_after_epochs = cfg.stop_after_epochs;
        saved.max_len_given = cfg.max_len_given;
        if !cfg.max_len_given {
            cfg.max_len = saved.max_len;
        }
        fit_qa_defaults(&mut cfg)?;
        if saved != cfg {
            return Err(Error::format(
                &saved_path,
                format!(
                    "a resumed run keeps its settings, and these differ: {}",
                    changed_settings(&saved, &cfg)
                ),
            ));
        }
        let mut state: TrainerState = hf::read_config(&ckpt.join("trainer_state.json"))?;
        // checked, then recorded where it is now, so that a moved file need not be named again
        state.data = Some(match &state.data {
            Some([train, dev]) => [
                train.check(splits.train, "--train", out)?,
                dev.check(splits.dev, "--dev", out)?,
            ],
            None => splits.records(),
        });
        let (model, info, enc) = load_finetuned(&ckpt)?;
        (model, info, enc, Some(state))
    } else {
        let (backbone, enc) = load_backbone(model_dir, cfg.task, cfg.from_scratch, cfg.seed)?;
        let positions = backbone.max_positions();
        if cfg.max_len > positions && !cfg.max_len_given {
            crate::say!(
                "note: inputs cut at the model's {positions} positions (--max-len {positions} rather than {})",
                cfg.max_len
            );
            cfg.max_len = positions;
        }
        if cfg.max_len > positions {
            return Err(Error::format(
                &model_dir.join("config.json"),
                format!(
                    "--max-len {} is more than the model's {positions} positions: pass --max-len {positions} or less",
                    cfg.max_len
                ),
            ));
        }
        fit_qa_defaults(&mut cfg)?;
        let (labels, slots) = labels_from_train(cfg.task, splits.train, &cfg.columns())?;
        let info = TaskInfo {
            task: cfg.task,
            backbone: backbone.kind().into(),
            labels: labels.names,
            slot_labels: slots.names,
            max_len: cfg.max_len,
            text_column: cfg.text_column.clone(),
            pair_column: cfg.pair_column.clone(),
            label_column: cfg.label_column.clone(),
            alpha: cfg.alpha,
            doc_stride: cfg.doc_stride,
            max_query_len: cfg.max_query_len,
            max_answer_len: cfg.max_answer_len,
        };
        let sizes = HeadSizes::for_task(cfg.task, info.labels.len(), info.slot_labels.len());
        let mut model = TaskModel::new(backbone, cfg.task, sizes, cfg.seed)?;
        model.alpha = cfg.alpha;
        (model, info, enc, None)
    };
    let train = prepare(&enc, &info, splits.train, cfg.train_limit, true)?;
    let dev = prepare(&enc, &info, splits.dev, None, false)?;
    let test = splits
        .test
        .map(|t| prepare(&enc, &info, t, None, false))
        .transpose()?;
    // all input read and checked: from here on OUT is written
    if start == Start::Overwrite {
        // what a fine-tuning run wrote; other files stay
        remove_all(out, &RUN_FILES)?;
    }
    std::fs::create_dir_all(&ckpt).map_err(Error::io(&ckpt))?;
    hf::write_json(&out.join("train_config.json"), &cfg)?;
    let metrics_path = out.join("metrics.jsonl");
    let mut st = match state {
        Some(s) => s,
        None => TrainerState {
            epoch: 0,
            step: 0,
            adam_t: 0,
            best: None,
            best_epoch: 0,
            best_scores: BTreeMap::new(),
            bad_epochs: 0,
            elapsed_s: 0.0,
            tokens: 0,
            data: Some(splits.records()),
            test: None,
            model: model_dir.canonicalize().ok(),
        },
    };
    st.test = splits.test.map(SplitRecord::of);
    // the epoch of the last checkpoint, which a diverging run leaves as it is
    let mut saved = resume.then_some(st.epoch);
    let mut opt = AdamW::new(
        adamw_config((cfg.lr, 0.0), (0.9, 0.999), cfg.weight_decay, cfg.grad_clip)?,
        model.num_params(),
    );
    let ended = |st: &TrainerState| {
        st.epoch >= cfg.epochs || (cfg.patience > 0 && st.bad_epochs >= cfg.patience)
    };
    if resume {
        restore_optimizer(&ckpt, &mut opt, st.step, st.adam_t)?;
        // what a resumed run was given instead (the data's place, another test split) counts from now on, even
        // when no epoch is left to train
        hf::write_json(&ckpt.join("trainer_state.json"), &st)?;
        truncate_after_step(&metrics_path, st.step as u64)?;
        if ended(&st) {
            crate::say!(
                "the run already ended after epoch {} of {}: nothing is left to train; eval.json is written again \
                 (with --test scored by the best model, epoch {})",
                st.epoch, cfg.epochs, st.best_epoch
            );
        } else {
            crate::say!("resuming after epoch {} (step {})", st.epoch, st.step);
        }
    } else {
        let _ = std::fs::remove_file(out.join("eval.json"));
    }
    let mut metrics = MetricsWriter::open(&metrics_path, !resume)?;
    let per_epoch = train.features.len().div_ceil(cfg.batch_size);
    let total = per_epoch * cfg.epochs;
    let warmup = (cfg.warmup_ratio * total as f32).round() as usize;
    crate::say!(
        "{}: {} training sequences, {} dev, {} steps ({} per epoch), {} parameters",
        cfg.task.name(),
        train.features.len(),
        dev.features.len(),
        total,
        per_epoch,
        model.num_params()
    );
    let metric = main_metric(cfg.task);
    let mut grads = vec![0.0f32; model.num_params()];
    let mut ws = Workspace::default();
    let bar = progress_bar(total, st.step)?;
    let start = Instant::now();
    let elapsed0 = st.elapsed_s;
    let mut tps = 0.0;
    let stop = cfg.stop_after_epochs.unwrap_or(cfg.epochs).min(cfg.epochs);
    while st.epoch < stop && !ended(&st) {
        let batches = epoch_batches(&train.features, &cfg, st.epoch);
        let (mut loss_sum, mut loss_n) = (0.0, 0usize);
        let (mut recent_sum, mut recent_n) = (0.0, 0usize);
        let window = Instant::now();
        let mut window_tokens = 0u64;
        for idx in &batches {
            let items: Vec<&Feature> = idx.iter().map(|&i| &train.features[i]).collect();
            let x = enc.batch(&items);
            let lr = linear_lr(st.step, cfg.lr, warmup, total);
            grads.fill(0.0);
            let seed = derive_seed(cfg.seed, &[6, st.step as u64]);
            let o = model.forward_backward(&mut ws, &x, Some(&mut grads), seed)?;
            ensure_finite("the training loss", o.loss, st.step, || way_on(saved))?;
            let gnorm = clip_grad_norm(&mut grads, cfg.grad_clip);
            ensure_finite("the gradient norm", gnorm, st.step, || way_on(saved))?;
            let layout = model.backbone.layout().clone();
            opt.step(model.backbone.params_mut(), &grads, &layout, lr);
            st.step += 1;
            let tokens: u64 = x.lens.iter().map(|&l| l as u64).sum();
            st.tokens += tokens;
            window_tokens += tokens;
            loss_sum += o.loss;
            loss_n += 1;
            recent_sum += o.loss;
            recent_n += 1;
            tps = window_tokens as f64 / window.elapsed().as_secs_f64().max(1e-9);
            bar.set_position(st.step as u64);
            bar.set_message(format!(
                "epoch {} loss {:.4} {tps:.0} tok/s",
                st.epoch + 1,
                o.loss
            ));
            if st.step.is_multiple_of(50) {
                metrics.write(&json!({
                    "step": st.step, "epoch": st.epoch as f64 + loss_n as f64 / batches.len() as f64,
                    "train_loss": recent_sum / recent_n as f64, "lr": lr, "tokens_per_sec": tps,
                }))?;
                (recent_sum, recent_n) = (0.0, 0);
            }
        }
        if recent_n > 0 {
            // the steps since the last record, so that a run of fewer than 50 steps has a training curve too
            metrics.write(&json!({
                "step": st.step, "epoch": st.epoch as f64 + 1.0,
                "train_loss": recent_sum / recent_n as f64,
                "lr": linear_lr(st.step - 1, cfg.lr, warmup, total),
                "tokens_per_sec": tps,
            }))?;
        }
        st.epoch += 1;
        // weights that are finite can still be too large to give finite outputs: both are checked before the
        // epoch's metrics line, best model and checkpoint
        ensure_checkpointable(model.backbone.params(), &opt, st.step, || way_on(saved))?;
        let n_dev = dev.features.len();
        let epoch = st.epoch;
        let outputs = run_telling(&model, &enc, &dev.features, 64, &|done| {
            bar.set_message(format!(
                "epoch {epoch}: evaluating on dev, {done}/{n_dev} inputs"
            ))
        })?;
        bar.set_message(format!("epoch {epoch}: saving"));
        let dev_outputs = outputs.iter().flat_map(|o| o.seq.iter().chain(&o.tok));
        ensure_all_finite("a dev output", dev_outputs, st.step, || way_on(saved))?;
        let scores = score(&info, &dev, &outputs);
        let value = scores.get(metric).copied().unwrap_or(0.0);
        let elapsed = elapsed0 + start.elapsed().as_secs_f64();
        let mut rec = json!({
            "step": st.step, "epoch": st.epoch, "epoch_train_loss": loss_sum / loss_n.max(1) as f64,
            "tokens_per_sec": tps, "elapsed_s": elapsed,
        });
        for (k, v) in &scores {
            rec[format!("dev_{k}")] = json!(v);
        }
        metrics.write(&rec)?;
        report(
            &bar,
            format!("epoch {}: dev {}", st.epoch, describe(&scores)),
        );
        if st.best.is_none_or(|b| value > b) {
            st.best = Some(value);
            st.best_epoch = st.epoch;
            st.best_scores = scores.clone();
            st.bad_epochs = 0;
            // as one unit: a run killed while writing it leaves the previous best model whole
            journal::write_set(out, |dir| save_finetuned(&model, &info, &enc, dir, &[]))?;
        } else {
            st.bad_epochs += 1;
        }
        st.elapsed_s = elapsed;
        st.adam_t = opt.t;
        let save_model =
            |dir: &Path, meta: &[(&str, String)]| save_finetuned(&model, &info, &enc, dir, meta);
        save_checkpoint(&ckpt, st.step, save_model, &opt, &st)?;
        saved = Some(st.epoch);
        plot_jsonl(
            &metrics_path,
            &out.join("curves.png"),
            "step",
            &["train_loss", &format!("dev_{metric}")],
            &format!("fine-tuning: {}", cfg.task.name()),
            "loss / dev metric",
        )?;
    }
    bar.finish_and_clear();
    // the best epoch's model decides the reported numbers (its dev scores were taken at that epoch)
    let test_scores = match &test {
        Some(t) => {
            let (best, _, _) = load_finetuned(out)?;
            Some(score(&info, t, &run(&best, &enc, &t.features, 64)?))
        }
        None => None,
    };
    let summary = FinetuneSummary {
        dev: st.best_scores.clone(),
        test: test_scores,
        best_epoch: st.best_epoch,
        epochs_run: st.epoch,
        tokens_per_sec: st.tokens as f64 / st.elapsed_s.max(1e-9),
        elapsed_s: st.elapsed_s,
    };
    hf::write_json(
        &out.join("eval.json"),
        &json!({
            "task": cfg.task.name(), "dev": summary.dev, "test": summary.test,
            "best_epoch": summary.best_epoch, "epochs_run": summary.epochs_run, "finished": ended(&st),
            "train_examples": train_examples(&train), "train_sequences": train.features.len(),
            "tokens_per_sec": summary.tokens_per_sec, "elapsed_s": summary.elapsed_s,
        }),
    )?;
    Ok(summary)
}

/// Lowers a QA run's question length and window overlap where they are left at their defaults (64 and 128
/// tokens, made for 384-token windows) and a shorter `--max-len` leaves too little room, saying so: questions
/// are cut at half the window when 64 is more than that, and the overlap becomes half the context room a window
/// has beside the question when 128 would leave windows moving on by less than a quarter of it. A question
/// length that leaves no context is refused here; a stride given that does not fit is refused with the first
/// question it fails, naming its flag. A value equal to the default is taken as left out. Other tasks' settings
/// are left as they are.
fn fit_qa_defaults(cfg: &mut FinetuneConfig) -> Result<()> {
    if cfg.task != Task::Qa {
        return Ok(());
    }
    let default = FinetuneConfig::new(Task::Qa);
    if cfg.max_query_len == default.max_query_len && cfg.max_query_len > cfg.max_len / 2 {
        cfg.max_query_len = (cfg.max_len / 2).max(1);
        crate::say!(
            "note: questions cut at {} tokens (--max-query-len {}, as --max-len is {})",
            cfg.max_query_len,
            cfg.max_query_len,
            cfg.max_len
        );
    }
    let room = cfg.max_len.saturating_sub(cfg.max_query_len + 3);
    if room == 0 {
        return Err(Error::Config(format!(
            "--max-query-len {} leaves no room for the context in --max-len {} windows (a window holds the \
             question, 3 special tokens and the context): lower --max-query-len, or raise --max-len",
            cfg.max_query_len, cfg.max_len
        )));
    }
    if cfg.doc_stride == default.doc_stride && cfg.doc_stride + room / 4 >= room {
        cfg.doc_stride = room / 2;
        crate::say!(
            "note: windows overlap by {} tokens (--doc-stride {}, as a window holds {room} context tokens)",
            cfg.doc_stride, cfg.doc_stride
        );
    }
    Ok(())
}

/// Refuses an `out` that `start` must not write in: for a fresh run, the model being fine-tuned (or a directory
/// holding it where a run writes), or a directory that already holds a run or a model (unless `start`
/// overwrites it and it is a fine-tuning run); for a resumed run, a directory without a finished epoch.
fn check_out(model_dir: &Path, out: &Path, start: Start) -> Result<()> {
    if start == Start::Resume {
        return resumable(out);
    }
    let Kind {
        finished_epoch,
        finetuning,
        stopped_early,
        no_checkpoint,
        ..
    } = Kind::of(out);
    let canonical = |p: &Path| p.canonicalize().ok();
    if let (Some(model), Some(dir)) = (canonical(model_dir), canonical(out)) {
        if model == dir || model.starts_with(dir.join("checkpoint")) {
            return Err(Error::format(
                out,
                "holds the model being fine-tuned (--model), which the run would replace: choose another --out",
            ));
        }
    }
    let Some(name) = RUN_FILES.iter().find(|name| out.join(name).exists()) else {
        return Ok(());
    };
    if start == Start::Overwrite && finetuning {
        return Ok(());
    }
    let why = if finished_epoch {
        format!(
            "already holds a fine-tuning run (it has {name}): pass --resume to continue it, --overwrite to \
             replace it, or choose another --out"
        )
    } else if stopped_early {
        format!(
            "already holds a run that stopped before its first epoch ended (it has {name}): pass --overwrite to \
             start it afresh, or choose another --out"
        )
    } else if no_checkpoint {
        format!(
            "already holds a fine-tuned model without a checkpoint (it has {name}; `primer eval --model` scores \
             it): choose another --out, or pass --overwrite to replace it"
        )
    } else {
        format!(
            "already holds a model that is not a fine-tuning run (it has {name}): choose another --out \
             (--overwrite replaces fine-tuning runs only)"
        )
    };
    Err(Error::format(out, why))
}

/// What `out` holds, as far as [`check_out`] tells runs apart.
struct Kind {
    /// A fine-tuning run with a checkpoint of a finished epoch.
    finished_epoch: bool,
    pretraining: bool,
    finetuning: bool,
    /// A fine-tuning run killed before its first epoch ended.
    stopped_early: bool,
    /// A fine-tuning run with a best model but no checkpoint to resume from (deleted, or the run was killed
    /// between writing the two).
    no_checkpoint: bool,
}

impl Kind {
    fn of(out: &Path) -> Kind {
        let ckpt = out.join("checkpoint");
        let finished_epoch = ckpt.join("trainer_state.json").exists();
        // a fine-tuning run makes checkpoint/ before it writes anything else; a pretraining run keeps its
        // trainer_state.json at the top
        let pretraining = out.join("trainer_state.json").exists();
        let finetuning = !pretraining && (ckpt.is_dir() || out.join("task.json").exists());
        let best_model = out.join("model.safetensors").exists();
        Kind {
            finished_epoch,
            pretraining,
            finetuning,
            stopped_early: finetuning && !finished_epoch && !best_model,
            no_checkpoint: finetuning && !finished_epoch && best_model,
        }
    }
}

/// Refuses an `out` without a fine-tuning run that finished an epoch, saying what it holds instead.
fn resumable(out: &Path) -> Result<()> {
    let kind = Kind::of(out);
    let why = if kind.finished_epoch {
        return Ok(());
    } else if kind.stopped_early {
        "the run here stopped before its first epoch ended, so there is nothing to resume: pass --overwrite \
         instead of --resume to start it afresh"
    } else if kind.no_checkpoint {
        "holds a fine-tuned model but no checkpoint/trainer_state.json to continue from, so it cannot be \
         resumed; its model stays as it is (`primer eval --model` scores it, --overwrite would replace it with \
         a new run)"
    } else if kind.pretraining {
        "holds a pretraining run, not a fine-tuning one: there is nothing to resume here"
    } else {
        "there is no fine-tuning run to resume here (no checkpoint/trainer_state.json)"
    };
    Err(Error::format(out, why))
}

/// The settings that differ between a saved run and this invocation, by flag: "--lr 0.001 (saved: 0.00005)".
fn changed_settings(saved: &FinetuneConfig, now: &FinetuneConfig) -> String {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(saved), serde_json::to_value(now))
    else {
        return "the settings".into();
    };
    let flag = |key: &str| match key {
        "task" => "the task".to_string(),
        "pair_column" => "--text-pair-column".to_string(),
        "group_by_length" => "--no-group-by-length".to_string(),
        other => format!("--{}", other.replace('_', "-")),
    };
    // as flags read: the floats as the f32 they are (0.001 rather than 0.0010000000474974513), the switches
    // as given or not
    let show = |key: &str, v: &serde_json::Value| match v {
        serde_json::Value::Null => "not given".to_string(),
        // switches: --from-scratch turns its setting on, --no-group-by-length its setting off
        serde_json::Value::Bool(on) => if *on != (key == "group_by_length") {
            "given"
        } else {
            "not given"
        }
        .to_string(),
        serde_json::Value::String(text) => text.clone(),
        _ => match v.as_f64() {
            Some(x) if v.is_f64() => (x as f32).to_string(),
            _ => v.to_string(),
        },
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| {
            let now = b.get(k).map(|x| show(k, x)).unwrap_or_default();
            format!("{} {now} (saved: {})", flag(k), show(k, v))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Training examples (QA windows of one question count once).
fn train_examples(p: &Prepared) -> usize {
    match &p.gold {
        Gold::Classes(g) => g.len(),
        Gold::Tags(g) => g.len(),
        Gold::Joint { intents, .. } => intents.len(),
        Gold::Qa(q) => q.len(),
    }
}

/// `key value, …` of a score map.
pub fn describe(scores: &BTreeMap<String, f64>) -> String {
    scores
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The batches of epoch `epoch`: a seeded shuffle; with grouping, runs of 50 batches' worth of examples are
/// sorted by length before being cut into batches, and the batches are shuffled again.
fn epoch_batches(features: &[Feature], cfg: &FinetuneConfig, epoch: usize) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(derive_seed(cfg.seed, &[5, epoch as u64]));
    let mut order: Vec<usize> = (0..features.len()).collect();
    shuffle(&mut order, &mut rng);
    let bs = cfg.batch_size;
    if cfg.group_by_length {
        for group in order.chunks_mut(50 * bs) {
            group.sort_by_key(|&i| std::cmp::Reverse(features[i].ids.len()));
        }
    }
    let mut batches: Vec<Vec<usize>> = order.chunks(bs).map(<[usize]>::to_vec).collect();
    if cfg.group_by_length {
        shuffle(&mut batches, &mut rng);
    }
    batches
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(max_query_len, doc_stride)` after fitting QA's defaults to `max_len`.
    fn fitted(max_len: usize) -> (usize, usize) {
        let mut cfg = FinetuneConfig::new(Task::Qa);
        cfg.max_len = max_len;
        fit_qa_defaults(&mut cfg).unwrap();
        (cfg.max_query_len, cfg.doc_stride)
    }

    #[test]
    fn qa_defaults_are_fitted_to_short_windows_only() {
        // made for 384: kept, as at 256 (room 189, windows move on by 61)
        assert_eq!(fitted(384), (64, 128));
        assert_eq!(fitted(256), (64, 128));
        // at 200 windows would move on by 5 of their 133 context tokens: they share half of them instead
        assert_eq!(fitted(200), (64, 66));
        // under 128 the question gets half the window, and the overlap half of what is left
        assert_eq!(fitted(64), (32, 14));
        // a value given is left alone
        let mut cfg = FinetuneConfig::new(Task::Qa);
        (cfg.max_len, cfg.doc_stride, cfg.max_query_len) = (64, 20, 30);
        fit_qa_defaults(&mut cfg).unwrap();
        assert_eq!((cfg.max_query_len, cfg.doc_stride), (30, 20));
        // one that leaves a window no context is refused, by name, before any question is read
        cfg.max_query_len = 61;
        let e = fit_qa_defaults(&mut cfg).unwrap_err().to_string();
        assert!(e.contains("--max-query-len 61 leaves no room"), "{e}");
    }
}

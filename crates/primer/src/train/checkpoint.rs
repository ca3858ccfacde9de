//! What every trainer's checkpoint shares: the AdamW moments in `OUT/optimizer.safetensors`, written with the
//! model and the trainer state as one unit (see [`journal`]), a step stamp in the header of both safetensors files
//! (checked against the trainer state on resume), the checks of a run's directory (which [`open_run_dir`] opens),
//! the progress bar and the checks of the optimizer settings.

use crate::engine::adamw::{AdamW, AdamWConfig};
use crate::error::{Error, Result};
use crate::hf::{self, TensorFile};
use crate::train::journal;
use crate::train::run_dir::{open_run_dir, RunLock};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// The files a pretraining run writes into its directory (other files there are left alone); the first
/// [`RUN_MARKS`] say that a run is there.
pub(crate) const RUN_FILES: [&str; 10] = [
    "trainer_state.json",
    "model.safetensors",
    "metrics.jsonl",
    "optimizer.safetensors",
    "config.json",
    "train_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokens.bin",
    "loss.png",
];
const RUN_MARKS: usize = 3;

/// How a run starts in its directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A new run; a directory that already holds one is refused, so that forgetting `--resume` loses nothing.
    Fresh,
    /// A new run in place of the one in the directory, whose files are deleted only when the new run has passed
    /// every check and writes its first file ([`commit_fresh`]).
    Overwrite,
    /// Continue the run saved in the directory.
    Resume,
}

/// Refuses `--resume` where there is no checkpoint to continue, saying why. A checkpoint whose writing was cut
/// short is first made whole (see [`open_run_dir`]).
pub fn check_resumable(out: &Path) -> Result<()> {
    open_run_dir(out)?;
    resumable(out)
}

/// [`check_resumable`]'s check, in a directory already opened.
fn resumable(out: &Path) -> Result<()> {
    if out.join("trainer_state.json").exists() {
        return Ok(());
    }
    let why = if !out.is_dir() {
        "there is no run to resume here (no such directory)"
    } else if stopped_early(out) {
        "the run here stopped before its first checkpoint (there is no trainer_state.json), so there is nothing \
         to resume: pass --overwrite instead of --resume to start it afresh"
    } else {
        "there is no pretraining run to resume here (no trainer_state.json)"
    };
    Err(Error::format(out, why))
}

/// Makes `out` ready for a run: creates it and opens it ([`open_run_dir`]); for a fresh run, refuses a directory
/// that already holds a run (its `trainer_state.json`, `model.safetensors` or `metrics.jsonl`); for a resumed
/// one, a directory without a checkpoint. Nothing a run reads is deleted here: see [`commit_fresh`]. The run holds
/// what this returns while it trains.
pub(crate) fn prepare_out(out: &Path, start: Start) -> Result<RunLock> {
    refuse_file(out)?;
    if start == Start::Resume {
        let lock = open_run_dir(out)?;
        return resumable(out).map(|()| lock);
    }
    std::fs::create_dir_all(out).map_err(Error::io(out))?;
    let lock = open_run_dir(out)?;
    if start == Start::Overwrite {
        return Ok(lock);
    }
    if let Some(name) = RUN_FILES[..RUN_MARKS]
        .iter()
        .find(|name| out.join(name).exists())
    {
        let why = if out.join("trainer_state.json").exists() {
            format!(
                "already holds a run (it has {name}): pass --resume to continue it, --overwrite to replace it, or \
                 choose another --out"
            )
        } else if stopped_early(out) {
            format!(
                "already holds a run that stopped before its first checkpoint (it has {name}): pass --overwrite to \
                 start it afresh, or choose another --out"
            )
        } else {
            format!(
                "already holds a model (it has {name}) that is not a pretraining run of primer's: choose another \
                 --out ({})",
                overwrite_would(out)
            )
        };
        return Err(Error::format(out, why));
    }
    Ok(lock)
}

/// What `--overwrite` would do to a model directory that is not a run's: delete the files a run writes, and keep
/// the others, which the message names (up to five), since they would then sit beside the new run's.
fn overwrite_would(out: &Path) -> String {
    let mut kept: Vec<String> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !RUN_FILES.contains(&name.as_str()) && !name.starts_with('.'))
        .collect();
    if kept.is_empty() {
        return "--overwrite would delete its files".to_string();
    }
    kept.sort();
    let more = kept.len().saturating_sub(5);
    kept.truncate(5);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "--overwrite would delete the files a run writes, and keep the others beside the new run's: {}{more}",
        kept.join(", ")
    )
}

/// Whether `out` holds a pretraining run that never reached its first checkpoint: its settings are saved
/// (`train_config.json`, written before the first step) but no `trainer_state.json`. Hugging Face's model
/// directories have neither; a fine-tuning run has a `train_config.json` too, but also its `checkpoint/` (made
/// first) or `task.json`.
fn stopped_early(out: &Path) -> bool {
    out.join("train_config.json").exists()
        && !out.join("trainer_state.json").exists()
        && !out.join("checkpoint").is_dir()
        && !out.join("task.json").exists()
}

/// The moment a fresh run writes its first file: with [`Start::Overwrite`], the old run's files go now, after
/// the new run has passed every check, so that a typo in a flag or a bad corpus leaves the old run as it was.
pub(crate) fn commit_fresh(out: &Path, start: Start) -> Result<()> {
    if start == Start::Overwrite {
        clear_run(out)?;
    }
    Ok(())
}

/// Runs `body` for a run in `out`; when it fails, removes the directories of `out`'s path that did not exist
/// before and that the run left empty, so that a refused run leaves no trace.
pub(crate) fn in_run_dir<T>(out: &Path, body: impl FnOnce() -> Result<T>) -> Result<T> {
    // the outermost directory of `out`'s path that does not exist yet: the run creates it and those inside it
    let created = out
        .ancestors()
        .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
        .last()
        .map(Path::to_path_buf);
    let result = body();
    if let (Err(_), Some(created)) = (&result, created) {
        for dir in out.ancestors() {
            // stops, as wanted, at a directory the run wrote into
            if std::fs::remove_dir(dir).is_err() || dir == created {
                break;
            }
        }
    }
    result
}

/// Says so when a trained vocabulary came out another size than `--vocab-size` asked: smaller when the corpus had
/// no more merges (or word pieces) to learn, larger when its alphabet alone needs more; the model is built for
/// the vocabulary there is.
pub(crate) fn note_vocab_size(corpus: &Path, got: usize, asked: usize) {
    if got < asked {
        crate::say!(
            "note: {} yields a vocabulary of {got}, fewer than the {asked} asked for (--vocab-size): it has no more \
             to learn",
            corpus.display()
        );
    } else if got > asked {
        crate::say!(
            "note: {} yields a vocabulary of {got}, more than the {asked} asked for (--vocab-size): its alphabet \
             alone needs that many tokens",
            corpus.display()
        );
    }
}

/// Refuses an `--out` that is a file: a run's output is a directory.
pub(crate) fn refuse_file(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::format(
            out,
            "is a file, not a directory: --out names the run's directory",
        ));
    }
    Ok(())
}

/// Deletes the files a pretraining run writes from `out` (for `--overwrite`); a missing directory or file is
/// not an error.
pub fn clear_run(out: &Path) -> Result<()> {
    remove_all(out, &RUN_FILES)
}

/// Deletes `names` (files, or directories with what they hold) from `out`; a missing one is not an error.
pub(crate) fn remove_all(out: &Path, names: &[&str]) -> Result<()> {
    for name in names {
        let path = out.join(name);
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match gone {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&path)(e)),
            _ => {}
        }
    }
    Ok(())
}

/// The absolute path of a run's corpus, as its trainer state records it, so that `--resume` finds it from any
/// working directory.
pub(crate) fn absolute(corpus: &Path) -> std::path::PathBuf {
    std::path::absolute(corpus).unwrap_or_else(|_| corpus.to_path_buf())
}

/// AdamW settings from a trainer's flags, checked; errors name the flag.
pub(crate) fn adamw_config(
    (lr, min_lr): (f32, f32),
    (beta1, beta2): (f32, f32),
    weight_decay: f32,
    grad_clip: f32,
) -> Result<AdamWConfig> {
    let bad = |m: &str| Err(Error::Config(m.to_string()));
    if !(lr > 0.0 && lr.is_finite() && min_lr >= 0.0 && min_lr <= lr) {
        return bad("--lr must be positive and finite, --min-lr in [0, lr]");
    }
    if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
        return bad("--beta1 and --beta2 must be in [0, 1)");
    }
    if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
        return bad("--weight-decay must be a finite value ≥ 0");
    }
    if !(grad_clip >= 0.0 && grad_clip.is_finite()) {
        return bad("--grad-clip must be a finite value ≥ 0 (0 = off)");
    }
    Ok(AdamWConfig {
        beta1,
        beta2,
        eps: 1e-8,
        weight_decay,
    })
}

/// Checks a resumed run against the settings saved in `OUT/train_config.json`: `fixed` pairs each setting that
/// may not change (by its flag) with whether it is unchanged, and a run already at `max_iters` cannot continue.
pub(crate) fn check_resume<C: DeserializeOwned>(
    out: &Path,
    cfg: &C,
    fixed: fn(&C, &C) -> Vec<(&'static str, bool)>,
    max_iters: usize,
    step: usize,
) -> Result<()> {
    let saved: C = hf::read_config(&out.join("train_config.json"))?;
    let changed: Vec<&str> = fixed(&saved, cfg)
        .into_iter()
        .filter_map(|(flag, same)| (!same).then_some(flag))
        .collect();
    if !changed.is_empty() {
        return Err(Error::Config(format!(
            "a resumed run keeps its settings of {}; start a new run (another --out) to change them",
            changed.join(", ")
        )));
    }
    if max_iters <= step {
        return Err(Error::Config(format!(
            "the run in {} is at step {step}; pass a larger --max-iters to continue it",
            out.display()
        )));
    }
    Ok(())
}

/// Writes a checkpoint into `out` as one unit (see [`journal`]): the model (through `save_model`, given the
/// directory to write into and the step stamp for its safetensors header), the optimizer moments with the same
/// stamp and `trainer_state.json`, which names the step.
pub(crate) fn save_checkpoint(
    out: &Path,
    step: usize,
    save_model: impl FnOnce(&Path, &[(&str, String)]) -> Result<()>,
    opt: &AdamW,
    state: &impl Serialize,
) -> Result<()> {
    let stamp = step_stamp(step);
    journal::write_set(out, |dir| {
        save_model(dir, &stamp)?;
        let n = opt.m.len();
        hf::save_raw(
            &dir.join("optimizer.safetensors"),
            &[
                ("exp_avg".into(), hf::f32_bytes(&opt.m), vec![n]),
                ("exp_avg_sq".into(), hf::f32_bytes(&opt.v), vec![n]),
            ],
            &stamp,
        )?;
        hf::write_json(&dir.join("trainer_state.json"), state)
    })
}

/// The safetensors header entry naming the step a checkpoint file belongs to.
fn step_stamp(step: usize) -> [(&'static str, String); 1] {
    [("step", step.to_string())]
}

/// Loads the moments saved at `step` into `opt` after checking that `model.safetensors` and
/// `optimizer.safetensors` both carry that step.
pub(crate) fn restore_optimizer(
    out: &Path,
    opt: &mut AdamW,
    step: usize,
    adam_t: u64,
) -> Result<()> {
    let opt_path = out.join("optimizer.safetensors");
    for path in [out.join("model.safetensors"), opt_path.clone()] {
        let saved = TensorFile::open(&path)?.metadata("step")?;
        let why = match saved {
            Some(s) if s == step.to_string() => continue,
            Some(s) => format!(
                "holds step {s}, but trainer_state.json says {step}: the last checkpoint was interrupted"
            ),
            None => format!(
                "has no step stamp, so no checkpoint of this run wrote it (another program saved it here, over \
                 step {step}'s): the run cannot go on from it; pass --overwrite to start afresh"
            ),
        };
        return Err(Error::format(&path, why));
    }
    let f = TensorFile::open(&opt_path)?;
    let (m, v) = (f.get_f32("exp_avg")?.0, f.get_f32("exp_avg_sq")?.0);
    if m.len() != opt.m.len() || v.len() != opt.v.len() {
        return Err(Error::format(
            &opt_path,
            "moments do not match the model's size",
        ));
    }
    (opt.m, opt.v, opt.t) = (m, v, adam_t);
    Ok(())
}

/// Stops a run whose loss (or another value: `what` names it) is no longer finite before the value reaches a
/// metrics line or a checkpoint, so the last checkpoint stays one a run can go on from; `way_on` says how (called
/// only then: the training step checks every loss).
pub(crate) fn ensure_finite(
    what: &str,
    value: f64,
    step: usize,
    way_on: impl FnOnce() -> String,
) -> Result<()> {
    if value.is_finite() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{what} became {value} at step {step}, so the run stops here; {}",
        way_on()
    )))
}

/// [`ensure_finite`] for each of `values`, naming the first that is not finite as `what`.
pub(crate) fn ensure_all_finite<'a>(
    what: &str,
    values: impl IntoIterator<Item = &'a f32>,
    step: usize,
    way_on: impl FnOnce() -> String,
) -> Result<()> {
    match values.into_iter().find(|v| !v.is_finite()) {
        Some(&v) => ensure_finite(what, v.into(), step, way_on),
        None => Ok(()),
    }
}

/// [`ensure_all_finite`] for the weights and the optimizer's moments, before they are checkpointed.
pub(crate) fn ensure_checkpointable(
    params: &[f32],
    opt: &AdamW,
    step: usize,
    way_on: impl Fn() -> String,
) -> Result<()> {
    ensure_all_finite("a weight", params, step, &way_on)?;
    ensure_all_finite(
        "an optimizer moment",
        opt.m.iter().chain(&opt.v),
        step,
        way_on,
    )
}

/// What a pretraining run whose values stopped being finite at `step` can do next, given the step of its last
/// checkpoint, if any. A checkpoint taken at `step` itself gives the same values again when resumed, whatever
/// the learning rate (the step's batch and weights are the checkpoint's), so only a new run helps then.
pub(crate) fn pretrain_way_on(saved: Option<usize>, step: usize) -> String {
    match saved {
        Some(s) if s == step => format!(
            "the checkpoint of step {s} gives it again on resuming, whatever the --lr: start the run again with a \
             lower --lr and --overwrite"
        ),
        Some(s) => format!("its checkpoint of step {s} is kept: resume it with a lower --lr"),
        None => "it has no checkpoint yet: start it again with a lower --lr and --overwrite".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::{ensure_checkpointable, pretrain_way_on};
    use crate::engine::adamw::{AdamW, AdamWConfig};

    /// A weight or an optimizer moment with an infinity or a NaN stops a run, naming the value, the step and the
    /// way on; finite values, however large, pass.
    #[test]
    fn values_that_are_not_finite_stop_a_run() {
        let config = AdamWConfig {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let way_on = || pretrain_way_on(Some(40), 41);
        let fine = [0.0, -3e38, f32::MIN_POSITIVE, 3.0];
        let opt = AdamW::new(config, 4);
        assert!(ensure_checkpointable(&fine, &opt, 41, way_on).is_ok());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let e = ensure_checkpointable(&[1.0, 2.0, bad, 3.0], &opt, 41, way_on)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("a weight became {bad} at step 41"))
                    && e.contains("its checkpoint of step 40 is kept: resume it with a lower --lr"),
                "{e}"
            );
            let mut moments = AdamW::new(config, 4);
            moments.v[3] = bad;
            let e = ensure_checkpointable(&fine, &moments, 41, way_on)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("an optimizer moment became {bad}")),
                "{e}"
            );
        }
        assert!(pretrain_way_on(None, 3).contains("no checkpoint yet"));
        assert!(
            pretrain_way_on(Some(3), 3).contains("gives it again on resuming, whatever the --lr")
        );
    }
}

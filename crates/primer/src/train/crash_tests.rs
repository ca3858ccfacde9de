//! A pretraining run killed at every point where it replaces a file (simulated with `testutil::crash_after`),
//! then resumed, or started afresh with `--overwrite` where it died before its first checkpoint: it ends exactly
//! as a run never interrupted, with the same files and no temporary one left over.

use crate::error::Result;
use crate::models::{bert::Bert, gpt::Gpt};
use crate::testutil::{crash_after, file_names, scratch_dir};
use crate::train::checkpoint::{check_resumable, Start};
use crate::train::metrics::{read_metrics, Record};
use crate::train::{pretrain_bert, pretrain_gpt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Trains a tiny model on a corpus for the given number of steps (a checkpoint every 10) into a directory.
type Train<'a> = &'a dyn Fn(&Path, &Path, usize, Start) -> Result<()>;

/// The metrics a run logged, without its timings.
fn losses(out: &Path) -> Vec<Record> {
    let mut records = read_metrics(&out.join("metrics.jsonl")).unwrap();
    for r in &mut records {
        r.remove("tokens_per_sec");
        r.remove("elapsed_s");
    }
    records
}

/// Kills a 20-step run on `text` at each crash point in turn, then brings it to 30 steps; `load` reads the model
/// as a reader of the directory (a Hugging Face loader) would while the run is dead.
fn crash_everywhere(name: &str, text: &str, train: Train, load: &dyn Fn(&Path) -> Result<()>) {
    let dir = scratch_dir("crash", name);
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, text).unwrap();
    let train = |out: &Path, max_iters, start| train(&corpus, out, max_iters, start);
    let reference = dir.join("reference");
    train(&reference, 20, Start::Fresh).unwrap();
    train(&reference, 30, Start::Resume).unwrap();
    // the step each crashed run resumed from (0: it had no checkpoint)
    let mut resumed_from = Vec::new();
    for n in 0.. {
        let out = dir.join(format!("crash{n}"));
        crash_after(Some(n));
        let run = catch_unwind(AssertUnwindSafe(|| train(&out, 20, Start::Fresh)));
        crash_after(None);
        match run {
            // past the last crash point: every one was tried
            Ok(done) => {
                done.unwrap();
                break;
            }
            Err(stop) => assert_eq!(stop.downcast_ref(), Some(&"simulated crash")),
        }
        if out.join("model.safetensors").exists() {
            load(&out).unwrap_or_else(|e| panic!("crash at point {n}: {e}"));
        }
        let step = match check_resumable(&out) {
            Ok(()) => {
                let state = std::fs::read_to_string(out.join("trainer_state.json")).unwrap();
                let state: serde_json::Value = serde_json::from_str(&state).unwrap();
                state["step"].as_u64().unwrap()
            }
            Err(_) => {
                train(&out, 20, Start::Overwrite).unwrap();
                0
            }
        };
        train(&out, 30, Start::Resume).unwrap_or_else(|e| panic!("crash at point {n}: {e}"));
        assert_eq!(losses(&out), losses(&reference), "crash at point {n}");
        let model = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
        assert!(model(&out) == model(&reference), "crash at point {n}");
        assert_eq!(
            file_names(&out),
            file_names(&reference),
            "crash at point {n}"
        );
        resumed_from.push(step);
    }
    // a later crash never loses more: none before the first checkpoint, then the first, then the second
    assert!(
        resumed_from.is_sorted() && [0, 10, 20].iter().all(|s| resumed_from.contains(s)),
        "{resumed_from:?}"
    );
}

#[test]
fn a_gpt_run_killed_anywhere_resumes_exactly() {
    let text: String = (0..300)
        .map(|i| format!("after {i} comes {}.\n", i + 1))
        .collect();
    let train = |corpus: &Path, out: &Path, max_iters, start| {
        let cfg = pretrain_gpt::GptTrainConfig {
            n_layer: 1,
            n_head: 2,
            n_embd: 16,
            block_size: 16,
            batch_size: 4,
            max_iters,
            lr_decay_iters: 30,
            warmup_iters: 4,
            eval_interval: 10,
            eval_iters: 2,
            dropout: 0.1,
            ..Default::default()
        };
        pretrain_gpt::pretrain(corpus, out, &cfg, start).map(drop)
    };
    crash_everywhere("gpt", &text, &train, &|out| Gpt::load(out).map(drop));
}

#[test]
fn a_bert_run_killed_anywhere_resumes_exactly() {
    // documents of four lines, separated by blank lines
    let text: String = (0..60)
        .map(|doc| {
            let lines: String = (doc..doc + 4)
                .map(|i| format!("after {i} comes {}.\n", i + 1))
                .collect();
            lines + "\n"
        })
        .collect();
    let train = |corpus: &Path, out: &Path, max_iters, start| {
        let cfg = pretrain_bert::BertTrainConfig {
            vocab_size: 100,
            n_layer: 1,
            n_head: 2,
            n_embd: 32,
            block_size: 32,
            batch_size: 4,
            max_iters,
            lr_decay_iters: 30,
            warmup_iters: 4,
            eval_interval: 10,
            eval_iters: 2,
            ..Default::default()
        };
        pretrain_bert::pretrain(corpus, out, &cfg, start).map(drop)
    };
    crash_everywhere("bert", &text, &train, &|out| Bert::load(out).map(drop));
}

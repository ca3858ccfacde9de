//! The GPT pretraining loop end to end on tiny models: it learns, it resumes exactly, and bad input gets a
//! clear error instead of a panic.

mod common;

use common::tmp;
use primer::hf::TensorFile;
use primer::models::gpt::{Gpt, GptConfig};
use primer::train::metrics::read_metrics;
use primer::train::pretrain_gpt::{pretrain, GptTrainConfig};
use primer::train::Start;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A corpus with structure a tiny model can pick up: counting sentences.
fn write_corpus(dir: &Path) -> PathBuf {
    let words = [
        "one", "two", "three", "four", "five", "six", "seven", "eight",
    ];
    let mut text = String::new();
    for i in 0..600 {
        let a = words[i % 8];
        let b = words[(i + 1) % 8];
        text.push_str(&format!("after {a} comes {b}.\n"));
    }
    let p = dir.join("corpus.txt");
    std::fs::write(&p, text).unwrap();
    p
}

fn tiny(max_iters: usize) -> GptTrainConfig {
    GptTrainConfig {
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        block_size: 16,
        batch_size: 4,
        max_iters,
        lr_decay_iters: 40,
        warmup_iters: 4,
        lr: 1e-2,
        eval_interval: 10,
        eval_iters: 2,
        dropout: 0.1,
        grad_accum: 2,
        ..GptTrainConfig::default()
    }
}

fn losses(dir: &Path) -> Vec<(u64, f64, f64)> {
    read_metrics(&dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|r| {
            // every evaluation, step 0's included, has the fields the issue names
            for key in ["lr", "tokens_per_sec"] {
                assert!(r[key].is_number(), "{key} missing: {r:?}");
            }
            (
                r["step"].as_u64().unwrap(),
                r["train_loss"].as_f64().unwrap(),
                r["val_loss"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn learns_and_resumes_exactly() {
    let d = tmp("resume");
    let corpus = write_corpus(&d);
    let (full, half) = (d.join("full"), d.join("half"));
    let s = pretrain(&corpus, &full, &tiny(40), Start::Fresh).unwrap();
    let l = losses(&full);
    assert_eq!(
        l.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![0, 10, 20, 30, 40]
    );
    assert!(l[4].2 < l[0].2 * 0.8, "validation loss did not fall: {l:?}");
    assert!((s.val_loss - l[4].2).abs() < 1e-12);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "loss.png",
        "optimizer.safetensors",
    ] {
        assert!(full.join(f).exists(), "{f} missing");
    }

    pretrain(&corpus, &half, &tiny(20), Start::Fresh).unwrap();
    pretrain(&corpus, &half, &tiny(40), Start::Resume).unwrap();
    assert_eq!(
        losses(&half),
        l,
        "N steps + resume N steps must equal 2N steps"
    );
    let a = TensorFile::open(&full.join("model.safetensors")).unwrap();
    let b = TensorFile::open(&half.join("model.safetensors")).unwrap();
    for name in a.names().unwrap() {
        assert_eq!(
            a.get_f32(&name).unwrap(),
            b.get_f32(&name).unwrap(),
            "{name}"
        );
    }
    // without its token file a run cannot resume, and is told what the file was and what to do
    std::fs::remove_file(half.join("tokens.bin")).unwrap();
    let e = err_of(pretrain(&corpus, &half, &tiny(50), Start::Resume));
    assert!(
        e.contains("tokens.bin: is missing") && e.contains("--overwrite"),
        "{e}"
    );
}

/// A run that diverges at an evaluation stops before its checkpoint, so the last good one stays and a lower
/// learning rate resumes from it; its NaN losses reach neither metrics.jsonl nor the checkpoint.
#[test]
fn a_diverging_run_keeps_its_last_checkpoint() {
    let d = tmp("diverge");
    let corpus = write_corpus(&d);
    let out = d.join("run");
    pretrain(&corpus, &out, &tiny(10), Start::Fresh).unwrap();
    let wild = GptTrainConfig {
        lr: 1e30,
        min_lr: 1e30,
        eval_interval: 1,
        ..tiny(20)
    };
    let e = err_of(pretrain(&corpus, &out, &wild, Start::Resume));
    assert!(
        e.contains("became NaN at step 11")
            && e.contains("its checkpoint of step 10 is kept: resume it with a lower --lr"),
        "{e}"
    );
    let state = std::fs::read_to_string(out.join("trainer_state.json")).unwrap();
    assert!(state.contains("\"step\": 10,"), "{state}");
    assert_eq!(losses(&out).last().unwrap().0, 10, "no record past step 10");
    let s = pretrain(&corpus, &out, &tiny(20), Start::Resume).unwrap();
    assert!(
        s.steps == 20 && s.val_loss.is_finite(),
        "{} {}",
        s.steps,
        s.val_loss
    );

    // a fresh run that diverges before its first checkpoint is told to start again
    let e = err_of(pretrain(&corpus, &d.join("fresh"), &wild, Start::Fresh));
    assert!(
        e.contains("it has no checkpoint yet: start it again with a lower --lr and --overwrite"),
        "{e}"
    );
}

/// Weights saved over a run's checkpoint by another program (no step stamp), or left from another step, are not
/// resumed from, and the error tells the two apart.
#[test]
fn weights_not_of_the_last_checkpoint_are_not_resumed_from() {
    let d = tmp("stamp");
    let corpus = write_corpus(&d);
    let out = d.join("run");
    pretrain(&corpus, &out, &tiny(10), Start::Fresh).unwrap();
    let model = Gpt::load(&out).unwrap();
    model.save(&out, &[]).unwrap();
    let e = err_of(pretrain(&corpus, &out, &tiny(20), Start::Resume));
    assert!(
        e.contains("model.safetensors: has no step stamp, so no checkpoint of this run wrote it")
            && e.contains("--overwrite")
            && !e.contains("interrupted"),
        "{e}"
    );
    model.save(&out, &[("step", "3".into())]).unwrap();
    let e = err_of(pretrain(&corpus, &out, &tiny(20), Start::Resume));
    assert!(
        e.contains(
            "holds step 3, but trainer_state.json says 10: the last checkpoint was interrupted"
        ),
        "{e}"
    );
}

fn err_of(r: primer::Result<impl Sized>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_corpora_are_clear_errors() {
    let d = tmp("badcorpus");
    let empty = d.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let e = err_of(pretrain(&empty, &d.join("o1"), &tiny(2), Start::Fresh));
    assert!(e.contains("empty.txt") && e.contains("empty"), "{e}");

    let bad = d.join("bad.txt");
    std::fs::write(&bad, b"hello world\nabc\xff\xfedef\n").unwrap();
    let e = err_of(pretrain(&bad, &d.join("o2"), &tiny(2), Start::Fresh));
    assert!(
        e.contains("bad.txt") && e.contains("UTF-8") && e.contains("15"),
        "{e}"
    );

    // a path the run could not record in trainer_state.json (not UTF-8) is refused before anything is written,
    // not at the first checkpoint
    let odd_name = d.join(std::ffi::OsStr::from_bytes(b"bad\xffname.txt"));
    std::fs::copy(write_corpus(&d), &odd_name).unwrap();
    let e = err_of(pretrain(&odd_name, &d.join("o3"), &tiny(2), Start::Fresh));
    assert!(e.contains("not valid UTF-8"), "{e}");
    assert!(!d.join("o3").exists());

    // a model shape that cannot be built is reported before the corpus is tokenized
    let odd = GptTrainConfig {
        n_embd: 18,
        n_head: 4,
        ..tiny(2)
    };
    let e = err_of(pretrain(
        &write_corpus(&d),
        &d.join("o4"),
        &odd,
        Start::Fresh,
    ));
    assert!(
        e.contains("--n-embd 18 is not divisible by --n-head 4"),
        "{e}"
    );
    assert!(!d.join("o4").join("tokens.bin").exists());

    // so is a model, or a batch, too large for any memory, instead of an abort in the allocator or an overflow
    for huge in [
        GptTrainConfig {
            n_embd: 1 << 16,
            n_head: 1,
            ..tiny(2)
        },
        GptTrainConfig {
            batch_size: 1 << 61,
            ..tiny(2)
        },
        GptTrainConfig {
            tokenizer: "bpe".into(),
            vocab_size: 1 << 40,
            ..tiny(2)
        },
    ] {
        let e = err_of(pretrain(
            &write_corpus(&d),
            &d.join("o6"),
            &huge,
            Start::Fresh,
        ));
        assert!(e.contains("GiB of memory") && e.contains("--n-embd"), "{e}");
        // --vocab-size is named to lower only where it is a setting: with a BPE tokenizer
        assert_eq!(e.contains("--vocab-size"), huge.tokenizer == "bpe", "{e}");
        assert!(!d.join("o6").exists(), "a refused run leaves no directory");
    }
    // and a step of more tokens than can be counted
    let accum = GptTrainConfig {
        grad_accum: 1 << 62,
        ..tiny(2)
    };
    let e = err_of(pretrain(
        &write_corpus(&d),
        &d.join("o6"),
        &accum,
        Start::Fresh,
    ));
    assert!(e.contains("--grad-accum"), "{e}");

    let short = d.join("short.txt");
    std::fs::write(&short, "a short text\n").unwrap();
    let e = err_of(pretrain(&short, &d.join("o3"), &tiny(2), Start::Fresh));
    assert!(e.contains("short.txt") && e.contains("too short"), "{e}");

    // long enough to train on, but its last tenth (10 characters) holds no block of 16 + 1
    let no_val = d.join("noval.txt");
    std::fs::write(&no_val, "abcdefghi\n".repeat(10)).unwrap();
    // a file of someone else's in --out (no run marks it) is none of a failed run's business
    std::fs::create_dir_all(d.join("o5")).unwrap();
    std::fs::write(d.join("o5").join("config.json"), "{}").unwrap();
    let e = err_of(pretrain(&no_val, &d.join("o5"), &tiny(2), Start::Fresh));
    assert!(
        e.contains("noval.txt") && e.contains("validation split") && e.contains("--val-fraction"),
        "{e}"
    );
    // a fresh run that fails leaves none of its files behind
    for o in ["o2", "o3", "o5"] {
        for f in ["tokenizer.json", "tokens.bin"] {
            assert!(!d.join(o).join(f).exists(), "{o}/{f} left behind");
        }
    }
    assert!(d.join("o5").join("config.json").exists());
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    let d = tmp("badckpt");
    let model = Gpt::new(GptConfig::new(11, 8, 1, 2, 8), 0).unwrap();
    model.save(&d, &[]).unwrap();
    assert!(Gpt::load(&d).is_ok());

    // config.json with a missing field
    let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    json.as_object_mut().unwrap().remove("n_embd");
    std::fs::write(d.join("config.json"), json.to_string()).unwrap();
    let e = err_of(Gpt::load(&d));
    assert!(e.contains("config.json") && e.contains("n_embd"), "{e}");

    // n_embd not divisible by n_head
    json["n_embd"] = 9.into();
    std::fs::write(d.join("config.json"), json.to_string()).unwrap();
    let e = err_of(Gpt::load(&d));
    assert!(e.contains("not divisible"), "{e}");
    let e = err_of(Gpt::new(GptConfig::new(11, 8, 1, 2, 9), 0));
    assert!(
        e.contains("n_embd (9) is not divisible by n_head (2)"),
        "{e}"
    );
    // a LayerNorm epsilon that is not positive (NaN in every output)
    let mut json: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    json["layer_norm_epsilon"] = (-1.0).into();
    std::fs::write(d.join("config.json"), json.to_string()).unwrap();
    let e = err_of(Gpt::load(&d));
    assert!(
        e.contains("config.json")
            && e.contains("layer_norm_epsilon must be positive and finite, got -1"),
        "{e}"
    );
    std::fs::write(d.join("config.json"), &cfg).unwrap();

    // a config.json with fewer layers than the weights: refused rather than losing the last layer
    let deeper = d.join("deeper");
    Gpt::new(GptConfig::new(11, 8, 2, 2, 8), 0)
        .unwrap()
        .save(&deeper, &[])
        .unwrap();
    let text = std::fs::read_to_string(deeper.join("config.json")).unwrap();
    std::fs::write(
        deeper.join("config.json"),
        text.replace("\"n_layer\": 2", "\"n_layer\": 1"),
    )
    .unwrap();
    let e = err_of(Gpt::load(&deeper));
    assert!(
        e.contains("holds 2 layers, but config.json's n_layer is 1"),
        "{e}"
    );

    // a run's directory before its first checkpoint: said so, not reported as a missing config.json
    let early = d.join("early");
    std::fs::create_dir_all(&early).unwrap();
    std::fs::write(early.join("train_config.json"), "{}").unwrap();
    let e = err_of(Gpt::load(&early));
    assert!(e.contains("holds a run with no model yet"), "{e}");
    // but with its weights there, only config.json is missing, and that is what is said
    std::fs::write(early.join("model.safetensors"), "").unwrap();
    let e = err_of(Gpt::load(&early));
    assert!(
        !e.contains("no model yet") && e.contains("early/config.json"),
        "{e}"
    );

    // a directory of another model: said so, not reported as a field a GPT-2 config would have
    let e = err_of(primer::models::bert::Bert::load(&d));
    assert!(
        e.contains("config.json") && e.contains("model_type is \"gpt2\"") && e.contains("\"bert\""),
        "{e}"
    );
    let mut other: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    other["model_type"] = "bert".into();
    other.as_object_mut().unwrap().remove("n_positions");
    std::fs::write(d.join("config.json"), other.to_string()).unwrap();
    let e = err_of(Gpt::load(&d));
    assert!(
        e.contains("model_type is \"bert\"; this needs a \"gpt2\" model"),
        "{e}"
    );
    std::fs::write(d.join("config.json"), &cfg).unwrap();

    // truncated safetensors
    let st = std::fs::read(d.join("model.safetensors")).unwrap();
    std::fs::write(d.join("model.safetensors"), &st[..st.len() / 2]).unwrap();
    let e = err_of(Gpt::load(&d));
    assert!(
        e.contains("model.safetensors: not a valid safetensors file: truncated or corrupt"),
        "{e}"
    );
    // one byte short, the parser's own words ("incomplete metadata") say nothing of a cut-off file
    std::fs::write(d.join("model.safetensors"), &st[..st.len() - 1]).unwrap();
    let e = err_of(Gpt::load(&d));
    assert!(
        e.contains("truncated or corrupt") && e.contains(&format!("{} bytes", st.len() - 1)),
        "{e}"
    );

    // a weight that is NaN: named, rather than NaN in every output
    let mut broken = Gpt::new(GptConfig::new(11, 8, 1, 2, 8), 0).unwrap();
    broken.params[3] = f32::NAN;
    broken.save(&d, &[]).unwrap();
    std::fs::write(d.join("config.json"), &cfg).unwrap();
    let e = err_of(Gpt::load(&d));
    assert!(
        e.contains("model.safetensors") && e.contains("holds NaN at index"),
        "{e}"
    );

    // missing safetensors
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    let e = err_of(Gpt::load(&d));
    assert!(e.contains("model.safetensors"), "{e}");

    // a tensor missing: a checkpoint saved by an untied model lacks nothing, a tied one lacks lm_head
    let mut untied = GptConfig::new(11, 8, 1, 2, 8);
    untied.tie_word_embeddings = false;
    model.save(&d, &[]).unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    j["tie_word_embeddings"] = false.into();
    std::fs::write(d.join("config.json"), j.to_string()).unwrap();
    let e = err_of(Gpt::load(&d));
    assert!(e.contains("lm_head.weight"), "{e}");
}

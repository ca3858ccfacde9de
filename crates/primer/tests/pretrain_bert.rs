//! The BERT pretraining loop end to end on tiny models: it learns the masked words of a patterned corpus, writes a
//! checkpoint fill-mask and Hugging Face can read, resumes exactly, and refuses bad input with clear errors.

mod common;

use common::tmp;
use primer::infer::fill_mask::fill_mask;
use primer::models::bert::{Bert, Heads};
use primer::tokenize::TextTokenizer;
use primer::train::metrics::read_metrics;
use primer::train::pretrain_bert::{pretrain, BertTrainConfig};
use primer::train::Start;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Documents of counting sentences: each word follows from its neighbours, so masked words are predictable.
fn write_corpus(dir: &Path) -> PathBuf {
    let words = [
        "one", "two", "three", "four", "five", "six", "seven", "eight",
    ];
    let mut text = String::new();
    for doc in 0..120 {
        for i in 0..5 {
            let k = doc + i;
            text += &format!("after {} comes {}.\n", words[k % 8], words[(k + 1) % 8]);
        }
        text.push('\n');
    }
    let p = dir.join("corpus.txt");
    std::fs::write(&p, text).unwrap();
    p
}

fn tiny(max_iters: usize) -> BertTrainConfig {
    BertTrainConfig {
        vocab_size: 120,
        n_layer: 2,
        n_head: 2,
        n_embd: 64,
        block_size: 32,
        batch_size: 8,
        grad_accum: 2,
        max_iters,
        lr_decay_iters: 200,
        warmup_iters: 5,
        lr: 2e-3,
        eval_interval: 50,
        eval_iters: 2,
        dropout: 0.1,
        val_fraction: 0.1,
        ..BertTrainConfig::default()
    }
}

fn metric(dir: &Path, key: &str) -> Vec<(u64, f64)> {
    read_metrics(&dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter_map(|r| Some((r.get("step")?.as_u64()?, r.get(key)?.as_f64()?)))
        .collect()
}

#[test]
fn learns_and_resumes_exactly() {
    let dir = tmp("learn");
    let corpus = write_corpus(&dir);
    let full = dir.join("full");
    pretrain(&corpus, &full, &tiny(200), Start::Fresh).unwrap();
    let val = metric(&full, "val_mlm_loss");
    assert_eq!(
        val.iter().map(|v| v.0).collect::<Vec<_>>(),
        [0, 50, 100, 150, 200]
    );
    let (first, last) = (val[0].1, val[4].1);
    assert!(last < 0.6 * first, "val MLM loss {first} -> {last}");
    let acc = metric(&full, "val_mlm_accuracy");
    assert!(acc[4].1 > 0.4, "val MLM accuracy {}", acc[4].1);
    for key in ["mlm_loss", "nsp_loss", "mlm_accuracy", "val_nsp_accuracy"] {
        assert_eq!(
            metric(&full, key).len(),
            if key.starts_with("val") { 5 } else { 4 },
            "{key}"
        );
    }
    assert!(full.join("loss.png").is_file());

    // the checkpoint is a BertForPreTraining that fill-mask reads
    let model = Bert::load(&full).unwrap();
    assert_eq!(model.heads, Heads::PRETRAINING);
    assert_eq!(model.config.architectures, ["BertForPreTraining"]);
    let tok = TextTokenizer::from_dir(&full).unwrap();
    let fills = fill_mask(&model, &tok, "after three comes [MASK].", 3).unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].candidates.len(), 3);
    assert!(fills[0].candidates[0].prob >= fills[0].candidates[1].prob);
    // a [MASK] beyond the model's positions is an error, not dropped
    let long = "after three comes four. ".repeat(40) + "then [MASK].";
    let err = fill_mask(&model, &tok, &long, 3).unwrap_err().to_string();
    assert!(err.contains("past the limit"), "{err}");

    // 100 steps, then resumed to 200, equals 200 straight: same metrics, bit-identical weights
    let half = dir.join("half");
    pretrain(&corpus, &half, &tiny(100), Start::Fresh).unwrap();
    pretrain(&corpus, &half, &tiny(200), Start::Resume).unwrap();
    assert_eq!(metric(&half, "val_mlm_loss"), val);
    assert_eq!(metric(&half, "mlm_loss"), metric(&full, "mlm_loss"));
    assert_eq!(Bert::load(&half).unwrap().params, model.params);
}

/// A run that diverges at an evaluation stops before its checkpoint, which stays the last good one.
#[test]
fn a_diverging_run_keeps_its_last_checkpoint() {
    let dir = tmp("diverge");
    let corpus = write_corpus(&dir);
    let out = dir.join("run");
    let cfg = |max_iters, eval_interval, lr| BertTrainConfig {
        eval_interval,
        lr,
        min_lr: lr / 10.0,
        ..tiny(max_iters)
    };
    pretrain(&corpus, &out, &cfg(4, 4, 2e-3), Start::Fresh).unwrap();
    let err = pretrain(&corpus, &out, &cfg(8, 1, 1e30), Start::Resume)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("became NaN at step 5") && err.contains("its checkpoint of step 4 is kept"),
        "{err}"
    );
    let state = std::fs::read_to_string(out.join("trainer_state.json")).unwrap();
    assert!(state.contains("\"step\": 4,"), "{state}");
    assert_eq!(metric(&out, "val_mlm_loss").last().unwrap().0, 4);
    pretrain(&corpus, &out, &cfg(8, 4, 2e-3), Start::Resume).unwrap();
    assert_eq!(metric(&out, "val_mlm_loss").last().unwrap().0, 8);
}

#[test]
fn roberta_style_whole_word_run_saves_a_masked_lm() {
    let dir = tmp("mlm-only");
    let corpus = write_corpus(&dir);
    let cfg = BertTrainConfig {
        nsp: false,
        whole_word_mask: true,
        mask_replace: 0.5,
        random_replace: 0.5,
        ..tiny(20)
    };
    pretrain(&corpus, &dir.join("out"), &cfg, Start::Fresh).unwrap();
    let model = Bert::load(&dir.join("out")).unwrap();
    assert_eq!(model.heads, Heads::MASKED_LM);
    assert!(metric(&dir.join("out"), "nsp_loss").is_empty());
    assert_eq!(metric(&dir.join("out"), "val_mlm_loss").len(), 2);
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tmp("bad");
    let corpus = write_corpus(&dir);
    let err = |cfg: &BertTrainConfig, corpus: &Path, out: &str, start: Start| {
        pretrain(corpus, &dir.join(out), cfg, start)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    // masking splits that do not add up
    let bad = BertTrainConfig {
        mask_replace: 0.8,
        random_replace: 0.3,
        ..tiny(10)
    };
    assert!(err(&bad, &corpus, "a", Start::Fresh).contains("--random-replace"));
    // a tokenizer without [MASK]
    let bpe = TextTokenizer::train_bpe(std::slice::from_ref(&corpus), 300).unwrap();
    bpe.save(&dir.join("bpe.json")).unwrap();
    let with_bpe = BertTrainConfig {
        tokenizer: Some(dir.join("bpe.json")),
        ..tiny(10)
    };
    let e = err(&with_bpe, &corpus, "b", Start::Fresh);
    assert!(
        e.matches("bpe.json").count() == 1 && (e.contains("[PAD]") || e.contains("[MASK]")),
        "names the file (once) and the token: {e}"
    );
    // a corpus of blank lines
    let blank = dir.join("blank.txt");
    std::fs::write(&blank, "\n\n  \n").unwrap();
    let e = err(&tiny(10), &blank, "c", Start::Fresh);
    assert!(e.contains("blank.txt"), "{e}");
    // a validation file whose path train_config.json could not hold (not UTF-8) is refused before anything is
    // written
    let odd_name = dir.join(std::ffi::OsStr::from_bytes(b"val\xff.txt"));
    std::fs::copy(&corpus, &odd_name).unwrap();
    let with_odd_val = BertTrainConfig {
        val_corpus: Some(odd_name),
        ..tiny(10)
    };
    let e = err(&with_odd_val, &corpus, "d", Start::Fresh);
    assert!(e.contains("not valid UTF-8"), "{e}");
    assert!(!dir.join("d").exists());
    // runs refused for their tokenizer or their corpus leave no files behind
    for out in ["b", "c"] {
        assert!(!dir.join(out).join("tokenizer.json").exists(), "{out}");
    }
    // validation batches that happen to mask no token have no masked-LM loss to report: null, not a perfect 0
    let none_masked = BertTrainConfig {
        mlm_probability: 1e-6,
        batch_size: 1,
        grad_accum: 1,
        eval_iters: 1,
        ..tiny(2)
    };
    let s = pretrain(&corpus, &dir.join("none"), &none_masked, Start::Fresh).unwrap();
    assert!(s.val.mlm_loss().is_nan() && s.val.total_loss().is_finite());
    let last = std::fs::read_to_string(dir.join("none").join("metrics.jsonl")).unwrap();
    assert!(last.contains("\"val_mlm_loss\":null"), "{last}");
    assert!(primer::train::pretrain_bert::describe(&s.val).contains("no token was masked"));
    // resuming with a changed model, or past the end
    pretrain(&corpus, &dir.join("run"), &tiny(20), Start::Fresh).unwrap();
    let changed = BertTrainConfig {
        n_embd: 32,
        ..tiny(100)
    };
    assert!(err(&changed, &corpus, "run", Start::Resume).contains("--n-embd"));
    // the refusal names the flags, masking's one by one
    let masking = BertTrainConfig {
        nsp: false,
        mlm_probability: 0.3,
        ..tiny(100)
    };
    let e = err(&masking, &corpus, "run", Start::Resume);
    assert!(
        e.contains("--no-nsp, --mlm-probability;") && !e.contains("masking"),
        "{e}"
    );
    assert!(err(&tiny(20), &corpus, "run", Start::Resume).contains("larger --max-iters"));
    // the batch size and accumulation may change, as for GPT
    let smaller = BertTrainConfig {
        batch_size: 4,
        grad_accum: 1,
        ..tiny(30)
    };
    pretrain(&corpus, &dir.join("run"), &smaller, Start::Resume).unwrap();
    // nor on a corpus that changed since the run started
    let mut text = std::fs::read_to_string(&corpus).unwrap();
    text.push_str("\nan added document.\nwith two lines.\n");
    std::fs::write(&corpus, text).unwrap();
    let e = err(&tiny(40), &corpus, "run", Start::Resume);
    assert!(e.contains("bytes") && e.contains("keeps its corpus"), "{e}");
    // one that has moved is named, with the flag that says where it is now
    std::fs::rename(&corpus, dir.join("moved.txt")).unwrap();
    let e = err(&tiny(40), &corpus, "run", Start::Resume);
    assert!(
        e.contains("corpus.txt") && e.contains("pass --corpus"),
        "{e}"
    );
}

#[test]
fn a_reused_tokenizer_is_saved_framing_texts_as_the_model_reads_them() {
    let dir = tmp("framed");
    let corpus = write_corpus(&dir);
    let wordpiece =
        TextTokenizer::train_wordpiece(std::slice::from_ref(&corpus), 120, true).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&wordpiece.inner().to_string(false).unwrap()).unwrap();
    // without a post-processor, and with a byte-level one (offset trimming only), as a byte-level BPE has
    let byte_level = serde_json::json!(
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
    );
    for (name, processor, kept) in [
        ("bare.json", serde_json::Value::Null, None),
        ("byte_level.json", byte_level, Some("ByteLevel")),
    ] {
        json["post_processor"] = processor;
        let path = dir.join(name);
        std::fs::write(&path, json.to_string()).unwrap();
        let plain = TextTokenizer::from_file(&path).unwrap();
        let ids = plain.inner().encode(("after one", "comes"), true).unwrap();
        assert_eq!(
            ids.get_ids().first(),
            plain.token_to_id("after").as_ref(),
            "{name}"
        );
        let cfg = BertTrainConfig {
            tokenizer: Some(path),
            ..tiny(2)
        };
        let out = dir.join(format!("out-{name}"));
        pretrain(&corpus, &out, &cfg, Start::Fresh).unwrap();
        // the saved tokenizer frames a pair as [CLS] A [SEP] B [SEP], B's segment 1, as the run's batches were
        let saved = TextTokenizer::from_file(&out.join("tokenizer.json")).unwrap();
        let e = saved.inner().encode(("after one", "comes"), true).unwrap();
        let id = |t: &str| saved.token_to_id(t).unwrap();
        let words = |s: &str| saved.encode(s).unwrap();
        let want = [
            vec![id("[CLS]")],
            words("after one"),
            vec![id("[SEP]")],
            words("comes"),
            vec![id("[SEP]")],
        ]
        .concat();
        assert_eq!(e.get_ids(), want, "{name}");
        let n_a = 2 + words("after one").len();
        assert!(e.get_type_ids()[..n_a].iter().all(|&t| t == 0), "{name}");
        assert!(e.get_type_ids()[n_a..].iter().all(|&t| t == 1), "{name}");
        // a byte-level post-processor is kept, before the frame
        let saved_json: serde_json::Value =
            serde_json::from_str(&saved.inner().to_string(false).unwrap()).unwrap();
        let first = &saved_json["post_processor"]["processors"][0]["type"];
        assert_eq!(first.as_str(), kept, "{name}: {saved_json}");
    }
    // a tokenizer that frames texts already is saved as it is
    let cfg = BertTrainConfig {
        tokenizer: Some(dir.join("framed.json")),
        ..tiny(2)
    };
    wordpiece.save(&dir.join("framed.json")).unwrap();
    pretrain(&corpus, &dir.join("out-framed"), &cfg, Start::Fresh).unwrap();
    let saved = std::fs::read_to_string(dir.join("out-framed").join("tokenizer.json")).unwrap();
    assert_eq!(saved, wordpiece.inner().to_string(true).unwrap());
}

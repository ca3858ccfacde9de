//! Task models fine-tuned elsewhere: directories as transformers saves a BertForSequenceClassification,
//! BertForTokenClassification, BertForQuestionAnswering and GPT2ForSequenceClassification (no task.json; made by
//! `scripts/make_fixtures.py --only tasks`). primer reads the task and labels from config.json, encodes each input
//! as transformers' tokenizer does, gives transformers' logits, and saves them under the same tensor names.

use primer::finetune::evaluate::run;
use primer::finetune::features::Feature;
use primer::finetune::load::{load_finetuned, save_finetuned};
use primer::finetune::model::Task;
use primer::hf::TensorFile;
use primer::tasks::datasets::QaExample;
use serde::Deserialize;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// One input of `task_reference.json`: what was encoded, transformers' ids and its logits.
#[derive(Deserialize)]
struct Case {
    text: Option<String>,
    pair: Option<String>,
    words: Option<Vec<String>>,
    question: Option<String>,
    context: Option<String>,
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    logits: Vec<f32>,
}

fn cases(name: &str) -> Vec<Case> {
    let path = fixture(name).join("task_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tensor_names(dir: &std::path::Path) -> Vec<(String, Vec<usize>)> {
    let file = TensorFile::open(&dir.join("model.safetensors")).unwrap();
    let mut names: Vec<(String, Vec<usize>)> = file
        .names()
        .unwrap()
        .into_iter()
        .map(|n| {
            let (_, shape) = file.get_f32(&n).unwrap();
            (n, shape)
        })
        .collect();
    names.sort();
    names
}

#[test]
fn hugging_face_task_models_give_transformers_logits() {
    let expected = [
        ("bert_classifier", Task::Classify, vec!["neg", "neu", "pos"]),
        (
            "bert_tagger",
            Task::Ner,
            vec!["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
        ),
        ("bert_qa", Task::Qa, vec![]),
        ("gpt2_classifier", Task::Classify, vec!["no", "yes"]),
    ];
    let scratch = std::env::temp_dir().join(format!("primer-hf-tasks-{}", std::process::id()));
    for (name, task, labels) in expected {
        let dir = fixture(name);
        let (model, info, enc) = load_finetuned(&dir).unwrap();
        assert_eq!(info.task, task, "{name}");
        assert_eq!(info.labels, labels, "{name}");
        // 64 positions: inputs cut there, a qa question at half of them
        assert_eq!(
            info.max_len,
            if name == "gpt2_classifier" { 32 } else { 64 }
        );
        if task == Task::Qa {
            assert_eq!(info.max_query_len, 32);
        }
        let mut features = Vec::new();
        for c in cases(name) {
            // primer's encoding of the input is transformers'
            let f = match task {
                Task::Classify => enc
                    .classify(
                        c.text.as_deref().unwrap(),
                        c.pair.as_deref(),
                        -100,
                        info.max_len,
                        &|| name.to_string(),
                    )
                    .unwrap(),
                Task::Ner => enc
                    .tag(c.words.as_ref().unwrap(), &[], -100, info.max_len)
                    .unwrap(),
                Task::Qa => {
                    let q = QaExample {
                        id: "q".into(),
                        article: 0,
                        question: c.question.clone().unwrap(),
                        context: c.context.clone().unwrap(),
                        answers: vec![],
                    };
                    let mut windows = enc.qa(&q, 0, &info.qa_limits(), false).unwrap();
                    assert_eq!(windows.len(), 1, "{name}: {:?}", c.question);
                    windows.remove(0)
                }
                Task::IntentSlot => unreachable!(),
            };
            // a GPT-2 classifier is read without the padding (here <|endoftext|>) at the text's end, as
            // transformers reads it, and at the first token of a text that is all padding
            let mut ids = c.ids.clone();
            while name == "gpt2_classifier" && ids.len() > 1 && ids.last() == Some(&96) {
                ids.pop();
            }
            assert_eq!(f.ids, ids, "{name}: {:?}", c.text);
            assert_eq!(f.type_ids, c.type_ids[..ids.len()], "{name}: {:?}", c.text);
            features.push((f, c.logits));
        }
        let items: Vec<Feature> = features.iter().map(|(f, _)| f.clone()).collect();
        let outs = run(&model, &enc, &items, 3).unwrap();
        for ((f, want), out) in features.iter().zip(&outs) {
            // qa: transformers' start logits then end logits; primer keeps (start, end) per token
            let got: Vec<f32> = match task {
                Task::Classify => out.seq.clone(),
                Task::Qa => [0, 1]
                    .iter()
                    .flat_map(|&k| out.tok.iter().skip(k).step_by(2).copied())
                    .collect(),
                _ => out.tok.clone(),
            };
            assert_eq!(got.len(), want.len(), "{name}: {:?}", f.ids);
            let diff = got
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff <= 1e-4, "{name}: logits differ by {diff}");
        }
        // what primer saves has transformers' tensor names and shapes, and loads back to the same logits
        let saved = scratch.join(name);
        save_finetuned(&model, &info, &enc, &saved, &[]).unwrap();
        assert_eq!(tensor_names(&saved), tensor_names(&dir), "{name}");
        let (again, _, _) = load_finetuned(&saved).unwrap();
        let outs_again = run(&again, &enc, &items, 3).unwrap();
        for (a, b) in outs.iter().zip(&outs_again) {
            assert_eq!((&a.seq, &a.tok), (&b.seq, &b.tok), "{name}");
        }
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
fn a_model_without_a_task_head_is_named_as_such() {
    let dir = fixture("bert_tiny");
    let err = load_finetuned(&dir).err().unwrap().to_string();
    assert!(
        err.contains("task.json")
            && err.contains("BertForPreTraining")
            && err.contains("BertForSequenceClassification"),
        "{err}"
    );
}

/// `bert_classifier` copied into a scratch directory with its config.json changed by `edit`.
fn edited_classifier(scratch: &std::path::Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let src = fixture("bert_classifier");
    let dir = scratch.join("edited");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn configs_as_transformers_writes_them_and_heads_primer_cannot_run() {
    let scratch = std::env::temp_dir().join(format!("primer-hf-configs-{}", std::process::id()));
    // transformers 5 writes no id2label for a head of default names, and label2id null beside an id2label
    let dir = edited_classifier(&scratch, |c| {
        c.as_object_mut().unwrap().remove("id2label");
        c["label2id"] = serde_json::Value::Null;
    });
    let (_, info, _) = load_finetuned(&dir).unwrap();
    assert_eq!(info.labels, ["LABEL_0", "LABEL_1", "LABEL_2"]);
    // the task head is found among several classes
    let dir = edited_classifier(&scratch, |c| {
        c["architectures"] = serde_json::json!(["BertModel", "BertForSequenceClassification"]);
    });
    assert_eq!(load_finetuned(&dir).unwrap().1.task, Task::Classify);
    let refused = [
        (
            serde_json::json!({"0": "a", "1": "b", "2": "a"}),
            None,
            "\"a\" twice",
        ),
        (
            serde_json::json!({"0": "a", "1": "b", "3": "c"}),
            None,
            "0, 1, …",
        ),
        (
            serde_json::json!({"0": "a", "1": "b", "2": "c"}),
            Some("multi_label_classification"),
            "problem_type",
        ),
        (serde_json::json!({"0": "score"}), None, "1 output(s)"),
    ];
    for (id2label, problem, says) in refused {
        let dir = edited_classifier(&scratch, |c| {
            c["id2label"] = id2label.clone();
            if let Some(p) = problem {
                c["problem_type"] = p.into();
            }
        });
        let err = load_finetuned(&dir).err().unwrap().to_string();
        assert!(err.contains("config.json") && err.contains(says), "{err}");
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

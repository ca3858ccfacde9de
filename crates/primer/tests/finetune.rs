//! End-to-end fine-tuning of a tiny randomly initialised BERT (and GPT) on data generated here: every task must
//! learn its easy synthetic rule to near-perfect dev metrics, a fine-tuned directory must reload to the same
//! scores, and bad input must fail before anything that looks like a model is written.

mod common;

use primer::engine::rng::Rng;
use primer::finetune::data::Split;
use primer::finetune::evaluate::{run, score};
use primer::finetune::load::load_finetuned;
use primer::finetune::model::Task;
use primer::finetune::predict::{predict, Prediction};
use primer::finetune::train::{finetune, saved_run, FinetuneConfig, Splits};
use primer::models::bert::{Bert, BertConfig, Heads};
use primer::models::gpt::{Gpt, GptConfig};
use primer::tokenize::TextTokenizer;
use primer::train::Start;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const FILLER: &[&str] = &[
    "the", "a", "went", "to", "saw", "in", "and", "then", "with", "today", "very", "movie", "was",
    "film",
];
const NAMES: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank"];
const CITIES: &[&str] = &["paris", "rome", "oslo", "lima", "cairo", "tokyo"];

fn pick<'a>(rng: &mut Rng, v: &[&'a str]) -> &'a str {
    v[rng.below(v.len() as u64) as usize]
}

fn filler(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n).map(|_| pick(rng, FILLER).to_string()).collect()
}

/// Words of a sentence with `who` names (tag PER) and one city (tag LOC) among fillers; names may be two words.
fn tagged(rng: &mut Rng) -> (Vec<String>, Vec<String>) {
    let mut words = {
        let n = 2 + rng.below(3) as usize;
        filler(rng, n)
    };
    let mut tags = vec!["O".to_string(); words.len()];
    let two = rng.below(2) == 0;
    words.push(pick(rng, NAMES).into());
    tags.push("B-PER".into());
    if two {
        words.push(pick(rng, NAMES).into());
        tags.push("I-PER".into());
    }
    for w in {
        let n = 1 + rng.below(2) as usize;
        filler(rng, n)
    } {
        words.push(w);
        tags.push("O".into());
    }
    words.push(pick(rng, CITIES).into());
    tags.push("B-LOC".into());
    (words, tags)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A tiny random BERT with a WordPiece vocabulary trained on the generated words, saved in `dir`.
fn tiny_bert(dir: &Path) -> PathBuf {
    let corpus = dir.join("words.txt");
    let all: Vec<&str> = FILLER
        .iter()
        .chain(NAMES)
        .chain(CITIES)
        .chain(
            [
                "good", "bad", "play", "book", "where", "did", "go", "?", ".",
            ]
            .iter(),
        )
        .copied()
        .collect();
    write(&corpus, &all.join(" ").repeat(3));
    let tok = TextTokenizer::train_wordpiece(&[corpus], 200, true).unwrap();
    let model_dir = dir.join("bert");
    std::fs::create_dir_all(&model_dir).unwrap();
    tok.save(&model_dir.join("tokenizer.json")).unwrap();
    let mut cfg = BertConfig::new(tok.vocab_size(), 64, 2, 2, 32);
    cfg.intermediate_size = 64;
    Bert::new(cfg, Heads::MASKED_LM, 7)
        .unwrap()
        .save(&model_dir, &[])
        .unwrap();
    model_dir
}

/// Train and dev splits without a test split.
fn train_dev<'a>(train: &'a Split, dev: &'a Split) -> Splits<'a> {
    Splits {
        train,
        dev,
        test: None,
    }
}

fn config(task: Task) -> FinetuneConfig {
    let mut c = FinetuneConfig::new(task);
    c.epochs = 30;
    c.lr = 2e-3;
    c.batch_size = 16;
    c.max_len = 48;
    c.patience = 0;
    c
}

fn classify_file(path: &Path, rng: &mut Rng, n: usize) {
    let mut s = String::from("sentence\tlabel\n");
    for _ in 0..n {
        let pos = rng.below(2) == 0;
        let mut w = {
            let n = 3 + rng.below(4) as usize;
            filler(rng, n)
        };
        let at = rng.below(w.len() as u64) as usize;
        w.insert(at, if pos { "good" } else { "bad" }.into());
        writeln!(s, "{}\t{}", w.join(" "), if pos { "pos" } else { "neg" }).unwrap();
    }
    write(path, &s);
}

#[test]
fn classify_learns_and_reloads() {
    let dir = common::tmp("ft-classify");
    let model = tiny_bert(&dir);
    let mut rng = Rng::new(1);
    let (train, dev) = (dir.join("train.tsv"), dir.join("dev.tsv"));
    classify_file(&train, &mut rng, 240);
    classify_file(&dev, &mut rng, 60);
    let out = dir.join("out");
    let (tr, dv) = (Split::file(&train), Split::file(&dev));
    let splits = Splits {
        train: &tr,
        dev: &dv,
        test: Some(&dv),
    };
    let s = finetune(&model, &out, &splits, &config(Task::Classify), Start::Fresh).unwrap();
    assert!(s.dev["accuracy"] >= 0.95, "{:?}", s.dev);
    assert!(s.dev["macro_f1"] >= 0.95, "{:?}", s.dev);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "task.json",
        "metrics.jsonl",
        "curves.png",
        "eval.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["id2label"]["0"], "neg");
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    // transformers' tokenizer truncates where the model's positions end
    let tok_config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap())
            .unwrap();
    assert!(config["max_position_embeddings"].as_u64().is_some());
    assert_eq!(
        tok_config["model_max_length"],
        config["max_position_embeddings"]
    );
    // the saved model gives the same dev scores
    let (m, info, enc) = load_finetuned(&out).unwrap();
    let prep = primer::finetune::data::prepare(&enc, &info, &dv, None, false).unwrap();
    let again = score(&info, &prep, &run(&m, &enc, &prep.features, 7).unwrap());
    assert_eq!(again, s.dev);
    // and predicts raw text
    let p = predict(
        &m,
        &info,
        &enc,
        &["the movie was good today".into()],
        None,
        &|i| format!("text {i}"),
    )
    .unwrap();
    let Prediction::Class {
        label,
        probabilities,
        ..
    } = &p[0]
    else {
        panic!("{p:?}")
    };
    assert_eq!(label, "pos");
    let total: f32 = probabilities.iter().map(|x| x.1).sum();
    assert!((total - 1.0).abs() < 1e-4);
}

/// A run whose loss or weights stop being finite ends with an error that says how to go on: a resumed run keeps
/// its --lr, so it has to start again.
#[test]
fn a_diverging_run_says_to_start_again_with_a_lower_lr() {
    let dir = common::tmp("ft-diverge");
    let model = tiny_bert(&dir);
    let mut rng = Rng::new(4);
    let (train, dev) = (dir.join("train.tsv"), dir.join("dev.tsv"));
    classify_file(&train, &mut rng, 16);
    classify_file(&dev, &mut rng, 8);
    let (tr, dv) = (Split::file(&train), Split::file(&dev));
    let mut cfg = config(Task::Classify);
    // one step an epoch: the first step leaves weights that are finite but give NaN outputs, caught at the end
    // of the epoch, before its best model and checkpoint
    (cfg.lr, cfg.epochs) = (1e30, 4);
    let out = dir.join("out");
    let err = finetune(&model, &out, &train_dev(&tr, &dv), &cfg, Start::Fresh)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("a dev output became NaN at step 1")
            && err.contains(
                "it has no checkpoint yet: start it again with a lower --lr and --overwrite"
            ),
        "{err}"
    );
    assert!(!out.join("model.safetensors").exists());
    assert!(!out.join("checkpoint").join("trainer_state.json").exists());
}

/// Pairs whose label is the sentiment word of the second text; the first holds a random one to mislead.
fn pair_file(path: &Path, rng: &mut Rng, n: usize) {
    let mut s = String::from("premise\thypothesis\tlabel\n");
    let word = |rng: &mut Rng| if rng.below(2) == 0 { "good" } else { "bad" };
    for _ in 0..n {
        let (decoy, said) = (word(rng), word(rng));
        let a = format!("{} {decoy}", filler(rng, 3).join(" "));
        let b = format!("{said} {}", filler(rng, 2).join(" "));
        let label = if said == "good" { "pos" } else { "neg" };
        writeln!(s, "{a}\t{b}\t{label}").unwrap();
    }
    write(path, &s);
}

#[test]
fn classify_pairs_reads_the_second_text() {
    let dir = common::tmp("ft-pairs");
    let model = tiny_bert(&dir);
    let mut rng = Rng::new(9);
    let (train, dev) = (dir.join("train.tsv"), dir.join("dev.tsv"));
    pair_file(&train, &mut rng, 200);
    pair_file(&dev, &mut rng, 60);
    let (tr, dv) = (Split::file(&train), Split::file(&dev));
    let splits = train_dev(&tr, &dv);
    let mut cfg = config(Task::Classify);
    cfg.text_column = "premise".into();
    cfg.pair_column = Some("hypothesis".into());
    let out = dir.join("out");
    let s = finetune(&model, &out, &splits, &cfg, Start::Fresh).unwrap();
    assert!(s.dev["accuracy"] >= 0.9, "{:?}", s.dev);
    let (m, info, enc) = load_finetuned(&out).unwrap();
    let whence = |i: usize| format!("text {}", i + 1);
    let texts = [
        "the film was good ||| bad movie today".to_string(),
        "the film was bad ||| good movie today".to_string(),
    ];
    let p = predict(&m, &info, &enc, &texts, None, &whence).unwrap();
    let labels: Vec<&str> = p
        .iter()
        .map(|p| match p {
            Prediction::Class { label, .. } => label.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(labels, ["neg", "pos"]);
    // a pair classifier given one text says how to write a pair
    let one = ["good movie today".to_string()];
    let e = predict(&m, &info, &enc, &one, None, &whence)
        .unwrap_err()
        .to_string();
    assert!(e.contains("text 1") && e.contains("A ||| B"), "{e}");
    let three = ["good ||| movie ||| today".to_string()];
    let e = predict(&m, &info, &enc, &three, None, &whence)
        .unwrap_err()
        .to_string();
    assert!(e.contains("text 1") && e.contains("more than once"), "{e}");
}

#[test]
fn classify_with_a_gpt_reads_the_last_token() {
    let dir = common::tmp("ft-gpt");
    let mut rng = Rng::new(2);
    let (train, dev) = (dir.join("train.tsv"), dir.join("dev.tsv"));
    classify_file(&train, &mut rng, 240);
    classify_file(&dev, &mut rng, 60);
    let tok = TextTokenizer::train_char(std::slice::from_ref(&train)).unwrap();
    let model = dir.join("gpt");
    std::fs::create_dir_all(&model).unwrap();
    tok.save(&model.join("tokenizer.json")).unwrap();
    Gpt::new(GptConfig::new(tok.vocab_size(), 64, 2, 2, 32), 3)
        .unwrap()
        .save(&model, &[])
        .unwrap();
    let (tr, dv) = (Split::file(&train), Split::file(&dev));
    let splits = train_dev(&tr, &dv);
    let cfg = config(Task::Classify);
    let out = dir.join("out");
    let s = finetune(&model, &out, &splits, &cfg, Start::Fresh).unwrap();
    assert!(s.dev["accuracy"] >= 0.9, "{:?}", s.dev);
    // a text with no tokens is refused, named by where it came from
    let (m, info, enc) = load_finetuned(&out).unwrap();
    let texts = ["the movie was good".to_string(), String::new()];
    let whence = |i: usize| format!("texts.txt line {}", i + 1);
    let err = predict(&m, &info, &enc, &texts, None, &whence).unwrap_err();
    assert!(err.to_string().starts_with("texts.txt line 2: "), "{err}");
}

fn conll_file(path: &Path, rng: &mut Rng, n: usize) {
    let mut s = String::from("-DOCSTART- -X- -X- O\n\n");
    for _ in 0..n {
        let (w, t) = tagged(rng);
        for (w, t) in w.iter().zip(&t) {
            writeln!(s, "{w} NN O {t}").unwrap();
        }
        s.push('\n');
    }
    write(path, &s);
}

#[test]
fn ner_learns_entities() {
    let dir = common::tmp("ft-ner");
    let model = tiny_bert(&dir);
    let mut rng = Rng::new(3);
    let (train, dev) = (dir.join("train.txt"), dir.join("valid.txt"));
    conll_file(&train, &mut rng, 240);
    conll_file(&dev, &mut rng, 60);
    let (tr, dv) = (Split::file(&train), Split::file(&dev));
    let splits = train_dev(&tr, &dv);
    let out = dir.join("out");
    let s = finetune(&model, &out, &splits, &config(Task::Ner), Start::Fresh).unwrap();
    assert!(s.dev["f1"] >= 0.95, "{:?}", s.dev);
    let (m, info, enc) = load_finetuned(&out).unwrap();
    let text = "a saw alice then rome";
    let p = predict(&m, &info, &enc, &[text.into()], None, &|i| {
        format!("text {i}")
    })
    .unwrap();
    let Prediction::Entities { entities, .. } = &p[0] else {
        panic!("{p:?}")
    };
    let got: Vec<(&str, &str, usize)> = entities
        .iter()
        .map(|e| (e.label.as_str(), e.text.as_str(), e.start))
        .collect();
    assert_eq!(got, vec![("PER", "alice", 6), ("LOC", "rome", 17)]);
    // a tag training never saw is named with its own line
    let unseen = dir.join("unseen.txt");
    write(
        &unseen,
        "-DOCSTART- -X- -X- O\n\nalice NN O B-PER\nsaw NN O O\nacme NN O B-ORG\n",
    );
    let err = primer::finetune::data::prepare(&enc, &info, &Split::file(&unseen), None, false)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("line 5: label \"B-ORG\""), "{err}");
}

#[test]
fn intent_slot_learns_both_heads() {
    let dir = common::tmp("ft-joint");
    let model = tiny_bert(&dir);
    let data = dir.join("snips");
    let mut rng = Rng::new(4);
    // 600 sentences: with fewer, a random-init encoder's slot loss can hold the [CLS] intent at the majority
    // class for most of the 30 epochs (seen with 240 on several seeds)
    for (split, n) in [("train", 600), ("dev", 60)] {
        let d = data.join(split);
        std::fs::create_dir_all(&d).unwrap();
        let (mut sin, mut sout, mut lab) = (String::new(), String::new(), String::new());
        for _ in 0..n {
            let (mut w, mut t) = tagged(&mut rng);
            let play = rng.below(2) == 0;
            w.insert(0, if play { "play" } else { "book" }.into());
            t.insert(0, "O".into());
            let t: Vec<String> = t
                .iter()
                .map(|t| t.replace("PER", "artist").replace("LOC", "city"))
                .collect();
            writeln!(sin, "{} ", w.join(" ")).unwrap();
            writeln!(sout, "{} ", t.join(" ")).unwrap();
            writeln!(lab, "{}", if play { "PlayMusic" } else { "BookRestaurant" }).unwrap();
        }
        write(&d.join("seq.in"), &sin);
        write(&d.join("seq.out"), &sout);
        write(&d.join("label"), &lab);
    }
    let split = |name: &str| Split {
        path: data.clone(),
        joint_split: Some(name.into()),
        articles: None,
    };
    let (tr, dv) = (split("train"), split("dev"));
    let splits = train_dev(&tr, &dv);
    let s = finetune(
        &model,
        &dir.join("out"),
        &splits,
        &config(Task::IntentSlot),
        Start::Fresh,
    )
    .unwrap();
    assert!(s.dev["intent_accuracy"] >= 0.98, "{:?}", s.dev);
    assert!(s.dev["slot_f1"] >= 0.95, "{:?}", s.dev);
    assert!(s.dev["sentence_accuracy"] >= 0.9, "{:?}", s.dev);
}

fn squad_file(path: &Path, rng: &mut Rng, n: usize) {
    let mut paragraphs = Vec::new();
    for i in 0..n {
        let who = pick(rng, NAMES);
        let city = pick(rng, CITIES);
        let mut before = {
            let n = 2 + rng.below(4) as usize;
            filler(rng, n)
        }
        .join(" ");
        before = format!("{before} {who} went to ");
        let context = format!("{before}{city} {} .", filler(rng, 3).join(" "));
        paragraphs.push(serde_json::json!({
            "context": context,
            "qas": [{"id": format!("q{i}"), "question": format!("where did {who} go ?"),
                      "answers": [{"text": city, "answer_start": before.chars().count()}]}]
        }));
    }
    let doc =
        serde_json::json!({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]});
    write(path, &doc.to_string());
}

#[test]
fn qa_learns_spans_and_windows_long_contexts() {
    let dir = common::tmp("ft-qa");
    let model = tiny_bert(&dir);
    let mut rng = Rng::new(5);
    let (train, dev) = (dir.join("train.json"), dir.join("dev.json"));
    squad_file(&train, &mut rng, 240);
    squad_file(&dev, &mut rng, 60);
    let (tr, dv) = (Split::file(&train), Split::file(&dev));
    let splits = train_dev(&tr, &dv);
    let mut cfg = config(Task::Qa);
    // windows of 20 tokens (about 12 of context) sharing 8: long contexts need two
    cfg.max_len = 20;
    cfg.doc_stride = 8;
    let out = dir.join("out");
    let s = finetune(&model, &out, &splits, &cfg, Start::Fresh).unwrap();
    assert!(s.dev["exact_match"] >= 0.9, "{:?}", s.dev);
    assert!(s.dev["f1"] >= 0.9, "{:?}", s.dev);
    let (m, info, enc) = load_finetuned(&out).unwrap();
    let ctx = "the film was very a movie and erin went to lima with the a then .";
    let p = predict(
        &m,
        &info,
        &enc,
        &["where did erin go ?".into()],
        Some(ctx),
        &|i| format!("text {i}"),
    )
    .unwrap();
    let Prediction::Answer { answer, .. } = &p[0] else {
        panic!("{p:?}")
    };
    assert_eq!((answer.text.as_str(), answer.start), ("lima", 43));
    // questions asked together (their windows run in shared batches) get the answers each gets alone
    let questions: Vec<String> = [
        "who went to lima ?",
        "where did erin go ?",
        "what was very a movie ?",
    ]
    .map(String::from)
    .into();
    let ask =
        |qs: &[String]| predict(&m, &info, &enc, qs, Some(ctx), &|i| format!("text {i}")).unwrap();
    let together = ask(&questions);
    assert_eq!(together.len(), questions.len());
    for (q, got) in questions.iter().zip(&together) {
        let alone = ask(std::slice::from_ref(q));
        let (
            Prediction::Answer {
                question,
                answer,
                probability,
            },
            Prediction::Answer {
                answer: a1,
                probability: p1,
                ..
            },
        ) = (got, &alone[0])
        else {
            panic!("{got:?}")
        };
        assert_eq!(question, q);
        assert_eq!((&answer.text, answer.start), (&a1.text, a1.start), "{q}");
        assert!(
            (probability - p1).abs() < 1e-5,
            "{q}: {probability} vs {p1}"
        );
    }
    // windows that share all they hold could not move on: refused, naming the question, before anything is written
    cfg.doc_stride = 40;
    let other = dir.join("other");
    let err = finetune(&model, &other, &splits, &cfg, Start::Fresh).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("train.json") && msg.contains("question q") && msg.contains("--doc-stride 40"),
        "{msg}"
    );
    assert!(!other.exists());
    // left at their defaults (64 and 128, made for 384-token windows), the question length and the overlap are
    // fitted to 20-token windows: half the window, then half the 7 context tokens left; a resumed run with the
    // same settings fits them the same way
    let mut cfg = config(Task::Qa);
    cfg.max_len = 20;
    cfg.epochs = 2;
    cfg.stop_after_epochs = Some(1);
    let fitted = dir.join("fitted");
    finetune(&model, &fitted, &splits, &cfg, Start::Fresh).unwrap();
    let (_, info, _) = load_finetuned(&fitted).unwrap();
    assert_eq!((info.max_query_len, info.doc_stride), (10, 3));
    cfg.stop_after_epochs = None;
    let s = finetune(&model, &fitted, &splits, &cfg, Start::Resume).unwrap();
    assert_eq!(s.epochs_run, 2);
}

#[test]
fn resume_continues_the_same_run() {
    let dir = common::tmp("ft-resume");
    let model = tiny_bert(&dir);
    let mut rng = Rng::new(6);
    let (train, dev) = (dir.join("train.tsv"), dir.join("dev.tsv"));
    classify_file(&train, &mut rng, 160);
    classify_file(&dev, &mut rng, 40);
    let (tr, dv) = (Split::file(&train), Split::file(&dev));
    let splits = train_dev(&tr, &dv);
    let mut cfg = config(Task::Classify);
    cfg.epochs = 4;
    cfg.lr = 5e-3;
    let whole = dir.join("whole");
    finetune(&model, &whole, &splits, &cfg, Start::Fresh).unwrap();
    let parts = dir.join("parts");
    cfg.stop_after_epochs = Some(2);
    finetune(&model, &parts, &splits, &cfg, Start::Fresh).unwrap();
    cfg.stop_after_epochs = None;
    finetune(&model, &parts, &splits, &cfg, Start::Resume).unwrap();
    let read = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    let losses = |s: String| -> Vec<(f64, f64)> {
        s.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v.get("dev_accuracy").is_some())
            .map(|v| {
                (
                    v["epoch_train_loss"].as_f64().unwrap(),
                    v["dev_accuracy"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let (a, b) = (losses(read(&whole)), losses(read(&parts)));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b);

    // a run killed while it moved its epoch-3 checkpoint and its best model (the files of the same names in OUT)
    // into place: model.safetensors is epoch 3's, the other files still epoch 2's, epoch 3's wait in
    // .checkpoint-pending; the resumed run finishes both moves first
    let (two, torn) = (dir.join("two"), dir.join("torn"));
    cfg.stop_after_epochs = Some(2);
    finetune(&model, &two, &splits, &cfg, Start::Fresh).unwrap();
    cfg.stop_after_epochs = Some(3);
    let before = finetune(&model, &torn, &splits, &cfg, Start::Fresh).unwrap();
    // so that the best model being moved is not the one it replaces
    assert_eq!(before.best_epoch, 3);
    let ckpt = torn.join("checkpoint");
    let (pending, best_pending) = (
        ckpt.join(".checkpoint-pending"),
        torn.join(".checkpoint-pending"),
    );
    std::fs::create_dir(&pending).unwrap();
    std::fs::create_dir(&best_pending).unwrap();
    for entry in std::fs::read_dir(&ckpt).unwrap() {
        let name = entry.unwrap().file_name();
        if name == "model.safetensors" || name == ".checkpoint-pending" {
            continue;
        }
        std::fs::rename(ckpt.join(&name), pending.join(&name)).unwrap();
        std::fs::copy(two.join("checkpoint").join(&name), ckpt.join(&name)).unwrap();
        if torn.join(&name).exists() {
            std::fs::rename(torn.join(&name), best_pending.join(&name)).unwrap();
            std::fs::copy(two.join(&name), torn.join(&name)).unwrap();
        }
    }
    assert!(std::fs::read_dir(&best_pending).unwrap().count() >= 3);
    cfg.stop_after_epochs = None;
    finetune(&model, &torn, &splits, &cfg, Start::Resume).unwrap();
    assert_eq!(losses(read(&torn)), a);
    assert!(!pending.exists() && !best_pending.exists());
    for name in ["model.safetensors", "config.json", "task.json"] {
        let file = |d: &Path| std::fs::read(d.join(name)).unwrap();
        assert!(file(&torn) == file(&whole), "{name}");
    }
}

#[test]
fn bad_input_fails_before_writing_a_model() {
    let dir = common::tmp("ft-bad");
    let model = tiny_bert(&dir);
    let mut rng = Rng::new(7);
    let good = dir.join("good.tsv");
    classify_file(&good, &mut rng, 20);
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty.tsv", "sentence\tlabel\n".into(), "no examples"),
        (
            "nolabel.tsv",
            "sentence\tscore\nfine film\t1\n".into(),
            "label",
        ),
    ];
    for (name, text, want) in cases {
        let bad = dir.join(name);
        write(&bad, &text);
        let out = dir.join(format!("out-{name}"));
        let (tr, dv) = (Split::file(&bad), Split::file(&good));
        let splits = train_dev(&tr, &dv);
        let err =
            finetune(&model, &out, &splits, &config(Task::Classify), Start::Fresh).unwrap_err();
        assert!(err.to_string().contains(want), "{name}: {err}");
        assert!(
            !out.join("model.safetensors").exists(),
            "{name}: a model was written"
        );
    }
    // a dev label never seen in training names the label and the line
    let dev = dir.join("dev.tsv");
    write(&dev, "sentence\tlabel\nfine film\tpos\nodd one\tmaybe\n");
    let (tr, dv) = (Split::file(&good), Split::file(&dev));
    let splits = train_dev(&tr, &dv);
    let out = dir.join("out-dev");
    let err = finetune(&model, &out, &splits, &config(Task::Classify), Start::Fresh).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("maybe") && msg.contains("line 3"), "{msg}");
    assert!(!out.join("model.safetensors").exists());
    // a pretraining run that has not reached its first checkpoint is no model yet, and says so
    let early = dir.join("early-run");
    std::fs::create_dir_all(&early).unwrap();
    write(&early.join("train_config.json"), "{}");
    let (tr, dv) = (Split::file(&good), Split::file(&good));
    let splits = train_dev(&tr, &dv);
    let err = finetune(
        &early,
        &dir.join("out-early"),
        &splits,
        &config(Task::Classify),
        Start::Fresh,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("holds a run with no model yet"), "{err}");
    // predicting with a pretrained model that was never fine-tuned says so
    let msg = load_finetuned(&model).map(|_| ()).unwrap_err().to_string();
    assert!(
        msg.contains("task.json") && msg.contains("primer finetune"),
        "{msg}"
    );
}

#[test]
fn an_out_holding_a_run_or_a_model_is_not_written_over() {
    let dir = common::tmp("ft-out");
    let model = tiny_bert(&dir);
    let mut rng = Rng::new(8);
    let (train, dev, bad) = (
        dir.join("train.tsv"),
        dir.join("dev.tsv"),
        dir.join("bad.tsv"),
    );
    classify_file(&train, &mut rng, 40);
    classify_file(&dev, &mut rng, 10);
    write(&bad, "sentence\tlabel\n");
    let (tr, dv, bd) = (Split::file(&train), Split::file(&dev), Split::file(&bad));
    let splits = train_dev(&tr, &dv);
    let mut cfg = config(Task::Classify);
    cfg.epochs = 1;
    let out = dir.join("out");
    let err = |out: &Path, splits: &Splits, cfg: &FinetuneConfig, start: Start| {
        finetune(&model, out, splits, cfg, start)
            .unwrap_err()
            .to_string()
    };
    // nothing to resume yet
    let e = err(&out, &splits, &cfg, Start::Resume);
    assert!(e.contains("no run to resume"), "{e}");
    finetune(&model, &out, &splits, &cfg, Start::Fresh).unwrap();
    let weights = || std::fs::read(out.join("model.safetensors")).unwrap();
    let first = weights();
    // forgetting --resume loses nothing
    cfg.seed = 1;
    let e = err(&out, &splits, &cfg, Start::Fresh);
    assert!(
        e.contains("already holds a fine-tuning run")
            && e.contains("--resume")
            && e.contains("--overwrite"),
        "{e}"
    );
    assert!(weights() == first);
    // the model being fine-tuned (by any spelling, or inside what a run replaces) is never a valid --out
    for start in [Start::Fresh, Start::Overwrite] {
        let e = err(&model.join("."), &splits, &cfg, start);
        assert!(e.contains("holds the model being fine-tuned"), "{e}");
    }
    let e = finetune(
        &out.join("checkpoint"),
        &out,
        &splits,
        &cfg,
        Start::Overwrite,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("holds the model being fine-tuned"), "{e}");
    // nor is another model, or a pretraining run, even with --overwrite
    let other = dir.join("other-model");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(model.join("config.json"), other.join("config.json")).unwrap();
    let pretrained = dir.join("pretrained");
    std::fs::create_dir_all(&pretrained).unwrap();
    for name in ["config.json", "train_config.json", "trainer_state.json"] {
        write(&pretrained.join(name), "{}");
    }
    for start in [Start::Fresh, Start::Overwrite] {
        for holder in [&other, &pretrained] {
            let e = err(holder, &splits, &cfg, start);
            assert!(
                e.contains("not a fine-tuning run (it has config.json)"),
                "{e}"
            );
        }
    }
    let e = err(&pretrained, &splits, &cfg, Start::Resume);
    assert!(e.contains("holds a pretraining run"), "{e}");
    assert!(pretrained.join("trainer_state.json").exists() && other.join("config.json").exists());
    // --overwrite replaces the run only once the new one has passed its checks
    let bad_splits = train_dev(&bd, &dv);
    let e = err(&out, &bad_splits, &cfg, Start::Overwrite);
    assert!(e.contains("no examples"), "{e}");
    assert!(weights() == first);
    write(&out.join("notes.txt"), "mine");
    finetune(&model, &out, &splits, &cfg, Start::Overwrite).unwrap();
    assert!(weights() != first);
    // what is not the run's stays
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.matches("dev_accuracy").count(), 1, "{metrics}");
    // other data on resume is refused, naming the flag and what the run trained with
    let e = err(&out, &bad_splits, &cfg, Start::Resume);
    assert!(
        e.contains("--train") && e.contains("train.tsv") && e.contains("keeps its data"),
        "{e}"
    );
    // a changed setting is named on resume
    cfg.lr = 1e-3;
    let e = err(&out, &splits, &cfg, Start::Resume);
    assert!(
        e.contains("--lr 0.001 (saved: 0.002)") && !e.contains("--seed"),
        "{e}"
    );
    // limits checked before anything is written
    let fresh = dir.join("fresh");
    cfg.stop_after_epochs = Some(0);
    let e = err(&fresh, &splits, &cfg, Start::Fresh);
    assert!(e.contains("--stop-after-epochs"), "{e}");
    cfg.stop_after_epochs = None;
    cfg.max_len = 65;
    cfg.max_len_given = true;
    let e = err(&fresh, &splits, &cfg, Start::Fresh);
    assert!(
        e.contains("--max-len 65") && e.contains("64 positions"),
        "{e}"
    );
    assert!(!fresh.exists());
    // a default longer than the model's positions is cut to them, and a resume without --max-len keeps that
    cfg.max_len_given = false;
    cfg.stop_after_epochs = Some(1);
    cfg.epochs = 2;
    finetune(&model, &fresh, &splits, &cfg, Start::Fresh).unwrap();
    let (_, info, _) = load_finetuned(&fresh).unwrap();
    assert_eq!(info.max_len, 64);
    cfg.stop_after_epochs = None;
    finetune(&model, &fresh, &splits, &cfg, Start::Resume).unwrap();
}

#[test]
fn a_resumed_run_checks_its_data_by_content_and_follows_it_when_moved() {
    let dir = common::tmp("ft-resume-data");
    let model = tiny_bert(&dir);
    let mut rng = Rng::new(9);
    let (train, dev) = (dir.join("train.tsv"), dir.join("dev.tsv"));
    classify_file(&train, &mut rng, 60);
    classify_file(&dev, &mut rng, 20);
    let (tr, dv) = (Split::file(&train), Split::file(&dev));
    let mut cfg = config(Task::Classify);
    cfg.epochs = 3;
    cfg.stop_after_epochs = Some(1);
    let out = dir.join("out");
    finetune(&model, &out, &train_dev(&tr, &dv), &cfg, Start::Fresh).unwrap();
    cfg.stop_after_epochs = Some(2);
    let resume = |train: &Split, test: Option<&Split>, cfg: &FinetuneConfig| {
        let splits = Splits {
            train,
            dev: &dv,
            test,
        };
        finetune(&model, &out, &splits, cfg, Start::Resume).map_err(|e| e.to_string())
    };
    // one label changed, the size kept
    let text = std::fs::read_to_string(&train).unwrap();
    let flipped = match text.find("\tpos\n") {
        Some(at) => format!("{}\tneg\n{}", &text[..at], &text[at + 5..]),
        None => text.replacen("\tneg\n", "\tpos\n", 1),
    };
    assert_eq!(flipped.len(), text.len());
    write(&train, &flipped);
    let e = resume(&tr, None, &cfg).unwrap_err();
    assert!(
        e.contains("other content") && e.contains("keeps its data"),
        "{e}"
    );
    write(&train, &text);
    // moved: gone from where it was, then found (by content, not by name) where it is now
    let moved = dir.join("moved.tsv");
    std::fs::rename(&train, &moved).unwrap();
    let e = resume(&tr, None, &cfg).unwrap_err();
    assert!(
        e.contains("cannot be read") && e.contains("where it is now"),
        "{e}"
    );
    let e = resume(&dv, None, &cfg).unwrap_err();
    assert!(e.contains("keeps its data"), "{e}");
    let mv = Split::file(&moved);
    resume(&mv, None, &cfg).unwrap();
    let saved = saved_run(&out).unwrap();
    let [recorded, _] = saved.data.unwrap();
    assert!(recorded.path.ends_with("moved.tsv"), "{:?}", recorded.path);
    assert!(saved.model.is_some_and(|m| m.ends_with("bert")));
    // a test split given to a finished run is recorded too
    cfg.stop_after_epochs = None;
    resume(&mv, None, &cfg).unwrap();
    resume(&mv, Some(&dv), &cfg).unwrap();
    assert!(saved_run(&out).unwrap().test.is_some());
    // without its checkpoint, a finished run is not taken for one that never finished an epoch
    std::fs::remove_dir_all(out.join("checkpoint")).unwrap();
    let e = resume(&mv, None, &cfg).unwrap_err();
    assert!(
        e.contains("cannot be resumed") && !e.contains("first epoch") && e.contains("primer eval"),
        "{e}"
    );
    let splits = train_dev(&mv, &dv);
    let e = finetune(&model, &out, &splits, &cfg, Start::Fresh)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("without a checkpoint") && e.contains("primer eval"),
        "{e}"
    );
}

#[test]
fn a_resumed_intent_slot_run_checks_its_split_directories() {
    let dir = common::tmp("ft-resume-joint");
    let model = tiny_bert(&dir);
    let data = dir.join("snips");
    for split in ["train", "dev"] {
        let d = data.join(split);
        std::fs::create_dir_all(&d).unwrap();
        write(&d.join("seq.in"), &"play alice\nbook rome\n".repeat(10));
        write(&d.join("seq.out"), &"O B-artist\nO B-city\n".repeat(10));
        write(&d.join("label"), &"PlayMusic\nBookRestaurant\n".repeat(10));
    }
    let joint = |split: &str| Split {
        path: data.clone(),
        joint_split: Some(split.into()),
        articles: None,
    };
    let (tr, dv) = (joint("train"), joint("dev"));
    let mut cfg = config(Task::IntentSlot);
    cfg.epochs = 3;
    cfg.stop_after_epochs = Some(1);
    let out = dir.join("out");
    finetune(&model, &out, &train_dev(&tr, &dv), &cfg, Start::Fresh).unwrap();
    // a renamed split directory is the same data
    std::fs::rename(data.join("train"), data.join("renamed")).unwrap();
    let renamed = joint("renamed");
    cfg.stop_after_epochs = Some(2);
    finetune(&model, &out, &train_dev(&renamed, &dv), &cfg, Start::Resume).unwrap();
    cfg.stop_after_epochs = None;
    let resume = |train: &Split| {
        finetune(&model, &out, &train_dev(train, &dv), &cfg, Start::Resume)
            .unwrap_err()
            .to_string()
    };
    // a missing file of the directory is named
    let split = data.join("renamed");
    let slots = std::fs::read_to_string(split.join("seq.out")).unwrap();
    std::fs::remove_file(split.join("seq.out")).unwrap();
    let e = resume(&renamed);
    assert!(e.contains("seq.out") && e.contains("cannot be read"), "{e}");
    // more examples are other data
    write(&split.join("seq.out"), &slots);
    for (file, line) in [
        ("seq.in", "play bob\n"),
        ("seq.out", "O B-artist\n"),
        ("label", "PlayMusic\n"),
    ] {
        let text = std::fs::read_to_string(split.join(file)).unwrap();
        write(&split.join(file), &(text + line));
    }
    let e = resume(&renamed);
    assert!(e.contains("--train") && e.contains("keeps its data"), "{e}");
}

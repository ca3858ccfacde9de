//! Fill-mask against transformers' fill-mask pipeline: the cases in `bert_tiny/fill_mask.json`, made by
//! `scripts/make_fixtures.py --only fill` with the WordPiece tokenizer `fixtures/fill_mask_tokenizer.json`, give
//! the same candidates (ids, tokens, order) with the same probabilities, whether the texts go one at a time or
//! padded together in one batch; `targets` restrict the candidates as the pipeline's do.

mod common;

use common::fixture;
use primer::infer::fill_mask::{FillMask, MaskFill};
use primer::models::bert::Bert;
use primer::tokenize::TextTokenizer;
use serde_json::Value;

/// Panics unless `got` has the fixture's masks, candidates and probabilities (within 1e-5).
fn check(case: &Value, got: &[MaskFill]) {
    let want = case["masks"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{case}");
    for (g, w) in got.iter().zip(want) {
        let w = w.as_array().unwrap();
        let ids: Vec<u64> = w.iter().map(|c| c["id"].as_u64().unwrap()).collect();
        let got_ids: Vec<u64> = g.candidates.iter().map(|c| c.id as u64).collect();
        assert_eq!(got_ids, ids, "{case}");
        for (gc, wc) in g.candidates.iter().zip(w) {
            assert_eq!(gc.token, wc["token"].as_str().unwrap(), "{case}");
            let p = wc["prob"].as_f64().unwrap() as f32;
            assert!((gc.prob - p).abs() < 1e-5, "{case}: {} vs {p}", gc.prob);
        }
    }
}

#[test]
fn fill_mask_matches_the_transformers_pipeline() {
    let model = Bert::load(&fixture("bert_tiny")).unwrap().into_inference();
    let tok = TextTokenizer::from_file(&fixture("fill_mask_tokenizer.json")).unwrap();
    let text = std::fs::read_to_string(fixture("bert_tiny").join("fill_mask.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    let setting = |c: &Value| {
        let targets: Option<Vec<String>> = serde_json::from_value(c["targets"].clone()).unwrap();
        (c["top_k"].as_u64().unwrap() as usize, targets)
    };
    for case in cases {
        let (top_k, targets) = setting(case);
        let fm = FillMask::new(&model, &tok, top_k, targets.as_deref()).unwrap();
        let one = fm.prepare(case["text"].as_str().unwrap()).unwrap();
        check(case, &fm.run(&[one]).unwrap()[0]);
    }
    // the texts of one setting padded together into one batch
    let plain: Vec<&Value> = cases.iter().filter(|c| setting(c) == (5, None)).collect();
    assert!(
        plain.len() >= 6,
        "the fixture should hold every text with top 5"
    );
    let fm = FillMask::new(&model, &tok, 5, None).unwrap();
    let batch: Vec<_> = plain
        .iter()
        .map(|c| fm.prepare(c["text"].as_str().unwrap()).unwrap())
        .collect();
    for (case, got) in plain.iter().zip(fm.run(&batch).unwrap()) {
        check(case, &got);
    }
    assert!(
        cases
            .iter()
            .any(|c| c["masks"].as_array().unwrap().len() > 1),
        "the fixture should hold texts with several masks"
    );
}

#[test]
fn bad_targets_and_texts_are_refused() {
    let model = Bert::load(&fixture("bert_tiny")).unwrap().into_inference();
    let tok = TextTokenizer::from_file(&fixture("fill_mask_tokenizer.json")).unwrap();
    let err = |targets: &[&str]| {
        let t: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
        FillMask::new(&model, &tok, 5, Some(&t))
            .err()
            .unwrap()
            .to_string()
    };
    // "cats" is two pieces here (cat ##s): a mask holds one token
    let e = err(&["mat", "cats"]);
    assert!(e.contains("\"cats\" is 2 tokens (cat ##s)"), "{e}");
    // a word the vocabulary lacks is [UNK], which is no answer to score
    let e = err(&["mat", "☃"]);
    assert!(e.contains("\"☃\" is not in the vocabulary"), "{e}");
    let e = err(&[]);
    assert!(e.contains("at least one"), "{e}");
    let e = err(&["mat", ""]);
    assert!(e.contains("empty target"), "{e}");
    assert!(FillMask::new(&model, &tok, 0, None).is_err());
    let fm = FillMask::new(&model, &tok, 5, None).unwrap();
    let e = fm.prepare("no mask here").err().unwrap().to_string();
    assert!(e.contains("no [MASK]") && !e.contains("capitals"), "{e}");
    let e = fm.prepare("the [mask] sat").err().unwrap().to_string();
    assert!(
        e.contains("no [MASK] token to fill ([MASK] is written in capitals)"),
        "{e}"
    );
    // bert_tiny has 64 positions: a [MASK] after 70 words is past them
    let long = "the cat ".repeat(35) + "[MASK]";
    let e = fm.prepare(&long).err().unwrap().to_string();
    assert!(e.contains("past the limit"), "{e}");
}

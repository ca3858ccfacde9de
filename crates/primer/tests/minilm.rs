//! Real weights: all-MiniLM-L6-v2 (fetched by `scripts/fetch_minilm.sh target/minilm`, as `.ci/run` does) must
//! tokenize like the Hugging Face fast tokenizer and embed like sentence-transformers (mean pooling, normalized,
//! inputs truncated at 512 tokens); the reference is `tests/fixtures/minilm_embeddings.json`, made by
//! `scripts/minilm_reference.py`. Skipped, with a message, when the checkpoint is absent, unless
//! `PRIMER_REQUIRE_MINILM` is set (as `.ci/run` sets it).

mod common;

use primer::infer::bert_batch::BertEncoder;
use primer::infer::embed::{embed, Pooling};
use primer::models::bert::Bert;
use primer::tokenize::TextTokenizer;
use std::path::PathBuf;

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PRIMER_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/minilm"));
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        assert!(
            std::env::var_os("PRIMER_REQUIRE_MINILM").is_none(),
            "PRIMER_REQUIRE_MINILM is set but {} has no model.safetensors",
            dir.display()
        );
        eprintln!(
            "SKIPPED: no all-MiniLM-L6-v2 in {} (run scripts/fetch_minilm.sh there, or set PRIMER_MINILM_DIR)",
            dir.display()
        );
        None
    }
}

struct Item {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn reference() -> Vec<Item> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_embeddings.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(json["max_seq_length"], 512);
    json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| Item {
            text: it["text"].as_str().unwrap().to_string(),
            ids: it["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect(),
            embedding: it["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

#[test]
fn minilm_tokenizes_and_embeds_like_sentence_transformers() {
    let Some(dir) = model_dir() else { return };
    let items = reference();
    assert!(items.len() >= 20);
    assert!(
        items.iter().any(|it| it.text.is_empty()),
        "the reference must include the empty string"
    );
    assert!(
        items.iter().any(|it| it.ids.len() == 512),
        "the reference must include a truncated input"
    );
    let model = Bert::load(&dir).unwrap();
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let enc = BertEncoder::new(&tok).unwrap();
    for it in &items {
        let got = enc.encode(&it.text, None, 512).unwrap();
        assert_eq!(got.ids, it.ids, "token ids of {:?}", it.text);
    }
    let texts: Vec<String> = items.iter().map(|it| it.text.clone()).collect();
    // as loaded, and transposed for inference as `primer embed` runs it
    for (what, m) in [
        ("loaded", model.clone()),
        ("into_inference", model.into_inference()),
    ] {
        let vecs = embed(&m, &tok, &texts, Pooling::Mean, true, 512).unwrap();
        for (it, v) in items.iter().zip(&vecs) {
            let dot: f64 = v
                .iter()
                .zip(&it.embedding)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum();
            let norm = |x: &[f32]| x.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let cos = dot / (norm(v) * norm(&it.embedding));
            assert!(cos >= 0.9999, "{what}: cosine {cos:.6} for {:?}", it.text);
            assert!((norm(v) - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn vocab_txt_alone_tokenizes_like_tokenizer_json() {
    let Some(dir) = model_dir() else { return };
    let only_vocab = common::tmp("minilm-vocab");
    std::fs::copy(dir.join("vocab.txt"), only_vocab.join("vocab.txt")).unwrap();
    let from_vocab = BertEncoder::new(&TextTokenizer::from_dir(&only_vocab).unwrap()).unwrap();
    let from_json = BertEncoder::new(&TextTokenizer::from_dir(&dir).unwrap()).unwrap();
    for it in reference() {
        assert_eq!(
            from_vocab.encode(&it.text, None, 512).unwrap(),
            from_json.encode(&it.text, None, 512).unwrap(),
            "{:?}",
            it.text
        );
    }
}

//! Helpers shared by the integration tests (each test binary uses some of them).
#![allow(dead_code)]

mod scratch;

use primer::tokenize::TextTokenizer;
pub use scratch::Scratch;
use std::path::{Path, PathBuf};

/// The directory of the committed test fixture `name` (see `tests/fixtures/README.md`).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fresh, empty scratch directory of this test's own.
pub fn tmp(name: &str) -> Scratch {
    Scratch::fresh("test", name)
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A byte-level BPE tokenizer, trained in `dir`, that has every id of the tiny GPT-2 fixtures' 97 (and
/// `<|endoftext|>` beyond them).
pub fn bpe_tokenizer(dir: &Path) -> TextTokenizer {
    let corpus = dir.join("corpus.txt");
    std::fs::write(
        &corpus,
        "the cat sat on the mat. the dog sat on the log.\n".repeat(20),
    )
    .unwrap();
    TextTokenizer::train_bpe(&[corpus], 300).unwrap()
}

/// A JSON list of token ids, as the fixture scripts write them.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

//! Hugging Face config variants that transformers writes or reads and primer must treat as it does: end-of-text ids
//! given as lists or in `generation_config.json`, `null` ids, causal (`is_decoder`) BERTs, and sizes too large to
//! allocate.

mod common;

use primer::infer::generate::{generate, stop_ids, Sampling};
use primer::models::bert::Bert;
use primer::models::gpt::Gpt;
use primer::tokenize::TextTokenizer;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A copy of fixture `name`'s model (config.json and model.safetensors only) in a scratch directory, with
/// `edit` applied to its config.
fn model_copy(name: &str, scratch: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = common::tmp(scratch);
    std::fs::copy(
        fixture(name).join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    write_config(&dir, &fixture(name).join("config.json"), edit);
    dir
}

fn write_config(dir: &Path, from: &Path, edit: impl FnOnce(&mut Value)) {
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(from).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// A byte-level BPE tokenizer that has every id of the tiny GPT-2 fixture's 97 (and `<|endoftext|>` beyond them).
fn bpe_tokenizer(dir: &Path) -> TextTokenizer {
    let corpus = dir.join("corpus.txt");
    std::fs::write(
        &corpus,
        "the cat sat on the mat. the dog sat on the log.\n".repeat(20),
    )
    .unwrap();
    TextTokenizer::train_bpe(&[corpus], 300).unwrap()
}

fn greedy(max_new_tokens: usize, stop_tokens: Vec<u32>) -> Sampling {
    Sampling {
        max_new_tokens,
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        repetition_penalty: 1.0,
        stop_tokens,
        seed: 0,
    }
}

#[test]
fn end_of_text_ids_come_from_generation_config_then_config_then_tokenizer() {
    let dir = model_copy("gpt2_tiny", "eos-list", |c| {
        c["eos_token_id"] = json!([5, 7]);
        c["bos_token_id"] = json!([5]);
    });
    let tok = bpe_tokenizer(&dir);
    // a list, as transformers writes for models with several end tokens, loads and is used whole
    let model = Gpt::load(&dir).unwrap();
    assert_eq!(stop_ids(&dir, &model, &tok).unwrap(), vec![5, 7]);
    // generation_config.json comes first
    std::fs::write(
        dir.join("generation_config.json"),
        r#"{"eos_token_id": 9, "do_sample": false}"#,
    )
    .unwrap();
    assert_eq!(stop_ids(&dir, &model, &tok).unwrap(), vec![9]);
    // with neither naming one, the tokenizer's <|endoftext|>
    std::fs::remove_file(dir.join("generation_config.json")).unwrap();
    write_config(&dir, &fixture("gpt2_tiny").join("config.json"), |c| {
        c["eos_token_id"] = Value::Null;
    });
    let model = Gpt::load(&dir).unwrap();
    let eos = tok.eos_id().unwrap();
    assert_eq!(stop_ids(&dir, &model, &tok).unwrap(), vec![eos]);
    // a broken generation_config.json is named with its field
    std::fs::write(
        dir.join("generation_config.json"),
        r#"{"eos_token_id": "x"}"#,
    )
    .unwrap();
    let err = stop_ids(&dir, &model, &tok).unwrap_err().to_string();
    assert!(
        err.contains("generation_config.json")
            && err.contains("eos_token_id")
            && err.contains("a token id, a list of token ids or null"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn generation_stops_at_any_end_of_text_id() {
    let dir = common::tmp("eos-stop");
    let tok = bpe_tokenizer(&dir);
    let model = Gpt::load(&fixture("gpt2_tiny")).unwrap();
    let prompt = [3u32, 14, 15];
    let free = generate(&model, &tok, &prompt, &greedy(8, vec![]), |_| Ok(())).unwrap();
    assert_eq!(free.len(), 8);
    // stopping at the third token's id (and one never produced) keeps what came before its first occurrence
    let at = free.iter().position(|&t| t == free[2]).unwrap();
    let stopped = generate(
        &model,
        &tok,
        &prompt,
        &greedy(8, vec![1000, free[2]]),
        |_| Ok(()),
    )
    .unwrap();
    assert_eq!(stopped, free[..at]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn causal_or_cross_attention_berts_are_refused_by_name() {
    for field in ["is_decoder", "add_cross_attention"] {
        let dir = model_copy("bert_tiny", field, |c| c[field] = json!(true));
        let err = Bert::load(&dir).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains("config.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn null_padding_id_loads_as_zero() {
    let dir = model_copy("bert_tiny", "pad-null", |c| c["pad_token_id"] = Value::Null);
    let model = Bert::load(&dir).unwrap();
    assert_eq!(model.config.pad_token_id, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sizes no machine can hold are refused from the config, naming it, before anything is allocated (an abort in
/// the allocator otherwise).
#[test]
fn absurd_sizes_are_refused_before_allocating() {
    for (name, field, value) in [
        ("gpt2_tiny", "n_positions", 1_000_000_000_000u64),
        ("gpt2_tiny", "vocab_size", 1_000_000_000_000),
        ("bert_tiny", "max_position_embeddings", 1_000_000_000_000),
        ("bert_tiny", "intermediate_size", 1_000_000_000_000),
    ] {
        let dir = model_copy(name, field, |c| c[field] = json!(value));
        let err = if name == "gpt2_tiny" {
            Gpt::load(&dir).map(|_| ()).unwrap_err()
        } else {
            Bert::load(&dir).map(|_| ()).unwrap_err()
        }
        .to_string();
        assert!(
            err.contains("config.json") && err.contains("GiB") && err.contains("parameters"),
            "{field}: {err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_mistyped_field_is_named() {
    let dir = model_copy("gpt2_tiny", "typed", |c| c["n_layer"] = json!("two"));
    let err = Gpt::load(&dir).unwrap_err().to_string();
    assert!(err.contains("n_layer: invalid type"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

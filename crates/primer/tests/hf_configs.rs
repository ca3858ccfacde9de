//! Hugging Face config variants that transformers writes or reads and primer must treat as it does: end-of-text ids
//! given as lists or in `generation_config.json`, `null` ids, causal (`is_decoder`) BERTs, and sizes too large to
//! allocate.

mod common;

use common::{fixture, Scratch};
use primer::hf::TokenIds;
use primer::infer::beam::{BeamSearch, EarlyStopping};
use primer::infer::generate::{
    generate, GenerationConfig, Sampling, SamplingFlags, DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_TEMPERATURE,
};
use primer::models::bert::Bert;
use primer::models::gpt::Gpt;
use primer::tokenize::TextTokenizer;
use serde_json::{json, Value};
use std::path::Path;

/// A copy of fixture `name`'s model (config.json and model.safetensors only) in a scratch directory, with
/// `edit` applied to its config.
fn model_copy(name: &str, scratch: &str, edit: impl FnOnce(&mut Value)) -> Scratch {
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

fn greedy(max_new_tokens: usize, stop_tokens: Vec<u32>) -> Sampling {
    Sampling {
        max_new_tokens,
        temperature: 0.0,
        stop_tokens,
        ..Default::default()
    }
}

fn stop_ids(dir: &Path, model: &Gpt, tok: &TextTokenizer) -> Vec<u32> {
    GenerationConfig::read(dir)
        .unwrap()
        .stop_ids(model, tok)
        .unwrap()
}

/// The sampling settings `generation_config.json` text `json` gives with `flags`, after a 4-token prompt.
fn settings(json: &str, flags: &SamplingFlags) -> (Sampling, Vec<String>, Vec<String>) {
    let dir = common::tmp("generation-config");
    std::fs::write(dir.join("generation_config.json"), json).unwrap();
    let config = GenerationConfig::read(&dir).unwrap();
    (
        config.sampling(flags, 4, vec![], 0).unwrap(),
        config.followed(flags),
        config.not_followed(),
    )
}

#[test]
fn sampling_settings_come_from_flags_then_generation_config_then_defaults() {
    let none = SamplingFlags::default();
    // no file: primer's defaults
    let dir = common::tmp("no-generation-config");
    let s = GenerationConfig::read(&dir)
        .unwrap()
        .sampling(&none, 4, vec![], 0)
        .unwrap();
    assert!(s.beam.is_none());
    assert_eq!(
        (
            s.temperature,
            s.top_k,
            s.top_p,
            s.repetition_penalty,
            s.max_new_tokens
        ),
        (DEFAULT_TEMPERATURE, 0, 1.0, 1.0, DEFAULT_MAX_NEW_TOKENS)
    );
    // what transformers writes for GPT-2: ids only, nothing followed or reported
    let (s, followed, other) = settings(
        r#"{"bos_token_id": 50256, "eos_token_id": 50256, "transformers_version": "4.27.0.dev0", "_from_model_config": true}"#,
        &none,
    );
    assert_eq!((s.temperature, s.top_k), (DEFAULT_TEMPERATURE, 0));
    assert!(
        followed.is_empty() && other.is_empty(),
        "{followed:?} {other:?}"
    );
    // do_sample false is greedy, whatever temperature the file has; a flag overrides it
    let (s, followed, _) = settings(r#"{"do_sample": false, "temperature": 0.6}"#, &none);
    assert_eq!(s.temperature, 0.0);
    assert_eq!(followed, ["do_sample false"]);
    let hot = SamplingFlags {
        temperature: Some(0.9),
        ..Default::default()
    };
    let (s, followed, _) = settings(r#"{"do_sample": false, "temperature": 0.6}"#, &hot);
    assert_eq!(s.temperature, 0.9);
    assert!(followed.is_empty(), "{followed:?}");
    // do_sample true: the keys it lacks are transformers' defaults (temperature 1, top-k 50)
    let json = r#"{"do_sample": true, "top_p": 0.9, "repetition_penalty": 1.2, "max_length": 30}"#;
    let (s, followed, _) = settings(json, &none);
    assert_eq!(
        (s.temperature, s.top_k, s.top_p, s.repetition_penalty),
        (1.0, 50, 0.9, 1.2)
    );
    // max_length counts the 4 prompt tokens
    assert_eq!(s.max_new_tokens, 26);
    assert_eq!(
        followed,
        [
            "do_sample true",
            "top_p 0.9",
            "repetition_penalty 1.2",
            "max_length 30"
        ]
    );
    // flags win, one by one
    let flags = SamplingFlags {
        top_k: Some(0),
        top_p: Some(1.0),
        max_new_tokens: Some(7),
        ..Default::default()
    };
    let (s, followed, _) = settings(json, &flags);
    assert_eq!((s.top_k, s.top_p, s.max_new_tokens), (0, 1.0, 7));
    assert_eq!(followed, ["do_sample true", "repetition_penalty 1.2"]);
    // keys with a value are used without do_sample; max_new_tokens beats max_length
    let (s, _, _) = settings(
        r#"{"temperature": 0.7, "top_k": 20, "max_new_tokens": 5, "max_length": 100}"#,
        &none,
    );
    assert_eq!((s.temperature, s.top_k, s.max_new_tokens), (0.7, 20, 5));
    // no repeated n-grams; the minimum length is min_new_tokens, else min_length less the prompt (transformers
    // lets min_new_tokens win, even when it is the shorter)
    let json = r#"{"no_repeat_ngram_size": 3, "min_new_tokens": 2, "min_length": 10}"#;
    let (s, followed, _) = settings(json, &none);
    assert_eq!((s.no_repeat_ngram_size, s.min_new_tokens), (3, 2));
    assert_eq!(followed, ["no_repeat_ngram_size 3", "min_new_tokens 2"]);
    let (s, followed, _) = settings(r#"{"min_length": 10}"#, &none);
    assert_eq!(s.min_new_tokens, 6);
    assert_eq!(followed, ["min_length 10"]);
    let flags = SamplingFlags {
        min_new_tokens: Some(1),
        no_repeat_ngram_size: Some(0),
        ..Default::default()
    };
    let (s, followed, _) = settings(json, &flags);
    assert_eq!((s.no_repeat_ngram_size, s.min_new_tokens), (0, 1));
    assert!(followed.is_empty(), "{followed:?}");
    // several samples; a file's num_return_sequences 1 is transformers' default, not worth a note
    let (s, followed, _) = settings(r#"{"do_sample": true, "num_return_sequences": 3}"#, &none);
    assert_eq!(s.num_return_sequences, 3);
    assert_eq!(followed, ["do_sample true", "num_return_sequences 3"]);
    let (_, followed, _) = settings(r#"{"num_return_sequences": 1}"#, &none);
    assert!(followed.is_empty(), "{followed:?}");
    // what primer does not do is reported; transformers' defaults and model ids are not
    let (_, _, other) = settings(
        r#"{"num_beams": 4, "no_repeat_ngram_size": 3, "length_penalty": 1.0, "early_stopping": false,
            "num_beam_groups": 2, "num_return_sequences": 1, "pad_token_id": 3, "use_cache": true}"#,
        &none,
    );
    assert_eq!(other, ["num_beam_groups 2"]);
    // min-p, unless --min-p gives another
    let (s, followed, _) = settings(r#"{"do_sample": true, "min_p": 0.05}"#, &none);
    assert_eq!(s.min_p, 0.05);
    assert_eq!(followed, ["do_sample true", "min_p 0.05"]);
    let flags = SamplingFlags {
        min_p: Some(0.2),
        ..Default::default()
    };
    let (s, followed, _) = settings(r#"{"do_sample": true, "min_p": 0.05}"#, &flags);
    assert_eq!(s.min_p, 0.2);
    assert_eq!(followed, ["do_sample true"]);
    // banned token sequences, unless --bad-words gives others
    let (s, followed, other) = settings(r#"{"bad_words_ids": [[5], [7, 8]]}"#, &none);
    assert_eq!(s.bad_words, [vec![5], vec![7, 8]]);
    assert_eq!(followed, ["bad_words_ids [[5], [7, 8]]"]);
    assert!(other.is_empty(), "{other:?}");
    let flags = SamplingFlags {
        bad_words: Some(vec![vec![9]]),
        ..Default::default()
    };
    let (s, followed, _) = settings(r#"{"bad_words_ids": [[5]]}"#, &flags);
    assert_eq!(s.bad_words, [vec![9]]);
    assert!(followed.is_empty(), "{followed:?}");
    // stop strings: one string or a list, unless --stop gives others
    let (s, followed, other) = settings(r#"{"stop_strings": "\n\n"}"#, &none);
    assert_eq!(s.stop_strings, ["\n\n"]);
    assert_eq!(followed, ["stop_strings [\"\\n\\n\"]"]);
    assert!(other.is_empty(), "{other:?}");
    let flags = SamplingFlags {
        stop_strings: Some(vec!["END".into()]),
        ..Default::default()
    };
    let (s, followed, _) = settings(r#"{"stop_strings": ["a", "b"]}"#, &flags);
    assert_eq!(s.stop_strings, ["END"]);
    assert!(followed.is_empty(), "{followed:?}");
}

#[test]
fn num_beams_means_beam_search_unless_sampling_is_asked_for() {
    let none = SamplingFlags::default();
    let json =
        r#"{"num_beams": 4, "length_penalty": 0.8, "early_stopping": "never", "temperature": 0.7}"#;
    // the file's beams, with its length penalty and early stopping; its temperature is left unused
    let (s, followed, other) = settings(json, &none);
    let want = BeamSearch {
        num_beams: 4,
        length_penalty: 0.8,
        early_stopping: EarlyStopping::Never,
        do_sample: false,
    };
    assert_eq!(s.beam, Some(want));
    assert_eq!(
        followed,
        ["num_beams 4", "length_penalty 0.8", "early_stopping never"]
    );
    assert!(other.is_empty(), "{other:?}");
    // flags win one by one; --num-beams 1 turns beam search off
    let flags = SamplingFlags {
        num_beams: Some(2),
        early_stopping: Some(EarlyStopping::Finished),
        ..Default::default()
    };
    let (s, followed, _) = settings(json, &flags);
    let want = BeamSearch {
        num_beams: 2,
        early_stopping: EarlyStopping::Finished,
        ..want
    };
    assert_eq!(s.beam, Some(want));
    assert_eq!(followed, ["length_penalty 0.8"]);
    let one = SamplingFlags {
        num_beams: Some(1),
        ..Default::default()
    };
    let (s, followed, _) = settings(json, &one);
    assert_eq!((s.beam, s.temperature), (None, 0.7));
    assert_eq!(followed, ["temperature 0.7"]);
    // a sampling flag means sampling: the file's beams are not used
    let hot = SamplingFlags {
        top_k: Some(5),
        ..Default::default()
    };
    let (s, followed, _) = settings(json, &hot);
    assert_eq!((s.beam, s.temperature, s.top_k), (None, 0.7, 5));
    assert_eq!(followed, ["temperature 0.7"]);
    // do_sample true with beams is beam sampling, at transformers' temperature 1 and top-k 50
    let sampled = r#"{"do_sample": true, "num_beams": 4}"#;
    let (s, followed, other) = settings(sampled, &none);
    let want = BeamSearch {
        num_beams: 4,
        length_penalty: 1.0,
        early_stopping: EarlyStopping::Heuristic,
        do_sample: true,
    };
    assert_eq!((s.beam, s.temperature, s.top_k), (Some(want), 1.0, 50));
    assert_eq!(followed, ["do_sample true", "num_beams 4"]);
    assert!(other.is_empty(), "{other:?}");
    // --temperature 0 makes it a beam search; a temperature with --num-beams samples the beams
    let cold = SamplingFlags {
        temperature: Some(0.0),
        num_beams: Some(4),
        ..Default::default()
    };
    let (s, followed, _) = settings(sampled, &cold);
    let searched = BeamSearch {
        do_sample: false,
        ..want
    };
    assert_eq!(s.beam, Some(searched));
    assert!(followed.is_empty(), "{followed:?}");
    let warm = SamplingFlags {
        temperature: Some(0.5),
        num_beams: Some(3),
        ..Default::default()
    };
    let (s, _, _) = settings("{}", &warm);
    let beam = s.beam.unwrap();
    assert!(beam.do_sample && beam.num_beams == 3 && s.temperature == 0.5);
    // a sampling flag overrides a file's do_sample false, as --temperature does: --top-k with --num-beams is beam
    // sampling, and without it sampling (the file's beams dropped), at the file's temperature or primer's
    let top_k = SamplingFlags {
        top_k: Some(5),
        num_beams: Some(3),
        ..Default::default()
    };
    let (s, followed, _) = settings(r#"{"do_sample": false}"#, &top_k);
    assert!(s.beam.unwrap().do_sample && s.top_k == 5);
    assert!(followed.is_empty(), "{followed:?}");
    for flags in [
        SamplingFlags {
            top_k: Some(5),
            ..Default::default()
        },
        SamplingFlags {
            top_p: Some(0.9),
            ..Default::default()
        },
        SamplingFlags {
            min_p: Some(0.1),
            ..Default::default()
        },
    ] {
        let json = r#"{"do_sample": false, "num_beams": 3}"#;
        let (s, followed, _) = settings(json, &flags);
        assert!(s.beam.is_none() && s.temperature == DEFAULT_TEMPERATURE);
        assert!(followed.is_empty(), "{followed:?}");
        let json = r#"{"do_sample": false, "temperature": 0.6}"#;
        let (s, followed, _) = settings(json, &flags);
        assert_eq!(s.temperature, 0.6);
        assert_eq!(followed, ["temperature 0.6"]);
    }
    // flags that contradict each other are refused, naming them
    let dir = common::tmp("beam-flags");
    let config = GenerationConfig::read(&dir).unwrap();
    for (flags, names) in [
        (
            SamplingFlags {
                length_penalty: Some(2.0),
                ..Default::default()
            },
            ["--length-penalty", "--num-beams"],
        ),
        (
            SamplingFlags {
                num_beams: Some(0),
                ..Default::default()
            },
            ["--num-beams", "at least 1"],
        ),
    ] {
        let err = config
            .sampling(&flags, 4, vec![], 0)
            .unwrap_err()
            .to_string();
        assert!(names.iter().all(|n| err.contains(n)), "{flags:?}: {err}");
    }
}

#[test]
fn out_of_range_generation_settings_are_errors_naming_the_file() {
    for (json, key) in [
        (r#"{"top_p": 1.5}"#, "top_p must be in (0, 1]"),
        (
            r#"{"temperature": -1}"#,
            "temperature must be finite and ≥ 0",
        ),
        (
            r#"{"repetition_penalty": 0}"#,
            "repetition_penalty must be positive",
        ),
        (r#"{"top_k": -3}"#, "top_k"),
        (r#"{"num_beams": 0}"#, "num_beams must be at least 1"),
        (r#"{"length_penalty": "long"}"#, "length_penalty"),
        (r#"{"early_stopping": "sometimes"}"#, "early_stopping"),
        (
            r#"{"num_return_sequences": 0}"#,
            "num_return_sequences must be at least 1",
        ),
        (
            r#"{"stop_strings": ["x", ""]}"#,
            "stop_strings: a stop string must not be empty",
        ),
        (r#"{"stop_strings": 5}"#, "stop_strings"),
        (r#"{"min_p": 1.5}"#, "min_p must be in [0, 1]"),
        (
            r#"{"bad_words_ids": [[3], []]}"#,
            "bad_words_ids holds an empty token sequence",
        ),
        (r#"{"bad_words_ids": [5]}"#, "bad_words_ids"),
        (r#"{"bad_words_ids": [[-1]]}"#, "bad_words_ids"),
    ] {
        let dir = common::tmp("bad-generation-config");
        std::fs::write(dir.join("generation_config.json"), json).unwrap();
        let err = GenerationConfig::read(&dir).unwrap_err().to_string();
        assert!(
            err.contains("generation_config.json") && err.contains(key),
            "{json}: {err}"
        );
    }
}

#[test]
fn end_of_text_ids_come_from_generation_config_then_config_then_tokenizer() {
    let dir = model_copy("gpt2_tiny", "eos-list", |c| {
        c["eos_token_id"] = json!([5, 7]);
        c["bos_token_id"] = json!([5]);
    });
    let tok = common::bpe_tokenizer(&dir);
    // a list, as transformers writes for models with several end tokens, loads and is used whole
    let model = Gpt::load(&dir).unwrap();
    assert_eq!(stop_ids(&dir, &model, &tok), vec![5, 7]);
    // generation_config.json comes first
    std::fs::write(
        dir.join("generation_config.json"),
        r#"{"eos_token_id": 9, "do_sample": false}"#,
    )
    .unwrap();
    assert_eq!(stop_ids(&dir, &model, &tok), vec![9]);
    // an end id past the vocabulary could never end a text: an error naming the file it comes from
    let past = model.config.vocab_size;
    std::fs::write(
        dir.join("generation_config.json"),
        format!(r#"{{"eos_token_id": [9, {past}]}}"#),
    )
    .unwrap();
    let stop_err = |model: &Gpt| {
        let config = GenerationConfig::read(&dir).unwrap();
        config.stop_ids(model, &tok).unwrap_err().to_string()
    };
    let err = stop_err(&model);
    assert!(
        err.contains("generation_config.json")
            && err.contains(&format!(
                "eos_token_id {past} is past the model's {past} token ids"
            )),
        "{err}"
    );
    std::fs::write(dir.join("generation_config.json"), "{}").unwrap();
    let mut wide = Gpt::load(&dir).unwrap();
    wide.config.eos_token_id = TokenIds::one(Some(past as u32));
    let err = stop_err(&wide);
    assert!(
        err.contains("config.json: eos_token_id") && !err.contains("generation_config"),
        "{err}"
    );
    // with neither naming one, the tokenizer's <|endoftext|>
    std::fs::remove_file(dir.join("generation_config.json")).unwrap();
    write_config(&dir, &fixture("gpt2_tiny").join("config.json"), |c| {
        c["eos_token_id"] = Value::Null;
    });
    let model = Gpt::load(&dir).unwrap();
    let eos = tok.eos_id().unwrap();
    assert_eq!(stop_ids(&dir, &model, &tok), vec![eos]);
    // a broken generation_config.json is named with its field
    std::fs::write(
        dir.join("generation_config.json"),
        r#"{"eos_token_id": "x"}"#,
    )
    .unwrap();
    let err = GenerationConfig::read(&dir).unwrap_err().to_string();
    assert!(
        err.contains("generation_config.json")
            && err.contains("eos_token_id")
            && err.contains("a token id, a list of token ids or null"),
        "{err}"
    );
}

#[test]
fn generation_stops_at_any_end_of_text_id() {
    let dir = common::tmp("eos-stop");
    let tok = common::bpe_tokenizer(&dir);
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
}

#[test]
fn causal_or_cross_attention_berts_are_refused_by_name() {
    for field in ["is_decoder", "add_cross_attention"] {
        let dir = model_copy("bert_tiny", field, |c| c[field] = json!(true));
        let err = Bert::load(&dir).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains("config.json"), "{err}");
    }
}

#[test]
fn null_padding_id_loads_as_zero() {
    let dir = model_copy("bert_tiny", "pad-null", |c| c["pad_token_id"] = Value::Null);
    let model = Bert::load(&dir).unwrap();
    assert_eq!(model.config.pad_token_id, 0);
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
    }
}

#[test]
fn a_mistyped_field_is_named() {
    let dir = model_copy("gpt2_tiny", "typed", |c| c["n_layer"] = json!("two"));
    let err = Gpt::load(&dir).unwrap_err().to_string();
    assert!(err.contains("n_layer: invalid type"), "{err}");
}

use super::*;
use std::collections::BTreeSet;

pub(super) fn temp_dir(name: &str) -> crate::testutil::Scratch {
    crate::testutil::scratch_dir("tokenize", name)
}

pub(super) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Deterministic pseudo-English: words drawn from syllables by a small LCG.
pub(super) fn generated_text(words: usize) -> String {
    const SYLLABLES: [&str; 12] = [
        "th", "e", "an", "qu", "ing", "or", "st", "le", "ver", "is", "ka", "mo",
    ];
    let mut state = 12345u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    let mut text = String::new();
    for i in 0..words {
        for _ in 0..1 + next(3) {
            text.push_str(SYLLABLES[next(SYLLABLES.len())]);
        }
        text.push(if i % 13 == 12 { '\n' } else { ' ' });
    }
    text
}

const CHAR_CORPUS: &str = "Hello, world!\nCafé — naïve 🙂\n\n  spaced\ttab\r\nend";

#[test]
fn char_vocabulary_is_the_sorted_characters_and_round_trips() {
    let dir = temp_dir("char");
    let a = write(&dir, "a.txt", CHAR_CORPUS);
    let b = write(&dir, "b.txt", "zzz ÿ\n");
    let tok = TextTokenizer::train_char(&[a, b]).unwrap();
    let chars: BTreeSet<char> = CHAR_CORPUS.chars().chain("zzz ÿ\n".chars()).collect();
    assert_eq!(tok.vocab_size(), chars.len());
    for (id, c) in chars.iter().enumerate() {
        assert_eq!(tok.token_to_id(&c.to_string()), Some(id as u32), "{c:?}");
    }
    assert_eq!(tok.eos_id(), None);

    for text in [CHAR_CORPUS, "\n\n🙂é—\r\n  z ÿ", ""] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(ids.len(), text.chars().count());
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
    let newline = tok.token_to_id("\n").unwrap();
    assert_eq!(tok.encode("\n\n").unwrap(), [newline, newline]);
}

#[test]
fn unknown_character_is_an_error_naming_it() {
    let dir = temp_dir("unknown");
    let tok = TextTokenizer::train_char(&[write(&dir, "c.txt", CHAR_CORPUS)]).unwrap();
    let err = tok.encode("Hello Q").unwrap_err().to_string();
    assert!(err.contains("'Q'") && err.contains("U+0051"), "{err}");
    assert!(err.contains("byte 6"), "{err}");
    let err = tok.encode("Hé€").unwrap_err().to_string();
    assert!(err.contains("'€'") && err.contains("byte 3"), "{err}");
    let err = tok.decode(&[0, 999]).unwrap_err().to_string();
    assert!(err.contains("999"), "{err}");
}

#[test]
fn training_rejects_blank_corpora_and_tiny_vocabularies() {
    let dir = temp_dir("reject");
    let blank = write(&dir, "blank.txt", " \n\n\t");
    let err = TextTokenizer::train_char(std::slice::from_ref(&blank))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("blank.txt") && err.contains("empty"), "{err}");
    assert!(TextTokenizer::train_bpe(&[blank], 300).is_err());
    let text = write(&dir, "text.txt", "some text\n");
    assert!(TextTokenizer::train_bpe(std::slice::from_ref(&text), 257).is_ok());
    let err = TextTokenizer::train_bpe(&[text], 256)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("256"), "{err}");
}

#[test]
fn bpe_trains_to_the_requested_size_and_round_trips() {
    let dir = temp_dir("bpe");
    let corpus = write(&dir, "corpus.txt", &generated_text(20_000));
    let tok = TextTokenizer::train_bpe(std::slice::from_ref(&corpus), 400).unwrap();
    assert_eq!(tok.vocab_size(), 400);
    let eos = tok.eos_id().unwrap();
    assert!((eos as usize) < 400);

    let sample = generated_text(300);
    let ids = tok.encode(&sample).unwrap();
    assert!(
        ids.len() * 2 < sample.len(),
        "{} tokens for {} bytes: merges are not used",
        ids.len(),
        sample.len()
    );
    assert!(!ids.contains(&eos));
    assert_eq!(tok.decode(&ids).unwrap(), sample);
    // Byte-level: text never seen in training still round-trips.
    let unseen = "Zebra ÿ — 🙂\n\n\tX<|endoftext|>";
    let ids = tok.encode(unseen).unwrap();
    assert_eq!(ids.last(), Some(&eos));
    assert_eq!(tok.decode(&ids).unwrap(), unseen);
    // the text shown to a reader leaves the special token out, as transformers' generation pipeline does
    assert_eq!(
        tok.decode_text(&ids).unwrap(),
        unseen.trim_end_matches("<|endoftext|>")
    );

    let again = TextTokenizer::train_bpe(&[corpus], 400).unwrap();
    assert_eq!(
        again.inner().to_string(false).unwrap(),
        tok.inner().to_string(false).unwrap(),
        "training is not deterministic"
    );
}

#[test]
fn bpe_vocabulary_is_smaller_when_the_corpus_runs_out_of_pairs() {
    let dir = temp_dir("bpe-small");
    let corpus = write(&dir, "tiny.txt", "abab abab\n");
    let tok = TextTokenizer::train_bpe(&[corpus], 1000).unwrap();
    // 256 bytes + <|endoftext|> + the few merges this text allows.
    assert!(
        (258..270).contains(&tok.vocab_size()),
        "{}",
        tok.vocab_size()
    );
    assert_eq!(tok.encode("abab").unwrap().len(), 1);
}

#[test]
fn saved_tokenizers_load_back_identically() {
    let dir = temp_dir("save");
    let corpus = write(&dir, "corpus.txt", &generated_text(5_000));
    let sample = generated_text(200) + "Café 🙂\n";
    let bpe = TextTokenizer::train_bpe(std::slice::from_ref(&corpus), 300).unwrap();
    let chars = TextTokenizer::train_char(&[write(&dir, "c.txt", &sample)]).unwrap();
    for (name, tok) in [("bpe.json", &bpe), ("char.json", &chars)] {
        let path = dir.join(name);
        tok.save(&path).unwrap();
        let loaded = TextTokenizer::from_file(&path).unwrap();
        assert_eq!(loaded.vocab_size(), tok.vocab_size());
        assert_eq!(loaded.eos_id(), tok.eos_id());
        assert_eq!(
            loaded.encode(&sample).unwrap(),
            tok.encode(&sample).unwrap()
        );
        let model_dir = dir.join(format!("{name}-dir"));
        std::fs::create_dir_all(&model_dir).unwrap();
        tok.save(&model_dir.join("tokenizer.json")).unwrap();
        let from_dir = TextTokenizer::from_dir(&model_dir).unwrap();
        assert_eq!(
            from_dir.encode(&sample).unwrap(),
            tok.encode(&sample).unwrap()
        );
    }
}

#[test]
fn padding_and_truncation_in_a_loaded_file_are_switched_off() {
    // as in Hugging Face checkpoints that fix both (all-MiniLM-L6-v2: 128)
    let dir = temp_dir("padded");
    let corpus = write(&dir, "corpus.txt", &generated_text(2_000));
    let tok = TextTokenizer::train_bpe(std::slice::from_ref(&corpus), 300).unwrap();
    let text = generated_text(40);
    let plain = tok.encode(&text).unwrap();
    assert!(plain.len() > 16);
    let mut padded = tok.inner().clone();
    padded.with_padding(Some(tokenizers::PaddingParams {
        strategy: tokenizers::PaddingStrategy::Fixed(400),
        ..Default::default()
    }));
    padded
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: 16,
            ..Default::default()
        }))
        .unwrap();
    let path = dir.join("padded.json");
    std::fs::write(&path, padded.to_string(false).unwrap()).unwrap();
    assert_eq!(
        TextTokenizer::from_file(&path)
            .unwrap()
            .encode(&text)
            .unwrap(),
        plain
    );
}

#[test]
fn gpt2_style_vocab_and_merges_load_from_a_directory() {
    let dir = temp_dir("gpt2-dir");
    let corpus = write(&dir, "corpus.txt", &generated_text(5_000));
    let bpe = TextTokenizer::train_bpe(&[corpus], 300).unwrap();
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir).unwrap();
    use tokenizers::Model;
    bpe.inner().get_model().save(&model_dir, None).unwrap();
    assert!(model_dir.join("vocab.json").is_file() && model_dir.join("merges.txt").is_file());
    let loaded = TextTokenizer::from_dir(&model_dir).unwrap();
    let sample = generated_text(100) + "<|endoftext|>é";
    assert_eq!(
        loaded.encode(&sample).unwrap(),
        bpe.encode(&sample).unwrap()
    );
    assert_eq!(loaded.eos_id(), bpe.eos_id());
    assert_eq!(loaded.vocab_size(), 300);
}

/// A `vocab.json` + `merges.txt` directory's added tokens are in its vocabulary, as transformers' tokenizer loads
/// them (checked by hand with transformers 5.24 on such a directory: the same ids, and the same text with special
/// tokens skipped): from `added_tokens_decoder`, or from `added_tokens.json`, special when the settings name them.
#[test]
fn gpt2_vocab_directories_load_their_added_tokens() {
    let dir = temp_dir("gpt2-dir-added");
    let corpus = write(&dir, "corpus.txt", &generated_text(5_000));
    let bpe = TextTokenizer::train_bpe(&[corpus], 300).unwrap();
    use tokenizers::Model;
    bpe.inner().get_model().save(&dir, None).unwrap();
    let decoder = r#"{"added_tokens_decoder": {
        "300": {"content": "<pad>", "special": true, "normalized": false},
        "301": {"content": "<|user|>", "special": false}}}"#;
    let text = "than <|user|> quing <pad>ever";
    let want = [
        bpe.encode("than ").unwrap(),
        vec![301],
        bpe.encode(" quing ").unwrap(),
        vec![300],
        bpe.encode("ever").unwrap(),
    ]
    .concat();
    // added_tokens_decoder, where a stale added_tokens.json is not read (as in transformers); else the list, with
    // the special tokens named in either settings file (null lists allowed)
    let listed = r#"{"<pad>": 300, "<|user|>": 301}"#;
    for (config, list, map) in [
        (decoder, r#"{"<pad>": 307}"#, None),
        (
            r#"{"pad_token": "<pad>", "additional_special_tokens": null}"#,
            listed,
            None,
        ),
        (r#"{"extra_special_tokens": ["<pad>"]}"#, listed, None),
        ("{}", listed, Some(r#"{"pad_token": {"content": "<pad>"}}"#)),
    ] {
        write(&dir, "tokenizer_config.json", config);
        write(&dir, "added_tokens.json", list);
        if let Some(map) = map {
            write(&dir, "special_tokens_map.json", map);
        }
        let tok = TextTokenizer::from_dir(&dir).unwrap();
        assert_eq!(tok.vocab_size(), 302, "{config}");
        let ids = tok.encode(text).unwrap();
        assert_eq!(ids, want, "{config}");
        assert_eq!(tok.decode(&ids).unwrap(), text);
        assert_eq!(
            tok.decode_text(&ids).unwrap(),
            "than <|user|> quing ever",
            "{config}: the special <pad> is left out of the text shown"
        );
    }
    // an id that does not follow on from the vocabulary is named with its file
    write(&dir, "added_tokens.json", r#"{"<pad>": 305}"#);
    write(&dir, "tokenizer_config.json", "{}");
    let err = TextTokenizer::from_dir(&dir).err().unwrap().to_string();
    assert!(
        err.contains("added_tokens.json")
            && err.contains("added token \"<pad>\" has id 305 here, but it takes id 300"),
        "{err}"
    );
}

/// transformers' `GPT2Tokenizer` reads `add_prefix_space` and `add_bos_token` from `tokenizer_config.json` beside
/// `vocab.json` + `merges.txt` (checked with transformers 5.24: a space before the text, `<|endoftext|>` before a
/// prompt); primer must too, and only a prompt gets the token.
#[test]
fn gpt2_vocab_follows_add_prefix_space_and_add_bos_token() {
    let dir = temp_dir("gpt2-dir-config");
    let corpus = write(&dir, "corpus.txt", &generated_text(5_000));
    let bpe = TextTokenizer::train_bpe(&[corpus], 300).unwrap();
    use tokenizers::Model;
    bpe.inner().get_model().save(&dir, None).unwrap();
    let text = "than quing ever";
    let eos = bpe.eos_id().unwrap();
    let spaced = bpe.encode(&format!(" {text}")).unwrap();
    assert_ne!(spaced, bpe.encode(text).unwrap());
    let cases = [
        (
            r#"{"add_prefix_space": true}"#,
            spaced.clone(),
            spaced.clone(),
        ),
        (
            r#"{"add_bos_token": true}"#,
            bpe.encode(text).unwrap(),
            [vec![eos], bpe.encode(text).unwrap()].concat(),
        ),
        (
            r#"{"add_bos_token": true, "add_prefix_space": true, "bos_token": {"content": "<|endoftext|>"}}"#,
            spaced.clone(),
            [vec![eos], spaced.clone()].concat(),
        ),
    ];
    for (config, plain, prompt) in cases {
        write(&dir, "tokenizer_config.json", config);
        let tok = TextTokenizer::from_dir(&dir).unwrap();
        assert_eq!(tok.encode(text).unwrap(), plain, "{config}");
        assert_eq!(tok.encode_prompt(text).unwrap(), prompt, "{config}");
    }
    // a beginning-of-sequence token the vocabulary lacks is named with the file
    write(
        &dir,
        "tokenizer_config.json",
        r#"{"add_bos_token": true, "bos_token": "<s>"}"#,
    );
    let err = TextTokenizer::from_dir(&dir).err().unwrap().to_string();
    assert!(
        err.contains("tokenizer_config.json") && err.contains("\"<s>\""),
        "{err}"
    );
}

/// A prompt gets the special tokens a tokenizer.json's post-processor puts before a text, not those after it;
/// byte-level and per-character tokenizers add none.
#[test]
fn prompts_keep_the_special_tokens_before_the_text_only() {
    let dir = temp_dir("prompt-specials");
    let corpus = write(&dir, "corpus.txt", &generated_text(2_000));
    let chars = TextTokenizer::train_char(std::slice::from_ref(&corpus)).unwrap();
    let bpe = TextTokenizer::train_bpe(&[corpus], 300).unwrap();
    for tok in [&chars, &bpe] {
        assert_eq!(
            tok.encode_prompt("than ever").unwrap(),
            tok.encode("than ever").unwrap()
        );
    }
    // as transformers saves a GPT-2 tokenizer made with add_bos_token=True, with an end token added after
    let mut json: serde_json::Value =
        serde_json::from_str(&bpe.inner().to_string(false).unwrap()).unwrap();
    let eos = bpe.eos_id().unwrap();
    let special =
        |type_id: u32| serde_json::json!({"SpecialToken": {"id": EOS_TOKEN, "type_id": type_id}});
    let sequence = serde_json::json!({"Sequence": {"id": "A", "type_id": 0}});
    json["post_processor"] = serde_json::json!({
        "type": "TemplateProcessing",
        "single": [special(0), sequence, special(0)],
        "pair": [special(0), sequence, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {EOS_TOKEN: {"id": EOS_TOKEN, "ids": [eos], "tokens": [EOS_TOKEN]}},
    });
    let path = write(&dir, "tokenizer.json", &json.to_string());
    let framed = TextTokenizer::from_file(&path).unwrap();
    let plain = bpe.encode("than ever").unwrap();
    assert_eq!(framed.encode("than ever").unwrap(), plain);
    assert_eq!(
        framed.encode_prompt("than ever").unwrap(),
        [vec![eos], plain].concat()
    );
    assert_eq!(framed.encode_prompt("").unwrap(), vec![eos]);
}

#[test]
fn loading_errors_name_the_path() {
    let dir = temp_dir("load-errors");
    let err = TextTokenizer::from_dir(&dir).err().unwrap().to_string();
    assert!(
        err.contains("load-errors") && err.contains("tokenizer.json"),
        "{err}"
    );
    let bad = write(&dir, "bad.json", "{\"model\": 3}");
    let err = TextTokenizer::from_file(&bad).err().unwrap().to_string();
    assert!(
        err.contains("bad.json: is JSON, but not a tokenizer.json"),
        "{err}"
    );
    let words = write(&dir, "words.txt", "the\ncat\n");
    let err = TextTokenizer::from_file(&words).err().unwrap().to_string();
    assert!(err.contains("read as a file named vocab.txt"), "{err}");
    let cut = write(&dir, "cut.json", "{\"model\": ");
    let err = TextTokenizer::from_file(&cut).err().unwrap().to_string();
    assert!(
        err.contains("cut.json: not a valid tokenizer.json"),
        "{err}"
    );
    let err = TextTokenizer::from_file(&dir.join("missing.json"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing.json"), "{err}");
    // a vocab.txt that is empty, or lacks a token a BERT input needs, is named
    let vocab = write(&dir, "vocab.txt", "");
    let err = TextTokenizer::from_dir(&dir).err().unwrap().to_string();
    assert!(err.contains("vocab.txt: is empty"), "{err}");
    std::fs::write(&vocab, "[PAD]\n[UNK]\nthe\n").unwrap();
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let err = tok.special_id("[CLS]", "why").err().unwrap().to_string();
    assert!(
        err.contains("vocab.txt: ") && err.contains("no [CLS]"),
        "{err}"
    );
    // without WordPiece's [UNK], a BERT encoder is refused up front, naming the file, rather than at the first
    // word the vocabulary cannot split
    std::fs::write(&vocab, "[PAD]\n[CLS]\n[SEP]\nthe\n").unwrap();
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let err = crate::infer::bert_batch::BertEncoder::new(&tok)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("vocab.txt: ") && err.contains("no [UNK]"),
        "{err}"
    );
}

/// `dir/tokenizer_config.json`, parsed.
pub(super) fn saved_config(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn gpt_tokenizers_save_a_config_that_keeps_transformers_on_tokenizer_json() {
    // without it transformers picks GPT2Tokenizer by model_type, which drops a char vocabulary's spaces
    let dir = temp_dir("gpt-config");
    let corpus = write(&dir, "corpus.txt", &generated_text(2_000));
    let chars = TextTokenizer::train_char(std::slice::from_ref(&corpus)).unwrap();
    let bpe = TextTokenizer::train_bpe(&[corpus], 300).unwrap();
    for (name, tok) in [("char", &chars), ("bpe", &bpe)] {
        let out = dir.join(name);
        std::fs::create_dir_all(&out).unwrap();
        tok.save_in(&out, 48).unwrap();
        let cfg = saved_config(&out);
        assert_eq!(cfg["tokenizer_class"], "PreTrainedTokenizerFast", "{name}");
        // transformers truncates at the model's positions
        assert_eq!(cfg["model_max_length"], 48, "{name}");
        assert_eq!(cfg["clean_up_tokenization_spaces"], false, "{name}");
        let eos = tok.eos_id().map(|_| EOS_TOKEN);
        for key in ["bos_token", "eos_token", "unk_token"] {
            assert_eq!(cfg[key].as_str(), eos, "{name} {key}");
        }
        assert!(cfg.get("pad_token").is_none(), "{name}");
    }
    // a GPT classifier's padding is named, so that transformers' tokenizer pads a batch for it
    let out = dir.join("padded");
    std::fs::create_dir_all(&out).unwrap();
    bpe.save_in_padded(&out, bpe.eos_id(), 48).unwrap();
    assert_eq!(saved_config(&out)["pad_token"], EOS_TOKEN);
}

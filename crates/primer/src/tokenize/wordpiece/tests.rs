use super::*;
use crate::testutil::Scratch;
use crate::tokenize::tests::{generated_text, saved_config, temp_dir, write};

/// A trained uncased WordPiece of `vocab_size` on generated text, and the directory of its corpus, `corpus.txt`.
fn trained(name: &str, vocab_size: usize) -> (TextTokenizer, Scratch) {
    let dir = temp_dir(name);
    let text = generated_text(20_000) + "Quing, the Stele! (Ka-mo.)\n";
    let corpus = write(&dir, "corpus.txt", &text);
    let tok =
        TextTokenizer::train_wordpiece(std::slice::from_ref(&corpus), vocab_size, true).unwrap();
    (tok, dir)
}

/// Writes `tok`'s vocabulary as a BERT `vocab.txt` (line n = id n − 1) into `dir`.
fn write_vocab_txt(tok: &TextTokenizer, dir: &Path, skip: &str) {
    let mut tokens = vec![String::new(); tok.vocab_size()];
    for (token, id) in tok.inner().get_vocab(true) {
        tokens[id as usize] = token;
    }
    let lines: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .filter(|&t| t != skip)
        .collect();
    std::fs::write(dir.join(VOCAB_FILE), lines.join("\n") + "\n").unwrap();
}

#[test]
fn training_gives_the_fixed_special_ids_and_the_requested_size() {
    let (tok, dir) = trained("wp-train", 300);
    assert_eq!(tok.vocab_size(), 300);
    for (id, name) in BERT_SPECIAL_TOKENS.iter().enumerate() {
        assert_eq!(tok.token_to_id(name), Some(id as u32), "{name}");
    }
    let specials = tok.bert_specials().unwrap();
    assert_eq!(
        [
            specials.pad,
            specials.unk,
            specials.cls,
            specials.sep,
            specials.mask
        ],
        [0, 1, 2, 3, 4]
    );
    let special = tok.special_table();
    assert_eq!(special.len(), 300);
    assert!(special.iter().enumerate().all(|(id, &s)| s == (id < 5)));

    // Uncased: capitals and accents normalise away; the decoder rejoins "##" pieces.
    let ids = tok.encode("Thequing STELE, kamó!").unwrap();
    assert_eq!(ids, tok.encode("thequing stele, kamo!").unwrap());
    assert_eq!(tok.decode(&ids).unwrap(), "thequing stele, kamo!");
    assert!(!ids.contains(&specials.unk));

    let again = TextTokenizer::train_wordpiece(&[dir.join("corpus.txt")], 300, true).unwrap();
    assert_eq!(
        again.inner().to_string(false).unwrap(),
        tok.inner().to_string(false).unwrap(),
        "training is not deterministic"
    );
}

#[test]
fn the_post_processor_adds_cls_and_sep_with_type_ids() {
    let (tok, _) = trained("wp-template", 300);
    let a = tok.encode("the quing").unwrap();
    let b = tok.encode("stele").unwrap();
    let pair = tok.inner().encode(("the quing", "stele"), true).unwrap();
    let expected: Vec<u32> = [vec![2], a.clone(), vec![3], b.clone(), vec![3]].concat();
    assert_eq!(pair.get_ids(), expected);
    let types: Vec<u32> = (0..expected.len())
        .map(|i| u32::from(i > a.len() + 1))
        .collect();
    assert_eq!(pair.get_type_ids(), types);
    let single = tok.inner().encode("stele", true).unwrap();
    assert_eq!(single.get_ids(), [vec![2], b, vec![3]].concat());
}

#[test]
fn continuation_table_marks_the_pieces_after_a_word_start() {
    let (tok, _) = trained("wp-continuation", 300);
    let table = tok.continuation_table();
    assert_eq!(table.len(), tok.vocab_size());
    let text = generated_text(400);
    let encoding = tok.inner().encode(text.as_str(), false).unwrap();
    let words = encoding.get_word_ids();
    let mut continued = 0;
    for (i, &id) in encoding.get_ids().iter().enumerate() {
        let same_word = i > 0 && words[i].is_some() && words[i] == words[i - 1];
        assert_eq!(table[id as usize], same_word, "token {i} (id {id})");
        continued += usize::from(same_word);
    }
    assert!(continued > 50, "only {continued} continuation pieces");
    assert!(!table[..5].iter().any(|&c| c));
}

#[test]
fn saved_wordpiece_loads_back_identically() {
    let (tok, _) = trained("wp-save", 300);
    let dir = temp_dir("wp-save-out");
    tok.save(&dir.join("tokenizer.json")).unwrap();
    let loaded = TextTokenizer::from_dir(&dir).unwrap();
    let sample = generated_text(300) + "Quing, the [MASK] Stele!";
    assert_eq!(
        loaded.encode(&sample).unwrap(),
        tok.encode(&sample).unwrap()
    );
    assert!(tok.encode(&sample).unwrap().contains(&4));
    assert_eq!(
        loaded.bert_specials().unwrap(),
        tok.bert_specials().unwrap()
    );
    assert_eq!(loaded.continuation_table(), tok.continuation_table());
    assert_eq!(loaded.special_table(), tok.special_table());
}

#[test]
fn a_bare_vocab_txt_builds_the_same_tokenizer() {
    let (tok, _) = trained("wp-vocab", 300);
    let dir = temp_dir("wp-vocab-dir");
    write_vocab_txt(&tok, &dir, "");
    let loaded = TextTokenizer::from_dir(&dir).unwrap();
    let sample = generated_text(300) + "Quing, the [MASK] Stele!";
    assert_eq!(
        loaded.encode(&sample).unwrap(),
        tok.encode(&sample).unwrap()
    );
    assert_eq!(loaded.special_table(), tok.special_table());
    assert_eq!(loaded.continuation_table(), tok.continuation_table());
    let pair = ("the quing", "stele");
    assert_eq!(
        loaded.inner().encode(pair, true).unwrap().get_ids(),
        tok.inner().encode(pair, true).unwrap().get_ids()
    );

    // A cased checkpoint keeps capitals, which this lowercase vocabulary lacks.
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"do_lower_case": false}"#,
    )
    .unwrap();
    let cased = TextTokenizer::from_dir(&dir).unwrap();
    assert_eq!(cased.encode("THE").unwrap(), [1]);
    assert_ne!(tok.encode("THE").unwrap(), [1]);
}

#[test]
fn vocabularies_without_a_special_token_or_with_duplicates_are_errors() {
    let (tok, _) = trained("wp-bad-vocab", 300);
    let dir = temp_dir("wp-no-mask");
    write_vocab_txt(&tok, &dir, "[MASK]");
    let loaded = TextTokenizer::from_dir(&dir).unwrap();
    let err = loaded.bert_specials().unwrap_err().to_string();
    assert!(err.contains("no [MASK] token"), "{err}");
    // an input (to embed, say) needs only [CLS], [SEP] and [PAD]
    assert!(crate::infer::bert_batch::BertEncoder::new(&loaded).is_ok());

    let dir = temp_dir("wp-dup");
    let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n##e\nthe\n";
    write(&dir, VOCAB_FILE, vocab);
    let err = TextTokenizer::from_dir(&dir).err().unwrap().to_string();
    assert!(err.contains("vocab.txt") && err.contains("twice"), "{err}");

    write(&dir, VOCAB_FILE, "[PAD]\n[UNK]\n");
    write(&dir, "tokenizer_config.json", r#"{"do_lower_case": "yes"}"#);
    let err = TextTokenizer::from_dir(&dir).err().unwrap().to_string();
    assert!(err.contains("tokenizer_config.json"), "{err}");
}

#[test]
fn training_rejects_tiny_vocabularies_and_blank_corpora() {
    let dir = temp_dir("wp-reject");
    let text = write(&dir, "text.txt", "some text\n");
    let err = TextTokenizer::train_wordpiece(std::slice::from_ref(&text), 5, true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--vocab-size 5 is too small"), "{err}");
    let blank = write(&dir, "blank.txt", "\n \n");
    let err = TextTokenizer::train_wordpiece(&[text, blank], 100, true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("blank.txt"), "{err}");
}

#[test]
fn save_in_writes_the_casing_transformers_reads() {
    let dir = temp_dir("wp-cased");
    let corpus = write(
        &dir,
        "corpus.txt",
        &(generated_text(5_000) + "Quing Stele KA\n"),
    );
    let cased = TextTokenizer::train_wordpiece(std::slice::from_ref(&corpus), 300, false).unwrap();
    let out = temp_dir("wp-cased-out");
    cased.save_in(&out, 64).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["do_lower_case"], false);
    assert_eq!(cfg["mask_token"], "[MASK]");
    assert_eq!(cfg["model_max_length"], 64);
    // vocab.txt + that config (what transformers falls back to) keeps the capitals
    std::fs::remove_file(out.join("tokenizer.json")).unwrap();
    write_vocab_txt(&cased, &out, "");
    let sample = "Quing, the Stele KA!";
    assert_eq!(
        TextTokenizer::from_dir(&out)
            .unwrap()
            .encode(sample)
            .unwrap(),
        cased.encode(sample).unwrap()
    );
}

#[test]
fn a_wordpiece_without_berts_pipeline_saves_a_config_that_keeps_it() {
    // transformers' BertTokenizer would rebuild BERT's normalizer and pre-tokenizer around the vocabulary
    let (tok, _) = trained("wp-odd", 300);
    let mut bare = tok.clone();
    bare.inner.with_normalizer(None::<NormalizerWrapper>);
    let mut split_on_spaces = tok.clone();
    split_on_spaces
        .inner
        .with_pre_tokenizer(Some(tokenizers::pre_tokenizers::whitespace::Whitespace));
    for (name, odd) in [("bare", bare), ("whitespace", split_on_spaces)] {
        let out = temp_dir(&format!("wp-odd-{name}"));
        odd.save_in(&out, 64).unwrap();
        let cfg = saved_config(&out);
        assert_eq!(cfg["tokenizer_class"], "PreTrainedTokenizerFast", "{name}");
        assert!(cfg.get("do_lower_case").is_none(), "{name}");
        let keys = [
            "pad_token",
            "unk_token",
            "cls_token",
            "sep_token",
            "mask_token",
        ];
        for (key, token) in keys.iter().zip(BERT_SPECIAL_TOKENS) {
            assert_eq!(cfg[key], token, "{name} {key}");
        }
        assert!(cfg.get("eos_token").is_none(), "{name}");
        assert_eq!(cfg["model_input_names"][1], "token_type_ids", "{name}");
    }
    assert_eq!(tok.tokenizer_config()["tokenizer_class"], "BertTokenizer");
}

#[test]
fn a_bare_vocab_txt_normalizes_as_its_tokenizer_config_says() {
    let dir = temp_dir("wp-normalize");
    let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncafé\ncafe\nCafe\n北\n京\n北京\n";
    write(&dir, VOCAB_FILE, vocab);
    let text = "Café 北京";
    let ids = |config: Option<&str>| {
        if let Some(c) = config {
            write(&dir, "tokenizer_config.json", c);
        }
        TextTokenizer::from_dir(&dir).unwrap().encode(text).unwrap()
    };
    // bert-base-uncased: lowercase, strip accents, split Chinese characters
    assert_eq!(ids(None), [6, 8, 9]);
    let keep =
        r#"{"do_lower_case": true, "strip_accents": false, "tokenize_chinese_chars": false}"#;
    assert_eq!(ids(Some(keep)), [5, 10]);
    // strip_accents null follows do_lower_case
    assert_eq!(ids(Some(r#"{"strip_accents": null}"#)), [6, 8, 9]);
    assert_eq!(
        ids(Some(r#"{"do_lower_case": false, "strip_accents": true}"#)),
        [7, 8, 9]
    );
    write(&dir, "tokenizer_config.json", r#"{"strip_accents": "no"}"#);
    let err = TextTokenizer::from_dir(&dir).err().unwrap().to_string();
    assert!(
        err.contains("tokenizer_config.json") && err.contains("strip_accents"),
        "{err}"
    );
}

#[test]
fn a_tokenizer_json_that_transformers_loads_as_bert_tokenizer_normalizes_as_that_class() {
    let dir = temp_dir("wp-json-class");
    write(
        &dir,
        VOCAB_FILE,
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncafé\ncafe\nCafe\n",
    );
    write(&dir, "tokenizer_config.json", r#"{"do_lower_case": false}"#);
    let cased = TextTokenizer::from_dir(&dir).unwrap();
    std::fs::remove_file(dir.join(VOCAB_FILE)).unwrap();
    std::fs::remove_file(dir.join("tokenizer_config.json")).unwrap();
    cased.save(&dir.join("tokenizer.json")).unwrap();
    let ids = |tokenizer_config: Option<&str>, config: Option<&str>| {
        for (name, text) in [
            ("tokenizer_config.json", tokenizer_config),
            ("config.json", config),
        ] {
            let _ = std::fs::remove_file(dir.join(name));
            if let Some(t) = text {
                write(&dir, name, t);
            }
        }
        TextTokenizer::from_dir(&dir)
            .unwrap()
            .encode("Cafe")
            .unwrap()
    };
    // no class named: a BERT model's directory gets BertTokenizer, which lowercases by default
    assert_eq!(ids(None, Some(r#"{"model_type": "bert"}"#)), [6]);
    assert_eq!(ids(Some("{}"), Some(r#"{"model_type": "bert"}"#)), [6]);
    // the class's settings, when given
    let keep_case = r#"{"tokenizer_class": "BertTokenizer", "do_lower_case": false}"#;
    assert_eq!(ids(Some(keep_case), None), [7]);
    // tokenizer.json as it is: another class, or no BERT model to infer one from
    let fast = r#"{"tokenizer_class": "PreTrainedTokenizerFast"}"#;
    assert_eq!(ids(Some(fast), Some(r#"{"model_type": "bert"}"#)), [7]);
    assert_eq!(ids(None, Some(r#"{"model_type": "gpt2"}"#)), [7]);
    assert_eq!(ids(None, None), [7]);
}

#[test]
fn a_tokenizer_is_named_by_its_file_its_vocab_txt_or_its_directory() {
    let (tok, dir) = trained("from-path", 150);
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    write_vocab_txt(&tok, &model, "");
    let text = "the cat sat";
    for path in [model.join(VOCAB_FILE), model.clone()] {
        let read = TextTokenizer::from_path(&path).unwrap();
        assert_eq!(
            read.encode(text).unwrap(),
            tok.encode(text).unwrap(),
            "{path:?}"
        );
    }
    // a tokenizer.json beside it is what the directory names; by its own name it is read as such too
    tok.save(&model.join("tokenizer.json")).unwrap();
    tok.save(&dir.join("any-name.json")).unwrap();
    for path in [model.clone(), dir.join("any-name.json")] {
        let read = TextTokenizer::from_path(&path).unwrap();
        assert_eq!(
            read.inner().to_string(false).unwrap(),
            tok.inner().to_string(false).unwrap(),
            "{path:?}"
        );
    }
}

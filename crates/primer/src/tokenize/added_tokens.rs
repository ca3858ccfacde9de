//! The added tokens of a GPT-2 directory that has `vocab.json` + `merges.txt` rather than `tokenizer.json`: what
//! transformers' tokenizer adds to the vocabulary when it loads such a directory. They come from
//! `tokenizer_config.json`'s `added_tokens_decoder` (each with its id, text, whether it is special and how it
//! matches) and from `added_tokens.json` (text → id); one named only there is special when the tokenizer's
//! settings name it as a special token (`eos_token`, `pad_token`, `additional_special_tokens`…), in
//! `tokenizer_config.json` or `special_tokens_map.json`.

use crate::error::{Error, Result};
use crate::hf;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tokenizers::{AddedToken, Tokenizer};

/// A special token as a tokenizer's settings name it: its text, or an object with its text as `content`.
#[derive(serde::Deserialize)]
#[serde(
    untagged,
    expecting = "a token's text, or an object with its text as \"content\""
)]
pub(super) enum SpecialToken {
    Text(String),
    Added { content: String },
}

impl SpecialToken {
    pub(super) fn text(&self) -> &str {
        match self {
            SpecialToken::Text(t) | SpecialToken::Added { content: t } => t,
        }
    }
}

/// One entry of `added_tokens_decoder`, with transformers' defaults for what it leaves out.
#[derive(serde::Deserialize)]
struct DecoderEntry {
    content: String,
    #[serde(default)]
    special: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    #[serde(default)]
    single_word: bool,
    normalized: Option<bool>,
}

/// The keys of `tokenizer_config.json` / `special_tokens_map.json` that name special tokens.
#[derive(serde::Deserialize, Default)]
struct SpecialNames {
    bos_token: Option<SpecialToken>,
    eos_token: Option<SpecialToken>,
    unk_token: Option<SpecialToken>,
    pad_token: Option<SpecialToken>,
    #[serde(default)]
    additional_special_tokens: Vec<SpecialToken>,
    #[serde(default)]
    added_tokens_decoder: BTreeMap<String, DecoderEntry>,
}

impl SpecialNames {
    fn texts(&self) -> impl Iterator<Item = &str> {
        [
            &self.bos_token,
            &self.eos_token,
            &self.unk_token,
            &self.pad_token,
        ]
        .into_iter()
        .flatten()
        .chain(&self.additional_special_tokens)
        .map(SpecialToken::text)
    }
}

/// Adds the added tokens of the GPT-2 directory `dir` to `inner` (built from its `vocab.json` + `merges.txt`), in
/// the order of their ids. Each must get the id its file gives it: an error names the file otherwise.
pub(super) fn add(inner: &mut Tokenizer, dir: &Path) -> Result<()> {
    let config_path = dir.join("tokenizer_config.json");
    let map_path = dir.join("special_tokens_map.json");
    let list_path = dir.join("added_tokens.json");
    let config: SpecialNames = hf::read_optional_config(&config_path)?;
    let map: SpecialNames = hf::read_optional_config(&map_path)?;
    let listed: BTreeMap<String, u32> = hf::read_optional_config(&list_path)?;
    let special: BTreeSet<&str> = config.texts().chain(map.texts()).collect();

    let mut tokens: BTreeMap<u32, (AddedToken, PathBuf)> = BTreeMap::new();
    for (id, e) in &config.added_tokens_decoder {
        let id: u32 = id.parse().map_err(|_| {
            Error::format(
                &config_path,
                format!("added_tokens_decoder: {id:?} is not a token id"),
            )
        })?;
        let token = AddedToken::from(e.content.clone(), e.special)
            .lstrip(e.lstrip)
            .rstrip(e.rstrip)
            .single_word(e.single_word)
            .normalized(e.normalized.unwrap_or(!e.special));
        tokens.insert(id, (token, config_path.clone()));
    }
    for (content, &id) in &listed {
        let is_special = special.contains(content.as_str());
        tokens.entry(id).or_insert_with(|| {
            (
                AddedToken::from(content.clone(), is_special),
                list_path.clone(),
            )
        });
    }
    for (id, (token, path)) in tokens {
        let content = token.content.clone();
        if token.special {
            inner.add_special_tokens(&[token]);
        } else {
            inner.add_tokens(&[token]);
        }
        let got = inner.token_to_id(&content);
        if got != Some(id) {
            let got = got.map_or_else(|| "none".into(), |g| g.to_string());
            return Err(Error::format(
                &path,
                format!(
                    "added token {content:?} has id {id} here, but it takes id {got} after vocab.json's {} \
                     tokens and the added tokens before it: the ids must follow on from the vocabulary",
                    inner.get_vocab_size(false)
                ),
            ));
        }
    }
    Ok(())
}

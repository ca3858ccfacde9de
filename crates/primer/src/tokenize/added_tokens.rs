//! The added tokens of a GPT-2 directory that has `vocab.json` + `merges.txt` rather than `tokenizer.json`: what
//! transformers' tokenizer adds to the vocabulary when it loads such a directory. They come from
//! `tokenizer_config.json`'s `added_tokens_decoder` (each with its id, text, whether it is special and how it
//! matches) or, in a directory saved without one (before transformers 4.34), from `added_tokens.json` (text →
//! id), where a token is special when the tokenizer's settings name it as one (`eos_token`, `pad_token`,
//! `additional_special_tokens`, `extra_special_tokens`…) in `tokenizer_config.json` or `special_tokens_map.json`.

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

/// Special tokens in a list, or by name (newer transformers' `extra_special_tokens`).
#[derive(serde::Deserialize)]
#[serde(untagged, expecting = "a list of tokens or an object of named tokens")]
enum TokenList {
    Listed(Vec<SpecialToken>),
    Named(BTreeMap<String, SpecialToken>),
}

impl TokenList {
    fn tokens(&self) -> Vec<&SpecialToken> {
        match self {
            TokenList::Listed(v) => v.iter().collect(),
            TokenList::Named(m) => m.values().collect(),
        }
    }
}

/// The keys of `tokenizer_config.json` / `special_tokens_map.json` that name special tokens (any may be `null`).
#[derive(serde::Deserialize, Default)]
struct SpecialNames {
    bos_token: Option<SpecialToken>,
    eos_token: Option<SpecialToken>,
    unk_token: Option<SpecialToken>,
    pad_token: Option<SpecialToken>,
    sep_token: Option<SpecialToken>,
    cls_token: Option<SpecialToken>,
    mask_token: Option<SpecialToken>,
    additional_special_tokens: Option<TokenList>,
    extra_special_tokens: Option<TokenList>,
    added_tokens_decoder: Option<BTreeMap<String, DecoderEntry>>,
}

impl SpecialNames {
    fn texts(&self) -> Vec<&str> {
        let single = [
            &self.bos_token,
            &self.eos_token,
            &self.unk_token,
            &self.pad_token,
            &self.sep_token,
            &self.cls_token,
            &self.mask_token,
        ];
        let lists = [&self.additional_special_tokens, &self.extra_special_tokens];
        single
            .into_iter()
            .flatten()
            .chain(lists.into_iter().flatten().flat_map(TokenList::tokens))
            .map(SpecialToken::text)
            .collect()
    }
}

/// Adds the added tokens of the GPT-2 directory `dir` to `inner` (built from its `vocab.json` + `merges.txt`), in
/// the order of their ids. Each must get the id its file gives it: an error names the file otherwise.
pub(super) fn add(inner: &mut Tokenizer, dir: &Path) -> Result<()> {
    let config_path = dir.join("tokenizer_config.json");
    let config: SpecialNames = hf::read_optional_config(&config_path)?;
    let mut tokens: BTreeMap<u32, (AddedToken, PathBuf)> = BTreeMap::new();
    match &config.added_tokens_decoder {
        Some(decoder) => {
            for (id, e) in decoder {
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
        }
        None => {
            let list_path = dir.join("added_tokens.json");
            let listed: BTreeMap<String, u32> = hf::read_optional_config(&list_path)?;
            let map: SpecialNames = hf::read_optional_config(&dir.join("special_tokens_map.json"))?;
            let special: BTreeSet<&str> = config.texts().into_iter().chain(map.texts()).collect();
            for (content, &id) in &listed {
                let token = AddedToken::from(content.clone(), special.contains(content.as_str()));
                tokens.insert(id, (token, list_path.clone()));
            }
        }
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

//! A per-character tokenizer applied by looking each character up, for tokenizing a large corpus: the
//! `tokenizers` pipeline makes a pre-token, a normalized string and its alignments for every character, and
//! runs at about 2 MB/s a thread where a lookup runs at over 100.

use super::{char_split, EncodeError, TextTokenizer};
use std::collections::HashMap;
use tokenizers::models::ModelWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::Model;

/// The ids of a per-character vocabulary by character.
pub(crate) struct CharIds {
    ascii: [Option<u32>; 128],
    other: HashMap<char, u32>,
}

impl TextTokenizer {
    /// The tokenizer's ids by character, when it is a per-character tokenizer as [`Self::train_char`] builds
    /// one, and so gives for every text what looking up each of its characters gives; `None` for any other.
    pub(crate) fn char_ids(&self) -> Option<CharIds> {
        let ModelWrapper::WordLevel(model) = self.inner.get_model() else {
            return None;
        };
        let expected = PreTokenizerWrapper::Split(char_split().ok()?);
        let same_split = self
            .inner
            .get_pre_tokenizer()
            .is_some_and(|p| serde_json::to_value(p).ok() == serde_json::to_value(&expected).ok());
        // an unknown-token entry would stand in for a missing character, where a lookup fails
        let plain = self.inner.get_normalizer().is_none()
            && self.inner.get_post_processor().is_none()
            && self.inner.get_truncation().is_none()
            && self.inner.get_padding().is_none()
            && self.inner.get_added_tokens_decoder().is_empty()
            && model.token_to_id(&model.unk_token).is_none();
        if !same_split || !plain {
            return None;
        }
        let mut ids = CharIds {
            ascii: [None; 128],
            other: HashMap::new(),
        };
        // a token of more than one character never matches: every pre-token is one character
        for (token, id) in model.get_vocab() {
            let mut chars = token.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                match ids.ascii.get_mut(c as usize) {
                    Some(slot) => *slot = Some(id),
                    None => {
                        ids.other.insert(c, id);
                    }
                }
            }
        }
        Some(ids)
    }
}

impl CharIds {
    /// The ids of `text`'s characters; the first character without one is an error naming its byte offset.
    pub(crate) fn encode_at(&self, text: &str) -> Result<Vec<u32>, EncodeError> {
        let mut out = Vec::with_capacity(text.len());
        for (offset, c) in text.char_indices() {
            let id = match self.ascii.get(c as usize) {
                Some(id) => *id,
                None => self.other.get(&c).copied(),
            };
            out.push(id.ok_or(EncodeError::UnknownChar { offset, c })?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::tokenize::{EncodeError, TextTokenizer};

    /// Looking characters up gives the `tokenizers` pipeline's ids and the same first unknown character, on text
    /// with line breaks, tabs, non-ASCII letters, emoji and characters of several bytes; a byte-level BPE and a
    /// per-character tokenizer with a normalizer added have no lookup.
    #[test]
    fn lookup_equals_the_pipeline() {
        let dir = crate::testutil::scratch_dir("char_ids", "lookup");
        let corpus = dir.join("corpus.txt");
        let text = "First Citizen:\r\nWe are accounted poor\tcitizens — ünd Ægir 🦀, 你好!\n\n  end \u{3000}x\n";
        std::fs::write(&corpus, text).unwrap();
        let tok = TextTokenizer::train_char(std::slice::from_ref(&corpus)).unwrap();
        let ids = tok.char_ids().expect("a per-character tokenizer");
        let samples = [text, "", "\n", "poor 🦀\r\n你", "Ægir\u{3000}"];
        for sample in samples {
            assert_eq!(
                ids.encode_at(sample).ok(),
                tok.inner
                    .encode_fast(sample, false)
                    .ok()
                    .map(|e| e.get_ids().to_vec()),
                "{sample:?}"
            );
        }
        let unknown = |r: Result<Vec<u32>, EncodeError>| match r {
            Err(EncodeError::UnknownChar { offset, c }) => Some((offset, c)),
            _ => None,
        };
        for bad in ["poor Q", "Æ€x", "你好 🦊 🦊"] {
            assert!(unknown(ids.encode_at(bad)).is_some(), "{bad:?}");
            assert_eq!(
                unknown(ids.encode_at(bad)),
                unknown(tok.encode_at(bad)),
                "{bad:?}"
            );
        }

        let bpe = TextTokenizer::train_bpe(std::slice::from_ref(&corpus), 300).unwrap();
        assert!(bpe.char_ids().is_none());
        let mut normalized = tok.clone();
        normalized
            .inner
            .with_normalizer(Some(tokenizers::normalizers::Lowercase));
        assert!(normalized.char_ids().is_none());
        let mut cut = tok.clone();
        let truncation = tokenizers::TruncationParams {
            max_length: 2,
            ..Default::default()
        };
        cut.inner.with_truncation(Some(truncation)).unwrap();
        assert!(cut.char_ids().is_none());
        let mut padded = tok.clone();
        padded.inner.with_padding(Some(Default::default()));
        assert!(padded.char_ids().is_none());
        // a vocabulary with its unknown token maps a missing character to it
        let json = tok.inner.to_string(false).unwrap();
        let with_unk = json.replacen(r#""vocab":{"#, r#""vocab":{"<unk>":999,"#, 1);
        assert_ne!(json, with_unk);
        let unk_tok = TextTokenizer {
            inner: with_unk.parse().unwrap(),
            source: None,
        };
        assert!(unk_tok.char_ids().is_none());
    }
}

//! Turning texts into padded BERT batches: `[CLS] text [SEP]` (or a pair), truncated to a maximum length the
//! way Hugging Face truncates (content only, longest part first), padded with [PAD].

use crate::error::{Error, Result};
use crate::models::bert::BertInput;
use crate::progress::progress_bar;
use crate::tokenize::TextTokenizer;
use indicatif::ProgressBar;
use tokenizers::models::ModelWrapper;
use tokenizers::Tokenizer;

/// A tokenizer prepared for BERT inputs: any truncation or padding stored in its `tokenizer.json` is turned
/// off, so the lengths are ours to decide.
pub struct BertEncoder {
    inner: Tokenizer,
    cls: u32,
    sep: u32,
    pad: u32,
}

/// Texts per forward pass when many are encoded; they are grouped by length so little is padding.
pub const BATCH: usize = 32;

/// A progress bar over `n` texts, drawn only for more than one batch of them (and on a terminal).
pub(crate) fn texts_bar(n: usize) -> Result<ProgressBar> {
    if n <= BATCH {
        return Ok(ProgressBar::hidden());
    }
    progress_bar(n, 0)
}

/// Byte spans `[start, end)` in a text, one per token.
pub type Offsets = Vec<(usize, usize)>;

/// Token ids and segment ids of one sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

impl BertEncoder {
    pub fn new(tok: &TextTokenizer) -> Result<BertEncoder> {
        let need = "a BERT input needs [CLS], [SEP] and [PAD]";
        // a vocabulary without WordPiece's unknown token fails at the first word it cannot split, naming no file
        if let ModelWrapper::WordPiece(wp) = tok.inner().get_model() {
            tok.special_id(
                &wp.unk_token,
                "WordPiece gives it for a word it cannot split into pieces",
            )?;
        }
        Ok(BertEncoder {
            inner: tok.inner().clone(),
            cls: tok.special_id("[CLS]", need)?,
            sep: tok.special_id("[SEP]", need)?,
            pad: tok.special_id("[PAD]", need)?,
        })
    }

    /// `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` (segment ids 0, then 1 for `b [SEP]`), truncated to
    /// `max_len` tokens by dropping content from the end of whichever part is longer, one token at a time
    /// (Hugging Face's `longest_first`).
    pub fn encode(&self, a: &str, b: Option<&str>, max_len: usize) -> Result<Encoded> {
        let specials = 2 + usize::from(b.is_some());
        if max_len < specials + 1 {
            return Err(Error::Config(format!(
                "a maximum length of {max_len} leaves no room for text between the special tokens"
            )));
        }
        let ids_of = |t: &str| {
            self.inner
                .encode(t, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| Error::Tokenizer(e.to_string()))
        };
        let mut a = ids_of(a)?;
        let mut b = b.map(ids_of).transpose()?;
        let lb = b.as_ref().map_or(0, |b| b.len());
        let (mut na, mut nb) = (a.len(), lb);
        while na + nb > max_len - specials {
            if na >= nb {
                na -= 1;
            } else {
                nb -= 1;
            }
        }
        a.truncate(na);
        let mut ids = Vec::with_capacity(na + nb + specials);
        ids.push(self.cls);
        ids.extend_from_slice(&a);
        ids.push(self.sep);
        let mut type_ids = vec![0; ids.len()];
        if let Some(b) = b.as_mut() {
            b.truncate(nb);
            ids.extend_from_slice(b);
            ids.push(self.sep);
            type_ids.resize(ids.len(), 1);
        }
        Ok(Encoded { ids, type_ids })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    pub fn cls_id(&self) -> u32 {
        self.cls
    }

    pub fn sep_id(&self) -> u32 {
        self.sep
    }

    /// The pieces of pre-split `words` (no special tokens) and, for each piece, the index of its word. Each word
    /// is tokenized on its own, as BERT's token-classification recipe does.
    pub fn word_pieces(&self, words: &[&str]) -> Result<(Vec<u32>, Vec<usize>)> {
        let enc = self
            .inner
            .encode(words, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let word_of = enc
            .get_word_ids()
            .iter()
            .map(|w| w.map_or(0, |w| w as usize))
            .collect();
        Ok((enc.get_ids().to_vec(), word_of))
    }

    /// The pieces of `text` (no special tokens) with the byte span in `text` each comes from.
    pub fn pieces_with_offsets(&self, text: &str) -> Result<(Vec<u32>, Offsets)> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().to_vec()))
    }
}

/// Several encoded sequences padded to the longest: the buffers behind a [`BertInput`].
pub struct Padded {
    pub batch: usize,
    pub seq: usize,
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub lens: Vec<usize>,
}

impl Padded {
    pub fn new(items: &[&Encoded], pad: u32) -> Padded {
        let seq = items.iter().map(|e| e.ids.len()).max().unwrap_or(1).max(1);
        let mut p = Padded {
            batch: items.len(),
            seq,
            ids: vec![pad; items.len() * seq],
            type_ids: vec![0; items.len() * seq],
            lens: Vec::with_capacity(items.len()),
        };
        for (b, e) in items.iter().enumerate() {
            p.ids[b * seq..b * seq + e.ids.len()].copy_from_slice(&e.ids);
            p.type_ids[b * seq..b * seq + e.ids.len()].copy_from_slice(&e.type_ids);
            p.lens.push(e.ids.len());
        }
        p
    }

    pub fn input(&self) -> BertInput<'_> {
        BertInput {
            batch: self.batch,
            seq: self.seq,
            ids: &self.ids,
            type_ids: &self.type_ids,
            lens: &self.lens,
        }
    }
}

//! BERT's WordPiece tokenizer: training, loading a bare `vocab.txt`, and the per-id tables that
//! masked-language-model batches need.
//!
//! The pipeline is bert-base-uncased's: BERT normalizer (clean text, split Chinese characters,
//! optionally lowercase and strip accents), BERT pre-tokenizer (whitespace and punctuation),
//! WordPiece with continuing prefix "##", WordPiece decoder, and the post-processor
//! `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]` (type id 1 for B and its [SEP]).

use super::{file_chunks, tok_err, train_on_files, TextTokenizer};
use crate::data::text_chunks::in_batches;
use crate::error::{Error, Result};
use crate::hf;
use crate::progress::ReadingBar;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::normalizers::{BertNormalizer, NormalizerWrapper};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::sequence::Sequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{
    AddedToken, Model, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
    Tokenizer,
};

/// The special tokens of a trained WordPiece vocabulary, in id order: [PAD]=0 … [MASK]=4.
pub const BERT_SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Name of a BERT checkpoint's vocabulary file: one token per line, id = line number − 1.
pub(super) const VOCAB_FILE: &str = "vocab.txt";

/// Prefix marking a WordPiece token that continues a word.
const CONTINUING_PREFIX: &str = "##";

/// Alphabet cap while training, as Hugging Face's `BertWordPieceTokenizer`: rarer characters
/// become [UNK] instead of crowding out subwords.
const LIMIT_ALPHABET: usize = 1000;

/// Ids of the special tokens BERT pretraining uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BertSpecials {
    pub pad: u32,
    pub unk: u32,
    pub cls: u32,
    pub sep: u32,
    pub mask: u32,
}

/// A tokenizer with `normalizer`, the BERT pre-tokenizer and decoder around `model`.
fn bert_pipeline(model: WordPiece, normalizer: BertNormalizer) -> Tokenizer {
    let mut inner = Tokenizer::new(model);
    inner
        .with_normalizer(Some(normalizer))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_decoder(Some(WordPieceDecoder::new(CONTINUING_PREFIX.into(), true)));
    inner
}

/// BERT's whole tokenizer around `model`, as transformers' `BertTokenizer` builds it: [`bert_pipeline`],
/// the BERT special tokens the vocabulary has registered as special, and the [CLS]/[SEP] template.
fn bert_tokenizer(model: WordPiece, normalizer: BertNormalizer) -> Result<Tokenizer> {
    let mut inner = bert_pipeline(model, normalizer);
    let present: Vec<AddedToken> = BERT_SPECIAL_TOKENS
        .iter()
        .filter(|t| inner.token_to_id(t).is_some())
        .map(|&t| AddedToken::from(t, true))
        .collect();
    inner.add_special_tokens(&present);
    add_template(&mut inner)?;
    Ok(inner)
}

/// Adds the `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]` post-processor when the vocabulary has
/// [CLS] and [SEP].
fn add_template(inner: &mut Tokenizer) -> Result<()> {
    let [_, _, cls, sep, _] = BERT_SPECIAL_TOKENS;
    if let (Some(cls_id), Some(sep_id)) = (inner.token_to_id(cls), inner.token_to_id(sep)) {
        inner.with_post_processor(Some(bert_template(cls_id, sep_id)?));
    }
    Ok(())
}

/// The `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]` post-processor (type id 1 for B and its [SEP]) for the ids
/// of [CLS] and [SEP].
fn bert_template(cls_id: u32, sep_id: u32) -> Result<TemplateProcessing> {
    let [_, _, cls, sep, _] = BERT_SPECIAL_TOKENS;
    TemplateProcessing::builder()
        .try_single(format!("{cls} $A {sep}"))
        .and_then(|b| b.try_pair(format!("{cls} $A {sep} $B:1 {sep}:1")))
        .map_err(tok_err)?
        .special_tokens(vec![(cls, cls_id), (sep, sep_id)])
        .build()
        .map_err(tok_err)
}

impl TextTokenizer {
    /// BERT WordPiece trained with the crate's trainer on `files` (streamed in chunks), with
    /// special tokens [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.
    ///
    /// The vocabulary has `vocab_size` tokens, or fewer when the corpus runs out of pairs to
    /// merge, or more when its alphabet (each character alone and after "##") needs more.
    pub fn train_wordpiece(files: &[PathBuf], vocab_size: usize, lowercase: bool) -> Result<Self> {
        if vocab_size <= BERT_SPECIAL_TOKENS.len() {
            return Err(Error::Config(format!(
                "--vocab-size {vocab_size} is too small for a WordPiece: the {} special tokens need \
                 more",
                BERT_SPECIAL_TOKENS.len()
            )));
        }
        // strip_accents None follows `lowercase`, as in bert-base-uncased's tokenizer.json.
        let normalizer = BertNormalizer::new(true, true, None, lowercase);
        let mut inner = bert_pipeline(WordPiece::default(), normalizer);
        let (alphabet, continued) = word_alphabet(&inner, files)?;
        // The trainer gives "##c" pieces ids in hash-map order (huggingface/tokenizers#1794),
        // and ids break ties between merges; listing them after the specials fixes their ids.
        let specials = BERT_SPECIAL_TOKENS
            .iter()
            .map(|&t| t.to_string())
            .chain(continued.iter().map(|c| format!("{CONTINUING_PREFIX}{c}")))
            .map(|t| AddedToken::from(t, true))
            .collect();
        let mut trainer = TrainerWrapper::WordPieceTrainer(
            WordPieceTrainer::builder()
                .vocab_size(vocab_size)
                .show_progress(false)
                .limit_alphabet(alphabet.len())
                .initial_alphabet(alphabet.into_iter().collect())
                .continuing_subword_prefix(CONTINUING_PREFIX.into())
                .special_tokens(specials)
                .build(),
        );
        train_on_files(&mut inner, &mut trainer, files)?;
        // Rebuilt so that only the BERT specials are registered as special tokens.
        let ModelWrapper::WordPiece(model) = inner.get_model().clone() else {
            return Err(Error::Tokenizer(
                "WordPiece training made another model".into(),
            ));
        };
        Ok(Self {
            inner: bert_tokenizer(model, normalizer)?,
            source: None,
        })
    }

    /// Loads the `vocab.txt` of directory `dir` with the BERT pipeline, normalizing as its
    /// `tokenizer_config.json` says ([`normalizer_setting`]). The BERT special tokens the vocabulary
    /// has are registered as special.
    pub fn from_bert_vocab(dir: &Path) -> Result<Self> {
        let vocab = dir.join(VOCAB_FILE);
        let Some(vocab_s) = vocab.to_str() else {
            return Err(Error::format(&vocab, "the path is not valid UTF-8"));
        };
        let model = WordPiece::from_file(vocab_s)
            .build()
            .map_err(|e| Error::format(&vocab, e.to_string()))?;
        let lines = std::fs::read_to_string(&vocab)
            .map_err(Error::io(&vocab))?
            .lines()
            .count();
        if model.get_vocab_size() != lines {
            return Err(Error::format(
                &vocab,
                format!(
                    "{lines} lines but {} distinct tokens: a token is listed twice",
                    model.get_vocab_size()
                ),
            ));
        }
        if lines == 0 {
            return Err(Error::format(
                &vocab,
                "is empty: a vocab.txt lists one token per line",
            ));
        }
        Ok(Self {
            inner: bert_tokenizer(model, normalizer_setting(dir)?)?,
            source: Some(vocab),
        })
    }

    /// Makes the tokenizer frame texts as primer's BERT inputs are, `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`
    /// with B's segment id 1, where it does not already (a tokenizer.json without BERT's post-processor, a
    /// byte-level BPE), so that transformers' tokenizer gives a BERT trained with it the ids primer gave it. A
    /// byte-level post-processor's offset trimming is kept, before the frame. Says whether anything changed.
    pub fn frame_for_bert(&mut self) -> Result<bool> {
        let s = self.bert_specials()?;
        let pair = self.inner.encode(("a", "b"), true).map_err(tok_err)?;
        let (ids, types) = (pair.get_ids(), pair.get_type_ids());
        let framed = ids.first() == Some(&s.cls)
            && ids.last() == Some(&s.sep)
            && ids.iter().filter(|&&id| id == s.sep).count() == 2
            && types.first() == Some(&0)
            && types.last() == Some(&1);
        if framed {
            return Ok(false);
        }
        let template = bert_template(s.cls, s.sep)?;
        let processor = match self.inner.get_post_processor() {
            Some(PostProcessorWrapper::ByteLevel(b)) => {
                PostProcessorWrapper::Sequence(Sequence::new(vec![
                    PostProcessorWrapper::ByteLevel(*b),
                    template.into(),
                ]))
            }
            _ => template.into(),
        };
        self.inner.with_post_processor(Some(processor));
        Ok(true)
    }

    /// transformers loads the directory `dir` as a `BertTokenizer` when its `tokenizer_config.json` names that
    /// class or, without one, when config.json's `model_type` is "bert"; that class then normalizes as
    /// tokenizer_config.json's casing settings say ([`normalizer_setting`], which lowercases by default), not as
    /// tokenizer.json's BERT normalizer says where the two differ (transformers 4 rebuilds that normalizer, 5
    /// replaces it). A WordPiece tokenizer.json with a BERT normalizer loaded from such a directory gets the same,
    /// so that primer's ids are transformers'; another normalizer, which the two versions treat differently, is
    /// kept as tokenizer.json has it.
    pub(crate) fn follow_bert_tokenizer_class(&mut self, dir: &Path) -> Result<()> {
        let bert_parts = matches!(self.inner.get_model(), ModelWrapper::WordPiece(_))
            && matches!(
                self.inner.get_normalizer(),
                Some(NormalizerWrapper::BertNormalizer(_))
            );
        if !bert_parts || !is_bert_class(dir)? {
            return Ok(());
        }
        self.inner.with_normalizer(Some(normalizer_setting(dir)?));
        Ok(())
    }

    /// `tokenizer_config.json` for BERT's own tokenizer ([`bert_tokenizer`]) around a WordPiece
    /// vocabulary. transformers' `BertTokenizer` rebuilds that from the vocabulary and the casing
    /// read from this file (without it, it lowercases: a cased primer model would get other ids in
    /// transformers than in primer). None for any other pipeline, which it would not rebuild as is.
    pub fn bert_tokenizer_config(&self) -> Option<serde_json::Value> {
        let (Some(NormalizerWrapper::BertNormalizer(n)), ModelWrapper::WordPiece(model)) =
            (self.inner.get_normalizer(), self.inner.get_model())
        else {
            return None;
        };
        let rebuilt = bert_tokenizer(model.clone(), *n).ok()?;
        if rebuilt.to_string(false).ok()? != self.inner.to_string(false).ok()? {
            return None;
        }
        let mut cfg = serde_json::json!({
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": n.lowercase,
            "strip_accents": n.strip_accents,
            "tokenize_chinese_chars": n.handle_chinese_chars,
            "clean_up_tokenization_spaces": true,
        });
        self.add_special_token_keys(&mut cfg);
        Some(cfg)
    }

    /// The ids of [PAD], [UNK], [CLS], [SEP] and [MASK]; an error names the first one missing.
    pub fn bert_specials(&self) -> Result<BertSpecials> {
        let need = format!("BERT pretraining needs {}", BERT_SPECIAL_TOKENS.join(", "));
        let [pad, unk, cls, sep, mask] = BERT_SPECIAL_TOKENS.map(|t| self.special_id(t, &need));
        Ok(BertSpecials {
            pad: pad?,
            unk: unk?,
            cls: cls?,
            sep: sep?,
            mask: mask?,
        })
    }

    /// The id of special token `name`; the error says what is missing and, from `need`, what for.
    pub fn special_id(&self, name: &str, need: &str) -> Result<u32> {
        self.token_to_id(name).ok_or_else(|| {
            let why = format!("the tokenizer's vocabulary has no {name} token ({need})");
            match &self.source {
                Some(file) => Error::format(file, why),
                None => Error::Config(why),
            }
        })
    }

    /// Per id: whether the token continues a word (WordPiece's "##" pieces). All false for
    /// other models.
    pub fn continuation_table(&self) -> Vec<bool> {
        let mut table = vec![false; self.vocab_size()];
        if let ModelWrapper::WordPiece(model) = self.inner.get_model() {
            let prefix = &model.continuing_subword_prefix;
            for (token, id) in self.inner.get_vocab(false) {
                if let Some(slot) = table.get_mut(id as usize) {
                    *slot = token.starts_with(prefix.as_str());
                }
            }
        }
        table
    }

    /// Per id: whether the token is a special token ([PAD], [CLS], "<|endoftext|>", …).
    pub fn special_table(&self) -> Vec<bool> {
        let mut table = vec![false; self.vocab_size()];
        for (id, token) in self.inner.get_added_tokens_decoder() {
            if let Some(slot) = table.get_mut(id as usize) {
                *slot = token.special;
            }
        }
        table
    }
}

/// The characters the trainer may use — the `LIMIT_ALPHABET` most frequent in the pre-tokenized
/// words of `files`, ties broken by code point — and, of those, the ones seen inside a word.
fn word_alphabet(inner: &Tokenizer, files: &[PathBuf]) -> Result<(Vec<char>, Vec<char>)> {
    let mut counts: BTreeMap<char, (u64, bool)> = BTreeMap::new();
    let bar = ReadingBar::over("reading the characters of", files)?;
    for texts in in_batches(file_chunks(files, &bar)) {
        let counted = texts?
            .into_par_iter()
            .map(|text| text_alphabet(inner, text))
            .collect::<Vec<_>>();
        for chunk_counts in counted {
            for (c, (n, i)) in chunk_counts? {
                let (count, inside) = counts.entry(c).or_default();
                *count += n;
                *inside |= i;
            }
        }
    }
    let mut by_count: Vec<(char, u64, bool)> =
        counts.into_iter().map(|(c, (n, i))| (c, n, i)).collect();
    by_count.sort_by_key(|&(c, n, _)| (std::cmp::Reverse(n), c));
    by_count.truncate(LIMIT_ALPHABET);
    by_count.sort_by_key(|&(c, _, _)| c);
    let continued = by_count.iter().filter(|e| e.2).map(|e| e.0).collect();
    Ok((by_count.into_iter().map(|e| e.0).collect(), continued))
}

/// How often each character occurs in the pre-tokenized words of `text`, and whether inside a word.
fn text_alphabet(inner: &Tokenizer, text: String) -> Result<BTreeMap<char, (u64, bool)>> {
    let mut counts: BTreeMap<char, (u64, bool)> = BTreeMap::new();
    let mut words = PreTokenizedString::from(text);
    if let Some(normalizer) = inner.get_normalizer() {
        words
            .normalize(|n| normalizer.normalize(n))
            .map_err(tok_err)?;
    }
    BertPreTokenizer.pre_tokenize(&mut words).map_err(tok_err)?;
    for (word, _, _) in words.get_splits(OffsetReferential::Original, OffsetType::Byte) {
        for (i, c) in word.chars().enumerate() {
            let (count, inside) = counts.entry(c).or_default();
            *count += 1;
            *inside |= i > 0;
        }
    }
    Ok(counts)
}

/// Whether transformers' `AutoTokenizer` builds a `BertTokenizer` for directory `dir`: the class
/// `tokenizer_config.json` names, else (no file, or no `tokenizer_class` in it) config.json's `model_type`.
fn is_bert_class(dir: &Path) -> Result<bool> {
    let class = hf::read_optional_config::<serde_json::Value>(&dir.join("tokenizer_config.json"))?
        .get("tokenizer_class")
        .and_then(|c| c.as_str().map(str::to_string));
    Ok(match class {
        Some(c) => c == "BertTokenizer" || c == "BertTokenizerFast",
        None => {
            let model_type =
                hf::read_optional_config::<serde_json::Value>(&dir.join("config.json"))?
                    .get("model_type")
                    .and_then(|t| t.as_str().map(str::to_string));
            model_type.as_deref() == Some("bert")
        }
    })
}

/// BERT's normalizer as `dir/tokenizer_config.json` sets it, with transformers' `BertTokenizer`
/// defaults for what it leaves out (or when there is no file): `do_lower_case` true,
/// `tokenize_chinese_chars` true, `strip_accents` null (= follow `do_lower_case`).
fn normalizer_setting(dir: &Path) -> Result<BertNormalizer> {
    let path = dir.join("tokenizer_config.json");
    let config: serde_json::Value = hf::read_optional_config(&path)?;
    let flag = |key: &str| match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(Error::format(
            &path,
            format!("{key} must be true, false or null, not {other}"),
        )),
    };
    let chinese = flag("tokenize_chinese_chars")?.unwrap_or(true);
    let lowercase = flag("do_lower_case")?.unwrap_or(true);
    Ok(BertNormalizer::new(
        true,
        chinese,
        flag("strip_accents")?,
        lowercase,
    ))
}

#[cfg(test)]
mod tests;

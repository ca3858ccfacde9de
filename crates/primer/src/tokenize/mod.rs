//! Text tokenizers: a thin wrapper over the Hugging Face `tokenizers` crate.
//!
//! Three tokenizers can be trained from corpus files: a per-character one (like nanoGPT's
//! shakespeare_char), a GPT-2 style byte-level BPE and BERT's WordPiece (`wordpiece.rs`). All are
//! saved as ordinary `tokenizer.json` files, so Python `tokenizers`/`transformers` load them too.

use crate::data::text_chunks::{check_not_blank, TextChunks, CHUNK_BYTES, LONGEST_CHUNK_BYTES};
use crate::error::{Error, Result};
use crate::progress::ReadingBar;
use crate::train::atomic::write_atomic;
use added_tokens::SpecialToken;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Encoding, SplitDelimiterBehavior, Token, Tokenizer};

/// GPT-2's end-of-text special token.
pub const EOS_TOKEN: &str = "<|endoftext|>";

/// Unknown-token name the per-character model is given; it is not in its vocabulary, so an
/// unknown character is an error rather than a silent substitution.
const CHAR_UNK: &str = "<unk>";

/// A trained or loaded tokenizer.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The file it was loaded from, for errors about its vocabulary (`None` when trained).
    source: Option<PathBuf>,
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// The texts of the chunks of `files`, in order (see [`crate::data::text_chunks`]), counted on `bar` as they
/// are read; iteration stops after the first error.
fn file_chunks<'a>(
    files: &'a [PathBuf],
    bar: &'a ReadingBar,
) -> impl Iterator<Item = Result<String>> + 'a {
    files.iter().flat_map(move |file| {
        let (chunks, open_error) = match TextChunks::open(file, CHUNK_BYTES, LONGEST_CHUNK_BYTES) {
            Ok(chunks) => (Some(chunks), None),
            Err(e) => (None, Some(Err(e))),
        };
        let texts = chunks.into_iter().flatten().map(move |c| {
            c.map(|c| {
                bar.advance(c.text.len() as u64);
                c.text
            })
        });
        texts.chain(open_error)
    })
}

/// Trains `inner` on `files` (each must have some text), fed in the chunks [`crate::data::tokens`]
/// encodes, so a corpus larger than memory streams through.
fn train_on_files(
    inner: &mut Tokenizer,
    trainer: &mut TrainerWrapper,
    files: &[PathBuf],
) -> Result<()> {
    if files.is_empty() {
        return Err(Error::Config("no corpus file given".into()));
    }
    for file in files {
        check_not_blank(file)?;
    }
    let bar = ReadingBar::over("training the tokenizer on", files)?;
    let failure = Mutex::new(None);
    let texts = file_chunks(files, &bar).map_while(|text| match text {
        Ok(text) => Some(text),
        Err(e) => {
            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            None
        }
    });
    // once the whole text is read, the trainer chooses its vocabulary, for a time the bar cannot measure
    let choosing = std::iter::from_fn(|| {
        if failure.lock().is_ok_and(|f| f.is_none()) {
            bar.then("training the tokenizer: choosing its vocabulary".into());
        }
        None
    });
    let trained = inner.train(trainer, texts.chain(choosing)).map(|_| ());
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    trained.map_err(tok_err)
}

/// The per-character tokenizer's pre-tokenizer: each character is a pre-token of its own.
fn char_split() -> Result<Split> {
    // `[\s\S]` matches any one character, newline included, in every regex dialect.
    Split::new(
        SplitPattern::Regex(r"[\s\S]".into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(tok_err)
}

impl TextTokenizer {
    /// Character-level vocabulary (like nanoGPT shakespeare_char): one token per Unicode char
    /// seen in the corpus files, ids in sorted char order.
    pub fn train_char(files: &[PathBuf]) -> Result<Self> {
        for file in files {
            check_not_blank(file)?;
        }
        let bar = ReadingBar::over("reading the characters of", files)?;
        // ASCII is most text: a table for it, a set for the rest
        let (mut ascii, mut chars) = ([false; 128], BTreeSet::new());
        for text in file_chunks(files, &bar) {
            for c in text?.chars() {
                match ascii.get_mut(c as usize) {
                    Some(seen) => *seen = true,
                    None => {
                        chars.insert(c);
                    }
                }
            }
        }
        chars.extend((0..128u8).filter(|&b| ascii[b as usize]).map(char::from));
        if chars.is_empty() {
            return Err(Error::Config("no corpus file given".into()));
        }
        let vocab = chars
            .iter()
            .enumerate()
            .map(|(id, c)| (c.to_string(), id as u32))
            .collect();
        let model = WordLevel::builder()
            .vocab(vocab)
            .unk_token(CHAR_UNK.into())
            .build()
            .map_err(tok_err)?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_pre_tokenizer(Some(char_split()?))
            .with_decoder(Some(Fuse::new()));
        Ok(Self {
            inner,
            source: None,
        })
    }

    /// Byte-level BPE (GPT-2 style: ByteLevel pre-tokenizer/decoder, all 256 bytes in the
    /// initial alphabet, special token "<|endoftext|>") trained with the crate's trainer.
    ///
    /// The vocabulary has `vocab_size` tokens, or fewer when the corpus has fewer distinct
    /// pairs to merge. The files are fed in the same chunks [`crate::data::tokens`] encodes.
    pub fn train_bpe(files: &[PathBuf], vocab_size: usize) -> Result<Self> {
        let alphabet = ByteLevel::alphabet();
        if vocab_size <= alphabet.len() {
            return Err(Error::Config(format!(
                "--vocab-size {vocab_size} is too small for a byte-level BPE: the 256 byte tokens and {EOS_TOKEN} \
                 need at least {}",
                alphabet.len() + 1
            )));
        }
        let byte_level = ByteLevel::new(false, true, true);
        let mut inner = Tokenizer::new(BPE::default());
        inner
            .with_pre_tokenizer(Some(byte_level))
            .with_decoder(Some(byte_level))
            .with_post_processor(Some(byte_level));
        let mut trainer = TrainerWrapper::BpeTrainer(
            BpeTrainer::builder()
                .vocab_size(vocab_size)
                .min_frequency(0)
                .show_progress(false)
                .initial_alphabet(alphabet.into_iter().collect())
                .special_tokens(vec![AddedToken::from(EOS_TOKEN, true)])
                .build(),
        );
        train_on_files(&mut inner, &mut trainer, files)?;
        Ok(Self {
            inner,
            source: None,
        })
    }

    /// Loads a `tokenizer.json` (Hugging Face format).
    /// Padding and truncation the file may set (Hugging Face checkpoints often fix both at 128 or
    /// 512) are switched off: primer lays out every sequence itself, and a padded corpus would
    /// be mostly [PAD].
    pub fn from_file(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path).map_err(Error::io(path))?;
        let mut inner = Tokenizer::from_str(&json).map_err(|e| {
            let why = if serde_json::from_str::<serde_json::Value>(&json).is_ok() {
                format!("is JSON, but not a tokenizer.json of Hugging Face's tokenizers ({e})")
            } else if path.extension().is_some_and(|x| x == "txt") {
                format!(
                    "not a valid tokenizer.json ({e}); a BERT vocabulary is read as a file named vocab.txt, or \
                     from its directory"
                )
            } else {
                format!("not a valid tokenizer.json: {e}")
            };
            Error::format(path, why)
        })?;
        inner
            .with_truncation(None)
            .map_err(|e| Error::format(path, e.to_string()))?;
        inner.with_padding(None);
        Ok(Self {
            inner,
            source: Some(path.to_path_buf()),
        })
    }

    /// A tokenizer the user names by `path`: a model directory ([`Self::from_dir`]), a BERT `vocab.txt` (read as
    /// [`Self::from_bert_vocab`] reads its directory's), or a `tokenizer.json` by any name.
    pub fn from_path(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Self::from_dir(path);
        }
        if path.file_name().is_some_and(|n| n == wordpiece::VOCAB_FILE) {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            return Self::from_bert_vocab(dir);
        }
        Self::from_file(path)
    }

    /// Loads a model directory: its `tokenizer.json`; else BERT's `vocab.txt` (see
    /// [`Self::from_bert_vocab`]); else GPT-2's `vocab.json` + `merges.txt`. A WordPiece `tokenizer.json` that
    /// transformers loads as a `BertTokenizer` normalizes text as that class does (see
    /// [`Self::follow_bert_tokenizer_class`]).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        if json.is_dir() {
            return Err(Error::format(&json, "is a directory, not a tokenizer file"));
        }
        if json.is_file() {
            let mut tok = Self::from_file(&json)?;
            tok.follow_bert_tokenizer_class(dir)?;
            return Ok(tok);
        }
        if dir.join(wordpiece::VOCAB_FILE).is_file() {
            return Self::from_bert_vocab(dir);
        }
        Self::from_gpt2_vocab(dir)
    }

    /// GPT-2's `vocab.json` + `merges.txt`, with the two settings of `tokenizer_config.json` that transformers'
    /// `GPT2Tokenizer` applies to them: `add_prefix_space` (a space before the text, so its first word is
    /// encoded as a word inside a text is) and `add_bos_token` (`bos_token`, by default `<|endoftext|>`, before
    /// a prompt; see [`Self::encode_prompt`]).
    fn from_gpt2_vocab(dir: &Path) -> Result<Self> {
        #[derive(serde::Deserialize, Default)]
        struct Gpt2TokenizerConfig {
            #[serde(default)]
            add_prefix_space: bool,
            #[serde(default)]
            add_bos_token: bool,
            bos_token: Option<SpecialToken>,
        }
        let vocab = dir.join("vocab.json");
        let merges = dir.join("merges.txt");
        if !vocab.is_file() || !merges.is_file() {
            return Err(Error::format(
                dir,
                "has neither tokenizer.json nor vocab.txt nor vocab.json + merges.txt",
            ));
        }
        let (Some(vocab_s), Some(merges_s)) = (vocab.to_str(), merges.to_str()) else {
            return Err(Error::format(dir, "the path is not valid UTF-8"));
        };
        let model = BPE::from_file(vocab_s, merges_s)
            .build()
            .map_err(|e| Error::format(dir, format!("vocab.json/merges.txt: {e}")))?;
        let config_path = dir.join("tokenizer_config.json");
        let config: Gpt2TokenizerConfig = crate::hf::read_optional_config(&config_path)?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_pre_tokenizer(Some(ByteLevel::new(config.add_prefix_space, true, true)))
            .with_decoder(Some(ByteLevel::new(false, true, true)))
            .with_post_processor(Some(ByteLevel::new(false, true, true)));
        if inner.token_to_id(EOS_TOKEN).is_some() {
            inner.add_special_tokens(&[AddedToken::from(EOS_TOKEN, true)]);
        }
        added_tokens::add(&mut inner, dir)?;
        if config.add_bos_token {
            let bos = config
                .bos_token
                .as_ref()
                .map_or(EOS_TOKEN, SpecialToken::text)
                .to_string();
            let Some(bos_id) = inner.token_to_id(&bos) else {
                return Err(Error::format(
                    &config_path,
                    format!(
                        "add_bos_token is set but bos_token {bos:?} is neither in vocab.json nor an added \
                         token"
                    ),
                ));
            };
            inner.add_special_tokens(&[AddedToken::from(bos.clone(), true)]);
            let template = TemplateProcessing::builder()
                .try_single(format!("{bos} $A"))
                .map_err(tok_err)?
                .special_tokens(vec![(bos, bos_id)])
                .build()
                .map_err(tok_err)?;
            inner.with_post_processor(Some(template));
        }
        Ok(Self {
            inner,
            source: Some(vocab),
        })
    }

    /// Saves as `tokenizer.json` (written to a temporary file, then renamed over `path`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self.inner.to_string(true).map_err(tok_err)?;
        write_atomic(path, json.as_bytes())
    }

    /// Saves `dir/tokenizer.json` and `dir/tokenizer_config.json` (see [`Self::tokenizer_config`]) for a model
    /// of `positions` positions, which the config gives as `model_max_length`: the length at which
    /// transformers' tokenizer truncates (`truncation=True`) and beyond which it warns.
    pub fn save_in(&self, dir: &Path, positions: usize) -> Result<()> {
        self.save_in_padded(dir, None, positions)
    }

    /// [`Self::save_in`], with the token of id `pad` as tokenizer_config.json's `pad_token` where the vocabulary
    /// has no `[PAD]`: a GPT classifier's padding, so that transformers' tokenizer pads a batch for it.
    pub fn save_in_padded(&self, dir: &Path, pad: Option<u32>, positions: usize) -> Result<()> {
        self.save(&dir.join("tokenizer.json"))?;
        let mut cfg = self.tokenizer_config();
        if let Some(token) = pad.and_then(|id| self.inner.id_to_token(id)) {
            if cfg.get("pad_token").is_none() {
                cfg["pad_token"] = token.into();
            }
        }
        cfg["model_max_length"] = positions.into();
        crate::hf::write_json(&dir.join("tokenizer_config.json"), &cfg)
    }

    /// `tokenizer_config.json`, which tells transformers' `AutoTokenizer` what to build. Without it the class
    /// follows config.json's `model_type`, and `GPT2Tokenizer` or `BertTokenizer` rebuild their own pipeline
    /// around the vocabulary: a per-character GPT tokenizer would lose its spaces and newlines, a WordPiece
    /// without BERT's normalizer would get one. So BERT's own pipeline gets `BertTokenizer` with its casing
    /// ([`Self::bert_tokenizer_config`]); any other `PreTrainedTokenizerFast`, which runs tokenizer.json as
    /// it is, with the special tokens the vocabulary has.
    pub fn tokenizer_config(&self) -> serde_json::Value {
        if let Some(cfg) = self.bert_tokenizer_config() {
            return cfg;
        }
        let mut cfg = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": false,
        });
        self.add_special_token_keys(&mut cfg);
        if cfg.get("sep_token").is_some() {
            // BERT-style pairs carry segment ids, which this class leaves out unless told
            cfg["model_input_names"] =
                serde_json::json!(["input_ids", "token_type_ids", "attention_mask"]);
        }
        cfg
    }

    /// Sets the special-token keys of a `tokenizer_config.json` for the special tokens the vocabulary has:
    /// BERT's five, and GPT-2's `<|endoftext|>` as bos, eos and (without `[UNK]`) unk token.
    fn add_special_token_keys(&self, cfg: &mut serde_json::Value) {
        let [pad, unk, cls, sep, mask] = BERT_SPECIAL_TOKENS;
        let keys = [
            ("pad_token", pad),
            ("unk_token", unk),
            ("cls_token", cls),
            ("sep_token", sep),
            ("mask_token", mask),
            ("bos_token", EOS_TOKEN),
            ("eos_token", EOS_TOKEN),
            ("unk_token", EOS_TOKEN),
        ];
        for (key, token) in keys {
            if cfg.get(key).is_none() && self.inner.token_to_id(token).is_some() {
                cfg[key] = token.into();
            }
        }
    }

    /// Token ids of `text`, without special tokens added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_at(text).map_err(|e| match e {
            EncodeError::UnknownChar { offset, c } => Error::Tokenizer(format!(
                "character {c:?} (U+{:04X}) at byte {offset} of the text is not in the \
                 tokenizer's vocabulary",
                c as u32
            )),
            EncodeError::Other(msg) => Error::Tokenizer(msg),
        })
    }

    /// Token ids of a prompt to continue, as transformers' `tokenizer(text)` gives them: with the special tokens
    /// that the tokenizer's post-processor puts before a text (a beginning-of-sequence token), but without those
    /// it puts after one (an end-of-sequence token there would end the prompt before the continuation starts).
    /// For GPT-2's and primer's own tokenizers that is [`Self::encode`]'s ids.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let ids = self.encode(text)?;
        // the post-processor run on a stand-in one-token text: the special tokens before it are the prefix
        let probe = Encoding::from_tokens(vec![Token::new(0, String::new(), (0, 0))], 0);
        let framed = self
            .inner
            .post_process(probe, None, true)
            .map_err(tok_err)?;
        let text_at = framed
            .get_special_tokens_mask()
            .iter()
            .position(|&special| special == 0)
            .unwrap_or(0);
        Ok([&framed.get_ids()[..text_at], &ids].concat())
    }

    /// Like [`Self::encode`], with an unknown character reported by position so a caller can
    /// name the place in its file.
    pub(crate) fn encode_at(&self, text: &str) -> std::result::Result<Vec<u32>, EncodeError> {
        match self.inner.encode_fast(text, false) {
            Ok(encoding) => Ok(encoding.get_ids().to_vec()),
            Err(e) => Err(self
                .unknown_char(text)
                .map(|(offset, c)| EncodeError::UnknownChar { offset, c })
                .unwrap_or(EncodeError::Other(e.to_string()))),
        }
    }

    /// For a per-character (word-level) model: the first character of `text` it lacks.
    fn unknown_char(&self, text: &str) -> Option<(usize, char)> {
        if !matches!(self.inner.get_model(), ModelWrapper::WordLevel(_)) {
            return None;
        }
        let mut buf = [0u8; 4];
        text.char_indices()
            .find(|(_, c)| self.inner.token_to_id(c.encode_utf8(&mut buf)).is_none())
    }

    /// The text of `ids` (special tokens included). An id outside the vocabulary is an error.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.decode_skipping(ids, false)
    }

    /// The text of `ids` as a reader is shown it: special tokens (`<|endoftext|>`, an added `<pad>`…) left out,
    /// as transformers' text-generation pipeline decodes (`skip_special_tokens=True`). An id outside the
    /// vocabulary is an error.
    pub fn decode_text(&self, ids: &[u32]) -> Result<String> {
        self.decode_skipping(ids, true)
    }

    fn decode_skipping(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        if let Some(bad) = ids.iter().find(|&&id| !self.has_id(id)) {
            return Err(Error::Tokenizer(format!(
                "token id {bad} is not in the vocabulary (size {})",
                self.vocab_size()
            )));
        }
        self.inner.decode(ids, skip_special).map_err(tok_err)
    }

    /// Whether `id` is in the vocabulary (so that [`Self::decode`] takes it).
    pub fn has_id(&self, id: u32) -> bool {
        self.inner.id_to_token(id).is_some()
    }

    /// Number of tokens, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of token `tok`, if it is in the vocabulary.
    pub fn token_to_id(&self, tok: &str) -> Option<u32> {
        self.inner.token_to_id(tok)
    }

    /// The id of "<|endoftext|>", if the vocabulary has it.
    pub fn eos_id(&self) -> Option<u32> {
        self.token_to_id(EOS_TOKEN)
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// Why encoding failed.
pub(crate) enum EncodeError {
    /// `c`, at byte `offset` of the text, is not in a per-character vocabulary.
    UnknownChar { offset: usize, c: char },
    /// Any other failure reported by the `tokenizers` crate.
    Other(String),
}

mod added_tokens;
mod char_ids;
mod wordpiece;
pub(crate) use char_ids::CharIds;
pub use wordpiece::{BertSpecials, BERT_SPECIAL_TOKENS};

#[cfg(test)]
mod tests;

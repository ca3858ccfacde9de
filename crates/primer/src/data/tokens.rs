//! A corpus tokenized once into a binary token file, read memory-mapped (so it may exceed RAM).
//!
//! Format: a 24-byte header — magic `PRIMTOK1`, u32 token width in bytes (2 or 4), u32 vocab
//! size, u64 token count, all little-endian — then the tokens, little-endian, u16 when the
//! vocabulary has at most 65536 tokens and u32 otherwise.

use crate::data::text_chunks::{
    check_not_blank, in_batches, TextChunk, TextChunks, CHUNK_BYTES, LONGEST_CHUNK_BYTES,
};
use crate::error::{Error, Result};
use crate::progress::ReadingBar;
use crate::tokenize::{CharIds, EncodeError, TextTokenizer};
use crate::train::atomic::write_atomic_with;
use memmap2::Mmap;
use rayon::prelude::*;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"PRIMTOK1";
const HEADER_BYTES: usize = 24;

/// What [`encode_corpus`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFileInfo {
    /// Number of tokens in the file.
    pub tokens: u64,
    /// Size of the corpus text in bytes.
    pub bytes: u64,
}

/// Tokenizes `corpus` into the token file `out`.
///
/// Validates UTF-8 (the error names the file and the byte offset of the first invalid byte),
/// rejects an empty or whitespace-only corpus, streams the file in chunks cut at line
/// boundaries (see [`crate::data::text_chunks`]; the tokens equal those of encoding the whole text
/// at once), encodes the chunks in parallel, in order, and writes `out` atomically.
pub fn encode_corpus(corpus: &Path, tok: &TextTokenizer, out: &Path) -> Result<TokenFileInfo> {
    encode_corpus_in_chunks(corpus, tok, out, CHUNK_BYTES, LONGEST_CHUNK_BYTES)
}

fn encode_corpus_in_chunks(
    corpus: &Path,
    tok: &TextTokenizer,
    out: &Path,
    chunk_bytes: usize,
    longest: usize,
) -> Result<TokenFileInfo> {
    check_not_blank(corpus)?;
    let vocab = u32::try_from(tok.vocab_size())
        .map_err(|_| Error::Config(format!("vocab size {} is too large", tok.vocab_size())))?;
    let width = token_width(vocab);
    let mut info = TokenFileInfo {
        tokens: 0,
        bytes: 0,
    };
    write_atomic_with(out, |writer| {
        let io_out = Error::io(out);
        writer.write_all(&header(width, vocab, 0)).map_err(io_out)?;
        let chunks = TextChunks::open(corpus, chunk_bytes, longest)?;
        let bar = ReadingBar::over_file("tokenizing", corpus)?;
        let chars = tok.char_ids();
        let mut bytes = Vec::new();
        for texts in in_batches(chunks) {
            let texts = texts?;
            let encoded = texts
                .par_iter()
                .map(|chunk| encode_chunk(corpus, tok, chars.as_ref(), chunk))
                .collect::<Vec<_>>();
            for (chunk, ids) in texts.iter().zip(encoded) {
                let ids = ids?;
                bytes.clear();
                for &id in &ids {
                    if id >= vocab {
                        return Err(Error::Tokenizer(format!(
                            "token id {id} is outside the vocabulary of {vocab}"
                        )));
                    }
                    match width {
                        2 => bytes.extend_from_slice(&(id as u16).to_le_bytes()),
                        _ => bytes.extend_from_slice(&id.to_le_bytes()),
                    }
                }
                writer.write_all(&bytes).map_err(Error::io(out))?;
                info.tokens += ids.len() as u64;
                info.bytes += chunk.text.len() as u64;
                bar.advance(chunk.text.len() as u64);
            }
        }
        writer.flush().map_err(Error::io(out))?;
        let file = writer.get_mut();
        file.seek(SeekFrom::Start(0)).map_err(Error::io(out))?;
        file.write_all(&header(width, vocab, info.tokens))
            .map_err(Error::io(out))
    })?;
    Ok(info)
}

fn encode_chunk(
    corpus: &Path,
    tok: &TextTokenizer,
    chars: Option<&CharIds>,
    chunk: &TextChunk,
) -> Result<Vec<u32>> {
    let ids = match chars {
        Some(chars) => chars.encode_at(&chunk.text),
        None => tok.encode_at(&chunk.text),
    };
    ids.map_err(|e| match e {
        EncodeError::UnknownChar { offset, c } => Error::format(
            corpus,
            format!(
                "character {c:?} (U+{:04X}) at byte offset {} is not in the tokenizer's vocabulary",
                c as u32,
                chunk.offset + offset as u64
            ),
        ),
        EncodeError::Other(msg) => Error::format(
            corpus,
            format!("tokenizing bytes from offset {}: {msg}", chunk.offset),
        ),
    })
}

/// Bytes per token for a vocabulary of `vocab` tokens.
fn token_width(vocab: u32) -> u32 {
    if vocab <= 1 << 16 {
        2
    } else {
        4
    }
}

fn header(width: u32, vocab: u32, tokens: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&width.to_le_bytes());
    h[12..16].copy_from_slice(&vocab.to_le_bytes());
    h[16..24].copy_from_slice(&tokens.to_le_bytes());
    h
}

/// A memory-mapped token file written by [`encode_corpus`].
pub struct TokenFile {
    path: PathBuf,
    map: Mmap,
    width: usize,
    vocab: u32,
    len: usize,
}

impl TokenFile {
    /// Maps `path`, checking its header, its size and that every token is inside the vocabulary
    /// (errors name the file).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::io(path))?;
        let size = file.metadata().map_err(Error::io(path))?.len();
        if size < HEADER_BYTES as u64 {
            return Err(Error::format(
                path,
                format!("token file too short ({size} bytes) for its {HEADER_BYTES}-byte header"),
            ));
        }
        // SAFETY: the map is read-only; the file is ours and is replaced only by renaming a new
        // file over it, which leaves this mapping's file intact.
        let map = unsafe { Mmap::map(&file) }.map_err(Error::io(path))?;
        let field =
            |at: usize| u32::from_le_bytes([map[at], map[at + 1], map[at + 2], map[at + 3]]);
        if &map[..8] != MAGIC {
            return Err(Error::format(
                path,
                "not a primer token file (bad magic bytes)",
            ));
        }
        let width = field(8);
        let vocab = field(12);
        let count = u64::from_le_bytes(map[16..24].try_into().unwrap_or_default());
        if vocab == 0 || width != token_width(vocab) {
            return Err(Error::format(
                path,
                format!("bad header: token width {width} for vocab size {vocab}"),
            ));
        }
        let expected = count
            .checked_mul(u64::from(width))
            .and_then(|b| b.checked_add(HEADER_BYTES as u64));
        if expected != Some(size) {
            return Err(Error::format(
                path,
                format!(
                    "size {size} bytes does not match the header ({count} tokens of {width} \
                     bytes): the file is truncated or corrupt"
                ),
            ));
        }
        let len = usize::try_from(count)
            .map_err(|_| Error::format(path, "too many tokens for this machine"))?;
        let tokens = Self {
            path: path.to_path_buf(),
            map,
            width: width as usize,
            vocab,
            len,
        };
        tokens.check_ids()?;
        Ok(tokens)
    }

    /// Errors if a token is not below the vocabulary size.
    fn check_ids(&self) -> Result<()> {
        const BLOCK: usize = 1 << 16;
        let bar = ReadingBar::over_file("checking the tokens of", &self.path)?;
        let bad = (0..self.len.div_ceil(BLOCK))
            .into_par_iter()
            .find_first(|&b| {
                let start = b * BLOCK;
                let mut ids = vec![0; BLOCK.min(self.len - start)];
                self.read(start, &mut ids);
                bar.advance((ids.len() * self.width) as u64);
                ids.iter().any(|&id| id >= self.vocab)
            });
        let Some(block) = bad else { return Ok(()) };
        let start = block * BLOCK;
        let mut ids = vec![0; BLOCK.min(self.len - start)];
        self.read(start, &mut ids);
        let (i, id) = ids
            .iter()
            .enumerate()
            .find(|(_, &id)| id >= self.vocab)
            .map_or((0, 0), |(i, &id)| (start + i, id));
        Err(Error::format(
            &self.path,
            format!(
                "token {i} is {id}, outside the vocabulary of {}",
                self.vocab
            ),
        ))
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Vocabulary size stored in the header.
    pub fn vocab_size(&self) -> u32 {
        self.vocab
    }

    /// Copies `out.len()` tokens starting at token `start` into `out`.
    ///
    /// Panics if the range goes past the end (a programming error, not a data error).
    pub fn read(&self, start: usize, out: &mut [u32]) {
        let end = start.checked_add(out.len()).filter(|&end| end <= self.len);
        assert!(
            end.is_some(),
            "TokenFile::read: tokens {start}..{start}+{} past the end ({}) of {}",
            out.len(),
            self.len,
            self.path.display()
        );
        let bytes = &self.map[HEADER_BYTES + start * self.width..][..out.len() * self.width];
        if self.width == 2 {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = u32::from(u16::from_le_bytes([b[0], b[1]]));
            }
        } else {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> crate::testutil::Scratch {
        crate::testutil::scratch_dir("tokens", name)
    }

    fn read_all(file: &TokenFile) -> Vec<u32> {
        let mut ids = vec![0; file.len()];
        file.read(0, &mut ids);
        ids
    }

    /// Lines with runs of blank lines, trailing spaces, CRLF, tabs and non-ASCII text.
    fn sample_corpus() -> String {
        let lines = [
            "First Citizen:",
            "Before we proceed any further, hear me speak.",
            "",
            "All:  ",
            "Speak, speak.\r",
            "\tCafé — naïve 🙂 don't, we'll",
            "",
            "",
            "  indented 12345 line's end ",
        ];
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(lines[i % lines.len()]);
            text.push('\n');
        }
        text
    }

    fn check_chunked_encoding_matches(tok: &TextTokenizer, name: &str) {
        let dir = temp_dir(name);
        let corpus = dir.join("corpus.txt");
        let text = sample_corpus();
        std::fs::write(&corpus, &text).unwrap();
        let whole = tok.encode(&text).unwrap();
        // From 4 bytes up, every chunk (at most 16 bytes) of this corpus finds whitespace to end
        // at; smaller chunks would be cut inside words.
        for chunk_bytes in [4, 16, 50, 300, 1 << 20] {
            let out = dir.join(format!("tokens-{chunk_bytes}.bin"));
            let info =
                encode_corpus_in_chunks(&corpus, tok, &out, chunk_bytes, 4 * chunk_bytes).unwrap();
            assert_eq!(
                info.tokens,
                whole.len() as u64,
                "chunks of {chunk_bytes} bytes"
            );
            assert_eq!(info.bytes, text.len() as u64);
            let file = TokenFile::open(&out).unwrap();
            assert_eq!(file.vocab_size() as usize, tok.vocab_size());
            assert_eq!(read_all(&file), whole, "chunks of {chunk_bytes} bytes");
            assert_eq!(
                std::fs::metadata(&out).unwrap().len(),
                24 + 2 * whole.len() as u64
            );
        }
        let file = TokenFile::open(&dir.join("tokens-16.bin")).unwrap();
        let mut middle = vec![0; 7];
        file.read(5, &mut middle);
        assert_eq!(middle, whole[5..12]);
    }

    #[test]
    fn chunked_char_encoding_equals_whole_encoding() {
        let dir = temp_dir("char-vocab");
        let corpus = dir.join("corpus.txt");
        std::fs::write(&corpus, sample_corpus()).unwrap();
        let tok = TextTokenizer::train_char(&[corpus]).unwrap();
        check_chunked_encoding_matches(&tok, "char");
    }

    #[test]
    fn chunked_bpe_encoding_equals_whole_encoding() {
        let dir = temp_dir("bpe-vocab");
        let corpus = dir.join("corpus.txt");
        std::fs::write(&corpus, sample_corpus()).unwrap();
        let tok = TextTokenizer::train_bpe(&[corpus], 300).unwrap();
        check_chunked_encoding_matches(&tok, "bpe");
    }

    #[test]
    fn corpus_errors_name_the_file_and_place() {
        let dir = temp_dir("errors");
        let good = dir.join("good.txt");
        std::fs::write(&good, "abc\n").unwrap();
        let tok = TextTokenizer::train_char(&[good]).unwrap();
        let out = dir.join("out.bin");

        let bad = dir.join("bad.txt");
        let mut bytes = b"abc\nabc\n".to_vec();
        bytes.insert(6, 0xc3);
        std::fs::write(&bad, &bytes).unwrap();
        let err = encode_corpus(&bad, &tok, &out).unwrap_err().to_string();
        assert!(
            err.contains("bad.txt") && err.contains("byte offset 6"),
            "{err}"
        );

        let unknown = dir.join("unknown.txt");
        std::fs::write(&unknown, "abc\nabd\n").unwrap();
        let err = encode_corpus_in_chunks(&unknown, &tok, &out, 2, 8)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown.txt") && err.contains("'d'"), "{err}");
        assert!(err.contains("byte offset 6"), "{err}");

        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "").unwrap();
        let blank = dir.join("blank.txt");
        std::fs::write(&blank, "\n \n").unwrap();
        for corpus in [&empty, &blank] {
            let err = encode_corpus(corpus, &tok, &out).unwrap_err().to_string();
            assert!(err.contains("empty"), "{err}");
        }
        assert!(
            !out.exists(),
            "a failed encoding must not leave an output file"
        );
    }

    #[test]
    fn damaged_token_files_are_rejected() {
        let dir = temp_dir("damaged");
        let corpus = dir.join("corpus.txt");
        std::fs::write(&corpus, "hello world\n").unwrap();
        let tok = TextTokenizer::train_char(std::slice::from_ref(&corpus)).unwrap();
        let out = dir.join("tokens.bin");
        encode_corpus(&corpus, &tok, &out).unwrap();
        let good = std::fs::read(&out).unwrap();

        let damaged = dir.join("damaged.bin");
        let cases: [(&[u8], &str); 4] = [
            (&good[..good.len() - 1], "truncated"),
            (&good[..10], "too short"),
            (&[&b"NOTTOKEN"[..], &good[8..]].concat(), "magic"),
            (&[&good[..], &[0u8, 0][..]].concat(), "truncated or corrupt"),
        ];
        for (bytes, expected) in cases {
            std::fs::write(&damaged, bytes).unwrap();
            let err = TokenFile::open(&damaged).err().unwrap().to_string();
            assert!(
                err.contains("damaged.bin") && err.contains(expected),
                "{err}"
            );
        }

        let mut out_of_vocab = good.clone();
        let last = out_of_vocab.len() - 2;
        out_of_vocab[last..].copy_from_slice(&100u16.to_le_bytes());
        std::fs::write(&damaged, &out_of_vocab).unwrap();
        let err = TokenFile::open(&damaged).err().unwrap().to_string();
        assert!(err.contains("token 11 is 100"), "{err}");
    }

    #[test]
    fn reads_four_byte_tokens() {
        let dir = temp_dir("wide");
        let path = dir.join("wide.bin");
        let ids = [0u32, 70_000, 65_536, 99_999, 7];
        let mut bytes = b"PRIMTOK1".to_vec();
        bytes.extend_from_slice(&4u32.to_le_bytes());
        bytes.extend_from_slice(&100_000u32.to_le_bytes());
        bytes.extend_from_slice(&(ids.len() as u64).to_le_bytes());
        for id in ids {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let file = TokenFile::open(&path).unwrap();
        assert_eq!((file.len(), file.vocab_size()), (5, 100_000));
        assert_eq!(read_all(&file), ids);
        let mut two = [0; 2];
        file.read(1, &mut two);
        assert_eq!(two, [70_000, 65_536]);
    }

    #[test]
    #[should_panic(expected = "past the end")]
    fn reading_past_the_end_panics() {
        let dir = temp_dir("past-end");
        let corpus = dir.join("corpus.txt");
        std::fs::write(&corpus, "abc\n").unwrap();
        let tok = TextTokenizer::train_char(std::slice::from_ref(&corpus)).unwrap();
        let out = dir.join("tokens.bin");
        encode_corpus(&corpus, &tok, &out).unwrap();
        let file = TokenFile::open(&out).unwrap();
        // removed now: the expected panic would keep it (the map outlives the file)
        drop(dir);
        file.read(2, &mut [0; 3]);
    }
}

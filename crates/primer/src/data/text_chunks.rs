//! Streaming a UTF-8 text file in bounded chunks, validating it on the way.
//!
//! A chunk ends just before a whitespace character that follows a non-whitespace one (a newline
//! when there is one). Encoding such chunks one by one gives the same tokens as encoding the whole
//! text, for the per-character tokenizer and for GPT-2's byte-level pre-tokenizer: no pre-token of
//! the GPT-2 split pattern runs from a non-whitespace character into the whitespace after it, and
//! the pattern never looks behind. Only text with no whitespace at all for `longest` bytes (1 MiB
//! in the library) is cut elsewhere (at a character boundary).

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One piece of a text file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChunk {
    /// Byte offset of the chunk's first byte in the file.
    pub offset: u64,
    /// The chunk's text.
    pub text: String,
}

/// Iterator over the chunks of a UTF-8 file. It holds at most about `longest` bytes of the file.
pub struct TextChunks {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    offset: u64,
    /// Line breaks in the bytes before `offset`, to name the line of an invalid byte.
    lines: u64,
    eof: bool,
    failed: bool,
    chunk_bytes: usize,
    longest: usize,
}

/// Chunk size used by the library. The `tokenizers` crate's work and memory for a text grow faster than its
/// length: 4 KiB chunks tokenize a corpus with BPE about a quarter faster than 256 KiB ones did, in less than
/// half the memory (each 256 KiB chunk in flight cost tens of MB).
pub const CHUNK_BYTES: usize = 1 << 12;

/// The most text the library holds looking for whitespace to end a chunk before it cuts the text anyway.
pub const LONGEST_CHUNK_BYTES: usize = 1 << 20;

impl TextChunks {
    /// Opens `path`; chunks will be about `chunk_bytes` long (at least 1), and text without whitespace is cut
    /// after `longest` bytes.
    pub fn open(path: &Path, chunk_bytes: usize, longest: usize) -> Result<Self> {
        let file = File::open(path).map_err(Error::io(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            buf: Vec::new(),
            offset: 0,
            lines: 0,
            eof: false,
            failed: false,
            chunk_bytes: chunk_bytes.max(1),
            longest,
        })
    }

    /// Reads from the file until the buffer holds `want` bytes or the file ends.
    fn fill(&mut self, want: usize) -> Result<()> {
        while !self.eof && self.buf.len() < want {
            let old = self.buf.len();
            self.buf.resize(want, 0);
            match self.file.read(&mut self.buf[old..]) {
                Ok(n) => {
                    self.buf.truncate(old + n);
                    self.eof = n == 0;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(Error::io(&self.path)(e));
                }
            }
        }
        Ok(())
    }

    /// Length of the valid UTF-8 prefix of the buffer, or the error for the first invalid byte.
    fn valid_len(&self) -> Result<usize> {
        match std::str::from_utf8(&self.buf) {
            Ok(s) => Ok(s.len()),
            // An incomplete character at the end of the buffer may be completed by the next read.
            Err(e) if e.error_len().is_none() && !self.eof => Ok(e.valid_up_to()),
            Err(e) => {
                let at = e.valid_up_to();
                let line = self.lines + newlines(&self.buf[..at]) + 1;
                Err(Error::format(
                    &self.path,
                    format!(
                        "line {line}: invalid UTF-8 at byte offset {}",
                        self.offset + at as u64
                    ),
                ))
            }
        }
    }

    fn next_chunk(&mut self) -> Result<Option<TextChunk>> {
        let mut want = self.chunk_bytes;
        let cut = loop {
            self.fill(want)?;
            if self.buf.is_empty() {
                return Ok(None);
            }
            let valid = self.valid_len()?;
            // `valid_len` succeeded, so this prefix is valid UTF-8.
            let text = std::str::from_utf8(&self.buf[..valid]).unwrap_or_default();
            if self.eof && valid == self.buf.len() {
                break valid;
            }
            if let Some(cut) = safe_cut(text) {
                break cut;
            }
            if want >= self.longest && valid > 0 {
                break valid;
            }
            // no more than `longest` (unless the buffer already holds that much), so that the cut comes there
            want = (want * 2).min(self.longest).max(self.buf.len() + 4);
        };
        let rest = self.buf.split_off(cut);
        let bytes = std::mem::replace(&mut self.buf, rest);
        let offset = self.offset;
        self.offset += cut as u64;
        self.lines += newlines(&bytes);
        let text = String::from_utf8(bytes)
            .map_err(|e| Error::format(&self.path, format!("invalid UTF-8: {e}")))?;
        Ok(Some(TextChunk { offset, text }))
    }
}

/// How many line breaks `bytes` holds.
fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

impl Iterator for TextChunks {
    type Item = Result<TextChunk>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let chunk = self.next_chunk().transpose();
        self.failed = matches!(chunk, Some(Err(_)));
        chunk
    }
}

/// The last position in `text` where a whitespace character follows a non-whitespace one,
/// preferring a newline; `None` when there is none.
fn safe_cut(text: &str) -> Option<usize> {
    let mut other_ws = None;
    let mut chars = text.char_indices().rev().peekable();
    while let Some((i, c)) = chars.next() {
        let prev_is_text = chars.peek().is_some_and(|&(_, p)| !p.is_whitespace());
        if c.is_whitespace() && prev_is_text {
            if c == '\n' {
                return Some(i);
            }
            other_ws.get_or_insert(i);
        }
    }
    other_ws
}

/// `chunks` in groups to work on in parallel: 16 a thread, so every thread stays busy with 4 KiB chunks. A
/// group that meets an error is that error.
pub fn in_batches<T>(
    mut chunks: impl Iterator<Item = Result<T>>,
) -> impl Iterator<Item = Result<Vec<T>>> {
    let batch = 16 * rayon::current_num_threads().max(1);
    std::iter::from_fn(
        move || match chunks.by_ref().take(batch).collect::<Result<Vec<_>>>() {
            Ok(group) if group.is_empty() => None,
            group => Some(group),
        },
    )
}

/// Errors unless `path` contains at least one non-whitespace character (reads it in chunks).
pub fn check_not_blank(path: &Path) -> Result<()> {
    for chunk in TextChunks::open(path, CHUNK_BYTES, LONGEST_CHUNK_BYTES)? {
        if chunk?.text.chars().any(|c| !c.is_whitespace()) {
            return Ok(());
        }
    }
    Err(Error::format(
        path,
        "the corpus is empty (or only whitespace)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` to a file `name` in a fresh directory: the directory and the file's path.
    fn temp_file(name: &str, bytes: &[u8]) -> (crate::testutil::Scratch, PathBuf) {
        let dir = crate::testutil::scratch_dir("text-chunks", name);
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn chunks(path: &Path, size: usize) -> Result<Vec<TextChunk>> {
        TextChunks::open(path, size, 4 * size)?.collect()
    }

    #[test]
    fn chunks_rebuild_the_file_and_end_before_newlines() {
        let text = "première ligne — é\nsecond line 🙂\n\nthird  \r\nlast";
        let (_dir, path) = temp_file("rebuild.txt", text.as_bytes());
        for size in [1, 3, 7, 16, 1000] {
            let parts = chunks(&path, size).unwrap();
            let joined: String = parts.iter().map(|c| c.text.as_str()).collect();
            assert_eq!(joined, text, "chunk size {size}");
            let mut offset = 0;
            for part in &parts {
                assert_eq!(part.offset, offset);
                offset += part.text.len() as u64;
            }
            // Words are at most 11 bytes long, so chunks of 7 bytes or more (cut at 28 bytes at
            // the latest) always find whitespace.
            if size >= 7 {
                for part in &parts[1..] {
                    let first = part.text.chars().next().unwrap();
                    assert!(
                        first.is_whitespace(),
                        "size {size}: chunk starts with {first:?}"
                    );
                }
            }
        }
        assert_eq!(chunks(&path, 1000).unwrap().len(), 1);
    }

    #[test]
    fn text_without_whitespace_is_still_chunked_at_char_boundaries() {
        let text = "ééééééééééééééééééééé".repeat(5);
        let (_dir, path) = temp_file("nows.txt", text.as_bytes());
        let parts = chunks(&path, 4).unwrap();
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|c| c.text.len() <= 18));
        assert_eq!(
            parts.iter().map(|c| c.text.as_str()).collect::<String>(),
            text
        );
    }

    /// Text without whitespace is cut once the chunk reaches `longest` bytes, wherever the chunk before it ended:
    /// a chunk does not grow past `longest` by doubling a longer leftover.
    #[test]
    fn text_without_whitespace_is_cut_at_the_longest_chunk() {
        let text = format!("{} {}\n", "a".repeat(60), "b".repeat(300));
        let (_dir, path) = temp_file("longest.txt", text.as_bytes());
        let parts = TextChunks::open(&path, 40, 100)
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .unwrap();
        let lens: Vec<usize> = parts.iter().map(|c| c.text.len()).collect();
        assert_eq!(lens, [60, 100, 100, 100, 2], "{lens:?}");
    }

    #[test]
    fn invalid_utf8_names_the_line_and_byte_offset() {
        let mut bytes = b"hello\nworld\n".repeat(10);
        bytes.insert(77, 0xff);
        let (_dir, path) = temp_file("bad.txt", &bytes);
        for size in [5, 64, 4096] {
            let err = chunks(&path, size).unwrap_err().to_string();
            assert!(
                err.contains("line 13: invalid UTF-8 at byte offset 77"),
                "{err}"
            );
            assert!(err.contains("bad.txt"), "{err}");
        }
        let (_dir, truncated) = temp_file("trunc.txt", &"abcé".as_bytes()[..4]);
        let err = chunks(&truncated, 2).unwrap_err().to_string();
        assert!(err.contains("byte offset 3"), "{err}");
    }

    #[test]
    fn blank_files_are_rejected() {
        let (_dir, empty) = temp_file("empty.txt", b"");
        let (_dir, blank) = temp_file("blank.txt", b" \n\t\n");
        let (_dir, text) = temp_file("text.txt", b" \n x");
        assert!(check_not_blank(&empty)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(check_not_blank(&blank).is_err());
        assert!(check_not_blank(&text).is_ok());
    }
}

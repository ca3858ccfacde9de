//! A tokenized corpus of segments for BERT pretraining.
//!
//! Format of the text file: documents separated by blank lines, one sentence (or paragraph) per
//! line. Each non-blank line is one segment, tokenized without special tokens; lines that
//! tokenize to nothing are skipped. All tokens sit in one flat array, so a run of consecutive
//! segments is one slice.

use crate::error::{Error, Result};
use crate::progress::ReadingBar;
use crate::tokenize::{EncodeError, TextTokenizer};
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Bytes of lines tokenized together (in parallel) while reading.
const BATCH_BYTES: usize = 1 << 20;

/// Documents of tokenized segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCorpus {
    tokens: Vec<u32>,
    /// Where segment `s` starts in `tokens`; one entry more than there are segments.
    seg_starts: Vec<usize>,
    /// The first segment of document `d`; one entry more than there are documents.
    doc_starts: Vec<usize>,
    /// The file it was read from, for error messages.
    source: Option<PathBuf>,
}

impl SegmentCorpus {
    fn empty(source: Option<PathBuf>) -> Self {
        Self {
            tokens: Vec::new(),
            seg_starts: vec![0],
            doc_starts: vec![0],
            source,
        }
    }

    fn push_segment(&mut self, ids: &[u32]) {
        if !ids.is_empty() {
            self.tokens.extend_from_slice(ids);
            self.seg_starts.push(self.tokens.len());
        }
    }

    /// Closes the current document, if it has any segment.
    fn end_document(&mut self) {
        let segments = self.n_segments();
        if self.doc_starts.last() != Some(&segments) {
            self.doc_starts.push(segments);
        }
    }

    /// Reads `path` (see the module documentation) and tokenizes its lines with `tok`. Errors
    /// name the file and line: invalid UTF-8, a character the tokenizer lacks, no text at all.
    pub fn from_file(path: &Path, tok: &TextTokenizer) -> Result<Self> {
        let mut reader = BufReader::new(File::open(path).map_err(Error::io(path))?);
        let mut corpus = Self::empty(Some(path.to_path_buf()));
        let bar = ReadingBar::over_file("tokenizing", path)?;
        let mut batch: Vec<(usize, String)> = Vec::new();
        let (mut batch_bytes, mut line_no, mut offset) = (0, 0, 0);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(Error::io(path))?;
            if read > 0 {
                line_no += 1;
                let text = String::from_utf8(std::mem::take(&mut buf)).map_err(|e| {
                    let at = offset + e.utf8_error().valid_up_to();
                    Error::format(
                        path,
                        format!("line {line_no}: invalid UTF-8 at byte offset {at}"),
                    )
                })?;
                offset += read;
                batch_bytes += read;
                batch.push((line_no, text));
            }
            if read == 0 || batch_bytes >= BATCH_BYTES {
                corpus.append_lines(path, tok, &batch)?;
                bar.advance(batch_bytes as u64);
                batch.clear();
                batch_bytes = 0;
            }
            if read == 0 {
                break;
            }
        }
        corpus.end_document();
        if corpus.n_segments() == 0 {
            return Err(Error::format(
                path,
                "no text: every line is blank or tokenizes to nothing (expected documents \
                 separated by blank lines, one sentence per line)",
            ));
        }
        Ok(corpus)
    }

    /// Tokenizes numbered `lines` in parallel and appends them in order; a blank line ends a
    /// document.
    fn append_lines(
        &mut self,
        path: &Path,
        tok: &TextTokenizer,
        lines: &[(usize, String)],
    ) -> Result<()> {
        let encoded: Vec<Result<Option<Vec<u32>>>> = lines
            .par_iter()
            .map(|(line_no, text)| {
                let text = text.trim_end_matches(['\n', '\r']);
                if text.trim().is_empty() {
                    return Ok(None);
                }
                tok.encode_at(text).map(Some).map_err(|e| {
                    let msg = match e {
                        EncodeError::UnknownChar { c, .. } => format!(
                            "character {c:?} (U+{:04X}) is not in the tokenizer's vocabulary",
                            c as u32
                        ),
                        EncodeError::Other(msg) => msg,
                    };
                    Error::format(path, format!("line {line_no}: {msg}"))
                })
            })
            .collect();
        for line in encoded {
            match line? {
                Some(ids) => self.push_segment(&ids),
                None => self.end_document(),
            }
        }
        Ok(())
    }

    /// A corpus from in-memory documents, each a list of segments; empty segments and
    /// documents are skipped. Errors when no token is left.
    pub fn from_documents(documents: &[Vec<Vec<u32>>]) -> Result<Self> {
        let mut corpus = Self::empty(None);
        for doc in documents {
            for segment in doc {
                corpus.push_segment(segment);
            }
            corpus.end_document();
        }
        if corpus.n_segments() == 0 {
            return Err(Error::Config("the corpus has no segments".into()));
        }
        Ok(corpus)
    }

    /// Number of segments (non-empty lines).
    pub fn n_segments(&self) -> usize {
        self.seg_starts.len() - 1
    }

    /// Number of documents.
    pub fn n_documents(&self) -> usize {
        self.doc_starts.len() - 1
    }

    /// Number of tokens in all segments.
    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// The segments of document `d`.
    pub(crate) fn document(&self, d: usize) -> Range<usize> {
        self.doc_starts[d]..self.doc_starts[d + 1]
    }

    /// Whether segment `s` is the first of its document.
    pub(crate) fn starts_document(&self, s: usize) -> bool {
        self.doc_starts.binary_search(&s).is_ok()
    }

    /// The tokens of the consecutive segments `segments`.
    pub(crate) fn tokens(&self, segments: Range<usize>) -> &[u32] {
        &self.tokens[self.seg_starts[segments.start]..self.seg_starts[segments.end]]
    }

    /// The end of the shortest run of segments from `start` (stopping at `limit`) that holds
    /// at least `target` tokens.
    pub(crate) fn run_end(&self, start: usize, limit: usize, target: usize) -> usize {
        let first = self.seg_starts[start];
        let mut end = start + 1;
        while end < limit && self.seg_starts[end] - first < target {
            end += 1;
        }
        end
    }

    /// Splits off a validation corpus: the last whole documents when `fraction` of them is at
    /// least one document and not all, otherwise the last segments (e.g. for a single
    /// document). Errors when `fraction` is not in (0, 1) or there are too few segments.
    pub fn split_validation(self, fraction: f64) -> Result<(Self, Self)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::Config(format!(
                "--val-fraction {fraction} must be in (0, 1)"
            )));
        }
        let docs = self.n_documents();
        let held_docs = (fraction * docs as f64).round() as usize;
        if docs >= 2 && (1..docs).contains(&held_docs) {
            let cut = self.doc_starts[docs - held_docs];
            return Ok(self.split_at(cut));
        }
        let segments = self.n_segments();
        let held = ((fraction * segments as f64).round() as usize).max(1);
        if held >= segments {
            let msg = format!(
                "{segments} segment(s) in {docs} document(s): too few to hold out \
                 {fraction} for validation (validate on another file with --val-corpus, or use a corpus \
                 of more documents or lines)"
            );
            return Err(match &self.source {
                Some(path) => Error::format(path, msg),
                None => Error::Config(msg),
            });
        }
        Ok(self.split_at(segments - held))
    }

    /// Segments before `cut`, and from `cut` on (documents across the cut split in two).
    fn split_at(mut self, cut: usize) -> (Self, Self) {
        let token_cut = self.seg_starts[cut];
        let mut tail = Self::empty(self.source.clone());
        tail.tokens = self.tokens.split_off(token_cut);
        tail.seg_starts = self.seg_starts.split_off(cut);
        tail.seg_starts.iter_mut().for_each(|s| *s -= token_cut);
        self.seg_starts.push(token_cut);
        let docs_before = self.doc_starts.partition_point(|&d| d < cut);
        tail.doc_starts = self.doc_starts.split_off(docs_before);
        if tail.doc_starts.first() != Some(&cut) {
            tail.doc_starts.insert(0, cut);
        }
        tail.doc_starts.iter_mut().for_each(|d| *d -= cut);
        self.doc_starts.push(cut);
        (self, tail)
    }
}

#[cfg(test)]
mod tests;

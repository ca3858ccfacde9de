//! BERT pretraining batches drawn from a [`SegmentCorpus`]: sentence pairs for next-sentence
//! prediction, or packed full sentences without it, then padded and masked.
//!
//! **With NSP** (the original BERT's `create_instances_from_document`, drawn at random): first
//! the label, IsNext (0) or NotNext (1), each with probability 0.5. Then a document and a segment
//! in it — for IsNext a segment that is not its document's last, in a document of two or more
//! segments — and consecutive segments from there until they hold the target length (`seq − 3`
//! tokens; with probability 0.1 a random length in [2, `seq − 3`]) or the document ends; IsNext
//! takes at least two. A is the first k of them (k uniform in 1..n). For IsNext, B is the rest;
//! for NotNext, a run of segments from a random position of another document (with a single
//! document, any position but A's true continuation). So the labels are balanced whatever the
//! documents' lengths; only a corpus without a document of two segments gives NotNext alone.
//! While A and B do not fit, the longer loses a token — A at its start, B at its end — so an
//! IsNext pair still meets where the document does. The row is `[CLS] A [SEP] B [SEP]`, type ids
//! 0 up to the first [SEP] and 1 after it.
//!
//! **Without NSP** (RoBERTa's FULL-SENTENCES): from a random segment, `[CLS]` and consecutive
//! whole segments (running on into the next document, after a [SEP]; the corpus wraps around)
//! until the next would not fit, then `[SEP]`. A first segment longer than the row is cut. Type
//! ids are all 0.
//!
//! Rows are padded with [PAD], then masked by [`Masker`] (fresh masks every draw).

use crate::data::masking::{Masker, IGNORE_LABEL};
use crate::data::segments::SegmentCorpus;
use crate::engine::rng::{derive_seed, Rng};
use crate::error::{Error, Result};
use crate::tokenize::BertSpecials;
use std::ops::Range;

/// Chance of a shorter target length for an NSP pair, as BERT's `short_seq_prob`.
const SHORT_SEQ_PROB: f32 = 0.1;
/// NSP label of a pair whose B follows A (Hugging Face's convention).
pub const IS_NEXT: i32 = 0;
/// NSP label of a pair whose B is random.
pub const NOT_NEXT: i32 = 1;

/// One batch of masked rows, `[batch, seq]` row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BertBatch {
    pub batch: usize,
    pub seq: usize,
    /// Token ids after masking, [PAD] after each row's length.
    pub ids: Vec<u32>,
    /// Segment (token type) ids: 1 for B and its [SEP], else 0.
    pub type_ids: Vec<u32>,
    /// Real (unpadded) length of each row.
    pub lens: Vec<usize>,
    /// Original id at each position to predict, −100 elsewhere.
    pub mlm_labels: Vec<i32>,
    /// Per row: [`IS_NEXT`] or [`NOT_NEXT`]; all −100 without NSP.
    pub nsp_labels: Vec<i32>,
}

/// Draws [`BertBatch`]es of one shape and objective.
#[derive(Debug, Clone)]
pub struct BertBatcher {
    specials: BertSpecials,
    masker: Masker,
    seq: usize,
    nsp: bool,
}

/// A row before padding: its ids, how many of them have type id 0, and its NSP label.
struct Row {
    ids: Vec<u32>,
    first_part: usize,
    nsp_label: i32,
}

impl BertBatcher {
    /// Rows of `seq` tokens, sentence pairs when `nsp`. Errors when `seq` cannot hold a row
    /// (5 tokens with NSP, 3 without).
    pub fn new(specials: BertSpecials, masker: Masker, seq: usize, nsp: bool) -> Result<Self> {
        let least = if nsp { 5 } else { 3 };
        if seq < least {
            return Err(Error::Config(format!(
                "sequence length {seq} is too short: a row needs at least {least} tokens"
            )));
        }
        Ok(Self {
            specials,
            masker,
            seq,
            nsp,
        })
    }

    /// A batch of `batch` rows from `corpus`, wholly determined by `rng`'s state.
    pub fn draw(&self, corpus: &SegmentCorpus, batch: usize, rng: &mut Rng) -> BertBatch {
        let seq = self.seq;
        let mut out = BertBatch {
            batch,
            seq,
            ids: vec![self.specials.pad; batch * seq],
            type_ids: vec![0; batch * seq],
            lens: Vec::with_capacity(batch),
            mlm_labels: vec![IGNORE_LABEL; batch * seq],
            nsp_labels: Vec::with_capacity(batch),
        };
        for r in 0..batch {
            let row = if self.nsp {
                self.pair_row(corpus, rng)
            } else {
                self.packed_row(corpus, rng)
            };
            let span = r * seq..(r + 1) * seq;
            out.ids[span.start..span.start + row.ids.len()].copy_from_slice(&row.ids);
            out.type_ids[span.start + row.first_part..span.start + row.ids.len()].fill(1);
            out.lens.push(row.ids.len());
            out.nsp_labels.push(row.nsp_label);
            self.masker
                .mask(&mut out.ids[span.clone()], &mut out.mlm_labels[span], rng);
        }
        out
    }

    /// `n` batches drawn from seeds derived from `seed`: the same every call, so evaluations
    /// on them compare.
    pub fn fixed_batches(
        &self,
        corpus: &SegmentCorpus,
        n: usize,
        batch: usize,
        seed: u64,
    ) -> Vec<BertBatch> {
        (0..n as u64)
            .map(|i| self.draw(corpus, batch, &mut Rng::new(derive_seed(seed, &[i]))))
            .collect()
    }

    /// `[CLS] A [SEP] B [SEP]` (see the module documentation).
    fn pair_row(&self, corpus: &SegmentCorpus, rng: &mut Rng) -> Row {
        let max_tokens = self.seq - 3;
        let target = if rng.uniform() < SHORT_SEQ_PROB {
            2 + rng.below(max_tokens as u64 - 1) as usize
        } else {
            max_tokens
        };
        // IsNext needs A's document to go on after A: its first segment is drawn among all but the
        // document's last, and the run takes at least two segments (cut to length below).
        let next = if rng.uniform() < 0.5 {
            next_start(corpus, rng)
        } else {
            None
        };
        let is_next = next.is_some();
        let (doc, start) = next.unwrap_or_else(|| {
            let doc = below(rng, corpus.n_documents());
            let segments = corpus.document(doc);
            (doc, segments.start + below(rng, segments.len()))
        });
        let doc_end = corpus.document(doc).end;
        let mut end = corpus.run_end(start, doc_end, target);
        if is_next && end - start < 2 {
            end = start + 2;
        }
        let split = if end - start >= 2 {
            start + 1 + below(rng, end - start - 1)
        } else {
            end
        };
        let mut a = corpus.tokens(start..split);
        let (b_segments, nsp_label) = if is_next {
            (split..end, IS_NEXT)
        } else {
            let b_target = target.saturating_sub(a.len()).max(1);
            (random_b(corpus, doc, split, b_target, rng), NOT_NEXT)
        };
        let mut b = corpus.tokens(b_segments);
        while a.len() + b.len() > max_tokens {
            if a.len() > b.len() {
                a = &a[1..];
            } else {
                b = &b[..b.len() - 1];
            }
        }
        let BertSpecials { cls, sep, .. } = self.specials;
        let ids = [&[cls], a, &[sep], b, &[sep]].concat();
        Row {
            ids,
            first_part: a.len() + 2,
            nsp_label,
        }
    }

    /// `[CLS]` + whole consecutive segments + `[SEP]` (see the module documentation).
    fn packed_row(&self, corpus: &SegmentCorpus, rng: &mut Rng) -> Row {
        let room = self.seq - 2;
        let n = corpus.n_segments();
        let mut s = below(rng, n);
        let first = corpus.tokens(s..s + 1);
        let mut ids = vec![self.specials.cls];
        ids.extend_from_slice(&first[..first.len().min(room)]);
        for _ in 1..n {
            let next = (s + 1) % n;
            let new_doc = corpus.starts_document(next);
            let segment = corpus.tokens(next..next + 1);
            if ids.len() - 1 + usize::from(new_doc) + segment.len() > room {
                break;
            }
            if new_doc {
                ids.push(self.specials.sep);
            }
            ids.extend_from_slice(segment);
            s = next;
        }
        ids.push(self.specials.sep);
        let first_part = ids.len();
        Row {
            ids,
            first_part,
            nsp_label: IGNORE_LABEL,
        }
    }
}

/// Uniform in [0, n).
fn below(rng: &mut Rng, n: usize) -> usize {
    rng.below(n as u64) as usize
}

/// A random (document, segment) with at least one more segment after it in its document: the
/// document drawn uniformly among those of two or more segments (by rejection; after 64 misses,
/// the first such document from a random one on), the segment uniformly among all but its last.
/// None when no document has two segments.
fn next_start(corpus: &SegmentCorpus, rng: &mut Rng) -> Option<(usize, usize)> {
    let docs = corpus.n_documents();
    let first = below(rng, docs);
    let doc = (0..64)
        .map(|_| below(rng, docs))
        .chain((0..docs).map(|i| (first + i) % docs))
        .find(|&d| corpus.document(d).len() >= 2)?;
    let segments = corpus.document(doc);
    Some((doc, segments.start + below(rng, segments.len() - 1)))
}

/// Segments for a random B of about `target` tokens: from another document, or — with a
/// single document — from any position but `true_next`, A's real continuation.
fn random_b(
    corpus: &SegmentCorpus,
    doc: usize,
    true_next: usize,
    target: usize,
    rng: &mut Rng,
) -> Range<usize> {
    let docs = corpus.n_documents();
    let segments = if docs >= 2 {
        let other = below(rng, docs - 1);
        corpus.document(if other >= doc { other + 1 } else { other })
    } else {
        corpus.document(doc)
    };
    let start = if docs >= 2 || segments.len() < 2 || true_next >= segments.end {
        segments.start + below(rng, segments.len())
    } else {
        let pick = segments.start + below(rng, segments.len() - 1);
        pick + usize::from(pick >= true_next)
    };
    start..corpus.run_end(start, segments.end, target)
}

#[cfg(test)]
mod tests;

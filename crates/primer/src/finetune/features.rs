//! Examples → model inputs: one [`Feature`] per sequence the model sees (a long QA context gives several), and
//! padded [`TaskBatch`]es of them.
//!
//! - Classification: BERT gets `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, truncated longest-first; a GPT gets
//!   the text (a pair joined by a newline), cut to `max_len` tokens, and is read at its last token that is not
//!   the model's padding (`pad_token_id`, as transformers reads it; at its first token when it is all padding).
//! - Token tasks (NER, slots): each word is tokenized on its own; its first piece carries the tag, the other
//!   pieces and the special tokens −100. Pieces beyond `max_len − 2` are cut (their words are predicted `O`).
//! - QA: `[CLS] question [SEP] context window [SEP]`; a context longer than the window is split into windows
//!   that share `doc_stride` tokens (Hugging Face's meaning of the flag). A window without the whole answer
//!   points at `[CLS]` (position 0), as Hugging Face's recipe does.

use super::model::TaskBatch;
use crate::engine::xent::IGNORE;
use crate::error::{Error, Result};
use crate::infer::bert_batch::BertEncoder;
use crate::tasks::datasets::QaExample;
use crate::tokenize::TextTokenizer;

/// One sequence for the model, with its targets and what is needed to map predictions back.
#[derive(Clone, Debug, Default)]
pub struct Feature {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Class or intent id (−100 when none).
    pub seq_label: i32,
    /// Per-token tag ids (token tasks), −100 where there is no tag.
    pub tok_labels: Vec<i32>,
    /// Answer start and end positions (QA).
    pub start: i32,
    pub end: i32,
    /// The example this sequence comes from.
    pub example: usize,
    /// Token tasks: the position of each word's first piece (`None` when cut off or when it has no piece).
    pub word_starts: Vec<Option<usize>>,
    /// QA: the context byte span of each token (`None` outside the context window).
    pub offsets: Vec<Option<(usize, usize)>>,
}

/// How texts become ids: BERT's special-token layout, or a GPT's plain token stream.
pub enum TextEncoder {
    Bert {
        enc: Box<BertEncoder>,
        tok: TextTokenizer,
    },
    Gpt {
        tok: TextTokenizer,
        pad: u32,
        /// The model's padding id, which a text is read without at its end, as transformers reads it.
        pad_token: Option<u32>,
    },
}

impl TextEncoder {
    pub fn bert(tok: &TextTokenizer) -> Result<TextEncoder> {
        Ok(TextEncoder::Bert {
            enc: Box::new(BertEncoder::new(tok)?),
            tok: tok.clone(),
        })
    }

    /// A GPT's texts, for a model whose config.json has `pad_token_id` (or none). Batches are padded with the
    /// end-of-text id (any id would do: no real token attends to later positions).
    pub fn gpt(tok: TextTokenizer, pad_token: Option<u32>) -> TextEncoder {
        let pad = tok.eos_id().unwrap_or(0);
        TextEncoder::Gpt {
            tok,
            pad,
            pad_token,
        }
    }

    /// The tokenizer behind the encoder.
    pub fn tokenizer(&self) -> &TextTokenizer {
        match self {
            TextEncoder::Bert { tok, .. } | TextEncoder::Gpt { tok, .. } => tok,
        }
    }

    fn pad(&self) -> u32 {
        match self {
            TextEncoder::Bert { enc, .. } => enc.pad_id(),
            TextEncoder::Gpt { pad, .. } => *pad,
        }
    }

    fn bert_only(&self, what: &str) -> Result<&BertEncoder> {
        match self {
            TextEncoder::Bert { enc, .. } => Ok(enc),
            TextEncoder::Gpt { .. } => Err(Error::Config(format!("{what} needs a BERT encoder"))),
        }
    }

    /// A classification input: text (and pair) to ids, labelled `label`. `where_` names the example in errors.
    pub fn classify(
        &self,
        text: &str,
        pair: Option<&str>,
        label: i32,
        max_len: usize,
        where_: &dyn Fn() -> String,
    ) -> Result<Feature> {
        let (ids, type_ids) = match self {
            TextEncoder::Bert { enc, .. } => {
                let e = enc
                    .encode(text, pair, max_len)
                    .map_err(|e| Error::Config(format!("{}: {e}", where_())))?;
                (e.ids, e.type_ids)
            }
            TextEncoder::Gpt { tok, pad_token, .. } => {
                let joined = match pair {
                    Some(b) => format!("{text}\n{b}"),
                    None => text.to_string(),
                };
                let mut ids = tok
                    .encode(&joined)
                    .map_err(|e| Error::Config(format!("{}: {e}", where_())))?;
                // cut, then read at the last token that is not padding, as transformers does (and, as it does,
                // at the first token of a text that is all padding)
                ids.truncate(max_len);
                while ids.len() > 1 && pad_token.is_some() && ids.last() == pad_token.as_ref() {
                    ids.pop();
                }
                if ids.is_empty() {
                    return Err(Error::Config(format!(
                        "{}: the text has no tokens",
                        where_()
                    )));
                }
                let n = ids.len();
                (ids, vec![0; n])
            }
        };
        Ok(Feature {
            ids,
            type_ids,
            seq_label: label,
            start: IGNORE,
            end: IGNORE,
            ..Feature::default()
        })
    }

    /// A token-tagging input: `[CLS] pieces [SEP]` with `tags[w]` on word `w`'s first piece (`tags` may be
    /// empty for prediction), and `seq_label` for the joint task.
    pub fn tag(
        &self,
        words: &[String],
        tags: &[i32],
        seq_label: i32,
        max_len: usize,
    ) -> Result<Feature> {
        let e = self.bert_only("token tagging")?;
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let (pieces, word_of) = if refs.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            e.word_pieces(&refs)?
        };
        let keep = pieces.len().min(max_len.saturating_sub(2));
        let mut ids = Vec::with_capacity(keep + 2);
        let mut tok_labels = vec![IGNORE; keep + 2];
        let mut word_starts = vec![None; words.len()];
        ids.push(e.cls_id());
        for (i, (&id, &w)) in pieces.iter().zip(&word_of).take(keep).enumerate() {
            ids.push(id);
            if word_starts[w].is_none() {
                word_starts[w] = Some(i + 1);
                tok_labels[i + 1] = tags.get(w).copied().unwrap_or(IGNORE);
            }
        }
        ids.push(e.sep_id());
        let n = ids.len();
        Ok(Feature {
            ids,
            type_ids: vec![0; n],
            seq_label,
            tok_labels,
            start: IGNORE,
            end: IGNORE,
            word_starts,
            ..Feature::default()
        })
    }

    /// The windows of a QA example (`example` is its index). With `train`, each window's target is the first
    /// answer's token span, or `[CLS]` when the window does not hold it.
    pub fn qa(
        &self,
        q: &QaExample,
        example: usize,
        lim: &QaLimits,
        train: bool,
    ) -> Result<Vec<Feature>> {
        let e = self.bert_only("question answering")?;
        let (mut qids, _) = e.pieces_with_offsets(&q.question)?;
        qids.truncate(lim.max_query_len);
        let (cids, offs) = e.pieces_with_offsets(&q.context)?;
        let room = lim.max_len.saturating_sub(qids.len() + 3);
        if room == 0 {
            return Err(Error::Config(format!(
                "--max-len {} leaves no room for the context after a {}-token question: lower --max-query-len \
                 ({}; questions are cut to it)",
                lim.max_len,
                qids.len(),
                lim.max_query_len
            )));
        }
        if train && cids.len() > room && lim.doc_stride >= room {
            return Err(Error::Config(format!(
                "--doc-stride {} must be below the {room} context tokens a window holds (--max-len {} less the \
                 question's {} tokens and 3 special ones): consecutive windows share --doc-stride tokens",
                lim.doc_stride,
                lim.max_len,
                qids.len()
            )));
        }
        // scoring a question longer than training's ones leaves less room: windows then move on by half of it
        let step = if lim.doc_stride < room {
            room - lim.doc_stride
        } else {
            room.div_ceil(2)
        };
        // the first answer's token span in the whole context
        let answer = q.answers.first().and_then(|a| {
            let (a0, a1) = (a.start, a.start + a.text.len());
            let s = (0..cids.len()).find(|&i| offs[i].1 > a0)?;
            let t = (0..cids.len()).rev().find(|&i| offs[i].0 < a1)?;
            (s <= t).then_some((s, t))
        });
        let mut out = Vec::new();
        let mut w0 = 0;
        loop {
            let w1 = (w0 + room).min(cids.len());
            let mut ids = vec![e.cls_id()];
            ids.extend_from_slice(&qids);
            ids.push(e.sep_id());
            let ctx0 = ids.len();
            ids.extend_from_slice(&cids[w0..w1]);
            ids.push(e.sep_id());
            let mut offsets = vec![None; ids.len()];
            for (i, &o) in offs[w0..w1].iter().enumerate() {
                offsets[ctx0 + i] = Some(o);
            }
            let mut type_ids = vec![0; ids.len()];
            type_ids[ctx0..].fill(1);
            let (mut start, mut end) = (IGNORE, IGNORE);
            if train {
                (start, end) = match answer {
                    Some((s, t)) if w0 <= s && t < w1 => {
                        ((ctx0 + s - w0) as i32, (ctx0 + t - w0) as i32)
                    }
                    _ => (0, 0),
                };
            }
            out.push(Feature {
                ids,
                type_ids,
                seq_label: IGNORE,
                start,
                end,
                example,
                offsets,
                ..Feature::default()
            });
            if w1 >= cids.len() {
                break;
            }
            w0 += step;
        }
        Ok(out)
    }

    /// Pads `items` to the longest into one batch.
    pub fn batch(&self, items: &[&Feature]) -> TaskBatch {
        let seq = items.iter().map(|f| f.ids.len()).max().unwrap_or(1).max(1);
        let pad = self.pad();
        let mut x = TaskBatch {
            batch: items.len(),
            seq,
            ids: vec![pad; items.len() * seq],
            type_ids: vec![0; items.len() * seq],
            tok_labels: vec![IGNORE; items.len() * seq],
            ..TaskBatch::default()
        };
        for (b, f) in items.iter().enumerate() {
            let r = b * seq..b * seq + f.ids.len();
            x.ids[r.clone()].copy_from_slice(&f.ids);
            x.type_ids[r.clone()].copy_from_slice(&f.type_ids);
            if !f.tok_labels.is_empty() {
                x.tok_labels[r].copy_from_slice(&f.tok_labels);
            }
            x.lens.push(f.ids.len());
            x.seq_labels.push(f.seq_label);
            x.starts.push(f.start);
            x.ends.push(f.end);
        }
        x
    }
}

/// QA windowing and decoding limits.
#[derive(Clone, Copy, Debug)]
pub struct QaLimits {
    pub max_len: usize,
    pub doc_stride: usize,
    pub max_query_len: usize,
    pub max_answer_len: usize,
}

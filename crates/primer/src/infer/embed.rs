//! Sentence embeddings from a BERT encoder: mean of the final hidden states over the real tokens (as
//! sentence-transformers) or the `[CLS]` state, optionally scaled to unit length.

use super::bert_batch::{texts_bar, BertEncoder, Padded, BATCH};
use crate::error::{Error, Result};
use crate::models::bert::Bert;
use crate::tokenize::TextTokenizer;

/// How token states become one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The final hidden state of `[CLS]`.
    Cls,
    /// The mean over every real token, `[CLS]` and `[SEP]` included (sentence-transformers' mean pooling).
    Mean,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Pooling> {
        match s {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            other => Err(Error::Config(format!(
                "--pooling must be cls or mean, not \"{other}\""
            ))),
        }
    }
}

/// One embedding per text, in order. Each text is truncated to `max_len` tokens ([CLS] and [SEP] included).
pub fn embed(
    model: &Bert,
    tok: &TextTokenizer,
    texts: &[String],
    pooling: Pooling,
    normalize: bool,
    max_len: usize,
) -> Result<Vec<Vec<f32>>> {
    let positions = model.config.max_position_embeddings;
    if max_len > positions || max_len < 3 {
        return Err(Error::Config(format!(
            "--max-length {max_len}: it must be between 3 ([CLS], one token, [SEP]) and the model's {positions} \
             positions (max_position_embeddings)"
        )));
    }
    let enc = BertEncoder::new(tok)?;
    let encoded = texts
        .iter()
        .map(|t| enc.encode(t, None, max_len))
        .collect::<Result<Vec<_>>>()?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| encoded[i].ids.len());
    let c = model.config.hidden_size;
    let mut out = vec![Vec::new(); texts.len()];
    let bar = texts_bar(texts.len())?;
    for group in order.chunks(BATCH) {
        let items: Vec<_> = group.iter().map(|&i| &encoded[i]).collect();
        let padded = Padded::new(&items, enc.pad_id());
        let hidden = model.hidden_states(&padded.input())?;
        for (b, &i) in group.iter().enumerate() {
            let rows = &hidden[b * padded.seq * c..(b * padded.seq + padded.lens[b]) * c];
            let mut v = match pooling {
                Pooling::Cls => rows[..c].to_vec(),
                Pooling::Mean => {
                    let mut sum = vec![0.0f64; c];
                    for row in rows.chunks_exact(c) {
                        sum.iter_mut().zip(row).for_each(|(s, &x)| *s += x as f64);
                    }
                    let n = padded.lens[b] as f64;
                    sum.iter().map(|s| (s / n) as f32).collect()
                }
            };
            if normalize {
                let norm = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                let scale = 1.0 / norm.max(1e-12);
                v.iter_mut().for_each(|x| *x = (*x as f64 * scale) as f32);
            }
            out[i] = v;
        }
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

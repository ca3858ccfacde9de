//! Fill-mask: the masked-LM head's most probable tokens for every `[MASK]` of a text.

use super::bert_batch::{BertEncoder, Padded};
use crate::error::{Error, Result};
use crate::models::bert::Bert;
use crate::tokenize::TextTokenizer;

/// One candidate token for a mask.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Candidate {
    pub id: u32,
    pub token: String,
    pub prob: f32,
}

/// The candidates for one `[MASK]`, most probable first; `position` counts tokens from `[CLS]` = 0.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MaskFill {
    pub position: usize,
    pub candidates: Vec<Candidate>,
}

/// The `top_k` most probable tokens for each `[MASK]` in `text` (several masks are predicted together, each
/// from the same forward pass). Errors when the text has no `[MASK]`, a `[MASK]` past the model's length
/// limit, or the model no masked-LM head.
pub fn fill_mask(
    model: &Bert,
    tok: &TextTokenizer,
    text: &str,
    top_k: usize,
) -> Result<Vec<MaskFill>> {
    let mask = tok.special_id("[MASK]", "fill-mask predicts the tokens at [MASK]")?;
    let enc = BertEncoder::new(tok)?;
    let limit = model.config.max_position_embeddings;
    let whole = enc.encode(text, None, usize::MAX)?;
    let masks = whole.ids.iter().filter(|&&id| id == mask).count();
    if masks == 0 {
        return Err(Error::Config(format!(
            "the text has no [MASK] token to fill: {text:?}"
        )));
    }
    let len = whole.ids.len();
    // encoded again, cut to the limit, only when it is too long
    let e = if len <= limit {
        whole
    } else {
        enc.encode(text, None, limit)?
    };
    let rows: Vec<usize> = (0..e.ids.len()).filter(|&i| e.ids[i] == mask).collect();
    if rows.len() < masks {
        return Err(Error::Config(format!(
            "the text is {len} tokens with [CLS] and [SEP], more than the model's {limit}: {} of its {masks} \
             [MASK] lie past the limit; shorten the text",
            masks - rows.len()
        )));
    }
    let padded = Padded::new(&[&e], enc.pad_id());
    let hidden = model.hidden_states(&padded.input())?;
    let logits = model.mlm_logits(&hidden, &rows)?;
    let v = model.config.vocab_size;
    rows.iter()
        .zip(logits.chunks_exact(v))
        .map(|(&position, row)| {
            let probs = softmax(row);
            let mut ids: Vec<usize> = (0..v).collect();
            let k = top_k.clamp(1, v);
            ids.select_nth_unstable_by(k - 1, |&a, &b| probs[b].total_cmp(&probs[a]));
            ids.truncate(k);
            ids.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            let candidates = ids
                .into_iter()
                .map(|id| Candidate {
                    id: id as u32,
                    token: tok
                        .inner()
                        .id_to_token(id as u32)
                        .unwrap_or_else(|| format!("<{id}>")),
                    prob: probs[id],
                })
                .collect();
            Ok(MaskFill {
                position,
                candidates,
            })
        })
        .collect()
}

fn softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f64> = row.iter().map(|&x| ((x - m) as f64).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| (x / s) as f32).collect()
}

//! Fill-mask: the masked-LM head's most probable tokens for every `[MASK]` of a text, or the probabilities of
//! chosen target tokens there (Hugging Face's fill-mask pipeline with `targets`).

use super::bert_batch::{texts_bar, BertEncoder, Encoded, Padded, BATCH};
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

/// A text checked and encoded for [`FillMask::run`]: it has at least one `[MASK]`, all within the model's
/// positions.
pub struct Masked {
    encoded: Encoded,
    rows: Vec<usize>,
}

/// Fill-mask with one model and one setting for many texts: [`Self::prepare`] checks each text (so that a
/// caller can say where a bad one came from), [`Self::run`] predicts them in batches.
pub struct FillMask<'a> {
    model: &'a Bert,
    tok: &'a TextTokenizer,
    enc: BertEncoder,
    mask: u32,
    top_k: usize,
    targets: Option<Vec<u32>>,
}

impl<'a> FillMask<'a> {
    /// Shows the `top_k` most probable tokens of the whole vocabulary for each mask or, with `targets`, the
    /// `top_k` most probable of those tokens (probabilities still over the whole vocabulary). A target is a
    /// vocabulary entry, or a text the tokenizer makes one token of; repeats count once.
    pub fn new(
        model: &'a Bert,
        tok: &'a TextTokenizer,
        top_k: usize,
        targets: Option<&[String]>,
    ) -> Result<FillMask<'a>> {
        if !model.heads.mlm {
            return Err(Error::Config(
                "this checkpoint has no masked-LM head (cls.predictions.*), which fill-mask needs"
                    .into(),
            ));
        }
        if top_k == 0 {
            return Err(Error::Config("--top-k must be at least 1".into()));
        }
        let enc = BertEncoder::new(tok)?;
        let targets = targets
            .map(|ts| target_ids(tok, &enc, ts, model.config.vocab_size))
            .transpose()?;
        Ok(FillMask {
            model,
            tok,
            mask: tok.special_id("[MASK]", "fill-mask predicts the tokens at [MASK]")?,
            enc,
            top_k,
            targets,
        })
    }

    /// `text` encoded, or an error when it has no `[MASK]` or one past the model's length limit.
    pub fn prepare(&self, text: &str) -> Result<Masked> {
        let limit = self.model.config.max_position_embeddings;
        let whole = self.enc.encode(text, None, usize::MAX)?;
        let masks = whole.ids.iter().filter(|&&id| id == self.mask).count();
        if masks == 0 {
            // the tokenizer matches the special token exactly, as transformers' does
            let hint = if text.to_ascii_uppercase().contains("[MASK]") {
                " ([MASK] is written in capitals)"
            } else {
                ""
            };
            return Err(Error::Config(format!(
                "the text has no [MASK] token to fill{hint}: {text:?}"
            )));
        }
        let len = whole.ids.len();
        // encoded again, cut to the limit, only when it is too long
        let encoded = if len <= limit {
            whole
        } else {
            self.enc.encode(text, None, limit)?
        };
        let rows: Vec<usize> = (0..encoded.ids.len())
            .filter(|&i| encoded.ids[i] == self.mask)
            .collect();
        if rows.len() < masks {
            return Err(Error::Config(format!(
                "the text is {len} tokens with [CLS] and [SEP], more than the model's {limit}: {} of its {masks} \
                 [MASK] lie past the limit; shorten the text",
                masks - rows.len()
            )));
        }
        Ok(Masked { encoded, rows })
    }

    /// The fills of every mask of every text, in order.
    pub fn run(&self, texts: &[Masked]) -> Result<Vec<Vec<MaskFill>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].encoded.ids.len());
        let mut out = vec![Vec::new(); texts.len()];
        let v = self.model.config.vocab_size;
        let bar = texts_bar(texts.len())?;
        for group in order.chunks(BATCH) {
            let items: Vec<&Encoded> = group.iter().map(|&i| &texts[i].encoded).collect();
            let padded = Padded::new(&items, self.enc.pad_id());
            let hidden = self.model.hidden_states(&padded.input())?;
            let rows: Vec<usize> = group
                .iter()
                .enumerate()
                .flat_map(|(b, &i)| texts[i].rows.iter().map(move |&r| b * padded.seq + r))
                .collect();
            let logits = self.model.mlm_logits(&hidden, &rows)?;
            let mut per_mask = logits.chunks_exact(v);
            for &i in group {
                out[i] = texts[i]
                    .rows
                    .iter()
                    .zip(per_mask.by_ref())
                    .map(|(&position, row)| MaskFill {
                        position,
                        candidates: self.candidates(row),
                    })
                    .collect();
            }
            bar.inc(group.len() as u64);
        }
        bar.finish_and_clear();
        Ok(out)
    }

    /// The best `top_k` of the allowed tokens for one mask's logits.
    fn candidates(&self, logits: &[f32]) -> Vec<Candidate> {
        let probs = softmax(logits);
        let mut ids: Vec<u32> = match &self.targets {
            Some(t) => t.clone(),
            None => (0..probs.len() as u32).collect(),
        };
        let k = self.top_k.min(ids.len());
        let by_prob = |a: &u32, b: &u32| probs[*b as usize].total_cmp(&probs[*a as usize]);
        ids.select_nth_unstable_by(k - 1, by_prob);
        ids.truncate(k);
        ids.sort_by(by_prob);
        ids.into_iter()
            .map(|id| Candidate {
                id,
                token: self
                    .tok
                    .inner()
                    .id_to_token(id)
                    .unwrap_or_else(|| format!("<{id}>")),
                prob: probs[id as usize],
            })
            .collect()
    }
}

/// The top `top_k` tokens for each `[MASK]` in one `text`; see [`FillMask`] for many texts.
pub fn fill_mask(
    model: &Bert,
    tok: &TextTokenizer,
    text: &str,
    top_k: usize,
) -> Result<Vec<MaskFill>> {
    let fm = FillMask::new(model, tok, top_k, None)?;
    let masked = fm.prepare(text)?;
    Ok(fm.run(&[masked])?.pop().unwrap_or_default())
}

/// The token ids of `targets`, first occurrence order: each an entry of the vocabulary as it stands, or a text
/// the tokenizer turns into exactly one token the model has, other than [UNK].
fn target_ids(
    tok: &TextTokenizer,
    enc: &BertEncoder,
    targets: &[String],
    vocab: usize,
) -> Result<Vec<u32>> {
    if targets.is_empty() {
        return Err(Error::Config("--targets needs at least one token".into()));
    }
    let mut ids = Vec::with_capacity(targets.len());
    for t in targets {
        if t.is_empty() {
            return Err(Error::Config(
                "--targets holds an empty target (two commas in a row, or one at an end?)".into(),
            ));
        }
        let id = match tok.token_to_id(t) {
            Some(id) => id,
            None => {
                let (pieces, _) = enc.pieces_with_offsets(t)?;
                let [id] = pieces[..] else {
                    let names: Vec<String> = pieces
                        .iter()
                        .map(|&p| tok.inner().id_to_token(p).unwrap_or_default())
                        .collect();
                    return Err(Error::Config(format!(
                        "target {t:?} is {} tokens ({}), not one; fill-mask predicts one token per [MASK]",
                        pieces.len(),
                        names.join(" ")
                    )));
                };
                if tok.token_to_id("[UNK]") == Some(id) {
                    return Err(Error::Config(format!(
                        "target {t:?} is not in the vocabulary: the tokenizer makes it [UNK]"
                    )));
                }
                id
            }
        };
        if id as usize >= vocab {
            return Err(Error::Config(format!(
                "target {t:?} is token {id}, past the model's {vocab} tokens"
            )));
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f64> = row.iter().map(|&x| ((x - m) as f64).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| (x / s) as f32).collect()
}

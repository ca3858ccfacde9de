//! Text generation from a GPT with a KV cache: greedy, temperature, top-k, top-p (nucleus) and repetition
//! penalty (as Hugging Face applies them: penalty, temperature, top-k, top-p, then sampling). Only ids the
//! tokenizer has are picked: Hugging Face GPT-2 vocabularies are often padded past the tokenizer's.

use crate::engine::awake::with_pool_awake;
use crate::engine::rng::Rng;
use crate::engine::xent;
use crate::error::{Error, Result};
use crate::hf::{self, TokenIds};
use crate::models::gpt::Gpt;
use crate::tokenize::TextTokenizer;
use serde::Deserialize;
use std::path::Path;

/// How to pick each next token.
#[derive(Clone, Debug)]
pub struct Sampling {
    pub max_new_tokens: usize,
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `p` (1.0 = off).
    pub top_p: f32,
    /// Divide positive (multiply negative) logits of tokens already in the context by this (1.0 = off).
    pub repetition_penalty: f32,
    /// Stop at any of these tokens (see [`stop_ids`]).
    pub stop_tokens: Vec<u32>,
    pub seed: u64,
}

impl Sampling {
    pub fn validate(&self) -> Result<()> {
        if self.temperature < 0.0 || !self.temperature.is_finite() {
            return Err(Error::Config("--temperature must be finite and ≥ 0".into()));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Config("--top-p must be in (0, 1]".into()));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(Error::Config(
                "--repetition-penalty must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// The ids that end a generated text in the model directory `dir`, as transformers picks them: `eos_token_id` of
/// `generation_config.json` when the directory has one that names it, else of `config.json` (a number or a list);
/// when neither does, the tokenizer's `<|endoftext|>`.
pub fn stop_ids(dir: &Path, model: &Gpt, tok: &TextTokenizer) -> Result<Vec<u32>> {
    #[derive(Deserialize)]
    struct GenerationConfig {
        #[serde(default)]
        eos_token_id: TokenIds,
    }
    let path = dir.join("generation_config.json");
    let mut ids = if path.exists() {
        hf::read_config::<GenerationConfig>(&path)?.eos_token_id.0
    } else {
        Vec::new()
    };
    if ids.is_empty() {
        ids.clone_from(&model.config.eos_token_id.0);
    }
    if ids.is_empty() {
        ids.extend(tok.eos_id());
    }
    Ok(ids)
}

/// Chooses the next token from `logits` (modified in place) given the tokens so far. An id whose logit is −∞
/// is never chosen; at least one must be finite.
pub fn pick(logits: &mut [f32], context: &[u32], s: &Sampling, rng: &mut Rng) -> u32 {
    if s.repetition_penalty != 1.0 {
        let mut seen = vec![false; logits.len()];
        for &t in context {
            if let Some(flag) = seen.get_mut(t as usize) {
                *flag = true;
            }
        }
        for (l, _) in logits.iter_mut().zip(&seen).filter(|(_, &s)| s) {
            *l = if *l > 0.0 {
                *l / s.repetition_penalty
            } else {
                *l * s.repetition_penalty
            };
        }
    }
    if s.temperature == 0.0 {
        return xent::argmax(logits) as u32;
    }
    let mut order: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, &l)| l != f32::NEG_INFINITY)
        .map(|(i, &l)| (i as u32, l / s.temperature))
        .collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    if s.top_k > 0 {
        order.truncate(s.top_k);
    }
    let Some(&(_, m)) = order.first() else {
        // every logit −∞ (a broken checkpoint): nothing to sample from
        return xent::argmax(logits) as u32;
    };
    let mut probs: Vec<f32> = order.iter().map(|&(_, l)| (l - m).exp()).collect();
    let total: f32 = probs.iter().sum();
    if !total.is_finite() {
        // a temperature so small that the scaled logits overflow: that is greedy decoding
        return order[0].0;
    }
    probs.iter_mut().for_each(|p| *p /= total);
    if s.top_p < 1.0 {
        let mut cum = 0.0;
        let keep = probs
            .iter()
            .position(|&p| {
                cum += p;
                cum >= s.top_p
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
    }
    let total: f32 = probs.iter().sum();
    let mut u = rng.uniform() * total;
    for (i, &p) in probs.iter().enumerate() {
        if u < p {
            return order[i].0;
        }
        u -= p;
    }
    order[probs.len() - 1].0
}

/// Generates up to `s.max_new_tokens` tokens after `prompt`, calling `on_token` with each one as it comes; only
/// ids `tok` has are picked. When the context reaches the model's `n_positions`, the cache is rebuilt from the
/// last half of it. A token is many short kernels, so the pool's threads stay awake for the whole run
/// ([`with_pool_awake`]).
pub fn generate(
    model: &Gpt,
    tok: &TextTokenizer,
    prompt: &[u32],
    s: &Sampling,
    on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    s.validate()?;
    if prompt.is_empty() {
        return Err(Error::Config("the prompt encodes to no tokens".into()));
    }
    let decodable: Vec<bool> = (0..model.config.vocab_size as u32)
        .map(|id| tok.has_id(id))
        .collect();
    if !decodable.contains(&true) {
        return Err(Error::Config(format!(
            "the tokenizer has none of the model's {} token ids",
            decodable.len()
        )));
    }
    with_pool_awake(|| sample_tokens(model, prompt, s, &decodable, on_token))
}

fn sample_tokens(
    model: &Gpt,
    prompt: &[u32],
    s: &Sampling,
    decodable: &[bool],
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    let n_ctx = model.config.n_positions;
    let mut rng = Rng::new(s.seed);
    let mut cache = model.new_cache();
    let mut tokens = prompt.to_vec();
    let start = tokens.len().saturating_sub(n_ctx);
    let mut logits = model.step(&mut cache, &tokens[start..])?;
    let mut out = Vec::new();
    for _ in 0..s.max_new_tokens {
        for (l, _) in logits.iter_mut().zip(decodable).filter(|(_, &ok)| !ok) {
            *l = f32::NEG_INFINITY;
        }
        let next = pick(&mut logits, &tokens, s, &mut rng);
        if s.stop_tokens.contains(&next) {
            break;
        }
        tokens.push(next);
        out.push(next);
        on_token(next)?;
        if cache.len() == cache.capacity() {
            cache.clear();
            let keep = (n_ctx / 2).max(1);
            logits = model.step(&mut cache, &tokens[tokens.len() - keep..])?;
        } else {
            logits = model.step(&mut cache, &[next])?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling() -> Sampling {
        Sampling {
            max_new_tokens: 1,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop_tokens: Vec::new(),
            seed: 0,
        }
    }

    #[test]
    fn greedy_topk_topp_and_penalty() {
        let logits = [1.0f32, 3.0, 2.0, 0.5];
        let mut rng = Rng::new(1);
        let greedy = Sampling {
            temperature: 0.0,
            ..sampling()
        };
        assert_eq!(pick(&mut logits.clone(), &[], &greedy, &mut rng), 1);
        // penalty 10 on token 1 (positive logit 3 -> 0.3): token 2 wins
        let pen = Sampling {
            repetition_penalty: 10.0,
            ..greedy.clone()
        };
        assert_eq!(pick(&mut logits.clone(), &[1], &pen, &mut rng), 2);
        // top-k 2 only ever samples tokens 1 and 2
        let k2 = Sampling {
            top_k: 2,
            ..sampling()
        };
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[pick(&mut logits.clone(), &[], &k2, &mut rng) as usize] += 1;
        }
        assert_eq!(counts[0] + counts[3], 0);
        // p(1)/p(2) = e within top-k 2
        let ratio = counts[1] as f64 / counts[2] as f64;
        assert!((ratio - std::f64::consts::E).abs() < 0.3, "ratio {ratio}");
        // top-p 0.5: token 1 alone has probability 0.64 ≥ 0.5
        let p = Sampling {
            top_p: 0.5,
            ..sampling()
        };
        assert!((0..200).all(|_| pick(&mut logits.clone(), &[], &p, &mut rng) == 1));
    }

    /// Logits a broken checkpoint gives, all NaN or all −∞, pick some id instead of panicking.
    #[test]
    fn non_finite_logits_do_not_panic() {
        let mut rng = Rng::new(1);
        for bad in [f32::NAN, f32::NEG_INFINITY] {
            let id = pick(&mut [bad; 4], &[], &sampling(), &mut rng);
            assert!(id < 4);
        }
    }
}

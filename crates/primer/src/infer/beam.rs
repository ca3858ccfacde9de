//! Beam search for a GPT, step for step as transformers 5 does it (`GenerationMixin._beam_search`, one
//! prompt).
//!
//! Each step scores every continuation of every running beam by its summed log-probability (after the
//! repetition penalty and the bans of [`process`], which transformers applies to log-probabilities here). Of
//! the best `keep` = max(2, 1 + number of end tokens) · beams, those that end (an end token, or the last allowed
//! step) and rank among the first `beams` become finished texts, scored by their sum divided by
//! `generated_length ^ length_penalty`; the best `beams` that do not end run on. The `beams` best finished texts
//! are kept. The search stops when no running beam can beat them any more ([`EarlyStopping`]) or at the length
//! limit.
//!
//! Beam sampling (`do_sample` with beams) is the same search, except that each beam's log-probabilities also go
//! through temperature, top-k, top-p and min-p ([`warp`]) and the `keep` candidates are drawn at random, without
//! replacement, in proportion to the exponent of their summed (warped) log-probabilities, as transformers'
//! `torch.multinomial` draws them; scores are then sums of warped log-probabilities, as in transformers.

use super::generate::{
    self, cache_capacity, context, mask_undecodable, process, restart, warp, Sampling,
};
use super::stop_strings::StopStrings;
use crate::engine::rng::Rng;
use crate::error::Result;
use crate::models::gpt::Gpt;
use crate::train::memory::{check_fits, lower_bound, product};
use serde::Deserialize;

/// When beam search may stop before the length limit, as transformers' `early_stopping`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EarlyStopping {
    /// `false` (transformers' default): when the best running beam, scored at its current length, cannot beat
    /// the worst of the finished texts.
    #[default]
    Heuristic,
    /// `true`: as soon as there are `num_beams` finished texts.
    Finished,
    /// `"never"`: as `false`, but a positive length penalty scores the running beam at the length limit (the
    /// textbook beam search).
    Never,
}

impl std::str::FromStr for EarlyStopping {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "false" => Ok(Self::Heuristic),
            "true" => Ok(Self::Finished),
            "never" => Ok(Self::Never),
            _ => Err(format!("expected true, false or never, not {s:?}")),
        }
    }
}

impl std::fmt::Display for EarlyStopping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Heuristic => "false",
            Self::Finished => "true",
            Self::Never => "never",
        })
    }
}

impl<'de> Deserialize<'de> for EarlyStopping {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "true, false or \"never\"")]
        enum Form {
            Flag(bool),
            Word(String),
        }
        match Form::deserialize(de)? {
            Form::Flag(true) => Ok(Self::Finished),
            Form::Flag(false) => Ok(Self::Heuristic),
            Form::Word(w) => w.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Beam search settings (transformers' `num_beams`, `length_penalty`, `early_stopping`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BeamSearch {
    pub num_beams: usize,
    /// Finished texts are scored by their summed log-probability over `length ^ length_penalty`: above 0
    /// favours longer texts, below 0 shorter ones. A double, as in transformers, where the power is taken in
    /// double precision before the f32 division.
    pub length_penalty: f64,
    pub early_stopping: EarlyStopping,
    /// Beam sampling (transformers' `do_sample` with beams): candidates drawn at random with the temperature,
    /// top-k, top-p and min-p of the [`Sampling`] and its seed, instead of the best ones.
    pub do_sample: bool,
}

/// A finished text: the generated tokens (with the end token that finished it, if one did) and its score.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    pub tokens: Vec<u32>,
    pub score: f32,
}

impl Hypothesis {
    /// The text's tokens before the first of `stop_tokens`: what a sampled text of the same tokens would be.
    pub fn text(&self, stop_tokens: &[u32]) -> &[u32] {
        let end = self.tokens.iter().position(|t| stop_tokens.contains(t));
        &self.tokens[..end.unwrap_or(self.tokens.len())]
    }
}

/// The score transformers gives a beam that must not be picked.
const EXCLUDED: f32 = -1e9;

/// One continuation: its summed log-probability, the beam it extends and its token.
#[derive(Clone, Copy)]
struct Candidate {
    score: f32,
    beam: usize,
    token: u32,
}

/// Runs beam search after `prompt` with the settings `b` (and `s`'s length, end tokens and repetition penalty);
/// only ids marked in `decodable` are picked. A text also ends with a token that completes one of `stops`, as
/// with an end token. Returns the finished texts, best first (at most `num_beams`).
pub(crate) fn search(
    model: &Gpt,
    prompt: &[u32],
    s: &Sampling,
    b: &BeamSearch,
    decodable: &[bool],
    stops: &StopStrings,
) -> Result<Vec<Hypothesis>> {
    let (beams, v) = (b.num_beams, model.config.vocab_size);
    if s.max_new_tokens == 0 {
        return Ok(Vec::new());
    }
    let mut cache = model.new_cache(cache_capacity(model, prompt.len(), s.max_new_tokens));
    let first = generate::step(model, &mut cache, context(model, prompt))?;
    cache.repeat(beams);
    let mut logits = first.repeat(beams);
    // beam 0 alone at first, so that the beams do not all pick the same tokens
    let mut running: Vec<Hypothesis> = (0..beams)
        .map(|i| Hypothesis {
            tokens: Vec::new(),
            score: if i == 0 { 0.0 } else { EXCLUDED },
        })
        .collect();
    let mut finished: Vec<Hypothesis> = Vec::new();
    // as transformers keeps them: per beam one token more than there are end tokens, and at least two
    let per_beam = (1 + s.stop_tokens.len()).max(2);
    let keep = per_beam * beams;
    let mut rng = Rng::new(s.seed);
    let texts = |running: &[Hypothesis]| -> Vec<Vec<u32>> {
        running
            .iter()
            .map(|h| [prompt, &h.tokens].concat())
            .collect()
    };
    for step in 0..s.max_new_tokens {
        let mut candidates = Vec::with_capacity(beams * v);
        for ((i, beam), text) in running.iter().enumerate().zip(texts(&running)) {
            let mut log_probs = log_softmax(&logits[i * v..(i + 1) * v]);
            // ids the tokenizer lacks are never candidates, nor part of top-k and top-p when sampling
            mask_undecodable(&mut log_probs, decodable);
            process(&mut log_probs, &text, beam.tokens.len(), s);
            if b.do_sample {
                warp(&mut log_probs, s, per_beam);
            }
            candidates.extend(
                log_probs
                    .iter()
                    .enumerate()
                    .filter(|(_, &l)| l != f32::NEG_INFINITY)
                    .map(|(t, &l)| Candidate {
                        score: l + beam.score,
                        beam: i,
                        token: t as u32,
                    }),
            );
        }
        let top = match b.do_sample {
            true => draw(candidates, keep, &mut rng),
            false => best(candidates, keep),
        };
        let last = step + 1 == s.max_new_tokens;
        let extend = |c: &Candidate| {
            let mut tokens = running[c.beam].tokens.clone();
            tokens.push(c.token);
            tokens
        };
        let ends = top
            .iter()
            .map(|c| {
                let ended = last || s.stop_tokens.contains(&c.token);
                // the candidate's whole text is built only when a stop string could end it
                Ok(ended
                    || (!stops.is_empty() && stops.completes(&[prompt, &extend(c)].concat())?))
            })
            .collect::<Result<Vec<bool>>>()?;
        // texts that end here join the finished ones if they rank among the first `beams` candidates
        let divisor = penalty_divisor(step + 1, b.length_penalty);
        for (c, _) in top.iter().zip(&ends).take(beams).filter(|(_, &e)| e) {
            finished.push(Hypothesis {
                tokens: extend(c),
                score: c.score / divisor,
            });
        }
        finished.sort_by(|x, y| y.score.total_cmp(&x.score));
        finished.truncate(beams);
        if ends.iter().all(|&e| e) {
            break;
        }
        // the best candidates that go on, then (where too few do) ended ones, out of the running
        let mut next: Vec<Candidate> = top
            .iter()
            .zip(&ends)
            .map(|(c, &e)| Candidate {
                score: if e { c.score + EXCLUDED } else { c.score },
                ..*c
            })
            .collect();
        next.sort_by(|x, y| y.score.total_cmp(&x.score));
        next.truncate(beams);
        while next.len() < beams {
            // fewer candidates than beams (bans and undecodable ids leave too few tokens): a beam that never
            // wins, whose continuations are dropped as candidates
            next.push(Candidate {
                score: f32::NEG_INFINITY,
                ..next[0]
            });
        }
        let parents: Vec<usize> = next.iter().map(|c| c.beam).collect();
        running = next
            .iter()
            .map(|c| Hypothesis {
                tokens: extend(c),
                score: c.score,
            })
            .collect();
        cache.reorder(&parents);
        if finished.len() == beams {
            if b.early_stopping == EarlyStopping::Finished {
                break;
            }
            // can the best running beam still beat the worst finished text?
            let length = match b.early_stopping {
                EarlyStopping::Never if b.length_penalty > 0.0 => s.max_new_tokens,
                _ => step + 1,
            };
            let best_possible = running[0].score / penalty_divisor(length, b.length_penalty);
            if finished.last().is_some_and(|w| best_possible <= w.score) {
                break;
            }
        }
        logits = if cache.len() == cache.capacity() {
            let texts = texts(&running);
            let texts: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
            restart(model, &mut cache, &texts)?
        } else {
            let ids: Vec<u32> = running
                .iter()
                .map(|h| h.tokens[h.tokens.len() - 1])
                .collect();
            generate::step(model, &mut cache, &ids)?
        };
    }
    Ok(finished)
}

/// `length ^ length_penalty`, taken in double precision and rounded to f32, as transformers divides by it.
fn penalty_divisor(length: usize, length_penalty: f64) -> f32 {
    (length as f64).powf(length_penalty) as f32
}

/// Refuses a search whose beams could not fit in memory, naming the flags to lower: their keys and values twice
/// ([`KvCache::reorder`] gathers them into a second buffer), the activations of a step that refills a full
/// cache, and per beam and vocabulary entry a candidate (4 floats' worth) and the logits of two steps.
///
/// [`KvCache::reorder`]: crate::models::gpt::KvCache::reorder
pub(crate) fn check_fits_in_memory(
    model: &Gpt,
    prompt_len: usize,
    s: &Sampling,
    b: &BeamSearch,
) -> Result<()> {
    let c = &model.config;
    let capacity = cache_capacity(model, prompt_len, s.max_new_tokens);
    let floats = product(&[2, b.num_beams, capacity, 2 * c.n_embd, c.n_layer])
        .saturating_add(product(&[b.num_beams, capacity, 16 * c.n_embd]))
        .saturating_add(product(&[b.num_beams, c.vocab_size, 6]));
    check_fits(lower_bound(0, floats), "--num-beams or --max-new-tokens")
}

/// The `keep` best candidates, best first; of equal scores, the one first in (beam, token) order.
fn best(mut candidates: Vec<Candidate>, keep: usize) -> Vec<Candidate> {
    let order = |x: &Candidate, y: &Candidate| {
        y.score
            .total_cmp(&x.score)
            .then((x.beam, x.token).cmp(&(y.beam, y.token)))
    };
    if candidates.len() > keep {
        candidates.select_nth_unstable_by(keep - 1, order);
        candidates.truncate(keep);
        candidates.shrink_to_fit();
    }
    candidates.sort_by(order);
    candidates
}

/// `keep` candidates drawn without replacement, each draw in proportion to `exp(score)` among those left (the
/// Gumbel-top-k trick: the `keep` largest of score + Gumbel noise), ordered as [`best`] orders them.
fn draw(candidates: Vec<Candidate>, keep: usize, rng: &mut Rng) -> Vec<Candidate> {
    let mut noisy: Vec<(f64, Candidate)> = candidates
        .into_iter()
        .map(|c| (f64::from(c.score) + rng.gumbel(), c))
        .collect();
    if noisy.len() > keep {
        noisy.select_nth_unstable_by(keep - 1, |x, y| y.0.total_cmp(&x.0));
        noisy.truncate(keep);
    }
    best(noisy.into_iter().map(|(_, c)| c).collect(), keep)
}

/// `log(softmax(logits))`, summed in f64.
fn log_softmax(logits: &[f32]) -> Vec<f32> {
    // finite: generate::step refuses logits that are not
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_sum = sum.ln() as f32;
    logits.iter().map(|&l| l - max - log_sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stopping_reads_as_transformers_writes_it() {
        for (json, want) in [
            ("true", EarlyStopping::Finished),
            ("false", EarlyStopping::Heuristic),
            ("\"never\"", EarlyStopping::Never),
        ] {
            let got: EarlyStopping = serde_json::from_str(json).unwrap();
            assert_eq!(got, want);
            assert_eq!(got.to_string().parse::<EarlyStopping>(), Ok(want));
        }
        assert!(serde_json::from_str::<EarlyStopping>("\"sometimes\"").is_err());
        assert!(serde_json::from_str::<EarlyStopping>("1").is_err());
    }

    #[test]
    fn best_keeps_the_top_scores_in_order_with_ties_by_beam_then_token() {
        let c = |score, beam, token| Candidate { score, beam, token };
        let all = vec![
            c(-2.0, 0, 5),
            c(-1.0, 1, 3),
            c(-1.0, 0, 9),
            c(-3.0, 1, 1),
            c(-0.5, 1, 7),
        ];
        let top: Vec<(usize, u32)> = best(all, 3).iter().map(|c| (c.beam, c.token)).collect();
        assert_eq!(top, [(1, 7), (0, 9), (1, 3)]);
    }

    #[test]
    fn draws_follow_sampling_without_replacement() {
        // four candidates with probabilities 0.1 to 0.4, two drawn: the chance of the pair {i, j} is
        // p_i p_j / (1 − p_i) + p_j p_i / (1 − p_j)
        let p = [0.1f64, 0.2, 0.3, 0.4];
        let all: Vec<Candidate> = (0..4)
            .map(|t| Candidate {
                score: p[t].ln() as f32 - 3.0,
                beam: 0,
                token: t as u32,
            })
            .collect();
        let mut rng = Rng::new(7);
        let n = 40_000;
        let mut pairs = [[0usize; 4]; 4];
        for _ in 0..n {
            let got = draw(all.clone(), 2, &mut rng);
            assert!(got[0].score >= got[1].score, "best first");
            let (i, j) = (got[0].token as usize, got[1].token as usize);
            pairs[i.min(j)][i.max(j)] += 1;
        }
        for i in 0..4 {
            for j in i + 1..4 {
                let want = p[i] * p[j] / (1.0 - p[i]) + p[j] * p[i] / (1.0 - p[j]);
                let got = pairs[i][j] as f64 / n as f64;
                let sigma = (want * (1.0 - want) / n as f64).sqrt();
                assert!(
                    (got - want).abs() < 4.5 * sigma,
                    "{{{i}, {j}}}: {got} vs {want}"
                );
            }
        }
        // fewer candidates than asked for: all of them
        assert_eq!(draw(all[..1].to_vec(), 2, &mut rng).len(), 1);
    }

    #[test]
    fn log_softmax_sums_to_one() {
        let lp = log_softmax(&[1.0, 2.0, 3.0, f32::NEG_INFINITY]);
        let total: f32 = lp.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        assert_eq!(lp[3], f32::NEG_INFINITY);
        assert!((lp[2] - lp[1] - 1.0).abs() < 1e-6);
    }
}

//! Masked-language-model masking: the whole rule, in one place.
//!
//! For one row of token ids (BERT; Hugging Face's `DataCollatorForLanguageModeling`, and
//! `DataCollatorForWholeWordMask` in spirit):
//! 1. **Candidates** are the positions whose token is not special ([PAD], [UNK], [CLS], [SEP],
//!    [MASK], …), so padding is never chosen.
//! 2. **Choice**: each candidate is chosen independently with probability `probability`. With
//!    `whole_word`, the draw is made once per word — a piece plus the "##" continuation pieces
//!    right after it — and all its pieces share it. A continuation piece right after a special
//!    token (or at the row's start) is a word of its own.
//! 3. **Labels**: a chosen position's label is its original id; every other label is −100, which
//!    the loss ignores.
//! 4. **Replacement**, drawn for each chosen position: with probability `mask_replace` the id
//!    becomes [MASK]; with probability `random_replace` an id drawn uniformly from the
//!    vocabulary's non-special ids (possibly the original); otherwise the id is kept.
//!
//! Every batch draws fresh masks (dynamic masking, as RoBERTa).

use crate::engine::rng::Rng;
use crate::error::{Error, Result};
use crate::tokenize::TextTokenizer;

/// Label of a position the loss ignores.
pub const IGNORE_LABEL: i32 = -100;

/// Probabilities of the masking rule (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskConfig {
    /// Chance that a token (or whole word) is chosen for prediction.
    pub probability: f32,
    /// Chance that a chosen token becomes [MASK].
    pub mask_replace: f32,
    /// Chance that a chosen token becomes a random non-special token.
    pub random_replace: f32,
    /// Choose whole words (a piece and its "##" continuations) together.
    pub whole_word: bool,
}

impl Default for MaskConfig {
    /// BERT's 15 % of tokens, 80 % [MASK] / 10 % random / 10 % kept, per token.
    fn default() -> Self {
        Self {
            probability: 0.15,
            mask_replace: 0.8,
            random_replace: 0.1,
            whole_word: false,
        }
    }
}

impl MaskConfig {
    /// Errors, naming the option, unless each probability is in [0, 1], `probability` > 0 and
    /// `mask_replace + random_replace` ≤ 1.
    pub fn validate(&self) -> Result<()> {
        if self.probability == 0.0 {
            return Err(Error::Config(
                "--mlm-probability must be above 0: nothing would be predicted".into(),
            ));
        }
        for (name, p, range) in [
            ("--mlm-probability", self.probability, "(0, 1]"),
            ("--mask-replace", self.mask_replace, "[0, 1]"),
            ("--random-replace", self.random_replace, "[0, 1]"),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::Config(format!("{name} {p} must be in {range}")));
            }
        }
        if self.mask_replace + self.random_replace > 1.0 + 1e-6 {
            return Err(Error::Config(format!(
                "--mask-replace {} plus --random-replace {} exceeds 1",
                self.mask_replace, self.random_replace
            )));
        }
        Ok(())
    }
}

/// Applies the masking rule with a vocabulary's per-id tables.
#[derive(Debug, Clone)]
pub struct Masker {
    cfg: MaskConfig,
    mask_id: u32,
    special: Vec<bool>,
    continuation: Vec<bool>,
    /// The non-special ids, for random replacement.
    replacements: Vec<u32>,
}

impl Masker {
    /// A masker from per-id tables (`special`, `continuation`: one entry per vocabulary id).
    /// Ids beyond the tables count as ordinary word-starting tokens.
    pub fn new(
        cfg: MaskConfig,
        mask_id: u32,
        special: Vec<bool>,
        continuation: Vec<bool>,
    ) -> Result<Self> {
        cfg.validate()?;
        let replacements: Vec<u32> = (0..special.len() as u32)
            .filter(|&id| !special[id as usize])
            .collect();
        if replacements.is_empty() {
            return Err(Error::Config(
                "the vocabulary has only special tokens: nothing to predict".into(),
            ));
        }
        Ok(Self {
            cfg,
            mask_id,
            special,
            continuation,
            replacements,
        })
    }

    /// A masker for `tok`'s vocabulary; errors when it lacks a BERT special token.
    pub fn for_tokenizer(tok: &TextTokenizer, cfg: MaskConfig) -> Result<Self> {
        let mask = tok.bert_specials()?.mask;
        Self::new(cfg, mask, tok.special_table(), tok.continuation_table())
    }

    /// The rule this masker applies.
    pub fn config(&self) -> &MaskConfig {
        &self.cfg
    }

    fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize) == Some(&true)
    }

    fn is_continuation(&self, id: u32) -> bool {
        self.continuation.get(id as usize) == Some(&true)
    }

    /// Masks one row in place and writes its labels (`ids` and `labels` of equal length).
    pub fn mask(&self, ids: &mut [u32], labels: &mut [i32], rng: &mut Rng) {
        let cfg = &self.cfg;
        let mut chosen = false;
        let mut after_candidate = false;
        for (id, label) in ids.iter_mut().zip(labels.iter_mut()) {
            *label = IGNORE_LABEL;
            if self.is_special(*id) {
                after_candidate = false;
                continue;
            }
            let continues_word = cfg.whole_word && after_candidate && self.is_continuation(*id);
            if !continues_word {
                chosen = rng.uniform() < cfg.probability;
            }
            after_candidate = true;
            if !chosen {
                continue;
            }
            *label = *id as i32;
            let u = rng.uniform();
            if u < cfg.mask_replace {
                *id = self.mask_id;
            } else if u < cfg.mask_replace + cfg.random_replace {
                *id = self.replacements[rng.below(self.replacements.len() as u64) as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests;

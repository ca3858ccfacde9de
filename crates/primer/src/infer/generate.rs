//! Text generation from a GPT with a KV cache: greedy, temperature, top-k, top-p (nucleus), min-p, repetition
//! penalty, no repeated n-grams, banned token sequences and a minimum length (as Hugging Face applies them:
//! penalty and bans, temperature, top-k, top-p, min-p, then sampling), or beam search ([`super::beam`]);
//! end-of-text ids and stop strings ([`super::stop_strings`]) end a text. Only ids the tokenizer has are picked: Hugging Face GPT-2 vocabularies
//! are often padded past the tokenizer's.

use super::beam::{self, BeamSearch, EarlyStopping, Hypothesis};
use super::stop_strings::{self, StopList, StopStrings};
use crate::engine::awake::with_pool_awake;
use crate::engine::rng::Rng;
use crate::engine::xent;
use crate::error::{Error, Result};
use crate::hf::{self, TokenIds};
use crate::models::gpt::{Gpt, KvCache};
use crate::tokenize::TextTokenizer;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How to pick each next token. The default is primer's: temperature [`DEFAULT_TEMPERATURE`],
/// [`DEFAULT_MAX_NEW_TOKENS`] tokens, everything else off.
#[derive(Clone, Debug)]
pub struct Sampling {
    pub max_new_tokens: usize,
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `p` (1.0 = off).
    pub top_p: f32,
    /// Keep only the tokens at least this fraction as probable as the likeliest one (0.0 = off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of tokens already in the context by this (1.0 = off).
    pub repetition_penalty: f32,
    /// Never pick a token that would make an n-gram of this size that the text (prompt included) already has
    /// (0 = off).
    pub no_repeat_ngram_size: usize,
    /// Never pick a stop token before this many tokens are generated.
    pub min_new_tokens: usize,
    /// Token sequences never generated (transformers' `bad_words_ids`): a one-token sequence is never picked, a
    /// longer one's last token is never picked where the text (prompt included) ends with the rest of it. A
    /// stop token on its own is not banned, as in transformers.
    pub bad_words: Vec<Vec<u32>>,
    /// Stop at any of these tokens (see [`GenerationConfig::stop_ids`]).
    pub stop_tokens: Vec<u32>,
    /// Stop after the token that completes any of these strings, keeping it (see [`super::stop_strings`]).
    pub stop_strings: Vec<String>,
    pub seed: u64,
    /// Beam search instead of picking token by token; temperature, top-k, top-p, min-p and the seed are then
    /// unused, unless it samples ([`BeamSearch::do_sample`]).
    pub beam: Option<BeamSearch>,
    /// How many texts are asked for: the best of the beams, or samples drawn with seeds `seed`, `seed + 1`, …
    /// (greedy decoding gives one).
    pub num_return_sequences: usize,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            temperature: DEFAULT_TEMPERATURE,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            min_new_tokens: 0,
            bad_words: Vec::new(),
            stop_tokens: Vec::new(),
            stop_strings: Vec::new(),
            seed: 0,
            beam: None,
            num_return_sequences: 1,
        }
    }
}

impl Sampling {
    pub fn validate(&self) -> Result<()> {
        let names = ["--temperature", "--top-p", "--repetition-penalty"];
        check_ranges(self.temperature, self.top_p, self.repetition_penalty, names)
            .map_err(Error::Config)?;
        check_min_p(self.min_p, "--min-p").map_err(Error::Config)?;
        stop_strings::check(&self.stop_strings, "--stop").map_err(Error::Config)?;
        check_bad_words(&self.bad_words, "--bad-words").map_err(Error::Config)?;
        if let Some(b) = &self.beam {
            let names = ["--num-beams", "--length-penalty"];
            check_beam(b.num_beams, b.length_penalty, names).map_err(Error::Config)?;
        }
        // the number of texts comes from --num-return-sequences or from generation_config.json
        let texts = self.num_return_sequences;
        let asked = format!(
            "{texts} texts (--num-return-sequences, or num_return_sequences in the model's file)"
        );
        let fault = match &self.beam {
            _ if texts == 0 => Some("--num-return-sequences must be at least 1".to_string()),
            Some(b) if texts > b.num_beams => Some(format!(
                "{asked} from {} beams: beam search returns its best --num-beams texts",
                b.num_beams
            )),
            None if texts > 1 && self.temperature == 0.0 => Some(format!(
                "{asked} from greedy decoding, which gives one: sample (--temperature above 0) or search \
                 (--num-beams at least {texts})"
            )),
            _ => None,
        };
        fault.map_or(Ok(()), |f| Err(Error::Config(f)))
    }
}

/// Checks a min-p setting, called `name`: a fraction in [0, 1].
fn check_min_p(min_p: f32, name: &str) -> std::result::Result<(), String> {
    if !(0.0..=1.0).contains(&min_p) {
        return Err(format!("{name} must be in [0, 1]"));
    }
    Ok(())
}

/// Checks token sequences to ban, called `name`: each must have a token (an empty list is allowed: it bans
/// nothing).
fn check_bad_words(words: &[Vec<u32>], name: &str) -> std::result::Result<(), String> {
    if words.iter().any(|w| w.is_empty()) {
        return Err(format!("{name} holds an empty token sequence"));
    }
    Ok(())
}

/// Checks the beam search settings, called `names` (number of beams, length penalty).
fn check_beam(
    num_beams: usize,
    length_penalty: f64,
    [n, l]: [&str; 2],
) -> std::result::Result<(), String> {
    if num_beams == 0 {
        return Err(format!("{n} must be at least 1"));
    }
    if !length_penalty.is_finite() {
        return Err(format!("{l} must be finite"));
    }
    Ok(())
}

/// Checks the settings that have a valid range: temperature, top-p and repetition penalty, called `names`.
fn check_ranges(
    temperature: f32,
    top_p: f32,
    repetition_penalty: f32,
    [t, p, r]: [&str; 3],
) -> std::result::Result<(), String> {
    if temperature < 0.0 || !temperature.is_finite() {
        return Err(format!("{t} must be finite and ≥ 0"));
    }
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(format!("{p} must be in (0, 1]"));
    }
    if !(repetition_penalty > 0.0 && repetition_penalty.is_finite()) {
        return Err(format!("{r} must be positive"));
    }
    Ok(())
}

/// How many tokens are generated when neither a flag nor `generation_config.json` says.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 200;
/// The temperature used when neither a flag nor `generation_config.json` says.
pub const DEFAULT_TEMPERATURE: f32 = 0.8;

/// The sampling settings a user gave (`None`: not given).
#[derive(Clone, Debug, Default)]
pub struct SamplingFlags {
    pub max_new_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub no_repeat_ngram_size: Option<usize>,
    pub min_new_tokens: Option<usize>,
    pub num_beams: Option<usize>,
    pub length_penalty: Option<f64>,
    pub early_stopping: Option<EarlyStopping>,
    pub num_return_sequences: Option<usize>,
    pub stop_strings: Option<Vec<String>>,
    pub bad_words: Option<Vec<Vec<u32>>>,
}

impl SamplingFlags {
    /// Whether a setting that only sampling uses (temperature, top-k, top-p, min-p) is given.
    fn asks_for_sampling(&self) -> bool {
        self.temperature.is_some()
            || self.top_k.is_some()
            || self.top_p.is_some()
            || self.min_p.is_some()
    }
}

/// The file beside a model's config.json with the settings its authors generate with.
pub const GENERATION_CONFIG: &str = "generation_config.json";

/// A model directory's `generation_config.json` (empty when it has none): its end-of-text ids and its
/// sampling settings.
///
/// The settings it has are used where no flag is given: `do_sample: false` means greedy decoding; `temperature`,
/// `top_k`, `top_p`, `min_p`, `repetition_penalty`, `no_repeat_ngram_size`, `max_new_tokens`, `min_new_tokens`,
/// `stop_strings` and `bad_words_ids` as they are; `max_length` and `min_length` count the prompt, as in
/// transformers, where `max_new_tokens` and `min_new_tokens` win over them. transformers writes only values that
/// differ from its own defaults, so when the file says `do_sample: true`, a temperature or top-k it lacks is
/// transformers' (1, 50), not primer's. `num_beams` above 1 means beam search (with `length_penalty` and
/// `early_stopping`), beam sampling when the file also says `do_sample: true`, unless a flag asks for sampling
/// without `--num-beams`.
/// Settings primer has no use for are listed by [`Self::not_followed`], to be reported.
#[derive(Debug, Default, Deserialize)]
pub struct GenerationConfig {
    #[serde(default)]
    pub eos_token_id: TokenIds,
    pub do_sample: Option<bool>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub no_repeat_ngram_size: Option<usize>,
    pub max_new_tokens: Option<usize>,
    pub max_length: Option<usize>,
    pub min_new_tokens: Option<usize>,
    pub min_length: Option<usize>,
    pub num_beams: Option<usize>,
    pub length_penalty: Option<f64>,
    pub early_stopping: Option<EarlyStopping>,
    pub num_return_sequences: Option<usize>,
    pub stop_strings: Option<StopList>,
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    /// The file's other keys.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
    /// Where the file is (or would be), for errors.
    #[serde(skip)]
    path: PathBuf,
}

/// Keys of `generation_config.json` that describe the model or the file rather than how to sample.
const MODEL_KEYS: [&str; 7] = [
    "bos_token_id",
    "pad_token_id",
    "decoder_start_token_id",
    "transformers_version",
    "_from_model_config",
    "use_cache",
    "return_legacy_cache",
];

impl GenerationConfig {
    /// Reads `dir/generation_config.json`; a directory without one gives an empty config. A setting out of
    /// its range is an error naming the file.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(GENERATION_CONFIG);
        let mut config: Self = hf::read_optional_config(&path)?;
        config.path.clone_from(&path);
        check_ranges(
            config.temperature.unwrap_or(1.0),
            config.top_p.unwrap_or(1.0),
            config.repetition_penalty.unwrap_or(1.0),
            ["temperature", "top_p", "repetition_penalty"],
        )
        .map_err(|e| Error::format(&path, e))?;
        check_min_p(config.min_p.unwrap_or(0.0), "min_p").map_err(|e| Error::format(&path, e))?;
        check_beam(
            config.num_beams.unwrap_or(1),
            config.length_penalty.unwrap_or(1.0),
            ["num_beams", "length_penalty"],
        )
        .map_err(|e| Error::format(&path, e))?;
        if let Some(words) = &config.bad_words_ids {
            check_bad_words(words, "bad_words_ids").map_err(|e| Error::format(&path, e))?;
        }
        if let Some(list) = &config.stop_strings {
            stop_strings::check(&list.0, "stop_strings").map_err(|e| Error::format(&path, e))?;
        }
        if config.num_return_sequences == Some(0) {
            return Err(Error::format(
                &path,
                "num_return_sequences must be at least 1",
            ));
        }
        Ok(config)
    }

    /// The file's number of beams when it asks for beam search or beam sampling.
    fn beams(&self) -> Option<usize> {
        self.num_beams.filter(|&n| n > 1)
    }

    /// The temperature `flags` with this file give: the flag's, else 0 where the file says `do_sample: false`
    /// and no flag asks for sampling (a `--top-k`, `--top-p` or `--min-p` does), else the file's, else
    /// transformers' 1 where the file says `do_sample: true`, else primer's default.
    fn temperature(&self, flags: &SamplingFlags) -> f32 {
        let file = match self.do_sample {
            Some(false) if !flags.asks_for_sampling() => Some(0.0),
            sampled => self.temperature.or((sampled == Some(true)).then_some(1.0)),
        };
        flags.temperature.or(file).unwrap_or(DEFAULT_TEMPERATURE)
    }

    /// Whether `flags` with this file make a beam search that samples: beams, a temperature above 0, and
    /// sampling asked for by a flag (temperature, top-k, top-p, min-p) or by the file's `do_sample: true`.
    fn samples_beams(&self, flags: &SamplingFlags) -> bool {
        self.asks_for_beams(flags)
            && self.temperature(flags) > 0.0
            && (flags.asks_for_sampling() || self.do_sample == Some(true))
    }

    /// Whether `flags` with this file make a beam search: `--num-beams` above 1, or the file's beams where no
    /// flag asks for sampling.
    fn asks_for_beams(&self, flags: &SamplingFlags) -> bool {
        match flags.num_beams {
            Some(n) => n > 1,
            None => !flags.asks_for_sampling() && self.beams().is_some(),
        }
    }

    /// The ids that end a generated text, as transformers picks them: this file's `eos_token_id` when it names
    /// one, else `config.json`'s (a number or a list); when neither does, the tokenizer's `<|endoftext|>`. An
    /// id past the model's vocabulary, which could never end a text, is an error naming the file it is from.
    pub fn stop_ids(&self, model: &Gpt, tok: &TextTokenizer) -> Result<Vec<u32>> {
        let vocab = model.config.vocab_size;
        let in_range = |ids: &[u32], path: &Path| match ids.iter().find(|&&id| id as usize >= vocab)
        {
            Some(id) => Err(Error::format(
                path,
                format!("eos_token_id {id} is past the model's {vocab} token ids"),
            )),
            None => Ok(ids.to_vec()),
        };
        if !self.eos_token_id.0.is_empty() {
            return in_range(&self.eos_token_id.0, &self.path);
        }
        if !model.config.eos_token_id.0.is_empty() {
            return in_range(
                &model.config.eos_token_id.0,
                &self.path.with_file_name("config.json"),
            );
        }
        Ok(tok.eos_id().into_iter().collect())
    }

    /// How to continue a prompt of `prompt_len` tokens: each setting from `flags` when given, else from this
    /// file (see the type's doc), else primer's defaults: temperature [`DEFAULT_TEMPERATURE`], no top-k, top-p
    /// or repetition penalty, [`DEFAULT_MAX_NEW_TOKENS`] tokens, no beam search (length penalty 1 and
    /// `early_stopping: false` when there is one). A beam setting without beam search is an error.
    pub fn sampling(
        &self,
        flags: &SamplingFlags,
        prompt_len: usize,
        stop_tokens: Vec<u32>,
        seed: u64,
    ) -> Result<Sampling> {
        let beam_search = self.asks_for_beams(flags);
        if flags.num_beams == Some(0) {
            return Err(Error::Config("--num-beams must be at least 1".into()));
        }
        if !beam_search && (flags.length_penalty.is_some() || flags.early_stopping.is_some()) {
            return Err(Error::Config(
                "--length-penalty and --early-stopping are for beam search: give --num-beams above 1 as well"
                    .into(),
            ));
        }
        let sampled = self.do_sample == Some(true);
        let from_length = self.max_length.map(|l| l.saturating_sub(prompt_len));
        let min_from_length = self.min_length.map(|l| l.saturating_sub(prompt_len));
        let beam = beam_search.then(|| BeamSearch {
            num_beams: flags.num_beams.or(self.beams()).unwrap_or(1),
            length_penalty: flags.length_penalty.or(self.length_penalty).unwrap_or(1.0),
            early_stopping: flags
                .early_stopping
                .or(self.early_stopping)
                .unwrap_or_default(),
            do_sample: self.samples_beams(flags),
        });
        let s = Sampling {
            max_new_tokens: flags
                .max_new_tokens
                .or(self.max_new_tokens)
                .or(from_length)
                .unwrap_or(DEFAULT_MAX_NEW_TOKENS),
            temperature: self.temperature(flags),
            top_k: flags
                .top_k
                .or(self.top_k)
                .unwrap_or(if sampled { 50 } else { 0 }),
            top_p: flags.top_p.or(self.top_p).unwrap_or(1.0),
            min_p: flags.min_p.or(self.min_p).unwrap_or(0.0),
            repetition_penalty: flags
                .repetition_penalty
                .or(self.repetition_penalty)
                .unwrap_or(1.0),
            no_repeat_ngram_size: flags
                .no_repeat_ngram_size
                .or(self.no_repeat_ngram_size)
                .unwrap_or(0),
            min_new_tokens: flags
                .min_new_tokens
                .or(self.min_new_tokens)
                .or(min_from_length)
                .unwrap_or(0),
            bad_words: flags
                .bad_words
                .clone()
                .or_else(|| self.bad_words_ids.clone())
                .unwrap_or_default(),
            stop_tokens,
            stop_strings: flags
                .stop_strings
                .clone()
                .or_else(|| self.stop_strings.clone().map(|l| l.0))
                .unwrap_or_default(),
            seed,
            beam,
            num_return_sequences: flags
                .num_return_sequences
                .or(self.num_return_sequences)
                .unwrap_or(1),
        };
        s.validate()?;
        Ok(s)
    }

    /// The file's settings that [`Self::sampling`] takes because `flags` does not give them, as `key value`.
    pub fn followed(&self, flags: &SamplingFlags) -> Vec<String> {
        let entry = |key: &str, value: Option<String>, overridden: bool| {
            value.filter(|_| !overridden).map(|v| format!("{key} {v}"))
        };
        let text = |v: Option<f32>| v.map(|v| v.to_string());
        let count = |v: Option<usize>| v.map(|v| v.to_string());
        let length_given = flags.max_new_tokens.is_some() || self.max_new_tokens.is_some();
        let min_given = flags.min_new_tokens.is_some() || self.min_new_tokens.is_some();
        // beam search (unless it samples) leaves the sampling settings unused, and sampling one text the beam
        // settings
        let beams = self.asks_for_beams(flags);
        let sampling = !beams;
        let searched = beams && !self.samples_beams(flags);
        [
            entry(
                "do_sample",
                self.do_sample.map(|v| v.to_string()),
                match self.do_sample {
                    Some(false) => flags.asks_for_sampling(),
                    _ => flags.temperature.is_some(),
                },
            ),
            entry(
                "temperature",
                text(self.temperature),
                searched
                    || flags.temperature.is_some()
                    || (self.do_sample == Some(false) && !flags.asks_for_sampling()),
            ),
            entry(
                "top_k",
                count(self.top_k),
                searched || flags.top_k.is_some(),
            ),
            entry("top_p", text(self.top_p), searched || flags.top_p.is_some()),
            entry("min_p", text(self.min_p), searched || flags.min_p.is_some()),
            entry(
                "num_beams",
                count(self.beams()),
                sampling || flags.num_beams.is_some(),
            ),
            entry(
                "length_penalty",
                self.length_penalty.map(|v| v.to_string()),
                sampling || flags.length_penalty.is_some(),
            ),
            entry(
                "early_stopping",
                self.early_stopping.map(|e| e.to_string()),
                sampling || flags.early_stopping.is_some(),
            ),
            entry(
                "repetition_penalty",
                text(self.repetition_penalty),
                flags.repetition_penalty.is_some(),
            ),
            entry(
                "no_repeat_ngram_size",
                count(self.no_repeat_ngram_size),
                flags.no_repeat_ngram_size.is_some(),
            ),
            entry(
                "max_new_tokens",
                count(self.max_new_tokens),
                flags.max_new_tokens.is_some(),
            ),
            entry("max_length", count(self.max_length), length_given),
            entry(
                "min_new_tokens",
                count(self.min_new_tokens),
                flags.min_new_tokens.is_some(),
            ),
            entry("min_length", count(self.min_length), min_given),
            entry(
                "num_return_sequences",
                count(self.num_return_sequences.filter(|&n| n != 1)),
                flags.num_return_sequences.is_some(),
            ),
            entry(
                "bad_words_ids",
                self.bad_words_ids.as_ref().map(|w| format!("{w:?}")),
                flags.bad_words.is_some(),
            ),
            entry(
                "stop_strings",
                self.stop_strings
                    .as_ref()
                    .filter(|l| !l.0.is_empty())
                    .map(|l| format!("{:?}", l.0)),
                flags.stop_strings.is_some(),
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The file's settings that ask for something primer does not do (diverse beams…), as `key value`: every
    /// key [`Self::sampling`] does not read but the model's ids and metadata whose value is not null, false, 0,
    /// 1 or empty, which is where transformers' defaults lie. Callers report them.
    pub fn not_followed(&self) -> Vec<String> {
        use serde_json::Value;
        let is_default = |v: &Value| match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64().is_some_and(|x| x == 0.0 || x == 1.0),
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
        };
        self.other
            .iter()
            .filter(|(key, value)| !MODEL_KEYS.contains(&key.as_str()) && !is_default(value))
            .map(|(key, value)| format!("{key} {value}"))
            .collect()
    }
}

/// Applies `s`'s rules for the next token of `text` (prompt and the `generated` tokens after it) to its
/// `scores`, as transformers' logits processors do: the repetition penalty, then the bans (−∞) of tokens that
/// would repeat an n-gram of `text`, of tokens that would complete a bad word, and of stop tokens before
/// `s.min_new_tokens`.
pub(crate) fn process(scores: &mut [f32], text: &[u32], generated: usize, s: &Sampling) {
    if s.repetition_penalty != 1.0 {
        penalize_repeats(scores, text, s.repetition_penalty);
    }
    let mut ban = |t: u32| {
        if let Some(x) = scores.get_mut(t as usize) {
            *x = f32::NEG_INFINITY;
        }
    };
    let n = s.no_repeat_ngram_size;
    if n > 0 && text.len() >= n {
        let prefix = &text[text.len() + 1 - n..];
        for gram in text.windows(n).filter(|w| &w[..n - 1] == prefix) {
            ban(gram[n - 1]);
        }
    }
    for (&last, before) in s.bad_words.iter().filter_map(|w| w.split_last()) {
        // as in transformers, a stop token alone is not banned (min_new_tokens is the way to hold it off)
        let stop_alone = before.is_empty() && s.stop_tokens.contains(&last);
        if text.ends_with(before) && !stop_alone {
            ban(last);
        }
    }
    if generated < s.min_new_tokens {
        s.stop_tokens.iter().for_each(|&t| ban(t));
    }
}

/// Makes the tokens in `context` less likely, as transformers' repetition penalty does: their positive scores
/// are divided by `penalty`, their negative ones multiplied by it.
fn penalize_repeats(scores: &mut [f32], context: &[u32], penalty: f32) {
    let mut seen = vec![false; scores.len()];
    for &t in context {
        if let Some(flag) = seen.get_mut(t as usize) {
            *flag = true;
        }
    }
    for (l, _) in scores.iter_mut().zip(&seen).filter(|(_, &s)| s) {
        *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
    }
}

/// transformers' warpers for beam sampling, on one beam's processed log-probabilities: divided by the
/// temperature, then set to −∞ outside the top-k (ties with the k-th kept), outside the smallest set of most
/// probable tokens whose probability reaches top-p, and under min-p times the largest probability, always
/// keeping at least `min_keep` tokens.
pub(crate) fn warp(scores: &mut [f32], s: &Sampling, min_keep: usize) {
    if s.temperature != 1.0 {
        scores.iter_mut().for_each(|x| *x /= s.temperature);
    }
    if s.top_k > 0 && s.top_k.max(min_keep) < scores.len() {
        let k = s.top_k.max(min_keep);
        let mut sorted = scores.to_vec();
        sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let kth = sorted[k - 1];
        scores
            .iter_mut()
            .filter(|x| **x < kth)
            .for_each(|x| *x = f32::NEG_INFINITY);
    }
    if s.top_p == 1.0 && s.min_p == 0.0 {
        return;
    }
    // most probable first, once for both cuts: top-p only drops from the end, so the order and the largest
    // score hold for min-p too; the first `min_keep` are never dropped. Only the tokens still in play are
    // sorted: after top-k (or the ids the tokenizer lacks) most are −∞ already
    let mut order: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i] != f32::NEG_INFINITY)
        .collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let max = order.first().map_or(f32::NEG_INFINITY, |&i| scores[i]);
    let droppable = order.get(min_keep..).unwrap_or_default();
    if s.top_p < 1.0 {
        // least probable first: drop while the probability dropped so far stays within 1 − top_p
        let total: f64 = scores.iter().map(|&x| f64::from(x - max).exp()).sum();
        let mut dropped = 0.0;
        for &i in droppable.iter().rev() {
            dropped += f64::from(scores[i] - max).exp() / total;
            if dropped > 1.0 - f64::from(s.top_p) {
                break;
            }
            scores[i] = f32::NEG_INFINITY;
        }
    }
    if s.min_p > 0.0 {
        // a probability under min_p times the largest is a score under the largest plus ln(min_p)
        let cut = max + s.min_p.ln();
        for &i in droppable {
            if scores[i] < cut {
                scores[i] = f32::NEG_INFINITY;
            }
        }
    }
}

/// Sets the scores of the ids the tokenizer lacks (`decodable[id]` false) to −∞, so that they are never picked.
pub(crate) fn mask_undecodable(scores: &mut [f32], decodable: &[bool]) {
    for (x, _) in scores.iter_mut().zip(decodable).filter(|(_, &ok)| !ok) {
        *x = f32::NEG_INFINITY;
    }
}

/// Chooses the next token from `logits` (already through [`process`]): greedy, or sampled with `s`'s
/// temperature, top-k, top-p and min-p. An id whose logit is −∞ is never chosen; at least one must be finite.
pub fn pick(logits: &[f32], s: &Sampling, rng: &mut Rng) -> u32 {
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
    if s.min_p > 0.0 {
        let cut = s.min_p * probs[0];
        let keep = probs.iter().position(|&p| p < cut).unwrap_or(probs.len());
        probs.truncate(keep.max(1));
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

/// Generates up to `s.max_new_tokens` tokens after `prompt`, calling `on_token` with each one as it comes (with
/// beam search, the best text's tokens once the search is over): one text, whatever `s.num_return_sequences`
/// (the caller draws more with other seeds, or takes them from [`beam_search`]); only ids `tok` has are
/// picked. When the context reaches the model's `n_positions`, the cache is rebuilt from the last half of it. A
/// token is many short kernels, so the pool's threads stay awake for the whole run ([`with_pool_awake`]).
pub fn generate(
    model: &Gpt,
    tok: &TextTokenizer,
    prompt: &[u32],
    s: &Sampling,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    if s.beam.is_none() {
        let decodable = check(model, tok, prompt, s)?;
        let stops = StopStrings::new(tok, &s.stop_strings);
        return with_pool_awake(|| sample_tokens(model, prompt, s, &decodable, &stops, on_token));
    }
    let found = beam_search(model, tok, prompt, s)?;
    // the text ends before its end token, as a sampled one does
    let best = found.first().map_or(&[][..], |h| h.text(&s.stop_tokens));
    for &t in best {
        on_token(t)?;
    }
    Ok(best.to_vec())
}

/// Runs the beam search `s.beam` asks for (one beam when it is `None`) and returns the finished texts, best
/// first: each text's tokens (with the end token that finished it, if one did) and its score, as transformers'
/// `sequences` and `sequences_scores`. Only ids `tok` has are picked.
pub fn beam_search(
    model: &Gpt,
    tok: &TextTokenizer,
    prompt: &[u32],
    s: &Sampling,
) -> Result<Vec<Hypothesis>> {
    let decodable = check(model, tok, prompt, s)?;
    let one = BeamSearch {
        num_beams: 1,
        length_penalty: 1.0,
        early_stopping: EarlyStopping::default(),
        do_sample: false,
    };
    let stops = StopStrings::new(tok, &s.stop_strings);
    let b = s.beam.unwrap_or(one);
    with_pool_awake(|| beam::search(model, prompt, s, &b, &decodable, &stops))
}

/// Checks that `model` can continue `prompt` with the settings `s` (which [`generate`] and [`beam_search`] do
/// first; callers that print anything before can call it earlier): valid settings, a prompt, a tokenizer that has
/// some of the model's ids, beams that fit in memory. Returns which of the model's ids the tokenizer has.
pub fn check(model: &Gpt, tok: &TextTokenizer, prompt: &[u32], s: &Sampling) -> Result<Vec<bool>> {
    s.validate()?;
    if prompt.is_empty() {
        return Err(Error::Config("the prompt encodes to no tokens".into()));
    }
    if let Some(b) = &s.beam {
        beam::check_fits_in_memory(model, prompt.len(), s, b)?;
    }
    let vocab = model.config.vocab_size;
    if let Some(id) = s
        .bad_words
        .iter()
        .flatten()
        .find(|&&id| id as usize >= vocab)
    {
        return Err(Error::Config(format!(
            "a banned token sequence (--bad-words, or bad_words_ids in generation_config.json) holds token id \
             {id}, past the model's {vocab} ids"
        )));
    }
    let decodable: Vec<bool> = (0..vocab as u32).map(|id| tok.has_id(id)).collect();
    if !decodable.contains(&true) {
        return Err(Error::Config(format!(
            "the tokenizer has none of the model's {} token ids",
            decodable.len()
        )));
    }
    Ok(decodable)
}

/// Tokens the KV cache of a text holds: the prompt (as much of it as the context takes) and the new tokens.
pub(crate) fn cache_capacity(model: &Gpt, prompt_len: usize, max_new_tokens: usize) -> usize {
    prompt_len
        .saturating_add(max_new_tokens)
        .min(model.config.n_positions)
}

/// The end of `text` that fits in the model's context.
pub(crate) fn context<'t>(model: &Gpt, text: &'t [u32]) -> &'t [u32] {
    &text[text.len().saturating_sub(model.config.n_positions)..]
}

/// Goes on when `cache` is full: clears it and feeds each of its beams the last half of the context of its text
/// (`texts`, one per beam); returns each beam's logits, as [`Gpt::step`] does.
pub(crate) fn restart(model: &Gpt, cache: &mut KvCache, texts: &[&[u32]]) -> Result<Vec<f32>> {
    let half = (model.config.n_positions / 2).max(1);
    let ids: Vec<u32> = texts
        .iter()
        .flat_map(|t| &t[t.len().saturating_sub(half)..])
        .copied()
        .collect();
    cache.clear();
    step(model, cache, &ids)
}

/// [`Gpt::step`], refusing logits that are not finite: a checkpoint whose weights hold NaN or infinities, whose
/// texts would be noise, or empty when no id can be picked.
pub(crate) fn step(model: &Gpt, cache: &mut KvCache, ids: &[u32]) -> Result<Vec<f32>> {
    let logits = model.step(cache, ids)?;
    if logits.iter().any(|x| !x.is_finite()) {
        return Err(Error::Config(
            "the model's output is not a finite number: its weights hold NaN or infinite values"
                .into(),
        ));
    }
    Ok(logits)
}

fn sample_tokens(
    model: &Gpt,
    prompt: &[u32],
    s: &Sampling,
    decodable: &[bool],
    stops: &StopStrings,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    let mut rng = Rng::new(s.seed);
    let mut tokens = prompt.to_vec();
    let mut cache = model.new_cache(cache_capacity(model, prompt.len(), s.max_new_tokens));
    let mut logits = step(model, &mut cache, context(model, &tokens))?;
    let mut out = Vec::new();
    for _ in 0..s.max_new_tokens {
        mask_undecodable(&mut logits, decodable);
        process(&mut logits, &tokens, out.len(), s);
        let next = pick(&logits, s, &mut rng);
        if s.stop_tokens.contains(&next) {
            break;
        }
        tokens.push(next);
        out.push(next);
        on_token(next)?;
        if stops.completes(&tokens)? {
            break;
        }
        logits = if cache.len() == cache.capacity() {
            restart(model, &mut cache, &[&tokens])?
        } else {
            step(model, &mut cache, &[next])?
        };
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
            ..Default::default()
        }
    }

    #[test]
    fn beam_warpers_keep_what_transformers_keeps() {
        let ninf = f32::NEG_INFINITY;
        let probs = [0.5f32, 0.25, 0.15, 0.1];
        let lp: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let warped = |s: &Sampling, min_keep: usize| {
            let mut x = lp.clone();
            warp(&mut x, s, min_keep);
            x
        };
        // top-p 0.7 drops 0.1 and 0.15 (together 0.25, within 1 − 0.7), not 0.25 (then 0.5)
        let nucleus = Sampling {
            top_p: 0.7,
            ..sampling()
        };
        assert_eq!(warped(&nucleus, 1), [lp[0], lp[1], ninf, ninf]);
        // but three are kept when three must be
        assert_eq!(warped(&nucleus, 3), [lp[0], lp[1], lp[2], ninf]);
        // top-k 1 keeps two when two must be; ties with the k-th are kept
        let one = Sampling {
            top_k: 1,
            ..sampling()
        };
        assert_eq!(warped(&one, 2), [lp[0], lp[1], ninf, ninf]);
        let mut tied = [1.0, 3.0, 3.0, 2.0];
        warp(&mut tied, &one, 1);
        assert_eq!(tied, [ninf, 3.0, 3.0, ninf]);
        // the temperature divides
        let hot = Sampling {
            temperature: 2.0,
            ..sampling()
        };
        assert_eq!(
            warped(&hot, 1),
            lp.iter().map(|x| x / 2.0).collect::<Vec<_>>()
        );
        // min-p 0.4 drops what is under 0.2 (0.15 and 0.1), unless three must stay
        let floor = Sampling {
            min_p: 0.4,
            ..sampling()
        };
        assert_eq!(warped(&floor, 1), [lp[0], lp[1], ninf, ninf]);
        assert_eq!(warped(&floor, 3), [lp[0], lp[1], lp[2], ninf]);
    }

    #[test]
    fn greedy_topk_topp_and_penalty() {
        let logits = [1.0f32, 3.0, 2.0, 0.5];
        let mut rng = Rng::new(1);
        let greedy = Sampling {
            temperature: 0.0,
            ..sampling()
        };
        assert_eq!(pick(&logits, &greedy, &mut rng), 1);
        // penalty 10 on token 1 (positive logit 3 -> 0.3): token 2 wins
        let pen = Sampling {
            repetition_penalty: 10.0,
            ..greedy.clone()
        };
        let mut penalized = logits;
        process(&mut penalized, &[1], 1, &pen);
        assert_eq!(pick(&penalized, &pen, &mut rng), 2);
        // top-k 2 only ever samples tokens 1 and 2
        let k2 = Sampling {
            top_k: 2,
            ..sampling()
        };
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[pick(&logits, &k2, &mut rng) as usize] += 1;
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
        assert!((0..200).all(|_| pick(&logits, &p, &mut rng) == 1));
        // min-p (probabilities 0.085, 0.631, 0.232, 0.052): 0.1 drops token 3 only, 0.2 token 0 too; the
        // tokens kept keep their odds
        for (min_p, never, sometimes) in [(0.1, &[3][..], &[0, 1, 2][..]), (0.2, &[0, 3], &[1, 2])]
        {
            let s = Sampling {
                min_p,
                ..sampling()
            };
            let mut counts = [0usize; 4];
            for _ in 0..20_000 {
                counts[pick(&logits, &s, &mut rng) as usize] += 1;
            }
            assert!(never.iter().all(|&t| counts[t] == 0), "{min_p}: {counts:?}");
            assert!(
                sometimes.iter().all(|&t| counts[t] > 0),
                "{min_p}: {counts:?}"
            );
            let ratio = counts[1] as f64 / counts[2] as f64;
            assert!(
                (ratio - std::f64::consts::E).abs() < 0.3,
                "{min_p}: ratio {ratio} {counts:?}"
            );
        }
    }

    /// The n-gram ban removes exactly the tokens that would repeat an n-gram of the text; the minimum length bans
    /// the stop tokens until enough tokens are generated; the penalty scales the rest.
    #[test]
    fn process_bans_repeated_ngrams_and_early_ends() {
        let s = Sampling {
            no_repeat_ngram_size: 3,
            min_new_tokens: 2,
            stop_tokens: vec![0],
            repetition_penalty: 2.0,
            ..sampling()
        };
        // "4 5" came before followed by 6 and by 2: both would repeat a 3-gram; 3 follows "5 4", not "4 5"
        let text = [4, 5, 6, 5, 4, 5, 2, 5, 4, 3, 4, 5];
        let mut scores = [1.0f32; 8];
        process(&mut scores, &text, 1, &s);
        let banned: Vec<usize> = (0..8).filter(|&t| scores[t] == f32::NEG_INFINITY).collect();
        assert_eq!(banned, [0, 2, 6]);
        assert_eq!(scores[3], 0.5, "penalized, not banned");
        assert_eq!((scores[1], scores[7]), (1.0, 1.0));
        // enough tokens: the stop token is allowed again; a text shorter than the n-gram bans nothing
        let mut scores = [1.0f32; 8];
        process(&mut scores, &[4, 5], 2, &s);
        assert!(scores.iter().all(|x| x.is_finite()), "{scores:?}");
        // n = 1 bans every token the text has
        let unigram = Sampling {
            no_repeat_ngram_size: 1,
            ..sampling()
        };
        let mut scores = [1.0f32; 8];
        process(&mut scores, &[6, 1, 6], 3, &unigram);
        let banned: Vec<usize> = (0..8).filter(|&t| scores[t] == f32::NEG_INFINITY).collect();
        assert_eq!(banned, [1, 6]);
    }

    /// Logits a broken checkpoint gives, all NaN or all −∞, pick some id instead of panicking.
    #[test]
    fn non_finite_logits_do_not_panic() {
        let mut rng = Rng::new(1);
        for bad in [f32::NAN, f32::NEG_INFINITY] {
            let id = pick(&[bad; 4], &sampling(), &mut rng);
            assert!(id < 4);
        }
    }
}

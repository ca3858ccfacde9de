//! BERT: token + learned position + segment embeddings and a LayerNorm, post-LayerNorm encoder layers
//! (bidirectional self-attention with key padding, GELU feed-forward), and the pretraining heads: a tanh pooler
//! over `[CLS]` feeding the next-sentence classifier, and the masked-LM head (dense → GELU → LayerNorm → decoder
//! tied to the word embeddings, plus a vocabulary bias). Same tensor names as Hugging Face's `BertModel`,
//! `BertForMaskedLM` and `BertForPreTraining`, so checkpoints go both ways.
//!
//! All linear weights are stored `[out, in]` as in PyTorch. Query, key and value are three tensors in a
//! checkpoint but adjacent in the flat buffer, so one `[3C, C]` product computes them. The masked-LM head runs
//! only on the labelled positions (about 15 % of tokens), never on the whole `[tokens, vocab]` matrix.
//!
//! Padding costs nothing: the encoder packs the real tokens of a padded batch sequence after sequence and runs
//! every layer on those rows only (attention keeps each sequence to itself), then scatters the final hidden states
//! back to the padded layout, where padding rows are zero.

use super::common::{
    balanced_runs, branch_grad, gather_rows, head_chunk, layer, layer_mut, residual_branch,
    scatter_add_rows, DropSeeds,
};
use crate::engine::attention::{self, View};
use crate::engine::awake::with_pool_awake;
use crate::engine::gelu::{self, Gelu};
use crate::engine::matmul::{self, Dims, Layout};
use crate::engine::params::{split2, ParamLayout};
use crate::engine::rng::Rng;
use crate::engine::{dropout, embedding, layernorm, panels, tanh, xent};
use crate::error::{Error, Result};
use crate::hf::{self, TensorFile};
use crate::train::memory::{check_model_fits, product};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

/// `config.json` of a BERT model, with Hugging Face's field names and defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BertConfig {
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_layers")]
    pub num_attention_heads: usize,
    #[serde(default = "d_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_dropout")]
    pub hidden_dropout_prob: f32,
    #[serde(default = "d_dropout")]
    pub attention_probs_dropout_prob: f32,
    #[serde(default = "d_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "d_types")]
    pub type_vocab_size: usize,
    #[serde(default = "d_init")]
    pub initializer_range: f32,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f32,
    /// Hugging Face writes `null` when a model has no padding id; primer then pads with 0, as BERT's vocabularies do.
    #[serde(default, deserialize_with = "hf::null_as_default")]
    pub pad_token_id: u32,
    #[serde(default = "d_pos_type")]
    pub position_embedding_type: String,
    #[serde(default = "d_true")]
    pub tie_word_embeddings: bool,
    #[serde(default = "d_model_type")]
    pub model_type: String,
    /// A causal `BertLMHeadModel` (each token sees only those before it); primer's BERT is bidirectional only, so
    /// this must be false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_decoder: bool,
    /// Cross-attention layers (a BERT used as an encoder-decoder's decoder); must be false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub add_cross_attention: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Label names of a fine-tuned classifier, by id (Hugging Face's fields; the keys are ids as strings).
    #[serde(
        default,
        deserialize_with = "hf::null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub id2label: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "hf::null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub label2id: BTreeMap<String, usize>,
}

fn d_vocab() -> usize {
    30522
}
fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_intermediate() -> usize {
    3072
}
fn d_act() -> String {
    "gelu".into()
}
fn d_dropout() -> f32 {
    0.1
}
fn d_positions() -> usize {
    512
}
fn d_types() -> usize {
    2
}
fn d_init() -> f32 {
    0.02
}
fn d_eps() -> f32 {
    1e-12
}
fn d_pos_type() -> String {
    "absolute".into()
}
fn d_true() -> bool {
    true
}
fn d_model_type() -> String {
    "bert".into()
}

impl BertConfig {
    /// A config with BERT's defaults apart from the sizes given (intermediate = 4·hidden).
    pub fn new(
        vocab_size: usize,
        max_positions: usize,
        layers: usize,
        heads: usize,
        hidden: usize,
    ) -> Self {
        BertConfig {
            vocab_size,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: 4 * hidden,
            hidden_act: d_act(),
            hidden_dropout_prob: d_dropout(),
            attention_probs_dropout_prob: d_dropout(),
            max_position_embeddings: max_positions,
            type_vocab_size: d_types(),
            initializer_range: d_init(),
            layer_norm_eps: d_eps(),
            pad_token_id: 0,
            position_embedding_type: d_pos_type(),
            tie_word_embeddings: true,
            model_type: d_model_type(),
            is_decoder: false,
            add_cross_attention: false,
            architectures: Vec::new(),
            id2label: BTreeMap::new(),
            label2id: BTreeMap::new(),
        }
    }

    /// Checks the values make a model primer implements; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if !matches!(self.model_type.as_str(), "bert") {
            return bad(format!(
                "model_type is \"{}\"; this loader reads \"bert\"",
                self.model_type
            ));
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size ({}) is not divisible by num_attention_heads ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.is_decoder {
            return bad(
                "is_decoder is true: this is a causal BertLMHeadModel, and primer's BERT attends both ways only".into(),
            );
        }
        if self.add_cross_attention {
            return bad(
                "add_cross_attention is true: primer's BERT has no cross-attention layers".into(),
            );
        }
        if self.position_embedding_type != "absolute" {
            return bad(format!(
                "position_embedding_type \"{}\" is not supported (only \"absolute\")",
                self.position_embedding_type
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if self.pad_token_id as usize >= self.vocab_size {
            return bad(format!(
                "pad_token_id {} is outside the vocabulary of {}",
                self.pad_token_id, self.vocab_size
            ));
        }
        // 0 would divide a constant row (all padding, say) by zero; a negative one gives NaN
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return bad(format!(
                "layer_norm_eps must be positive and finite, got {}",
                self.layer_norm_eps
            ));
        }
        self.gelu().map(|_| ())
    }

    /// [`Self::validate`] for a config read from a checkpoint, whose sizes must also fit in memory before the
    /// weights are allocated (pretraining checks its own sizes with the flags that set them).
    fn validate_for_load(&self) -> Result<()> {
        self.validate()?;
        check_model_fits(self.param_count())
    }

    /// About the number of parameters these sizes make, encoder and every head (saturating, so absurd sizes stay
    /// absurd instead of wrapping).
    pub fn param_count(&self) -> u128 {
        let (v, c, i) = (self.vocab_size, self.hidden_size, self.intermediate_size);
        let rows = (v as u128)
            .saturating_add(self.max_position_embeddings as u128)
            .saturating_add(self.type_vocab_size as u128);
        let layer = product(&[c, c, 4])
            .saturating_add(product(&[c, i, 2]))
            .saturating_add(product(&[c, 9]))
            .saturating_add(i as u128);
        let decoder = if self.tie_word_embeddings {
            0
        } else {
            product(&[v, c])
        };
        rows.saturating_mul(c as u128)
            .saturating_add(layer.saturating_mul(self.num_hidden_layers as u128))
            .saturating_add(product(&[c, c, 2]))
            .saturating_add(decoder)
            .saturating_add(v as u128)
    }

    fn gelu(&self) -> Result<Gelu> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Gelu::Erf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Gelu::Tanh),
            other => Err(Error::Config(format!(
                "hidden_act \"{other}\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast)"
            ))),
        }
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// Which parts beyond the encoder a model has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heads {
    /// The tanh pooler over `[CLS]`.
    pub pooler: bool,
    /// The masked-LM head (`cls.predictions.*`).
    pub mlm: bool,
    /// The next-sentence classifier (`cls.seq_relationship.*`); needs the pooler.
    pub nsp: bool,
}

impl Heads {
    /// `BertForPreTraining`: pooler, masked LM and next-sentence prediction.
    pub const PRETRAINING: Heads = Heads {
        pooler: true,
        mlm: true,
        nsp: true,
    };
    /// `BertForMaskedLM` (RoBERTa-style pretraining without NSP).
    pub const MASKED_LM: Heads = Heads {
        pooler: false,
        mlm: true,
        nsp: false,
    };

    fn architecture(&self) -> &'static str {
        match (self.mlm, self.nsp) {
            (true, true) => "BertForPreTraining",
            (true, false) => "BertForMaskedLM",
            _ => "BertModel",
        }
    }
}

#[derive(Clone, Debug)]
struct LayerIdx {
    qkv_w: Range<usize>,
    qkv_b: Range<usize>,
    attn_out_w: Range<usize>,
    attn_out_b: Range<usize>,
    ln1_w: Range<usize>,
    ln1_b: Range<usize>,
    fc_w: Range<usize>,
    fc_b: Range<usize>,
    out_w: Range<usize>,
    out_b: Range<usize>,
    ln2_w: Range<usize>,
    ln2_b: Range<usize>,
}

#[derive(Clone, Debug)]
struct MlmIdx {
    dense_w: Range<usize>,
    dense_b: Range<usize>,
    ln_w: Range<usize>,
    ln_b: Range<usize>,
    /// `[vocab, hidden]`; the word-embedding range when tied.
    decoder: Range<usize>,
    bias: Range<usize>,
}

#[derive(Clone, Debug)]
struct Index {
    word: Range<usize>,
    pos: Range<usize>,
    typ: Range<usize>,
    emb_ln_w: Range<usize>,
    emb_ln_b: Range<usize>,
    layers: Vec<LayerIdx>,
    pooler: Option<(Range<usize>, Range<usize>)>,
    mlm: Option<MlmIdx>,
    nsp: Option<(Range<usize>, Range<usize>)>,
}

/// A BERT model: config, which heads it has, parameter layout and the flat parameter buffer.
#[derive(Clone, Debug)]
pub struct Bert {
    pub config: BertConfig,
    pub heads: Heads,
    pub layout: ParamLayout,
    pub params: Vec<f32>,
    idx: Index,
    gelu: Gelu,
    /// The encoder layers' weights are held `[in, out]` or packed (see [`Bert::into_inference`]), not as checkpoints
    /// store them.
    layers_in_out: bool,
}

const DECODER_NAME: &str = "cls.predictions.decoder.weight";
const DECODER_BIAS_NAME: &str = "cls.predictions.decoder.bias";

/// The names a tensor may have in a checkpoint, most likely first: with or without the `bert.` prefix (a
/// `BertModel` saves none), LayerNorm parameters also under TensorFlow's `gamma`/`beta`, and the MLM bias
/// first as the decoder's bias: transformers computes the logits with `decoder.bias`, which is `cls.predictions.bias`
/// only while the two are tied (an untied head trains `decoder.bias` and leaves the other at zero).
fn checkpoint_names(name: &str) -> Vec<String> {
    let mut base = vec![name.to_string()];
    if let Some(bare) = name.strip_prefix("bert.") {
        base.push(bare.to_string());
    }
    if name == "cls.predictions.bias" {
        base.insert(0, DECODER_BIAS_NAME.into());
    } else if name == DECODER_BIAS_NAME {
        base.push("cls.predictions.bias".into());
    }
    let mut out = base.clone();
    for n in &base {
        if let Some(stem) = n.strip_suffix("LayerNorm.weight") {
            out.push(format!("{stem}LayerNorm.gamma"));
        } else if let Some(stem) = n.strip_suffix("LayerNorm.bias") {
            out.push(format!("{stem}LayerNorm.beta"));
        }
    }
    out
}

impl Bert {
    /// A model with BERT's initialisation: N(0, initializer_range) weights and embeddings (the padding row
    /// zero), zero biases, unit LayerNorm gains.
    pub fn new(config: BertConfig, heads: Heads, seed: u64) -> Result<Bert> {
        let mut model = Bert::zeros(config, heads)?;
        let mut rng = Rng::new(seed);
        let std = model.config.initializer_range;
        for spec in model.layout.specs() {
            let p = &mut model.params[spec.range()];
            if spec.name.ends_with("LayerNorm.weight") {
                p.fill(1.0);
            } else if spec.shape.len() >= 2 {
                p.iter_mut().for_each(|v| *v = rng.normal() * std);
            }
        }
        let (c, pad) = (model.config.hidden_size, model.config.pad_token_id as usize);
        let word = model.idx.word.start;
        model.params[word + pad * c..word + (pad + 1) * c].fill(0.0);
        Ok(model)
    }

    fn zeros(config: BertConfig, heads: Heads) -> Result<Bert> {
        config.validate()?;
        if heads.nsp && !heads.pooler {
            return Err(Error::Config(
                "a next-sentence head needs the pooler".into(),
            ));
        }
        let gelu = config.gelu()?;
        let (v, c, i) = (
            config.vocab_size,
            config.hidden_size,
            config.intermediate_size,
        );
        let mut l = ParamLayout::default();
        let e = |n: &str| format!("bert.embeddings.{n}");
        let word = l.push(e("word_embeddings.weight"), &[v, c]);
        let pos = l.push(
            e("position_embeddings.weight"),
            &[config.max_position_embeddings, c],
        );
        let typ = l.push(
            e("token_type_embeddings.weight"),
            &[config.type_vocab_size, c],
        );
        let emb_ln_w = l.push(e("LayerNorm.weight"), &[c]);
        let emb_ln_b = l.push(e("LayerNorm.bias"), &[c]);
        let layers = (0..config.num_hidden_layers)
            .map(|n| {
                let p = |s: &str| format!("bert.encoder.layer.{n}.{s}");
                // query, key and value adjacent: one [3C, C] weight and one [3C] bias
                let q_w = l.push(p("attention.self.query.weight"), &[c, c]);
                let k_w = l.push(p("attention.self.key.weight"), &[c, c]);
                let v_w = l.push(p("attention.self.value.weight"), &[c, c]);
                let q_b = l.push(p("attention.self.query.bias"), &[c]);
                l.push(p("attention.self.key.bias"), &[c]);
                let v_b = l.push(p("attention.self.value.bias"), &[c]);
                debug_assert!(k_w.end == v_w.start);
                LayerIdx {
                    qkv_w: q_w.start..v_w.end,
                    qkv_b: q_b.start..v_b.end,
                    attn_out_w: l.push(p("attention.output.dense.weight"), &[c, c]),
                    attn_out_b: l.push(p("attention.output.dense.bias"), &[c]),
                    ln1_w: l.push(p("attention.output.LayerNorm.weight"), &[c]),
                    ln1_b: l.push(p("attention.output.LayerNorm.bias"), &[c]),
                    fc_w: l.push(p("intermediate.dense.weight"), &[i, c]),
                    fc_b: l.push(p("intermediate.dense.bias"), &[i]),
                    out_w: l.push(p("output.dense.weight"), &[c, i]),
                    out_b: l.push(p("output.dense.bias"), &[c]),
                    ln2_w: l.push(p("output.LayerNorm.weight"), &[c]),
                    ln2_b: l.push(p("output.LayerNorm.bias"), &[c]),
                }
            })
            .collect();
        let pooler = heads.pooler.then(|| {
            (
                l.push("bert.pooler.dense.weight", &[c, c]),
                l.push("bert.pooler.dense.bias", &[c]),
            )
        });
        let mlm = heads.mlm.then(|| MlmIdx {
            dense_w: l.push("cls.predictions.transform.dense.weight", &[c, c]),
            dense_b: l.push("cls.predictions.transform.dense.bias", &[c]),
            ln_w: l.push("cls.predictions.transform.LayerNorm.weight", &[c]),
            ln_b: l.push("cls.predictions.transform.LayerNorm.bias", &[c]),
            decoder: if config.tie_word_embeddings {
                word.clone()
            } else {
                l.push(DECODER_NAME, &[v, c])
            },
            // saved under the name transformers reads it by: an untied head's logits use `decoder.bias`
            bias: if config.tie_word_embeddings {
                l.push("cls.predictions.bias", &[v])
            } else {
                l.push(DECODER_BIAS_NAME, &[v])
            },
        });
        let nsp = heads.nsp.then(|| {
            (
                l.push("cls.seq_relationship.weight", &[2, c]),
                l.push("cls.seq_relationship.bias", &[2]),
            )
        });
        let params = vec![0.0; l.total()];
        let mut config = config;
        config.architectures = vec![heads.architecture().into()];
        Ok(Bert {
            config,
            heads,
            layout: l,
            params,
            idx: Index {
                word,
                pos,
                typ,
                emb_ln_w,
                emb_ln_b,
                layers,
                pooler,
                mlm,
                nsp,
            },
            gelu,
            layers_in_out: false,
        })
    }

    /// Loads `config.json` + `model.safetensors` written by primer or Hugging Face (`BertModel`,
    /// `BertForMaskedLM`, `BertForPreTraining`). The heads present in the file are loaded; the encoder must be
    /// complete, and a missing tensor is an error naming it.
    /// A decoder saved apart from the word embeddings is used even where the config ties the two, as transformers
    /// does, when its values differ.
    pub fn load(dir: &Path) -> Result<Bert> {
        let (config, file) = Bert::open(dir)?;
        // a head counts as present when any of its tensors is, so that a partial one is an error naming the rest
        let has = |names: &[&str]| {
            names
                .iter()
                .any(|&name| checkpoint_names(name).iter().any(|n| file.contains(n)))
        };
        let nsp = has(&["cls.seq_relationship.weight", "cls.seq_relationship.bias"]);
        let heads = Heads {
            pooler: has(&["bert.pooler.dense.weight", "bert.pooler.dense.bias"]) || nsp,
            mlm: has(&[
                "cls.predictions.transform.dense.weight",
                "cls.predictions.transform.dense.bias",
                "cls.predictions.transform.LayerNorm.weight",
                "cls.predictions.transform.LayerNorm.bias",
                "cls.predictions.bias",
            ]),
            nsp,
        };
        let mut model = Bert::zeros(config, heads)?;
        file.load_into(&model.layout, &mut model.params, &checkpoint_names)?;
        Ok(model)
    }

    /// Loads the encoder in `dir` (which must be complete) with the heads `heads` asks for: heads the checkpoint
    /// has are loaded, the others (a pooler missing from a `BertForMaskedLM`, say) start from BERT's
    /// initialisation with `seed` and are listed in the second value. Heads the file has beyond `heads` are left out.
    pub fn load_with(dir: &Path, heads: Heads, seed: u64) -> Result<(Bert, Vec<String>)> {
        let (config, file) = Bert::open(dir)?;
        let mut model = Bert::new(config, heads, seed)?;
        let mut fresh = Vec::new();
        for spec in model.layout.specs() {
            let loaded = file.load_spec(spec, &mut model.params, &checkpoint_names)?;
            if !loaded {
                if !(spec.name.starts_with("bert.pooler") || spec.name.starts_with("cls.")) {
                    return Err(Error::format(
                        file.path(),
                        format!("checkpoint is missing tensor `{}`", spec.name),
                    ));
                }
                fresh.push(spec.name.clone());
            }
        }
        Ok((model, fresh))
    }

    /// The config and the opened weights of `dir`; the config unties the decoder when the file holds one whose
    /// values differ from the word embeddings.
    fn open(dir: &Path) -> Result<(BertConfig, TensorFile)> {
        let mut config: BertConfig =
            hf::read_model_config(dir, "bert", BertConfig::validate_for_load)?;
        let file = TensorFile::open(&dir.join("model.safetensors"))?;
        file.check_layers("layer", config.num_hidden_layers, "num_hidden_layers")?;
        if config.tie_word_embeddings
            && file.separate_head(
                &checkpoint_names(DECODER_NAME),
                &checkpoint_names("bert.embeddings.word_embeddings.weight"),
            )?
        {
            config.tie_word_embeddings = false;
        }
        Ok((config, file))
    }

    /// Appends a zero tensor `name` of `shape` to the parameter buffer (a fine-tuning head's weights) and returns
    /// its range. It is saved with the model; the encoder's forward and backward ignore it.
    pub fn push_tensor(&mut self, name: &str, shape: &[usize]) -> Range<usize> {
        let r = self.layout.push(name, shape);
        self.params.resize(self.layout.total(), 0.0);
        r
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (atomically, file by file), under
    /// `BertForPreTraining`'s names; `metadata` goes into the safetensors header.
    pub fn save(&self, dir: &Path, metadata: &[(&str, String)]) -> Result<()> {
        if self.layers_in_out {
            return Err(Error::Config(
                "this copy of the model was transposed for inference and cannot be saved".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        hf::write_json(&dir.join("config.json"), &self.config)?;
        hf::save_safetensors(
            &dir.join("model.safetensors"),
            &self.layout,
            &self.params,
            metadata,
        )
    }

    pub fn num_params(&self) -> usize {
        self.layout.total()
    }

    /// Errors for a copy reordered by [`Bert::into_inference`], whose weights no backward pass reads.
    fn check_trainable(&self) -> Result<()> {
        if self.layers_in_out {
            return Err(Error::Config(
                "this copy of the model was reordered for inference and cannot be trained".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_input(&self, inp: &BertInput) -> Result<()> {
        let cfg = &self.config;
        let n = inp.batch * inp.seq;
        if inp.seq == 0
            || inp.seq > cfg.max_position_embeddings
            || inp.ids.len() != n
            || inp.type_ids.len() != n
            || inp.lens.len() != inp.batch
        {
            return Err(Error::Config(format!(
                "{} ids, {} token types and {} lengths do not form {} sequences of {} tokens \
                 (at most max_position_embeddings = {})",
                inp.ids.len(),
                inp.type_ids.len(),
                inp.lens.len(),
                inp.batch,
                inp.seq,
                cfg.max_position_embeddings
            )));
        }
        if let Some(&len) = inp.lens.iter().find(|&&l| l == 0 || l > inp.seq) {
            return Err(Error::Config(format!(
                "sequence length {len} is outside 1..={}",
                inp.seq
            )));
        }
        if let Some(bad) = inp.ids.iter().find(|&&i| i as usize >= cfg.vocab_size) {
            return Err(Error::Config(format!(
                "token id {bad} is outside the model's vocabulary of {}",
                cfg.vocab_size
            )));
        }
        if let Some(bad) = inp
            .type_ids
            .iter()
            .find(|&&i| i as usize >= cfg.type_vocab_size)
        {
            return Err(Error::Config(format!(
                "token type {bad} is outside type_vocab_size {}",
                cfg.type_vocab_size
            )));
        }
        Ok(())
    }

    pub(crate) fn check_labels(&self, inp: &BertInput, mlm: &[i32], nsp: &[i32]) -> Result<()> {
        let v = self.config.vocab_size as i32;
        if mlm.len() != inp.ids.len() || nsp.len() != inp.batch {
            return Err(Error::Config(format!(
                "{} MLM labels and {} NSP labels for a batch of {} × {}",
                mlm.len(),
                nsp.len(),
                inp.batch,
                inp.seq
            )));
        }
        if let Some(t) = mlm
            .iter()
            .find(|&&t| t != xent::IGNORE && !(0..v).contains(&t))
        {
            return Err(Error::Config(format!(
                "MLM label {t} is outside the vocabulary of {v}"
            )));
        }
        if let Some(t) = nsp
            .iter()
            .find(|&&t| t != xent::IGNORE && !(0..2).contains(&t))
        {
            return Err(Error::Config(format!("NSP label {t} is not 0 or 1")));
        }
        if !self.heads.mlm && mlm.iter().any(|&t| t != xent::IGNORE) {
            return Err(Error::Config("this model has no masked-LM head".into()));
        }
        if !self.heads.nsp && nsp.iter().any(|&t| t != xent::IGNORE) {
            return Err(Error::Config("this model has no next-sentence head".into()));
        }
        Ok(())
    }
}

/// A padded batch: `ids` and `type_ids` are `[batch, seq]`; row `b` has `lens[b]` real tokens, the rest is
/// padding that no token attends to.
#[derive(Clone, Copy, Debug)]
pub struct BertInput<'a> {
    pub batch: usize,
    pub seq: usize,
    pub ids: &'a [u32],
    pub type_ids: &'a [u32],
    pub lens: &'a [usize],
}

impl<'a> BertInput<'a> {
    /// The sequences `r` of this batch, as a batch of their own.
    pub fn sequences(&self, r: Range<usize>) -> BertInput<'a> {
        let t = self.seq;
        BertInput {
            batch: r.len(),
            seq: t,
            ids: &self.ids[r.start * t..r.end * t],
            type_ids: &self.type_ids[r.start * t..r.end * t],
            lens: &self.lens[r],
        }
    }
}

/// Sums and counts of one pretraining batch (or several, added up).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PretrainStats {
    pub mlm_loss_sum: f64,
    pub mlm_count: usize,
    pub mlm_correct: usize,
    pub nsp_loss_sum: f64,
    pub nsp_count: usize,
    pub nsp_correct: usize,
}

impl PretrainStats {
    pub fn add(&mut self, o: &PretrainStats) {
        self.mlm_loss_sum += o.mlm_loss_sum;
        self.mlm_count += o.mlm_count;
        self.mlm_correct += o.mlm_correct;
        self.nsp_loss_sum += o.nsp_loss_sum;
        self.nsp_count += o.nsp_count;
        self.nsp_correct += o.nsp_correct;
    }

    /// Mean masked-LM cross-entropy; NaN when no token was masked (there was nothing to score).
    pub fn mlm_loss(&self) -> f64 {
        mean(self.mlm_loss_sum, self.mlm_count)
    }

    /// Share of masked tokens predicted right; NaN when none was masked.
    pub fn mlm_accuracy(&self) -> f64 {
        mean(self.mlm_correct as f64, self.mlm_count)
    }

    /// Mean next-sentence cross-entropy; NaN without NSP labels.
    pub fn nsp_loss(&self) -> f64 {
        mean(self.nsp_loss_sum, self.nsp_count)
    }

    /// Share of next-sentence labels predicted right; NaN without NSP labels.
    pub fn nsp_accuracy(&self) -> f64 {
        mean(self.nsp_correct as f64, self.nsp_count)
    }

    /// Hugging Face's `BertForPreTraining` loss: MLM mean + NSP mean, a missing part counting 0 (as when a batch
    /// happens to mask no token).
    pub fn total_loss(&self) -> f64 {
        self.mlm_loss_sum / self.mlm_count.max(1) as f64
            + self.nsp_loss_sum / self.nsp_count.max(1) as f64
    }
}

/// `sum / count`, NaN for a mean of nothing.
fn mean(sum: f64, count: usize) -> f64 {
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// Activations of one pass over a `[batch, seq]` batch. For training every layer's are kept for the backward
/// pass; for inference one layer's buffers are reused by all layers. The layers' buffers hold only the batch's
/// real tokens (`rows` of them, packed); `hidden` and `dhidden` have the padded layout.
pub struct BertActs {
    batch: usize,
    seq: usize,
    training: bool,
    /// Layers whose activations are stored (all when training, one for inference).
    saved: usize,
    /// Real tokens in the batch.
    rows: usize,
    /// Per sequence, its first packed row.
    starts: Vec<usize>,
    /// Per packed row, its row in the padded `[B·T]` layout.
    padded_row: Vec<usize>,
    /// Packed token, position and token-type ids.
    ids: Vec<u32>,
    pos: Vec<u32>,
    types: Vec<u32>,
    /// Final hidden states, `[B·T, C]`, zero at padding; and their gradient when training.
    hidden: Vec<f32>,
    dhidden: Vec<f32>,
    emb_sum: Vec<f32>,
    emb_stats: Vec<f32>,
    /// Layer inputs and the last output: `(saved + 1) × [rows, C]`.
    x: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    lse: Vec<f32>,
    /// Residual sums entering each LayerNorm, and their statistics.
    sum1: Vec<f32>,
    ln1_stats: Vec<f32>,
    y: Vec<f32>,
    /// The feed-forward's first linear layer, before its GELU. The GELU itself is not kept but computed into
    /// `wide`, and recomputed there in the backward pass: a fifth of the activations saved for about 1 % of a step.
    fc: Vec<f32>,
    sum2: Vec<f32>,
    ln2_stats: Vec<f32>,
    // scratch
    tmp: Vec<f32>,
    wide: Vec<f32>,
    tmp_wide: Vec<f32>,
    /// Gradient with respect to the current layer's output (the final hidden state at first).
    dx: Vec<f32>,
    dy: Vec<f32>,
    dsum: Vec<f32>,
    dqkv: Vec<f32>,
}

impl BertActs {
    pub fn new(cfg: &BertConfig, batch: usize, seq: usize, training: bool) -> BertActs {
        let e = Vec::new;
        let mut a = BertActs {
            batch: 0,
            seq: 0,
            training,
            saved: if training { cfg.num_hidden_layers } else { 1 },
            rows: 0,
            starts: Vec::new(),
            padded_row: Vec::new(),
            ids: Vec::new(),
            pos: Vec::new(),
            types: Vec::new(),
            hidden: e(),
            dhidden: e(),
            emb_sum: e(),
            emb_stats: e(),
            x: e(),
            qkv: e(),
            att: e(),
            lse: e(),
            sum1: e(),
            ln1_stats: e(),
            y: e(),
            fc: e(),
            sum2: e(),
            ln2_stats: e(),
            tmp: e(),
            wide: e(),
            tmp_wide: e(),
            dx: e(),
            dy: e(),
            dsum: e(),
            dqkv: e(),
        };
        a.resize(cfg, batch, seq, training);
        a
    }

    /// Re-shapes the buffers for `[batch, seq]` batches, keeping their allocations (a fine-tuning loop sees a new
    /// length every batch; allocating afresh each time would spend the time in page faults).
    pub fn resize(&mut self, cfg: &BertConfig, batch: usize, seq: usize, training: bool) {
        let n = batch * seq * cfg.hidden_size;
        let s = if training { cfg.num_hidden_layers } else { 1 };
        (self.batch, self.seq, self.saved, self.training) = (batch, seq, s, training);
        self.hidden.resize(n, 0.0);
        self.dhidden.resize(if training { n } else { 0 }, 0.0);
        self.set_rows(cfg, batch * seq);
    }

    /// Sizes the layers' buffers for `bt` real tokens.
    fn set_rows(&mut self, cfg: &BertConfig, bt: usize) {
        let (c, i, s, training) = (
            cfg.hidden_size,
            cfg.intermediate_size,
            self.saved,
            self.training,
        );
        let n = bt * c;
        let g = |k: usize| if training { k } else { 0 };
        let lse = s * self.batch * cfg.num_attention_heads * self.seq;
        for (v, k) in [
            (&mut self.emb_sum, n),
            (&mut self.emb_stats, 2 * bt),
            (&mut self.x, (s + 1) * n),
            (&mut self.qkv, s * 3 * n),
            (&mut self.att, s * n),
            (&mut self.lse, lse),
            (&mut self.sum1, s * n),
            (&mut self.ln1_stats, s * 2 * bt),
            (&mut self.y, s * n),
            (&mut self.fc, s * bt * i),
            (&mut self.sum2, s * n),
            (&mut self.ln2_stats, s * 2 * bt),
            (&mut self.tmp, n),
            (&mut self.wide, bt * i),
            (&mut self.tmp_wide, g(bt * i)),
            (&mut self.dx, g(n)),
            (&mut self.dy, g(n)),
            (&mut self.dsum, g(n)),
            (&mut self.dqkv, g(3 * n)),
        ] {
            v.resize(k, 0.0);
        }
    }

    fn fits(&self, inp: &BertInput) -> Result<()> {
        if (inp.batch, inp.seq) == (self.batch, self.seq) {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "activations for [{}, {}] given a batch of [{}, {}]",
                self.batch, self.seq, inp.batch, inp.seq
            )))
        }
    }

    /// Packs the real tokens of `inp` and sizes the buffers for them.
    fn pack(&mut self, cfg: &BertConfig, inp: &BertInput) {
        self.starts.clear();
        self.padded_row.clear();
        self.ids.clear();
        self.pos.clear();
        self.types.clear();
        for (b, &len) in inp.lens.iter().enumerate() {
            self.starts.push(self.padded_row.len());
            for t in 0..len {
                let r = b * inp.seq + t;
                self.padded_row.push(r);
                self.ids.push(inp.ids[r]);
                self.pos.push(t as u32);
                self.types.push(inp.type_ids[r]);
            }
        }
        self.rows = self.padded_row.len();
        self.set_rows(cfg, self.rows);
    }

    /// Slot of layer `l`'s stored activations, and of its input in `x`.
    fn slot(&self, l: usize) -> (usize, usize) {
        (l % self.saved, l % (self.saved + 1))
    }

    /// Copies the packed output of the last of `layers` layers into the padded `hidden`.
    fn unpack_hidden(&mut self, layers: usize, c: usize) {
        let out = layer(&self.x, self.slot(layers).1, self.rows * c);
        self.hidden.fill(0.0);
        for (r, &pr) in self.padded_row.iter().enumerate() {
            self.hidden[pr * c..(pr + 1) * c].copy_from_slice(&out[r * c..(r + 1) * c]);
        }
    }

    /// Gathers the real rows of the padded `dhidden` into the packed `dx`.
    fn pack_dhidden(&mut self, c: usize) {
        for (r, &pr) in self.padded_row.iter().enumerate() {
            self.dx[r * c..(r + 1) * c].copy_from_slice(&self.dhidden[pr * c..(pr + 1) * c]);
        }
    }
}

/// The input of slot `i` and the output slot `o` of a `(slots) × [n]` buffer.
fn in_out(x: &mut [f32], i: usize, o: usize, n: usize) -> (&[f32], &mut [f32]) {
    if i < o {
        let (lo, hi) = x.split_at_mut(o * n);
        (&lo[i * n..(i + 1) * n], &mut hi[..n])
    } else {
        let (lo, hi) = x.split_at_mut(i * n);
        (&hi[..n], &mut lo[o * n..(o + 1) * n])
    }
}

impl Bert {
    fn lin(&self, rows: usize, d_in: usize, d_out: usize) -> Dims {
        Dims {
            rows,
            d_in,
            d_out,
            layout: Layout::OutIn,
        }
    }

    /// Dims of an encoder layer's linear map, in whichever layout its weights are held.
    fn layer_lin(&self, rows: usize, d_in: usize, d_out: usize) -> Dims {
        let layout = if self.layers_in_out {
            if panels::can_pack(d_out) {
                Layout::Panels
            } else {
                Layout::InOut
            }
        } else {
            Layout::OutIn
        };
        Dims {
            layout,
            ..self.lin(rows, d_in, d_out)
        }
    }

    fn attn_shape<'a>(
        &self,
        inp: &BertInput<'a>,
        starts: &'a [usize],
        dropout: Option<(f32, u64)>,
    ) -> attention::Shape<'a> {
        attention::Shape {
            batch: inp.batch,
            heads: self.config.num_attention_heads,
            head_dim: self.config.head_dim(),
            tq: inp.seq,
            tk: inp.seq,
            causal: None,
            key_lens: Some(inp.lens),
            scale: 1.0 / (self.config.head_dim() as f32).sqrt(),
            dropout,
            starts: Some(starts),
        }
    }

    /// Embeddings and encoder layers over `inp`, saving what the backward pass needs. `drop` turns dropout on.
    fn forward_encoder(&self, a: &mut BertActs, inp: &BertInput, drop: DropSeeds) {
        let cfg = &self.config;
        a.pack(cfg, inp);
        let (bt, c, t, ni) = (a.rows, cfg.hidden_size, inp.seq, cfg.intermediate_size);
        let (n, eps, p, i) = (bt * c, cfg.layer_norm_eps, &self.params, &self.idx);
        let (hp, ap) = (cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob);
        embedding::forward(&mut a.emb_sum, &a.ids, &p[i.word.clone()], None, 1, 0, c);
        embedding::add(&mut a.emb_sum, &a.pos, &p[i.pos.clone()], c);
        embedding::add(&mut a.emb_sum, &a.types, &p[i.typ.clone()], c);
        let (m, r) = a.emb_stats.split_at_mut(bt);
        let x0 = &mut a.x[..n];
        layernorm::forward(
            x0,
            m,
            r,
            &a.emb_sum,
            &p[i.emb_ln_w.clone()],
            &p[i.emb_ln_b.clone()],
            c,
            eps,
        );
        if let Some((pr, s)) = drop.site(hp, cfg.num_hidden_layers, 0) {
            dropout::apply(x0, pr, s);
        }
        let qkv_views = (
            View::packed(t, 3 * c, 0),
            View::packed(t, 3 * c, c),
            View::packed(t, 3 * c, 2 * c),
        );
        for (l, b) in i.layers.iter().enumerate() {
            let (s, xs) = a.slot(l);
            let (x_in, x_out) = in_out(&mut a.x, xs, (xs + 1) % (a.saved + 1), n);
            let qkv = layer_mut(&mut a.qkv, s, 3 * n);
            matmul::forward(
                qkv,
                x_in,
                &p[b.qkv_w.clone()],
                Some(&p[b.qkv_b.clone()]),
                self.layer_lin(bt, c, 3 * c),
                false,
            );
            let att = layer_mut(&mut a.att, s, n);
            let lse = layer_mut(&mut a.lse, s, inp.batch * cfg.num_attention_heads * t);
            let sh = self.attn_shape(inp, &a.starts, drop.site(ap, l, 1));
            let (qv, kv, vv) = qkv_views;
            attention::forward(att, View::packed(t, c, 0), lse, qkv, qv, qkv, kv, vv, &sh);
            let sum1 = layer_mut(&mut a.sum1, s, n);
            let w = (&p[b.attn_out_w.clone()], &p[b.attn_out_b.clone()]);
            residual_branch(
                sum1,
                x_in,
                &mut a.tmp,
                att,
                w,
                self.layer_lin(bt, c, c),
                drop.site(hp, l, 2),
            );
            let (m, r) = layer_mut(&mut a.ln1_stats, s, 2 * bt).split_at_mut(bt);
            let y = layer_mut(&mut a.y, s, n);
            layernorm::forward(
                y,
                m,
                r,
                sum1,
                &p[b.ln1_w.clone()],
                &p[b.ln1_b.clone()],
                c,
                eps,
            );
            let fc = layer_mut(&mut a.fc, s, bt * ni);
            matmul::forward(
                fc,
                y,
                &p[b.fc_w.clone()],
                Some(&p[b.fc_b.clone()]),
                self.layer_lin(bt, c, ni),
                false,
            );
            gelu::forward(&mut a.wide, fc, self.gelu);
            let sum2 = layer_mut(&mut a.sum2, s, n);
            let w = (&p[b.out_w.clone()], &p[b.out_b.clone()]);
            residual_branch(
                sum2,
                y,
                &mut a.tmp,
                &a.wide[..bt * ni],
                w,
                self.layer_lin(bt, ni, c),
                drop.site(hp, l, 3),
            );
            let (m, r) = layer_mut(&mut a.ln2_stats, s, 2 * bt).split_at_mut(bt);
            layernorm::forward(
                x_out,
                m,
                r,
                sum2,
                &p[b.ln2_w.clone()],
                &p[b.ln2_b.clone()],
                c,
                eps,
            );
        }
        a.unpack_hidden(cfg.num_hidden_layers, c);
    }

    /// Backward through the encoder and embeddings, from the gradient of the final hidden state in
    /// `a.dhidden`; accumulates parameter gradients into `g`.
    fn backward_encoder(&self, a: &mut BertActs, inp: &BertInput, g: &mut [f32], drop: DropSeeds) {
        let cfg = &self.config;
        let (bt, c, t, ni) = (a.rows, cfg.hidden_size, inp.seq, cfg.intermediate_size);
        a.pack_dhidden(c);
        let (n, p, i) = (bt * c, &self.params, &self.idx);
        let (hp, ap) = (cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob);
        let qkv_views = (
            View::packed(t, 3 * c, 0),
            View::packed(t, 3 * c, c),
            View::packed(t, 3 * c, 2 * c),
        );
        for (l, b) in i.layers.iter().enumerate().rev() {
            let (s, xs) = a.slot(l);
            // x_out = LN2(y + drop(out(gelu(fc(y)))))
            let (m, r) = layer(&a.ln2_stats, s, 2 * bt).split_at(bt);
            a.dsum.fill(0.0);
            let (dw, db) = split2(g, b.ln2_w.clone(), b.ln2_b.clone());
            layernorm::backward(
                &mut a.dsum,
                dw,
                db,
                &a.dx,
                layer(&a.sum2, s, n),
                &p[b.ln2_w.clone()],
                m,
                r,
            );
            a.dy.copy_from_slice(&a.dsum);
            let dbranch = branch_grad(&a.dsum, &mut a.tmp, drop.site(hp, l, 3));
            let (dw, db) = split2(g, b.out_w.clone(), b.out_b.clone());
            gelu::forward(&mut a.wide, layer(&a.fc, s, bt * ni), self.gelu);
            matmul::backward(
                Some(&mut a.tmp_wide),
                false,
                dw,
                Some(db),
                dbranch,
                &a.wide[..bt * ni],
                &p[b.out_w.clone()],
                self.layer_lin(bt, ni, c),
            );
            gelu::backward(
                &mut a.wide,
                layer(&a.fc, s, bt * ni),
                &a.tmp_wide,
                self.gelu,
            );
            let (dw, db) = split2(g, b.fc_w.clone(), b.fc_b.clone());
            let y = layer(&a.y, s, n);
            matmul::backward(
                Some(&mut a.dy),
                true,
                dw,
                Some(db),
                &a.wide,
                y,
                &p[b.fc_w.clone()],
                self.layer_lin(bt, c, ni),
            );
            // y = LN1(x_in + drop(attn_out(attention(qkv(x_in)))))
            let (m, r) = layer(&a.ln1_stats, s, 2 * bt).split_at(bt);
            a.dsum.fill(0.0);
            let (dw, db) = split2(g, b.ln1_w.clone(), b.ln1_b.clone());
            layernorm::backward(
                &mut a.dsum,
                dw,
                db,
                &a.dy,
                layer(&a.sum1, s, n),
                &p[b.ln1_w.clone()],
                m,
                r,
            );
            a.dx.copy_from_slice(&a.dsum);
            let dbranch = branch_grad(&a.dsum, &mut a.dy, drop.site(hp, l, 2));
            let (dw, db) = split2(g, b.attn_out_w.clone(), b.attn_out_b.clone());
            let att = layer(&a.att, s, n);
            matmul::backward(
                Some(&mut a.tmp),
                false,
                dw,
                Some(db),
                dbranch,
                att,
                &p[b.attn_out_w.clone()],
                self.layer_lin(bt, c, c),
            );
            let qkv = layer(&a.qkv, s, 3 * n);
            let (qv, kv, vv) = qkv_views;
            let sh = self.attn_shape(inp, &a.starts, drop.site(ap, l, 1));
            let lse = layer(&a.lse, s, inp.batch * cfg.num_attention_heads * t);
            attention::backward(
                &mut a.dqkv,
                None,
                qkv_views,
                &a.tmp,
                att,
                View::packed(t, c, 0),
                lse,
                qkv,
                qv,
                qkv,
                kv,
                vv,
                &sh,
            );
            let (dw, db) = split2(g, b.qkv_w.clone(), b.qkv_b.clone());
            let x_in = layer(&a.x, xs, n);
            matmul::backward(
                Some(&mut a.dx),
                true,
                dw,
                Some(db),
                &a.dqkv,
                x_in,
                &p[b.qkv_w.clone()],
                self.layer_lin(bt, c, 3 * c),
            );
        }
        if let Some((pr, s)) = drop.site(hp, cfg.num_hidden_layers, 0) {
            dropout::apply(&mut a.dx, pr, s);
        }
        let (m, r) = a.emb_stats.split_at(bt);
        a.dsum.fill(0.0);
        let (dw, db) = split2(g, i.emb_ln_w.clone(), i.emb_ln_b.clone());
        layernorm::backward(
            &mut a.dsum,
            dw,
            db,
            &a.dx,
            &a.emb_sum,
            &p[i.emb_ln_w.clone()],
            m,
            r,
        );
        embedding::backward(&mut g[i.word.clone()], None, &a.dsum, &a.ids, 1, c);
        embedding::backward(&mut g[i.pos.clone()], None, &a.dsum, &a.pos, 1, c);
        embedding::backward(&mut g[i.typ.clone()], None, &a.dsum, &a.types, 1, c);
    }

    /// Eval-mode pretraining losses and accuracies of one batch.
    pub fn pretrain_loss(
        &self,
        a: &mut BertActs,
        inp: &BertInput,
        mlm_labels: &[i32],
        nsp_labels: &[i32],
    ) -> Result<PretrainStats> {
        self.check_input(inp)?;
        self.check_labels(inp, mlm_labels, nsp_labels)?;
        a.fits(inp)?;
        self.forward_encoder(a, inp, DropSeeds(None));
        Ok(self.heads_forward_backward(a, inp, mlm_labels, nsp_labels, None))
    }

    /// Forward and backward of one pretraining micro-batch: adds the gradient of
    /// `mlm_scale · Σ MLM losses + nsp_scale · Σ NSP losses` to `grads` (pass one over the number of labels of the
    /// whole step for Hugging Face's mean losses). `train_seed` seeds dropout.
    pub fn pretrain_forward_backward(
        &self,
        a: &mut BertActs,
        inp: &BertInput,
        (mlm_labels, nsp_labels): (&[i32], &[i32]),
        grads: &mut [f32],
        (mlm_scale, nsp_scale): (f32, f32),
        train_seed: u64,
    ) -> Result<PretrainStats> {
        self.check_trainable()?;
        self.check_input(inp)?;
        self.check_labels(inp, mlm_labels, nsp_labels)?;
        a.fits(inp)?;
        if !a.training {
            return Err(Error::Config(
                "activations were allocated for inference, not training".into(),
            ));
        }
        let drop = DropSeeds(Some(train_seed));
        self.forward_encoder(a, inp, drop);
        a.dhidden.fill(0.0);
        let stats = self.heads_forward_backward(
            a,
            inp,
            mlm_labels,
            nsp_labels,
            Some((grads, mlm_scale, nsp_scale)),
        );
        self.backward_encoder(a, inp, grads, drop);
        Ok(stats)
    }

    /// The MLM and NSP heads on the encoder output. With gradients, backpropagates both into `a.dx` and the
    /// heads' parameters.
    fn heads_forward_backward(
        &self,
        a: &mut BertActs,
        inp: &BertInput,
        mlm_labels: &[i32],
        nsp_labels: &[i32],
        mut grads: Option<(&mut [f32], f32, f32)>,
    ) -> PretrainStats {
        let mut st = PretrainStats::default();
        let c = self.config.hidden_size;
        let rows: Vec<usize> = (0..mlm_labels.len())
            .filter(|&r| mlm_labels[r] != xent::IGNORE)
            .collect();
        if !rows.is_empty() {
            let targets: Vec<i32> = rows.iter().map(|&r| mlm_labels[r]).collect();
            let g = grads.as_mut().map(|(g, s, _)| (&mut **g, *s));
            let (sum, correct, dxm) = self.mlm_head(&a.hidden, &rows, &targets, g);
            st.mlm_loss_sum = sum;
            st.mlm_count = rows.len();
            st.mlm_correct = correct;
            if let Some(dxm) = dxm {
                scatter_add_rows(&mut a.dhidden, &dxm, &rows, c);
            }
        }
        let rows: Vec<usize> = (0..inp.batch)
            .filter(|&b| nsp_labels[b] != xent::IGNORE)
            .collect();
        if !rows.is_empty() {
            let cls_rows: Vec<usize> = rows.iter().map(|&b| b * inp.seq).collect();
            let targets: Vec<i32> = rows.iter().map(|&b| nsp_labels[b]).collect();
            let g = grads.as_mut().map(|(g, _, s)| (&mut **g, *s));
            let (sum, correct, dxc) = self.nsp_head(&a.hidden, &cls_rows, &targets, g);
            st.nsp_loss_sum = sum;
            st.nsp_count = rows.len();
            st.nsp_correct = correct;
            if let Some(dxc) = dxc {
                scatter_add_rows(&mut a.dhidden, &dxc, &cls_rows, c);
            }
        }
        st
    }

    /// Masked-LM head over the hidden rows `rows`: (loss sum, correct predictions, gradient of the gathered
    /// rows when training).
    fn mlm_head(
        &self,
        hidden: &[f32],
        rows: &[usize],
        targets: &[i32],
        grads: Option<(&mut [f32], f32)>,
    ) -> (f64, usize, Option<Vec<f32>>) {
        let (c, v, m) = (self.config.hidden_size, self.config.vocab_size, rows.len());
        let p = &self.params;
        let Some(h) = &self.idx.mlm else {
            return (0.0, 0, None);
        };
        let xm = gather_rows(hidden, rows, c);
        let t = self.mlm_transform(h, &xm);
        let hn = &t.out;
        let chunk = head_chunk(m, v);
        let mut logits = vec![0.0; chunk * v];
        let mut dhn = vec![0.0; if grads.is_some() { m * c } else { 0 }];
        let (mut sum, mut correct) = (0.0, 0);
        let mut grads = grads;
        for r0 in (0..m).step_by(chunk) {
            let r1 = (r0 + chunk).min(m);
            let d = self.lin(r1 - r0, c, v);
            let lg = &mut logits[..(r1 - r0) * v];
            let x = &hn[r0 * c..r1 * c];
            matmul::forward(
                lg,
                x,
                &p[h.decoder.clone()],
                Some(&p[h.bias.clone()]),
                d,
                false,
            );
            correct += count_correct(lg, &targets[r0..r1], v);
            sum += xent::forward_backward(lg, &targets[r0..r1], v, grads.as_ref().map(|(_, s)| *s));
            if let Some((g, _)) = grads.as_mut() {
                let (dw, db) = split2(g, h.decoder.clone(), h.bias.clone());
                matmul::backward(
                    Some(&mut dhn[r0 * c..r1 * c]),
                    false,
                    dw,
                    Some(db),
                    lg,
                    x,
                    &p[h.decoder.clone()],
                    d,
                );
            }
        }
        let Some((g, _)) = grads else {
            return (sum, correct, None);
        };
        let mut dact = vec![0.0; m * c];
        let (dw, db) = split2(g, h.ln_w.clone(), h.ln_b.clone());
        layernorm::backward(
            &mut dact,
            dw,
            db,
            &dhn,
            &t.act,
            &p[h.ln_w.clone()],
            &t.mean,
            &t.rstd,
        );
        let mut dpre = vec![0.0; m * c];
        gelu::backward(&mut dpre, &t.pre, &dact, self.gelu);
        let mut dxm = vec![0.0; m * c];
        let (dw, db) = split2(g, h.dense_w.clone(), h.dense_b.clone());
        matmul::backward(
            Some(&mut dxm),
            false,
            dw,
            Some(db),
            &dpre,
            &xm,
            &p[h.dense_w.clone()],
            self.lin(m, c, c),
        );
        (sum, correct, Some(dxm))
    }

    /// Pooler + next-sentence classifier over the `[CLS]` rows `rows` of `hidden`: (loss sum, correct
    /// predictions, gradient of those rows when training).
    fn nsp_head(
        &self,
        hidden: &[f32],
        rows: &[usize],
        targets: &[i32],
        grads: Option<(&mut [f32], f32)>,
    ) -> (f64, usize, Option<Vec<f32>>) {
        let (Some(_), Some((nw, nb))) = (&self.idx.pooler, &self.idx.nsp) else {
            return (0.0, 0, None);
        };
        let (c, m, p) = (self.config.hidden_size, rows.len(), &self.params);
        let xc = gather_rows(hidden, rows, c);
        let mut pooled = vec![0.0; m * c];
        self.pool(&mut pooled, &xc);
        let mut logits = vec![0.0; m * 2];
        matmul::forward(
            &mut logits,
            &pooled,
            &p[nw.clone()],
            Some(&p[nb.clone()]),
            self.lin(m, c, 2),
            false,
        );
        let correct = count_correct(&logits, targets, 2);
        let scale = grads.as_ref().map(|(_, s)| *s);
        let sum = xent::forward_backward(&mut logits, targets, 2, scale);
        let Some((g, _)) = grads else {
            return (sum, correct, None);
        };
        let mut dpooled = vec![0.0; m * c];
        let (dw, db) = split2(g, nw.clone(), nb.clone());
        matmul::backward(
            Some(&mut dpooled),
            false,
            dw,
            Some(db),
            &logits,
            &pooled,
            &p[nw.clone()],
            self.lin(m, c, 2),
        );
        let dxc = self.pooler_backward(g, &xc, &pooled, &dpooled);
        (sum, correct, Some(dxc))
    }

    /// The MLM head's transform (dense → GELU → LayerNorm) of `[m, C]` gathered rows.
    fn mlm_transform(&self, h: &MlmIdx, xm: &[f32]) -> MlmTransform {
        let (c, p, eps) = (
            self.config.hidden_size,
            &self.params,
            self.config.layer_norm_eps,
        );
        let m = xm.len() / c;
        let mut pre = vec![0.0; m * c];
        matmul::forward(
            &mut pre,
            xm,
            &p[h.dense_w.clone()],
            Some(&p[h.dense_b.clone()]),
            self.lin(m, c, c),
            false,
        );
        let mut act = vec![0.0; m * c];
        gelu::forward(&mut act, &pre, self.gelu);
        let (mut out, mut mean, mut rstd) = (vec![0.0; m * c], vec![0.0; m], vec![0.0; m]);
        layernorm::forward(
            &mut out,
            &mut mean,
            &mut rstd,
            &act,
            &p[h.ln_w.clone()],
            &p[h.ln_b.clone()],
            c,
            eps,
        );
        MlmTransform {
            pre,
            act,
            out,
            mean,
            rstd,
        }
    }

    /// `out = tanh(x·Wᵀ + b)` with the pooler's weights, for `[rows, C]` first-token states.
    fn pool(&self, out: &mut [f32], x: &[f32]) {
        let Some((pw, pb)) = &self.idx.pooler else {
            return;
        };
        let c = self.config.hidden_size;
        let rows = x.len() / c;
        let mut pre = vec![0.0; rows * c];
        matmul::forward(
            &mut pre,
            x,
            &self.params[pw.clone()],
            Some(&self.params[pb.clone()]),
            self.lin(rows, c, c),
            false,
        );
        tanh::forward(out, &pre);
    }
}

/// Hooks for fine-tuning heads: the encoder's forward and backward, and the pooler's.
impl Bert {
    /// Final hidden states (`[B·T, C]`, zero at padding) of `inp`, keeping in `a` what
    /// [`Bert::encode_backward`] needs.
    /// `train_seed` turns dropout on (training); `None` is eval mode.
    pub fn encode<'a>(
        &self,
        a: &'a mut BertActs,
        inp: &BertInput,
        train_seed: Option<u64>,
    ) -> Result<&'a [f32]> {
        self.check_input(inp)?;
        a.fits(inp)?;
        if train_seed.is_some() && !a.training {
            return Err(Error::Config(
                "activations were allocated for inference, not training".into(),
            ));
        }
        self.forward_encoder(a, inp, DropSeeds(train_seed));
        Ok(&a.hidden)
    }

    /// Backpropagates `dhidden` (the gradient of [`Bert::encode`]'s output) through the encoder, adding the
    /// parameter gradients into `grads`. `train_seed` must be the forward pass's.
    pub fn encode_backward(
        &self,
        a: &mut BertActs,
        inp: &BertInput,
        dhidden: &[f32],
        grads: &mut [f32],
        train_seed: Option<u64>,
    ) -> Result<()> {
        self.check_trainable()?;
        a.fits(inp)?;
        if a.dhidden.len() != dhidden.len() || grads.len() != self.params.len() {
            return Err(Error::Config(format!(
                "encoder backward given {} hidden gradients and {} parameter gradients; expected {} and {}",
                dhidden.len(),
                grads.len(),
                a.dhidden.len(),
                self.params.len()
            )));
        }
        a.dhidden.copy_from_slice(dhidden);
        self.backward_encoder(a, inp, grads, DropSeeds(train_seed));
        Ok(())
    }

    /// The pooler, `tanh(x·Wᵀ + b)`, of `[rows, C]` first-token states.
    pub fn pooler_forward(&self, x: &[f32]) -> Result<Vec<f32>> {
        if self.idx.pooler.is_none() {
            return Err(Error::Config(
                "this checkpoint has no pooler (bert.pooler.*)".into(),
            ));
        }
        let mut out = vec![0.0; x.len()];
        self.pool(&mut out, x);
        Ok(out)
    }

    /// Backward of the pooler given its input `x`, output `pooled` and output gradient `dpooled`: adds the
    /// pooler's parameter gradients into `grads` and returns the gradient of `x` (zero without a pooler).
    pub fn pooler_backward(
        &self,
        grads: &mut [f32],
        x: &[f32],
        pooled: &[f32],
        dpooled: &[f32],
    ) -> Vec<f32> {
        let mut dx = vec![0.0; x.len()];
        let Some((pw, pb)) = &self.idx.pooler else {
            return dx;
        };
        let c = self.config.hidden_size;
        let mut dpre = vec![0.0; x.len()];
        tanh::backward(&mut dpre, pooled, dpooled);
        let (dw, db) = split2(grads, pw.clone(), pb.clone());
        matmul::backward(
            Some(&mut dx),
            false,
            dw,
            Some(db),
            &dpre,
            x,
            &self.params[pw.clone()],
            self.lin(x.len() / c, c, c),
        );
        dx
    }
}

/// What the MLM transform's backward needs: dense output, GELU output, LayerNorm output and statistics.
struct MlmTransform {
    pre: Vec<f32>,
    act: Vec<f32>,
    out: Vec<f32>,
    mean: Vec<f32>,
    rstd: Vec<f32>,
}

/// Rows of `logits` whose arg-max is their (non-ignored) target.
fn count_correct(logits: &[f32], targets: &[i32], v: usize) -> usize {
    logits
        .chunks_exact(v)
        .zip(targets)
        .filter(|(row, &t)| t != xent::IGNORE && xent::argmax(row) == t as usize)
        .count()
}

/// Inference: hidden states, masked-LM logits, pooled outputs.
impl Bert {
    /// This model with its encoder layers' weights reordered for inference: transposed to `[in, out]`, which
    /// `gemm` reads as they lie instead of transposing them for every product (that took about a quarter of the
    /// time of one sequence through all-MiniLM-L6-v2), then, where the output width is a multiple of the CPU's
    /// panel width (64 with AVX-512, 16 with AVX2), packed into the microkernel's panels (see [`panels`]; a
    /// further 5–9 % of that time). Outputs are the same up to rounding; such a copy refuses to be saved.
    pub fn into_inference(mut self) -> Bert {
        if !self.layers_in_out {
            let c = self.config.hidden_size;
            let ni = self.config.intermediate_size;
            for l in &self.idx.layers {
                for (w, d_out, d_in) in [
                    (&l.qkv_w, 3 * c, c),
                    (&l.attn_out_w, c, c),
                    (&l.fc_w, ni, c),
                    (&l.out_w, c, ni),
                ] {
                    let src = self.params[w.clone()].to_vec();
                    let dst = &mut self.params[w.clone()];
                    for o in 0..d_out {
                        for i in 0..d_in {
                            dst[i * d_out + o] = src[o * d_in + i];
                        }
                    }
                    if panels::can_pack(d_out) {
                        panels::pack(dst, d_in, d_out);
                    }
                }
            }
            self.layers_in_out = true;
        }
        self
    }

    /// Eval-mode final hidden states, `[batch, seq, C]`, zero at padding. The sequences are shared out over the
    /// pool's threads in runs of about equal real tokens, each run encoded by one thread on its own: a batch of 32
    /// spends less on hand-offs that way than with every kernel split over the threads.
    pub fn hidden_states(&self, inp: &BertInput) -> Result<Vec<f32>> {
        self.check_input(inp)?;
        let (t, c) = (inp.seq, self.config.hidden_size);
        let mut out = vec![0.0; inp.batch * t * c];
        let mut rest = out.as_mut_slice();
        let mut jobs = Vec::new();
        for r in balanced_runs(inp.lens, rayon::current_num_threads()) {
            let (dst, tail) = rest.split_at_mut(r.len() * t * c);
            jobs.push((r, dst));
            rest = tail;
        }
        let encode = |(r, dst): (Range<usize>, &mut [f32])| {
            let part = inp.sequences(r);
            let mut a = BertActs::new(&self.config, part.batch, t, false);
            self.forward_encoder(&mut a, &part, DropSeeds(None));
            dst.copy_from_slice(&a.hidden);
        };
        if jobs.len() > 1 {
            jobs.into_par_iter().for_each(encode);
        } else {
            // one run (a single sequence, say): its kernels are split over the threads, which stay awake for it
            with_pool_awake(|| jobs.into_iter().for_each(encode));
        }
        Ok(out)
    }

    /// Masked-LM logits (`[rows.len(), vocab]`) of the rows `rows` of `hidden` (`[_, C]`).
    pub fn mlm_logits(&self, hidden: &[f32], rows: &[usize]) -> Result<Vec<f32>> {
        let Some(h) = &self.idx.mlm else {
            return Err(Error::Config(
                "this checkpoint has no masked-LM head (cls.predictions.*)".into(),
            ));
        };
        let (c, v, m) = (self.config.hidden_size, self.config.vocab_size, rows.len());
        let t = self.mlm_transform(h, &gather_rows(hidden, rows, c));
        let mut logits = vec![0.0; m * v];
        let p = &self.params;
        matmul::forward(
            &mut logits,
            &t.out,
            &p[h.decoder.clone()],
            Some(&p[h.bias.clone()]),
            self.lin(m, c, v),
            false,
        );
        Ok(logits)
    }

    /// Pooler outputs (`[batch, C]`) of `[batch, seq, C]` hidden states.
    pub fn pooled(&self, hidden: &[f32], batch: usize, seq: usize) -> Result<Vec<f32>> {
        if self.idx.pooler.is_none() {
            return Err(Error::Config(
                "this checkpoint has no pooler (bert.pooler.*)".into(),
            ));
        }
        let c = self.config.hidden_size;
        let rows: Vec<usize> = (0..batch).map(|b| b * seq).collect();
        let mut out = vec![0.0; batch * c];
        self.pool(&mut out, &gather_rows(hidden, &rows, c));
        Ok(out)
    }

    /// Next-sentence logits (`[batch, 2]`; index 0 = "B follows A") of `[batch, seq, C]` hidden states.
    pub fn nsp_logits(&self, hidden: &[f32], batch: usize, seq: usize) -> Result<Vec<f32>> {
        let Some((nw, nb)) = &self.idx.nsp else {
            return Err(Error::Config(
                "this checkpoint has no next-sentence head (cls.seq_relationship.*)".into(),
            ));
        };
        let pooled = self.pooled(hidden, batch, seq)?;
        let c = self.config.hidden_size;
        let mut out = vec![0.0; batch * 2];
        matmul::forward(
            &mut out,
            &pooled,
            &self.params[nw.clone()],
            Some(&self.params[nb.clone()]),
            self.lin(batch, c, 2),
            false,
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(dropout: f32) -> Bert {
        sized(8, 12, dropout)
    }

    fn sized(hidden: usize, intermediate: usize, dropout: f32) -> Bert {
        let mut cfg = BertConfig::new(23, 16, 2, 2, hidden);
        cfg.intermediate_size = intermediate;
        cfg.hidden_dropout_prob = dropout;
        cfg.attention_probs_dropout_prob = dropout;
        let mut m = Bert::new(cfg, Heads::PRETRAINING, 3).unwrap();
        // non-trivial biases and gains so their wiring matters
        let mut rng = Rng::new(9);
        for spec in m.layout.specs() {
            if spec.shape.len() == 1 {
                m.params[spec.range()]
                    .iter_mut()
                    .for_each(|v| *v += 0.3 * rng.normal());
            } else {
                m.params[spec.range()].iter_mut().for_each(|v| *v *= 10.0);
            }
        }
        m
    }

    struct Batch {
        ids: Vec<u32>,
        types: Vec<u32>,
        lens: Vec<usize>,
        mlm: Vec<i32>,
        nsp: Vec<i32>,
    }

    fn batch() -> Batch {
        Batch {
            ids: vec![2, 7, 9, 3, 11, 3, 2, 13, 3, 19, 0, 0],
            types: vec![0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0],
            lens: vec![6, 4],
            mlm: vec![-100, 8, -100, -100, 12, -100, -100, 22, -100, 5, -100, -100],
            nsp: vec![1, 0],
        }
    }

    fn input(b: &Batch) -> BertInput<'_> {
        BertInput {
            batch: 2,
            seq: 6,
            ids: &b.ids,
            type_ids: &b.types,
            lens: &b.lens,
        }
    }

    /// Mean MLM + mean NSP loss in training mode (dropout drawn from `seed`), and its gradient.
    fn loss_and_grad(m: &Bert, b: &Batch, seed: u64) -> (f64, Vec<f32>) {
        let mut a = BertActs::new(&m.config, 2, 6, true);
        let mut g = vec![0.0; m.num_params()];
        let st = m
            .pretrain_forward_backward(
                &mut a,
                &input(b),
                (&b.mlm, &b.nsp),
                &mut g,
                (0.25, 0.5),
                seed,
            )
            .unwrap();
        (st.total_loss(), g)
    }

    #[test]
    fn gradients_match_finite_differences() {
        for dropout in [0.0, 0.2] {
            let m = tiny(dropout);
            let b = batch();
            let (_, g) = loss_and_grad(&m, &b, 5);
            let loss = |p: &[f32]| {
                let mut mp = m.clone();
                mp.params.copy_from_slice(p);
                loss_and_grad(&mp, &b, 5).0
            };
            let what = format!("dropout {dropout}");
            crate::testutil::check_gradients(&m.layout, &m.params, &g, 1e-2, &loss, &what);
        }
    }

    #[test]
    fn a_model_reordered_for_inference_gives_the_same_outputs() {
        // intermediate 12 ≠ hidden 8, so a transpose with the sizes swapped would be caught; widths that are
        // multiples of the CPU's panel width are packed into panels: 16, 48 and 32 with AVX2, 64, 192 and 128
        // with AVX-512
        for m in [tiny(0.0), sized(16, 32, 0.0), sized(64, 128, 0.0)] {
            let b = batch();
            let want = m.hidden_states(&input(&b)).unwrap();
            let rows = [1, 4, 7];
            let want_logits = m.mlm_logits(&want, &rows).unwrap();
            let t = m.clone().into_inference();
            assert_ne!(t.params, m.params);
            let got = t.hidden_states(&input(&b)).unwrap();
            let diff = got
                .iter()
                .zip(&want)
                .fold(0.0f32, |d, (a, b)| d.max((a - b).abs()));
            assert!(diff < 1e-5, "hidden states differ by {diff}");
            let logits = t.mlm_logits(&got, &rows).unwrap();
            let diff = logits
                .iter()
                .zip(&want_logits)
                .fold(0.0f32, |d, (a, b)| d.max((a - b).abs()));
            assert!(diff < 1e-4, "MLM logits differ by {diff}");
            // reordering twice is a no-op the second time
            assert_eq!(t.clone().into_inference().params, t.params);
            let dir =
                std::env::temp_dir().join(format!("primer-inference-save-{}", std::process::id()));
            let e = t.save(&dir, &[]).unwrap_err();
            assert!(e.to_string().contains("cannot be saved"), "{e}");
            assert!(!dir.exists(), "nothing may be written");
            // nor trained
            let mut a = BertActs::new(&t.config, 2, 6, true);
            let mut g = vec![0.0; t.num_params()];
            let e = t
                .pretrain_forward_backward(
                    &mut a,
                    &input(&b),
                    (&b.mlm, &b.nsp),
                    &mut g,
                    (1.0, 1.0),
                    1,
                )
                .unwrap_err();
            assert!(e.to_string().contains("cannot be trained"), "{e}");
        }
    }

    #[test]
    fn hidden_states_are_the_same_on_any_number_of_threads() {
        let m = tiny(0.0);
        let (batch, seq) = (5, 6);
        let lens = [6, 2, 5, 1, 4];
        let mut ids = vec![0u32; batch * seq];
        for (b, &n) in lens.iter().enumerate() {
            for t in 0..n {
                ids[b * seq + t] = (2 + (b * 7 + t * 3) % 20) as u32;
            }
        }
        let types = vec![0u32; batch * seq];
        let inp = BertInput {
            batch,
            seq,
            ids: &ids,
            type_ids: &types,
            lens: &lens,
        };
        let on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| m.hidden_states(&inp).unwrap())
        };
        let one = on(1);
        assert!(one.iter().any(|&x| x != 0.0));
        for threads in [2, 3, 8] {
            let diff = on(threads)
                .iter()
                .zip(&one)
                .fold(0.0f32, |d, (a, b)| d.max((a - b).abs()));
            assert!(diff < 1e-5, "{threads} threads differ from one by {diff}");
        }
    }

    #[test]
    fn padding_does_not_change_real_positions() {
        let m = tiny(0.0);
        let b = batch();
        let full = m.hidden_states(&input(&b)).unwrap();
        // the second row alone, without its padding
        let short = BertInput {
            batch: 1,
            seq: 4,
            ids: &b.ids[6..10],
            type_ids: &b.types[6..10],
            lens: &[4],
        };
        let alone = m.hidden_states(&short).unwrap();
        let c = m.config.hidden_size;
        let diff = alone
            .iter()
            .zip(&full[6 * c..10 * c])
            .fold(0.0f32, |d, (a, b)| d.max((a - b).abs()));
        assert!(diff < 1e-5, "padding changed real positions by {diff}");
    }

    #[test]
    fn eval_loss_equals_training_loss_without_dropout() {
        let m = tiny(0.0);
        let b = batch();
        let mut a = BertActs::new(&m.config, 2, 6, false);
        let eval = m.pretrain_loss(&mut a, &input(&b), &b.mlm, &b.nsp).unwrap();
        let (train, _) = loss_and_grad(&m, &b, 1);
        assert!((eval.total_loss() - train).abs() < 1e-6);
        assert_eq!(eval.mlm_count, 4);
        assert_eq!(eval.nsp_count, 2);
    }

    #[test]
    fn unsupported_configs_are_refused() {
        let mut cfg = BertConfig::new(23, 16, 2, 2, 8);
        cfg.position_embedding_type = "relative_key".into();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("position_embedding_type \"relative_key\""),
            "{e}"
        );
        let mut cfg = BertConfig::new(23, 16, 2, 2, 8);
        cfg.hidden_act = "relu".into();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("hidden_act \"relu\""), "{e}");
        for eps in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let mut cfg = BertConfig::new(23, 16, 2, 2, 8);
            cfg.layer_norm_eps = eps;
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains("layer_norm_eps must be positive"), "{e}");
        }
    }

    #[test]
    fn bad_batches_are_errors() {
        let m = tiny(0.0);
        let mut b = batch();
        b.ids[3] = 23;
        let mut a = BertActs::new(&m.config, 2, 6, false);
        assert!(m.pretrain_loss(&mut a, &input(&b), &b.mlm, &b.nsp).is_err());
        let mut b = batch();
        b.mlm[1] = 40;
        assert!(m.pretrain_loss(&mut a, &input(&b), &b.mlm, &b.nsp).is_err());
        let mut b = batch();
        b.lens[1] = 7;
        assert!(m.pretrain_loss(&mut a, &input(&b), &b.mlm, &b.nsp).is_err());
    }
}

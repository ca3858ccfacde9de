//! GPT-2: token + position embeddings, pre-LayerNorm blocks (causal self-attention, GELU MLP), final LayerNorm,
//! language-model head (tied to the token embedding or not). Same architecture and tensor names as Hugging Face's
//! `GPT2LMHeadModel`, so checkpoints go both ways.
//!
//! Training runs the layers forward saving what the backward pass needs, then backward in reverse order, as
//! llm.c does. The head and the loss are computed in row chunks so the `[tokens, vocab]` logits never exist whole.

use super::common::{branch_grad, head_chunk, layer, layer_mut, residual_branch, DropSeeds};
use crate::engine::attention::{self, View};
use crate::engine::gelu::{self, Gelu};
use crate::engine::matmul::{self, Dims, Layout};
use crate::engine::params::{split2, ParamLayout};
use crate::engine::rng::Rng;
use crate::engine::{dropout, embedding, layernorm, xent};
use crate::error::{Error, Result};
use crate::hf::{self, TensorFile, TokenIds};
use crate::train::memory::{check_model_fits, product};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

/// `config.json` of a GPT-2 model, with Hugging Face's field names and defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GptConfig {
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    #[serde(default = "default_activation")]
    pub activation_function: String,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f32,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_dropout")]
    pub resid_pdrop: f32,
    #[serde(default = "default_dropout")]
    pub embd_pdrop: f32,
    #[serde(default = "default_dropout")]
    pub attn_pdrop: f32,
    #[serde(default = "default_init_range")]
    pub initializer_range: f32,
    /// Written as `null` when the tokenizer has no `<|endoftext|>` (char runs): left out, transformers would
    /// take GPT-2's 50256, outside a small vocabulary. Hugging Face also writes a list of ids.
    #[serde(default)]
    pub bos_token_id: TokenIds,
    /// The ids that end a generated text (see [`crate::infer::generate::GenerationConfig::stop_ids`]).
    #[serde(default)]
    pub eos_token_id: TokenIds,
    /// The padding id of a GPT2ForSequenceClassification, which reads a text at its last token that is not
    /// this one (without it transformers classifies one text at a time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
    /// MLP width; Hugging Face's `null` means 4·n_embd, the only width primer implements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_inner: Option<usize>,
    /// A GPT-2 variant primer does not implement; must be false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Whether attention scores are scaled by 1/√head_dim (false: not scaled at all).
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    #[serde(default = "default_model_type")]
    pub model_type: String,
    #[serde(default = "default_architectures")]
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

fn default_activation() -> String {
    "gelu_new".into()
}
fn default_eps() -> f32 {
    1e-5
}
fn default_true() -> bool {
    true
}
fn default_dropout() -> f32 {
    0.1
}
fn default_init_range() -> f32 {
    0.02
}
fn default_model_type() -> String {
    "gpt2".into()
}
fn default_architectures() -> Vec<String> {
    vec!["GPT2LMHeadModel".into()]
}

impl GptConfig {
    /// A config with primer's defaults for pretraining (exact GELU, no dropout, tied head).
    pub fn new(
        vocab_size: usize,
        n_positions: usize,
        n_layer: usize,
        n_head: usize,
        n_embd: usize,
    ) -> Self {
        GptConfig {
            vocab_size,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            activation_function: "gelu".into(),
            layer_norm_epsilon: 1e-5,
            tie_word_embeddings: true,
            resid_pdrop: 0.0,
            embd_pdrop: 0.0,
            attn_pdrop: 0.0,
            initializer_range: 0.02,
            bos_token_id: TokenIds::default(),
            eos_token_id: TokenIds::default(),
            pad_token_id: None,
            n_inner: None,
            scale_attn_by_inverse_layer_idx: false,
            scale_attn_weights: true,
            model_type: default_model_type(),
            architectures: default_architectures(),
            id2label: BTreeMap::new(),
            label2id: BTreeMap::new(),
        }
    }

    /// Checks the values make a model; errors say which value is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.model_type != "gpt2" {
            return bad(format!(
                "model_type is \"{}\"; this loader reads \"gpt2\"",
                self.model_type
            ));
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
        ] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!(
                "n_embd ({}) is not divisible by n_head ({})",
                self.n_embd, self.n_head
            ));
        }
        if self.n_inner.is_some_and(|w| w != 4 * self.n_embd) {
            return bad(format!(
                "n_inner other than 4·n_embd ({}) is not supported",
                4 * self.n_embd
            ));
        }
        if self.scale_attn_by_inverse_layer_idx {
            return bad("scale_attn_by_inverse_layer_idx = true is not supported".into());
        }
        for (name, p) in [
            ("resid_pdrop", self.resid_pdrop),
            ("embd_pdrop", self.embd_pdrop),
            ("attn_pdrop", self.attn_pdrop),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        // 0 would divide a constant row (all padding, say) by zero; a negative one gives NaN
        if !(self.layer_norm_epsilon > 0.0 && self.layer_norm_epsilon.is_finite()) {
            return bad(format!(
                "layer_norm_epsilon must be positive and finite, got {}",
                self.layer_norm_epsilon
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

    /// The number of parameters these sizes make (saturating, so absurd sizes stay absurd instead of wrapping).
    pub fn param_count(&self) -> u128 {
        let (v, t, c) = (self.vocab_size, self.n_positions, self.n_embd);
        let heads = if self.tie_word_embeddings { 1 } else { 2 };
        let block = product(&[c, c, 12]).saturating_add(product(&[c, 13]));
        product(&[v, c, heads])
            .saturating_add(product(&[t, c]))
            .saturating_add(block.saturating_mul(self.n_layer as u128))
            .saturating_add(2 * c as u128)
    }

    fn gelu(&self) -> Result<Gelu> {
        match self.activation_function.as_str() {
            "gelu" => Ok(Gelu::Erf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Gelu::Tanh),
            other => Err(Error::Config(format!(
                "activation_function \"{other}\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast)"
            ))),
        }
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}

/// Where one block's tensors sit in the flat buffer.
#[derive(Clone, Debug)]
struct BlockIdx {
    ln1_w: Range<usize>,
    ln1_b: Range<usize>,
    qkv_w: Range<usize>,
    qkv_b: Range<usize>,
    attn_proj_w: Range<usize>,
    attn_proj_b: Range<usize>,
    ln2_w: Range<usize>,
    ln2_b: Range<usize>,
    fc_w: Range<usize>,
    fc_b: Range<usize>,
    mlp_proj_w: Range<usize>,
    mlp_proj_b: Range<usize>,
}

#[derive(Clone, Debug)]
struct Index {
    wte: Range<usize>,
    wpe: Range<usize>,
    blocks: Vec<BlockIdx>,
    lnf_w: Range<usize>,
    lnf_b: Range<usize>,
    /// The `[vocab, n_embd]` head; the same range as `wte` when tied.
    head: Range<usize>,
}

/// A GPT-2 model: config, parameter layout and the flat parameter buffer.
#[derive(Clone, Debug)]
pub struct Gpt {
    pub config: GptConfig,
    pub layout: ParamLayout,
    pub params: Vec<f32>,
    idx: Index,
    gelu: Gelu,
}

const HEAD_NAME: &str = "lm_head.weight";

impl Gpt {
    /// A model with GPT-2's initialisation: N(0, 0.02) weights, residual projections scaled by 1/√(2·n_layer).
    pub fn new(config: GptConfig, seed: u64) -> Result<Gpt> {
        let mut model = Gpt::zeros(config)?;
        let mut rng = Rng::new(seed);
        let std = model.config.initializer_range;
        let proj_std = std / (2.0 * model.config.n_layer as f32).sqrt();
        for spec in model.layout.specs() {
            let p = &mut model.params[spec.range()];
            if spec.name.ends_with("ln_1.weight")
                || spec.name.ends_with("ln_2.weight")
                || spec.name.ends_with("ln_f.weight")
            {
                p.fill(1.0);
            } else if spec.shape.len() >= 2 {
                let s = if spec.name.ends_with("c_proj.weight") {
                    proj_std
                } else {
                    std
                };
                p.iter_mut().for_each(|v| *v = rng.normal() * s);
            }
        }
        Ok(model)
    }

    fn zeros(config: GptConfig) -> Result<Gpt> {
        config.validate()?;
        let gelu = config.gelu()?;
        let (v, c, t) = (config.vocab_size, config.n_embd, config.n_positions);
        let mut l = ParamLayout::default();
        let wte = l.push("transformer.wte.weight", &[v, c]);
        let wpe = l.push("transformer.wpe.weight", &[t, c]);
        let blocks = (0..config.n_layer)
            .map(|i| {
                let p = |n: &str| format!("transformer.h.{i}.{n}");
                BlockIdx {
                    ln1_w: l.push(p("ln_1.weight"), &[c]),
                    ln1_b: l.push(p("ln_1.bias"), &[c]),
                    qkv_w: l.push(p("attn.c_attn.weight"), &[c, 3 * c]),
                    qkv_b: l.push(p("attn.c_attn.bias"), &[3 * c]),
                    attn_proj_w: l.push(p("attn.c_proj.weight"), &[c, c]),
                    attn_proj_b: l.push(p("attn.c_proj.bias"), &[c]),
                    ln2_w: l.push(p("ln_2.weight"), &[c]),
                    ln2_b: l.push(p("ln_2.bias"), &[c]),
                    fc_w: l.push(p("mlp.c_fc.weight"), &[c, 4 * c]),
                    fc_b: l.push(p("mlp.c_fc.bias"), &[4 * c]),
                    mlp_proj_w: l.push(p("mlp.c_proj.weight"), &[4 * c, c]),
                    mlp_proj_b: l.push(p("mlp.c_proj.bias"), &[c]),
                }
            })
            .collect();
        let lnf_w = l.push("transformer.ln_f.weight", &[c]);
        let lnf_b = l.push("transformer.ln_f.bias", &[c]);
        let head = if config.tie_word_embeddings {
            wte.clone()
        } else {
            l.push(HEAD_NAME, &[v, c])
        };
        let params = vec![0.0; l.total()];
        Ok(Gpt {
            config,
            layout: l,
            params,
            idx: Index {
                wte,
                wpe,
                blocks,
                lnf_w,
                lnf_b,
                head,
            },
            gelu,
        })
    }

    /// Loads `config.json` + `model.safetensors` from a directory written by primer or by Hugging Face
    /// (`GPT2LMHeadModel` or `GPT2Model`, with or without the `transformer.` prefix).
    /// A head saved apart from `wte` (`lm_head.weight`) is used even where the config ties the two, as
    /// transformers does, when its values differ.
    pub fn load(dir: &Path) -> Result<Gpt> {
        let mut config: GptConfig =
            hf::read_model_config(dir, "gpt2", GptConfig::validate_for_load)?;
        let file = TensorFile::open(&dir.join("model.safetensors"))?;
        file.check_layers("h", config.n_layer, "n_layer")?;
        let rename = |name: &str| {
            let bare = name.strip_prefix("transformer.").unwrap_or(name);
            vec![name.to_string(), bare.to_string()]
        };
        if config.tie_word_embeddings
            && file.separate_head(&rename(HEAD_NAME), &rename("transformer.wte.weight"))?
        {
            config.tie_word_embeddings = false;
        }
        let mut model = Gpt::zeros(config)?;
        file.load_into(&model.layout, &mut model.params, &rename)?;
        Ok(model)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (atomically, file by file). `metadata` goes
    /// into the safetensors header (the trainer records its step there).
    pub fn save(&self, dir: &Path, metadata: &[(&str, String)]) -> Result<()> {
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

    /// Checks a training batch: ids and targets in the vocabulary, sequences within the context.
    fn check_batch(&self, a: &GptActs, ids: &[u32], targets: &[i32]) -> Result<()> {
        let v = self.config.vocab_size as i32;
        if a.seq > self.config.n_positions
            || ids.len() != a.batch * a.seq
            || targets.len() != ids.len()
        {
            return Err(Error::Config(format!(
                "a batch of {} ids and {} targets does not fit [batch {}, seq {}] within n_positions {}",
                ids.len(),
                targets.len(),
                a.batch,
                a.seq,
                self.config.n_positions
            )));
        }
        if let Some(t) = targets
            .iter()
            .find(|&&t| t != xent::IGNORE && !(0..v).contains(&t))
        {
            return Err(Error::Config(format!(
                "target {t} is outside the vocabulary of {v}"
            )));
        }
        self.check_ids(ids)
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().find(|&&i| i as usize >= self.config.vocab_size) {
            Some(bad) => Err(Error::Config(format!(
                "token id {bad} is outside the model's vocabulary of {}",
                self.config.vocab_size
            ))),
            None => Ok(()),
        }
    }
}

/// Activations of one training (or evaluation) pass over a `[batch, seq]` block: what the backward pass needs,
/// per layer, plus scratch buffers shared by all layers. Allocated once and reused every step.
pub struct GptActs {
    batch: usize,
    seq: usize,
    /// Residual stream entering each block, and leaving the last: `(n_layer + 1) × [B·T, C]`.
    resid: Vec<f32>,
    /// Residual stream after each block's attention: `n_layer × [B·T, C]`.
    resid_mid: Vec<f32>,
    ln1_stats: Vec<f32>,
    ln2_stats: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    lse: Vec<f32>,
    /// The MLP's first linear layer, before its GELU: `n_layer × [B·T, 4C]`. The GELU itself is not kept but
    /// recomputed in the backward pass (in `wide`), which saves a quarter of the activations for about 1 % of a
    /// step's time.
    fc: Vec<f32>,
    lnf_out: Vec<f32>,
    lnf_stats: Vec<f32>,
    // scratch, shared across layers
    ln_out: Vec<f32>,
    wide: Vec<f32>,
    tmp_wide: Vec<f32>,
    dresid: Vec<f32>,
    dln: Vec<f32>,
    dqkv: Vec<f32>,
    logits: Vec<f32>,
}

impl GptActs {
    pub fn new(cfg: &GptConfig, batch: usize, seq: usize) -> GptActs {
        let e = Vec::new;
        let mut a = GptActs {
            batch: 0,
            seq: 0,
            resid: e(),
            resid_mid: e(),
            ln1_stats: e(),
            ln2_stats: e(),
            qkv: e(),
            att: e(),
            lse: e(),
            fc: e(),
            lnf_out: e(),
            lnf_stats: e(),
            ln_out: e(),
            wide: e(),
            tmp_wide: e(),
            dresid: e(),
            dln: e(),
            dqkv: e(),
            logits: e(),
        };
        a.resize(cfg, batch, seq);
        a
    }

    /// Re-shapes the buffers for `[batch, seq]` batches, keeping their allocations.
    pub fn resize(&mut self, cfg: &GptConfig, batch: usize, seq: usize) {
        let (n, c, l) = (batch * seq, cfg.n_embd, cfg.n_layer);
        (self.batch, self.seq) = (batch, seq);
        for (v, k) in [
            (&mut self.resid, (l + 1) * n * c),
            (&mut self.resid_mid, l * n * c),
            (&mut self.ln1_stats, l * 2 * n),
            (&mut self.ln2_stats, l * 2 * n),
            (&mut self.qkv, l * n * 3 * c),
            (&mut self.att, l * n * c),
            (&mut self.lse, l * batch * cfg.n_head * seq),
            (&mut self.fc, l * n * 4 * c),
            (&mut self.lnf_out, n * c),
            (&mut self.lnf_stats, 2 * n),
            (&mut self.ln_out, n * c),
            (&mut self.wide, n * 4 * c),
            (&mut self.tmp_wide, n * 4 * c),
            (&mut self.dresid, n * c),
            (&mut self.dln, n * c),
            (&mut self.dqkv, n * 3 * c),
            (
                &mut self.logits,
                head_chunk(n, cfg.vocab_size) * cfg.vocab_size,
            ),
        ] {
            v.resize(k, 0.0);
        }
    }
}

impl Gpt {
    fn attn_shape(
        &self,
        batch: usize,
        tq: usize,
        tk: usize,
        offset: usize,
    ) -> attention::Shape<'static> {
        attention::Shape {
            batch,
            heads: self.config.n_head,
            head_dim: self.config.head_dim(),
            tq,
            tk,
            causal: Some(offset),
            key_lens: None,
            scale: if self.config.scale_attn_weights {
                1.0 / (self.config.head_dim() as f32).sqrt()
            } else {
                1.0
            },
            dropout: None,
            starts: None,
        }
    }

    /// Runs the blocks and the final LayerNorm over `ids` (`[batch, seq]`), saving activations into `a`.
    /// `train_seed` turns dropout on.
    fn forward_hidden(&self, a: &mut GptActs, ids: &[u32], train_seed: Option<u64>) {
        let cfg = &self.config;
        let (bt, c, t) = (a.batch * a.seq, cfg.n_embd, a.seq);
        let eps = cfg.layer_norm_epsilon;
        let p = &self.params;
        let drop = DropSeeds(train_seed);
        let n = bt * c;
        embedding::forward(
            &mut a.resid[..n],
            ids,
            &p[self.idx.wte.clone()],
            Some(&p[self.idx.wpe.clone()]),
            t,
            0,
            c,
        );
        if let Some((pr, s)) = drop.site(cfg.embd_pdrop, cfg.n_layer, 0) {
            dropout::apply(&mut a.resid[..n], pr, s);
        }
        let lin = |d_in, d_out| Dims {
            rows: bt,
            d_in,
            d_out,
            layout: Layout::InOut,
        };
        for (l, b) in self.idx.blocks.iter().enumerate() {
            let (x_in, rest) = a.resid[l * n..].split_at_mut(n);
            let x_mid = layer_mut(&mut a.resid_mid, l, n);
            let stats = layer_mut(&mut a.ln1_stats, l, 2 * bt).split_at_mut(bt);
            let qkv = layer_mut(&mut a.qkv, l, 3 * n);
            let (ln, lin_w) = ((&b.ln1_w, &b.ln1_b), (&b.qkv_w, &b.qkv_b));
            self.ln_linear_forward(x_in, stats, ln, lin_w, &mut a.ln_out, qkv, lin(c, 3 * c));
            let att = layer_mut(&mut a.att, l, n);
            let lse = layer_mut(&mut a.lse, l, a.batch * cfg.n_head * t);
            let sh = attention::Shape {
                dropout: drop.site(cfg.attn_pdrop, l, 1),
                ..self.attn_shape(a.batch, t, t, 0)
            };
            let (qv, kv, vv) = (
                View::packed(t, 3 * c, 0),
                View::packed(t, 3 * c, c),
                View::packed(t, 3 * c, 2 * c),
            );
            attention::forward(att, View::packed(t, c, 0), lse, qkv, qv, qkv, kv, vv, &sh);
            residual_branch(
                x_mid,
                x_in,
                &mut a.tmp_wide,
                att,
                (&p[b.attn_proj_w.clone()], &p[b.attn_proj_b.clone()]),
                lin(c, c),
                drop.site(cfg.resid_pdrop, l, 2),
            );
            let stats = layer_mut(&mut a.ln2_stats, l, 2 * bt).split_at_mut(bt);
            let fc = layer_mut(&mut a.fc, l, 4 * n);
            let (ln, lin_w) = ((&b.ln2_w, &b.ln2_b), (&b.fc_w, &b.fc_b));
            self.ln_linear_forward(x_mid, stats, ln, lin_w, &mut a.ln_out, fc, lin(c, 4 * c));
            gelu::forward(&mut a.wide, fc, self.gelu);
            residual_branch(
                &mut rest[..n],
                x_mid,
                &mut a.tmp_wide,
                &a.wide[..4 * n],
                (&p[b.mlp_proj_w.clone()], &p[b.mlp_proj_b.clone()]),
                lin(4 * c, c),
                drop.site(cfg.resid_pdrop, l, 3),
            );
        }
        let x_last = layer(&a.resid, cfg.n_layer, n);
        let (mf, rf) = a.lnf_stats.split_at_mut(bt);
        layernorm::forward(
            &mut a.lnf_out,
            mf,
            rf,
            x_last,
            &p[self.idx.lnf_w.clone()],
            &p[self.idx.lnf_b.clone()],
            c,
            eps,
        );
    }

    /// Mean cross-entropy of next-token prediction over the non-ignored `targets`, without gradients.
    pub fn loss(&self, a: &mut GptActs, ids: &[u32], targets: &[i32]) -> Result<f64> {
        self.check_batch(a, ids, targets)?;
        self.forward_hidden(a, ids, None);
        let (sum, count) = self.head_loss(a, targets, None);
        Ok(sum / count.max(1) as f64)
    }

    /// Forward and backward over one micro-batch: adds `grad_scale ×` the gradient of the summed loss to
    /// `grads` (pass `1 / (tokens · accumulation steps)` for a mean), returns the mean loss of this micro-batch.
    /// `train_seed` seeds dropout for this micro-step.
    pub fn forward_backward(
        &self,
        a: &mut GptActs,
        ids: &[u32],
        targets: &[i32],
        grads: &mut [f32],
        grad_scale: f32,
        train_seed: u64,
    ) -> Result<f64> {
        self.check_batch(a, ids, targets)?;
        let seed = Some(train_seed);
        self.forward_hidden(a, ids, seed);
        let (sum, count) = self.head_loss(a, targets, Some((grads, grad_scale)));
        self.backward_blocks(a, ids, grads, DropSeeds(seed));
        Ok(sum / count.max(1) as f64)
    }

    /// Final hidden states (after `ln_f`, `[B·T, C]`) of `ids`, for a task head; `train_seed` turns dropout on.
    pub fn encode<'a>(
        &self,
        a: &'a mut GptActs,
        ids: &[u32],
        train_seed: Option<u64>,
    ) -> Result<&'a [f32]> {
        let targets = vec![xent::IGNORE; ids.len()];
        self.check_batch(a, ids, &targets)?;
        self.forward_hidden(a, ids, train_seed);
        Ok(&a.lnf_out)
    }

    /// Backpropagates `dhidden` (the gradient of [`Gpt::encode`]'s output) through the blocks and embeddings,
    /// adding the parameter gradients into `grads`. `train_seed` must be the forward pass's.
    pub fn encode_backward(
        &self,
        a: &mut GptActs,
        ids: &[u32],
        dhidden: &[f32],
        grads: &mut [f32],
        train_seed: Option<u64>,
    ) -> Result<()> {
        if dhidden.len() != a.dln.len() || grads.len() != self.params.len() {
            return Err(Error::Config(format!(
                "GPT backward given {} hidden gradients and {} parameter gradients; expected {} and {}",
                dhidden.len(),
                grads.len(),
                a.dln.len(),
                self.params.len()
            )));
        }
        a.dln.copy_from_slice(dhidden);
        self.backward_blocks(a, ids, grads, DropSeeds(train_seed));
        Ok(())
    }

    /// Appends a zero tensor `name` of `shape` to the parameter buffer (a fine-tuning head's weights) and returns
    /// its range. It is saved with the model; the language model ignores it.
    pub fn push_tensor(&mut self, name: &str, shape: &[usize]) -> Range<usize> {
        let r = self.layout.push(name, shape);
        self.params.resize(self.layout.total(), 0.0);
        r
    }

    /// Chunked head + cross-entropy. With `grads`, also backpropagates through the head into `a.dln`
    /// (as the gradient of the final LayerNorm's output) and the head weight. Returns (loss sum, target count).
    fn head_loss(
        &self,
        a: &mut GptActs,
        targets: &[i32],
        grads: Option<(&mut [f32], f32)>,
    ) -> (f64, usize) {
        let (c, v) = (self.config.n_embd, self.config.vocab_size);
        let rows = a.batch * a.seq;
        let count = targets.iter().filter(|&&t| t != xent::IGNORE).count();
        let chunk = head_chunk(rows, v);
        let w = &self.params[self.idx.head.clone()];
        let mut sum = 0.0;
        let mut grads = grads;
        for r0 in (0..rows).step_by(chunk) {
            let r1 = (r0 + chunk).min(rows);
            let d = Dims {
                rows: r1 - r0,
                d_in: c,
                d_out: v,
                layout: Layout::OutIn,
            };
            let x = &a.lnf_out[r0 * c..r1 * c];
            let logits = &mut a.logits[..(r1 - r0) * v];
            matmul::forward(logits, x, w, None, d, false);
            let scale = grads.as_ref().map(|(_, s)| *s);
            sum += xent::forward_backward(logits, &targets[r0..r1], v, scale);
            if let Some((g, _)) = grads.as_mut() {
                let dw = &mut g[self.idx.head.clone()];
                matmul::backward(
                    Some(&mut a.dln[r0 * c..r1 * c]),
                    false,
                    dw,
                    None,
                    logits,
                    x,
                    w,
                    d,
                );
            }
        }
        (sum, count)
    }

    /// `out = Linear(LayerNorm(x))`, saving the LayerNorm's mean and 1/std; the normalised input is left in
    /// `ln_out`. [`Gpt::ln_linear_backward`] is its backward.
    fn ln_linear_forward(
        &self,
        x: &[f32],
        (mean, rstd): (&mut [f32], &mut [f32]),
        (ln_w, ln_b): (&Range<usize>, &Range<usize>),
        (w, bias): (&Range<usize>, &Range<usize>),
        ln_out: &mut [f32],
        out: &mut [f32],
        d: Dims,
    ) {
        let p = &self.params;
        let eps = self.config.layer_norm_epsilon;
        layernorm::forward(
            ln_out,
            mean,
            rstd,
            x,
            &p[ln_w.clone()],
            &p[ln_b.clone()],
            d.d_in,
            eps,
        );
        matmul::forward(out, ln_out, &p[w.clone()], Some(&p[bias.clone()]), d, false);
    }

    /// Backward through `x → LayerNorm → Linear` given the Linear's output gradient `dout`: recomputes the
    /// LayerNorm output from its saved statistics, accumulates the weight gradients, and adds the gradient
    /// with respect to `x` to `dresid` (the residual stream the LayerNorm reads).
    fn ln_linear_backward(
        &self,
        g: &mut [f32],
        x: &[f32],
        (mean, rstd): (&[f32], &[f32]),
        (ln_w, ln_b): (&Range<usize>, &Range<usize>),
        (w, bias): (&Range<usize>, &Range<usize>),
        dout: &[f32],
        (ln_out, dln, dresid): (&mut [f32], &mut [f32], &mut [f32]),
        d: Dims,
    ) {
        let p = &self.params;
        layernorm::apply(
            ln_out,
            x,
            &p[ln_w.clone()],
            &p[ln_b.clone()],
            mean,
            rstd,
            d.d_in,
        );
        let (dw, db) = split2(g, w.clone(), bias.clone());
        matmul::backward(
            Some(dln),
            false,
            dw,
            Some(db),
            dout,
            ln_out,
            &p[w.clone()],
            d,
        );
        let (dw, db) = split2(g, ln_w.clone(), ln_b.clone());
        layernorm::backward(dresid, dw, db, dln, x, &p[ln_w.clone()], mean, rstd);
    }

    fn backward_blocks(&self, a: &mut GptActs, ids: &[u32], g: &mut [f32], drop: DropSeeds) {
        let cfg = &self.config;
        let (bt, c, t) = (a.batch * a.seq, cfg.n_embd, a.seq);
        let n = bt * c;
        let p = &self.params;
        let i = &self.idx;
        a.dresid.fill(0.0);
        let (mf, rf) = a.lnf_stats.split_at(bt);
        let (dw, db) = split2(g, i.lnf_w.clone(), i.lnf_b.clone());
        layernorm::backward(
            &mut a.dresid,
            dw,
            db,
            &a.dln,
            layer(&a.resid, cfg.n_layer, n),
            &p[i.lnf_w.clone()],
            mf,
            rf,
        );
        let lin = |d_in, d_out| Dims {
            rows: bt,
            d_in,
            d_out,
            layout: Layout::InOut,
        };
        for (l, b) in i.blocks.iter().enumerate().rev() {
            let x_in = layer(&a.resid, l, n);
            let x_mid = layer(&a.resid_mid, l, n);
            // MLP branch: x_out = x_mid + drop(proj(gelu(fc(ln2(x_mid)))))
            let dbranch = branch_grad(&a.dresid, &mut a.ln_out, drop.site(cfg.resid_pdrop, l, 3));
            let fc = layer(&a.fc, l, 4 * n);
            gelu::forward(&mut a.wide, fc, self.gelu);
            let (dw, db) = split2(g, b.mlp_proj_w.clone(), b.mlp_proj_b.clone());
            matmul::backward(
                Some(&mut a.tmp_wide),
                false,
                dw,
                Some(db),
                dbranch,
                &a.wide[..4 * n],
                &p[b.mlp_proj_w.clone()],
                lin(4 * c, c),
            );
            gelu::backward(&mut a.wide, fc, &a.tmp_wide, self.gelu);
            let stats = layer(&a.ln2_stats, l, 2 * bt).split_at(bt);
            let scratch = (&mut a.ln_out[..], &mut a.dln[..], &mut a.dresid[..]);
            self.ln_linear_backward(
                g,
                x_mid,
                stats,
                (&b.ln2_w, &b.ln2_b),
                (&b.fc_w, &b.fc_b),
                &a.wide,
                scratch,
                lin(c, 4 * c),
            );
            // attention branch: x_mid = x_in + drop(proj(attn(qkv(ln1(x_in)))))
            let dbranch = branch_grad(&a.dresid, &mut a.ln_out, drop.site(cfg.resid_pdrop, l, 2));
            let att = layer(&a.att, l, n);
            let (dw, db) = split2(g, b.attn_proj_w.clone(), b.attn_proj_b.clone());
            matmul::backward(
                Some(&mut a.tmp_wide),
                false,
                dw,
                Some(db),
                dbranch,
                att,
                &p[b.attn_proj_w.clone()],
                lin(c, c),
            );
            let qkv = layer(&a.qkv, l, 3 * n);
            let sh = attention::Shape {
                dropout: drop.site(cfg.attn_pdrop, l, 1),
                ..self.attn_shape(a.batch, t, t, 0)
            };
            let (qv, kv, vv) = (
                View::packed(t, 3 * c, 0),
                View::packed(t, 3 * c, c),
                View::packed(t, 3 * c, 2 * c),
            );
            attention::backward(
                &mut a.dqkv,
                None,
                (qv, kv, vv),
                &a.tmp_wide[..n],
                att,
                View::packed(t, c, 0),
                layer(&a.lse, l, a.batch * cfg.n_head * t),
                qkv,
                qv,
                qkv,
                kv,
                vv,
                &sh,
            );
            let stats = layer(&a.ln1_stats, l, 2 * bt).split_at(bt);
            let scratch = (&mut a.ln_out[..], &mut a.dln[..], &mut a.dresid[..]);
            self.ln_linear_backward(
                g,
                x_in,
                stats,
                (&b.ln1_w, &b.ln1_b),
                (&b.qkv_w, &b.qkv_b),
                &a.dqkv,
                scratch,
                lin(c, 3 * c),
            );
        }
        if let Some((pr, s)) = drop.site(cfg.embd_pdrop, cfg.n_layer, 0) {
            dropout::apply(&mut a.dresid, pr, s);
        }
        let (dwte, dwpe) = split2(g, i.wte.clone(), i.wpe.clone());
        embedding::backward(dwte, Some(dwpe), &a.dresid, ids, t, c);
    }
}

/// Keys and values of every layer for the tokens seen so far, for generation one token at a time: of one
/// sequence, or of several beams that continue the same prompt (as many rows each).
pub struct KvCache {
    /// Per layer, `[beams, max_len, 2·C]`: keys in the first C columns, values in the last C.
    kv: Vec<Vec<f32>>,
    /// Where [`Self::reorder`] gathers the beams' rows before swapping it with `kv` (empty until then).
    spare: Vec<Vec<f32>>,
    beams: usize,
    len: usize,
    max_len: usize,
}

impl KvCache {
    /// Tokens held per beam.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tokens each beam can hold.
    pub fn capacity(&self) -> usize {
        self.max_len
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Floats of one beam in one layer, and how many of them hold tokens.
    fn beam_sizes(&self) -> (usize, usize) {
        let size = self.kv.first().map_or(0, |layer| layer.len() / self.beams);
        (size, self.len * size / self.max_len)
    }

    /// Turns a one-sequence cache into `beams` copies of it, each to be continued on its own.
    pub fn repeat(&mut self, beams: usize) {
        assert!(
            self.beams == 1 && beams >= 1,
            "only a one-sequence cache is repeated"
        );
        let (size, used) = self.beam_sizes();
        for layer in &mut self.kv {
            layer.resize(beams * size, 0.0);
            let (first, rest) = layer.split_at_mut(size);
            for beam in rest.chunks_exact_mut(size) {
                beam[..used].copy_from_slice(&first[..used]);
            }
        }
        self.beams = beams;
    }

    /// Makes beam `i` the continuation of beam `parents[i]` (as it was before this call), for every `i`.
    pub fn reorder(&mut self, parents: &[usize]) {
        assert!(parents.len() == self.beams && parents.iter().all(|&p| p < self.beams));
        if parents.iter().enumerate().all(|(i, &p)| i == p) {
            return;
        }
        let (size, used) = self.beam_sizes();
        self.spare.resize_with(self.kv.len(), Vec::new);
        for (layer, spare) in self.kv.iter_mut().zip(&mut self.spare) {
            spare.resize(layer.len(), 0.0);
            for (beam, &parent) in spare.chunks_exact_mut(size).zip(parents) {
                beam[..used].copy_from_slice(&layer[parent * size..][..used]);
            }
            std::mem::swap(layer, spare);
        }
    }
}

impl Gpt {
    /// A cache for one sequence of up to `capacity` tokens (at most the model's `n_positions`).
    pub fn new_cache(&self, capacity: usize) -> KvCache {
        let c = self.config.n_embd;
        let max_len = capacity.clamp(1, self.config.n_positions.max(1));
        KvCache {
            kv: (0..self.config.n_layer)
                .map(|_| vec![0.0; max_len * 2 * c])
                .collect(),
            spare: Vec::new(),
            beams: 1,
            len: 0,
            max_len,
        }
    }

    /// Feeds `ids` after the tokens already in `cache`, the same number to each of its beams (beam after beam),
    /// and returns the logits of each beam's last one (`[beams, vocab]`). Errors when the cache would exceed its
    /// capacity.
    pub fn step(&self, cache: &mut KvCache, ids: &[u32]) -> Result<Vec<f32>> {
        self.check_ids(ids)?;
        let cfg = &self.config;
        let (beams, c, pos0) = (cache.beams, cfg.n_embd, cache.len);
        let n = ids.len() / beams;
        if n * beams != ids.len() {
            return Err(Error::Config(format!(
                "{} ids cannot be shared out equally over {beams} beams",
                ids.len()
            )));
        }
        if n == 0 || pos0 + n > cache.max_len {
            return Err(Error::Config(format!(
                "context of {} tokens exceeds the cache's capacity ({}; the model's n_positions is {})",
                pos0 + n,
                cache.max_len,
                cfg.n_positions
            )));
        }
        let rows = beams * n;
        let p = &self.params;
        let eps = cfg.layer_norm_epsilon;
        let lin = |d_in, d_out| Dims {
            rows,
            d_in,
            d_out,
            layout: Layout::InOut,
        };
        let mut x = vec![0.0; rows * c];
        let mut h = vec![0.0; rows * c];
        let mut qkv = vec![0.0; rows * 3 * c];
        let mut att = vec![0.0; rows * c];
        let mut wide = vec![0.0; rows * 4 * c];
        let mut act = vec![0.0; rows * 4 * c];
        let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
        embedding::forward(
            &mut x,
            ids,
            &p[self.idx.wte.clone()],
            Some(&p[self.idx.wpe.clone()]),
            n,
            pos0,
            c,
        );
        for (l, b) in self.idx.blocks.iter().enumerate() {
            let (ln, w) = ((&b.ln1_w, &b.ln1_b), (&b.qkv_w, &b.qkv_b));
            let stats = (&mut mean[..], &mut rstd[..]);
            self.ln_linear_forward(&x, stats, ln, w, &mut h, &mut qkv, lin(c, 3 * c));
            let kv = &mut cache.kv[l];
            for (r, row) in qkv.chunks_exact(3 * c).enumerate() {
                let at = ((r / n) * cache.max_len + pos0 + r % n) * 2 * c;
                kv[at..at + 2 * c].copy_from_slice(&row[c..]);
            }
            let kv_view = |col| View {
                offset: col,
                row_stride: 2 * c,
                batch_stride: cache.max_len * 2 * c,
            };
            let sh = self.attn_shape(beams, n, pos0 + n, pos0);
            attention::forward(
                &mut att,
                View::packed(n, c, 0),
                &mut [],
                &qkv,
                View::packed(n, 3 * c, 0),
                kv,
                kv_view(0),
                kv_view(c),
                &sh,
            );
            matmul::forward(
                &mut x,
                &att,
                &p[b.attn_proj_w.clone()],
                Some(&p[b.attn_proj_b.clone()]),
                lin(c, c),
                true,
            );
            let (ln, w) = ((&b.ln2_w, &b.ln2_b), (&b.fc_w, &b.fc_b));
            let stats = (&mut mean[..], &mut rstd[..]);
            self.ln_linear_forward(&x, stats, ln, w, &mut h, &mut wide, lin(c, 4 * c));
            gelu::forward(&mut act, &wide, self.gelu);
            matmul::forward(
                &mut x,
                &act,
                &p[b.mlp_proj_w.clone()],
                Some(&p[b.mlp_proj_b.clone()]),
                lin(4 * c, c),
                true,
            );
        }
        cache.len += n;
        // each beam's last row
        let last: Vec<f32> = x
            .chunks_exact(n * c)
            .flat_map(|beam| &beam[(n - 1) * c..])
            .copied()
            .collect();
        layernorm::forward(
            &mut h[..beams * c],
            &mut mean[..beams],
            &mut rstd[..beams],
            &last,
            &p[self.idx.lnf_w.clone()],
            &p[self.idx.lnf_b.clone()],
            c,
            eps,
        );
        let mut logits = vec![0.0; beams * cfg.vocab_size];
        let d = Dims {
            rows: beams,
            d_in: c,
            d_out: cfg.vocab_size,
            layout: Layout::OutIn,
        };
        matmul::forward(
            &mut logits,
            &h[..beams * c],
            &p[self.idx.head.clone()],
            None,
            d,
            false,
        );
        Ok(logits)
    }

    /// Logits for every position of `ids` (`[batch, seq]` → `[batch, seq, vocab]`), in evaluation mode.
    pub fn logits(&self, ids: &[u32], batch: usize) -> Result<Vec<f32>> {
        self.check_ids(ids)?;
        let seq = ids.len() / batch.max(1);
        if seq == 0 || seq * batch != ids.len() || seq > self.config.n_positions {
            return Err(Error::Config(format!(
                "{} ids do not form {batch} sequences of at most {} tokens",
                ids.len(),
                self.config.n_positions
            )));
        }
        let mut a = GptActs::new(&self.config, batch, seq);
        self.forward_hidden(&mut a, ids, None);
        let (c, v) = (self.config.n_embd, self.config.vocab_size);
        let mut out = vec![0.0; batch * seq * v];
        let d = Dims {
            rows: batch * seq,
            d_in: c,
            d_out: v,
            layout: Layout::OutIn,
        };
        matmul::forward(
            &mut out,
            &a.lnf_out,
            &self.params[self.idx.head.clone()],
            None,
            d,
            false,
        );
        Ok(out)
    }
}

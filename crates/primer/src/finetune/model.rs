//! A pretrained encoder with a task head on top, trained whole. The heads, as in Hugging Face:
//!
//! | task | BERT | GPT |
//! |---|---|---|
//! | classify | pooler (tanh over `[CLS]`) → dropout → `classifier` | last real token → `score` (no bias) |
//! | ner | each token → dropout → `classifier` | — |
//! | qa | each token → `qa_outputs` (start, end) | — |
//! | intent-slot | pooler → dropout → `intent_classifier`; each token → dropout → `slot_classifier` | — |
//!
//! Head tensors are appended to the encoder's flat parameter buffer, so one AdamW pass updates everything and
//! one safetensors file holds the model. Losses are means, as Hugging Face's: over the batch for sequence labels,
//! over the labelled tokens for token labels, `(start + end) / 2` for spans, and α·intent + (1 − α)·slot for the
//! joint task.

use crate::engine::matmul::{self, Dims, Layout};
use crate::engine::params::{split2, ParamLayout};
use crate::engine::rng::{derive_seed, Rng};
use crate::engine::{dropout, simd, xent};
use crate::error::{Error, Result};
use crate::hf::TensorFile;
use crate::models::bert::{Bert, BertActs, BertInput, Heads};
use crate::models::common::{gather_rows, scatter_add_rows};
use crate::models::gpt::{Gpt, GptActs};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::Path;

/// The fine-tuning tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    Classify,
    Ner,
    Qa,
    IntentSlot,
}

impl Task {
    pub fn name(&self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Ner => "ner",
            Task::Qa => "qa",
            Task::IntentSlot => "intent-slot",
        }
    }
}

/// The pretrained network under the head.
#[derive(Clone, Debug)]
pub enum Backbone {
    Bert(Bert),
    Gpt(Gpt),
}

impl Backbone {
    pub fn kind(&self) -> &'static str {
        match self {
            Backbone::Bert(_) => "bert",
            Backbone::Gpt(_) => "gpt",
        }
    }

    pub fn params(&self) -> &[f32] {
        match self {
            Backbone::Bert(m) => &m.params,
            Backbone::Gpt(m) => &m.params,
        }
    }

    pub fn params_mut(&mut self) -> &mut Vec<f32> {
        match self {
            Backbone::Bert(m) => &mut m.params,
            Backbone::Gpt(m) => &mut m.params,
        }
    }

    pub fn layout(&self) -> &ParamLayout {
        match self {
            Backbone::Bert(m) => &m.layout,
            Backbone::Gpt(m) => &m.layout,
        }
    }

    /// The longest sequence the model takes (BERT's `max_position_embeddings`, GPT-2's `n_positions`).
    pub fn max_positions(&self) -> usize {
        match self {
            Backbone::Bert(m) => m.config.max_position_embeddings,
            Backbone::Gpt(m) => m.config.n_positions,
        }
    }

    fn hidden_size(&self) -> usize {
        match self {
            Backbone::Bert(m) => m.config.hidden_size,
            Backbone::Gpt(m) => m.config.n_embd,
        }
    }

    fn init_std(&self) -> f32 {
        match self {
            Backbone::Bert(m) => m.config.initializer_range,
            Backbone::Gpt(m) => m.config.initializer_range,
        }
    }

    /// Dropout before the classifiers (BERT's hidden dropout; GPT-2's classifier has none).
    fn head_dropout(&self) -> f32 {
        match self {
            Backbone::Bert(m) => m.config.hidden_dropout_prob,
            Backbone::Gpt(_) => 0.0,
        }
    }

    fn push_tensor(&mut self, name: &str, shape: &[usize]) -> Range<usize> {
        match self {
            Backbone::Bert(m) => m.push_tensor(name, shape),
            Backbone::Gpt(m) => m.push_tensor(name, shape),
        }
    }

    pub fn save(&self, dir: &Path, metadata: &[(&str, String)]) -> Result<()> {
        match self {
            Backbone::Bert(m) => m.save(dir, metadata),
            Backbone::Gpt(m) => m.save(dir, metadata),
        }
    }
}

/// The BERT heads a task keeps from pretraining: the pooler for sequence labels, never the MLM or NSP heads.
pub fn bert_heads(task: Task) -> Heads {
    Heads {
        pooler: matches!(task, Task::Classify | Task::IntentSlot),
        mlm: false,
        nsp: false,
    }
}

/// How many outputs each head has: `seq` per sequence (classes or intents), `tok` per token (tags, or 2 for a
/// span's start and end). Zero means no such head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadSizes {
    pub seq: usize,
    pub tok: usize,
}

impl HeadSizes {
    pub fn for_task(task: Task, labels: usize, slot_labels: usize) -> HeadSizes {
        match task {
            Task::Classify => HeadSizes {
                seq: labels,
                tok: 0,
            },
            Task::Ner => HeadSizes {
                seq: 0,
                tok: labels,
            },
            Task::Qa => HeadSizes { seq: 0, tok: 2 },
            Task::IntentSlot => HeadSizes {
                seq: labels,
                tok: slot_labels,
            },
        }
    }
}

/// A linear layer in the flat buffer (`[d_out, d_in]` weight, as PyTorch).
#[derive(Clone, Debug)]
struct Linear {
    w: Range<usize>,
    b: Option<Range<usize>>,
    d_in: usize,
    d_out: usize,
}

impl Linear {
    fn dims(&self, rows: usize) -> Dims {
        Dims {
            rows,
            d_in: self.d_in,
            d_out: self.d_out,
            layout: Layout::OutIn,
        }
    }

    fn forward(&self, p: &[f32], x: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.d_in;
        let mut out = vec![0.0; rows * self.d_out];
        let bias = self.b.as_ref().map(|b| &p[b.clone()]);
        matmul::forward(
            &mut out,
            x,
            &p[self.w.clone()],
            bias,
            self.dims(rows),
            false,
        );
        out
    }

    /// Adds the weight (and bias) gradients into `g`; returns the input gradient.
    fn backward(&self, p: &[f32], g: &mut [f32], x: &[f32], dout: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.d_in;
        let mut dx = vec![0.0; x.len()];
        let d = self.dims(rows);
        match &self.b {
            Some(b) => {
                let (dw, db) = split2(g, self.w.clone(), b.clone());
                matmul::backward(
                    Some(&mut dx),
                    false,
                    dw,
                    Some(db),
                    dout,
                    x,
                    &p[self.w.clone()],
                    d,
                );
            }
            None => {
                let dw = &mut g[self.w.clone()];
                matmul::backward(
                    Some(&mut dx),
                    false,
                    dw,
                    None,
                    dout,
                    x,
                    &p[self.w.clone()],
                    d,
                );
            }
        }
        dx
    }
}

/// A padded batch with its targets. `ids`/`type_ids` are `[batch, seq]`; row `b` has `lens[b]` real tokens.
#[derive(Clone, Debug, Default)]
pub struct TaskBatch {
    pub batch: usize,
    pub seq: usize,
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub lens: Vec<usize>,
    /// `[batch]`: class or intent ids (−100 = none).
    pub seq_labels: Vec<i32>,
    /// `[batch·seq]`: tag ids (−100 on continuation pieces, special tokens and padding).
    pub tok_labels: Vec<i32>,
    /// `[batch]`: answer start and end token positions (QA).
    pub starts: Vec<i32>,
    pub ends: Vec<i32>,
}

impl TaskBatch {
    fn bert_input(&self) -> BertInput<'_> {
        BertInput {
            batch: self.batch,
            seq: self.seq,
            ids: &self.ids,
            type_ids: &self.type_ids,
            lens: &self.lens,
        }
    }
}

/// What one pass gives: the batch's loss (the objective above) and the logits (`[batch, seq_outputs]` and
/// `[batch·seq, tok_outputs]`).
#[derive(Clone, Debug, Default)]
pub struct TaskOutput {
    pub loss: f64,
    pub seq_logits: Vec<f32>,
    pub tok_logits: Vec<f32>,
}

/// Activation buffers reused from batch to batch (their allocations outlive the batch shapes).
#[derive(Default)]
pub struct Workspace {
    bert: Option<BertActs>,
    gpt: Option<GptActs>,
}

/// A backbone with a task head.
#[derive(Clone, Debug)]
pub struct TaskModel {
    pub backbone: Backbone,
    pub task: Task,
    pub sizes: HeadSizes,
    /// Weight of the intent loss in the joint task.
    pub alpha: f32,
    seq_head: Option<Linear>,
    tok_head: Option<Linear>,
}

impl TaskModel {
    /// Puts a new head (N(0, initializer_range) weights, zero biases; `seed`) on `backbone`.
    pub fn new(backbone: Backbone, task: Task, sizes: HeadSizes, seed: u64) -> Result<TaskModel> {
        let mut m = TaskModel::with_heads(backbone, task, sizes)?;
        let std = m.backbone.init_std();
        let mut rng = Rng::new(derive_seed(seed, &[77]));
        let ranges: Vec<Range<usize>> = [&m.seq_head, &m.tok_head]
            .into_iter()
            .flatten()
            .map(|h| h.w.clone())
            .collect();
        let p = m.backbone.params_mut();
        for r in ranges {
            p[r].iter_mut().for_each(|v| *v = rng.normal() * std);
        }
        Ok(m)
    }

    /// Loads the head's tensors from `file` into a model built by [`TaskModel::with_heads`] (a fine-tuned
    /// checkpoint); a missing tensor is an error naming it.
    pub fn load_head(&mut self, file: &TensorFile) -> Result<()> {
        let names: Vec<String> = self.head_names();
        let layout = self.backbone.layout().clone();
        let params = self.backbone.params_mut();
        for spec in layout.specs().iter().filter(|s| names.contains(&s.name)) {
            if !file.load_spec(spec, params, &|n| vec![n.to_string()])? {
                return Err(Error::format(
                    file.path(),
                    format!(
                        "checkpoint is missing tensor `{}` of the task head",
                        spec.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The model with zero head tensors appended.
    pub fn with_heads(mut backbone: Backbone, task: Task, sizes: HeadSizes) -> Result<TaskModel> {
        let c = backbone.hidden_size();
        let is_gpt = matches!(backbone, Backbone::Gpt(_));
        if is_gpt && task != Task::Classify {
            return Err(Error::Config(format!(
                "the {} task needs a BERT encoder; a GPT can be fine-tuned for classify",
                task.name()
            )));
        }
        let mut linear = |name: &str, d_out: usize, bias: bool| Linear {
            w: backbone.push_tensor(&format!("{name}.weight"), &[d_out, c]),
            b: bias.then(|| backbone.push_tensor(&format!("{name}.bias"), &[d_out])),
            d_in: c,
            d_out,
        };
        let (seq_name, tok_name) = match task {
            Task::Classify if is_gpt => ("score", ""),
            Task::Classify => ("classifier", ""),
            Task::Ner => ("", "classifier"),
            Task::Qa => ("", "qa_outputs"),
            Task::IntentSlot => ("intent_classifier", "slot_classifier"),
        };
        let seq_head = (sizes.seq > 0).then(|| linear(seq_name, sizes.seq, !is_gpt));
        let tok_head = (sizes.tok > 0).then(|| linear(tok_name, sizes.tok, true));
        if seq_head.is_none() && tok_head.is_none() {
            return Err(Error::Config("a task head needs at least one label".into()));
        }
        Ok(TaskModel {
            backbone,
            task,
            sizes,
            alpha: 0.5,
            seq_head,
            tok_head,
        })
    }

    fn head_names(&self) -> Vec<String> {
        let layout = self.backbone.layout();
        [&self.seq_head, &self.tok_head]
            .into_iter()
            .flatten()
            .flat_map(|h| [Some(h.w.start), h.b.as_ref().map(|b| b.start)])
            .flatten()
            .filter_map(|off| layout.specs().iter().find(|s| s.offset == off))
            .map(|s| s.name.clone())
            .collect()
    }

    pub fn num_params(&self) -> usize {
        self.backbone.params().len()
    }

    /// One pass over `x`. With `grads` (training: dropout on, seeded by `seed`), adds the gradient of the loss
    /// into `grads`.
    pub fn forward_backward(
        &self,
        ws: &mut Workspace,
        x: &TaskBatch,
        grads: Option<&mut [f32]>,
        seed: u64,
    ) -> Result<TaskOutput> {
        self.check_batch(x)?;
        match &self.backbone {
            Backbone::Bert(bert) => {
                let inp = x.bert_input();
                let training = grads.is_some();
                let acts = match &mut ws.bert {
                    Some(a) => {
                        a.resize(&bert.config, x.batch, x.seq, training);
                        a
                    }
                    none => none.insert(BertActs::new(&bert.config, x.batch, x.seq, training)),
                };
                let train_seed = training.then_some(seed);
                let hidden = bert.encode(acts, &inp, train_seed)?.to_vec();
                let mut grads = grads;
                let (out, dh) = self.heads(&hidden, x, grads.as_deref_mut(), seed)?;
                if let (Some(g), Some(dh)) = (grads, dh) {
                    bert.encode_backward(acts, &inp, &dh, g, train_seed)?;
                }
                Ok(out)
            }
            Backbone::Gpt(gpt) => {
                let acts = match &mut ws.gpt {
                    Some(a) => {
                        a.resize(&gpt.config, x.batch, x.seq);
                        a
                    }
                    none => none.insert(GptActs::new(&gpt.config, x.batch, x.seq)),
                };
                let train_seed = grads.is_some().then_some(seed);
                let hidden = gpt.encode(acts, &x.ids, train_seed)?.to_vec();
                let mut grads = grads;
                let (out, dh) = self.heads(&hidden, x, grads.as_deref_mut(), seed)?;
                if let (Some(g), Some(dh)) = (grads, dh) {
                    gpt.encode_backward(acts, &x.ids, &dh, g, train_seed)?;
                }
                Ok(out)
            }
        }
    }

    fn check_batch(&self, x: &TaskBatch) -> Result<()> {
        let n = x.batch * x.seq;
        let ok = x.ids.len() == n
            && x.type_ids.len() == n
            && x.lens.len() == x.batch
            && x.lens.iter().all(|&l| (1..=x.seq).contains(&l));
        let label_ok = |v: &[i32], k: usize| {
            v.iter()
                .all(|&t| t == xent::IGNORE || (0..k as i32).contains(&t))
        };
        let heads_ok = match self.task {
            Task::Classify => {
                x.seq_labels.len() == x.batch && label_ok(&x.seq_labels, self.sizes.seq)
            }
            Task::Ner => x.tok_labels.len() == n && label_ok(&x.tok_labels, self.sizes.tok),
            Task::Qa => {
                x.starts.len() == x.batch
                    && x.ends.len() == x.batch
                    && label_ok(&x.starts, x.seq)
                    && label_ok(&x.ends, x.seq)
            }
            Task::IntentSlot => {
                x.seq_labels.len() == x.batch
                    && x.tok_labels.len() == n
                    && label_ok(&x.seq_labels, self.sizes.seq)
                    && label_ok(&x.tok_labels, self.sizes.tok)
            }
        };
        if ok && heads_ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "a {} batch of [{}, {}] has inconsistent ids, lengths or labels",
                self.task.name(),
                x.batch,
                x.seq
            )))
        }
    }

    /// The heads over the final hidden states `[B·T, C]`: the output, and with `grads` the gradient of the
    /// hidden states.
    fn heads(
        &self,
        hidden: &[f32],
        x: &TaskBatch,
        mut grads: Option<&mut [f32]>,
        seed: u64,
    ) -> Result<(TaskOutput, Option<Vec<f32>>)> {
        let c = self.backbone.hidden_size();
        let p = self.backbone.params();
        let training = grads.is_some();
        let drop = if training {
            self.backbone.head_dropout()
        } else {
            0.0
        };
        let mut dh = training.then(|| vec![0.0f32; hidden.len()]);
        let mut out = TaskOutput::default();
        let (w_seq, w_tok) = match self.task {
            Task::IntentSlot => (self.alpha, 1.0 - self.alpha),
            _ => (1.0, 1.0),
        };
        if let Some(head) = &self.seq_head {
            let rows: Vec<usize> = match &self.backbone {
                Backbone::Bert(_) => (0..x.batch).map(|b| b * x.seq).collect(),
                Backbone::Gpt(_) => (0..x.batch).map(|b| b * x.seq + x.lens[b] - 1).collect(),
            };
            let first = gather_rows(hidden, &rows, c);
            let pooled = match &self.backbone {
                Backbone::Bert(bert) => Some(bert.pooler_forward(&first)?),
                Backbone::Gpt(_) => None,
            };
            let mut feat = pooled.clone().unwrap_or_else(|| first.clone());
            let drop_seed = derive_seed(seed, &[101]);
            dropout::apply(&mut feat, drop, drop_seed);
            let mut logits = head.forward(p, &feat);
            out.seq_logits = logits.clone();
            let (sum, n) = weighted_xent(&mut logits, &x.seq_labels, head.d_out, w_seq, training);
            out.loss += w_seq as f64 * sum / n.max(1) as f64;
            if let (Some(g), Some(dh)) = (grads.as_deref_mut(), dh.as_mut()) {
                let mut dfeat = head.backward(p, g, &feat, &logits);
                dropout::apply(&mut dfeat, drop, drop_seed);
                let dfirst = match (&self.backbone, &pooled) {
                    (Backbone::Bert(bert), Some(pooled)) => {
                        bert.pooler_backward(g, &first, pooled, &dfeat)
                    }
                    _ => dfeat,
                };
                scatter_add_rows(dh, &dfirst, &rows, c);
            }
        }
        if let Some(head) = &self.tok_head {
            let span = self.task == Task::Qa;
            let mut feat = hidden.to_vec();
            let drop_seed = derive_seed(seed, &[102]);
            if !span {
                dropout::apply(&mut feat, drop, drop_seed);
            }
            let mut logits = head.forward(p, &feat);
            out.tok_logits = logits.clone();
            if span {
                let (loss, dlogits) = span_loss(&logits, x, training);
                out.loss += loss;
                logits = dlogits;
            } else {
                let (sum, n) =
                    weighted_xent(&mut logits, &x.tok_labels, head.d_out, w_tok, training);
                out.loss += w_tok as f64 * sum / n.max(1) as f64;
            }
            if let (Some(g), Some(dh)) = (grads, dh.as_mut()) {
                let mut dfeat = head.backward(p, g, &feat, &logits);
                if !span {
                    dropout::apply(&mut dfeat, drop, drop_seed);
                }
                simd::add_assign(dh, &dfeat);
            }
        }
        Ok((out, dh))
    }
}

/// Cross-entropy summed over the labelled rows of `logits` (`[_, k]`), and their count. When `grad`, the logits
/// are replaced by the gradient of `weight ×` the mean.
fn weighted_xent(
    logits: &mut [f32],
    targets: &[i32],
    k: usize,
    weight: f32,
    grad: bool,
) -> (f64, usize) {
    let n = targets.iter().filter(|&&t| t != xent::IGNORE).count();
    let scale = grad.then(|| weight / n.max(1) as f32);
    (xent::forward_backward(logits, targets, k, scale), n)
}

/// The QA loss from `[B·T, 2]` logits: for each sequence, softmax over its real positions of the start column
/// against `starts[b]`, likewise for the end; `(mean start loss + mean end loss) / 2`. Returns the loss and (when
/// `grad`) its gradient in the logits' layout.
fn span_loss(logits: &[f32], x: &TaskBatch, grad: bool) -> (f64, Vec<f32>) {
    let (b, t) = (x.batch, x.seq);
    let mut dlogits = vec![0.0; if grad { logits.len() } else { 0 }];
    let mut loss = 0.0;
    for (col, targets) in [(0, &x.starts), (1, &x.ends)] {
        let mut rows = vec![f32::NEG_INFINITY; b * t];
        for s in 0..b {
            for i in 0..x.lens[s] {
                rows[s * t + i] = logits[(s * t + i) * 2 + col];
            }
        }
        let n = targets
            .iter()
            .filter(|&&v| v != xent::IGNORE)
            .count()
            .max(1);
        let scale = grad.then(|| 0.5 / n as f32);
        loss += 0.5 * xent::forward_backward(&mut rows, targets, t, scale) / n as f64;
        if grad {
            for (i, v) in rows.iter().enumerate() {
                dlogits[i * 2 + col] = *v;
            }
        }
    }
    (loss, dlogits)
}

#[cfg(test)]
mod tests;

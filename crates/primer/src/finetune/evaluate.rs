//! Running a task model over a prepared split and scoring its predictions with the task's metric.

use super::data::{Gold, Prepared, TaskInfo};
use super::features::{Feature, QaLimits, TextEncoder};
use super::model::{Task, TaskModel, Workspace};
use crate::engine::xent::argmax;
use crate::error::Result;
use crate::progress::progress_bar;
use crate::tasks::metrics;
use indicatif::ProgressBar;
use std::collections::BTreeMap;

/// The model's raw outputs for one feature: sequence logits, and token logits (`[len, k]`).
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub seq: Vec<f32>,
    pub tok: Vec<f32>,
}

/// Eval-mode outputs for every feature, computed in batches of similar length (order kept), with a progress bar
/// over the features on a terminal when there is more than one batch of them.
pub fn run(
    model: &TaskModel,
    enc: &TextEncoder,
    features: &[Feature],
    batch: usize,
) -> Result<Vec<Outputs>> {
    let bar = if features.len() > batch {
        progress_bar(features.len(), 0)?
    } else {
        ProgressBar::hidden()
    };
    let outs = run_telling(model, enc, features, batch, &|done| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    outs
}

/// [`run`], telling `done` the number of features done after each batch instead of drawing a bar.
pub fn run_telling(
    model: &TaskModel,
    enc: &TextEncoder,
    features: &[Feature],
    batch: usize,
    done: &dyn Fn(usize),
) -> Result<Vec<Outputs>> {
    let mut order: Vec<usize> = (0..features.len()).collect();
    order.sort_by_key(|&i| features[i].ids.len());
    let mut outs = vec![Outputs::default(); features.len()];
    let mut ws = Workspace::default();
    let mut finished = 0;
    for chunk in order.chunks(batch.max(1)) {
        let items: Vec<&Feature> = chunk.iter().map(|&i| &features[i]).collect();
        let x = enc.batch(&items);
        let o = model.forward_backward(&mut ws, &x, None, 0)?;
        let (ks, kt) = (model.sizes.seq, model.sizes.tok);
        for (b, &i) in chunk.iter().enumerate() {
            if ks > 0 {
                outs[i].seq = o.seq_logits[b * ks..(b + 1) * ks].to_vec();
            }
            if kt > 0 {
                let r = b * x.seq * kt..(b * x.seq + x.lens[b]) * kt;
                outs[i].tok = o.tok_logits[r].to_vec();
            }
        }
        finished += chunk.len();
        done(finished);
    }
    Ok(outs)
}

/// The word-level tags predicted for `f` (a word whose pieces were cut off gets `O`).
pub fn word_tags(f: &Feature, tok: &[f32], labels: &[String]) -> Vec<String> {
    let k = labels.len();
    f.word_starts
        .iter()
        .map(|p| match p {
            Some(p) => labels[argmax(&tok[p * k..(p + 1) * k])].clone(),
            None => "O".to_string(),
        })
        .collect()
}

/// The best answer span over the windows of one example: (context byte range, score = start + end logit,
/// probability of the span within its window = p(start) · p(end) over the window's context tokens).
pub fn best_span(
    windows: &[(&Feature, &Outputs)],
    lim: &QaLimits,
) -> Option<((usize, usize), f32, f32)> {
    const TOP: usize = 20;
    let mut best: Option<((usize, usize), f32, f32)> = None;
    for (f, o) in windows {
        let n = f.ids.len();
        let logit = |i: usize, col: usize| o.tok[i * 2 + col];
        let ctx: Vec<usize> = (0..n).filter(|&i| f.offsets[i].is_some()).collect();
        let lse = |col: usize| {
            let m = ctx
                .iter()
                .map(|&i| logit(i, col))
                .fold(f32::NEG_INFINITY, f32::max);
            m + ctx
                .iter()
                .map(|&i| (logit(i, col) - m).exp())
                .sum::<f32>()
                .ln()
        };
        let (lse_s, lse_e) = (lse(0), lse(1));
        let top = |col: usize| {
            let mut v = ctx.clone();
            v.sort_by(|&a, &b| logit(b, col).total_cmp(&logit(a, col)));
            v.truncate(TOP);
            v
        };
        let (starts, ends) = (top(0), top(1));
        for &s in &starts {
            for &e in &ends {
                if e < s || e - s + 1 > lim.max_answer_len {
                    continue;
                }
                let score = logit(s, 0) + logit(e, 1);
                if best.is_none_or(|(_, b, _)| score > b) {
                    let (Some((a, _)), Some((_, z))) = (f.offsets[s], f.offsets[e]) else {
                        continue;
                    };
                    best = Some(((a, z), score, (score - lse_s - lse_e).exp()));
                }
            }
        }
    }
    best
}

/// The task's metrics of `outs` against `prep`'s gold answers, as fractions in [0, 1].
pub fn score(info: &TaskInfo, prep: &Prepared, outs: &[Outputs]) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let feats = &prep.features;
    match &prep.gold {
        Gold::Classes(gold) => {
            let pred: Vec<usize> = outs.iter().map(|o| argmax(&o.seq)).collect();
            let s = metrics::classification(&pred, gold, info.labels.len());
            m.insert("accuracy".into(), s.accuracy);
            m.insert("macro_f1".into(), s.macro_f1);
        }
        Gold::Tags(gold) => {
            let pred: Vec<Vec<String>> = feats
                .iter()
                .zip(outs)
                .map(|(f, o)| word_tags(f, &o.tok, &info.labels))
                .collect();
            let s = metrics::entity_scores(&pred, gold);
            m.insert("precision".into(), s.precision);
            m.insert("recall".into(), s.recall);
            m.insert("f1".into(), s.f1);
        }
        Gold::Joint { intents, slots } => {
            let pred_int: Vec<usize> = outs.iter().map(|o| argmax(&o.seq)).collect();
            let pred_slots: Vec<Vec<String>> = feats
                .iter()
                .zip(outs)
                .map(|(f, o)| word_tags(f, &o.tok, &info.slot_labels))
                .collect();
            let n = intents.len().max(1) as f64;
            let right = pred_int.iter().zip(intents).filter(|(p, g)| p == g).count();
            let whole = (0..intents.len())
                .filter(|&i| pred_int[i] == intents[i] && pred_slots[i] == slots[i])
                .count();
            m.insert("intent_accuracy".into(), right as f64 / n);
            m.insert(
                "slot_f1".into(),
                metrics::entity_scores(&pred_slots, slots).f1,
            );
            m.insert("sentence_accuracy".into(), whole as f64 / n);
        }
        Gold::Qa(examples) => {
            let answers = qa_answers(info, prep, outs);
            let (mut em, mut f1) = (0.0, 0.0);
            for (q, a) in examples.iter().zip(&answers) {
                let golds: Vec<String> = q.answers.iter().map(|a| a.text.clone()).collect();
                let (e, f) = metrics::squad_scores(a, &golds);
                em += e;
                f1 += f;
            }
            let n = examples.len().max(1) as f64;
            m.insert("exact_match".into(), em / n);
            m.insert("f1".into(), f1 / n);
        }
    }
    m
}

/// The predicted answer text of every QA example of `prep`.
pub fn qa_answers(info: &TaskInfo, prep: &Prepared, outs: &[Outputs]) -> Vec<String> {
    let Gold::Qa(examples) = &prep.gold else {
        return Vec::new();
    };
    let mut windows: Vec<Vec<(&Feature, &Outputs)>> = vec![Vec::new(); examples.len()];
    for (f, o) in prep.features.iter().zip(outs) {
        windows[f.example].push((f, o));
    }
    examples
        .iter()
        .zip(&windows)
        .map(|(q, w)| match best_span(w, &info.qa_limits()) {
            Some(((a, z), _, _)) => q.context[a..z].to_string(),
            None => String::new(),
        })
        .collect()
}

/// The metric that picks the best epoch (and early stopping) for a task.
pub fn main_metric(task: Task) -> &'static str {
    match task {
        Task::Classify => "accuracy",
        Task::Ner | Task::Qa => "f1",
        Task::IntentSlot => "sentence_accuracy",
    }
}

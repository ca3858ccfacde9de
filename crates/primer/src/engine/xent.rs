//! Softmax cross-entropy over logit rows, fused with its backward: the logits are overwritten by their gradient
//! in the same pass, so callers can compute logits chunk by chunk and never hold the whole `[tokens, vocab]` matrix.

use super::simd::{self, multiversion};
use rayon::prelude::*;

/// Target value meaning "no loss at this position" (PyTorch's `ignore_index`).
pub const IGNORE: i32 = -100;

multiversion! {
    /// Returns −log softmax(row)[target]; when `grad_scale` is given, overwrites `row` with
    /// `grad_scale · (softmax(row) − onehot(target))`.
    fn row_loss(row: &mut [f32], target: usize, grad_scale: Option<f32>) -> f32 {
        let m = simd::max(row);
        let lse = m + simd::exp_sub_sum_ro(row, m).ln();
        let loss = lse - row[target];
        if let Some(g) = grad_scale {
            for v in row.iter_mut() {
                *v = g * simd::exp(*v - lse);
            }
            row[target] -= g;
        }
        loss
    }
}

/// Sum of the losses of `logits` rows (each `vocab` wide) against `targets`; rows whose target is [`IGNORE`]
/// count nothing (and get a zero gradient). With `grad_scale`, the logits are replaced by the gradient of
/// `grad_scale · Σ loss`. Targets must be in `0..vocab` or `IGNORE`.
pub fn forward_backward(
    logits: &mut [f32],
    targets: &[i32],
    vocab: usize,
    grad_scale: Option<f32>,
) -> f64 {
    const ROWS: usize = 8;
    logits[..targets.len() * vocab]
        .par_chunks_mut(ROWS * vocab)
        .zip(targets.par_chunks(ROWS))
        .map(|(rows, ts)| {
            let mut sum = 0.0f64;
            for (row, &t) in rows.chunks_exact_mut(vocab).zip(ts) {
                if t == IGNORE {
                    if grad_scale.is_some() {
                        row.fill(0.0);
                    }
                    continue;
                }
                assert!(
                    (t as usize) < vocab,
                    "target {t} outside vocabulary {vocab}"
                );
                sum += row_loss(row, t as usize, grad_scale) as f64;
            }
            sum
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum()
}

/// Index of the largest logit (the first, on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

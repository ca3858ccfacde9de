//! Data-parallel GPT steps: each thread runs the whole forward and backward pass over its own share of a
//! batch's sequences, into its own activations and gradient buffer; the gradients are summed at the end.
//!
//! A small GPT's matrices (a few hundred rows by 128 columns) take tens of microseconds each, so splitting every
//! kernel over the threads spends a large part of the step waking threads and packing the same weights twice.
//! Sharding the batch leaves one parallel region per step. The sum and the mean loss are those of the whole
//! batch; only the order of the floating-point additions changes.

use crate::engine::rng::derive_seed;
use crate::engine::xent;
use crate::error::{Error, Result};
use crate::models::gpt::{Gpt, GptActs};
use rayon::prelude::*;
use std::ops::Range;

/// One thread's share: a range of the batch's sequences, with buffers for it.
struct Shard {
    seqs: Range<usize>,
    acts: GptActs,
}

/// Per-thread buffers for `[batch, seq]` batches of one GPT.
pub struct GptShards {
    seq: usize,
    shards: Vec<Shard>,
    /// Gradients of shards 1.. (the first shard adds into the caller's buffer).
    grads: Vec<Vec<f32>>,
}

impl GptShards {
    /// Splits batches of `batch` sequences into `shards` equal parts (one when `shards` does not divide `batch`).
    pub fn new(model: &Gpt, batch: usize, seq: usize, shards: usize) -> GptShards {
        let k = if shards > 1 && batch.is_multiple_of(shards) {
            shards
        } else {
            1
        };
        let per = batch / k;
        let shards = (0..k)
            .map(|i| Shard {
                seqs: i * per..(i + 1) * per,
                acts: GptActs::new(&model.config, per, seq),
            })
            .collect();
        let grads = (1..k).map(|_| vec![0.0; model.num_params()]).collect();
        GptShards { seq, shards, grads }
    }

    /// One shard per thread of the current pool when the threads divide the batch, otherwise one shard (and
    /// each kernel split over the threads instead). Measured on 2 threads: `bench train` steps take about 20 %
    /// less time on both presets, for one extra gradient buffer per extra thread.
    pub fn for_pool(model: &Gpt, batch: usize, seq: usize) -> GptShards {
        GptShards::new(model, batch, seq, rayon::current_num_threads())
    }

    fn check(&self, ids: &[u32], targets: &[i32]) -> Result<()> {
        let batch = self.shards.last().map_or(0, |s| s.seqs.end);
        if ids.len() != batch * self.seq || targets.len() != ids.len() {
            return Err(Error::Config(format!(
                "a batch of {} ids and {} targets does not fit [batch {batch}, seq {}]",
                ids.len(),
                targets.len(),
                self.seq
            )));
        }
        Ok(())
    }

    /// [`Gpt::forward_backward`] over the whole batch, sharded: adds `grad_scale ×` the gradient of the summed
    /// loss to `grads` and returns the mean loss over the non-ignored targets. Dropout masks of a shard that does
    /// not start at sequence 0 are drawn from a seed derived from `train_seed` and its first sequence.
    pub fn forward_backward(
        &mut self,
        model: &Gpt,
        ids: &[u32],
        targets: &[i32],
        grads: &mut [f32],
        grad_scale: f32,
        train_seed: u64,
    ) -> Result<f64> {
        self.check(ids, targets)?;
        let t = self.seq;
        self.grads.iter_mut().for_each(|g| g.fill(0.0));
        let own = self.grads.iter_mut().map(|g| g.as_mut_slice());
        let buffers = std::iter::once(&mut *grads).chain(own);
        let out = self
            .shards
            .iter_mut()
            .zip(buffers)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|(s, g)| {
                let r = s.seqs.start * t..s.seqs.end * t;
                let seed = shard_seed(train_seed, s.seqs.start);
                let (x, y) = (&ids[r.clone()], &targets[r.clone()]);
                let mean = model.forward_backward(&mut s.acts, x, y, g, grad_scale, seed)?;
                Ok((mean, counted(&targets[r])))
            })
            .collect::<Result<Vec<_>>>()?;
        sum_into(grads, &self.grads);
        Ok(weighted_mean(&out))
    }

    /// [`Gpt::loss`] over the whole batch, sharded: the mean loss over the non-ignored targets.
    pub fn loss(&mut self, model: &Gpt, ids: &[u32], targets: &[i32]) -> Result<f64> {
        self.check(ids, targets)?;
        let t = self.seq;
        let out = self
            .shards
            .par_iter_mut()
            .map(|s| {
                let r = s.seqs.start * t..s.seqs.end * t;
                let mean = model.loss(&mut s.acts, &ids[r.clone()], &targets[r.clone()])?;
                Ok((mean, counted(&targets[r])))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(weighted_mean(&out))
    }
}

/// The dropout seed of the shard starting at sequence `start`; the first shard keeps the step's own seed.
fn shard_seed(seed: u64, start: usize) -> u64 {
    if start == 0 {
        seed
    } else {
        derive_seed(seed, &[start as u64])
    }
}

fn counted(targets: &[i32]) -> usize {
    targets.iter().filter(|&&t| t != xent::IGNORE).count()
}

/// The batch mean from each shard's (mean, count).
fn weighted_mean(parts: &[(f64, usize)]) -> f64 {
    let n: usize = parts.iter().map(|p| p.1).sum();
    parts.iter().map(|&(m, c)| m * c as f64).sum::<f64>() / n.max(1) as f64
}

/// `grads += Σ others`, in parallel over chunks of the buffer.
fn sum_into(grads: &mut [f32], others: &[Vec<f32>]) {
    if others.is_empty() {
        return;
    }
    const CHUNK: usize = 1 << 14;
    grads.par_chunks_mut(CHUNK).enumerate().for_each(|(i, g)| {
        for o in others {
            let src = &o[i * CHUNK..i * CHUNK + g.len()];
            g.iter_mut().zip(src).for_each(|(a, b)| *a += b);
        }
    });
}

#[cfg(test)]
mod tests;

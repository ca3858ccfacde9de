//! Data-parallel training steps: each thread runs the whole forward and backward pass over its own share of a
//! batch's sequences, into its own activations and gradient buffer; the gradients are summed at the end.
//!
//! A small model's matrices (a few hundred rows by 128 or 256 columns) take tens of microseconds each, so
//! splitting every kernel over the threads spends a large part of the step waking threads and packing the same
//! weights twice. Sharding the batch leaves one parallel region per step. Losses and gradients are those of the
//! whole batch; only the order of the floating-point additions changes. A shard not starting at sequence 0 draws
//! its own dropout masks ([`shard_seed`]).

use crate::engine::rng::derive_seed;
use crate::engine::simd;
use crate::engine::xent;
use crate::error::{Error, Result};
use crate::models::bert::{Bert, BertActs, BertInput, PretrainStats};
use crate::models::gpt::{Gpt, GptActs};
use rayon::prelude::*;
use std::ops::Range;

/// Activations for each share of a batch's sequences, and gradient buffers for all shares but the first (which
/// adds into the caller's buffer).
pub struct Shards<A> {
    shards: Vec<(Range<usize>, A)>,
    grads: Vec<Vec<f32>>,
}

impl<A: Send> Shards<A> {
    /// Splits batches of `batch` sequences into `count` equal shares (one when `count` does not divide `batch`),
    /// with `acts(sequences)` for each share and gradient buffers of `params` floats.
    pub fn new(batch: usize, count: usize, params: usize, acts: impl Fn(usize) -> A) -> Shards<A> {
        let k = if count > 1 && batch.is_multiple_of(count) {
            count
        } else {
            1
        };
        let per = batch / k;
        Shards {
            shards: (0..k)
                .map(|i| (i * per..(i + 1) * per, acts(per)))
                .collect(),
            grads: (1..k).map(|_| vec![0.0; params]).collect(),
        }
    }

    fn batch(&self) -> usize {
        self.shards.last().map_or(0, |s| s.0.end)
    }

    /// Runs `work(acts, sequences, gradients)` for every share at once and adds every share's gradients into
    /// `grads`; returns the shares' results in order.
    pub fn backward<R: Send>(
        &mut self,
        grads: &mut [f32],
        work: impl Fn(&mut A, Range<usize>, &mut [f32]) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        let own = self.grads.iter_mut().map(|g| g.as_mut_slice());
        let buffers = std::iter::once(&mut *grads).chain(own);
        let out = self
            .shards
            .iter_mut()
            .zip(buffers)
            .enumerate()
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|(i, ((r, a), g))| {
                // a share's own buffer starts from zero, cleared by the thread that fills it
                if i > 0 {
                    g.fill(0.0);
                }
                work(a, r.clone(), g)
            })
            .collect::<Result<Vec<_>>>()?;
        sum_into(grads, &self.grads);
        Ok(out)
    }

    /// Runs `work(acts, sequences)` for every share at once; returns the results in order.
    pub fn forward<R: Send>(
        &mut self,
        work: impl Fn(&mut A, Range<usize>) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        self.shards
            .par_iter_mut()
            .map(|(r, a)| work(a, r.clone()))
            .collect()
    }
}

/// Shards of `[batch, seq]` GPT batches.
pub struct GptShards {
    seq: usize,
    inner: Shards<GptActs>,
}

impl GptShards {
    /// See [`Shards::new`].
    pub fn new(model: &Gpt, batch: usize, seq: usize, count: usize) -> GptShards {
        let acts = |b| GptActs::new(&model.config, b, seq);
        GptShards {
            seq,
            inner: Shards::new(batch, count, model.num_params(), acts),
        }
    }

    /// One share per thread of the current pool when the threads divide the batch, otherwise one share (and each
    /// kernel split over the threads instead). Measured on 2 threads: `bench train` steps take about 20 % less
    /// time on both presets, for one extra gradient buffer per extra thread.
    pub fn for_pool(model: &Gpt, batch: usize, seq: usize) -> GptShards {
        GptShards::new(model, batch, seq, rayon::current_num_threads())
    }

    fn check(&self, ids: &[u32], targets: &[i32]) -> Result<()> {
        let batch = self.inner.batch();
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
    /// loss to `grads` and returns the mean loss over the non-ignored targets.
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
        let out = self.inner.backward(grads, |a, seqs, g| {
            let r = seqs.start * t..seqs.end * t;
            let seed = shard_seed(train_seed, seqs.start);
            let (x, y) = (&ids[r.clone()], &targets[r]);
            Ok((
                model.forward_backward(a, x, y, g, grad_scale, seed)?,
                counted(y),
            ))
        })?;
        Ok(weighted_mean(&out))
    }

    /// [`Gpt::loss`] over the whole batch, sharded: the mean loss over the non-ignored targets.
    pub fn loss(&mut self, model: &Gpt, ids: &[u32], targets: &[i32]) -> Result<f64> {
        self.check(ids, targets)?;
        let t = self.seq;
        let out = self.inner.forward(|a, seqs| {
            let r = seqs.start * t..seqs.end * t;
            let (x, y) = (&ids[r.clone()], &targets[r]);
            Ok((model.loss(a, x, y)?, counted(y)))
        })?;
        Ok(weighted_mean(&out))
    }
}

/// One share of a BERT pretraining batch: its input, MLM labels and NSP labels.
type BertPart<'a> = (BertInput<'a>, &'a [i32], &'a [i32]);

/// Shards of `[batch, seq]` BERT pretraining batches.
pub struct BertShards {
    seq: usize,
    inner: Shards<BertActs>,
}

impl BertShards {
    /// One share per thread of the current pool, as [`GptShards::for_pool`].
    pub fn for_pool(model: &Bert, batch: usize, seq: usize) -> BertShards {
        BertShards::new(model, batch, seq, rayon::current_num_threads())
    }

    /// See [`Shards::new`].
    pub fn new(model: &Bert, batch: usize, seq: usize, count: usize) -> BertShards {
        let acts = |b| BertActs::new(&model.config, b, seq, true);
        BertShards {
            seq,
            inner: Shards::new(batch, count, model.num_params(), acts),
        }
    }

    /// Checks the whole batch, then gives `work` each share's part of it.
    fn parts<'a>(
        &self,
        model: &Bert,
        inp: &BertInput<'a>,
        (mlm, nsp): (&'a [i32], &'a [i32]),
    ) -> Result<impl Fn(Range<usize>) -> BertPart<'a> + Sync + 'a> {
        model.check_input(inp)?;
        model.check_labels(inp, mlm, nsp)?;
        if (inp.batch, inp.seq) != (self.inner.batch(), self.seq) {
            return Err(Error::Config(format!(
                "activations for [{}, {}] given a batch of [{}, {}]",
                self.inner.batch(),
                self.seq,
                inp.batch,
                inp.seq
            )));
        }
        let (t, inp) = (self.seq, *inp);
        Ok(move |r: Range<usize>| {
            let p = r.start * t..r.end * t;
            (inp.sequences(r.clone()), &mlm[p], &nsp[r])
        })
    }

    /// [`Bert::pretrain_forward_backward`] over the whole batch, sharded.
    pub fn pretrain_forward_backward(
        &mut self,
        model: &Bert,
        inp: &BertInput,
        labels: (&[i32], &[i32]),
        grads: &mut [f32],
        scales: (f32, f32),
        train_seed: u64,
    ) -> Result<PretrainStats> {
        let part = self.parts(model, inp, labels)?;
        let out = self.inner.backward(grads, |a, seqs, g| {
            let seed = shard_seed(train_seed, seqs.start);
            let (x, mlm, nsp) = part(seqs);
            model.pretrain_forward_backward(a, &x, (mlm, nsp), g, scales, seed)
        })?;
        Ok(total(&out))
    }

    /// [`Bert::pretrain_loss`] over the whole batch, sharded.
    pub fn pretrain_loss(
        &mut self,
        model: &Bert,
        inp: &BertInput,
        labels: (&[i32], &[i32]),
    ) -> Result<PretrainStats> {
        let part = self.parts(model, inp, labels)?;
        let out = self.inner.forward(|a, seqs| {
            let (x, mlm, nsp) = part(seqs);
            model.pretrain_loss(a, &x, mlm, nsp)
        })?;
        Ok(total(&out))
    }
}

fn total(parts: &[PretrainStats]) -> PretrainStats {
    let mut st = PretrainStats::default();
    parts.iter().for_each(|p| st.add(p));
    st
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
            simd::add_assign(g, src);
        }
    });
}

#[cfg(test)]
mod tests;

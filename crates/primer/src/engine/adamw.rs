//! AdamW over the flat parameter buffer (PyTorch's formulation, decoupled weight decay), fused in one pass,
//! and global-norm gradient clipping.

use super::params::ParamLayout;
use super::simd::multiversion;
use rayon::prelude::*;

const CHUNK: usize = 32 * 1024;

/// Hyper-parameters of AdamW (the learning rate is given at each step: it follows a schedule).
#[derive(Clone, Copy, Debug)]
pub struct AdamWConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

/// AdamW state: first and second moments in the parameter layout, and the step count.
#[derive(Clone, Debug)]
pub struct AdamW {
    pub config: AdamWConfig,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub t: u64,
}

impl AdamW {
    pub fn new(config: AdamWConfig, n: usize) -> AdamW {
        AdamW {
            config,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One update of `params` from `grads`; tensors whose spec says `decay` get weight decay.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], layout: &ParamLayout, lr: f32) {
        self.t += 1;
        let c = self.config;
        let bc1 = 1.0 - (c.beta1 as f64).powi(self.t as i32);
        let bc2 = 1.0 - (c.beta2 as f64).powi(self.t as i32);
        let step_size = (lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        for spec in layout.specs() {
            let r = spec.range();
            let decay = if spec.decay {
                1.0 - lr * c.weight_decay
            } else {
                1.0
            };
            params[r.clone()]
                .par_chunks_mut(CHUNK)
                .zip(grads[r.clone()].par_chunks(CHUNK))
                .zip(self.m[r.clone()].par_chunks_mut(CHUNK))
                .zip(self.v[r].par_chunks_mut(CHUNK))
                .for_each(|(((p, g), m), v)| {
                    update_chunk(p, g, m, v, &c, (bc2_sqrt, decay, step_size))
                });
        }
    }
}

multiversion! {
    /// The update of one chunk: moments, then parameters. `scalars`: (√(1 − β₂ᵗ), the weight-decay factor
    /// that multiplies the parameters first, lr / (1 − β₁ᵗ)).
    fn update_chunk(
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        c: &AdamWConfig,
        scalars: (f32, f32, f32),
    ) {
        let (bc2_sqrt, decay, step_size) = scalars;
        let n = p.len().min(g.len()).min(m.len()).min(v.len());
        let (p, g, m, v) = (&mut p[..n], &g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let gi = g[i];
            m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * gi;
            v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * gi * gi;
            let denom = v[i].sqrt() / bc2_sqrt + c.eps;
            p[i] = p[i] * decay - step_size * m[i] / denom;
        }
    }
}

/// Global L2 norm of the gradient (in f64, fixed chunks: identical whatever the thread count).
pub fn grad_norm(grads: &[f32]) -> f64 {
    grads
        .par_chunks(CHUNK)
        .map(|g| g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
        .collect::<Vec<f64>>()
        .iter()
        .sum::<f64>()
        .sqrt()
}

/// Scales the gradient so its global norm is at most `max_norm`; returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f32) -> f64 {
    let norm = grad_norm(grads);
    if max_norm > 0.0 && norm > max_norm as f64 {
        let s = (max_norm as f64 / (norm + 1e-6)) as f32;
        grads
            .par_chunks_mut(CHUNK)
            .for_each(|g| g.iter_mut().for_each(|x| *x *= s));
    }
    norm
}

//! Element-wise tanh (BERT's pooler), forward and backward.

use super::simd::{self, multiversion};
use rayon::prelude::*;

const CHUNK: usize = 4096;

multiversion! {
    fn forward_chunk(out: &mut [f32], x: &[f32]) {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = simd::tanh(x);
        }
    }
}

/// `out = tanh(x)`.
pub fn forward(out: &mut [f32], x: &[f32]) {
    out[..x.len()]
        .par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| forward_chunk(o, x));
}

/// `dx = dout · (1 − out²)`, from the forward's output (overwrites `dx`).
pub fn backward(dx: &mut [f32], out: &[f32], dout: &[f32]) {
    dx[..out.len()]
        .par_chunks_mut(CHUNK)
        .zip(out.par_chunks(CHUNK).zip(dout.par_chunks(CHUNK)))
        .for_each(|(d, (y, g))| {
            d.iter_mut()
                .zip(y.iter().zip(g))
                .for_each(|(d, (y, g))| *d = g * (1.0 - y * y));
        });
}

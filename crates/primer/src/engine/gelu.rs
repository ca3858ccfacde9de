//! GELU, exact (`erf`, PyTorch's default and HF's "gelu") or the tanh approximation (HF's "gelu_new").

use super::simd::{self, multiversion};
use super::ROW_CHUNK;
use rayon::prelude::*;

/// Which GELU formula.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gelu {
    Erf,
    Tanh,
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const CHUNK: usize = ROW_CHUNK * 1024;

multiversion! {
    fn forward_chunk(out: &mut [f32], x: &[f32], tanh: bool) {
        if tanh {
            for (o, &x) in out.iter_mut().zip(x) {
                let u = SQRT_2_OVER_PI * (0.044_715 * x * x).mul_add(x, x);
                let h = 0.5 * x;
                *o = h.mul_add(simd::tanh(u), h);
            }
        } else {
            for (o, &x) in out.iter_mut().zip(x) {
                let h = 0.5 * x;
                *o = h.mul_add(simd::erf(x * std::f32::consts::FRAC_1_SQRT_2), h);
            }
        }
    }
}

multiversion! {
    fn backward_chunk(dx: &mut [f32], x: &[f32], dout: &[f32], tanh: bool) {
        if tanh {
            for ((d, &x), &g) in dx.iter_mut().zip(x).zip(dout) {
                let u = SQRT_2_OVER_PI * (0.044_715 * x * x).mul_add(x, x);
                let t = simd::tanh(u);
                let du = SQRT_2_OVER_PI * (3.0 * 0.044_715 * x).mul_add(x, 1.0);
                *d = g * (0.5 * x * (-t).mul_add(t, 1.0)).mul_add(du, 0.5 * (1.0 + t));
            }
        } else {
            let inv_sqrt_2pi = 0.398_942_3_f32;
            for ((d, &x), &g) in dx.iter_mut().zip(x).zip(dout) {
                // erf(x/√2) and the density's e^(−x²/2) share one exp
                let (e, gauss) = simd::erf_and_gauss(x * std::f32::consts::FRAC_1_SQRT_2);
                let cdf = 0.5f32.mul_add(e, 0.5);
                let pdf = inv_sqrt_2pi * gauss;
                *d = g * x.mul_add(pdf, cdf);
            }
        }
    }
}

/// `out = gelu(x)`.
pub fn forward(out: &mut [f32], x: &[f32], kind: Gelu) {
    let n = x.len();
    out[..n]
        .par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| forward_chunk(o, x, kind == Gelu::Tanh));
}

/// `dx = dout · gelu'(x)` (overwrites `dx`).
pub fn backward(dx: &mut [f32], x: &[f32], dout: &[f32], kind: Gelu) {
    let n = x.len();
    dx[..n]
        .par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dout[..n].par_chunks(CHUNK)))
        .for_each(|(d, (x, g))| backward_chunk(d, x, g, kind == Gelu::Tanh));
}

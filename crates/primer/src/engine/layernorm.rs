//! LayerNorm over the last dimension: forward (saving mean and 1/std), re-normalise from saved statistics, and
//! backward.

use super::simd::{self, multiversion};
use super::ROW_CHUNK;
use rayon::prelude::*;

multiversion! {
    fn forward_row(out: &mut [f32], x: &[f32], w: &[f32], b: &[f32], eps: f32) -> (f32, f32) {
        let c = x.len() as f32;
        let mean = simd::sum(x) / c;
        for (o, x) in out.iter_mut().zip(x) {
            *o = x - mean;
        }
        let var = simd::dot(out, out) / c;
        let rstd = 1.0 / (var + eps).sqrt();
        for ((o, w), b) in out.iter_mut().zip(w).zip(b) {
            *o = *o * rstd * w + b;
        }
        (mean, rstd)
    }
}

/// `out = (x − mean) / sqrt(var + eps) · w + b` per row of `c`; saves `mean` and `rstd` per row.
pub fn forward(
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: &[f32],
    c: usize,
    eps: f32,
) {
    let rows = mean.len();
    out[..rows * c]
        .par_chunks_mut(ROW_CHUNK * c)
        .zip(x[..rows * c].par_chunks(ROW_CHUNK * c))
        .zip(
            mean.par_chunks_mut(ROW_CHUNK)
                .zip(rstd.par_chunks_mut(ROW_CHUNK)),
        )
        .for_each(|((o, x), (m, r))| {
            for (i, (o, x)) in o.chunks_exact_mut(c).zip(x.chunks_exact(c)).enumerate() {
                (m[i], r[i]) = forward_row(o, x, w, b, eps);
            }
        });
}

multiversion! {
    fn apply_row(out: &mut [f32], x: &[f32], w: &[f32], b: &[f32], mean: f32, rstd: f32) {
        for (((o, x), w), b) in out.iter_mut().zip(x).zip(w).zip(b) {
            *o = (x - mean) * rstd * w + b;
        }
    }
}

/// Recomputes the forward output from saved statistics (cheaper than keeping it for the backward pass).
pub fn apply(
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: &[f32],
    mean: &[f32],
    rstd: &[f32],
    c: usize,
) {
    let rows = mean.len();
    out[..rows * c]
        .par_chunks_mut(ROW_CHUNK * c)
        .zip(x[..rows * c].par_chunks(ROW_CHUNK * c))
        .zip(mean.par_chunks(ROW_CHUNK).zip(rstd.par_chunks(ROW_CHUNK)))
        .for_each(|((o, x), (m, r))| {
            for (i, (o, x)) in o.chunks_exact_mut(c).zip(x.chunks_exact(c)).enumerate() {
                apply_row(o, x, w, b, m[i], r[i]);
            }
        });
}

multiversion! {
    fn backward_row(dx: &mut [f32], dwb: &mut [f32], dout: &[f32], x: &[f32], w: &[f32], mean: f32, rstd: f32) {
        let c = x.len();
        let (dw, db) = dwb.split_at_mut(c);
        // Σ g·w·x̂ = rstd·(Σ g·w·x − mean·Σ g·w)
        let sum_gw = simd::dot(dout, w);
        let sum_gwxhat = rstd * (simd::dot3(dout, w, x) - mean * sum_gw);
        let (mg, mgx) = (sum_gw / c as f32, sum_gwxhat / c as f32);
        for i in 0..c {
            let xhat = (x[i] - mean) * rstd;
            dx[i] += rstd * (dout[i] * w[i] - mg - xhat * mgx);
            dw[i] += dout[i] * xhat;
            db[i] += dout[i];
        }
    }
}

/// Backward: adds the input gradient to `dx` (LayerNorm inputs are residual streams, whose gradient accumulates),
/// and adds to `dw`, `db`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    dout: &[f32],
    x: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
) {
    let c = w.len();
    let rows = mean.len();
    let partials: Vec<Vec<f32>> = dx[..rows * c]
        .par_chunks_mut(ROW_CHUNK * c)
        .zip(dout[..rows * c].par_chunks(ROW_CHUNK * c))
        .zip(x[..rows * c].par_chunks(ROW_CHUNK * c))
        .zip(mean.par_chunks(ROW_CHUNK).zip(rstd.par_chunks(ROW_CHUNK)))
        .map(|(((dx, g), x), (m, r))| {
            let mut dwb = vec![0.0f32; 2 * c];
            for (i, ((dx, g), x)) in dx
                .chunks_exact_mut(c)
                .zip(g.chunks_exact(c))
                .zip(x.chunks_exact(c))
                .enumerate()
            {
                backward_row(dx, &mut dwb, g, x, w, m[i], r[i]);
            }
            dwb
        })
        .collect();
    for p in &partials {
        simd::add_assign(dw, &p[..c]);
        simd::add_assign(db, &p[c..]);
    }
}

//! Pieces shared by the model files: per-layer slices of activation buffers, dropout seeds per site, residual
//! branches with optional dropout, and the row chunk of a vocabulary-wide head.

use crate::engine::dropout;
use crate::engine::matmul::{self, Dims};
use crate::engine::rng::derive_seed;

/// Rows of logits computed at once by the chunked head (about 1 M floats, 4 MiB; each data-parallel shard has its own).
pub(crate) fn head_chunk(rows: usize, vocab: usize) -> usize {
    ((1 << 20) / vocab.max(1)).clamp(1, rows.max(1))
}

/// Seeds for the dropout sites of one micro-step.
#[derive(Clone, Copy)]
pub(crate) struct DropSeeds(pub Option<u64>);

impl DropSeeds {
    pub(crate) fn site(&self, p: f32, layer: usize, site: u64) -> Option<(f32, u64)> {
        match self.0 {
            Some(seed) if p > 0.0 => Some((p, derive_seed(seed, &[layer as u64, site]))),
            _ => None,
        }
    }
}

/// Layer `l` of a buffer holding one `n`-element slice per layer.
pub(crate) fn layer<T>(v: &[T], l: usize, n: usize) -> &[T] {
    &v[l * n..(l + 1) * n]
}

/// Mutable layer `l` of a buffer holding one `n`-element slice per layer.
pub(crate) fn layer_mut<T>(v: &mut [T], l: usize, n: usize) -> &mut [T] {
    &mut v[l * n..(l + 1) * n]
}

/// `x_out = x_in + drop(branch·W + b)`; without dropout the product is added in place.
pub(crate) fn residual_branch(
    x_out: &mut [f32],
    x_in: &[f32],
    tmp: &mut [f32],
    branch: &[f32],
    (w, b): (&[f32], &[f32]),
    d: Dims,
    drop: Option<(f32, u64)>,
) {
    let n = x_in.len();
    match drop {
        None => {
            x_out.copy_from_slice(x_in);
            matmul::forward(x_out, branch, w, Some(b), d, true);
        }
        Some((pr, s)) => {
            matmul::forward(tmp, branch, w, Some(b), d, false);
            dropout::apply(&mut tmp[..n], pr, s);
            x_out
                .iter_mut()
                .zip(x_in.iter().zip(&tmp[..n]))
                .for_each(|(o, (x, y))| *o = x + y);
        }
    }
}

/// The gradient flowing into a residual branch: the residual gradient itself, or (with dropout) a masked copy
/// made in `tmp`.
pub(crate) fn branch_grad<'a>(
    dresid: &'a [f32],
    tmp: &'a mut [f32],
    drop: Option<(f32, u64)>,
) -> &'a [f32] {
    match drop {
        None => dresid,
        Some((pr, s)) => {
            let n = dresid.len();
            tmp[..n].copy_from_slice(dresid);
            dropout::apply(&mut tmp[..n], pr, s);
            &tmp[..n]
        }
    }
}

/// Copies rows `rows` of a `[_, c]` matrix into a new `[rows.len(), c]` one.
pub fn gather_rows(x: &[f32], rows: &[usize], c: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * c);
    for &r in rows {
        out.extend_from_slice(&x[r * c..(r + 1) * c]);
    }
    out
}

/// Adds row `i` of `src` to row `rows[i]` of `dst`.
pub fn scatter_add_rows(dst: &mut [f32], src: &[f32], rows: &[usize], c: usize) {
    for (s, &r) in src.chunks_exact(c).zip(rows) {
        dst[r * c..(r + 1) * c]
            .iter_mut()
            .zip(s)
            .for_each(|(d, s)| *d += s);
    }
}

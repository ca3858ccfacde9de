//! Fused multi-head scaled-dot-product attention, forward and backward, for self-attention (causal for GPT,
//! bidirectional with key padding for BERT) and cross-attention (T5 decoder).
//!
//! Each (batch, head) pair is one task: `S = scale·Q·Kᵀ`, masked, softmaxed row by row, `O = P·V`. Only the
//! per-row log-sum-exp is saved; the backward pass recomputes `P` from it, so no `T×T` buffer is kept per layer.
//! Attention-probability dropout uses the counter-based RNG, so the backward pass regenerates the same mask.

use super::matmul::gemm_strided;
use super::rng::uniform_at;
use super::simd::{self, multiversion};
use super::SendPtr;
use rayon::prelude::*;

/// A `[batch, rows, heads·head_dim]` matrix inside a larger buffer: element (b, t, h, d) sits at
/// `offset + b·batch_stride + t·row_stride + h·head_dim + d`. Q, K and V of GPT-2 all live in one `[B, T, 3C]`
/// buffer: the same data with offsets 0, C and 2C and row stride 3C.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub offset: usize,
    pub row_stride: usize,
    pub batch_stride: usize,
}

impl View {
    /// A view into a `[batch, rows, row_stride]` buffer starting at column `col`.
    pub fn packed(rows: usize, row_stride: usize, col: usize) -> View {
        View {
            offset: col,
            row_stride,
            batch_stride: rows * row_stride,
        }
    }

    fn at(&self, b: usize, h: usize, head_dim: usize) -> usize {
        self.offset + b * self.batch_stride + h * head_dim
    }
}

/// Sizes and masking of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct Shape<'a> {
    pub batch: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// Query rows per sequence.
    pub tq: usize,
    /// Key rows per sequence.
    pub tk: usize,
    /// Query `i` may see key `j` only when `j <= i + causal_offset` (`offset` = number of cached keys).
    pub causal: Option<usize>,
    /// Per sequence, the number of real (non-padding) keys; keys beyond are masked.
    pub key_lens: Option<&'a [usize]>,
    pub scale: f32,
    /// Attention-probability dropout: (probability, seed). Training only.
    pub dropout: Option<(f32, u64)>,
    /// Packed self-attention, with no padding rows stored: sequence `b` begins at row `starts[b]` of every view
    /// (their `batch_stride` is unused) and has `key_lens[b]` query and key rows. `None`: `[batch, t]` views.
    pub starts: Option<&'a [usize]>,
}

impl Shape<'_> {
    /// Number of visible keys for query row `i` of sequence `b`.
    fn visible(&self, b: usize, i: usize) -> usize {
        let mut n = self.tk;
        if let Some(off) = self.causal {
            n = n.min(i + off + 1);
        }
        if let Some(lens) = self.key_lens {
            n = n.min(lens[b]);
        }
        n
    }

    /// Element offset of head `h` of sequence `b`'s first row in `v`.
    fn at(&self, v: &View, b: usize, h: usize) -> usize {
        match self.starts {
            Some(st) => v.offset + st[b] * v.row_stride + h * self.head_dim,
            None => v.at(b, h, self.head_dim),
        }
    }

    /// Query and key rows stored for sequence `b`.
    fn rows(&self, b: usize) -> (usize, usize) {
        match (self.starts, self.key_lens) {
            (Some(_), Some(lens)) => (lens[b], lens[b]),
            _ => (self.tq, self.tk),
        }
    }

    fn drop_index(&self, b: usize, h: usize, i: usize) -> u64 {
        (((b * self.heads + h) * self.tq + i) * self.tk) as u64
    }
}

multiversion! {
    /// Softmax of one score row over its first `n` entries (zeros after), returning the log-sum-exp.
    fn softmax_row(s: &mut [f32], n: usize) -> f32 {
        if n == 0 {
            s.fill(0.0);
            return 0.0;
        }
        let m = simd::max(&s[..n]);
        let sum = simd::exp_sub_sum(&mut s[..n], m);
        let inv = 1.0 / sum;
        s[..n].iter_mut().for_each(|v| *v *= inv);
        s[n..].fill(0.0);
        m + sum.ln()
    }
}

multiversion! {
    /// Recomputes probabilities of one row from its scores and saved log-sum-exp.
    fn probs_row(s: &mut [f32], n: usize, lse: f32) {
        for v in s[..n].iter_mut() {
            *v = simd::exp(*v - lse);
        }
        s[n..].fill(0.0);
    }
}

fn dropout_row(p: &mut [f32], n: usize, (prob, seed): (f32, u64), base: u64) {
    let keep = 1.0 / (1.0 - prob);
    for (j, v) in p[..n].iter_mut().enumerate() {
        *v = if uniform_at(seed, base + j as u64) < prob {
            0.0
        } else {
            *v * keep
        };
    }
}

/// Query rows processed together. Causal and padded rows see only a prefix of the keys, so each block of
/// queries multiplies only against the keys its last row can see: a causal pass does about 60 % of the work.
const QB: usize = 32;

/// Zeroes rows `0..rows` of one head's columns (`hd` wide) starting at `ptr`, with row stride `rs`.
///
/// # Safety
/// Every addressed element must be inside the buffer and owned by the calling task.
unsafe fn zero_rows(ptr: *mut f32, rows: usize, rs: usize, hd: usize) {
    for r in 0..rows {
        std::slice::from_raw_parts_mut(ptr.add(r * rs), hd).fill(0.0);
    }
}

/// `out = softmax(mask(scale·Q·Kᵀ))·V` per head, writing `out` (a `[batch, tq, heads·head_dim]` view) and
/// the log-sum-exp of every score row into `lse` (`[batch, heads, tq]`, may be empty when not training).
pub fn forward(
    out: &mut [f32],
    out_view: View,
    lse: &mut [f32],
    data_q: &[f32],
    q: View,
    data_kv: &[f32],
    k: View,
    v: View,
    sh: &Shape,
) {
    let (hd, tq, tk) = (sh.head_dim, sh.tq, sh.tk);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let lse_ptr = SendPtr(lse.as_mut_ptr());
    let save_lse = !lse.is_empty();
    assert!(!save_lse || lse.len() >= sh.batch * sh.heads * tq);
    assert!(sh.starts.is_none() || (sh.key_lens.is_some() && tq == tk));
    (0..sh.batch * sh.heads).into_par_iter().for_each_init(
        || vec![0.0f32; QB.min(tq) * tk],
        |s, bh| {
            let (b, h) = (bh / sh.heads, bh % sh.heads);
            let (qo, ko, vo, oo) = (
                sh.at(&q, b, h),
                sh.at(&k, b, h),
                sh.at(&v, b, h),
                sh.at(&out_view, b, h),
            );
            let rows = sh.rows(b).0;
            for i0 in (0..rows).step_by(QB) {
                let m = QB.min(rows - i0);
                let kn = sh.visible(b, i0 + m - 1);
                // SAFETY: each (b, h) task writes its own head columns of its own sequence, and its own lse rows.
                let o_blk = unsafe { out_ptr.get().add(oo + i0 * out_view.row_stride) };
                if kn == 0 {
                    unsafe { zero_rows(o_blk, m, out_view.row_stride, hd) };
                    continue;
                }
                gemm_strided(
                    m,
                    kn,
                    hd,
                    s.as_mut_ptr(),
                    kn,
                    false,
                    data_q[qo + i0 * q.row_stride..].as_ptr(),
                    (q.row_stride, 1),
                    data_kv[ko..].as_ptr(),
                    (1, k.row_stride),
                    sh.scale,
                    false,
                    None,
                );
                for r in 0..m {
                    let i = i0 + r;
                    let n = sh.visible(b, i);
                    let row = &mut s[r * kn..(r + 1) * kn];
                    let l = softmax_row(row, n);
                    if save_lse {
                        unsafe { *lse_ptr.get().add(bh * tq + i) = l };
                    }
                    if let Some(d) = sh.dropout {
                        dropout_row(row, n, d, sh.drop_index(b, h, i));
                    }
                }
                gemm_strided(
                    m,
                    hd,
                    kn,
                    o_blk,
                    out_view.row_stride,
                    false,
                    s.as_ptr(),
                    (kn, 1),
                    data_kv[vo..].as_ptr(),
                    (v.row_stride, 1),
                    1.0,
                    false,
                    None,
                );
            }
        },
    );
}

/// Gradients of [`forward`] with respect to Q, K and V, written (not added) into the `dq`/`dk`/`dv` views of
/// `dq_buf` and `dkv_buf` (which may be the same buffer for self-attention: pass it once as `dkv_buf = None`).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dq_buf: &mut [f32],
    dkv_buf: Option<&mut [f32]>,
    (dq, dk, dv): (View, View, View),
    dout: &[f32],
    out: &[f32],
    out_view: View,
    lse: &[f32],
    data_q: &[f32],
    q: View,
    data_kv: &[f32],
    k: View,
    v: View,
    sh: &Shape,
) {
    let (hd, tq, tk) = (sh.head_dim, sh.tq, sh.tk);
    assert!(sh.starts.is_none() || (sh.key_lens.is_some() && tq == tk));
    let base = dq_buf.as_mut_ptr();
    let dq_ptr = SendPtr(base);
    let dkv_ptr = SendPtr(dkv_buf.map_or(base, |d| d.as_mut_ptr()));
    (0..sh.batch * sh.heads).into_par_iter().for_each_init(
        || (vec![0.0f32; QB.min(tq) * tk], vec![0.0f32; QB.min(tq) * tk]),
        |(p, dp), bh| {
            let (b, h) = (bh / sh.heads, bh % sh.heads);
            let (qo, ko, vo, oo) = (
                sh.at(&q, b, h),
                sh.at(&k, b, h),
                sh.at(&v, b, h),
                sh.at(&out_view, b, h),
            );
            let (dqo, dko, dvo) = (sh.at(&dq, b, h), sh.at(&dk, b, h), sh.at(&dv, b, h));
            let (q_rows, k_rows) = sh.rows(b);
            // SAFETY (every write below): each (b, h) task writes its own head columns of its own sequence.
            let (dk_ptr, dv_ptr) = unsafe { (dkv_ptr.get().add(dko), dkv_ptr.get().add(dvo)) };
            unsafe {
                zero_rows(dk_ptr, k_rows, dk.row_stride, hd);
                zero_rows(dv_ptr, k_rows, dv.row_stride, hd);
            }
            for i0 in (0..q_rows).step_by(QB) {
                let m = QB.min(q_rows - i0);
                let kn = sh.visible(b, i0 + m - 1);
                let dq_blk = unsafe { dq_ptr.get().add(dqo + i0 * dq.row_stride) };
                if kn == 0 {
                    unsafe { zero_rows(dq_blk, m, dq.row_stride, hd) };
                    continue;
                }
                let (q_blk, do_blk) = (
                    &data_q[qo + i0 * q.row_stride..],
                    &dout[oo + i0 * out_view.row_stride..],
                );
                // P = softmax(scale·Q·Kᵀ), recomputed from the saved log-sum-exp
                gemm_strided(
                    m,
                    kn,
                    hd,
                    p.as_mut_ptr(),
                    kn,
                    false,
                    q_blk.as_ptr(),
                    (q.row_stride, 1),
                    data_kv[ko..].as_ptr(),
                    (1, k.row_stride),
                    sh.scale,
                    false,
                    None,
                );
                // dP' = dO·Vᵀ (gradient of the dropped-out probabilities)
                gemm_strided(
                    m,
                    kn,
                    hd,
                    dp.as_mut_ptr(),
                    kn,
                    false,
                    do_blk.as_ptr(),
                    (out_view.row_stride, 1),
                    data_kv[vo..].as_ptr(),
                    (1, v.row_stride),
                    1.0,
                    false,
                    None,
                );
                for r in 0..m {
                    let i = i0 + r;
                    let n = sh.visible(b, i);
                    let (prow, dprow) =
                        (&mut p[r * kn..(r + 1) * kn], &mut dp[r * kn..(r + 1) * kn]);
                    probs_row(prow, n, lse[bh * tq + i]);
                    // D_i = Σ_j P'_ij dP'_ij = dO_i · O_i
                    let orow = &out[oo + i * out_view.row_stride..][..hd];
                    let grow = &dout[oo + i * out_view.row_stride..][..hd];
                    let d = simd::dot(orow, grow);
                    if let Some(drop) = sh.dropout {
                        // dP = dP'·mask/(1-p); P' replaces P for the dV product below; dS = P(dP − D)
                        let base = sh.drop_index(b, h, i);
                        let keep = 1.0 / (1.0 - drop.0);
                        for j in 0..n {
                            let kept = uniform_at(drop.1, base + j as u64) >= drop.0;
                            let mk = if kept { keep } else { 0.0 };
                            let pj = prow[j];
                            dprow[j] = pj * (dprow[j] * mk - d);
                            prow[j] = pj * mk;
                        }
                    } else {
                        for j in 0..n {
                            dprow[j] = prow[j] * (dprow[j] - d);
                        }
                    }
                    dprow[n..].fill(0.0);
                }
                // dV[..kn] += P'ᵀ·dO
                gemm_strided(
                    kn,
                    hd,
                    m,
                    dv_ptr,
                    dv.row_stride,
                    true,
                    p.as_ptr(),
                    (1, kn),
                    do_blk.as_ptr(),
                    (out_view.row_stride, 1),
                    1.0,
                    false,
                    None,
                );
                // dQ = scale·dS·K
                gemm_strided(
                    m,
                    hd,
                    kn,
                    dq_blk,
                    dq.row_stride,
                    false,
                    dp.as_ptr(),
                    (kn, 1),
                    data_kv[ko..].as_ptr(),
                    (k.row_stride, 1),
                    sh.scale,
                    false,
                    None,
                );
                // dK[..kn] += scale·dSᵀ·Q
                gemm_strided(
                    kn,
                    hd,
                    m,
                    dk_ptr,
                    dk.row_stride,
                    true,
                    dp.as_ptr(),
                    (1, kn),
                    q_blk.as_ptr(),
                    (q.row_stride, 1),
                    sh.scale,
                    false,
                    None,
                );
            }
        },
    );
}

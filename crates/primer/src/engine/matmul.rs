//! Linear layer `y = x·W + b` through `gemm`, forward and backward.
//!
//! Weights come in two layouts because checkpoints do: GPT-2's Conv1D stores `[in, out]`, while
//! `nn.Linear` (BERT, T5, GPT-2's lm_head) stores `[out, in]`. Transposes are free: only strides change.

use super::{panels, simd, SendPtr};
use gemm_common::Parallelism;
use rayon::prelude::*;

/// How a weight matrix is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[in, out]`, row-major (GPT-2 Conv1D).
    InOut,
    /// `[out, in]`, row-major (`nn.Linear`).
    OutIn,
    /// `[out/W, in, W]` panels of the CPU's kernel width W, packed once for inference by [`panels::pack`];
    /// forward only.
    Panels,
}

/// Shape of a linear layer applied to `rows` vectors.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub rows: usize,
    pub d_in: usize,
    pub d_out: usize,
    pub layout: Layout,
}

/// `dst[m×n] (+)= beta · lhs[m×k] · rhs[k×n]` with explicit (row, column) strides.
/// `accumulate` adds to `dst`; otherwise `dst` is overwritten.
/// `bias`, when given, is then added to every row, by each thread to its own block while it is still in cache.
pub(crate) fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (usize, usize),
    beta: f32,
    par: bool,
    bias: Option<&[f32]>,
) {
    let add_bias = |dst: SendPtr, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
        if let Some(b) = bias {
            for r in rows {
                // SAFETY: callers pass a block of `dst` (rows × cols) that no other thread writes.
                let row = unsafe {
                    std::slice::from_raw_parts_mut(
                        dst.get().add(r * dst_rs + cols.start),
                        cols.len(),
                    )
                };
                simd::add_assign(row, &b[cols.clone()]);
            }
        }
    };
    let threads = if par { rayon::current_num_threads() } else { 1 };
    // Split the output into row blocks (or column blocks when it is wide and short, so that no two threads pack
    // the same weights: 128-row products run 1.2–2× faster split by columns), one single-threaded gemm per
    // block: for the skinny matrices of a transformer this beats gemm's own threading.
    if threads > 1 && m * n * k >= 32 * 32 * 32 {
        let dst = SendPtr(dst);
        let (lhs, rhs) = (SendPtr(lhs as *mut f32), SendPtr(rhs as *mut f32));
        let by_rows = m >= n || m >= 128 * threads;
        let (total, unit) = if by_rows { (m, 16) } else { (n, 16) };
        let per = total.div_ceil(threads).div_ceil(unit) * unit;
        (0..total.div_ceil(per)).into_par_iter().for_each(|i| {
            let (start, len) = (i * per, per.min(total - i * per));
            // SAFETY: blocks write disjoint rows (or columns) of `dst`; inputs are only read.
            unsafe {
                if by_rows {
                    gemm_raw(
                        len,
                        n,
                        k,
                        dst.get().add(start * dst_rs),
                        dst_rs,
                        accumulate,
                        lhs.get().add(start * lhs_rs),
                        (lhs_rs, lhs_cs),
                        rhs.get(),
                        (rhs_rs, rhs_cs),
                        beta,
                    );
                    add_bias(dst, start..start + len, 0..n);
                } else {
                    gemm_raw(
                        m,
                        len,
                        k,
                        dst.get().add(start),
                        dst_rs,
                        accumulate,
                        lhs.get(),
                        (lhs_rs, lhs_cs),
                        rhs.get().add(start * rhs_cs),
                        (rhs_rs, rhs_cs),
                        beta,
                    );
                    add_bias(dst, 0..m, start..start + len);
                }
            }
        });
    } else {
        // SAFETY: as above, one block.
        unsafe {
            gemm_raw(
                m,
                n,
                k,
                dst,
                dst_rs,
                accumulate,
                lhs,
                (lhs_rs, lhs_cs),
                rhs,
                (rhs_rs, rhs_cs),
                beta,
            );
        }
        add_bias(SendPtr(dst), 0..m, 0..n);
    }
}

/// One single-threaded gemm call, row-major `dst`. gemm's kernels want a column-major destination, so this
/// computes the transpose, dstᵀ = rhsᵀ·lhsᵀ, as the `gemm` crate's own front end does.
///
/// # Safety
/// The pointers must reach every element the sizes and strides address; `dst` must not alias the inputs.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (usize, usize),
    beta: f32,
) {
    gemm_f32::gemm::f32::get_gemm_fn()(
        n,
        m,
        k,
        dst,
        dst_rs as isize,
        1,
        accumulate,
        rhs,
        rhs_rs as isize,
        rhs_cs as isize,
        lhs,
        lhs_rs as isize,
        lhs_cs as isize,
        1.0,
        beta,
        false,
        false,
        false,
        Parallelism::None,
    )
}

/// (row stride, column stride) of W viewed as a `[d_in, d_out]` matrix.
fn w_strides(d: &Dims) -> (usize, usize) {
    match d.layout {
        Layout::InOut => (d.d_out, 1),
        Layout::OutIn => (1, d.d_in),
        Layout::Panels => {
            unreachable!("packed weights are for inference only: panels::forward reads them")
        }
    }
}

/// `out = x·W + b`, or `out += x·W + b` when `accumulate` (used to add a residual in place).
pub fn forward(
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    d: Dims,
    accumulate: bool,
) {
    assert!(out.len() >= d.rows * d.d_out && x.len() >= d.rows * d.d_in);
    assert_eq!(w.len(), d.d_in * d.d_out);
    if let Some(b) = bias {
        assert_eq!(b.len(), d.d_out);
    }
    if d.layout == Layout::Panels {
        return panels::forward(out, x, w, bias, d.rows, d.d_in, d.d_out, accumulate, true);
    }
    let (w_rs, w_cs) = w_strides(&d);
    gemm_strided(
        d.rows,
        d.d_out,
        d.d_in,
        out.as_mut_ptr(),
        d.d_out,
        accumulate,
        x.as_ptr(),
        (d.d_in, 1),
        w.as_ptr(),
        (w_rs, w_cs),
        1.0,
        true,
        bias,
    );
}

/// Backward of [`forward`]. Accumulates into `dw` and `dbias`; writes `dx` (or adds to it when `accumulate_dx`).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dx: Option<&mut [f32]>,
    accumulate_dx: bool,
    dw: &mut [f32],
    dbias: Option<&mut [f32]>,
    dout: &[f32],
    x: &[f32],
    w: &[f32],
    d: Dims,
) {
    assert!(dout.len() >= d.rows * d.d_out && x.len() >= d.rows * d.d_in);
    assert_eq!(w.len(), d.d_in * d.d_out);
    assert_eq!(dw.len(), d.d_in * d.d_out);
    let (w_rs, w_cs) = w_strides(&d);
    let grad_x = |dx: &mut [f32]| {
        assert!(dx.len() >= d.rows * d.d_in);
        // dx[rows×in] = dout[rows×out] · Wᵀ[out×in]
        gemm_strided(
            d.rows,
            d.d_in,
            d.d_out,
            dx.as_mut_ptr(),
            d.d_in,
            accumulate_dx,
            dout.as_ptr(),
            (d.d_out, 1),
            w.as_ptr(),
            (w_cs, w_rs),
            1.0,
            true,
            None,
        );
    };
    let grad_w = |dw: &mut [f32]| match d.layout {
        // dW[in×out] += xᵀ[in×rows] · dout[rows×out]
        Layout::InOut => gemm_strided(
            d.d_in,
            d.d_out,
            d.rows,
            dw.as_mut_ptr(),
            d.d_out,
            true,
            x.as_ptr(),
            (1, d.d_in),
            dout.as_ptr(),
            (d.d_out, 1),
            1.0,
            true,
            None,
        ),
        // dW[out×in] += doutᵀ[out×rows] · x[rows×in]
        Layout::OutIn => gemm_strided(
            d.d_out,
            d.d_in,
            d.rows,
            dw.as_mut_ptr(),
            d.d_in,
            true,
            dout.as_ptr(),
            (1, d.d_out),
            x.as_ptr(),
            (d.d_in, 1),
            1.0,
            true,
            None,
        ),
        Layout::Panels => unreachable!("w_strides refused packed weights above"),
    };
    if let Some(dx) = dx {
        grad_x(dx);
    }
    grad_w(dw);
    if let Some(db) = dbias {
        assert_eq!(db.len(), d.d_out);
        // column sums, in parallel over column blocks (each block sums its rows in order)
        db.par_chunks_mut(64).enumerate().for_each(|(blk, db)| {
            simd::add_rows(db, &dout[..d.rows * d.d_out], d.d_out, blk * 64);
        });
    }
}

//! Linear layer `y = x·W + b` through `gemm`, forward and backward.
//!
//! Weights come in two layouts because checkpoints do: GPT-2's Conv1D stores `[in, out]`, while
//! `nn.Linear` (BERT, T5, GPT-2's lm_head) stores `[out, in]`. Transposes are free: only strides change.

use gemm::{gemm, Parallelism};

/// How a weight matrix is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[in, out]`, row-major (GPT-2 Conv1D).
    InOut,
    /// `[out, in]`, row-major (`nn.Linear`).
    OutIn,
}

/// Shape of a linear layer applied to `rows` vectors.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub rows: usize,
    pub d_in: usize,
    pub d_out: usize,
    pub layout: Layout,
}

fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    if m * n * k >= 48 * 48 * 48 && rayon::current_num_threads() > 1 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// `dst[m×n] (+)= beta · lhs[m×k] · rhs[k×n]` with explicit (row, column) strides.
/// `accumulate` adds to `dst`; otherwise `dst` is overwritten.
#[allow(clippy::too_many_arguments)]
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
) {
    let par = if par {
        parallelism(m, n, k)
    } else {
        Parallelism::None
    };
    // SAFETY: callers pass pointers into buffers that hold every element the strides reach (checked by the
    // safe wrappers below through slice lengths) and `dst` does not alias `lhs` or `rhs`.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            beta,
            false,
            false,
            false,
            par,
        )
    }
}

/// (row stride, column stride) of W viewed as a `[d_in, d_out]` matrix.
fn w_strides(d: &Dims) -> (usize, usize) {
    match d.layout {
        Layout::InOut => (d.d_out, 1),
        Layout::OutIn => (1, d.d_in),
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
    let out = &mut out[..d.rows * d.d_out];
    let mut read = accumulate;
    if let Some(b) = bias {
        assert_eq!(b.len(), d.d_out);
        for row in out.chunks_exact_mut(d.d_out) {
            if accumulate {
                row.iter_mut().zip(b).for_each(|(o, b)| *o += b);
            } else {
                row.copy_from_slice(b);
            }
        }
        read = true;
    }
    let (w_rs, w_cs) = w_strides(&d);
    gemm_strided(
        d.rows,
        d.d_out,
        d.d_in,
        out.as_mut_ptr(),
        d.d_out,
        read,
        x.as_ptr(),
        (d.d_in, 1),
        w.as_ptr(),
        (w_rs, w_cs),
        1.0,
        true,
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
    if let Some(dx) = dx {
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
        );
    }
    match d.layout {
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
        ),
    }
    if let Some(db) = dbias {
        assert_eq!(db.len(), d.d_out);
        for row in dout[..d.rows * d.d_out].chunks_exact(d.d_out) {
            db.iter_mut().zip(row).for_each(|(b, g)| *b += g);
        }
    }
}

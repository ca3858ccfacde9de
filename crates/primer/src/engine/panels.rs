//! Inference-only linear layers on weights packed once, ahead of time, into the order `gemm`'s kernel reads.
//!
//! On every call `gemm` copies the weight matrix into 16-column panels before it multiplies; for one sequence of
//! 128 tokens through MiniLM that copy took 12 % of the forward pass. A model that will not be trained again can
//! hold its weights in that order once and for all: [`pack`] turns an `[in, out]` matrix into `[out/16, in, 16]`
//! panels, and [`forward`] runs `gemm`'s own AVX2/FMA microkernel over them directly, 16 output columns by up to
//! 6 rows at a time. Only widths that are multiples of 16 are packed, so the packed matrix has the same size as
//! the original and can replace it in the flat parameter buffer.

use super::{simd, SendPtr};
use gemm_common::microkernel::MicroKernelFn;
use rayon::prelude::*;

/// Output columns per panel (the kernel's two 8-lane registers).
pub const WIDTH: usize = 16;
/// Rows per kernel call (the kernel's six broadcast rows).
const ROWS: usize = 6;
/// Depth per kernel call: a panel's slice (32 KiB) is reused by every row group of a block while it is in cache.
/// Measured on MiniLM: 512 beat 128, 256, 384 and the whole depth.
const DEPTH: usize = 512;
/// Rows per block, so the block's inputs stay in the L2 cache while every panel passes over them.
const BLOCK: usize = 32 * ROWS;

/// The AVX2/FMA microkernels, indexed by rows − 1, on x86-64 CPUs that have AVX2 and FMA but not AVX-512: where
/// AVX-512 is there, `gemm` multiplies with its wider kernels instead, which these panels do not fit, and the
/// weights stay unpacked.
fn kernels() -> Option<[MicroKernelFn<f32>; ROWS]> {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && !is_x86_feature_detected!("avx512f")
    {
        return Some(gemm_f32::microkernel::fma::f32::UKR[WIDTH / 8 - 1]);
    }
    None
}

/// Whether a `d_out`-wide weight matrix can be packed on this CPU.
pub fn can_pack(d_out: usize) -> bool {
    d_out > 0 && d_out.is_multiple_of(WIDTH) && kernels().is_some()
}

/// Packs `w` (`[d_in, d_out]`, row-major) into panels, in place. `d_out` must be a multiple of [`WIDTH`].
pub fn pack(w: &mut [f32], d_in: usize, d_out: usize) {
    assert!(d_out.is_multiple_of(WIDTH) && w.len() == d_in * d_out);
    let src = w.to_vec();
    for (p, panel) in w.chunks_exact_mut(d_in * WIDTH).enumerate() {
        for (i, dst) in panel.chunks_exact_mut(WIDTH).enumerate() {
            dst.copy_from_slice(&src[i * d_out + p * WIDTH..][..WIDTH]);
        }
    }
}

/// `out[rows×d_out] = x[rows×d_in]·W + b` (or `out += …` when `accumulate`) with `W` packed by [`pack`].
/// `par` splits the panels over the pool's threads.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    rows: usize,
    d_in: usize,
    d_out: usize,
    accumulate: bool,
    par: bool,
) {
    let kernels = kernels().expect("weights are packed only where the microkernel runs");
    assert!(d_out.is_multiple_of(WIDTH) && w.len() == d_in * d_out);
    assert!(out.len() >= rows * d_out && x.len() >= rows * d_in);
    if let Some(b) = bias {
        assert_eq!(b.len(), d_out);
    }
    let n_panels = d_out / WIDTH;
    let threads = if par { rayon::current_num_threads() } else { 1 };
    let per = n_panels.div_ceil(threads).max(1);
    let dst = SendPtr(out.as_mut_ptr());
    let run = |first: usize| {
        let panels = first..(first + per).min(n_panels);
        let cols = panels.start * WIDTH..panels.end * WIDTH;
        for r0 in (0..rows).step_by(BLOCK) {
            let r1 = (r0 + BLOCK).min(rows);
            for p in panels.clone() {
                for k0 in (0..d_in).step_by(DEPTH) {
                    let depth = DEPTH.min(d_in - k0);
                    // the first slice of depth sets the output (or adds to it), the others add to it
                    let add = accumulate || k0 > 0;
                    let lhs = w[p * d_in * WIDTH + k0 * WIDTH..].as_ptr();
                    for r in (r0..r1).step_by(ROWS) {
                        let n = ROWS.min(r1 - r);
                        // SAFETY: the CPU runs the kernel (checked above); it reads a 16 × `depth` panel slice
                        // and `n` rows of `depth` inputs, all inside `w` and `x`, and writes a 16 × `n` block of
                        // `out` (rows r.., columns of panel p) that no other task writes.
                        unsafe {
                            kernels[n - 1](
                                WIDTH,
                                n,
                                depth,
                                dst.get().add(r * d_out + p * WIDTH),
                                lhs,
                                x.as_ptr().add(r * d_in + k0),
                                d_out as isize,
                                1,
                                WIDTH as isize,
                                1,
                                d_in as isize,
                                1.0,
                                1.0,
                                u8::from(add),
                                false,
                                false,
                                false,
                                lhs,
                            );
                        }
                    }
                }
            }
            if let Some(b) = bias {
                for r in r0..r1 {
                    // SAFETY: this task's columns of row r, written by no other task.
                    let row = unsafe {
                        std::slice::from_raw_parts_mut(
                            dst.get().add(r * d_out + cols.start),
                            cols.len(),
                        )
                    };
                    simd::add_assign(row, &b[cols.clone()]);
                }
            }
        }
    };
    // as in `matmul::gemm_strided`: one run of panels per thread, or the whole product here when there is one
    let runs = n_panels.div_ceil(per);
    if runs > 1 {
        (0..runs).into_par_iter().for_each(|i| run(i * per));
    } else {
        run(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::matmul::{self, Dims, Layout};
    use crate::engine::rng::Rng;

    fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n).map(|_| rng.normal()).collect()
    }

    /// Packed products equal `gemm`'s on the unpacked weights, for row counts that leave partial row groups and
    /// blocks, depths that leave a partial slice, with and without bias, overwriting and accumulating, on one
    /// thread and on several.
    #[test]
    fn packed_products_match_gemm() {
        if kernels().is_none() {
            eprintln!("SKIPPED: this CPU multiplies with gemm's AVX-512 kernels (or lacks AVX2), so nothing is packed");
            return;
        }
        let mut rng = Rng::new(5);
        for (rows, d_in, d_out) in [(1, 8, 16), (7, 300, 48), (128, 64, 32), (200, 520, 64)] {
            let x = random(rows * d_in, &mut rng);
            let w = random(d_in * d_out, &mut rng);
            let b = random(d_out, &mut rng);
            let start = random(rows * d_out, &mut rng);
            let mut packed = w.clone();
            pack(&mut packed, d_in, d_out);
            let d = Dims {
                rows,
                d_in,
                d_out,
                layout: Layout::InOut,
            };
            for (bias, accumulate, par) in [
                (None, false, false),
                (Some(&b[..]), false, true),
                (Some(&b[..]), true, false),
                (None, true, true),
            ] {
                let mut want = start.clone();
                matmul::forward(&mut want, &x, &w, bias, d, accumulate);
                let mut got = start.clone();
                forward(
                    &mut got, &x, &packed, bias, rows, d_in, d_out, accumulate, par,
                );
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "rows {rows} d_in {d_in} d_out {d_out} element {i}: {g} vs {e}"
                    );
                }
            }
        }
    }
}

//! Inference-only linear layers on weights packed once, ahead of time, into the order `gemm`'s kernel reads.
//!
//! On every call `gemm` copies the weight matrix into column panels before it multiplies; for one sequence of
//! 128 tokens through MiniLM that copy took 12 % of the forward pass. A model that will not be trained again can
//! hold its weights in that order once and for all: [`pack`] turns an `[in, out]` matrix into
//! `[out/W, in, W]` panels, and [`forward`] runs `gemm`'s own microkernel over them directly, W output columns by
//! up to 6 rows at a time. W is the width of the kernel `gemm` itself multiplies with on this CPU: 64 (four
//! 16-lane registers) with AVX-512, 16 (two 8-lane registers) with AVX2 and FMA. Only widths that are multiples
//! of W are packed, so the packed matrix has the same size as the original and can replace it in the flat
//! parameter buffer.

use super::{simd, SendPtr};
use gemm_common::microkernel::MicroKernelFn;
use rayon::prelude::*;

/// Rows per kernel call (the kernel's six broadcast rows).
const ROWS: usize = 6;
/// Bytes of a panel's slice per kernel call: the slice is reused by every row group of a block while it is in
/// cache. Measured on MiniLM with AVX2: 512 deep (32 KiB) beat 128, 256, 384 and the whole depth.
const SLICE_BYTES: usize = 32 * 1024;
/// Rows per block, so the block's inputs stay in the L2 cache while every panel passes over them.
const BLOCK: usize = 32 * ROWS;

/// The microkernel packed panels are multiplied with on this CPU.
#[derive(Clone, Copy)]
struct Kernel {
    /// Output columns per panel.
    width: usize,
    /// Kernels indexed by rows − 1.
    rows: [MicroKernelFn<f32>; ROWS],
}

impl Kernel {
    /// Depth per kernel call, so that a panel's slice is [`SLICE_BYTES`].
    fn depth(&self) -> usize {
        SLICE_BYTES / (self.width * std::mem::size_of::<f32>())
    }
}

/// `gemm`'s widest kernel on this CPU, the one it multiplies large products with: AVX-512's 64 columns, else
/// AVX2/FMA's 16; none on other CPUs, where weights stay unpacked.
fn kernel() -> Option<Kernel> {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return Some(Kernel {
                width: 64,
                rows: gemm_f32::microkernel::avx512f::f32::UKR[3],
            });
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Some(Kernel {
                width: 16,
                rows: gemm_f32::microkernel::fma::f32::UKR[1],
            });
        }
    }
    None
}

/// Whether a `d_out`-wide weight matrix can be packed on this CPU.
pub fn can_pack(d_out: usize) -> bool {
    kernel().is_some_and(|k| d_out > 0 && d_out.is_multiple_of(k.width))
}

/// Packs `w` (`[d_in, d_out]`, row-major) into panels, in place. [`can_pack`] must allow `d_out`.
pub fn pack(w: &mut [f32], d_in: usize, d_out: usize) {
    assert!(can_pack(d_out) && w.len() == d_in * d_out);
    let width = kernel().expect("can_pack found the kernel").width;
    let src = w.to_vec();
    for (p, panel) in w.chunks_exact_mut(d_in * width).enumerate() {
        for (i, dst) in panel.chunks_exact_mut(width).enumerate() {
            dst.copy_from_slice(&src[i * d_out + p * width..][..width]);
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
    let kernel = kernel().expect("weights are packed only where the microkernel runs");
    let (width, depth_step) = (kernel.width, kernel.depth());
    assert!(d_out.is_multiple_of(width) && w.len() == d_in * d_out);
    assert!(out.len() >= rows * d_out && x.len() >= rows * d_in);
    if let Some(b) = bias {
        assert_eq!(b.len(), d_out);
    }
    let n_panels = d_out / width;
    let threads = if par { rayon::current_num_threads() } else { 1 };
    // runs of panels, one per thread; with fewer panels than threads (64-column ones), runs of rows too, in
    // whole row groups
    let per = n_panels.div_ceil(threads).max(1);
    let panel_runs = n_panels.div_ceil(per);
    let row_runs = (threads / panel_runs).clamp(1, rows.div_ceil(ROWS).max(1));
    let rows_per = rows.div_ceil(row_runs).div_ceil(ROWS) * ROWS;
    let dst = SendPtr(out.as_mut_ptr());
    let run = |task: usize| {
        let first = (task % panel_runs) * per;
        let panels = first..(first + per).min(n_panels);
        let cols = panels.start * width..panels.end * width;
        let row_start = (task / panel_runs) * rows_per;
        let row_end = rows.min(row_start + rows_per);
        for r0 in (row_start..row_end).step_by(BLOCK) {
            let r1 = (r0 + BLOCK).min(row_end);
            for p in panels.clone() {
                for k0 in (0..d_in).step_by(depth_step) {
                    let depth = depth_step.min(d_in - k0);
                    // the first slice of depth sets the output (or adds to it), the others add to it
                    let add = accumulate || k0 > 0;
                    let lhs = w[p * d_in * width + k0 * width..].as_ptr();
                    for r in (r0..r1).step_by(ROWS) {
                        let n = ROWS.min(r1 - r);
                        // SAFETY: the CPU runs the kernel (checked above); it reads a width × `depth` panel slice
                        // and `n` rows of `depth` inputs, all inside `w` and `x`, and writes a width × `n` block of
                        // `out` (rows r.., columns of panel p) that no other task writes: tasks differ in their
                        // panels or their rows.
                        unsafe {
                            kernel.rows[n - 1](
                                width,
                                n,
                                depth,
                                dst.get().add(r * d_out + p * width),
                                lhs,
                                x.as_ptr().add(r * d_in + k0),
                                d_out as isize,
                                1,
                                width as isize,
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
                    // SAFETY: this task's columns of its row r, written by no other task.
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
    // as in `matmul::gemm_strided`: one task per thread, or the whole product here when there is one
    let tasks = panel_runs * rows.div_ceil(rows_per.max(1));
    if tasks > 1 {
        (0..tasks).into_par_iter().for_each(run);
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
        if kernel().is_none() {
            eprintln!("SKIPPED: this CPU has neither AVX-512 nor AVX2, so nothing is packed");
            return;
        }
        let mut rng = Rng::new(5);
        for (rows, d_in, d_out) in [(1, 8, 64), (7, 300, 192), (128, 64, 128), (200, 1100, 64)] {
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

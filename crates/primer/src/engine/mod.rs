//! The compute engine: plain kernels over `f32` slices, each with its forward and backward side by side.
//!
//! Parameters live in one flat buffer described by a [`params::ParamLayout`]; gradients and optimizer moments
//! use the same layout. Matrix products go through `gemm`; everything else is fused here and parallelised with
//! `rayon` over rows or (batch, head) pairs. Reductions use fixed-size chunks; matrix products are split into one
//! block per thread, so results are deterministic for a given thread count (not across thread counts).

pub mod adamw;
pub mod attention;
pub mod awake;
pub mod dropout;
pub mod embedding;
pub mod gelu;
#[cfg(test)]
mod gradcheck;
pub mod layernorm;
pub mod matmul;
pub mod panels;
pub mod params;
pub mod rng;
pub mod simd;
pub mod tanh;
pub mod xent;

/// A raw pointer that may cross threads. Kernels use it only to write disjoint regions of one buffer from
/// several (batch, head) tasks, which the borrow checker cannot see are disjoint.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `SendPtr`, not its non-`Send` field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Rows per parallel task for row-wise kernels; fixed so reductions are identical whatever the thread count.
pub(crate) const ROW_CHUNK: usize = 16;

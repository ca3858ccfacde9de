//! Inverted dropout with a counter-based mask: element `i` is dropped when `uniform_at(seed, i) < p`, so the
//! backward pass regenerates the mask instead of storing it.

use super::rng::uniform_at;
use rayon::prelude::*;

const CHUNK: usize = 16 * 1024;

/// Applies dropout in place: zero with probability `p`, otherwise scale by `1/(1−p)`. Used for both the
/// forward pass (on activations) and the backward pass (on their gradients, with the same seed).
pub fn apply(x: &mut [f32], p: f32, seed: u64) {
    if p <= 0.0 {
        return;
    }
    let keep = 1.0 / (1.0 - p);
    x.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, chunk)| {
        let base = (ci * CHUNK) as u64;
        for (j, v) in chunk.iter_mut().enumerate() {
            *v = if uniform_at(seed, base + j as u64) < p {
                0.0
            } else {
                *v * keep
            };
        }
    });
}

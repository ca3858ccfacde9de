//! Token (+ position) embedding lookup, and its backward as a scatter-add.

use super::simd;
use rayon::prelude::*;

/// `out[b, t] = wte[ids[b, t]] + wpe[pos0 + t]` (no positions when `wpe` is `None`). `ids` is `[batch, t]`.
pub fn forward(
    out: &mut [f32],
    ids: &[u32],
    wte: &[f32],
    wpe: Option<&[f32]>,
    t: usize,
    pos0: usize,
    c: usize,
) {
    out[..ids.len() * c]
        .par_chunks_mut(c)
        .zip(ids.par_iter())
        .enumerate()
        .for_each(|(i, (o, &id))| {
            let id = id as usize;
            o.copy_from_slice(&wte[id * c..(id + 1) * c]);
            if let Some(wpe) = wpe {
                let p = pos0 + i % t;
                simd::add_assign(o, &wpe[p * c..(p + 1) * c]);
            }
        });
}

/// Adds `dout[b, t]` to `dwte[ids[b, t]]` and to `dwpe[t]`.
pub fn backward(
    dwte: &mut [f32],
    dwpe: Option<&mut [f32]>,
    dout: &[f32],
    ids: &[u32],
    t: usize,
    c: usize,
) {
    for (g, &id) in dout.chunks_exact(c).zip(ids) {
        let id = id as usize;
        simd::add_assign(&mut dwte[id * c..(id + 1) * c], g);
    }
    if let Some(dwpe) = dwpe {
        for (i, g) in dout[..ids.len() * c].chunks_exact(c).enumerate() {
            let p = i % t;
            simd::add_assign(&mut dwpe[p * c..(p + 1) * c], g);
        }
    }
}

/// `out[i] += table[ids[i]]` for each row `i` (BERT's token-type embedding). Its backward is [`backward`]
/// without positions.
pub fn add(out: &mut [f32], ids: &[u32], table: &[f32], c: usize) {
    out[..ids.len() * c]
        .par_chunks_mut(c)
        .zip(ids.par_iter())
        .for_each(|(o, &id)| {
            let id = id as usize;
            simd::add_assign(o, &table[id * c..(id + 1) * c]);
        });
}

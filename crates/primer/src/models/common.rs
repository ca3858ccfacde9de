//! Pieces shared by the model files: per-layer slices of activation buffers, dropout seeds per site, residual
//! branches with optional dropout, and the row chunk of a vocabulary-wide head.

use crate::engine::matmul::{self, Dims};
use crate::engine::rng::derive_seed;
use crate::engine::{dropout, simd};
use std::ops::Range;

/// Rows of logits computed at once by the chunked head (about 1 M floats, 4 MiB; each data-parallel shard has its own).
pub(crate) fn head_chunk(rows: usize, vocab: usize) -> usize {
    ((1 << 20) / vocab.max(1)).clamp(1, rows.max(1))
}

/// Splits sequences of lengths `lens` into at most `parts` non-empty runs of consecutive sequences holding about
/// equal numbers of tokens (a run ends once it reaches its share of what is left).
pub(crate) fn balanced_runs(lens: &[usize], parts: usize) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut left) = (0, lens.iter().sum::<usize>());
    while start < lens.len() {
        let k = parts.saturating_sub(runs.len()).max(1);
        let share = left.div_ceil(k);
        let mut end = start;
        let mut got = 0;
        // leave at least one sequence for each run still to come
        while end < lens.len() && (end == start || (got < share && lens.len() - end >= k)) {
            got += lens[end];
            end += 1;
        }
        if k == 1 {
            end = lens.len();
        }
        runs.push(start..end);
        left -= lens[start..end].iter().sum::<usize>();
        start = end;
    }
    runs
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
        simd::add_assign(&mut dst[r * c..(r + 1) * c], s);
    }
}

#[cfg(test)]
mod tests {
    use super::balanced_runs;

    #[test]
    fn balanced_runs_cover_every_sequence_once_with_even_tokens() {
        assert_eq!(balanced_runs(&[5; 32], 2), vec![0..16, 16..32]);
        assert_eq!(
            balanced_runs(&[9, 1, 1, 1, 1, 1, 1, 1, 1, 1], 2),
            vec![0..1, 1..10]
        );
        assert_eq!(balanced_runs(&[1, 1, 1, 1, 1, 1, 9], 2), vec![0..6, 6..7]);
        assert_eq!(balanced_runs(&[3, 3, 3], 3), vec![0..1, 1..2, 2..3]);
        // more threads than sequences: one run each
        assert_eq!(balanced_runs(&[4, 2], 8), vec![0..1, 1..2]);
        assert_eq!(balanced_runs(&[7], 2), vec![0..1]);
        assert_eq!(balanced_runs(&[4, 4, 4, 4], 1), vec![0..4]);
        assert!(balanced_runs(&[], 2).is_empty());
        for parts in 1..6 {
            let lens: Vec<usize> = (0..23).map(|i| 1 + (i * 7) % 11).collect();
            let runs = balanced_runs(&lens, parts);
            assert_eq!(runs.len(), parts, "{parts} parts");
            assert!(runs
                .windows(2)
                .all(|w| w[0].end == w[1].start && !w[0].is_empty()));
            assert_eq!((runs[0].start, runs[parts - 1].end), (0, 23));
            let tokens: Vec<usize> = runs.iter().map(|r| lens[r.clone()].iter().sum()).collect();
            let (lo, hi) = (tokens.iter().min().unwrap(), tokens.iter().max().unwrap());
            assert!(hi - lo <= 11 + 11, "{parts} parts: {tokens:?}");
        }
    }
}

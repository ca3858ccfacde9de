//! A lower bound on the memory a run needs (training, inference, or a model read from a checkpoint), checked
//! before anything is allocated, so that absurd sizes (`--n-embd 65536`, `--batch-size 10000000000`,
//! `n_positions: 1e12` in a config.json) are refused, naming what to lower, instead of aborting the process in
//! the allocator, or overflowing a size computation.

use crate::error::{Error, Result};

/// Bytes per parameter while training: the weights, their gradients and AdamW's two moments, all f32.
const TRAINING_BYTES_PER_PARAM: u128 = 16;

/// What a run holds at least: `params` trainable parameters and `floats` other f32 values (activations, logits,
/// batches). Saturates instead of overflowing, so any absurd size comes out larger than memory.
pub(crate) fn lower_bound(params: u128, floats: u128) -> u128 {
    params
        .saturating_mul(TRAINING_BYTES_PER_PARAM)
        .saturating_add(floats.saturating_mul(4))
}

/// The product of `factors`, saturating at `u128::MAX`.
pub(crate) fn product(factors: &[usize]) -> u128 {
    factors
        .iter()
        .fold(1u128, |acc, &f| acc.saturating_mul(f as u128))
}

/// Refuses settings that need more than this machine's memory (when it can be read: `/proc/meminfo`), or more
/// than 2⁶⁴ bytes anywhere; `lower` names the flags that shrink the run.
pub(crate) fn check_fits(bytes: u128, lower: &str) -> Result<()> {
    refuse_beyond_memory(bytes, |need, have| {
        format!("these settings need at least {need} of memory ({have}): lower {lower}")
    })
}

/// Refuses a model config whose weights alone (`params` f32 values) would not fit in memory, as [`check_fits`]
/// does, before anything is allocated: a `config.json` with `n_positions: 1e12` is an error, not an abort in the
/// allocator.
pub(crate) fn check_model_fits(params: u128) -> Result<()> {
    refuse_beyond_memory(params.saturating_mul(4), |need, have| {
        format!("the sizes describe a model of {params} parameters, {need} of weights ({have})")
    })
}

/// `Ok` when `bytes` fit in this machine's memory (2⁶⁴ bytes where it cannot be read), else the error
/// `message(needed, what the machine has)` words.
fn refuse_beyond_memory(bytes: u128, message: impl FnOnce(String, String) -> String) -> Result<()> {
    let total = physical_memory();
    if bytes <= total.unwrap_or(u64::MAX as u128) {
        return Ok(());
    }
    let gib = |b: u128| format!("{:.1} GiB", b as f64 / (1u128 << 30) as f64);
    let have = match total {
        Some(t) => format!("this machine has {}", gib(t)),
        None => "no machine has that much".into(),
    };
    Err(Error::Config(message(gib(bytes), have)))
}

/// Total physical memory, from `/proc/meminfo` (Linux); `None` elsewhere.
fn physical_memory() -> Option<u128> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u128 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_sizes_are_refused_and_small_ones_pass() {
        assert!(check_fits(lower_bound(1_000_000, 1_000_000), "--n-embd").is_ok());
        let huge = lower_bound(product(&[usize::MAX, usize::MAX, 3]), 0);
        assert_eq!(huge, u128::MAX, "saturates instead of overflowing");
        let e = check_fits(huge, "--n-embd or --batch-size")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("GiB") && e.contains("--n-embd or --batch-size"),
            "{e}"
        );
        assert!(check_model_fits(124_000_000).is_ok(), "GPT-2 small");
        let e = check_model_fits(product(&[1_000_000_000_000, 768]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("768000000000000 parameters"), "{e}");
    }
}

//! Benchmarks against the PyTorch references in `scripts/`: the same workloads, timed step by step on one
//! machine, so the two can be compared as a ratio.

pub mod bert;
pub mod finetune;
pub mod gpt;

/// Result of a benchmark run.
pub struct BenchResult {
    pub params: usize,
    pub median_step_ms: f64,
    pub tokens_per_s: f64,
    pub loss_first: f64,
    pub loss_last: f64,
    pub peak_rss_mib: f64,
}

/// Median of `times` (NaN when empty).
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Peak resident memory of this process (VmHWM), in MiB; NaN where /proc is unavailable.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

//! Helpers shared by the unit tests.

#[path = "../tests/common/scratch.rs"]
mod scratch;
pub(crate) use scratch::Scratch;

use std::cell::Cell;
use std::path::Path;

thread_local! {
    /// How many crash points this thread passes before the simulated crash ([`crash_after`]); `None`: none armed.
    static CRASH_IN: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Arms a simulated crash on this thread: the write that reaches the crash point after passing `n` others
/// stops there by unwinding, so that no error path tidies up behind it, and leaves its files as a killed
/// process would. `None` disarms it.
pub(crate) fn crash_after(n: Option<usize>) {
    CRASH_IN.set(n);
}

/// Counts a crash point down and unwinds (without the panic hook's message) when it is the armed one.
pub(crate) fn crash_point() {
    match CRASH_IN.get() {
        Some(0) => {
            CRASH_IN.set(None);
            std::panic::resume_unwind(Box::new("simulated crash"));
        }
        Some(n) => CRASH_IN.set(Some(n - 1)),
        None => {}
    }
}

/// A fresh, empty directory of this test's own under the system temp dir, named for `prefix` and `name`.
pub(crate) fn scratch_dir(prefix: &str, name: &str) -> Scratch {
    Scratch::fresh(prefix, name)
}

/// The names of the entries of `dir`, sorted.
pub(crate) fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Checks, for every tensor of `layout`, its largest gradient entry in `g` and one at random against central
/// differences (step `h`) of `loss`, the loss as a function of the whole parameter vector `params`: the error
/// must stay within 3e-3 + 5 % of the numeric value. `what` names the case in failures.
pub(crate) fn check_gradients(
    layout: &crate::engine::params::ParamLayout,
    params: &[f32],
    g: &[f32],
    h: f32,
    loss: &dyn Fn(&[f32]) -> f64,
    what: &str,
) {
    let mut rng = crate::engine::rng::Rng::new(1);
    let mut p = params.to_vec();
    for spec in layout.specs() {
        let r = spec.range();
        let biggest = r
            .clone()
            .max_by(|&i, &j| g[i].abs().total_cmp(&g[j].abs()))
            .unwrap();
        let random = r.start + rng.below(r.len() as u64) as usize;
        for i in [biggest, random] {
            p[i] = params[i] + h;
            let up = loss(&p);
            p[i] = params[i] - h;
            let down = loss(&p);
            p[i] = params[i];
            let num = (up - down) / (2.0 * h as f64);
            let err = (g[i] as f64 - num).abs();
            assert!(
                err <= 3e-3 + 0.05 * num.abs(),
                "{what}: {}[{}]: analytic {} vs numeric {num}",
                spec.name,
                i - r.start,
                g[i]
            );
        }
    }
}

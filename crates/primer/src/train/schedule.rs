//! Learning-rate schedules: linear warm-up, then cosine decay to a floor (nanoGPT's, for pretraining) or linear
//! decay to zero (Hugging Face's default, for fine-tuning).

/// Learning rate at `step`: linear warm-up over `warmup` steps to `lr`, cosine decay to `min_lr` at
/// `decay_steps`, `min_lr` after.
pub fn cosine_lr(step: usize, lr: f32, min_lr: f32, warmup: usize, decay_steps: usize) -> f32 {
    if step < warmup {
        return lr * (step as f32 + 1.0) / (warmup as f32 + 1.0);
    }
    if step >= decay_steps {
        return min_lr;
    }
    let ratio = (step - warmup) as f32 / (decay_steps - warmup).max(1) as f32;
    let coeff = 0.5 * (1.0 + (std::f32::consts::PI * ratio).cos());
    min_lr + coeff * (lr - min_lr)
}

/// Where a run's `--lr-decay-iters` came from, which [`warmup_warning`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecayFrom {
    /// Left out: the decay ends at `--max-iters`.
    MaxIters,
    /// Given, as a flag or in the `--config` file.
    Given,
    /// A resumed run's, fixed when it started.
    Run,
}

impl DecayFrom {
    /// For a run that `resume`s or not, with `--lr-decay-iters` as given (0 when left out).
    pub fn of(resume: bool, lr_decay_iters: usize) -> DecayFrom {
        match (resume, lr_decay_iters) {
            (true, _) => DecayFrom::Run,
            (false, 0) => DecayFrom::MaxIters,
            (false, _) => DecayFrom::Given,
        }
    }
}

/// A warning for a pretraining schedule whose warm-up does not end before the cosine decay would: the rate then
/// rises for the whole warm-up and drops to `--min-lr` after it, with no decay (nanoGPT's rule, kept so that
/// settings carry over).
pub fn warmup_warning(warmup: usize, decay_steps: usize, from: DecayFrom) -> Option<String> {
    let decay_from = match from {
        DecayFrom::MaxIters => " (default: --max-iters)",
        DecayFrom::Given => "",
        DecayFrom::Run => " (the run's, fixed when it started)",
    };
    (warmup >= decay_steps).then(|| {
        format!(
            "warning: --warmup-iters {warmup} is not shorter than --lr-decay-iters {decay_steps}{decay_from}: \
             the learning rate rises until step {warmup}, then drops straight to --min-lr with no decay between \
             (nanoGPT's rule); lower --warmup-iters for a warm-up, then a decay"
        )
    })
}

/// A note for a resumed run (which has steps left: `check_resume` refuses one that has not) that goes on to
/// `max_iters` past the end of its schedule (`--min-lr` from the end of the warm-up or of the decay, whichever is
/// later; `--lr-decay-iters` is kept from the run's start): those steps train at `--min-lr`, which a user
/// resuming to train longer may not expect.
pub fn past_schedule_note(
    max_iters: usize,
    (warmup, decay_steps): (usize, usize),
    min_lr: f32,
) -> Option<String> {
    let end = warmup.max(decay_steps);
    (max_iters > end).then(|| {
        format!(
            "note: the learning-rate schedule ends at step {end} (--warmup-iters {warmup}, and --lr-decay-iters \
             {decay_steps}, which a resumed run keeps), so the last {} of the {max_iters} steps train at --min-lr \
             {min_lr}",
            max_iters - end
        )
    })
}

/// Linear warm-up over `warmup` steps to `lr`, then linear decay to zero at `total`.
pub fn linear_lr(step: usize, lr: f32, warmup: usize, total: usize) -> f32 {
    if step < warmup {
        lr * (step + 1) as f32 / warmup as f32
    } else {
        lr * (total.saturating_sub(step)) as f32 / total.saturating_sub(warmup).max(1) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::{cosine_lr, linear_lr, DecayFrom};

    #[test]
    fn warmup_peak_and_floor() {
        let f = |s| cosine_lr(s, 1.0, 0.1, 10, 110);
        assert!((f(0) - 1.0 / 11.0).abs() < 1e-6);
        assert!(f(5) < f(9) && f(9) < 1.0);
        assert!((f(10) - 1.0).abs() < 1e-6);
        assert!(
            (f(60) - 0.55).abs() < 1e-6,
            "halfway is the mean of lr and min_lr"
        );
        assert!((f(110) - 0.1).abs() < 1e-6 && (f(500) - 0.1).abs() < 1e-6);
        assert!((10..110).all(|s| f(s + 1) <= f(s)));
    }

    /// An absurd warm-up gives a tiny rate, not an overflow to infinity; a warm-up past the decay is warned of.
    #[test]
    fn huge_warmup_stays_finite_and_is_warned_of() {
        let lr = cosine_lr(3, 1e-3, 1e-4, usize::MAX, 10);
        assert!(lr.is_finite() && lr > 0.0 && lr < 1e-3, "{lr}");
        let warn = |from| super::warmup_warning(100, 20, from);
        let w = warn(DecayFrom::MaxIters);
        assert!(w.is_some_and(|w| w.contains(
            "--warmup-iters 100 is not shorter than --lr-decay-iters 20 \
             (default: --max-iters):"
        )));
        let w = warn(DecayFrom::of(false, 20));
        assert!(
            w.is_some_and(|w| w.contains("--lr-decay-iters 20: ")),
            "given, so no default named"
        );
        let w = warn(DecayFrom::of(true, 0));
        assert!(w.is_some_and(|w| w.contains("(the run's, fixed when it started)")));
        assert!(super::warmup_warning(10, 20, DecayFrom::MaxIters).is_none());
        let note = super::past_schedule_note(60, (5, 20), 1e-4);
        assert!(note.is_some_and(
            |n| n.contains("ends at step 20") && n.contains("the last 40 of the 60 steps")
        ));
        // a warm-up longer than the decay holds the rate up until it ends
        let note = super::past_schedule_note(60, (30, 20), 1e-4);
        assert!(note.is_some_and(|n| n.contains("ends at step 30") && n.contains("the last 30 of")));
        assert!(super::past_schedule_note(40, (5, 40), 1e-4).is_none());
        // past a warm-up longer than the run (10 of 4 steps): zero, not an underflow
        assert_eq!(linear_lr(12, 1.0, 10, 4), 0.0);
    }
}

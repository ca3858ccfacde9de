//! Random numbers. [`Rng`] is a small sequential generator whose whole state is one `u64`, so a checkpoint can
//! store it; [`uniform_at`] is counter-based (a hash of seed and index), so dropout masks can be regenerated in
//! the backward pass without being stored.

/// SplitMix64: a sequential generator with a one-word state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The whole state, for checkpoints.
    pub fn state(&self) -> u64 {
        self.state
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in [0, n). `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// A standard Gumbel draw, −ln(−ln u) for u uniform in (0, 1): adding one to each of several log-weights
    /// and taking the largest picks in proportion to the weights.
    pub fn gumbel(&mut self) -> f64 {
        -(-self.open_unit().ln()).ln()
    }

    /// Uniform in the open interval (0, 1), so that its logarithm is finite.
    fn open_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.open_unit();
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// A seed for one use (e.g. the dropout of layer 3 at step 1200), derived from a run seed and a few counters.
pub fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(seed ^ 0x5eed), |h, &p| {
        mix(h ^ p.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    })
}

/// Counter-based uniform in [0, 1): the same (seed, index) always gives the same number.
#[inline(always)]
pub fn uniform_at(seed: u64, index: u64) -> f32 {
    (mix(seed ^ mix(index)) >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_determinism() {
        let mut r = Rng::new(7);
        let n = 200_000;
        let (mut s, mut s2, mut u) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..n {
            let z = r.normal() as f64;
            s += z;
            s2 += z * z;
            u += uniform_at(3, i) as f64;
        }
        assert!((s / n as f64).abs() < 0.01);
        assert!((s2 / n as f64 - 1.0).abs() < 0.02);
        assert!((u / n as f64 - 0.5).abs() < 0.005);
        let mut a = Rng::new(11);
        let mut b = Rng::new(11);
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert_ne!(derive_seed(1, &[2, 3]), derive_seed(1, &[3, 2]));
        assert!((0..10_000).all(|_| r.below(10) < 10));
    }
}

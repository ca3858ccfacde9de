//! Fast, branch-free `exp`, `erf` and `tanh` that the compiler vectorises, and [`multiversion!`], which compiles a
//! kernel body once more for AVX-512 and AVX2 and picks the best at run time (the binary stays portable).

/// Defines `pub fn NAME(args)` whose body is compiled three times: for AVX-512F, for AVX2+FMA and for the
/// baseline target; the fastest one the CPU supports runs. Helpers the body calls must be `#[inline(always)]`.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? $body
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? $body
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the features this copy was compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { v3($($arg),*) };
                }
            }
            #[allow(clippy::too_many_arguments)]
            fn base($($arg: $ty),*) $(-> $ret)? $body
            base($($arg),*)
        }
    };
}
pub(crate) use multiversion;

const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits

/// `e^x` with relative error below 2e-7 (Cephes' polynomial), branch-free.
///
/// This and the functions below are written with fused multiply-adds (`mul_add`): in a [`multiversion!`] kernel
/// each is one instruction (GELU and softmax take about a third less time than with separate multiplies and adds);
/// elsewhere, or on a CPU without FMA, it is a libm call with the same result, so these functions give the same
/// values on every CPU.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x.mul_add(std::f32::consts::LOG2_E, MAGIC);
    let n = t - MAGIC;
    let r = n.mul_add(2.121_944_4e-4, n.mul_add(-0.693_359_4, x));
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_2e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 0.166_666_65);
    p = p.mul_add(r, 0.5);
    let e = (p * r).mul_add(r, r + 1.0);
    let bits = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    f32::from_bits((e.to_bits() as i32).wrapping_add(bits << 23) as u32)
}

/// `erf(x)` with absolute error below 2e-7 (Abramowitz & Stegun 7.1.26), branch-free.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    erf_and_gauss(x).0
}

/// `(erf(x), e^(−x²))`: the Gaussian factor is computed for erf anyway, and GELU's derivative needs it too.
#[inline(always)]
pub fn erf_and_gauss(x: f32) -> (f32, f32) {
    let a = x.abs();
    let g = exp(-a * a);
    let t = 1.0 / 0.327_591_1_f32.mul_add(a, 1.0);
    let mut p = 1.061_405_4_f32;
    p = p.mul_add(t, -1.453_152);
    p = p.mul_add(t, 1.421_413_8);
    p = p.mul_add(t, -0.284_496_72);
    p = p.mul_add(t, 0.254_829_6);
    let y = (-p * t).mul_add(g, 1.0);
    (y.copysign(x), g)
}

/// `tanh(x)`, branch-free, through `exp`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// Lanes of the independent accumulators below: floating-point sums are only vectorised when the code itself
/// keeps separate partial sums (the compiler may not reorder additions).
const LANES: usize = 16;

/// Σ x, vectorised.
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ a·b, vectorised.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ a·b·c, vectorised.
#[inline(always)]
pub fn dot3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
    let n = a.len().min(b.len()).min(c.len());
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    let mut acc = [0.0f32; LANES];
    let full = n - n % LANES;
    for j in (0..full).step_by(LANES) {
        for i in 0..LANES {
            acc[i] += a[j + i] * b[j + i] * c[j + i];
        }
    }
    let tail: f32 = (full..n).map(|i| a[i] * b[i] * c[i]).sum();
    acc.iter().sum::<f32>() + tail
}

/// max x (−∞ for an empty slice), vectorised.
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for c in chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter().fold(tail, |a, &b| if b > a { b } else { a })
}

/// Replaces each x by e^(x − m) and returns their sum, vectorised.
#[inline(always)]
pub fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in chunks.by_ref() {
        for i in 0..LANES {
            c[i] = exp(c[i] - m);
            acc[i] += c[i];
        }
    }
    let mut tail = 0.0;
    for v in chunks.into_remainder() {
        *v = exp(*v - m);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ e^(x − m) without changing x, vectorised.
#[inline(always)]
pub fn exp_sub_sum_ro(x: &[f32], m: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| exp(v - m)).sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += exp(c[i] - m);
        }
    }
    acc.iter().sum::<f32>() + tail
}

multiversion! {
    /// `dst[i] += src[i]` over the shorter of the two.
    pub fn add_assign(dst: &mut [f32], src: &[f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += s;
        }
    }
}

multiversion! {
    /// `dst[i] += src[offset + i]` for each row of `rows` (rows `width` long), rows in order: column sums of
    /// the block `offset..offset + dst.len()`.
    pub fn add_rows(dst: &mut [f32], rows: &[f32], width: usize, offset: usize) {
        let n = dst.len();
        for row in rows.chunks_exact(width) {
            for (d, s) in dst.iter_mut().zip(&row[offset..offset + n]) {
                *d += s;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #[test]
    fn exp_erf_tanh_match_std_and_reference() {
        let mut worst = [0.0f64; 3];
        for i in -4000..=4000 {
            let x = i as f32 * 0.01;
            let e = super::exp(x) as f64;
            let re = (x as f64).exp();
            worst[0] = worst[0].max(((e - re) / re).abs());
            worst[1] = worst[1].max((super::erf(x) as f64 - erf64(x as f64)).abs());
            worst[2] = worst[2].max((super::tanh(x) as f64 - (x as f64).tanh()).abs());
        }
        assert!(worst[0] < 5e-7, "exp rel err {}", worst[0]);
        assert!(worst[1] < 5e-7, "erf abs err {}", worst[1]);
        assert!(worst[2] < 5e-7, "tanh abs err {}", worst[2]);
        assert_eq!(super::exp(-200.0), super::exp(-87.0));
        assert!(super::exp(-87.0) > 0.0 && super::exp(100.0).is_finite());
    }

    #[test]
    fn reductions_match_sequential() {
        for n in [0usize, 1, 15, 16, 17, 100, 1000] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let y: Vec<f32> = (0..n)
                .map(|i| ((i * 13 % 29) as f32 - 14.0) / 3.0)
                .collect();
            let close = |a: f32, b: f64| (a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs());
            assert!(close(super::sum(&x), x.iter().map(|&v| v as f64).sum()));
            assert!(close(
                super::dot(&x, &y),
                x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum()
            ));
            let d3: f64 = x
                .iter()
                .zip(&y)
                .map(|(&a, &b)| a as f64 * b as f64 * a as f64)
                .sum();
            assert!(close(super::dot3(&x, &y, &x), d3));
            let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(super::max(&x), m);
            let want: f64 = x.iter().map(|&v| ((v - m) as f64).exp()).sum();
            assert!(close(super::exp_sub_sum_ro(&x, m), want));
            let mut e = x.clone();
            assert!(close(super::exp_sub_sum(&mut e, m), want));
            assert!(e
                .iter()
                .zip(&x)
                .all(|(a, &b)| close(*a, ((b - m) as f64).exp())));
        }
    }

    #[test]
    fn add_assign_and_add_rows_match_scalar_loops() {
        let rows: Vec<f32> = (0..7 * 45).map(|i| (i % 23) as f32 * 0.5 - 3.0).collect();
        for (offset, n) in [(0, 45), (3, 40), (40, 5), (0, 0)] {
            let mut got: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let mut want = got.clone();
            super::add_rows(&mut got, &rows, 45, offset);
            for r in rows.chunks_exact(45) {
                for (w, s) in want.iter_mut().zip(&r[offset..]) {
                    *w += s;
                }
            }
            assert_eq!(got, want);
        }
        let mut a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        super::add_assign(&mut a, &rows[..20]);
        assert!(a[..20]
            .iter()
            .enumerate()
            .all(|(i, &v)| v == i as f32 + rows[i]));
        assert!(a[20..]
            .iter()
            .enumerate()
            .all(|(i, &v)| v == (i + 20) as f32));
    }

    /// erf by its Taylor series / continued fraction in f64, accurate to ~1e-15 on [-40, 40].
    pub(crate) fn erf64(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let (mut sum, mut term, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc continued fraction (Lentz), good for |x| >= 3
            let a = x.abs();
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f);
            (1.0 - erfc).copysign(x)
        }
    }
}

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
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let bits = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    f32::from_bits((e.to_bits() as i32).wrapping_add(bits << 23) as u32)
}

/// `erf(x)` with absolute error below 2e-7 (Abramowitz & Stegun 7.1.26), branch-free.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4_f32;
    p = p * t - 1.453_152;
    p = p * t + 1.421_413_8;
    p = p * t - 0.284_496_72;
    p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

/// `tanh(x)`, branch-free, through `exp`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
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

//! The element types of the fast path (f32 and f64) and the few scalar functions the kernels need.

use candle::WithDType;

mod sealed {
    /// Implemented for `f32` and `f64` only: the unsafe code of the kernels ([`super::uninit_vec`],
    /// raw-pointer loops) relies on [`super::Float`] being a plain IEEE float without drop glue or
    /// invalid bit patterns, so no other crate may implement it.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A float element the kernels run on: `f32` (training and sampling) or `f64` (reference checks).
/// Sealed: implemented for exactly these two types.
pub trait Float: sealed::Sealed + WithDType + num_traits::Float + Default {
    /// The value as f64 (Candle's conversion, unambiguous next to num-traits' fallible one).
    #[inline(always)]
    fn as_f64(self) -> f64 {
        WithDType::to_f64(self)
    }

    /// `exp(x)`; for f32 a branch-free polynomial (relative error below 4e-7, a few ulp) that the compiler
    /// can vectorise, for f64 the standard library's.
    fn fast_exp(self) -> Self;

    /// `sigmoid(x) = 1 / (1 + exp(−x))`.
    #[inline(always)]
    fn sigmoid(self) -> Self {
        Self::one() / (Self::one() + (-self).fast_exp())
    }
}

impl Float for f64 {
    #[inline(always)]
    fn fast_exp(self) -> Self {
        self.exp()
    }
}

impl Float for f32 {
    /// `exp(x) = 2^n · e^r` with `n = round(x / ln 2)`, `r = x − n ln 2` (in two parts for
    /// accuracy) and `e^r` by its degree-6 Taylor polynomial on `|r| ≤ ln 2 / 2`; `x` is clamped to
    /// `[−87, 88]`, so the result stays a normal float (no inf, no NaN for finite input).
    #[inline(always)]
    fn fast_exp(self) -> Self {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to an integer
        let x = self.clamp(-87.0, 88.0);
        let t = x * LOG2E + ROUND;
        let n = t - ROUND;
        let r = x - n * LN2_HI - n * LN2_LO;
        let p = 1.0
            + r * (1.0
                + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
        // `t`'s mantissa holds n + 1.5·2^23 exactly: its bits minus those of ROUND are n (an
        // integer-only step, unlike a float-to-int cast, which needs checks and does not vectorise).
        let ni = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
        let scale = f32::from_bits(((ni + 127) as u32) << 23);
        p * scale
    }
}

/// A vector of `n` elements whose contents are unspecified (like Candle's `alloc_uninit`), for
/// outputs that are overwritten in full before they are read: it skips a memset of the output.
#[allow(clippy::uninit_vec)]
pub(crate) fn uninit_vec<T: Float>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: f32 and f64 have no invalid bit patterns, the capacity is `n`, and callers write
    // every element before reading it.
    unsafe { v.set_len(n) };
    v
}

/// `s` as f32 elements when `T` is f32 (for kernels written for f32 alone).
pub(crate) fn as_f32<T: Float>(s: &[T]) -> Option<&[f32]> {
    // SAFETY: T is f32 itself, so the cast changes nothing.
    is_f32::<T>().then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
}

/// [`as_f32`] of a mutable slice.
pub(crate) fn as_f32_mut<T: Float>(s: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: T is f32 itself, so the cast changes nothing; the borrow is handed on.
    is_f32::<T>().then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) })
}

fn is_f32<T: Float>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// The widest vector extension of this CPU that the kernels have a variant for (detected once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Simd {
    /// AVX-512 (F, VL, BW, DQ) with AVX2 and FMA: 512-bit registers.
    Avx512,
    /// AVX2 and FMA: 256-bit registers.
    Avx2,
    /// Neither: the baseline build.
    Baseline,
}

/// [`Simd`] of this CPU; `MEMGEN_SIMD=avx2|baseline` caps it (for A/B measurements).
#[inline(always)]
pub(crate) fn simd() -> Simd {
    static LEVEL: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var("MEMGEN_SIMD").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            let avx512 = avx2
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512dq");
            match cap.as_str() {
                "baseline" => Simd::Baseline,
                "avx2" if avx2 => Simd::Avx2,
                _ if avx512 => Simd::Avx512,
                _ if avx2 => Simd::Avx2,
                _ => Simd::Baseline,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = cap;
            Simd::Baseline
        }
    })
}

/// `simd_variant!(vis fn name = body<T>(args))` defines `name`, which runs the `#[inline(always)]`
/// function `body` compiled for AVX-512 or AVX2 + FMA when the CPU has them ([`simd`]) and as
/// itself otherwise. The hot loops are plain slice loops that the compiler vectorises; this lets
/// them use 512- or 256-bit registers without building the whole program for a newer baseline CPU.
macro_rules! simd_variant {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $body:ident<$T:ident>($($a:ident: $t:ty),* $(,)?)) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$T: $crate::elem::Float>($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx512<$T: $crate::elem::Float>($($a: $t),*) {
                    $body($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2<$T: $crate::elem::Float>($($a: $t),*) {
                    $body($($a),*)
                }
                match $crate::elem::simd() {
                    // SAFETY: the CPU has the features each variant is compiled for (detected by simd()).
                    $crate::elem::Simd::Avx512 => return unsafe { avx512($($a),*) },
                    $crate::elem::Simd::Avx2 => return unsafe { avx2($($a),*) },
                    $crate::elem::Simd::Baseline => {}
                }
            }
            $body($($a),*)
        }
    };
}
pub(crate) use simd_variant;

/// `dst[i] += src[i]`.
#[inline(always)]
pub(crate) fn add_assign<T: Float>(dst: &mut [T], src: &[T]) {
    for (d, v) in dst.iter_mut().zip(src) {
        *d += *v;
    }
}

#[cfg(test)]
mod tests {
    use super::Float;

    #[test]
    fn fast_exp_matches_std_over_its_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let rel = ((x.fast_exp() as f64) - (x as f64).exp()).abs() / (x as f64).exp();
            worst = worst.max(rel);
            x += 0.01237;
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        assert!((-1e4f32).fast_exp() > 0.0 && (1e4f32).fast_exp().is_finite());
    }

    #[test]
    fn sigmoid_is_exact_at_zero_and_saturates() {
        assert_eq!(0f32.sigmoid(), 0.5);
        assert!((30f32.sigmoid() - 1.0).abs() < 1e-7 && (-30f32).sigmoid() < 1e-12);
    }
}

//! The d/N law, exactly: the expected KL of a Gaussian fitted to N samples, from the Wishart
//! distribution of its covariance; digamma; and log-log power-law fits.
//!
//! Direction: KL(ρ_N ‖ ρ) with ρ_N = N(μ0, Σ0) the 1/N-normalised fit to N samples of ρ = N(μ, Σ) (DESIGN's
//! KL with c = 0, the linear model's sampling distribution in the limit c → 0). With δ = μ − μ0
//! ([`crate::kl`]),
//!
//! KL = ½ [ Tr(Σ⁻¹Σ0) + δᵀΣ⁻¹δ − d + ln|Σ| − ln|Σ0| ].
//!
//! For N > d: N Σ0 ~ Wishart_d(N−1, Σ) independent of δ ~ N(0, Σ/N), so
//! E[Tr(Σ⁻¹Σ0)] = d(N−1)/N, E[δᵀΣ⁻¹δ] = d/N — the trace and mean terms add to exactly d and cancel the −d —
//! and E[ln(|Σ0|/|Σ|)] = Σ_{i=0}^{d−1} ψ((N−1−i)/2) + d ln 2 − d ln N (the log-determinant of a
//! Wishart_d(N−1, I) matrix, minus d ln N). Hence
//!
//! E[KL] = −½ [ Σ_{i=0}^{d−1} ψ((N−1−i)/2) + d ln 2 − d ln N ],
//!
//! independent of μ and Σ, with the mean term included. With ψ(x) = ln x − 1/(2x) + O(x⁻²):
//! E[KL] = d(d+3)/(4N) + O(d³/N²).

use crate::{Error, Result};

/// Euler–Mascheroni constant γ = −ψ(1).
pub const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// ψ(x) − ln x for x > 0: the recurrence ψ(x) = ψ(x+1) − 1/x up to x ≥ 6, then the asymptotic series
/// ψ(x) − ln x = −1/(2x) − Σ_k B_2k/(2k x^2k) (k = 1..7; the first omitted term is < 2e-13 at x = 6).
fn digamma_minus_ln(x: f64) -> f64 {
    let (mut x, mut acc) = (x, 0.0);
    let start = x;
    while x < 6.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    // ψ(start) − ln start = [ψ(x) − ln x] + ln(x/start) − Σ 1/(start + j).
    let z = 1.0 / (x * x);
    // B_2k/(2k) for k = 1..7: 1/12, −1/120, 1/252, −1/240, 1/132, −691/32760, 1/12.
    let series = z
        * (1.0 / 12.0
            - z * (1.0 / 120.0
                - z * (1.0 / 252.0
                    - z * (1.0 / 240.0 - z * (1.0 / 132.0 - z * (691.0 / 32760.0 - z / 12.0))))));
    acc + (x / start).ln() - 0.5 / x - series
}

/// Digamma ψ(x) = Γ'(x)/Γ(x) (relative accuracy ~1e-15 for x > 0). For negative non-integers the
/// reflection ψ(x) = ψ(1 − x) − π cot(πx); NaN at the poles 0, −1, −2, ….
pub fn digamma(x: f64) -> f64 {
    if x > 0.0 {
        x.ln() + digamma_minus_ln(x)
    } else if x == x.floor() || !x.is_finite() {
        f64::NAN
    } else {
        digamma(1.0 - x) - std::f64::consts::PI / (std::f64::consts::PI * x).tan()
    }
}

/// E[KL(N(μ0, Σ0) ‖ N(μ, Σ))] for the 1/N-normalised Gaussian fit to `n` samples of N(μ, Σ) in `d`
/// dimensions: −½ Σ_{i=0}^{d−1} [ψ((N−1−i)/2) + ln 2 − ln N], evaluated as
/// −½ Σ_i [(ψ(x_i) − ln x_i) + ln(1 − (1+i)/N)], x_i = (N−1−i)/2, to avoid cancelling d ln N. Needs N > d.
pub fn expected_fit_kl(d: usize, n: usize) -> Result<f64> {
    if d == 0 || n <= d {
        return Err(Error::Invalid(format!(
            "expected KL of a Gaussian fit needs N > d ≥ 1, got d = {d}, N = {n}"
        )));
    }
    let nf = n as f64;
    let sum: f64 =
        (0..d).map(|i| digamma_minus_ln((n - 1 - i) as f64 / 2.0) + (-((1 + i) as f64) / nf).ln_1p()).sum();
    Ok(-0.5 * sum)
}

/// The large-N asymptote of [`expected_fit_kl`]: d(d+3)/(4N).
pub fn expected_fit_kl_asymptote(d: usize, n: usize) -> f64 {
    (d * (d + 3)) as f64 / (4.0 * n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kl::{gaussian_kl, mean_and_standard_error, sample_moments};
    use faer::Mat;
    use memgen_metrics::stats::{power_law_fit, PowerFit};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};
    use rayon::prelude::*;

    #[test]
    fn digamma_known_values() {
        let ln2 = std::f64::consts::LN_2;
        let cases = [
            (1.0, -EULER_GAMMA),
            (0.5, -EULER_GAMMA - 2.0 * ln2),
            (10.0, 2.251_752_589_066_721),
            (2.0, 1.0 - EULER_GAMMA),
            (1.5, 2.0 - EULER_GAMMA - 2.0 * ln2),
            (0.25, -EULER_GAMMA - std::f64::consts::FRAC_PI_2 - 3.0 * ln2),
            (100.0, 4.600_161_852_738_087),
        ];
        for (x, want) in cases {
            let got = digamma(x);
            assert!((got - want).abs() < 1e-12, "ψ({x}) = {got}, want {want}");
        }
        // Recurrence and reflection.
        for x in [0.013, 0.7, 3.3, 5.99, 6.01, 47.5] {
            assert!((digamma(x + 1.0) - digamma(x) - 1.0 / x).abs() < 1e-12 * (1.0 / x).max(1.0), "{x}");
        }
        // ψ(−1/2) = ψ(3/2) − π cot(−π/2) = 2 − γ − 2 ln 2.
        assert!((digamma(-0.5) - (2.0 - EULER_GAMMA - 2.0 * ln2)).abs() < 1e-12);
        assert!(digamma(0.0).is_nan() && digamma(-3.0).is_nan());
    }

    #[test]
    fn expected_kl_formula_and_asymptote() {
        let e = expected_fit_kl(16, 400).unwrap();
        eprintln!("d = 16, N = 400: E[KL] = {e:.6}, d(d+3)/4N = {}", expected_fit_kl_asymptote(16, 400));
        assert!((e - 0.1928).abs() < 5e-5, "{e}");
        assert!((expected_fit_kl_asymptote(16, 400) - 0.19).abs() < 1e-15);
        // Direct evaluation of DESIGN's form agrees.
        let direct = -0.5
            * ((0..16).map(|i| digamma((399 - i) as f64 / 2.0)).sum::<f64>() + 16.0 * std::f64::consts::LN_2
                - 16.0 * 400f64.ln());
        assert!((e - direct).abs() < 1e-12);
        // d = 1: E[KL] = −½ [ψ((N−1)/2) + ln(2/N)] → 1/N (d(d+3)/4N = 1/N).
        let r = expected_fit_kl(1, 1_000_000).unwrap() * 1e6;
        assert!((r - 1.0).abs() < 1e-5, "{r}");
        // Relative deviation from the asymptote falls like d/N.
        let dev = |n| expected_fit_kl(16, n).unwrap() / expected_fit_kl_asymptote(16, n) - 1.0;
        assert!((dev(16_000) / dev(160_000) - 10.0).abs() < 0.1, "{} {}", dev(16_000), dev(160_000));
        assert!(expected_fit_kl(16, 16).is_err());
    }

    /// The truth N(μ, Σ) with a power-law spectrum λ_i = 1/i in a random orthogonal basis Q (QR of a
    /// Gaussian matrix): returns μ, Σ and B = Q diag(√λ) (x = μ + B z).
    fn power_law_truth(d: usize, rng: &mut ChaCha8Rng) -> (Vec<f64>, Mat<f64>, Mat<f64>) {
        let g = Mat::<f64>::from_fn(d, d, |_, _| StandardNormal.sample(rng));
        let q = g.qr().compute_Q();
        let b = Mat::from_fn(d, d, |i, j| q[(i, j)] / ((j + 1) as f64).sqrt());
        let sigma = &b * b.transpose();
        let mu = (0..d).map(|_| StandardNormal.sample(rng)).collect();
        (mu, sigma, b)
    }

    /// KL(N(μ0, Σ0) ‖ N(μ, Σ)) of the fit to n fresh samples.
    fn fit_kl(mu: &[f64], sigma: &Mat<f64>, b: &Mat<f64>, n: usize, rng: &mut ChaCha8Rng) -> f64 {
        let d = mu.len();
        let x = Mat::<f64>::from_fn(n, d, |_, _| StandardNormal.sample(rng)) * b.transpose();
        let rows: Vec<f64> = (0..n * d).map(|k| x[(k / d, k % d)] + mu[k % d]).collect();
        let (m0, s0) = sample_moments(&rows, d).unwrap();
        gaussian_kl(&m0, &s0, mu, sigma).unwrap()
    }

    /// (mean, SE) over `reps` independent training sets, each with its own seeded stream.
    fn mean_fit_kl(d: usize, n: usize, reps: usize, seed: u64) -> (f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mu, sigma, b) = power_law_truth(d, &mut rng);
        let kls: Vec<f64> = (0..reps)
            .into_par_iter()
            .map(|r| fit_kl(&mu, &sigma, &b, n, &mut ChaCha8Rng::seed_from_u64(seed * 100_000 + r as u64)))
            .collect();
        mean_and_standard_error(&kls)
    }

    #[test]
    fn monte_carlo_reproduces_the_expected_kl_d16_n400() {
        let (m, se) = mean_fit_kl(16, 400, 3000, 7);
        let e = expected_fit_kl(16, 400).unwrap();
        eprintln!("d = 16, N = 400: Monte Carlo {m:.4} ± {se:.4}, formula {e:.4}");
        assert!((m - e).abs() < 4.0 * se && se < 6e-4, "{m} ± {se} vs {e}");
    }

    /// DESIGN/issue check: KL of the c = 0 fit vs N, d = 64, N = 2d .. 64d.
    #[test]
    fn fit_kl_falls_like_one_over_n_d64() {
        let d = 64;
        let ns = [128usize, 256, 512, 1024, 2048, 4096];
        let reps = 48;
        let (mut means, mut formula) = (vec![], vec![]);
        for (k, &n) in ns.iter().enumerate() {
            let (m, se) = mean_fit_kl(d, n, reps, 20 + k as u64);
            let e = expected_fit_kl(d, n).unwrap();
            eprintln!(
                "d = {d}, N = {n}: mean KL {m:.4} ± {se:.4} ({reps} sets), formula {e:.4}, d(d+3)/4N {:.4}",
                expected_fit_kl_asymptote(d, n)
            );
            assert!((m - e).abs() < 4.0 * se, "N = {n}: {m} ± {se} vs {e}");
            means.push(m);
            formula.push(e);
        }
        let xs: Vec<f64> = ns.iter().map(|&n| n as f64).collect();
        let fit = |x: &[f64], y: &[f64]| power_law_fit(x.iter().copied().zip(y.iter().copied())).unwrap();
        let (slope_all, slope_formula) = (fit(&xs, &means).slope, fit(&xs, &formula).slope);
        let PowerFit { slope, intercept, .. } = fit(&xs[1..], &means[1..]);
        eprintln!(
            "log-log slope: N = 2d..64d {slope_all:.4} (formula {slope_formula:.4}); N = 4d..64d {slope:.4}, \
             constant e^intercept {:.1} vs d(d+3)/4 = {}",
            intercept.exp(),
            d * (d + 3) / 4
        );
        // The exact E[KL] itself has slope −1.054 over 2d..64d (finite-N correction ~ d/N at N = 2d): the
        // sampled slope must match it there, and be −1 within 5% from N = 4d on.
        assert!((slope_all - slope_formula).abs() < 0.01, "{slope_all} vs {slope_formula}");
        assert!((slope + 1.0).abs() < 0.05, "{slope}");
    }
}

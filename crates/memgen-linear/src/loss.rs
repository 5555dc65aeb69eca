//! Denoising losses of the linear denoiser, in closed form through the eigenbasis of Σ0.
//!
//! The denoiser at a time with ᾱ = ᾱ_t is ε̂ = W (x_t − √ᾱ μ0), W = U diag(w) Uᵀ, w_i =
//! [`weight`]`(s_i, ᾱ, reg)`, Σ0 = U diag(s) Uᵀ ([`Spectrum`]). Let x0 have E[(x0 − μ0)(x0 − μ0)ᵀ] = C
//! (second moment about μ0, not about x0's own mean) and x_t = √ᾱ x0 + √(1−ᾱ) ε with ε ~ N(0, I)
//! independent of x0. With y = x0 − μ0,
//!
//! ε − ε̂ = (I − √(1−ᾱ) W) ε − √ᾱ W y,
//!
//! and the cross term vanishes (E[ε yᵀ] = 0), so
//!
//! E‖ε − ε̂‖² = Tr[(I − √(1−ᾱ) W)²] + ᾱ Tr[W C W] = Σ_i (1 − √(1−ᾱ) w_i)² + ᾱ Σ_i w_i² (UᵀCU)_ii.
//!
//! - training loss (x0 uniform over the training set): C = Σ0, (UᵀCU)_ii = s_i;
//! - test loss (fresh x0 ~ N(μ, Σ)): C = Σ + δδᵀ with δ = μ − μ0.
//!
//! Unregularised, with c = (1−ᾱ)/ᾱ: 1 − √(1−ᾱ) w_i = s_i/(s_i + c) and ᾱ w_i² = c/(s_i + c)², which gives
//! DESIGN.md's Train_t = Tr[Σ0 (Σ0 + cI)⁻¹] and Test_t = Train_t + c Tr[(Σ − Σ0 + δδᵀ)(Σ0 + cI)⁻²].
//! Losses are per sample, summed over the d coordinates (not divided by d).

use crate::theory::{weight, Regularization};
use crate::{Error, Result, Spectrum};
use faer::Mat;

/// c_i = (Uᵀ C U)_ii with C = `cov` + δδᵀ: u_iᵀ cov u_i + (u_iᵀ δ)², u_i the eigenvectors of Σ0
/// (columns of `spectrum.vectors`). Test loss: `cov` = Σ, δ = μ − μ0; δ = 0 for a plain covariance.
/// One d x d x d product, O(d³).
pub fn projected_diagonal(spectrum: &Spectrum, cov: &Mat<f64>, delta: &[f64]) -> Result<Vec<f64>> {
    let d = spectrum.values.len();
    if cov.nrows() != d || cov.ncols() != d || delta.len() != d {
        return Err(Error::Invalid(format!(
            "projected_diagonal: covariance {}x{} and δ of {} entries, expected d = {d}",
            cov.nrows(),
            cov.ncols(),
            delta.len()
        )));
    }
    let u = &spectrum.vectors;
    let cu = cov * u;
    let ud = spectrum.to_eigen(delta);
    Ok((0..d).map(|i| (0..d).map(|k| u[(k, i)] * cu[(k, i)]).sum::<f64>() + ud[i] * ud[i]).collect())
}

/// E‖ε − ε̂‖² at one time: Σ_i (1 − √(1−ᾱ) w_i)² + ᾱ Σ_i w_i² c_i, w_i = w(s_i, ᾱ, reg), s =
/// `spectrum_values`, c = `c_diag` ([`projected_diagonal`]; `spectrum_values` itself for the training loss).
pub fn loss_at(spectrum_values: &[f64], c_diag: &[f64], abar: f64, reg: Regularization) -> f64 {
    assert_eq!(
        spectrum_values.len(),
        c_diag.len(),
        "loss_at: eigenvalues and projected diagonal differ in length"
    );
    let b = (1.0 - abar).sqrt();
    spectrum_values
        .iter()
        .zip(c_diag)
        .map(|(&s, &c)| {
            let w = weight(s, abar, reg);
            (1.0 - b * w).powi(2) + abar * w * w * c
        })
        .sum()
}

/// Σ_t [`loss_at`](ᾱ_t): the unweighted sum over every time of `abars` (a schedule's
/// `alphas_cumprod`, Merger & Goldt's normalisation). Each W_t is its own time's optimum, so the sum is
/// that of the per-time losses.
pub fn total_loss(spectrum_values: &[f64], c_diag: &[f64], abars: &[f64], reg: Regularization) -> f64 {
    abars.iter().map(|&a| loss_at(spectrum_values, c_diag, a, reg)).sum()
}

/// [`total_loss`] / T: the mean per time, i.e. E‖ε − ε̂‖² with t uniform over the schedule (the DDPM
/// training objective's weighting).
pub fn mean_loss(spectrum_values: &[f64], c_diag: &[f64], abars: &[f64], reg: Regularization) -> f64 {
    total_loss(spectrum_values, c_diag, abars, reg) / abars.len() as f64
}

/// The data a loss needs, computed once: the eigenvalues s of Σ0 and the projected diagonal c of the
/// second moment of x0 − μ0 under the distribution the loss is taken over.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearLoss {
    pub values: Vec<f64>,
    pub c_diag: Vec<f64>,
}

impl LinearLoss {
    /// Training loss: C = Σ0, c = s.
    pub fn train(spectrum: &Spectrum) -> LinearLoss {
        LinearLoss { values: spectrum.values.clone(), c_diag: spectrum.values.clone() }
    }

    /// Test loss against the truth N(μ = `truth_mean`, Σ = `truth_cov`) for a training set of mean
    /// `mean0`: C = Σ + δδᵀ, δ = μ − μ0.
    pub fn test(
        spectrum: &Spectrum,
        mean0: &[f64],
        truth_mean: &[f64],
        truth_cov: &Mat<f64>,
    ) -> Result<LinearLoss> {
        if mean0.len() != truth_mean.len() {
            return Err(Error::Invalid(format!("means of {} and {} entries", mean0.len(), truth_mean.len())));
        }
        let delta: Vec<f64> = truth_mean.iter().zip(mean0).map(|(m, m0)| m - m0).collect();
        let c_diag = projected_diagonal(spectrum, truth_cov, &delta)?;
        Ok(LinearLoss { values: spectrum.values.clone(), c_diag })
    }

    /// [`loss_at`].
    pub fn at(&self, abar: f64, reg: Regularization) -> f64 {
        loss_at(&self.values, &self.c_diag, abar, reg)
    }

    /// [`total_loss`].
    pub fn total(&self, abars: &[f64], reg: Regularization) -> f64 {
        total_loss(&self.values, &self.c_diag, abars, reg)
    }

    /// [`mean_loss`].
    pub fn mean(&self, abars: &[f64], reg: Regularization) -> f64 {
        mean_loss(&self.values, &self.c_diag, abars, reg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Moments;
    use faer::prelude::Solve;
    use faer::Side;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};
    use rayon::prelude::*;

    const D: usize = 8;
    const N: usize = 5;

    /// The truth N(μ, Σ) (Σ = A Aᵀ/d + 0.1 I, non-diagonal), its Cholesky factor, and a training set of
    /// N points (rounded to f32, as [`Moments::from_rows`] takes them) with its moments and spectrum.
    struct Setup {
        mu: Vec<f64>,
        sigma: Mat<f64>,
        chol: Mat<f64>,
        points: Vec<Vec<f64>>,
        moments: Moments,
        spectrum: Spectrum,
    }

    fn setup(seed: u64) -> Setup {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a = Mat::<f64>::from_fn(D, D, |_, _| StandardNormal.sample(&mut rng));
        let sigma =
            &a * a.transpose() * faer::Scale(1.0 / D as f64) + Mat::<f64>::identity(D, D) * faer::Scale(0.1);
        let chol = sigma.llt(Side::Lower).unwrap().L().to_owned();
        let mu: Vec<f64> = (0..D).map(|_| StandardNormal.sample(&mut rng)).collect();
        let data: Vec<f32> = (0..N).flat_map(|_| draw(&mu, &chol, &mut rng)).map(|v| v as f32).collect();
        let points = data.chunks(D).map(|r| r.iter().map(|&v| v as f64).collect()).collect();
        let moments = Moments::from_rows(&data, D).unwrap();
        let spectrum = Spectrum::of(&moments.cov).unwrap();
        Setup { mu, sigma, chol, points, moments, spectrum }
    }

    /// One draw of N(μ, L Lᵀ).
    fn draw(mu: &[f64], chol: &Mat<f64>, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let z: Vec<f64> = (0..D).map(|_| StandardNormal.sample(rng)).collect();
        (0..D).map(|i| mu[i] + (0..=i).map(|k| chol[(i, k)] * z[k]).sum::<f64>()).collect()
    }

    /// U diag(w) Uᵀ.
    fn full_w(sp: &Spectrum, abar: f64, reg: Regularization) -> Mat<f64> {
        let u = &sp.vectors;
        let wu = Mat::from_fn(D, D, |i, j| u[(i, j)] * weight(sp.values[j], abar, reg));
        &wu * u.transpose()
    }

    /// DESIGN's closed forms with full matrices (no eigenbasis): (Train_t, Test_t).
    fn closed_forms(st: &Setup, abar: f64) -> (f64, f64) {
        let c = (1.0 - abar) / abar;
        let sigma0 = &st.moments.cov;
        let reg = sigma0 + Mat::<f64>::identity(D, D) * faer::Scale(c);
        let llt = reg.llt(Side::Lower).unwrap();
        let train = llt.solve(sigma0).diagonal().column_vector().sum();
        let delta = Mat::from_fn(D, 1, |i, _| st.mu[i] - st.moments.mean[i]);
        let excess = &st.sigma - sigma0 + &delta * delta.transpose();
        let inv2 = llt.solve(llt.solve(Mat::<f64>::identity(D, D)));
        let test = train + c * (&excess * &inv2).diagonal().column_vector().sum();
        (train, test)
    }

    /// Monte Carlo of E‖ε − W(x_t − √ᾱ μ0)‖² for each case (ᾱ, reg), from `n` draws (x0, ε) shared by
    /// all cases; x0 from the training points (`train`) or the truth. Returns (mean, standard error) per
    /// case.
    fn monte_carlo(
        st: &Setup,
        cases: &[(f64, Regularization)],
        train: bool,
        n: usize,
        seed: u64,
    ) -> Vec<(f64, f64)> {
        let ws: Vec<Mat<f64>> = cases.iter().map(|&(a, r)| full_w(&st.spectrum, a, r)).collect();
        let chunks = 16;
        let sums = (0..chunks)
            .into_par_iter()
            .map(|c| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed * 1000 + c as u64);
                let mut acc = vec![(0.0, 0.0); cases.len()];
                for _ in 0..n / chunks {
                    let x0 = if train {
                        st.points[rng.random_range(0..N)].clone()
                    } else {
                        draw(&st.mu, &st.chol, &mut rng)
                    };
                    let eps: Vec<f64> = (0..D).map(|_| StandardNormal.sample(&mut rng)).collect();
                    for (k, &(abar, _)) in cases.iter().enumerate() {
                        let (a, b) = (abar.sqrt(), (1.0 - abar).sqrt());
                        let xt: Vec<f64> =
                            (0..D).map(|i| a * (x0[i] - st.moments.mean[i]) + b * eps[i]).collect();
                        let l: f64 = (0..D)
                            .map(|i| (eps[i] - (0..D).map(|j| ws[k][(i, j)] * xt[j]).sum::<f64>()).powi(2))
                            .sum();
                        acc[k].0 += l;
                        acc[k].1 += l * l;
                    }
                }
                acc
            })
            .reduce(
                || vec![(0.0, 0.0); cases.len()],
                |a, b| a.iter().zip(&b).map(|(x, y)| (x.0 + y.0, x.1 + y.1)).collect(),
            );
        let m = (n / chunks * chunks) as f64;
        sums.iter()
            .map(|&(s, s2)| {
                let mean = s / m;
                (mean, ((s2 / m - mean * mean) * m / (m - 1.0) / m).sqrt())
            })
            .collect()
    }

    #[test]
    fn losses_match_closed_forms_and_monte_carlo() {
        let st = setup(11);
        assert_eq!(st.spectrum.rank(1e-9), N - 1);
        let train = LinearLoss::train(&st.spectrum);
        let test = LinearLoss::test(&st.spectrum, &st.moments.mean, &st.mu, &st.sigma).unwrap();
        let plain = Regularization::default();
        for abar in [0.95, 0.5] {
            let (tr, te) = closed_forms(&st, abar);
            let (a, b) = (train.at(abar, plain), test.at(abar, plain));
            eprintln!(
                "ᾱ = {abar}: Train {a:.10} (closed form {tr:.10}), Test {b:.10} (closed form {te:.10})"
            );
            assert!((a - tr).abs() < 1e-10 * tr && (b - te).abs() < 1e-10 * te);
        }
        let cases = [
            (0.95, plain),
            (0.5, plain),
            (0.95, Regularization { weight_decay: 0.3, train_time: None }),
            (0.5, Regularization { weight_decay: 0.0, train_time: Some(0.7) }),
        ];
        let n = 2_000_000;
        for (is_train, loss) in [(true, &train), (false, &test)] {
            let mc = monte_carlo(&st, &cases, is_train, n, if is_train { 1 } else { 2 });
            for (&(abar, reg), &(m, se)) in cases.iter().zip(&mc) {
                let exact = loss.at(abar, reg);
                let name = if is_train { "Train" } else { "Test" };
                eprintln!(
                    "{name} ᾱ = {abar} {reg:?}: closed form {exact:.5}, MC {m:.5} ± {se:.5} ({:+.2} SE)",
                    (m - exact) / se
                );
                assert!((m - exact).abs() < 4.0 * se, "{name} ᾱ = {abar} {reg:?}: {exact} vs {m} ± {se}");
            }
        }
        // Sums over a schedule: the total is T times the mean, and both follow loss_at.
        let abars = [0.99, 0.9, 0.5, 0.1];
        let total = test.total(&abars, plain);
        assert!((total - abars.iter().map(|&a| test.at(a, plain)).sum::<f64>()).abs() < 1e-12);
        assert!((test.mean(&abars, plain) * 4.0 - total).abs() < 1e-12);
    }

    #[test]
    fn projected_diagonal_of_sigma0_is_its_spectrum() {
        let st = setup(12);
        let c = projected_diagonal(&st.spectrum, &st.moments.cov, &[0.0; D]).unwrap();
        for (a, b) in c.iter().zip(&st.spectrum.values) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert!(projected_diagonal(&st.spectrum, &st.moments.cov, &[0.0; 3]).is_err());
    }

    /// Ordinary least squares of ε on (x_t, 1) over sampled pairs recovers W_t and b_t = −W_t √ᾱ μ0, within
    /// the fit's own (heteroscedasticity-robust, HC0 sandwich) standard errors.
    #[test]
    fn least_squares_fit_recovers_the_closed_form() {
        let st = setup(13);
        let abar: f64 = 0.6;
        let (a, b) = (abar.sqrt(), (1.0 - abar).sqrt());
        let n = 400_000;
        let p = D + 1;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut z = Mat::<f64>::zeros(n, p);
        let mut e = Mat::<f64>::zeros(n, D);
        for k in 0..n {
            let x0 = &st.points[rng.random_range(0..N)];
            for i in 0..D {
                let eps: f64 = StandardNormal.sample(&mut rng);
                e[(k, i)] = eps;
                z[(k, i)] = a * x0[i] + b * eps;
            }
            z[(k, D)] = 1.0;
        }
        let gram = z.transpose() * &z;
        let llt = gram.llt(Side::Lower).unwrap();
        let beta = llt.solve(z.transpose() * &e); // p x D: column j holds (A_j·, b_j)
        let resid = &e - &z * &beta;
        let ginv = llt.solve(Mat::<f64>::identity(p, p));
        let w = full_w(&st.spectrum, abar, Regularization::default());
        let wmu = &w * Mat::from_fn(D, 1, |i, _| a * st.moments.mean[i]);
        let (mut worst, mut largest_se) = (0.0f64, 0.0f64);
        for j in 0..D {
            let zr = Mat::from_fn(n, p, |k, c| z[(k, c)] * resid[(k, j)]);
            let cov = &ginv * (zr.transpose() * &zr) * &ginv;
            for c in 0..p {
                let truth = if c < D { w[(j, c)] } else { -wmu[(j, 0)] };
                let se = cov[(c, c)].sqrt();
                worst = worst.max((beta[(c, j)] - truth).abs() / se);
                largest_se = largest_se.max(se);
            }
        }
        let scale = (0..D).map(|i| w[(i, i)].abs()).fold(0.0, f64::max);
        eprintln!(
            "OLS vs closed form: worst |err|/SE {worst:.2}, max SE {largest_se:.2e}, max |W_ii| {scale:.3}"
        );
        assert!(worst < 5.0, "worst z-score {worst}");
        assert!(largest_se < 0.02 * scale, "the check is too loose: SE {largest_se}");
    }

    /// RK4 on dW/dτ = 2(√(1−ᾱ) I − W (M + λI)), M = ᾱ Σ0 + (1−ᾱ) I, from W = 0, with full matrices.
    fn gradient_flow(sigma0: &Mat<f64>, abar: f64, lambda: f64, tau: f64, m_max: f64) -> Mat<f64> {
        let id = Mat::<f64>::identity(D, D);
        let m = sigma0 * faer::Scale(abar) + &id * faer::Scale(1.0 - abar + lambda);
        let target = &id * faer::Scale(2.0 * (1.0 - abar).sqrt());
        let f = |w: &Mat<f64>| &target - w * &m * faer::Scale(2.0);
        let steps = (tau * 2.0 * m_max / 0.01).ceil() as usize;
        let h = tau / steps as f64;
        let mut w = Mat::<f64>::zeros(D, D);
        for _ in 0..steps {
            let k1 = f(&w);
            let k2 = f(&(&w + &k1 * faer::Scale(h / 2.0)));
            let k3 = f(&(&w + &k2 * faer::Scale(h / 2.0)));
            let k4 = f(&(&w + &k3 * faer::Scale(h)));
            w = &w + (k1 + k2 * faer::Scale(2.0) + k3 * faer::Scale(2.0) + k4) * faer::Scale(h / 6.0);
        }
        w
    }

    #[test]
    fn gradient_flow_matches_early_stopped_and_converged_weights() {
        let st = setup(14);
        let sp = &st.spectrum;
        let s_max = sp.values.iter().copied().fold(0.0, f64::max);
        for (abar, lambda) in [(0.5, 0.0), (0.8, 0.1)] {
            let m_max = abar * s_max + 1.0 - abar + lambda;
            let m_min = 1.0 - abar + lambda; // the zero directions of Σ0 (N < d)
            let tau = 0.4;
            let w = gradient_flow(&st.moments.cov, abar, lambda, tau, m_max);
            let reg = Regularization { weight_decay: lambda, train_time: Some(tau) };
            let in_basis = sp.vectors.transpose() * &w * &sp.vectors;
            let err =
                max_abs_diff(&in_basis, |i, j| if i == j { weight(sp.values[i], abar, reg) } else { 0.0 });
            eprintln!("ᾱ = {abar}, λ = {lambda}, τ = {tau}: max |Uᵀ W(τ) U − diag w(τ)| = {err:.1e}");
            assert!(err < 1e-9, "{err}");
            // Long training: e^{−2 τ m_min} ~ e^{−36}, the converged closed form U diag(w) Uᵀ and
            // √(1−ᾱ)(ᾱ Σ0 + (1−ᾱ+λ) I)⁻¹ formed directly.
            let long = 18.0 / m_min;
            let w = gradient_flow(&st.moments.cov, abar, lambda, long, m_max);
            let conv = full_w(sp, abar, Regularization { weight_decay: lambda, train_time: None });
            let id = Mat::<f64>::identity(D, D);
            let m = &st.moments.cov * faer::Scale(abar) + &id * faer::Scale(1.0 - abar + lambda);
            let direct = m.llt(Side::Lower).unwrap().solve(&id) * faer::Scale((1.0 - abar).sqrt());
            let e1 = max_abs_diff(&w, |i, j| conv[(i, j)]);
            let e2 = max_abs_diff(&conv, |i, j| direct[(i, j)]);
            eprintln!(
                "τ = {long:.1}: max |W(τ) − W_conv| = {e1:.1e}, |U diag(w) Uᵀ − √(1−ᾱ)(M+λ)⁻¹| = {e2:.1e}"
            );
            assert!(e1 < 1e-9 && e2 < 1e-12, "{e1} {e2}");
        }
    }

    fn max_abs_diff(a: &Mat<f64>, b: impl Fn(usize, usize) -> f64) -> f64 {
        (0..a.nrows())
            .flat_map(|i| (0..a.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| (a[(i, j)] - b(i, j)).abs())
            .fold(0.0, f64::max)
    }
}

//! The KL bound from denoising errors (Kadkhodaie, Guth, Simoncelli & Mallat 2024, arXiv:2310.02557):
//!
//! D_KL(p ‖ p_θ) ≤ ∫₀^∞ (MSE(f_θ, σ²) − MSE(f*, σ²)) σ⁻³ dσ,
//!
//! where MSE(f, σ²) = E‖f(x + σz, σ) − x‖² (x ~ p, z ~ N(0, I); summed over the d pixels, not per
//! pixel), f* = E[x | y] is the optimal denoiser of p and p_θ the distribution generated with f_θ.
//! Evaluated numerically where f* is known: Gaussian data p = N(μ, Σ), f* linear.
//!
//! # The constant
//!
//! The formula holds with constant exactly 1, as written; the two factors cancel:
//!
//! 1. Noise levels as time: p_σ = p ∗ N(0, σ² I) solves the heat equation ∂p/∂τ = ½ Δp in τ = σ²
//!    (the variance-exploding SDE dx = dW_τ). A DDPM's x_t = √ᾱ_t x + √(1 − ᾱ_t) ε is the same
//!    process rescaled, x_t / √ᾱ_t = x + σ_t ε with σ_t² = (1 − ᾱ_t)/ᾱ_t, and a KL divergence is
//!    unchanged when both distributions are mapped by one invertible map, so the bound reads the same
//!    in the DDPM parametrisation with σ = σ_t.
//! 2. Scores from denoisers (Miyasawa 1961; Tweedie): ∇ ln p_σ(y) = (f*(y, σ) − y)/σ², and the model's
//!    score is s_θ(y, σ) = (f_θ(y, σ) − y)/σ², so E‖s_θ − ∇ ln p_σ‖² = E‖f_θ − f*‖²/σ⁴.
//! 3. Pythagoras (f* = E[x | y] is an orthogonal projection): E‖f_θ − x‖² = E‖f_θ − f*‖² + E‖f* − x‖²,
//!    i.e. E‖f_θ − f*‖² = MSE(f_θ, σ²) − MSE(f*, σ²) ≥ 0: the *excess* MSE.
//! 4. Girsanov and data processing (Song, Durkan, Murray & Ermon 2021, arXiv:2101.09258, Thm. 1): the
//!    reverse-time SDE driven by s_θ from σ_max down to σ_min, started from q_{σ_max}, ends at a q_{σ_min}
//!    with KL(p_{σ_min} ‖ q_{σ_min}) ≤ KL(p_{σ_max} ‖ q_{σ_max}) + ½ ∫ E‖s_θ − ∇ ln p_τ‖² dτ, τ from
//!    σ_min² to σ_max² (the ½ is g²/2 with g² = dτ/dτ = 1).
//! 5. dτ = dσ² = 2σ dσ: ½ · E‖f_θ − f*‖²/σ⁴ · 2σ dσ = (MSE(f_θ) − MSE(f*)) σ⁻³ dσ. The ½ of Girsanov
//!    and the 2 of dσ² = 2σ dσ cancel.
//!
//! When f_θ is itself the exact denoiser of some distribution q at every σ (q_σ = q ∗ N(0, σ² I),
//! f_θ(·, σ) = E_q[x | y]), the inequality is an equality: the heat equation gives
//! d KL(p_τ ‖ q_τ)/dτ = −½ E‖∇ ln p_τ − ∇ ln q_τ‖² (de Bruijn), so
//! KL(p_{σ_min} ‖ q_{σ_min}) = KL(p_{σ_max} ‖ q_{σ_max}) + ∫_{σ_min}^{σ_max} excess(σ) σ⁻³ dσ.
//! The linear denoiser fitted to N training images, f_N(y) = μ̂ + Σ̂(Σ̂ + σ² I)⁻¹ (y − μ̂), is the exact
//! denoiser of q = N(μ̂, Σ̂), so for it the bound equals KL(N(μ, Σ + σ_min² I) ‖ N(μ̂, Σ̂ + σ_min² I))
//! ([`GaussianLinearMse::kl_smoothed`]); the tests check this identity. Note the direction: the bound
//! is on KL(data ‖ model); `memgen linear` reports KL(ρ_N ‖ ρ) = KL(model ‖ data). It also assumes
//! the continuous-time reverse SDE: a discrete sampler (DDPM ancestral, DDIM) adds its own error.
//!
//! # What is integrated, and the truncation
//!
//! [`kl_bound`] computes, on a grid log-spaced in σ ([`SigmaGrid`]),
//!
//! B = ∫_{σ_min}^{σ_max} e(σ) σ⁻³ dσ + e(σ_max) / (2 σ_max²),  e(σ) = MSE(f_θ, σ²) − MSE(f*, σ²),
//!
//! the integral as ∫ e(σ) σ⁻² d ln σ by composite Simpson in u = ln σ (an odd number of points). The
//! second term is the tail ∫_{σ_max}^∞ for e constant beyond σ_max, which is how any denoiser behaves
//! at large σ (it returns a fixed image; for f_N, e → ‖μ − μ̂‖²), and it estimates the
//! KL(p_{σ_max} ‖ q_{σ_max}) ≈ ‖μ − μ̂‖² / (2σ_max²) of step 4. Below σ_min nothing is added: B bounds
//! KL(p_{σ_min} ‖ q_{σ_min}), data and model each blurred by N(0, σ_min² I) (the model of a DDPM
//! sampler stops at its smallest σ_t too). As σ_min → 0 it tends to the bound on KL(p ‖ p_θ), which
//! is infinite when the model is degenerate (f_N for N ≤ d: e(σ) → Σ over the null directions of Σ̂
//! of their true variance, so B grows like that sum / (2σ_min²)).
//!
//! # Pieces
//!
//! - [`mse_linear_general`]: the exact MSE of any affine denoiser on N(μ, Σ).
//! - [`GaussianLinearMse`]: MSE(f_N, σ²), MSE*(σ²), the excess (without cancellation) and the smoothed
//!   KL for a fitted linear denoiser against a Gaussian truth, O(d²) per σ after one O(d³) setup.
//! - [`mse_monte_carlo`]: the MSE and the excess of any [`ImageDenoiser`] (a trained network) on a
//!   Gaussian truth by Monte Carlo, with standard errors.
//! - [`kl_bound`], [`kl_bound_estimated`]: the integral, with the integrand per σ.; [`monte_carlo_bound`] of a denoiser,
//!   [`optimal_check`] (f* itself: zero).
//! - [`KlBoundRecord`]: kl-bound.json, the record of `memgen kl-bound`: a [`LinearRow`] per training-set
//!   size ([`linear_rows`]), a [`RunRow`] per trained network, the check of f*; its table and CSV.

use crate::{Error, ImageDenoiser, Result, WienerDenoiser};
use candle::{DType, Device, Tensor};
use faer::{Mat, MatRef};
use memgen_diffusion::noise::keyed_rng;
use memgen_diffusion::sampler::{Sampler, SamplerConfig};
use memgen_diffusion::{DdpmSchedule, ScheduleConfig};
use memgen_linear::experiment::{fmt_opt as fmt, Fitted, Truth};
use memgen_linear::theory::Regularization;
use memgen_linear::Moments;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Domain tag of the Monte-Carlo draws of [`mse_monte_carlo`].
const TAG_KLBOUND: u64 = 0x6d65_6d67_656e_0401;

/// Eigenvalues below this fraction of the largest count as zero when a Gaussian's covariance is
/// inverted at σ = 0 ([`GaussianLinearMse::kl`]): rounding leaves ~1e-17 where Σ̂ has rank N − 1 < d.
pub const DEGENERATE_REL: f64 = 1e-12;

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

/// Exact MSE of the affine denoiser f(y) = m + W (y − m) on data x ~ N(μ, Σ) with y = x + σ z,
/// z ~ N(0, I) independent of x:
///
/// E‖f(y) − x‖² = tr((I − W) Σ (I − W)ᵀ) + σ² tr(W Wᵀ) + ‖(I − W)(μ − m)‖².
///
/// From f(y) − x = (W − I)(x − μ) + σ W z + (W − I)(μ − m): three independent terms, the first two
/// zero-mean, so their cross terms vanish. `offset` = m, `w` = W (any d x d matrix, not necessarily
/// symmetric), `mean` = μ, `cov` = Σ (d x d). O(d³). For the linear denoiser fitted to N training
/// images (m = μ̂, W = Σ̂(Σ̂ + σ² I)⁻¹) this is MSE(f_N, σ²) on the true Gaussian; for W =
/// Σ(Σ + σ² I)⁻¹, m = μ it is MSE*(σ²) = Σ_i σ² λ_i / (λ_i + σ²).
pub fn mse_linear_general(
    offset: &[f64],
    w: MatRef<'_, f64>,
    mean: &[f64],
    cov: MatRef<'_, f64>,
    sigma: f64,
) -> Result<f64> {
    let d = mean.len();
    if offset.len() != d || w.nrows() != d || w.ncols() != d || cov.nrows() != d || cov.ncols() != d {
        return Err(invalid(format!(
            "affine MSE: offset of {} entries, W {}x{}, Σ {}x{} for a mean of {d} entries",
            offset.len(),
            w.nrows(),
            w.ncols(),
            cov.nrows(),
            cov.ncols()
        )));
    }
    let iw = Mat::<f64>::from_fn(d, d, |i, j| if i == j { 1.0 } else { 0.0 } - w[(i, j)]);
    let a = iw.as_ref() * cov;
    // tr(A (I − W)ᵀ) = Σ_ij A_ij (I − W)_ij.
    let cov_term: f64 = (0..d).map(|i| (0..d).map(|j| a[(i, j)] * iw[(i, j)]).sum::<f64>()).sum();
    let noise_term: f64 =
        sigma * sigma * (0..d).map(|i| (0..d).map(|j| w[(i, j)].powi(2)).sum::<f64>()).sum::<f64>();
    let shift: Vec<f64> = mean.iter().zip(offset).map(|(m, o)| m - o).collect();
    let bias_term: f64 = (0..d).map(|i| (0..d).map(|j| iw[(i, j)] * shift[j]).sum::<f64>().powi(2)).sum();
    Ok(cov_term + noise_term + bias_term)
}

/// The denoising errors, in closed form, of the linear denoiser fitted to a training set,
/// f_N(y) = μ̂ + Û diag(g) Ûᵀ (y − μ̂), g_i = ŝ_i / (ŝ_i + σ²) (Σ̂ = Û diag(ŝ) Ûᵀ), on Gaussian data
/// N(μ, Σ = V diag(λ) Vᵀ), whose optimal denoiser is f*(y) = μ + V diag(g*) Vᵀ (y − μ), g*_j =
/// λ_j/(λ_j + σ²). With R = Ûᵀ V and δ = Ûᵀ(μ − μ̂):
///
/// - MSE(f_N, σ²) = Σ_i (1 − g_i)² c_i + g_i² σ², c_i = Σ_j R_ij² λ_j + δ_i² = (Ûᵀ(Σ + (μ−μ̂)(μ−μ̂)ᵀ)Û)_ii
///   ([`mse_linear_general`] in the basis where W is diagonal; [`WienerDenoiser::mse_on`] of `c`);
/// - MSE*(σ²) = Σ_j σ² λ_j / (λ_j + σ²);
/// - excess = E‖f_N − f*‖² = Σ_ij (g_i − g*_j)² R_ij² (λ_j + σ²) + Σ_i (1 − g_i)² δ_i², from
///   f_N − f* = (W_N − W*)(y − μ) + (I − W_N)(μ̂ − μ), y − μ ~ N(0, Σ + σ² I): a sum of non-negative
///   terms, with none of the cancellation of MSE − MSE* at small σ.
#[derive(Debug, Clone)]
pub struct GaussianLinearMse {
    /// ŝ_i, the fitted eigenvalues.
    fitted: Vec<f64>,
    /// λ_j, the true eigenvalues.
    truth: Vec<f64>,
    /// R_ij², d x d row-major (i: fitted direction, j: true direction).
    r2: Vec<f64>,
    /// δ_i² = (û_iᵀ(μ − μ̂))².
    delta2: Vec<f64>,
    /// c_i.
    c: Vec<f64>,
}

impl GaussianLinearMse {
    /// `fitted`: (μ̂, Û, ŝ), the fitted linear denoiser; `truth`: (μ, V, λ), the data distribution
    /// (whose own [`WienerDenoiser`] is f*). Both bases orthonormal.
    pub fn new(fitted: &WienerDenoiser, truth: &WienerDenoiser) -> Result<Self> {
        let d = truth.dim();
        if fitted.dim() != d {
            return Err(invalid(format!(
                "fitted denoiser of dimension {} against data of {d}",
                fitted.dim()
            )));
        }
        let u = Mat::<f64>::from_fn(d, d, |p, i| fitted.basis[p * d + i]);
        let v = Mat::<f64>::from_fn(d, d, |p, j| truth.basis[p * d + j]);
        let r = u.transpose() * &v;
        let r2: Vec<f64> = (0..d * d).map(|k| r[(k / d, k % d)].powi(2)).collect();
        let shift: Vec<f64> = truth.mean.iter().zip(&fitted.mean).map(|(m, f)| m - f).collect();
        let delta2: Vec<f64> =
            (0..d).map(|i| (0..d).map(|p| u[(p, i)] * shift[p]).sum::<f64>().powi(2)).collect();
        let c = (0..d)
            .map(|i| (0..d).map(|j| r2[i * d + j] * truth.eigenvalues[j]).sum::<f64>() + delta2[i])
            .collect();
        Ok(GaussianLinearMse {
            fitted: fitted.eigenvalues.clone(),
            truth: truth.eigenvalues.clone(),
            r2,
            delta2,
            c,
        })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.truth.len()
    }

    /// c_i = (Ûᵀ(Σ + (μ − μ̂)(μ − μ̂)ᵀ)Û)_ii, the second moment of x − μ̂ along the fitted directions.
    pub fn projected_second_moment(&self) -> &[f64] {
        &self.c
    }

    /// MSE(f_N, σ²).
    pub fn mse(&self, sigma: f64) -> f64 {
        let v = sigma * sigma;
        self.fitted
            .iter()
            .zip(&self.c)
            .map(|(&s, &c)| {
                let g = gain(s, v);
                (1.0 - g).powi(2) * c + g * g * v
            })
            .sum()
    }

    /// MSE*(σ²) = Σ_j σ² λ_j / (λ_j + σ²).
    pub fn optimal_mse(&self, sigma: f64) -> f64 {
        optimal_mse(&self.truth, sigma)
    }

    /// E‖f_N − f*‖² = MSE(f_N, σ²) − MSE*(σ²), as a sum of non-negative terms.
    pub fn excess(&self, sigma: f64) -> f64 {
        let (v, d) = (sigma * sigma, self.dim());
        let gs: Vec<f64> = self.truth.iter().map(|&l| gain(l, v)).collect();
        (0..d)
            .map(|i| {
                let g = gain(self.fitted[i], v);
                let row = &self.r2[i * d..(i + 1) * d];
                let cov: f64 = row
                    .iter()
                    .zip(&gs)
                    .zip(&self.truth)
                    .map(|((r2, gs), l)| (g - gs).powi(2) * r2 * (l + v))
                    .sum();
                cov + (1.0 - g).powi(2) * self.delta2[i]
            })
            .sum()
    }

    /// KL(N(μ, Σ + σ² I) ‖ N(μ̂, Σ̂ + σ² I)) = ½ Σ_i [(c_i + σ²)/(ŝ_i + σ²) − 1 + ln(ŝ_i + σ²)
    /// − ln(λ_i + σ²)]: data and fitted Gaussian each blurred by N(0, σ² I), the quantity
    /// [`kl_bound`] of the fitted denoiser over [σ, ∞) equals.
    pub fn kl_smoothed(&self, sigma: f64) -> f64 {
        let v = sigma * sigma;
        let c: Vec<f64> = self.c.iter().map(|c| c + v).collect();
        let s: Vec<f64> = self.fitted.iter().map(|s| s + v).collect();
        let l: Vec<f64> = self.truth.iter().map(|l| l + v).collect();
        kl_terms(&c, &s, &l)
    }

    /// KL(N(μ, Σ) ‖ N(μ̂, Σ̂)): infinite when Σ̂ is singular (an eigenvalue below [`DEGENERATE_REL`]
    /// of the largest, e.g. N ≤ d).
    pub fn kl(&self) -> f64 {
        let top = self.fitted.iter().copied().fold(0.0, f64::max);
        if self.fitted.iter().any(|&s| !(s > DEGENERATE_REL * top)) {
            return f64::INFINITY;
        }
        kl_terms(&self.c, &self.fitted, &self.truth)
    }
}

/// ½ Σ_i [c_i / v_i − 1 + ln v_i − ln l_i]: KL(N(μ, Σ) ‖ N(m, U diag(v) Uᵀ)) with c_i the second moment
/// of x − m along u_i and l the eigenvalues of Σ (ln|Σ| = Σ ln l).
fn kl_terms(c: &[f64], v: &[f64], l: &[f64]) -> f64 {
    let sum: f64 = c.iter().zip(v).map(|(c, v)| c / v - 1.0 + v.ln()).sum();
    0.5 * (sum - l.iter().map(|l| l.ln()).sum::<f64>())
}

/// KL(N(μ, Σ) ‖ N(m, U diag(v) Uᵀ)) for the data `truth` = (μ, V, λ) and a Gaussian given in an
/// orthonormal eigenbasis (`basis` d x d row-major, column i = u_i): ½ [Σ_i c_i / v_i − d + Σ_i ln v_i
/// − Σ_j ln λ_j], c_i = u_iᵀ Σ u_i + (u_iᵀ(μ − m))². Infinite when some v_i ≤ 0 (a degenerate model,
/// e.g. a sampler that maps the null space of Σ̂ onto μ̂). O(d³). This is the direction the bound is
/// on, for the exact output of a discrete sampler (memgen-linear's `SamplingDistribution`).
pub fn kl_truth_to_eigen(
    truth: &WienerDenoiser,
    mean: &[f64],
    basis: &[f64],
    variances: &[f64],
) -> Result<f64> {
    let d = truth.dim();
    if mean.len() != d || basis.len() != d * d || variances.len() != d {
        return Err(invalid(format!("KL to N(m, U diag(v) Uᵀ): m, U and v do not all have dimension {d}")));
    }
    if truth.eigenvalues.iter().any(|&l| !(l > 0.0)) {
        return Err(invalid("KL from the data: its covariance is singular".into()));
    }
    if variances.iter().any(|&v| !(v > 0.0)) {
        return Ok(f64::INFINITY);
    }
    let model = WienerDenoiser::new(mean.to_vec(), basis.to_vec(), variances.to_vec())?;
    Ok(kl_terms(
        GaussianLinearMse::new(&model, truth)?.projected_second_moment(),
        variances,
        &truth.eigenvalues,
    ))
}

/// λ / (λ + v), 0 when both vanish.
fn gain(l: f64, v: f64) -> f64 {
    if l + v > 0.0 {
        l / (l + v)
    } else {
        0.0
    }
}

/// MSE*(σ²) = Σ_j σ² λ_j / (λ_j + σ²) of N(μ, V diag(λ) Vᵀ).
pub fn optimal_mse(eigenvalues: &[f64], sigma: f64) -> f64 {
    let v = sigma * sigma;
    eigenvalues.iter().map(|&l| if l + v > 0.0 { v * l / (l + v) } else { 0.0 }).sum()
}

/// The linear denoiser of a training set: (μ̂, Û, ŝ) from its moments and eigendecomposition
/// (memgen-linear's [`memgen_linear::Spectrum`]; eigenvalues clamped at 0 there).
pub fn fitted_denoiser(mean: &[f64], spectrum: &memgen_linear::Spectrum) -> Result<WienerDenoiser> {
    let d = mean.len();
    let u = &spectrum.vectors;
    if u.nrows() != d || u.ncols() != d {
        return Err(invalid(format!("eigenvectors {}x{} for a mean of {d} entries", u.nrows(), u.ncols())));
    }
    let basis = (0..d * d).map(|k| u[(k / d, k % d)]).collect();
    WienerDenoiser::new(mean.to_vec(), basis, spectrum.values.clone())
}

/// The noise levels of the integral: `points` values log-spaced from `sigma_min` to `sigma_max`
/// (both included), `points` odd (composite Simpson's rule in ln σ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SigmaGrid {
    pub sigma_min: f64,
    pub sigma_max: f64,
    pub points: usize,
}

impl SigmaGrid {
    /// Check 0 < `sigma_min` < `sigma_max` < ∞ and `points` odd, at least 3.
    pub fn new(sigma_min: f64, sigma_max: f64, points: usize) -> Result<Self> {
        if !(sigma_min > 0.0 && sigma_max > sigma_min && sigma_max.is_finite()) {
            return Err(invalid(format!(
                "σ grid: need 0 < σ_min < σ_max < ∞, got σ_min = {sigma_min}, σ_max = {sigma_max}"
            )));
        }
        if points < 3 || points % 2 == 0 {
            return Err(invalid(format!(
                "σ grid: Simpson's rule needs an odd number of points ≥ 3, got {points}"
            )));
        }
        Ok(SigmaGrid { sigma_min, sigma_max, points })
    }

    /// The step h in ln σ.
    pub fn step(&self) -> f64 {
        (self.sigma_max / self.sigma_min).ln() / (self.points - 1) as f64
    }

    /// σ_k = σ_min e^{k h}, k = 0 … points − 1 (the last one exactly σ_max).
    pub fn sigmas(&self) -> Vec<f64> {
        let (lo, h) = (self.sigma_min.ln(), self.step());
        (0..self.points)
            .map(|k| if k + 1 == self.points { self.sigma_max } else { (lo + h * k as f64).exp() })
            .collect()
    }

    /// Simpson weights in u = ln σ: h/3 · (1, 4, 2, 4, …, 2, 4, 1).
    pub fn weights(&self) -> Vec<f64> {
        let h = self.step();
        (0..self.points)
            .map(|k| {
                let m = if k == 0 || k + 1 == self.points {
                    1.0
                } else if k % 2 == 1 {
                    4.0
                } else {
                    2.0
                };
                m * h / 3.0
            })
            .collect()
    }
}

/// The integrand at one noise level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundPoint {
    pub sigma: f64,
    /// e(σ) = MSE(f, σ²) − MSE(f*, σ²).
    pub excess: f64,
    /// Its standard error (0 in closed form).
    pub excess_se: f64,
    /// e(σ) σ⁻³, the integrand in dσ.
    pub integrand: f64,
    /// e(σ) σ⁻², the integrand in d ln σ (what the quadrature sums: where the bound comes from on a
    /// log-σ axis).
    pub per_log_sigma: f64,
}

/// B = ∫_{σ_min}^{σ_max} e(σ) σ⁻³ dσ + e(σ_max)/(2σ_max²) (the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KlBound {
    pub grid: SigmaGrid,
    /// ∫_{σ_min}^{σ_max} e(σ) σ⁻³ dσ (Simpson in ln σ).
    pub integral: f64,
    /// e(σ_max) / (2 σ_max²): the tail beyond σ_max for e constant there.
    pub upper_tail: f64,
    /// `integral` + `upper_tail`: a bound on KL(p_{σ_min} ‖ q_{σ_min}).
    pub bound: f64,
    /// Standard error of `bound` from the points' standard errors (independent draws per σ; 0 in closed form).
    pub bound_se: f64,
    pub points: Vec<BoundPoint>,
}

/// [`KlBound`] of an excess e(σ) known exactly (e.g. [`GaussianLinearMse::excess`]). Errors when e
/// is not finite at a grid point.
pub fn kl_bound(excess: impl Fn(f64) -> f64, grid: &SigmaGrid) -> Result<KlBound> {
    kl_bound_estimated(|_, s| Ok((excess(s), 0.0)), grid)
}

/// [`KlBound`] of an excess estimated with a standard error: `excess(k, σ_k)` returns (e, SE) at grid
/// point k (e.g. from [`mse_monte_carlo`]). The bound's SE is √Σ_k (a_k SE_k)², a_k the weight of
/// point k in B, as for independent estimates.
pub fn kl_bound_estimated(
    mut excess: impl FnMut(usize, f64) -> Result<(f64, f64)>,
    grid: &SigmaGrid,
) -> Result<KlBound> {
    let grid = SigmaGrid::new(grid.sigma_min, grid.sigma_max, grid.points)?;
    let (sigmas, weights) = (grid.sigmas(), grid.weights());
    let mut points = Vec::with_capacity(sigmas.len());
    let (mut integral, mut var) = (0.0, 0.0);
    for (k, (&s, &w)) in sigmas.iter().zip(&weights).enumerate() {
        let (e, se) = excess(k, s)?;
        if !e.is_finite() || !se.is_finite() {
            return Err(invalid(format!("KL bound: excess MSE {e} ± {se} at σ = {s} is not finite")));
        }
        let per_log_sigma = e / (s * s);
        integral += w * per_log_sigma;
        let mut a = w / (s * s);
        if k + 1 == sigmas.len() {
            a += 1.0 / (2.0 * s * s);
        }
        var += (a * se).powi(2);
        points.push(BoundPoint {
            sigma: s,
            excess: e,
            excess_se: se,
            integrand: per_log_sigma / s,
            per_log_sigma,
        });
    }
    let last = points.last().expect("at least 3 points");
    let upper_tail = last.excess / (2.0 * last.sigma * last.sigma);
    Ok(KlBound { grid, integral, upper_tail, bound: integral + upper_tail, bound_se: var.sqrt(), points })
}

/// How [`mse_monte_carlo`] draws and batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McConfig {
    /// Draws (x, z) per noise level.
    pub count: usize,
    /// Images per call of the denoiser.
    pub batch: usize,
    pub seed: u64,
    /// The dtype of the images handed to the denoiser (F32 for networks).
    pub dtype: DType,
}

impl Default for McConfig {
    /// 512 draws, batches of 256, seed 0, f32.
    fn default() -> Self {
        McConfig { count: 512, batch: 256, seed: 0, dtype: DType::F32 }
    }
}

/// Monte-Carlo denoising errors at one noise level (sums over pixels, as in the bound).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McMse {
    pub sigma: f64,
    /// [`ImageDenoiser::effective_sigma`] of the denoiser at σ.
    pub effective_sigma: f64,
    pub count: usize,
    /// (1/n) Σ_k ‖f(y_k) − x_k‖² and its standard error.
    pub mse: f64,
    pub mse_se: f64,
    /// MSE*(σ²) in closed form.
    pub optimal_mse: f64,
    /// (1/n) Σ_k ‖f(y_k) − f*(y_k)‖², an unbiased estimate of MSE(f) − MSE* (step 3 of the module
    /// doc) with far less variance than `mse` − `optimal_mse`, and its standard error.
    pub excess: f64,
    pub excess_se: f64,
}

/// The MSE of `den` at noise level σ on the Gaussian data `truth` = N(μ, V diag(λ) Vᵀ) (whose optimal
/// denoiser f* is `truth` itself), images of shape `dims` (C, H, W with C·H·W = d).
///
/// Draw k: x_k = μ + V (√λ ⊙ a), y_k = x_k + σ V b with a, b ~ N(0, I_d) (V b ~ N(0, I) as V is
/// orthonormal), the 2d standard normals (f64) of the ChaCha8 stream keyed by (tag, `cfg.seed`, k, the
/// bits of σ): the same for every batch size, fresh for every σ, and the same for two denoisers given
/// one seed (paired comparisons). x, y and f*(y) = μ + V (g* ⊙ (√λ ⊙ a + σ b)) are computed in f64;
/// y is handed to the denoiser in `cfg.dtype`.
pub fn mse_monte_carlo(
    den: &dyn ImageDenoiser,
    truth: &WienerDenoiser,
    dims: &[usize],
    sigma: f64,
    cfg: &McConfig,
) -> Result<McMse> {
    let d = truth.dim();
    if dims.iter().product::<usize>() != d {
        return Err(invalid(format!("Monte-Carlo MSE: images of shape {dims:?} for data of dimension {d}")));
    }
    if cfg.count < 2 || cfg.batch == 0 {
        return Err(invalid(format!(
            "Monte-Carlo MSE: needs at least 2 draws and a batch ≥ 1, got {} and {}",
            cfg.count, cfg.batch
        )));
    }
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(invalid(format!("Monte-Carlo MSE: noise level {sigma} is not a number ≥ 0")));
    }
    let v = Mat::<f64>::from_fn(d, d, |p, j| truth.basis[p * d + j]);
    let sqrt_l: Vec<f64> = truth.eigenvalues.iter().map(|l| l.sqrt()).collect();
    let gs: Vec<f64> = truth.gains(sigma);
    let (mut errs, mut excess) = (Vec::with_capacity(cfg.count), Vec::with_capacity(cfg.count));
    for first in (0..cfg.count).step_by(cfg.batch) {
        let b = cfg.batch.min(cfg.count - first);
        // Eigen coordinates of x − μ, y − μ and f*(y) − μ, one row per draw.
        let (mut xe, mut ye) = (Mat::<f64>::zeros(b, d), Mat::<f64>::zeros(b, d));
        for r in 0..b {
            let mut rng = keyed_rng([TAG_KLBOUND, cfg.seed, (first + r) as u64, sigma.to_bits()]);
            for j in 0..d {
                let a: f64 = rng.sample(StandardNormal);
                xe[(r, j)] = sqrt_l[j] * a;
            }
            for j in 0..d {
                let z: f64 = rng.sample(StandardNormal);
                ye[(r, j)] = xe[(r, j)] + sigma * z;
            }
        }
        let fe = Mat::<f64>::from_fn(b, d, |r, j| gs[j] * ye[(r, j)]);
        let vt = v.transpose();
        let (x, y, fstar) = (&xe * vt, &ye * vt, &fe * vt);
        let noisy: Vec<f64> = (0..b * d).map(|k| y[(k / d, k % d)] + truth.mean[k % d]).collect();
        let mut shape = vec![b];
        shape.extend_from_slice(dims);
        let input = Tensor::from_vec(noisy, shape, &Device::Cpu)?.to_dtype(cfg.dtype)?;
        let out = den.denoise(&input, sigma)?;
        if out.elem_count() != b * d {
            return Err(invalid(format!(
                "Monte-Carlo MSE: the denoiser returned {} values for {b} images of {d} pixels",
                out.elem_count()
            )));
        }
        let est = out.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        for r in 0..b {
            let (mut e, mut p) = (0.0, 0.0);
            for j in 0..d {
                let f = est[r * d + j] - truth.mean[j];
                e += (f - x[(r, j)]).powi(2);
                p += (f - fstar[(r, j)]).powi(2);
            }
            errs.push(e);
            excess.push(p);
        }
    }
    let (mse, mse_se) = mean_se(&errs);
    let (ex, ex_se) = mean_se(&excess);
    Ok(McMse {
        sigma,
        effective_sigma: den.effective_sigma(sigma),
        count: cfg.count,
        mse,
        mse_se,
        optimal_mse: optimal_mse(&truth.eigenvalues, sigma),
        excess: ex,
        excess_se: ex_se,
    })
}

/// [`kl_bound_estimated`] with [`mse_monte_carlo`] at every grid point: the bound of any denoiser
/// (a trained network) on the Gaussian data `truth`, and the Monte-Carlo MSEs per σ.
pub fn monte_carlo_bound(
    den: &dyn ImageDenoiser,
    truth: &WienerDenoiser,
    dims: &[usize],
    grid: &SigmaGrid,
    cfg: &McConfig,
) -> Result<(KlBound, Vec<McMse>)> {
    let mut mse = Vec::with_capacity(grid.points);
    let bound = kl_bound_estimated(
        |_, s| {
            let m = mse_monte_carlo(den, truth, dims, s, cfg)?;
            mse.push(m);
            Ok((m.excess, m.excess_se))
        },
        grid,
    )?;
    Ok((bound, mse))
}

/// The bound of the optimal denoiser f* = `truth` itself, which must vanish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimalCheck {
    /// Largest |e(σ) σ⁻³| over `grid` in closed form ([`GaussianLinearMse`] of f* against itself).
    pub closed_form_max_integrand: f64,
    pub closed_form_bound: f64,
    /// [`monte_carlo_bound`] of f* with f64 images: bound, standard error and the largest excess over
    /// the grid (zero up to rounding).
    pub monte_carlo_bound: f64,
    pub monte_carlo_bound_se: f64,
    pub monte_carlo_max_excess: f64,
    /// The same with f32 images, as networks get them: the floor set by rounding y to f32 (an excess
    /// of about d (ulp/2)²/3 at every σ, which σ⁻² amplifies at a small σ_min).
    pub monte_carlo_f32_bound: f64,
    pub monte_carlo_f32_bound_se: f64,
}

/// [`OptimalCheck`] of `truth` on images of shape `dims`: closed form on `grid`, Monte Carlo on
/// `mc_grid` with `cfg` (its dtype replaced by f64, then f32).
pub fn optimal_check(
    truth: &WienerDenoiser,
    dims: &[usize],
    grid: &SigmaGrid,
    mc_grid: &SigmaGrid,
    cfg: &McConfig,
) -> Result<OptimalCheck> {
    let g = GaussianLinearMse::new(truth, truth)?;
    let closed = kl_bound(|s| g.excess(s), grid)?;
    let (exact, mse) =
        monte_carlo_bound(truth, truth, dims, mc_grid, &McConfig { dtype: DType::F64, ..*cfg })?;
    let (f32s, _) = monte_carlo_bound(truth, truth, dims, mc_grid, &McConfig { dtype: DType::F32, ..*cfg })?;
    Ok(OptimalCheck {
        closed_form_max_integrand: closed.points.iter().map(|p| p.integrand.abs()).fold(0.0, f64::max),
        closed_form_bound: closed.bound,
        monte_carlo_bound: exact.bound,
        monte_carlo_bound_se: exact.bound_se,
        monte_carlo_max_excess: mse.iter().map(|m| m.excess.abs()).fold(0.0, f64::max),
        monte_carlo_f32_bound: f32s.bound,
        monte_carlo_f32_bound_se: f32s.bound_se,
    })
}

/// (mean, s/√n) with the n − 1 variance; n ≥ 2.
fn mean_se(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// What `memgen kl-bound` bounds, as recorded in kl-bound.json.
pub const FORMULA: &str =
    "B = ∫_{σmin}^{σmax} (MSE(f, σ²) − MSE(f*, σ²)) σ⁻³ dσ + e(σmax)/(2σmax²) ≥ KL(p_σmin ‖ q_σmin)";

/// The linear denoiser fitted to one training set of N images: its bound in closed form next to the
/// exact KL divergences of the linear model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearRow {
    pub n: usize,
    /// Numerical rank of Σ̂ (eigenvalues above 1e-10 of the largest).
    pub rank: usize,
    /// The bound with the closed-form excess, and its integrand per σ.
    pub bound: KlBound,
    /// KL(N(μ, Σ + σ_min² I) ‖ N(μ̂, Σ̂ + σ_min² I)): what the bound bounds; equal to it for the linear
    /// model (up to quadrature and the tail estimate).
    #[serde(deserialize_with = "crate::nonfinite::null_as_infinity")]
    pub kl_smoothed: f64,
    /// KL(N(μ, Σ + σ_max² I) ‖ N(μ̂, Σ̂ + σ_max² I)), which the tail term estimates.
    #[serde(deserialize_with = "crate::nonfinite::null_as_infinity")]
    pub kl_at_sigma_max: f64,
    /// KL(p ‖ N(μ̂, Σ̂)) (infinite, null in JSON, for N ≤ d).
    #[serde(deserialize_with = "crate::nonfinite::null_as_infinity")]
    pub kl_fitted: f64,
    /// KL(N(μ̂, Σ̂) ‖ p) (infinite, null in JSON, for a degenerate Σ̂).
    #[serde(deserialize_with = "crate::nonfinite::null_as_infinity")]
    pub kl_fitted_reverse: f64,
    /// `memgen linear`'s `kl`: KL(ρ_N ‖ ρ) of the sampler's exact output ρ_N (model first).
    pub kl_linear: Option<f64>,
    /// KL(ρ ‖ ρ_N): the same sampler output, in the bound's direction (data first; null: infinite).
    #[serde(deserialize_with = "crate::nonfinite::null_as_infinity")]
    pub kl_linear_truth_first: f64,
    /// Mean effective c of ρ_N ≈ N(μ̂, Σ̂ + c I).
    pub c_mean: f64,
}

impl LinearRow {
    /// The row of `fitted` (the linear denoiser of a training set) against the Gaussian `truth`, whose
    /// optimal denoiser is `truth_den`: the closed-form bound on `grid`, the KLs of N(μ̂, Σ̂), and of the
    /// exact output of `sampler` on `schedule`.
    pub fn new(
        fitted: &Fitted,
        truth: &Truth,
        truth_den: &WienerDenoiser,
        grid: &SigmaGrid,
        schedule: &DdpmSchedule,
        sampler: &dyn Sampler,
        reg: Regularization,
    ) -> Result<Self> {
        let n = fitted.moments.count;
        let den = fitted_denoiser(&fitted.moments.mean, &fitted.spectrum)?;
        let g = GaussianLinearMse::new(&den, truth_den)?;
        let bound = kl_bound(|s| g.excess(s), grid)?;
        let values = &fitted.spectrum.values;
        let top = values.iter().copied().fold(0.0, f64::max);
        let kl_fitted_reverse = match &truth.gaussian {
            _ if values.iter().any(|&s| !(s > DEGENERATE_REL * top)) => f64::INFINITY,
            Some(gauss) => {
                gauss.kl_from_eigen(&fitted.moments.mean, &fitted.spectrum.vectors, values).map_err(linear)?
            }
            None => f64::NAN,
        };
        let (kl_linear, dist) = fitted.kl(truth, schedule, sampler, reg).map_err(linear)?;
        let kl_linear_truth_first = kl_truth_to_eigen(truth_den, &dist.mean, &den.basis, &dist.variances)?;
        Ok(LinearRow {
            n,
            rank: fitted.spectrum.rank(1e-10),
            kl_smoothed: g.kl_smoothed(grid.sigma_min),
            kl_at_sigma_max: g.kl_smoothed(grid.sigma_max),
            kl_fitted: g.kl(),
            kl_fitted_reverse,
            kl_linear,
            kl_linear_truth_first,
            c_mean: dist.c_mean,
            bound,
        })
    }
}

/// An error of memgen-linear, as [`Error::Invalid`] with its message.
fn linear(e: memgen_linear::Error) -> Error {
    Error::Invalid(e.to_string())
}

/// [`LinearRow`]s of the linear denoisers fitted to the first N images of `rows` (N x d row-major, d
/// the dimension of `truth`) for each N of `ns`.
#[allow(clippy::too_many_arguments)]
pub fn linear_rows(
    rows: &[f32],
    ns: &[usize],
    truth: &Truth,
    truth_den: &WienerDenoiser,
    grid: &SigmaGrid,
    schedule: &DdpmSchedule,
    sampler: &dyn Sampler,
    reg: Regularization,
) -> Result<Vec<LinearRow>> {
    let d = truth.dim();
    ns.iter()
        .map(|&n| {
            let fitted = rows
                .get(..n * d)
                .ok_or_else(|| invalid(format!("N = {n}: only {} images", rows.len() / d.max(1))))
                .and_then(|r| Fitted::new(r, truth).map_err(|e| invalid(format!("N = {n}: {e}"))))?;
            LinearRow::new(&fitted, truth, truth_den, grid, schedule, sampler, reg)
        })
        .collect()
}

/// `memgen linear`'s KL of the N → ∞ limit (the linear model of the population's own moments): the
/// sampler's discretisation error alone.
pub fn linear_limit(
    truth: &Truth,
    schedule: &DdpmSchedule,
    sampler: &dyn Sampler,
    reg: Regularization,
) -> Result<Option<f64>> {
    let moments = Moments { mean: truth.mean.clone(), cov: truth.cov.clone(), count: usize::MAX };
    let fitted = Fitted::from_moments(moments, truth).map_err(linear)?;
    Ok(fitted.kl(truth, schedule, sampler, reg).map_err(linear)?.0)
}

/// A trained network: its bound from Monte-Carlo MSEs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub run: PathBuf,
    /// Training images.
    pub n: usize,
    pub ema: bool,
    pub bound: KlBound,
    /// The Monte-Carlo MSEs per σ.
    pub mse: Vec<McMse>,
}

impl RunRow {
    /// [`monte_carlo_bound`] of the network `den` of `run` (trained on `n` images of the Gaussian
    /// `truth`), on images of shape `dims`.
    pub fn new(
        run: PathBuf,
        n: usize,
        ema: bool,
        den: &dyn ImageDenoiser,
        truth: &WienerDenoiser,
        dims: &[usize],
        grid: &SigmaGrid,
        mc: &McConfig,
    ) -> Result<Self> {
        let (bound, mse) = monte_carlo_bound(den, truth, dims, grid, mc)?;
        Ok(RunRow { run, n, ema, bound, mse })
    }
}

/// kl-bound.json, the record of `memgen kl-bound`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KlBoundRecord {
    /// `--data` as given (gaussian[:SPECTRUM]).
    pub data: String,
    pub description: String,
    pub d: usize,
    pub side: usize,
    /// Seed of the training images.
    pub seed: u64,
    /// [`FORMULA`].
    pub formula: String,
    pub sigma_min: f64,
    pub sigma_max: f64,
    /// Grid points of the closed-form and of the Monte-Carlo integrals.
    pub points: usize,
    pub run_points: usize,
    pub mc_samples: usize,
    pub mc_seed: u64,
    pub schedule: ScheduleConfig,
    /// The sampler of the linear model's exact KL.
    pub sampler: SamplerConfig,
    /// [`linear_limit`] (null: infinite or undefined).
    pub kl_linear_limit: Option<f64>,
    pub threads: usize,
    pub optimal: OptimalCheck,
    pub linear: Vec<LinearRow>,
    pub runs: Vec<RunRow>,
}

impl KlBoundRecord {
    /// The Markdown summary: per N the bound next to the KLs, per run its bound, and the check of f*.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}; d = {}; q = model, p = data; σ_min = {:.4e}",
            self.description, self.d, self.sigma_min
        );
        let _ = writeln!(s, "| N | rank Σ̂ | bound B | KL(p_σmin ‖ q_σmin) | KL(p ‖ N(μ̂,Σ̂)) | KL(N(μ̂,Σ̂) ‖ p) | KL(ρ_N ‖ ρ) linear | KL(ρ ‖ ρ_N) |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for r in &self.linear {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.n,
                r.rank,
                fmt(Some(r.bound.bound)),
                fmt(Some(r.kl_smoothed)),
                fmt(Some(r.kl_fitted)),
                fmt(Some(r.kl_fitted_reverse)),
                fmt(r.kl_linear),
                fmt(Some(r.kl_linear_truth_first))
            );
        }
        for r in &self.runs {
            let _ = writeln!(
                s,
                "run {} (N = {}): B = {} ± {}",
                r.run.display(),
                r.n,
                fmt(Some(r.bound.bound)),
                fmt(Some(r.bound.bound_se))
            );
        }
        let opt = &self.optimal;
        let _ = writeln!(
            s,
            "optimal denoiser f*: max integrand {} (closed form); Monte Carlo B = {} ± {} (f64 images), {} ± {} (f32 images: the floor of --run)",
            fmt(Some(opt.closed_form_max_integrand)),
            fmt(Some(opt.monte_carlo_bound)),
            fmt(Some(opt.monte_carlo_bound_se)),
            fmt(Some(opt.monte_carlo_f32_bound)),
            fmt(Some(opt.monte_carlo_f32_bound_se))
        );
        s
    }

    /// kl-bound.csv: one row per N ("linear") and per run (its path, commas replaced).
    pub fn csv(&self) -> String {
        let mut s = String::from(
            "source,n,rank,bound,bound_se,integral,upper_tail,kl_smoothed,kl_at_sigma_max,kl_fitted,kl_fitted_reverse,kl_linear,kl_linear_truth_first\n",
        );
        let o = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
        for r in &self.linear {
            let b = &r.bound;
            let _ = writeln!(
                s,
                "linear,{},{},{},{},{},{},{},{},{},{},{},{}",
                r.n,
                r.rank,
                b.bound,
                b.bound_se,
                b.integral,
                b.upper_tail,
                r.kl_smoothed,
                r.kl_at_sigma_max,
                r.kl_fitted,
                r.kl_fitted_reverse,
                o(r.kl_linear),
                r.kl_linear_truth_first
            );
        }
        for r in &self.runs {
            let b = &r.bound;
            let name = r.run.display().to_string().replace(',', "_");
            let _ = writeln!(
                s,
                "{name},{},,{},{},{},{},,,,,,",
                r.n, b.bound, b.bound_se, b.integral, b.upper_tail
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// An orthonormal d x d basis (row-major, Gram–Schmidt of a seeded random matrix).
    fn random_basis(d: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut cols: Vec<Vec<f64>> = Vec::new();
        while cols.len() < d {
            let mut c: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
            for q in &cols {
                let dot: f64 = c.iter().zip(q).map(|(a, b)| a * b).sum();
                c.iter_mut().zip(q).for_each(|(a, b)| *a -= dot * b);
            }
            let norm = c.iter().map(|a| a * a).sum::<f64>().sqrt();
            cols.push(c.into_iter().map(|a| a / norm).collect());
        }
        (0..d * d).map(|k| cols[k % d][k / d]).collect()
    }

    /// N(μ, V diag(λ) Vᵀ) in d dimensions with a power-law spectrum and a random basis.
    fn gaussian(d: usize, seed: u64) -> WienerDenoiser {
        let mean = (0..d).map(|i| 0.5 + 0.1 * (i as f64).sin()).collect();
        let eig = (1..=d).map(|k| 0.3 / k as f64).collect();
        WienerDenoiser::new(mean, random_basis(d, seed), eig).unwrap()
    }

    fn cov_of(g: &WienerDenoiser) -> Mat<f64> {
        let d = g.dim();
        Mat::from_fn(d, d, |r, c| {
            (0..d).map(|i| g.basis[r * d + i] * g.eigenvalues[i] * g.basis[c * d + i]).sum()
        })
    }

    fn rows_of(g: &WienerDenoiser, n: usize, seed: u64) -> Vec<f32> {
        let d = g.dim();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let a: Vec<f64> =
                (0..d).map(|j| g.eigenvalues[j].sqrt() * rng.sample::<f64, _>(StandardNormal)).collect();
            out.extend(
                (0..d).map(|p| (g.mean[p] + (0..d).map(|j| g.basis[p * d + j] * a[j]).sum::<f64>()) as f32),
            );
        }
        out
    }

    fn fit(rows: &[f32], d: usize) -> WienerDenoiser {
        let m = memgen_linear::Moments::from_rows(rows, d).unwrap();
        fitted_denoiser(&m.mean, &memgen_linear::Spectrum::of(&m.cov).unwrap()).unwrap()
    }

    /// An affine denoiser m + W (y − m) with an arbitrary W, for the Monte-Carlo checks.
    struct Affine {
        m: Vec<f64>,
        w: Vec<f64>,
    }

    impl ImageDenoiser for Affine {
        fn denoise(&self, y: &Tensor, _sigma: f64) -> Result<Tensor> {
            let d = self.m.len();
            let b = y.dim(0)?;
            let m = Tensor::from_vec(self.m.clone(), (1, d), y.device())?;
            let w = Tensor::from_vec(self.w.clone(), (d, d), y.device())?;
            let c = y.to_dtype(DType::F64)?.reshape((b, d))?.broadcast_sub(&m)?;
            Ok(c.matmul(&w.t()?)?.broadcast_add(&m)?.reshape(y.shape())?)
        }
    }

    const SIGMAS: [f64; 6] = [1e-3, 0.01, 0.1, 0.5, 2.0, 30.0];

    #[test]
    fn the_optimal_denoiser_has_zero_integrand() {
        let truth = gaussian(6, 1);
        let closed = GaussianLinearMse::new(&truth, &truth).unwrap();
        for s in SIGMAS {
            // Exactly zero up to rounding of R = VᵀV ≈ I; MSE − MSE* agrees.
            assert!(closed.excess(s) < 1e-25, "σ = {s}: {}", closed.excess(s));
            assert!(
                (closed.mse(s) - closed.optimal_mse(s)).abs() < 1e-14 * closed.optimal_mse(s).max(1e-300)
            );
            assert!(closed.kl_smoothed(s).abs() < 1e-12);
        }
        let grid = SigmaGrid::new(1e-3, 100.0, 41).unwrap();
        let b = kl_bound(|s| closed.excess(s), &grid).unwrap();
        assert!(b.bound.abs() < 1e-15 && b.points.iter().all(|p| p.integrand.abs() < 1e-15), "{}", b.bound);
        // Monte Carlo: f = f* pairs to zero within its standard error, and its MSE is MSE*.
        let cfg = McConfig { count: 4000, batch: 1000, seed: 7, dtype: DType::F64 };
        for s in SIGMAS {
            let mc = mse_monte_carlo(&truth, &truth, &[1, 2, 3], s, &cfg).unwrap();
            assert!(mc.excess <= 4.0 * mc.excess_se + 1e-20, "σ = {s}: {mc:?}");
            assert!((mc.mse - mc.optimal_mse).abs() < 4.0 * mc.mse_se, "σ = {s}: {mc:?}");
        }
    }

    #[test]
    fn affine_mse_matches_monte_carlo() {
        // d = 4, an arbitrary (non-symmetric) W, an offset m ≠ μ.
        let d = 4;
        let truth = gaussian(d, 2);
        let m: Vec<f64> = vec![0.3, 0.6, 0.45, 0.5];
        let w: Vec<f64> =
            (0..d * d).map(|k| if k / d == k % d { 0.7 } else { 0.1 * ((k as f64) * 1.3).cos() }).collect();
        let wm = Mat::from_fn(d, d, |i, j| w[i * d + j]);
        let cov = cov_of(&truth);
        let den = Affine { m: m.clone(), w };
        let cfg = McConfig { count: 200_000, batch: 20_000, seed: 3, dtype: DType::F64 };
        for s in [0.05, 0.4, 1.5] {
            let exact = mse_linear_general(&m, wm.as_ref(), &truth.mean, cov.as_ref(), s).unwrap();
            let mc = mse_monte_carlo(&den, &truth, &[1, 2, 2], s, &cfg).unwrap();
            assert!((mc.mse - exact).abs() < 4.0 * mc.mse_se, "σ = {s}: {exact} vs {mc:?}");
            let excess = exact - optimal_mse(&truth.eigenvalues, s);
            assert!((mc.excess - excess).abs() < 4.0 * mc.excess_se, "σ = {s}: {excess} vs {mc:?}");
        }
        let bad = mse_linear_general(&m[..3], wm.as_ref(), &truth.mean, cov.as_ref(), 0.1);
        assert!(bad.is_err());
    }

    #[test]
    fn affine_mse_reduces_to_the_diagonal_forms() {
        let d = 5;
        let truth = gaussian(d, 4);
        let cov = cov_of(&truth);
        // The same basis: W = U diag(g) Uᵀ with other eigenvalues, m = μ: WienerDenoiser::mse_on.
        let other =
            WienerDenoiser::new(truth.mean.clone(), truth.basis.clone(), vec![0.2, 0.05, 0.4, 0.0, 0.01])
                .unwrap();
        for s in SIGMAS {
            let w = Mat::from_fn(d, d, |i, j| other.matrix(s)[i * d + j]);
            let general = mse_linear_general(&other.mean, w.as_ref(), &truth.mean, cov.as_ref(), s).unwrap();
            let diag = other.mse_on(&truth.eigenvalues, s);
            assert!((general - diag).abs() < 1e-12 * diag.max(1e-12), "σ = {s}: {general} vs {diag}");
            // f* itself: MSE*.
            let ws = Mat::from_fn(d, d, |i, j| truth.matrix(s)[i * d + j]);
            let star = mse_linear_general(&truth.mean, ws.as_ref(), &truth.mean, cov.as_ref(), s).unwrap();
            assert!((star - optimal_mse(&truth.eigenvalues, s)).abs() < 1e-13 * star.max(1e-300));
        }
        // A fitted denoiser in its own basis and mean: GaussianLinearMse agrees with the general form,
        // its excess with MSE − MSE*, its c with the fitted denoiser's mse_on.
        let fitted = fit(&rows_of(&truth, 12, 5), d);
        let g = GaussianLinearMse::new(&fitted, &truth).unwrap();
        for s in SIGMAS {
            let w = Mat::from_fn(d, d, |i, j| fitted.matrix(s)[i * d + j]);
            let general = mse_linear_general(&fitted.mean, w.as_ref(), &truth.mean, cov.as_ref(), s).unwrap();
            assert!((g.mse(s) - general).abs() < 1e-11 * general, "σ = {s}: {} vs {general}", g.mse(s));
            assert!((fitted.mse_on(g.projected_second_moment(), s) - general).abs() < 1e-11 * general);
            let diff = general - g.optimal_mse(s);
            assert!((g.excess(s) - diff).abs() < 1e-10 * general, "σ = {s}: {} vs {diff}", g.excess(s));
        }
    }

    #[test]
    fn simpson_in_log_sigma_integrates_a_known_function() {
        // e(σ) = σ³ e^{−σ}: ∫_a^b e(σ) σ⁻³ dσ = e^{−a} − e^{−b}.
        let grid = SigmaGrid::new(1e-3, 50.0, 401).unwrap();
        let b = kl_bound(|s| s.powi(3) * (-s).exp(), &grid).unwrap();
        let want = (-1e-3f64).exp() - (-50f64).exp();
        assert!((b.integral - want).abs() < 1e-6, "{} vs {want}", b.integral);
        assert_eq!(b.points.len(), 401);
        assert!((b.points[0].sigma - 1e-3).abs() < 1e-18 && b.points[400].sigma == 50.0);
        // e(σ) = σ²: ∫ σ⁻¹ dσ = ln(b/a), e σ⁻² = 1 integrated exactly; the tail is e/(2σ²) = ½.
        let b = kl_bound(|s| s * s, &SigmaGrid::new(0.1, 10.0, 3).unwrap()).unwrap();
        assert!((b.integral - 100f64.ln()).abs() < 1e-13 && (b.upper_tail - 0.5).abs() < 1e-15);
        // Bad grids and non-finite integrands are refused.
        assert!(SigmaGrid::new(0.1, 10.0, 4).is_err() && SigmaGrid::new(0.0, 1.0, 5).is_err());
        assert!(SigmaGrid::new(2.0, 1.0, 5).is_err());
        assert!(kl_bound(|s| 1.0 / (s - s), &SigmaGrid::new(0.1, 1.0, 5).unwrap()).is_err());
        // Standard errors combine in quadrature with the weights.
        let grid = SigmaGrid::new(0.5, 2.0, 3).unwrap();
        let b = kl_bound_estimated(|_, _| Ok((1.0, 0.1)), &grid).unwrap();
        let w = grid.weights();
        let a = [w[0] / 0.25, w[1] / 1.0, w[2] / 4.0 + 1.0 / 8.0];
        let want = 0.1 * a.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!((b.bound_se - want).abs() < 1e-15, "{} vs {want}", b.bound_se);
    }

    #[test]
    fn the_linear_bound_is_the_smoothed_kl_and_falls_with_n() {
        // d = 16: the fitted denoiser is the exact denoiser of N(μ̂, Σ̂), so the bound over
        // [σ_min, σ_max] plus the tail equals KL(p_σmin ‖ q_σmin) (de Bruijn), for N < d and N > d.
        let d = 16;
        let truth = gaussian(d, 6);
        let grid = SigmaGrid::new(0.01, 150.0, 241).unwrap();
        let all = rows_of(&truth, 4096, 8);
        let mut last = f64::INFINITY;
        for n in [8, 32, 128, 512, 4096] {
            let g = GaussianLinearMse::new(&fit(&all[..n * d], d), &truth).unwrap();
            let b = kl_bound(|s| g.excess(s), &grid).unwrap();
            let want = g.kl_smoothed(0.01);
            assert!((b.bound - want).abs() < 1e-6 * want, "N = {n}: bound {} vs KL {want}", b.bound);
            // The tail estimates KL(p_σmax ‖ q_σmax) to leading order.
            let top = g.kl_smoothed(150.0);
            assert!((b.upper_tail - top).abs() < 1e-3 * top, "N = {n}: tail {} vs {top}", b.upper_tail);
            assert!(b.bound < last && b.bound > 0.0, "N = {n}: {} after {last}", b.bound);
            last = b.bound;
            // N > d: the unsmoothed KL is finite and bounded by... itself as σ_min → 0.
            let kl = g.kl();
            assert_eq!(kl.is_finite(), n > d, "N = {n}: {kl}");
            if n > d {
                assert!(kl >= want * 0.999, "N = {n}: KL(p ‖ q) {kl} below the smoothed {want}");
            }
        }
    }

    #[test]
    fn record_round_trips_with_infinite_kls() {
        // d = 4: N = 3 fits a degenerate Σ̂ (infinite unsmoothed KLs, null in JSON), N = 64 does not.
        let d = 4;
        let truth_den = gaussian(d, 3);
        let truth = Truth::new(
            truth_den.mean.clone(),
            cov_of(&truth_den),
            memgen_linear::experiment::TruthKind::Exact,
        );
        let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        let sampler_cfg = SamplerConfig::default();
        let sampler = sampler_cfg.build(&schedule).unwrap();
        let reg = Regularization::default();
        let grid = SigmaGrid::new(0.01, 100.0, 21).unwrap();
        let mc_grid = SigmaGrid::new(0.01, 100.0, 3).unwrap();
        let rows = rows_of(&truth_den, 64, 5);
        let linear =
            linear_rows(&rows, &[3, 64], &truth, &truth_den, &grid, &schedule, sampler.as_ref(), reg)
                .unwrap();
        assert_eq!(linear[0].kl_fitted, f64::INFINITY);
        assert!(linear[1].kl_fitted.is_finite() && linear[1].rank == d);
        let mc = McConfig { count: 8, batch: 4, ..Default::default() };
        let optimal = optimal_check(&truth_den, &[1, 2, 2], &grid, &mc_grid, &mc).unwrap();
        let fitted_den = fit(&rows, d);
        let run =
            RunRow::new("run".into(), 64, true, &fitted_den, &truth_den, &[1, 2, 2], &mc_grid, &mc).unwrap();
        let record = KlBoundRecord {
            data: "gaussian".into(),
            description: "test".into(),
            d,
            side: 2,
            seed: 0,
            formula: FORMULA.into(),
            sigma_min: grid.sigma_min,
            sigma_max: grid.sigma_max,
            points: grid.points,
            run_points: mc_grid.points,
            mc_samples: mc.count,
            mc_seed: mc.seed,
            schedule: ScheduleConfig::default(),
            sampler: sampler_cfg,
            kl_linear_limit: linear_limit(&truth, &schedule, sampler.as_ref(), reg).unwrap(),
            threads: 1,
            optimal,
            linear,
            runs: vec![run],
        };
        let json = serde_json::to_value(&record).unwrap();
        assert!(json["linear"][0]["kl_fitted"].is_null());
        let back: KlBoundRecord = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.linear[0].kl_fitted, f64::INFINITY);
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
        assert_eq!(back.runs, record.runs);
        assert_eq!(record.csv().lines().count(), 1 + 2 + 1);
        assert!(record.table().contains("| 3 | 2 |"), "{}", record.table());
    }

    #[test]
    fn closed_form_kls_match_the_dense_ones() {
        let d = 6;
        let truth = gaussian(d, 9);
        let fitted = fit(&rows_of(&truth, 40, 10), d);
        let g = GaussianLinearMse::new(&fitted, &truth).unwrap();
        let (tc, fc) = (cov_of(&truth), cov_of(&fitted));
        let add = |m: &Mat<f64>, v: f64| Mat::from_fn(d, d, |i, j| m[(i, j)] + if i == j { v } else { 0.0 });
        for s in [0.0, 0.05, 1.0] {
            let dense =
                memgen_linear::kl::gaussian_kl(&truth.mean, &add(&tc, s * s), &fitted.mean, &add(&fc, s * s))
                    .unwrap();
            let ours = if s == 0.0 { g.kl() } else { g.kl_smoothed(s) };
            assert!((ours - dense).abs() < 1e-9 * dense, "σ = {s}: {ours} vs {dense}");
        }
        // kl_truth_to_eigen on the fitted Gaussian is kl(); a zero variance gives infinity.
        let k = kl_truth_to_eigen(&truth, &fitted.mean, &fitted.basis, &fitted.eigenvalues).unwrap();
        assert!((k - g.kl()).abs() < 1e-9 * k);
        let mut v = fitted.eigenvalues.clone();
        v[0] = 0.0;
        assert_eq!(kl_truth_to_eigen(&truth, &fitted.mean, &fitted.basis, &v).unwrap(), f64::INFINITY);
    }
}

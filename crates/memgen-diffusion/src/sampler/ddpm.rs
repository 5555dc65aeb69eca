//! Ancestral DDPM sampling: Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models",
//! arXiv:2006.11239, Algorithm 2.
//!
//! With 0-based timesteps t = T-1 .. 0 (ᾱ_t = `alphas_cumprod[t]`):
//! x_{t-1} = (x_t - β_t / sqrt(1 - ᾱ_t) ε̂) / sqrt(α_t) + σ_t z, z ~ N(0, I), and no noise at t = 0,
//! where σ_t² = β_t ([`VarianceType::Beta`]) or the posterior variance
//! β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t (eq. 7, [`VarianceType::Posterior`]); Ho et al. §3.2 report
//! similar results for both. The estimate of x0 is Tweedie's formula
//! x̂0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t).

use super::{epsilon_to_x0, lincomb, Sampler, StepOutput};
use crate::DdpmSchedule;
use candle::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// The variance σ_t² of the ancestral step (the names in parentheses are diffusers'). Ho et al. §3.2:
/// β_t is optimal for x0 ~ N(0, I), β̃_t for x0 deterministically one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VarianceType {
    /// σ_t² = β_t ("fixed_large").
    #[default]
    #[serde(alias = "fixed_large")]
    Beta,
    /// σ_t² = β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t ("fixed_small"), the posterior variance of eq. (7).
    #[serde(alias = "fixed_small")]
    Posterior,
}

/// Ancestral sampler over all T steps of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct DdpmSampler {
    pub variance: VarianceType,
    betas: Vec<f64>,
    alphas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    sigmas: Vec<f64>,
    timesteps: Vec<usize>,
}

impl DdpmSampler {
    pub fn new(schedule: &DdpmSchedule, variance: VarianceType) -> Self {
        let big_t = schedule.len();
        let sigmas = (0..big_t)
            .map(|t| match (t, variance) {
                (0, _) => 0.0, // Algorithm 2, line 3: z = 0 at the last step.
                (_, VarianceType::Beta) => schedule.betas[t].sqrt(),
                (_, VarianceType::Posterior) => schedule.posterior_variance(t).sqrt(),
            })
            .collect();
        DdpmSampler {
            variance,
            betas: schedule.betas.clone(),
            alphas: schedule.alphas.clone(),
            alphas_cumprod: schedule.alphas_cumprod.clone(),
            sigmas,
            timesteps: (0..big_t).rev().collect(),
        }
    }

    /// σ_t of the step taken at `t` (0 at t = 0).
    pub fn sigma(&self, t: usize) -> f64 {
        self.sigmas[t]
    }
}

impl Sampler for DdpmSampler {
    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn step(&self, eps: &Tensor, t: usize, x_t: &Tensor, noise: Option<&Tensor>) -> Result<StepOutput> {
        if t >= self.betas.len() {
            candle::bail!("ddpm step: timestep {t} outside 0..{}", self.betas.len());
        }
        let (beta, alpha, abar) = (self.betas[t], self.alphas[t], self.alphas_cumprod[t]);
        // Algorithm 2, line 4 (the mean is eq. 11): x_{t-1} = (x_t - β_t/sqrt(1-ᾱ_t) ε̂)/sqrt(α_t) + σ_t z,
        // written as one linear combination of x_t and ε̂ with f64 coefficients.
        let c_x = 1.0 / alpha.sqrt();
        let c_eps = -beta / ((1.0 - abar).sqrt() * alpha.sqrt());
        let mut prev = lincomb(c_x, x_t, c_eps, eps)?;
        let sigma = self.sigmas[t];
        if sigma > 0.0 {
            let z = noise.ok_or_else(|| candle::Error::Msg(format!("ddpm step at t = {t} needs noise")))?;
            prev = prev.add(&z.affine(sigma, 0.0)?)?;
        }
        let pred_x0 = epsilon_to_x0(eps, x_t, abar)?;
        Ok(StepOutput { prev_sample: prev, pred_x0 })
    }

    fn needs_noise(&self, t: usize) -> bool {
        self.sigmas.get(t).is_some_and(|&s| s > 0.0)
    }
}

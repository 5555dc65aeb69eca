//! Denoising Diffusion Implicit Models: Song, Meng & Ermon 2020, arXiv:2010.02502.
//!
//! Song et al. write α for what memgen calls ᾱ. For consecutive timesteps t > t' of the sub-sequence
//! (eq. 12):
//! x_{t'} = sqrt(ᾱ_{t'}) x̂0 + sqrt(1 - ᾱ_{t'} - σ_t²) ε̂ + σ_t z, x̂0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t),
//! with (eq. 16) σ_t = η sqrt((1 - ᾱ_{t'}) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_{t'}).
//! After the last timestep (t = 0) ᾱ_{t'} = 1, so the last step returns x̂0 and adds no noise
//! (diffusers' `set_alpha_to_one = True`). η = 0 is deterministic given x_T; η = 1 with all T steps
//! is DDPM's ancestral sampler with the posterior variance.
//!
//! Timesteps use diffusers' "leading" spacing: with r = floor(T / steps), t_i = i r for
//! i = 0 .. steps-1, run in descending order (T = 1000, 50 steps: 980, 960, …, 0). When `steps`
//! does not divide T the top timestep lies below T-1 (e.g. 300 steps: r = 3, 897 .. 0); x_T is
//! still drawn as N(0, I), which ᾱ_{897} ≈ 1e-4 makes a fine approximation for the linear schedule.

use super::{epsilon_to_x0, lincomb, Sampler, StepOutput};
use crate::DdpmSchedule;
use candle::{Result, Tensor};

/// Coefficients of the step taken at one timestep: x_{t'} = c_x x_t + c_eps ε̂ + sigma z.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Coefs {
    abar: f64,
    c_x: f64,
    c_eps: f64,
    sigma: f64,
}

/// DDIM over a sub-sequence of a schedule's timesteps.
#[derive(Debug, Clone, PartialEq)]
pub struct DdimSampler {
    pub num_steps: usize,
    pub eta: f64,
    /// floor(T / num_steps): the spacing of the timesteps.
    pub step_ratio: usize,
    timesteps: Vec<usize>,
    /// Indexed by i where t = i * step_ratio.
    coefs: Vec<Coefs>,
}

impl DdimSampler {
    /// `num_steps` in 1..=T model calls; `eta` in [0, 1].
    pub fn new(schedule: &DdpmSchedule, num_steps: usize, eta: f64) -> Result<Self> {
        let big_t = schedule.len();
        if num_steps == 0 || num_steps > big_t {
            candle::bail!("ddim: steps must lie in 1..={big_t}, got {num_steps}");
        }
        if !(0.0..=1.0).contains(&eta) {
            candle::bail!("ddim: eta must lie in [0, 1], got {eta}");
        }
        let step_ratio = big_t / num_steps; // "leading" spacing: an integer stride by definition.
        let coefs = (0..num_steps)
            .map(|i| {
                let abar = schedule.alphas_cumprod[i * step_ratio];
                let abar_prev = if i == 0 { 1.0 } else { schedule.alphas_cumprod[(i - 1) * step_ratio] };
                // eq. 16.
                let sigma = eta * ((1.0 - abar_prev) / (1.0 - abar)).sqrt() * (1.0 - abar / abar_prev).sqrt();
                // eq. 12, with x̂0 substituted: one linear combination of x_t and ε̂ in f64.
                let dir = (1.0 - abar_prev - sigma * sigma).max(0.0).sqrt();
                let c_x = (abar_prev / abar).sqrt();
                let c_eps = dir - (abar_prev * (1.0 - abar) / abar).sqrt();
                Coefs { abar, c_x, c_eps, sigma }
            })
            .collect();
        let timesteps = (0..num_steps).rev().map(|i| i * step_ratio).collect();
        Ok(DdimSampler { num_steps, eta, step_ratio, timesteps, coefs })
    }

    fn coefs(&self, t: usize) -> Option<&Coefs> {
        if t % self.step_ratio == 0 {
            self.coefs.get(t / self.step_ratio)
        } else {
            None
        }
    }

    /// σ_t of eq. 16 for the step taken at `t`, or None if `t` is not one of the timesteps.
    pub fn sigma(&self, t: usize) -> Option<f64> {
        self.coefs(t).map(|c| c.sigma)
    }
}

impl Sampler for DdimSampler {
    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn step(&self, eps: &Tensor, t: usize, x_t: &Tensor, noise: Option<&Tensor>) -> Result<StepOutput> {
        let c = self.coefs(t).ok_or_else(|| {
            candle::Error::Msg(format!("ddim step: {t} is not one of the {} timesteps", self.num_steps))
        })?;
        let mut prev = lincomb(c.c_x, x_t, c.c_eps, eps)?;
        if c.sigma > 0.0 {
            let z = noise.ok_or_else(|| candle::Error::Msg(format!("ddim step at t = {t} needs noise")))?;
            prev = prev.add(&z.affine(c.sigma, 0.0)?)?;
        }
        let pred_x0 = epsilon_to_x0(eps, x_t, c.abar)?;
        Ok(StepOutput { prev_sample: prev, pred_x0 })
    }

    /// True when η > 0, except at the last step (t = 0), whose σ is 0.
    fn needs_noise(&self, t: usize) -> bool {
        self.coefs(t).is_some_and(|c| c.sigma > 0.0)
    }
}

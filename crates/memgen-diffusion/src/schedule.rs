//! Noise schedules of DDPM (Ho, Jain & Abbeel 2020, arXiv:2006.11239) and the cosine schedule of
//! Nichol & Dhariwal 2021 (arXiv:2102.09672). All values in f64.
//!
//! alpha_t = 1 - beta_t, abar_t = prod_{s <= t} alpha_s, and the forward process (eq. 4)
//! x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. Timesteps are 0-based: t = 0 .. T-1.

use candle::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// How the betas are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// beta_t linear from `beta_start` to `beta_end` (Ho et al.).
    #[default]
    Linear,
    /// abar(t) = f(t)/f(0), f(t) = cos²(((t/T) + s)/(1 + s) · π/2), s = 0.008; beta_t = min(1 - abar_{t+1}/abar_t, 0.999).
    Cosine,
}

/// Schedule parameters; the defaults are Ho et al.'s: linear 1e-4 → 0.02 over T = 1000.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    pub kind: BetaSchedule,
    /// Number of diffusion steps T.
    pub steps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig { kind: BetaSchedule::Linear, steps: 1000, beta_start: 1e-4, beta_end: 0.02 }
    }
}

/// The per-step coefficients of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct DdpmSchedule {
    pub config: ScheduleConfig,
    pub betas: Vec<f64>,
    pub alphas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
}

impl DdpmSchedule {
    /// Build the schedule; `steps` must be at least 1.
    pub fn new(config: &ScheduleConfig) -> Result<Self> {
        let t = config.steps;
        if t == 0 {
            candle::bail!("schedule: steps must be at least 1");
        }
        let betas: Vec<f64> = match config.kind {
            BetaSchedule::Linear if t == 1 => vec![config.beta_start],
            BetaSchedule::Linear => (0..t)
                .map(|i| {
                    config.beta_start + (config.beta_end - config.beta_start) * i as f64 / (t - 1) as f64
                })
                .collect(),
            BetaSchedule::Cosine => {
                let f = |i: usize| {
                    let s = 0.008;
                    (((i as f64 / t as f64) + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2).cos().powi(2)
                };
                (0..t).map(|i| (1.0 - f(i + 1) / f(i)).min(0.999)).collect()
            }
        };
        if betas.iter().any(|&b| !(b > 0.0 && b < 1.0)) {
            candle::bail!(
                "schedule: every beta must lie in (0, 1), got {:?}..{:?}",
                betas.first(),
                betas.last()
            );
        }
        let alphas: Vec<f64> = betas.iter().map(|b| 1.0 - b).collect();
        let alphas_cumprod = alphas
            .iter()
            .scan(1.0, |acc, a| {
                *acc *= a;
                Some(*acc)
            })
            .collect();
        Ok(DdpmSchedule { config: *config, betas, alphas, alphas_cumprod })
    }

    /// Number of steps T.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    /// Always false: a schedule has at least one step.
    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// Posterior variance of q(x_{t-1} | x_t, x0) (eq. 7): beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t,
    /// with abar_{-1} = 1.
    pub fn posterior_variance(&self, t: usize) -> f64 {
        let prev = if t == 0 { 1.0 } else { self.alphas_cumprod[t - 1] };
        (1.0 - prev) / (1.0 - self.alphas_cumprod[t]) * self.betas[t]
    }

    /// Per-sample coefficients (sqrt(abar_t), sqrt(1 - abar_t)) as (B, 1, 1, 1) f32 tensors.
    pub fn coefficients(&self, t: &[u32], device: &Device) -> Result<(Tensor, Tensor)> {
        let (mut a, mut b) = (Vec::with_capacity(t.len()), Vec::with_capacity(t.len()));
        for &ti in t {
            let abar = *self
                .alphas_cumprod
                .get(ti as usize)
                .ok_or_else(|| candle::Error::Msg(format!("timestep {ti} out of range 0..{}", self.len())))?;
            a.push(abar.sqrt() as f32);
            b.push((1.0 - abar).sqrt() as f32);
        }
        let n = t.len();
        Ok((Tensor::from_vec(a, (n, 1, 1, 1), device)?, Tensor::from_vec(b, (n, 1, 1, 1), device)?))
    }

    /// The forward process, one timestep per sample: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.
    pub fn add_noise(&self, x0: &Tensor, noise: &Tensor, t: &[u32]) -> Result<Tensor> {
        let (a, b) = self.coefficients(t, x0.device())?;
        x0.broadcast_mul(&a)?.add(&noise.broadcast_mul(&b)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_matches_its_formula_and_diffusers_golden_variances() {
        let s = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        assert_eq!(s.len(), 1000);
        assert!((s.betas[0] - 1e-4).abs() < 1e-15 && (s.betas[999] - 0.02).abs() < 1e-15);
        // abar_t recomputed independently as exp(sum ln(1 - beta)).
        for t in [0, 1, 10, 487, 999] {
            let want: f64 =
                (0..=t).map(|i| (1.0 - (1e-4 + (0.02 - 1e-4) * i as f64 / 999.0)).ln()).sum::<f64>().exp();
            assert!((s.alphas_cumprod[t] - want).abs() < 1e-12, "t = {t}");
        }
        // diffusers' DDPMScheduler tests: _get_variance(487) ≈ 0.00979, _get_variance(999) ≈ 0.02.
        assert!((s.posterior_variance(487) - 0.00979).abs() < 1e-5);
        assert!((s.posterior_variance(999) - 0.02).abs() < 1e-5);
        assert_eq!(s.posterior_variance(0), 0.0);
    }

    #[test]
    fn cosine_schedule_is_not_degenerate() {
        let s =
            DdpmSchedule::new(&ScheduleConfig { kind: BetaSchedule::Cosine, ..Default::default() }).unwrap();
        // abar follows f(t+1)/f(0) until the 0.999 clip at the very end.
        let f = |i: f64| (((i / 1000.0) + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
        for t in [0usize, 100, 500, 900] {
            assert!((s.alphas_cumprod[t] - f(t as f64 + 1.0) / f(0.0)).abs() < 1e-9, "t = {t}");
        }
        assert!(s.betas.windows(2).all(|w| w[1] >= w[0]), "cosine betas increase");
        assert!(s.betas[0] > 0.0 && s.betas[0] < 1e-4 && (s.betas[999] - 0.999).abs() < 1e-12);
    }

    #[test]
    fn forward_process_has_the_closed_form_mean_and_variance() {
        let s = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        let n = 40_000;
        let x0 = Tensor::full(0.7f32, (n, 1, 1, 1), &Device::Cpu).unwrap();
        let eps = crate::NoiseSource::new(3).batch(0, n, 0, &[1, 1, 1], &Device::Cpu).unwrap();
        for t in [0u32, 250, 999] {
            let x_t =
                s.add_noise(&x0, &eps, &vec![t; n]).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mean = x_t.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = x_t.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            let abar = s.alphas_cumprod[t as usize];
            let (want_mean, want_var) = (abar.sqrt() * 0.7, 1.0 - abar);
            // Standard errors: sqrt(var/n) for the mean, var·sqrt(2/n) for the variance; allow 5 of them.
            assert!(
                (mean - want_mean).abs() < 5.0 * (want_var / n as f64).sqrt() + 1e-6,
                "t {t}: mean {mean} vs {want_mean}"
            );
            assert!(
                (var - want_var).abs() < 5.0 * want_var * (2.0 / n as f64).sqrt() + 1e-9,
                "t {t}: var {var} vs {want_var}"
            );
        }
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert!(DdpmSchedule::new(&ScheduleConfig { steps: 0, ..Default::default() }).is_err());
        assert!(DdpmSchedule::new(&ScheduleConfig { beta_end: 1.5, ..Default::default() }).is_err());
        let s = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        assert!(s.coefficients(&[1000], &Device::Cpu).is_err());
    }
}

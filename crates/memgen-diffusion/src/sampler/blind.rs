//! Stochastic coarse-to-fine gradient ascent with a blind denoiser: `univ_inv_sol` of Kadkhodaie &
//! Simoncelli 2021 (arXiv:2007.13640, Algorithm 1), the sampler Kadkhodaie, Guth, Simoncelli &
//! Mallat 2024 (arXiv:2310.02557) use for their memorization experiments (DESIGN.md, "blind mode").
//!
//! The denoiser returns the noise residual f(y) (clean estimate y − f(y)); its size measures the noise
//! left in y, so no noise schedule is needed. For every sample:
//! ```text
//! y_0 = 0.5 + σ0·z_0
//! for t = 1, 2, …:
//!     d = f(y)
//!     h = h0·t / (1 + h0·(t − 1))                       step size, from h0 up towards 1
//!     σ = ‖d‖ / sqrt(N)                                   N = elements per image
//!     γ = σ·sqrt((1 − β·h)² − (1 − h)²)                   injected noise: σ shrinks by (1 − β·h)
//!     y ← y − h·d + γ·z_t
//!     stop when σ ≤ σ_L (converged), σ > 2 (diverged) or t = max_steps
//! output y − f(y)
//! ```
//! As in the authors' loop, the step that measures σ ≤ σ_L still updates y before stopping.
//!
//! Shared noise: z_0 of sample k is `NoiseSource::draw(k, 0, N)` and z_t is `draw(k, t, N)`, so two
//! models sampled with one seed start from bit-identical y_0 and see identical z_t.
//! Samples run as one batch, each stopping on its own; a finished sample leaves the batch (its y is
//! frozen) and the network sees only the active ones, so a sample's result does not depend on its
//! batch neighbours (up to the network's own batch invariance).

use crate::denoiser::Denoiser;
use crate::noise::NoiseSource;
use candle::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// A sample whose σ exceeds this has diverged and stops (the authors' `sigma > 2` test).
pub const SIGMA_GIVE_UP: f64 = 2.0;

/// Settings of [`sample_blind`]. `Default` is the paper's: h0 = 0.01, β = 0.01, σ0 = 1, σ_L = 0.01.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlindSamplerConfig {
    /// Initial step size; the step at iteration t is h0·t / (1 + h0·(t − 1)).
    pub h0: f64,
    /// Fraction of the removed noise that is not re-injected: the effective noise level shrinks by a
    /// factor (1 − β·h) per step. β = 1 is deterministic ascent; 0.1–0.5 take far fewer steps.
    pub beta: f64,
    /// Standard deviation of the initial noise around the mid-grey image 0.5.
    pub sigma0: f64,
    /// Stop once the measured noise level σ = ‖f(y)‖ / sqrt(N) is at most this.
    pub sigma_l: f64,
    /// Stop (unconverged) after this many denoiser evaluations.
    pub max_steps: usize,
}

impl Default for BlindSamplerConfig {
    fn default() -> Self {
        BlindSamplerConfig { h0: 0.01, beta: 0.01, sigma0: 1.0, sigma_l: 0.01, max_steps: 10_000 }
    }
}

impl BlindSamplerConfig {
    /// Checks that the settings make sense.
    pub fn validate(&self) -> Result<()> {
        if !(self.h0 > 0.0 && self.h0 <= 1.0) {
            candle::bail!("blind sampler: h0 must lie in (0, 1], got {}", self.h0);
        }
        if !(self.beta > 0.0 && self.beta <= 1.0) {
            candle::bail!("blind sampler: beta must lie in (0, 1], got {}", self.beta);
        }
        if !(self.sigma0 >= 0.0 && self.sigma0.is_finite()) {
            candle::bail!("blind sampler: sigma0 must be finite and non-negative, got {}", self.sigma0);
        }
        if !(self.sigma_l > 0.0 && self.sigma_l < SIGMA_GIVE_UP) {
            candle::bail!("blind sampler: sigma_l must lie in (0, {SIGMA_GIVE_UP}), got {}", self.sigma_l);
        }
        if self.max_steps == 0 {
            candle::bail!("blind sampler: max_steps must be at least 1");
        }
        Ok(())
    }

    /// The step size h at iteration t = 1, 2, ….
    pub fn step_size(&self, t: usize) -> f64 {
        let t = t as f64;
        self.h0 * t / (1.0 + self.h0 * (t - 1.0))
    }
}

/// The result of [`sample_blind`], one entry per sample.
#[derive(Debug, Clone)]
pub struct BlindSample {
    /// Final clean estimates y − f(y), shape (n, dims…), f32.
    pub images: Tensor,
    /// Denoiser evaluations of each sample's loop (the t at which it stopped; the final y − f(y) is
    /// one more evaluation, not counted).
    pub steps: Vec<usize>,
    /// Whether each sample stopped with σ ≤ σ_L (false: diverged with σ > 2, or hit `max_steps`).
    pub converged: Vec<bool>,
    /// The last σ = ‖f(y)‖ / sqrt(N) each sample measured in its loop.
    pub sigmas: Vec<f64>,
}

/// Draws samples `first .. first + n` of shape `dims` (e.g. [1, 16, 16]) with the blind denoiser
/// `model` (which must return the noise residual of f32 inputs and ignore `t`; it receives a zero u32
/// tensor of the batch length). See the module documentation for the algorithm.
pub fn sample_blind(
    model: &dyn Denoiser,
    cfg: &BlindSamplerConfig,
    noise: &NoiseSource,
    first: u64,
    n: usize,
    dims: &[usize],
    device: &Device,
) -> Result<BlindSample> {
    cfg.validate()?;
    let len: usize = dims.iter().product();
    if dims.is_empty() || len == 0 {
        candle::bail!("blind sampler: empty image shape {dims:?}");
    }
    let shape = |b: usize| {
        let mut s = vec![b];
        s.extend_from_slice(dims);
        s
    };
    // Host copies of every sample's y; the network sees the active ones each step.
    let mut ys: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            noise
                .draw(first + i as u64, 0, len)
                .into_iter()
                .map(|z| (0.5 + cfg.sigma0 * z as f64) as f32)
                .collect()
        })
        .collect();
    let mut steps = vec![0usize; n];
    let mut converged = vec![false; n];
    let mut sigmas = vec![f64::NAN; n];
    let mut active: Vec<usize> = (0..n).collect();
    let mut t = 1usize;
    while !active.is_empty() {
        let b = active.len();
        let mut data = Vec::with_capacity(b * len);
        for &i in &active {
            data.extend_from_slice(&ys[i]);
        }
        let y = Tensor::from_vec(data, shape(b), device)?;
        let d = residual(model, &y, b, len)?;
        let h = cfg.step_size(t);
        let keep = ((1.0 - cfg.beta * h).powi(2) - (1.0 - h).powi(2)).max(0.0).sqrt();
        let mut still = Vec::with_capacity(b);
        for (j, &i) in active.iter().enumerate() {
            let dj = &d[j * len..(j + 1) * len];
            let sigma = (dj.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / len as f64).sqrt();
            let gamma = sigma * keep;
            let z = noise.draw(first + i as u64, t as u64, len);
            for ((yv, &dv), &zv) in ys[i].iter_mut().zip(dj).zip(&z) {
                *yv = (*yv as f64 - h * dv as f64 + gamma * zv as f64) as f32;
            }
            steps[i] = t;
            sigmas[i] = sigma;
            if sigma <= cfg.sigma_l {
                converged[i] = true;
            } else if sigma <= SIGMA_GIVE_UP && t < cfg.max_steps {
                still.push(i);
            }
            // Otherwise: diverged (σ > 2 or NaN) or out of steps; y stays as it is.
        }
        active = still;
        t += 1;
    }
    // Final clean estimates, one batched evaluation.
    let images = if n == 0 {
        Tensor::zeros(shape(0), DType::F32, device)?
    } else {
        let y = Tensor::from_vec(ys.concat(), shape(n), device)?;
        let d = Tensor::from_vec(residual(model, &y, n, len)?, shape(n), device)?;
        (y - d)?
    };
    Ok(BlindSample { images, steps, converged, sigmas })
}

/// f(y) of a batch of `b` images of `len` elements, as host f32 values.
fn residual(model: &dyn Denoiser, y: &Tensor, b: usize, len: usize) -> Result<Vec<f32>> {
    let t = Tensor::zeros(b, DType::U32, y.device())?;
    let d = model.forward(y, &t)?;
    if d.elem_count() != b * len {
        candle::bail!("blind sampler: denoiser returned shape {:?} for input {:?}", d.dims(), y.dims());
    }
    d.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

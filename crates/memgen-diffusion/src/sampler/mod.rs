//! Samplers of a time-conditioned denoiser, and the shared-noise sampling loop.
//!
//! A [`Sampler`] turns the model's noise estimate ε̂(x_t, t) into x_{t_prev}: [`DdpmSampler`] is the
//! ancestral sampler of Ho, Jain & Abbeel 2020 (arXiv:2006.11239, Algorithm 2) and [`DdimSampler`] the
//! implicit sampler of Song, Meng & Ermon 2020 (arXiv:2010.02502). The sampler never sees the model
//! and the model never sees the schedule: [`SampleRequest::sample`] calls the [`Denoiser`], converts its output to ε
//! ([`to_epsilon`]) and hands it to [`Sampler::step`].
//!
//! Shared noise (DESIGN.md): x_T of sample k is `noise.draw(k, T, ..)` with T = `schedule.len()`, and
//! the z of the step taken at timestep t is `noise.draw(k, t, ..)`, so two models sampled from one
//! [`NoiseSource`] see bit-identical noise whatever the batch size.
//!
//! Timesteps are 0-based (`t = 0 .. T-1`, as in [`DdpmSchedule`]); the step at t = 0 produces the
//! clean image. No clamping to [0, 1] is applied anywhere: samples are returned as computed.

pub mod blind;
pub mod ddim;
pub mod ddpm;

pub use ddim::DdimSampler;
pub use ddpm::{DdpmSampler, VarianceType};

use crate::{DdpmSchedule, Denoiser, NoiseSource, Prediction};
use candle::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// What one sampler step returns.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The next (less noisy) sample x_{t_prev}; the clean sample after the last step.
    pub prev_sample: Tensor,
    /// The model's estimate of the clean image at this step, E[x0 | x_t] by Tweedie's formula.
    pub pred_x0: Tensor,
}

/// One reverse-time update rule. `step` gets the model output already converted to ε.
pub trait Sampler {
    /// The timesteps (0-based, descending) at which the model is called, in the order of the loop.
    fn timesteps(&self) -> &[usize];

    /// One update from x_t, where `t` is one of [`Sampler::timesteps`] and `eps` is ε̂(x_t, t).
    /// `noise` is the standard normal z of this step; it must be given when
    /// [`Sampler::needs_noise`] is true for `t`, and is ignored otherwise.
    fn step(&self, eps: &Tensor, t: usize, x_t: &Tensor, noise: Option<&Tensor>) -> Result<StepOutput>;

    /// Whether the step at `t` adds fresh noise (so the loop must draw z_t).
    fn needs_noise(&self, t: usize) -> bool;
}

/// `a x + b y`, with the coefficients applied in the tensors' dtype.
pub(crate) fn lincomb(a: f64, x: &Tensor, b: f64, y: &Tensor) -> Result<Tensor> {
    x.affine(a, 0.0)?.add(&y.affine(b, 0.0)?)
}

/// Tweedie's formula (Ho et al. eq. 15 rearranged): x0 = (x_t - sqrt(1 - abar_t) ε) / sqrt(abar_t).
pub fn epsilon_to_x0(eps: &Tensor, x_t: &Tensor, abar_t: f64) -> Result<Tensor> {
    let s = abar_t.sqrt();
    lincomb(1.0 / s, x_t, -(1.0 - abar_t).sqrt() / s, eps)
}

/// The inverse of Tweedie's formula: ε = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t).
pub fn x0_to_epsilon(x0: &Tensor, x_t: &Tensor, abar_t: f64) -> Result<Tensor> {
    let s = (1.0 - abar_t).sqrt();
    lincomb(1.0 / s, x_t, -abar_t.sqrt() / s, x0)
}

/// The noise ε implied by a model output `out` of kind `pred` at x_t (abar_t = ᾱ at the model's t).
pub fn to_epsilon(pred: Prediction, out: &Tensor, x_t: &Tensor, abar_t: f64) -> Result<Tensor> {
    match pred {
        Prediction::Epsilon => Ok(out.clone()),
        Prediction::X0 => x0_to_epsilon(out, x_t, abar_t),
    }
}

/// The clean-image estimate implied by a model output `out` of kind `pred` at x_t.
pub fn to_x0(pred: Prediction, out: &Tensor, x_t: &Tensor, abar_t: f64) -> Result<Tensor> {
    match pred {
        Prediction::Epsilon => epsilon_to_x0(out, x_t, abar_t),
        Prediction::X0 => Ok(out.clone()),
    }
}

/// Which sampler to run, as stored in run and sample configs (JSON/TOML).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SamplerConfig {
    /// Ancestral DDPM sampling over all T steps (Ho et al. Algorithm 2).
    Ddpm {
        /// σ_t²: β_t (`beta`, "fixed_large", the default) or the posterior variance (`posterior`, "fixed_small").
        #[serde(default)]
        variance: VarianceType,
    },
    /// DDIM over `steps` evenly spaced ("leading") timesteps (Song et al.).
    Ddim {
        /// Number of model calls, 1..=T.
        steps: usize,
        /// Stochasticity η in [0, 1]: 0 is the deterministic DDIM, 1 with steps = T is DDPM with the posterior variance.
        #[serde(default)]
        eta: f64,
    },
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig::Ddpm { variance: VarianceType::default() }
    }
}

impl SamplerConfig {
    /// The sampler for `schedule`; fails on DDIM steps outside 1..=T or η outside [0, 1].
    pub fn build(&self, schedule: &DdpmSchedule) -> Result<Box<dyn Sampler>> {
        Ok(match *self {
            SamplerConfig::Ddpm { variance } => Box::new(DdpmSampler::new(schedule, variance)),
            SamplerConfig::Ddim { steps, eta } => Box::new(DdimSampler::new(schedule, steps, eta)?),
        })
    }
}

/// Everything the shared-noise reverse process needs besides which samples to draw: the denoiser,
/// how to read its output, the schedule, the sampler (built from that schedule), the noise, the
/// shape of one image and the device.
#[derive(Clone, Copy)]
pub struct SampleRequest<'a> {
    pub model: &'a dyn Denoiser,
    pub prediction: Prediction,
    pub schedule: &'a DdpmSchedule,
    pub sampler: &'a dyn Sampler,
    pub noise: &'a NoiseSource,
    /// The shape of one image, e.g. [1, 16, 16].
    pub dims: &'a [usize],
    pub device: &'a Device,
}

impl SampleRequest<'_> {
    /// Samples `first .. first + n`, returning (n, dims...) in f32.
    ///
    /// x_T = `noise.batch(first, n, T, dims)`; then for each t in `sampler.timesteps()`: the model is
    /// called on (x_t, t) with t as an (n,) u32 tensor, its output is converted to ε per `prediction`
    /// (with ᾱ_t of `schedule`), z_t = `noise.batch(first, n, t, dims)` is drawn if the sampler needs
    /// it, and x_t is replaced by the step's `prev_sample`. The result is the last `prev_sample`,
    /// not clamped. Every operation here is per sample, so sample k's result depends on (seed, k)
    /// only, provided the model is itself per-sample (no batch statistics). `sampler` must have been
    /// built from `schedule` (only the range of its timesteps is checked).
    pub fn sample(&self, first: u64, n: usize) -> Result<Tensor> {
        let big_t = self.schedule.len();
        let mut shape = vec![n];
        shape.extend_from_slice(self.dims);
        if n == 0 {
            return Tensor::zeros(shape, DType::F32, self.device);
        }
        let x_big_t = self.noise.batch(first, n, big_t as u64, self.dims, self.device)?;
        self.denoise(first, x_big_t)
    }

    /// The reverse process from a given x_T (n, dims...) for samples `first .. first + n`: the same
    /// loop as [`SampleRequest::sample`], with the per-step noise z_t of sample k still drawn from
    /// `noise` at (k, t). x_T must have the request's image shape; it stays on its own device.
    pub fn denoise(&self, first: u64, x_big_t: Tensor) -> Result<Tensor> {
        let n = x_big_t.dim(0)?;
        let dims = x_big_t.dims()[1..].to_vec();
        if dims != self.dims {
            candle::bail!("sample: x_T has images of shape {dims:?}, the request {:?}", self.dims);
        }
        let device = x_big_t.device().clone();
        let big_t = self.schedule.len();
        if let Some(&t) = self.sampler.timesteps().iter().find(|&&t| t >= big_t) {
            candle::bail!("sample: the sampler's timestep {t} is outside the schedule's 0..{big_t}");
        }
        let mut x = x_big_t;
        for &t in self.sampler.timesteps() {
            let t_in = Tensor::from_vec(vec![t as u32; n], n, &device)?;
            // Detached: with trainable weights the forward would otherwise record a graph, and every
            // step's x would keep all earlier steps' activations alive.
            let out = self.model.forward(&x, &t_in)?.detach();
            if out.dims() != x.dims() {
                candle::bail!("sample: the model returned shape {:?} for input {:?}", out.dims(), x.dims());
            }
            let eps = to_epsilon(self.prediction, &out, &x, self.schedule.alphas_cumprod[t])?;
            let z = if self.sampler.needs_noise(t) {
                Some(self.noise.batch(first, n, t as u64, &dims, &device)?)
            } else {
                None
            };
            x = self.sampler.step(&eps, t, &x, z.as_ref())?.prev_sample.detach();
        }
        Ok(x)
    }

    /// Samples `0 .. count` in batches of at most `batch_size`, concatenated along dim 0.
    ///
    /// Bit-identical to one [`SampleRequest::sample`] of the whole range whatever `batch_size` (the
    /// noise of sample k is keyed by k), for per-sample models. Working memory is bounded by
    /// `batch_size` samples plus the output. `progress`, if given, advances by the number of samples
    /// of each batch.
    pub fn sample_batched(
        &self,
        count: usize,
        batch_size: usize,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<Tensor> {
        if batch_size == 0 {
            candle::bail!("sample_batched: batch_size must be at least 1");
        }
        if count == 0 {
            return self.sample(0, 0);
        }
        let mut parts = Vec::with_capacity(count.div_ceil(batch_size));
        for start in (0..count).step_by(batch_size) {
            let n = batch_size.min(count - start);
            parts.push(self.sample(start as u64, n)?);
            if let Some(pb) = progress {
                pb.inc(n as u64);
            }
        }
        Tensor::cat(&parts, 0)
    }
}

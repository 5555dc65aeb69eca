//! Sampling a trained run with explicit noise: the DDPM/DDIM samplers for time-conditioned models,
//! the stochastic ascent sampler for blind ones. Sample k of noise seed S depends only on (S, k) and
//! the weights, so two runs sampled with one seed are driven by bit-identical noise.

use crate::checkpoint::save_tensors;
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::noise::NoiseSource;
use crate::run::{device, RunConfig};
use crate::sampler::blind::{sample_blind, BlindSamplerConfig};
use crate::sampler::{SampleRequest, SamplerConfig};
use crate::schedule::DdpmSchedule;
use crate::train::load_model;
use crate::{Denoiser, Prediction};
use candle::Tensor;
pub use memgen_metrics::stats::in_range_fraction;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// What to sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateConfig {
    pub noise_seed: u64,
    pub count: usize,
    pub batch_size: usize,
    /// Use the EMA weights (else the raw weights).
    pub ema: bool,
    /// Sampler of time-conditioned models.
    pub sampler: SamplerConfig,
    /// Sampler of blind models.
    pub blind: BlindSamplerConfig,
    /// Given initial noise x_T: a safetensors file with one (count, C, H, W) tensor (time-conditioned
    /// models only); the per-step noise still comes from `noise_seed`.
    pub initial_noise: Option<std::path::PathBuf>,
}

/// Samples and what it took to make them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    /// (count, C, H, W).
    pub dims: [usize; 4],
    /// The images, row-major (count, C, H, W).
    #[serde(skip)]
    pub pixels: Vec<f32>,
    /// Blind sampler: steps taken and convergence (sigma ≤ sigma_L) per sample.
    pub steps: Option<Vec<usize>>,
    pub converged: Option<Vec<bool>>,
    /// Fraction of samples whose pixels all lie in [-0.25, 1.25] (scale drift check).
    pub in_range_fraction: f64,
    pub seconds: f64,
}

/// Sample `cfg.count` images from the run in `run`, on the device the run was trained on.
pub fn generate(
    run: &Path,
    cfg: &GenerateConfig,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<Generated> {
    let run_cfg = RunConfig::load(run)?;
    generate_on(run, cfg, &device(&run_cfg.device)?, progress)
}

/// Sample `cfg.count` images from the run in `run` on `dev`, whatever device the run was trained on.
pub fn generate_on(
    run: &Path,
    cfg: &GenerateConfig,
    dev: &candle::Device,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<Generated> {
    if cfg.count == 0 || cfg.batch_size == 0 {
        return Err(Error::Invalid("count and batch size must be at least 1".into()));
    }
    let run_cfg = RunConfig::load(run)?;
    let manifest = memgen_data::dataset::read_manifest(&run_cfg.data.dir)?;
    let dims = [manifest.channels, manifest.height, manifest.width];
    let model_cfg = &run_cfg.train.model;
    let model = load_model(model_cfg, run, cfg.ema, dev)?;
    let want = [cfg.count, dims[0], dims[1], dims[2]];
    let initial = match (&cfg.initial_noise, model_cfg) {
        (None, _) => None,
        (Some(_), ModelConfig::Blind(_)) => return Err(blind_noise()),
        (Some(path), ModelConfig::Unet(_)) => Some(read_initial_noise(path, want, dev)?),
    };
    let schedule;
    let sampling = match model_cfg {
        ModelConfig::Unet(c) => {
            schedule = DdpmSchedule::new(&run_cfg.train.schedule)?;
            Sampling::Time { schedule: &schedule, prediction: c.prediction }
        }
        ModelConfig::Blind(_) => Sampling::Blind,
    };
    let progress = |n: usize| {
        if let Some(p) = progress {
            p.inc(n as u64);
        }
    };
    generate_with(&model, sampling, dims, cfg, initial, dev, &progress)
}

/// How [`generate_with`] drives a denoiser.
pub enum Sampling<'a> {
    /// The DDPM/DDIM sampler of the config on `schedule`, the denoiser predicting `prediction`.
    Time { schedule: &'a DdpmSchedule, prediction: Prediction },
    /// The blind stochastic sampler of the config (the denoiser returns the noise residual).
    Blind,
}

fn blind_noise() -> Error {
    Error::Invalid("given initial noise applies to DDPM/DDIM sampling, not to blind models".into())
}

/// `cfg.count` samples of `den`, images of shape `dims` on `dev`, in batches of `cfg.batch_size`:
/// sample k is driven by the noise of (`cfg.noise_seed`, k), and with `initial` (DDPM/DDIM only)
/// starts from its row k as x_T. `progress` gets the size of each finished batch. The one sampling
/// loop of trained runs and of the baselines (the oracle and the linear pair).
pub fn generate_with(
    den: &dyn Denoiser,
    sampling: Sampling,
    dims: [usize; 3],
    cfg: &GenerateConfig,
    initial: Option<Tensor>,
    dev: &candle::Device,
    progress: &dyn Fn(usize),
) -> Result<Generated> {
    if cfg.count == 0 || cfg.batch_size == 0 {
        return Err(Error::Invalid("count and batch size must be at least 1".into()));
    }
    let sampler = match &sampling {
        Sampling::Time { schedule, .. } => Some(cfg.sampler.build(schedule)?),
        Sampling::Blind if initial.is_some() => return Err(blind_noise()),
        Sampling::Blind => None,
    };
    let noise = NoiseSource::new(cfg.noise_seed);
    let start = std::time::Instant::now();
    let (mut parts, mut steps, mut converged) = (Vec::new(), Vec::new(), Vec::new());
    for first in (0..cfg.count).step_by(cfg.batch_size) {
        let n = cfg.batch_size.min(cfg.count - first);
        let x = match (&sampling, &sampler, &initial) {
            (Sampling::Time { schedule, prediction }, Some(s), initial) => {
                let request = SampleRequest {
                    model: den,
                    prediction: *prediction,
                    schedule,
                    sampler: s.as_ref(),
                    noise: &noise,
                    dims: &dims,
                    device: dev,
                };
                match initial {
                    None => request.sample(first as u64, n)?,
                    Some(x_big_t) => request.denoise(first as u64, x_big_t.narrow(0, first, n)?)?,
                }
            }
            _ => {
                let s = sample_blind(den, &cfg.blind, &noise, first as u64, n, &dims, dev)?;
                steps.extend(s.steps);
                converged.extend(s.converged);
                s.images
            }
        };
        parts.push(x);
        progress(n);
    }
    let seconds = start.elapsed().as_secs_f64();
    let pixels: Vec<f32> = Tensor::cat(&parts, 0)?.flatten_all()?.to_vec1()?;
    let blind = matches!(sampling, Sampling::Blind);
    Ok(Generated {
        dims: [cfg.count, dims[0], dims[1], dims[2]],
        in_range_fraction: in_range_fraction(&pixels, cfg.count),
        pixels,
        steps: blind.then_some(steps),
        converged: blind.then_some(converged),
        seconds,
    })
}

/// Write the samples as `samples.safetensors` (tensor "samples", (count, C, H, W) f32).
pub fn save_samples(g: &Generated, path: &Path) -> Result<()> {
    let t = Tensor::from_slice(&g.pixels, g.dims.to_vec(), &candle::Device::Cpu)?;
    save_tensors(path, &HashMap::from([("samples".to_string(), t)]))
}

/// Read samples written by [`save_samples`] (or any safetensors file whose one tensor, or tensor
/// "samples", is (count, C, H, W)): the dims and the pixels as f32.
pub fn load_samples(path: &Path) -> Result<([usize; 4], Vec<f32>)> {
    let mut tensors = crate::checkpoint::load_tensors(path, &candle::Device::Cpu)?;
    let t = match tensors.remove("samples") {
        Some(t) => t,
        None if tensors.len() == 1 => tensors.into_values().next().expect("one tensor"),
        None => {
            return Err(Error::bad_file(path, "expected a tensor named \"samples\" or exactly one tensor"))
        }
    };
    let dims: [usize; 4] = t.dims().try_into().map_err(|_| {
        Error::bad_file(path, format!("samples have shape {:?}, expected (count, C, H, W)", t.dims()))
    })?;
    Ok((dims, t.to_dtype(candle::DType::F32)?.flatten_all()?.to_vec1()?))
}

/// The single tensor of a safetensors file, which must have shape `want`.
fn read_initial_noise(path: &Path, want: [usize; 4], dev: &candle::Device) -> Result<Tensor> {
    let tensors = crate::checkpoint::load_tensors(path, dev)?;
    let mut it = tensors.into_values();
    match (it.next(), it.next()) {
        (Some(t), None) if t.dims() == want => Ok(t.to_dtype(candle::DType::F32)?),
        (Some(t), None) => Err(Error::bad_file(
            path,
            format!("noise has shape {:?}, expected {want:?} (count, C, H, W)", t.dims()),
        )),
        _ => Err(Error::bad_file(path, "expected exactly one tensor (the initial noise x_T)")),
    }
}

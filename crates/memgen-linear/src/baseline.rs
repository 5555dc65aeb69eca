//! Baselines sampled like the networks: the empirical optimal denoiser ([`crate::oracle`]) and the
//! Gaussian (linear) denoiser of a training subset, driven through the project's own DDPM/DDIM
//! samplers with the shared noise of [`memgen_diffusion::NoiseSource`], so that sample k of a
//! baseline and sample k of a network come from the same x_T and the same per-step draws.
//!
//! The linear pair (`memgen compare --linear`): the Gaussian denoisers of S_A(N) and S_B(N), each
//! ε̂(x, t) = W_t (x − √ᾱ_t μ0) with W_t = U diag(w_t(s_i)) Uᵀ from the subset's own mean μ0 and
//! covariance Σ0 = U diag(s) Uᵀ ([`crate::sampling::LinearDenoiser`], the closed form of
//! `memgen linear` and `memgen kl-bound`). Their samples follow N(μ0, Σ0 + c I) exactly
//! ([`crate::sampling::sampling_distribution`]): what two models that learned only their sets' mean
//! and covariance produce from the same noise.

use crate::sampling::LinearDenoiser;
use crate::theory::Regularization;
use crate::{Error, Moments, Result, Spectrum};
use candle::{DType, Device, Tensor};
use memgen_diffusion::generate::{load_samples, GenerateConfig, Generated};
use memgen_diffusion::run::{load_training_data, DataRef, SplitRecord};
use memgen_diffusion::sampler::{denoise, sample};
use memgen_diffusion::{DdpmSchedule, Denoiser, NoiseSource, Prediction, ScheduleConfig};

/// The training images `data` selects, read exactly as `memgen train` reads them (CPU, f32,
/// (N, C, H, W)), after checking `cfg`'s count and batch size.
pub(crate) fn training_images(data: &DataRef, cfg: &GenerateConfig) -> Result<(Tensor, SplitRecord)> {
    if cfg.count == 0 || cfg.batch_size == 0 {
        return Err(Error::Invalid("count and batch size must be at least 1".into()));
    }
    let (images, record) =
        load_training_data(data, &Device::Cpu).map_err(|e| Error::Invalid(format!("{e}")))?;
    if images.dims().len() != 4 {
        return Err(Error::Invalid(format!(
            "training images of shape {:?}, expected (N, C, H, W)",
            images.dims()
        )));
    }
    Ok((images, record))
}

/// `cfg.count` samples of the ε-predicting denoiser `den` of images of shape `dims` (C, H, W), with
/// the DDPM/DDIM sampler of `cfg` on `schedule` and the noise of `cfg.noise_seed` (or x_T from
/// `cfg.initial_noise`), in batches of `cfg.batch_size`; `progress` gets each batch's size.
pub(crate) fn generate_with(
    den: &dyn Denoiser,
    schedule: &DdpmSchedule,
    dims: &[usize],
    cfg: &GenerateConfig,
    progress: &dyn Fn(usize),
) -> Result<Generated> {
    let dev = Device::Cpu;
    let sampler = cfg.sampler.build(schedule)?;
    let initial = match &cfg.initial_noise {
        None => None,
        Some(path) => {
            let (shape, pixels) = load_samples(path).map_err(|e| Error::Invalid(format!("{e}")))?;
            let want = [cfg.count, dims[0], dims[1], dims[2]];
            if shape != want {
                return Err(Error::Invalid(format!(
                    "{}: noise has shape {shape:?}, expected {want:?} (count, C, H, W)",
                    path.display()
                )));
            }
            Some(Tensor::from_vec(pixels, shape.to_vec(), &dev)?)
        }
    };
    let noise = NoiseSource::new(cfg.noise_seed);
    let start = std::time::Instant::now();
    let mut parts = Vec::with_capacity(cfg.count.div_ceil(cfg.batch_size));
    for first in (0..cfg.count).step_by(cfg.batch_size) {
        let n = cfg.batch_size.min(cfg.count - first);
        let (eps, s) = (Prediction::Epsilon, sampler.as_ref());
        let x = match &initial {
            None => sample(den, eps, schedule, s, &noise, first as u64, n, dims, &dev)?,
            Some(x_big_t) => {
                denoise(den, eps, schedule, s, &noise, first as u64, x_big_t.narrow(0, first, n)?)?
            }
        };
        parts.push(x);
        progress(n);
    }
    let seconds = start.elapsed().as_secs_f64();
    let pixels: Vec<f32> = Tensor::cat(&parts, 0)?.flatten_all()?.to_vec1()?;
    let in_range_fraction = memgen_diffusion::generate::in_range_fraction(&pixels, cfg.count);
    Ok(Generated {
        dims: [cfg.count, dims[0], dims[1], dims[2]],
        pixels,
        steps: None,
        converged: None,
        in_range_fraction,
        seconds,
    })
}

/// The Gaussian denoiser of `images` (N, C, H, W): its mean μ0, covariance Σ0 (1/N, as
/// [`Moments::from_rows`]) and the gains of `schedule` under `reg`.
pub fn gaussian_denoiser(
    images: &Tensor,
    schedule: &DdpmSchedule,
    reg: Regularization,
) -> Result<LinearDenoiser> {
    let d = images.elem_count() / images.dim(0)?.max(1);
    let rows = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let moments = Moments::from_rows(&rows, d)?;
    let spectrum = Spectrum::of(&moments.cov)?;
    LinearDenoiser::new(&spectrum, &moments.mean, schedule, reg, &Device::Cpu)
}

/// Sample the Gaussian (linear) denoiser of the training subset `data` names (selected exactly as
/// `memgen train` selects it) with the sampler and shared noise of `cfg`, on the CPU:
/// `memgen sample --linear`, and each side of `memgen compare --linear`. `cfg.ema` and `cfg.blind`
/// do not apply. Returns the samples and the record of the training indices.
pub fn generate_linear(
    data: &DataRef,
    schedule: &ScheduleConfig,
    reg: Regularization,
    cfg: &GenerateConfig,
    progress: &dyn Fn(usize),
) -> Result<(Generated, SplitRecord)> {
    let (images, record) = training_images(data, cfg)?;
    let schedule = DdpmSchedule::new(schedule)?;
    let den = gaussian_denoiser(&images, &schedule, reg)?;
    let dims = images.dims()[1..].to_vec();
    drop(images);
    Ok((generate_with(&den, &schedule, &dims, cfg, progress)?, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::sampling_distribution;
    use memgen_diffusion::sampler::{SamplerConfig, VarianceType};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// N images of 1x2x2 pixels from N(μ, Σ) with a correlated Σ.
    fn gaussian_images(n: usize, seed: u64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mu = [0.5, 0.3, 0.6, 0.4];
        let rows: Vec<f32> = (0..n)
            .flat_map(|_| {
                let z: [f64; 4] = std::array::from_fn(|_| StandardNormal.sample(&mut rng));
                let x = [0.3 * z[0], 0.2 * z[0] + 0.1 * z[1], 0.05 * z[2], 0.1 * z[1] + 0.02 * z[3]];
                (0..4).map(move |i| (mu[i] + x[i]) as f32).collect::<Vec<_>>()
            })
            .collect();
        Tensor::from_vec(rows, (n, 1, 2, 2), &Device::Cpu).unwrap()
    }

    /// The linear pair's sampler output has the closed-form mean and covariance of
    /// [`sampling_distribution`] (the composed affine steps) within Monte Carlo error, for DDIM and
    /// DDPM, centred on the training set's mean μ0.
    #[test]
    fn linear_samples_follow_the_closed_form_gaussian() {
        let images = gaussian_images(60, 1);
        let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        let reg = Regularization::default();
        let den = gaussian_denoiser(&images, &schedule, reg).unwrap();
        let rows = images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let moments = Moments::from_rows(&rows, 4).unwrap();
        let spectrum = Spectrum::of(&moments.cov).unwrap();
        let k = 4000;
        for sampler in [
            SamplerConfig::Ddim { steps: 20, eta: 0.0 },
            SamplerConfig::Ddpm { variance: VarianceType::Beta },
        ] {
            let cfg = GenerateConfig {
                noise_seed: 5,
                count: k,
                batch_size: k,
                ema: true,
                sampler: sampler.clone(),
                blind: Default::default(),
                initial_noise: None,
            };
            let g = generate_with(&den, &schedule, &[1, 2, 2], &cfg, &|_| {}).unwrap();
            let built = sampler.build(&schedule).unwrap();
            let dist =
                sampling_distribution(&spectrum, &moments.mean, &schedule, built.as_ref(), reg).unwrap();
            let cov = dist.covariance(&spectrum);
            let x: Vec<f64> = g.pixels.iter().map(|&v| v as f64).collect();
            let mean: Vec<f64> =
                (0..4).map(|i| x.iter().skip(i).step_by(4).sum::<f64>() / k as f64).collect();
            for i in 0..4 {
                let se = (cov[(i, i)] / k as f64).sqrt();
                assert!(
                    (mean[i] - dist.mean[i]).abs() < 4.0 * se,
                    "{sampler:?} mean {i}: {} vs {}",
                    mean[i],
                    dist.mean[i]
                );
                assert!(
                    (dist.mean[i] - moments.mean[i]).abs() < 1e-2,
                    "{sampler:?}: the sampled mean {} is not μ0 = {}",
                    dist.mean[i],
                    moments.mean[i]
                );
                for j in 0..4 {
                    let c: f64 =
                        (0..k).map(|r| (x[4 * r + i] - mean[i]) * (x[4 * r + j] - mean[j])).sum::<f64>()
                            / (k - 1) as f64;
                    let se = ((cov[(i, i)] * cov[(j, j)] + cov[(i, j)].powi(2)) / k as f64).sqrt();
                    assert!(
                        (c - cov[(i, j)]).abs() < 4.0 * se,
                        "{sampler:?} cov ({i},{j}): {c} vs {}",
                        cov[(i, j)]
                    );
                }
            }
            assert_eq!(g.in_range_fraction, memgen_diffusion::generate::in_range_fraction(&g.pixels, k));
        }
    }

    /// One training image: Σ0 = 0, so every sample is that image (the last step maps every direction
    /// onto μ0), whatever the noise.
    #[test]
    fn the_gaussian_of_one_image_generates_it() {
        let images = gaussian_images(1, 2);
        let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        let den = gaussian_denoiser(&images, &schedule, Regularization::default()).unwrap();
        let cfg = GenerateConfig {
            noise_seed: 1,
            count: 3,
            batch_size: 2,
            ema: true,
            sampler: SamplerConfig::Ddim { steps: 10, eta: 0.0 },
            blind: Default::default(),
            initial_noise: None,
        };
        let g = generate_with(&den, &schedule, &[1, 2, 2], &cfg, &|_| {}).unwrap();
        let img = images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for s in g.pixels.chunks(4) {
            for (a, b) in s.iter().zip(&img) {
                assert!((a - b).abs() < 1e-4, "{s:?} vs {img:?}");
            }
        }
    }
}

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
//!
//! For the blind stochastic sampler ([`memgen_diffusion::sampler::blind`]) the Gaussian denoiser
//! must, like a blind network, read the noise level off its input: [`BlindGaussianDenoiser`]
//! estimates σ² by maximum likelihood under y ~ N(μ0, Σ0 + σ² I) and returns the residual
//! y − E[x | y] of that σ.

use crate::sampling::LinearDenoiser;
use crate::theory::Regularization;
use crate::{Error, Moments, Result, Spectrum};
use candle::{DType, Device, Tensor};
use memgen_diffusion::generate::{load_samples, GenerateConfig, Generated, Sampling};
use memgen_diffusion::run::{load_training_data, DataRef, SplitRecord};
use memgen_diffusion::{DdpmSchedule, Denoiser, Prediction, ScheduleConfig};

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

/// `cfg.count` samples of the baseline `den` of images of shape `dims` (C, H, W) on the CPU, driven
/// by `sampling` as [`memgen_diffusion::generate::generate_with`] drives a trained network (the same
/// loop, noise and batching), with x_T from `cfg.initial_noise` when given; `progress` gets each
/// batch's size.
pub(crate) fn generate_with(
    den: &dyn Denoiser,
    sampling: Sampling,
    dims: &[usize],
    cfg: &GenerateConfig,
    progress: &dyn Fn(usize),
) -> Result<Generated> {
    let dims = [dims[0], dims[1], dims[2]];
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
            Some(Tensor::from_vec(pixels, shape.to_vec(), &Device::Cpu)?)
        }
    };
    memgen_diffusion::generate::generate_with(den, sampling, dims, cfg, initial, &Device::Cpu, progress)
        .map_err(|e| Error::Invalid(format!("{e}")))
}

/// The DDPM/DDIM sampling of an ε-predicting baseline on `schedule`.
pub(crate) fn time(schedule: &DdpmSchedule) -> Sampling<'_> {
    Sampling::Time { schedule, prediction: Prediction::Epsilon }
}

/// The maximum-likelihood noise variance σ̂² of y under y ~ N(μ0, Σ0 + σ² I), from its eigenbasis
/// coordinates rᵢ = (Uᵀ(y − μ0))ᵢ and the eigenvalues sᵢ of Σ0: the root of the score
/// g(v) = Σᵢ rᵢ²/(sᵢ + v)² − Σᵢ 1/(sᵢ + v) (d/dv of the log-likelihood, up to ½), found by bisection
/// on a bracket [lo, hi] with g(lo) > 0 > g(hi); `lo` = 10⁻¹² when g(lo) ≤ 0 already (no noise seen).
pub fn ml_noise_variance(r: &[f64], s: &[f64]) -> f64 {
    let g = |v: f64| r.iter().zip(s).map(|(&r, &s)| r * r / ((s + v) * (s + v)) - 1.0 / (s + v)).sum::<f64>();
    let lo0 = 1e-12;
    if g(lo0) <= 0.0 {
        return lo0;
    }
    let d = r.len().max(1) as f64;
    let mut hi = (r.iter().map(|r| r * r).sum::<f64>() / d).max(1e-6);
    for _ in 0..200 {
        if g(hi) < 0.0 {
            break;
        }
        hi *= 2.0;
    }
    let mut lo = lo0;
    // Bisection in log v: the bracket spans many decades at first.
    for _ in 0..100 {
        let mid = (lo * hi).sqrt();
        if g(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi / lo < 1.0 + 1e-12 {
            break;
        }
    }
    (lo * hi).sqrt()
}

/// The blind Gaussian denoiser of N(μ0, Σ0 = U diag(s) Uᵀ), as a blind [`Denoiser`] (the timestep is
/// ignored): f(y) = y − E[x | y] = U diag(σ̂²/(sᵢ + σ̂²)) Uᵀ (y − μ0), with σ̂² =
/// [`ml_noise_variance`] of each input image. Rotations run as f32 matrix products; the per-image
/// σ̂² and gains in f64.
#[derive(Debug, Clone)]
pub struct BlindGaussianDenoiser {
    u: Tensor,
    ut: Tensor,
    /// (1, d): μ0ᵀ.
    mean: Tensor,
    values: Vec<f64>,
}

impl BlindGaussianDenoiser {
    /// From the moments of a training set.
    pub fn new(spectrum: &Spectrum, mean: &[f64]) -> Result<Self> {
        let d = spectrum.values.len();
        if mean.len() != d || d == 0 {
            return Err(Error::Invalid(format!("a mean of {} values for a spectrum of {d}", mean.len())));
        }
        let u: Vec<f32> = (0..d * d).map(|k| spectrum.vectors[(k / d, k % d)] as f32).collect();
        let ut: Vec<f32> = (0..d * d).map(|k| spectrum.vectors[(k % d, k / d)] as f32).collect();
        let dev = Device::Cpu;
        Ok(BlindGaussianDenoiser {
            u: Tensor::from_vec(u, (d, d), &dev)?,
            ut: Tensor::from_vec(ut, (d, d), &dev)?,
            mean: Tensor::from_vec(mean.iter().map(|&m| m as f32).collect(), (1, d), &dev)?,
            values: spectrum.values.clone(),
        })
    }

    /// The blind Gaussian denoiser of `images` (N, C, H, W): their mean and covariance (1/N).
    pub fn of_images(images: &Tensor) -> Result<Self> {
        let d = images.elem_count() / images.dim(0)?.max(1);
        let rows = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let moments = Moments::from_rows(&rows, d)?;
        BlindGaussianDenoiser::new(&Spectrum::of(&moments.cov)?, &moments.mean)
    }
}

impl Denoiser for BlindGaussianDenoiser {
    fn forward(&self, y: &Tensor, _t: &Tensor) -> candle::Result<Tensor> {
        let (b, d) = (y.dim(0)?, self.values.len());
        if y.elem_count() != b * d {
            candle::bail!("blind Gaussian denoiser: input {:?} does not hold images of {d} values", y.dims());
        }
        let x = y.to_dtype(DType::F32)?.reshape((b, d))?;
        let r: Vec<f32> = x.broadcast_sub(&self.mean)?.matmul(&self.u)?.flatten_all()?.to_vec1()?;
        let mut scaled = vec![0f32; b * d];
        for (out, row) in scaled.chunks_mut(d).zip(r.chunks(d)) {
            let r64: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            let v = ml_noise_variance(&r64, &self.values);
            for ((o, &ri), &s) in out.iter_mut().zip(&r64).zip(&self.values) {
                *o = (ri * v / (s + v)) as f32;
            }
        }
        Tensor::from_vec(scaled, (b, d), y.device())?.matmul(&self.ut)?.reshape(y.shape())
    }
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
/// `memgen train` selects it) with the sampler and shared noise of `cfg`, on the CPU: each side of
/// `memgen compare --linear`. `cfg.ema` and `cfg.blind`
/// do not apply. Returns the samples and the record of the training indices.
///
/// With `blind`, the blind stochastic sampler of `cfg.blind` drives the [`BlindGaussianDenoiser`]
/// of the subset instead (`schedule` and `reg` do not apply).
pub fn generate_linear(
    data: &DataRef,
    schedule: &ScheduleConfig,
    reg: Regularization,
    blind: bool,
    cfg: &GenerateConfig,
    progress: &dyn Fn(usize),
) -> Result<(Generated, SplitRecord)> {
    let (images, record) = training_images(data, cfg)?;
    let dims = images.dims()[1..].to_vec();
    if blind {
        let den = BlindGaussianDenoiser::of_images(&images)?;
        drop(images);
        return Ok((generate_with(&den, Sampling::Blind, &dims, cfg, progress)?, record));
    }
    let schedule = DdpmSchedule::new(schedule)?;
    let den = gaussian_denoiser(&images, &schedule, reg)?;
    drop(images);
    Ok((generate_with(&den, time(&schedule), &dims, cfg, progress)?, record))
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
                sampler,
                blind: Default::default(),
                initial_noise: None,
            };
            let g = generate_with(&den, time(&schedule), &[1, 2, 2], &cfg, &|_| {}).unwrap();
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

    /// σ̂² maximizes the Gaussian log-likelihood −½ Σᵢ [log(sᵢ + v) + rᵢ²/(sᵢ + v)] (brute force on a
    /// fine grid), and recovers the noise of y = x + σz in high dimension.
    #[test]
    fn ml_noise_variance_maximizes_the_likelihood_and_recovers_sigma() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let loglik = |r: &[f64], s: &[f64], v: f64| -> f64 {
            -0.5 * r.iter().zip(s).map(|(&r, &s)| (s + v).ln() + r * r / (s + v)).sum::<f64>()
        };
        let s = [0.0, 0.001, 0.01, 0.1, 0.5, 1.0, 2.0];
        for sigma in [0.03, 0.2, 0.9] {
            let r: Vec<f64> = s
                .iter()
                .map(|&si| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    (si + sigma * sigma as f64).sqrt() * z
                })
                .collect();
            let v = ml_noise_variance(&r, &s);
            let grid = (0..20_000).map(|k| 10f64.powf(-8.0 + 9.0 * k as f64 / 20_000.0));
            let best = grid.fold((f64::NEG_INFINITY, 0.0), |b, g| {
                let l = loglik(&r, &s, g);
                if l > b.0 {
                    (l, g)
                } else {
                    b
                }
            });
            assert!(loglik(&r, &s, v) >= best.0 - 1e-9, "σ = {sigma}: σ̂² = {v}, grid best {best:?}");
        }
        let d = 4000;
        let s: Vec<f64> = (0..d).map(|i| 1.0 / (1.0 + i as f64)).collect();
        for sigma in [0.05, 0.3, 1.0] {
            let r: Vec<f64> = s
                .iter()
                .map(|&si| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    (si + sigma * sigma).sqrt() * z
                })
                .collect();
            let v = ml_noise_variance(&r, &s);
            assert!((v.sqrt() / sigma - 1.0).abs() < 0.05, "σ = {sigma}: σ̂ = {}", v.sqrt());
        }
    }

    /// x with A x = b, by Gaussian elimination with partial pivoting.
    fn gauss_solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
        let n = b.len();
        for col in 0..n {
            let p = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).unwrap();
            a.swap(col, p);
            b.swap(col, p);
            for row in col + 1..n {
                let f = a[row][col] / a[col][col];
                for k in col..n {
                    a[row][k] -= f * a[col][k];
                }
                b[row] -= f * b[col];
            }
        }
        let mut x = vec![0.0; n];
        for i in (0..n).rev() {
            x[i] = (b[i] - (i + 1..n).map(|k| a[i][k] * x[k]).sum::<f64>()) / a[i][i];
        }
        x
    }

    /// The blind residual equals (y − μ0) − Σ0 (Σ0 + σ̂² I)⁻¹ (y − μ0), computed in pixel space by a
    /// linear solve (f64), with σ̂² from the eigenbasis.
    #[test]
    fn the_blind_residual_is_y_minus_the_posterior_mean() {
        let images = gaussian_images(30, 3);
        let den = BlindGaussianDenoiser::of_images(&images).unwrap();
        let rows = images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let m = Moments::from_rows(&rows, 4).unwrap();
        let spectrum = Spectrum::of(&m.cov).unwrap();
        let y = [0.9f32, 0.1, 0.7, 0.2, 0.4, 0.35, 0.61, 0.42];
        let out = den
            .forward(
                &Tensor::from_vec(y.to_vec(), (2, 1, 2, 2), &Device::Cpu).unwrap(),
                &Tensor::zeros(2, DType::U32, &Device::Cpu).unwrap(),
            )
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for k in 0..2 {
            let c: Vec<f64> = (0..4).map(|i| y[4 * k + i] as f64 - m.mean[i]).collect();
            let v = ml_noise_variance(&spectrum.to_eigen(&c), &spectrum.values);
            let a: Vec<Vec<f64>> = (0..4)
                .map(|i| (0..4).map(|j| m.cov[(i, j)] + if i == j { v } else { 0.0 }).collect())
                .collect();
            let sol = gauss_solve(a, c.clone());
            for i in 0..4 {
                let post: f64 = (0..4).map(|j| m.cov[(i, j)] * sol[j]).sum();
                let want = c[i] - post;
                assert!(
                    (out[4 * k + i] as f64 - want).abs() < 1e-5,
                    "image {k} pixel {i}: {} vs {want}",
                    out[4 * k + i]
                );
            }
        }
    }

    /// The blind sampler with the blind Gaussian denoiser: one training image is reproduced exactly
    /// (Σ0 = 0: the residual is y − μ0), and samples of a Gaussian set converge, centred on μ0 with the
    /// set's total variance.
    #[test]
    fn blind_linear_samples_are_the_image_or_data_like() {
        let cfg = |count| GenerateConfig {
            noise_seed: 3,
            count,
            batch_size: 64,
            ema: true,
            sampler: SamplerConfig::default(),
            blind: memgen_diffusion::sampler::blind::BlindSamplerConfig { beta: 0.5, ..Default::default() },
            initial_noise: None,
        };
        let one = gaussian_images(1, 4);
        let g = generate_with(
            &BlindGaussianDenoiser::of_images(&one).unwrap(),
            Sampling::Blind,
            &[1, 2, 2],
            &cfg(4),
            &|_| {},
        )
        .unwrap();
        let img = one.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for s in g.pixels.chunks(4) {
            assert!(s.iter().zip(&img).all(|(a, b)| (a - b).abs() < 1e-4), "{s:?} vs {img:?}");
        }
        // 8x8 images with a decaying spectrum: σ is read off 64 values, as a blind network reads it
        // off the image.
        let d = 64;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let rows: Vec<f32> = (0..2000 * d)
            .map(|p| {
                let z: f64 = StandardNormal.sample(&mut rng);
                (0.5 + (0.02 / (1.0 + (p % d) as f64)).sqrt() * z) as f32
            })
            .collect();
        let images = Tensor::from_vec(rows.clone(), (2000, 1, 8, 8), &Device::Cpu).unwrap();
        let m = Moments::from_rows(&rows, d).unwrap();
        let k = 500;
        let den = BlindGaussianDenoiser::of_images(&images).unwrap();
        let g = generate_with(&den, Sampling::Blind, &[1, 8, 8], &cfg(k), &|_| {}).unwrap();
        let conv = g.converged.as_ref().unwrap().iter().filter(|&&c| c).count();
        assert!(conv as f64 >= 0.95 * k as f64, "{conv} of {k} converged");
        let x: Vec<f64> = g.pixels.iter().map(|&v| v as f64).collect();
        let (mut total_var, mut want_var) = (0.0, 0.0);
        for i in 0..d {
            let mean = x.iter().skip(i).step_by(d).sum::<f64>() / k as f64;
            let var = x.iter().skip(i).step_by(d).map(|v| (v - mean).powi(2)).sum::<f64>() / k as f64;
            assert!(
                (mean - m.mean[i]).abs() < 4.0 * (m.cov[(i, i)] / k as f64).sqrt() + 0.01,
                "pixel {i}: {mean} vs {}",
                m.mean[i]
            );
            total_var += var;
            want_var += m.cov[(i, i)];
        }
        eprintln!(
            "blind linear samples: total variance {total_var:.4}, tr Σ0 {want_var:.4}, {conv}/{k} converged"
        );
        assert!((total_var / want_var - 1.0).abs() < 0.3, "total variance {total_var} vs tr Σ0 {want_var}");
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
        let g = generate_with(&den, time(&schedule), &[1, 2, 2], &cfg, &|_| {}).unwrap();
        let img = images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for s in g.pixels.chunks(4) {
            for (a, b) in s.iter().zip(&img) {
                assert!((a - b).abs() < 1e-4, "{s:?} vs {img:?}");
            }
        }
    }
}

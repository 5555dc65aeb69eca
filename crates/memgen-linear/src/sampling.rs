//! Sampling with the linear denoiser, and the exact distribution that sampling produces.
//!
//! [`LinearDenoiser`] is ε̂(x, t) = W_t (x − √ᾱ_t μ0), W_t = U diag(w_t(s_i)) Uᵀ ([`crate::theory`]),
//! as a [`Denoiser`]: the project's own samplers and [`memgen_diffusion::NoiseSource`] drive it
//! exactly as they drive the networks (f32 candle tensors, same noise for the same seed).
//!
//! [`sampling_distribution`] is what that loop produces, in closed form. Every sampler step is
//! affine, x_prev = A_t x_t + B_t ε̂ + C_t z ([`probe_step`] reads A, B, C off the real
//! [`Sampler::step`]), ε̂ is affine in x_t, and x_T and every z are independent standard normals, so
//! the result is Gaussian; in the eigenbasis of Σ0 every map is diagonal, so per direction i its
//! mean and variance follow a scalar recursion (DESIGN.md, "Linear diffusion").

use crate::theory::{weight, Regularization};
use crate::{Error, Result, Spectrum};
use candle::{DType, Device, Tensor};
use faer::Mat;
use memgen_diffusion::sampler::Sampler;
use memgen_diffusion::{DdpmSchedule, Denoiser};

/// The linear denoiser ε̂(x, t) = W_t (x − √ᾱ_t μ0) over d = C·H·W values, in f32 on one device.
///
/// Built once: U and Uᵀ as (d, d) tensors, the gains w_t(s_i) of every timestep as a (T, d) table,
/// √ᾱ_t as a (T,) table and Uᵀμ0. A call on a batch of B computes y = x U − √ᾱ_t (Uᵀμ0)ᵀ (one
/// B×d by d×d product), scales column i by w_t(s_i) and returns y Uᵀ: O(B d²), nothing per t.
#[derive(Debug, Clone)]
pub struct LinearDenoiser {
    u: Tensor,
    ut: Tensor,
    /// (1, d): (Uᵀ μ0)ᵀ.
    mu_eigen: Tensor,
    /// (T, d): w_t(s_i).
    gains: Tensor,
    /// (T,): √ᾱ_t.
    sqrt_abar: Tensor,
    dim: usize,
    steps: usize,
}

impl LinearDenoiser {
    /// The denoiser of Σ0 = U diag(s) Uᵀ (`spectrum`) and μ0 (`mean`) for `schedule`, regularised by
    /// `reg`, with its tensors on `device`.
    pub fn new(
        spectrum: &Spectrum,
        mean: &[f64],
        schedule: &DdpmSchedule,
        reg: Regularization,
        device: &Device,
    ) -> Result<LinearDenoiser> {
        let d = check_dims(spectrum, mean)?;
        let steps = schedule.len();
        let u: Vec<f32> = (0..d)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| spectrum.vectors[(i, j)] as f32)
            .collect();
        let ut: Vec<f32> = (0..d)
            .flat_map(|i| (0..d).map(move |j| (j, i)))
            .map(|(i, j)| spectrum.vectors[(i, j)] as f32)
            .collect();
        let mu_eigen: Vec<f32> = spectrum.to_eigen(mean).into_iter().map(|v| v as f32).collect();
        let gains: Vec<f32> = schedule
            .alphas_cumprod
            .iter()
            .flat_map(|&abar| spectrum.values.iter().map(move |&s| weight(s, abar, reg) as f32))
            .collect();
        let sqrt_abar: Vec<f32> = schedule.alphas_cumprod.iter().map(|a| a.sqrt() as f32).collect();
        Ok(LinearDenoiser {
            u: Tensor::from_vec(u, (d, d), device)?,
            ut: Tensor::from_vec(ut, (d, d), device)?,
            mu_eigen: Tensor::from_vec(mu_eigen, (1, d), device)?,
            gains: Tensor::from_vec(gains, (steps, d), device)?,
            sqrt_abar: Tensor::from_vec(sqrt_abar, steps, device)?,
            dim: d,
            steps,
        })
    }

    /// d = C·H·W.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

impl Denoiser for LinearDenoiser {
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> candle::Result<Tensor> {
        let b = x_t.dim(0)?;
        let d = x_t.elem_count() / b.max(1);
        if d != self.dim {
            candle::bail!(
                "linear denoiser: input {:?} has {d} values per sample, expected {}",
                x_t.dims(),
                self.dim
            );
        }
        if t.dims() != [b] {
            candle::bail!("linear denoiser: t has shape {:?}, expected ({b},)", t.dims());
        }
        let t = t.to_dtype(DType::U32)?;
        if let Some(&bad) = t.to_vec1::<u32>()?.iter().find(|&&ti| ti as usize >= self.steps) {
            candle::bail!("linear denoiser: timestep {bad} outside the schedule's 0..{}", self.steps);
        }
        let x = x_t.to_dtype(DType::F32)?.reshape((b, d))?;
        let w = self.gains.index_select(&t, 0)?; // (B, d)
        let sa = self.sqrt_abar.index_select(&t, 0)?.reshape((b, 1))?;
        let y = x.matmul(&self.u)?.broadcast_sub(&sa.broadcast_mul(&self.mu_eigen)?)?;
        y.mul(&w)?.matmul(&self.ut)?.reshape(x_t.shape())
    }
}

fn check_dims(spectrum: &Spectrum, mean: &[f64]) -> Result<usize> {
    let d = spectrum.values.len();
    if d == 0 || mean.len() != d || spectrum.vectors.nrows() != d || spectrum.vectors.ncols() != d {
        return Err(Error::Invalid(format!(
            "spectrum of {d} values with {}x{} vectors does not match a mean of {} values",
            spectrum.vectors.nrows(),
            spectrum.vectors.ncols(),
            mean.len()
        )));
    }
    Ok(d)
}

/// One sampler step as an affine map: x_prev = `a` x_t + `b` ε̂ + `c` z (`c` = 0 for steps that add
/// no noise).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineStep {
    /// The timestep of the step (one of [`Sampler::timesteps`]).
    pub t: usize,
    pub a: f64,
    pub b: f64,
    pub c: f64,
}

/// Read the coefficients of the step at `t` off `sampler` itself: `step` is called on one-element
/// f64 tensors with (x, ε, z) = (1, 0, 0) → A, (0, 1, 0) → B, (0, 0, 1) → C (z only where the
/// sampler draws noise at `t`). Fails unless the step is affine and homogeneous there:
/// step(0, 0, 0) = 0 and a random combination maps to the combination of the coefficients
/// (relative tolerance 1e-9).
pub fn probe_step(sampler: &dyn Sampler, t: usize) -> Result<AffineStep> {
    let noisy = sampler.needs_noise(t);
    let run = |x: f64, e: f64, z: f64| -> Result<f64> {
        let dev = Device::Cpu;
        let ten = |v: f64| Tensor::from_vec(vec![v], (1, 1, 1, 1), &dev);
        let (xt, et, zt) = (ten(x)?, ten(e)?, ten(z)?);
        let out = sampler.step(&et, t, &xt, if noisy { Some(&zt) } else { None })?;
        Ok(out.prev_sample.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?[0])
    };
    let zero = run(0.0, 0.0, 0.0)?;
    let a = run(1.0, 0.0, 0.0)? - zero;
    let b = run(0.0, 1.0, 0.0)? - zero;
    let c = if noisy { run(0.0, 0.0, 1.0)? - zero } else { 0.0 };
    let (x, e, z) = (0.8125, -1.3671875, 0.4296875);
    let got = run(x, e, z)?;
    let want = a * x + b * e + c * z;
    let scale = (a * x).abs() + (b * e).abs() + (c * z).abs();
    if zero.abs() > 1e-12 * (a.abs() + b.abs() + c.abs()).max(1.0)
        || (got - want).abs() > 1e-9 * scale.max(1e-300)
    {
        return Err(Error::Invalid(format!(
            "the sampler's step at t = {t} is not linear in (x_t, ε, z): step(0, 0, 0) = {zero:e}, \
             step({x}, {e}, {z}) = {got} but its coefficients ({a}, {b}, {c}) give {want}"
        )));
    }
    Ok(AffineStep { t, a, b, c })
}

/// [`probe_step`] for every timestep of `sampler`, in the order of its loop.
pub fn probe_sampler(sampler: &dyn Sampler) -> Result<Vec<AffineStep>> {
    sampler.timesteps().iter().map(|&t| probe_step(sampler, t)).collect()
}

/// The distribution ρ_N that a sampler produces with the [`LinearDenoiser`] of (Σ0, μ0), exactly:
///
/// ρ_N = N(`mean`, U diag(`variances`) Uᵀ), U the eigenvectors of Σ0 (the [`Spectrum`] it was
/// computed from; [`SamplingDistribution::covariance`]).
///
/// Merger & Goldt compare it with N(μ0, Σ0 + c I): `c[i]` = vᵢ − sᵢ is the excess variance along
/// eigendirection i (one scalar c when all are equal; it can be negative), and `mean_eigen` − Uᵀμ0
/// the bias of the mean. Neither is exactly zero: x_T is drawn from N(0, I) rather than from the
/// forward marginal N(√ᾱ_T μ0, ᾱ_T Σ0 + (1 − ᾱ_T) I), and the steps are discrete. For the default
/// schedule (T = 1000) and s from 1e-3 to 1: DDPM with σ² = β_t gives |cᵢ| ≤ 6e-4 (→ −β_0/α_0 ≈ −1e-4
/// for large sᵢ), DDPM with σ² = β̃_t cᵢ from −2e-4 to −9e-3, DDIM-50 (η = 0) from −6e-4 to −7e-2;
/// along s = 0 all give cᵢ = 0 (the last step maps that direction onto μ0 exactly).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingDistribution {
    /// Mean of the samples in pixel space, U m.
    pub mean: Vec<f64>,
    /// m = Uᵀ · mean: the mean in the eigenbasis.
    pub mean_eigen: Vec<f64>,
    /// vᵢ: the variance along eigenvector i (the covariance is diagonal in the eigenbasis).
    pub variances: Vec<f64>,
    /// sᵢ: the eigenvalues of Σ0 (ascending, as in the spectrum).
    pub eigenvalues: Vec<f64>,
    /// cᵢ = vᵢ − sᵢ.
    pub c: Vec<f64>,
    /// Mean of `c` over all d directions.
    pub c_mean: f64,
    /// The affine maps of the sampler's steps, in loop order.
    pub steps: Vec<AffineStep>,
}

/// The effective scalar c of ρ_N ≈ N(μ0, Σ0 + c I): mean, smallest and largest cᵢ.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EffectiveC {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl SamplingDistribution {
    /// Mean, min and max of cᵢ over all directions.
    pub fn effective_c(&self) -> EffectiveC {
        summarize(&self.c)
    }

    /// The same over the directions whose eigenvalue passes `keep(sᵢ)` (e.g. the range of Σ0,
    /// s > 0, or its null space); `None` if none does.
    pub fn effective_c_where(&self, keep: impl Fn(f64) -> bool) -> Option<EffectiveC> {
        let c: Vec<f64> =
            self.eigenvalues.iter().zip(&self.c).filter(|(&s, _)| keep(s)).map(|(_, &c)| c).collect();
        (!c.is_empty()).then(|| summarize(&c))
    }

    /// The covariance U diag(v) Uᵀ (d x d) for the eigenvectors `spectrum.vectors`.
    pub fn covariance(&self, spectrum: &Spectrum) -> Mat<f64> {
        let u = &spectrum.vectors;
        let d = self.variances.len();
        let scaled = Mat::<f64>::from_fn(d, d, |i, j| u[(i, j)] * self.variances[j]);
        scaled * u.transpose()
    }
}

fn summarize(c: &[f64]) -> EffectiveC {
    EffectiveC {
        mean: c.iter().sum::<f64>() / c.len() as f64,
        min: c.iter().copied().fold(f64::INFINITY, f64::min),
        max: c.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// The exact distribution of `sampler` (built from `schedule`) driven by the [`LinearDenoiser`] of
/// (`spectrum`, `mean`, `reg`) from x_T ~ N(0, I).
///
/// Per eigendirection i, with μ̃ = Uᵀμ0 and w = w_t(sᵢ): each step maps
/// x ↦ (A + B w) x − B w √ᾱ_t μ̃ᵢ + C z, so the mean m ↦ (A + B w) m − B w √ᾱ_t μ̃ᵢ and the
/// variance v ↦ (A + B w)² v + C², starting from (0, 1). The coefficients come from
/// [`probe_sampler`]: the result follows the sampler's code, not a re-derivation of it.
pub fn sampling_distribution(
    spectrum: &Spectrum,
    mean: &[f64],
    schedule: &DdpmSchedule,
    sampler: &dyn Sampler,
    reg: Regularization,
) -> Result<SamplingDistribution> {
    let d = check_dims(spectrum, mean)?;
    let steps = probe_sampler(sampler)?;
    if let Some(s) = steps.iter().find(|s| s.t >= schedule.len()) {
        return Err(Error::Invalid(format!(
            "the sampler's timestep {} is outside the schedule's 0..{}",
            s.t,
            schedule.len()
        )));
    }
    let mu = spectrum.to_eigen(mean);
    let (mut m, mut v) = (vec![0.0; d], vec![1.0; d]);
    for st in &steps {
        let abar = schedule.alphas_cumprod[st.t];
        for i in 0..d {
            let w = weight(spectrum.values[i], abar, reg);
            let g = st.a + st.b * w;
            m[i] = g * m[i] - st.b * w * abar.sqrt() * mu[i];
            v[i] = g * g * v[i] + st.c * st.c;
        }
    }
    let u = &spectrum.vectors;
    let pixel_mean = (0..d).map(|r| (0..d).map(|i| u[(r, i)] * m[i]).sum()).collect();
    let c: Vec<f64> = v.iter().zip(&spectrum.values).map(|(v, s)| v - s).collect();
    let c_mean = c.iter().sum::<f64>() / d as f64;
    Ok(SamplingDistribution {
        mean: pixel_mean,
        mean_eigen: m,
        variances: v,
        eigenvalues: spectrum.values.clone(),
        c,
        c_mean,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Moments;
    use memgen_diffusion::sampler::{SampleRequest, SamplerConfig, StepOutput, VarianceType};
    use memgen_diffusion::{NoiseSource, Prediction, ScheduleConfig};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn short_schedule() -> DdpmSchedule {
        DdpmSchedule::new(&ScheduleConfig {
            steps: 50,
            beta_start: 1e-4,
            beta_end: 0.2,
            ..Default::default()
        })
        .unwrap()
    }

    /// N points in d dimensions with an off-centre mean and unequal scales.
    fn training_set(n: usize, d: usize, seed: u64) -> Moments {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let data: Vec<f32> = (0..n * d)
            .map(|k| 0.3 + 0.2 * (k % d) as f32 + (1.0 + (k % d) as f32) * 0.4 * (rng.random::<f32>() - 0.5))
            .collect();
        Moments::from_rows(&data, d).unwrap()
    }

    fn sci(v: &[f64]) -> String {
        let parts: Vec<String> = v.iter().map(|x| format!("{x:.3e}")).collect();
        format!("[{}]", parts.join(", "))
    }

    /// Sample mean and covariance of the rows of `x` (K x d), in f64.
    fn empirical(x: &[f32], d: usize) -> (Vec<f64>, Mat<f64>) {
        let k = x.len() / d;
        let mut mean = vec![0.0; d];
        for row in x.chunks(d) {
            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64 / k as f64);
        }
        let mut cov = Mat::<f64>::zeros(d, d);
        for row in x.chunks(d) {
            for i in 0..d {
                for j in 0..d {
                    cov[(i, j)] += (row[i] as f64 - mean[i]) * (row[j] as f64 - mean[j]) / k as f64;
                }
            }
        }
        (mean, cov)
    }

    /// (a) The composed maps give the mean and covariance of samples the real loop generates.
    #[test]
    fn composed_maps_match_sampled_moments() {
        let schedule = short_schedule();
        let count = 40_000;
        // Full-rank (N = 7 > d = 4) and rank-2 (N = 3) training sets: the latter has s = 0 directions.
        for (n_train, seed) in [(7usize, 1u64), (3, 2)] {
            let m = training_set(n_train, 4, seed);
            let sp = Spectrum::of(&m.cov).unwrap();
            let reg = Regularization::default();
            let den = LinearDenoiser::new(&sp, &m.mean, &schedule, reg, &Device::Cpu).unwrap();
            for cfg in [
                SamplerConfig::Ddpm { variance: VarianceType::Beta },
                SamplerConfig::Ddpm { variance: VarianceType::Posterior },
                SamplerConfig::Ddim { steps: 10, eta: 0.0 },
                SamplerConfig::Ddim { steps: 10, eta: 0.5 },
            ] {
                let sampler = cfg.build(&schedule).unwrap();
                let dist = sampling_distribution(&sp, &m.mean, &schedule, sampler.as_ref(), reg).unwrap();
                let noise = NoiseSource::new(11);
                let x = SampleRequest {
                    model: &den,
                    prediction: Prediction::Epsilon,
                    schedule: &schedule,
                    sampler: sampler.as_ref(),
                    noise: &noise,
                    dims: &[1, 2, 2],
                    device: &Device::Cpu,
                }
                .sample_batched(count, 8192, None)
                .unwrap();
                let x: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
                let (emean, ecov) = empirical(&x, 4);
                let cov = dist.covariance(&sp);
                let mut worst: f64 = 0.0;
                for i in 0..4 {
                    let se = (cov[(i, i)] / count as f64).sqrt();
                    let z = (emean[i] - dist.mean[i]).abs() / (se + 1e-6);
                    worst = worst.max(z);
                    assert!(
                        z < 5.0,
                        "{cfg:?} N={n_train}: mean {i}: sampled {} vs composed {}",
                        emean[i],
                        dist.mean[i]
                    );
                    for j in 0..4 {
                        let se = ((cov[(i, i)] * cov[(j, j)] + cov[(i, j)].powi(2)) / count as f64).sqrt();
                        let z = (ecov[(i, j)] - cov[(i, j)]).abs() / (se + 1e-6);
                        worst = worst.max(z);
                        assert!(
                            z < 5.0,
                            "{cfg:?} N={n_train}: cov ({i},{j}): sampled {} vs composed {} (se {se:e})",
                            ecov[(i, j)],
                            cov[(i, j)]
                        );
                    }
                }
                // The variances in the eigenbasis, and the mean against μ0.
                let ev: Vec<f64> = (0..4)
                    .map(|k| {
                        (0..4)
                            .flat_map(|i| (0..4).map(move |j| (i, j)))
                            .map(|(i, j)| sp.vectors[(i, k)] * ecov[(i, j)] * sp.vectors[(j, k)])
                            .sum()
                    })
                    .collect();
                let mean_err = (0..4).map(|i| (dist.mean[i] - m.mean[i]).powi(2)).sum::<f64>().sqrt();
                println!(
                    "{cfg:?} N={n_train}: s {:.4?}\n  composed v {:.5?}\n  sampled  v {:.5?}\n  c {}, |mean - mu0| {mean_err:.2e}, worst |z| {worst:.2}",
                    sp.values,
                    dist.variances,
                    ev,
                    sci(&dist.c)
                );
            }
        }
    }

    /// (b) With the default T = 1000 schedule, DDPM's effective c is tiny (DESIGN.md: ~1e-4).
    #[test]
    fn ddpm_effective_c_is_tiny_for_the_default_schedule() {
        let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        let values = vec![0.0, 1e-3, 1e-2, 0.1, 1.0];
        let d = values.len();
        let sp = Spectrum { values, vectors: Mat::identity(d, d) };
        let mean = vec![0.5; d];
        let reg = Regularization::default();
        for (cfg, name) in [
            (SamplerConfig::Ddpm { variance: VarianceType::Beta }, "ddpm beta"),
            (SamplerConfig::Ddpm { variance: VarianceType::Posterior }, "ddpm posterior"),
            (SamplerConfig::Ddim { steps: 50, eta: 0.0 }, "ddim-50"),
            (SamplerConfig::Ddim { steps: 1000, eta: 0.0 }, "ddim-1000"),
        ] {
            let sampler = cfg.build(&schedule).unwrap();
            let dist = sampling_distribution(&sp, &mean, &schedule, sampler.as_ref(), reg).unwrap();
            let all = dist.effective_c();
            let range = dist.effective_c_where(|s| s > 0.0).unwrap();
            let bias = dist.mean.iter().zip(&mean).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            println!(
                "{name}: c per direction (s = {:?}) = {}; mean {:.3e}, over s > 0 [{:.3e}, {:.3e}], max |mean - mu0| {bias:.2e}",
                sp.values,
                sci(&dist.c),
                all.mean,
                range.min,
                range.max
            );
            // The null space of Σ0 (s = 0) is collapsed exactly by every sampler's last step.
            assert!(dist.c[0].abs() < 1e-20, "{name}: c along s = 0 is {}", dist.c[0]);
            let biggest = range.max.abs().max(range.min.abs());
            match cfg {
                // Ancestral sampling with σ² = β_t (the default): c of order 1e-4, of either sign.
                SamplerConfig::Ddpm { variance: VarianceType::Beta } => {
                    assert!(biggest < 1e-3 && biggest > 1e-5, "{name}: {:?}", dist.c);
                    assert!((all.mean.abs()) < 5e-4, "{name}: mean c {}", all.mean);
                    assert!(bias < 1e-4, "{name}: mean bias {bias}");
                }
                // σ² = β̃_t undershoots: c < 0, up to ~1% of s.
                SamplerConfig::Ddpm { variance: VarianceType::Posterior } => {
                    assert!(range.max < 0.0 && range.min > -2e-2, "{name}: {:?}", dist.c);
                }
                _ => assert!(biggest < 0.1, "{name}: {:?}", dist.c),
            }
        }
    }

    /// (c) forward = the dense f64 W_t (x − √ᾱ_t μ0), per sample with its own t.
    #[test]
    fn forward_equals_dense_computation() {
        let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        let d = 6;
        let m = training_set(4, d, 5); // rank 3: includes s = 0 directions
        let sp = Spectrum::of(&m.cov).unwrap();
        let reg = Regularization { weight_decay: 0.01, train_time: Some(50.0) };
        let den = LinearDenoiser::new(&sp, &m.mean, &schedule, reg, &Device::Cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let ts = [0u32, 1, 37, 500, 999];
        let x: Vec<f32> = (0..ts.len() * d).map(|_| rng.random::<f32>() * 2.0 - 0.5).collect();
        let xt = Tensor::from_vec(x.clone(), (ts.len(), 1, 2, 3), &Device::Cpu).unwrap();
        let tt = Tensor::from_vec(ts.to_vec(), ts.len(), &Device::Cpu).unwrap();
        let out = den.forward(&xt, &tt).unwrap();
        assert_eq!(out.dims(), &[ts.len(), 1, 2, 3]);
        let out: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        let mut worst: f64 = 0.0;
        for (b, &t) in ts.iter().enumerate() {
            let abar = schedule.alphas_cumprod[t as usize];
            let w: Vec<f64> = sp.values.iter().map(|&s| weight(s, abar, reg)).collect();
            let wt = Mat::<f64>::from_fn(d, d, |i, j| {
                (0..d).map(|k| sp.vectors[(i, k)] * w[k] * sp.vectors[(j, k)]).sum()
            });
            let xc: Vec<f64> = (0..d).map(|j| x[b * d + j] as f64 - abar.sqrt() * m.mean[j]).collect();
            let scale = w.iter().copied().fold(0.0, f64::max);
            for i in 0..d {
                let want: f64 = (0..d).map(|j| wt[(i, j)] * xc[j]).sum();
                let err = (out[b * d + i] as f64 - want).abs() / scale;
                worst = worst.max(err);
                assert!(err < 1e-5, "t = {t}, {i}: {} vs {want}", out[b * d + i]);
            }
        }
        println!("max |forward - dense| / max w = {worst:.2e}");
        // Shape and timestep checks.
        assert!(den.forward(&xt.reshape((ts.len(), 2, 3)).unwrap(), &tt.narrow(0, 0, 2).unwrap()).is_err());
        let late = Tensor::from_vec(vec![1000u32; ts.len()], ts.len(), &Device::Cpu).unwrap();
        assert!(den.forward(&xt, &late).is_err());
    }

    /// A step that is not affine is refused.
    #[test]
    fn probing_rejects_nonlinear_steps() {
        struct Squaring(Vec<usize>);
        impl Sampler for Squaring {
            fn timesteps(&self) -> &[usize] {
                &self.0
            }
            fn step(
                &self,
                eps: &Tensor,
                _t: usize,
                x_t: &Tensor,
                _n: Option<&Tensor>,
            ) -> candle::Result<StepOutput> {
                Ok(StepOutput { prev_sample: (x_t.sqr()? + eps)?, pred_x0: x_t.clone() })
            }
            fn needs_noise(&self, _t: usize) -> bool {
                false
            }
        }
        struct Shifting(Vec<usize>);
        impl Sampler for Shifting {
            fn timesteps(&self) -> &[usize] {
                &self.0
            }
            fn step(
                &self,
                eps: &Tensor,
                _t: usize,
                x_t: &Tensor,
                _n: Option<&Tensor>,
            ) -> candle::Result<StepOutput> {
                Ok(StepOutput { prev_sample: ((x_t + eps)? + 0.1)?, pred_x0: x_t.clone() })
            }
            fn needs_noise(&self, _t: usize) -> bool {
                false
            }
        }
        let e = probe_sampler(&Squaring(vec![1, 0])).unwrap_err();
        assert!(e.to_string().contains("not linear"), "{e}");
        assert!(probe_sampler(&Shifting(vec![0])).is_err());
        // The real samplers probe to their own coefficients: DDPM's A = 1/√α_t, C = √β_t.
        let schedule = short_schedule();
        let ddpm = SamplerConfig::Ddpm { variance: VarianceType::Beta }.build(&schedule).unwrap();
        let st = probe_step(ddpm.as_ref(), 20).unwrap();
        assert!(
            (st.a - 1.0 / schedule.alphas[20].sqrt()).abs() < 1e-14
                && (st.c - schedule.betas[20].sqrt()).abs() < 1e-14
        );
        assert_eq!(probe_step(ddpm.as_ref(), 0).unwrap().c, 0.0);
    }
}

//! The empirical optimal denoiser: the exact score of the training set's empirical distribution,
//! the ideal memorizer (DESIGN.md, "Empirical optimal denoiser").
//!
//! For the training images x_1 .. x_N, the noisy distribution at time t is the mixture
//! (1/N) Σ_i N(√ᾱ_t x_i, (1 − ᾱ_t) I), whose posterior mean is
//!
//! E[x0 | x_t] = Σ_i p_i x_i,  p_i ∝ exp(−‖x_t − √ᾱ_t x_i‖² / (2(1 − ᾱ_t))),
//!
//! and the optimal ε-prediction is ε̂ = (x_t − √ᾱ_t E[x0 | x_t]) / √(1 − ᾱ_t). Sampling with it
//! returns training images.

use crate::{Error, Result};
use candle::{DType, Tensor};
use memgen_diffusion::generate::{GenerateConfig, Generated};
use memgen_diffusion::run::{DataRef, SplitRecord};
use memgen_diffusion::{DdpmSchedule, Denoiser, ScheduleConfig};
use rayon::prelude::*;

/// Cache budget of one block of training images (f32), in bytes.
const BLOCK_BYTES: usize = 256 * 1024;

/// Most samples that share one pass over the training set.
const GROUP: usize = 16;

/// The empirical optimal denoiser of a training set, as a [`Denoiser`] (ε-prediction).
///
/// Computation: the batch is cut into groups of at most 16 samples, spread over rayon's threads; each
/// group streams the training set once, in blocks of K rows. Per sample, the logits
/// ℓ_i = (2√ᾱ x_t·x_i − ᾱ‖x_i‖²) / (2(1 − ᾱ)) (the expansion of −‖x_t − √ᾱ x_i‖²/(2(1 − ᾱ)) without
/// its constant ‖x_t‖² term, which the softmax ignores) go through a running max-subtracted
/// log-sum-exp: Σ exp(ℓ_i − m) and Σ exp(ℓ_i − m) x_i are rescaled whenever a block raises the max m.
/// Dot products and sums are accumulated in f64 from the f32 images, in a fixed order per sample, so
/// sample k's result does not depend on the batch it is in or on the thread count.
///
/// Memory: the training set (4·N·d bytes, f32) and its norms (8·N bytes); working memory, independent
/// of N: 16·d bytes per sample of a batch (x_t and the running Σ p_i x_i in f64, besides the f32
/// input and output) and 8·K bytes of logits per group, K = max(8, 256 KiB / (4d)) rows per block.
#[derive(Debug, Clone)]
pub struct EmpiricalDenoiser {
    /// (N, d) row-major.
    images: Vec<f32>,
    /// ‖x_i‖² in f64.
    norms: Vec<f64>,
    dim: usize,
    alphas_cumprod: Vec<f64>,
    block: usize,
}

impl EmpiricalDenoiser {
    /// From the rows of `images` (N x d, row-major) and the schedule the sampler uses.
    pub fn from_rows(images: Vec<f32>, dim: usize, schedule: &DdpmSchedule) -> Result<Self> {
        if dim == 0 || images.is_empty() || images.len() % dim != 0 {
            return Err(Error::Invalid(format!(
                "{} values do not form training images of {dim}",
                images.len()
            )));
        }
        if let Some(v) = images.iter().find(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("training images hold a non-finite value {v}")));
        }
        let norms =
            images.chunks_exact(dim).map(|r| r.iter().map(|&v| (v as f64) * (v as f64)).sum()).collect();
        let block = (BLOCK_BYTES / (4 * dim)).max(8);
        Ok(EmpiricalDenoiser { images, norms, dim, alphas_cumprod: schedule.alphas_cumprod.clone(), block })
    }

    /// From a (N, C, H, W) (or any (N, ...)) tensor of training images.
    pub fn new(images: &Tensor, schedule: &DdpmSchedule) -> Result<Self> {
        let n = images.dim(0)?;
        let dim = images.elem_count() / n.max(1);
        let rows = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Self::from_rows(rows, dim, schedule)
    }

    /// Rows of training images per streamed block (for tests of the blocking; at least 1).
    pub fn with_block(mut self, rows: usize) -> Self {
        self.block = rows.max(1);
        self
    }

    /// Number of training images N.
    pub fn len(&self) -> usize {
        self.norms.len()
    }

    /// Never true: a denoiser holds at least one image.
    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }

    /// Values per image d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// E[x0 | x_t] for one sample `x` (d values) at timestep `t`, in f64.
    pub fn posterior_mean(&self, x: &[f32], t: usize) -> Vec<f64> {
        self.posterior_means(x, &[t])
    }

    /// E[x0 | x_t] for a group of samples `xs` (len(ts) x d, row-major), sample k at timestep
    /// `ts[k]`, concatenated. The training set is streamed once per group (block by block, each
    /// block visited by every sample of the group while it is in cache); each sample's arithmetic
    /// is the same whatever group it is in. Panics if `xs` does not hold `ts.len()` samples or a
    /// timestep is outside the schedule ([`Denoiser::forward`] checks both and returns an error).
    pub fn posterior_means(&self, xs: &[f32], ts: &[usize]) -> Vec<f64> {
        let abars: Vec<f64> = ts.iter().map(|&t| self.alphas_cumprod[t]).collect();
        self.posterior_means_at(xs, &abars)
    }

    /// The same at given ᾱ values (sample k at `abars[k]`, in (0, 1)), whatever the schedule:
    /// x_t = √ᾱ x0 + √(1 − ᾱ) z. For y = x0 + σ z, x_t = y/√(1 + σ²) at ᾱ = 1/(1 + σ²).
    pub fn posterior_means_at(&self, xs: &[f32], abars: &[f64]) -> Vec<f64> {
        let d = self.dim;
        assert_eq!(
            xs.len(),
            abars.len() * d,
            "posterior_means: {} values for {} samples of {d}",
            xs.len(),
            abars.len()
        );
        let mut states: Vec<Stream> = xs
            .chunks_exact(d)
            .zip(abars)
            .map(|(x, &abar)| Stream {
                x: x.iter().map(|&v| v as f64).collect(),
                acc: vec![0.0; d],
                max: f64::NEG_INFINITY,
                sum: 0.0,
                sa: abar.sqrt(),
                abar,
                inv: 1.0 / (2.0 * (1.0 - abar)),
            })
            .collect();
        let mut logits = vec![0.0f64; self.block];
        for (b, rows) in self.images.chunks(self.block * d).enumerate() {
            let norms = &self.norms[b * self.block..];
            for st in &mut states {
                let mut block_max = f64::NEG_INFINITY;
                for ((l, row), &nrm) in logits.iter_mut().zip(rows.chunks_exact(d)).zip(norms) {
                    *l = (2.0 * st.sa * dot(&st.x, row) - st.abar * nrm) * st.inv;
                    block_max = block_max.max(*l);
                }
                if block_max > st.max {
                    let scale = (st.max - block_max).exp(); // 0 on the first block
                    st.sum *= scale;
                    st.acc.iter_mut().for_each(|a| *a *= scale);
                    st.max = block_max;
                }
                for (&l, row) in logits.iter().zip(rows.chunks_exact(d)) {
                    let p = (l - st.max).exp();
                    if p == 0.0 {
                        continue; // underflow: the row has no weight
                    }
                    st.sum += p;
                    st.acc.iter_mut().zip(row).for_each(|(a, &v)| *a += p * v as f64);
                }
            }
        }
        states
            .into_iter()
            .flat_map(|st| {
                let sum = st.sum;
                st.acc.into_iter().map(move |a| a / sum)
            })
            .collect()
    }
}

/// The running state of one sample while the training set streams past.
struct Stream {
    x: Vec<f64>,
    /// Σ exp(ℓ_i − max) x_i so far.
    acc: Vec<f64>,
    max: f64,
    /// Σ exp(ℓ_i − max) so far.
    sum: f64,
    sa: f64,
    abar: f64,
    /// 1 / (2(1 − ᾱ)).
    inv: f64,
}

/// x·r with the f32 row widened to f64, in 8 interleaved partial sums (a fixed order).
fn dot(x: &[f64], r: &[f32]) -> f64 {
    let mut s = [0.0f64; 8];
    let (xc, rc) = (x.chunks_exact(8), r.chunks_exact(8));
    let (xt, rt) = (xc.remainder(), rc.remainder());
    for (a, b) in xc.zip(rc) {
        for j in 0..8 {
            s[j] += a[j] * b[j] as f64;
        }
    }
    let tail: f64 = xt.iter().zip(rt).map(|(a, &b)| a * b as f64).sum();
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail
}

impl Denoiser for EmpiricalDenoiser {
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> candle::Result<Tensor> {
        let b = x_t.dim(0)?;
        let d = self.dim;
        if x_t.elem_count() != b * d {
            candle::bail!("empirical denoiser: input {:?} does not hold images of {d} values", x_t.dims());
        }
        let ts = t.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        if ts.len() != b {
            candle::bail!("empirical denoiser: {} timesteps for a batch of {b}", ts.len());
        }
        if let Some(&bad) = ts.iter().find(|&&t| t as usize >= self.alphas_cumprod.len()) {
            candle::bail!(
                "empirical denoiser: timestep {bad} outside the schedule's 0..{}",
                self.alphas_cumprod.len()
            );
        }
        let x: Vec<f32> = x_t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let ts: Vec<usize> = ts.into_iter().map(|t| t as usize).collect();
        // Groups of samples per task: enough tasks for every thread, at most GROUP samples each.
        let group = b.div_ceil(rayon::current_num_threads()).clamp(1, GROUP);
        let mut eps = vec![0.0f32; b * d];
        eps.par_chunks_mut(group * d).zip(x.par_chunks(group * d)).zip(ts.par_chunks(group)).for_each(
            |((e, x), ts)| {
                let x0 = self.posterior_means(x, ts);
                for (k, &t) in ts.iter().enumerate() {
                    let abar = self.alphas_cumprod[t];
                    let (sa, inv) = (abar.sqrt(), 1.0 / (1.0 - abar).sqrt());
                    let r = k * d..(k + 1) * d;
                    e[r.clone()].iter_mut().zip(&x[r.clone()]).zip(&x0[r]).for_each(|((e, &x), &m)| {
                        *e = ((x as f64 - sa * m) * inv) as f32;
                    });
                }
            },
        );
        Tensor::from_vec(eps, x_t.shape(), x_t.device())
    }
}

/// Sample the empirical optimal denoiser of the training subset `data` names (read and selected
/// exactly as `memgen train` does: [`memgen_diffusion::run::load_training_data`]) on the CPU, with
/// the DDPM/DDIM sampler of `cfg` on the schedule `schedule` and the shared noise of
/// `cfg.noise_seed` (or the initial noise file `cfg.initial_noise`): `memgen sample --oracle`.
/// `cfg.ema` and `cfg.blind` do not apply. `progress` is called with the number of samples of each
/// finished batch. Returns the samples and the record of the training indices.
pub fn generate(
    data: &DataRef,
    schedule: &ScheduleConfig,
    cfg: &GenerateConfig,
    progress: &dyn Fn(usize),
) -> Result<(Generated, SplitRecord)> {
    let (images, record) = crate::baseline::training_images(data, cfg)?;
    let schedule = DdpmSchedule::new(schedule)?;
    let den = EmpiricalDenoiser::new(&images, &schedule)?;
    let dims = images.dims()[1..].to_vec();
    drop(images);
    Ok((
        crate::baseline::generate_with(&den, crate::baseline::time(&schedule), &dims, cfg, progress)?,
        record,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::Device;
    use memgen_diffusion::sampler::{epsilon_to_x0, SampleRequest, SamplerConfig, VarianceType};
    use memgen_diffusion::{NoiseSource, Prediction};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_images(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d).map(|_| rng.random::<f32>()).collect()
    }

    /// Pearson correlation over pixels (0 for a constant image).
    fn corr(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) =
            (a.iter().map(|&v| v as f64).sum::<f64>() / n, b.iter().map(|&v| v as f64).sum::<f64>() / n);
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (x as f64 - ma, y as f64 - mb);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        if aa == 0.0 || bb == 0.0 {
            0.0
        } else {
            ab / (aa * bb).sqrt()
        }
    }

    /// The brute-force f64 ε̂ of one sample.
    fn brute(images: &[f32], d: usize, x: &[f32], abar: f64) -> Vec<f64> {
        let logits: Vec<f64> = images
            .chunks(d)
            .map(|r| {
                let dist: f64 =
                    r.iter().zip(x).map(|(&a, &b)| (b as f64 - abar.sqrt() * a as f64).powi(2)).sum();
                -dist / (2.0 * (1.0 - abar))
            })
            .collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let p: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let z: f64 = p.iter().sum();
        let mut x0 = vec![0.0; d];
        for (r, &p) in images.chunks(d).zip(&p) {
            x0.iter_mut().zip(r).for_each(|(m, &v)| *m += p / z * v as f64);
        }
        x.iter().zip(&x0).map(|(&x, &m)| (x as f64 - abar.sqrt() * m) / (1.0 - abar).sqrt()).collect()
    }

    #[test]
    fn one_image_gives_the_exact_epsilon() {
        let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        let d = 16;
        let img = random_images(1, d, 3);
        let den = EmpiricalDenoiser::from_rows(img.clone(), d, &schedule).unwrap();
        let x = random_images(4, d, 4).iter().map(|v| 3.0 * v - 1.0).collect::<Vec<f32>>();
        let ts = [0u32, 10, 500, 999];
        let xt = Tensor::from_vec(x.clone(), (4, 1, 4, 4), &Device::Cpu).unwrap();
        let eps = den.forward(&xt, &Tensor::new(&ts, &Device::Cpu).unwrap()).unwrap();
        for (k, &t) in ts.iter().enumerate() {
            let abar = schedule.alphas_cumprod[t as usize];
            let e = eps.get(k).unwrap();
            let got: Vec<f32> = e.flatten_all().unwrap().to_vec1().unwrap();
            for j in 0..d {
                let want = (x[k * d + j] as f64 - abar.sqrt() * img[j] as f64) / (1.0 - abar).sqrt();
                assert!(
                    (got[j] as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "t = {t}: {} vs {want}",
                    got[j]
                );
            }
            // ... and Tweedie's formula maps x_t back to the image.
            let x0 = epsilon_to_x0(&e, &xt.get(k).unwrap(), abar).unwrap();
            let x0: Vec<f32> = x0.flatten_all().unwrap().to_vec1().unwrap();
            let err = x0.iter().zip(&img).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(err < 1e-4, "t = {t}: x0 off by {err}");
        }
    }

    #[test]
    fn matches_brute_force_across_blocks_and_times() {
        let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        let (n, d) = (23, 12);
        let images = random_images(n, d, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let ts = [0u32, 3, 40, 150, 400, 999];
        let mut worst: f64 = 0.0;
        for block in [1usize, 4, 7, 64] {
            let den = EmpiricalDenoiser::from_rows(images.clone(), d, &schedule).unwrap().with_block(block);
            // x_t near a noised training image (peaked posteriors) and far from all (flat ones).
            let x: Vec<f32> = ts
                .iter()
                .enumerate()
                .flat_map(|(k, &t)| {
                    let abar = schedule.alphas_cumprod[t as usize];
                    let src = &images[(k % n) * d..(k % n + 1) * d];
                    let noise: Vec<f32> = (0..d).map(|_| rng.random::<f32>() - 0.5).collect();
                    src.iter()
                        .zip(noise)
                        .map(|(&v, z)| (abar.sqrt() * v as f64 + 2.0 * (1.0 - abar).sqrt() * z as f64) as f32)
                        .collect::<Vec<_>>()
                })
                .collect();
            let xt = Tensor::from_vec(x.clone(), (ts.len(), d), &Device::Cpu).unwrap();
            let out = den.forward(&xt, &Tensor::new(&ts, &Device::Cpu).unwrap()).unwrap();
            let out: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
            for (k, &t) in ts.iter().enumerate() {
                let abar = schedule.alphas_cumprod[t as usize];
                let want = brute(&images, d, &x[k * d..(k + 1) * d], abar);
                for j in 0..d {
                    let err = (out[k * d + j] as f64 - want[j]).abs() / want[j].abs().max(1.0);
                    worst = worst.max(err);
                    assert!(err < 1e-5, "block {block}, t = {t}: {} vs {}", out[k * d + j], want[j]);
                }
            }
            // One sample alone gives bit-identical output to the same sample in the batch.
            let alone = den
                .forward(&xt.narrow(0, 2, 1).unwrap(), &Tensor::new(&ts[2..3], &Device::Cpu).unwrap())
                .unwrap();
            assert_eq!(alone.flatten_all().unwrap().to_vec1::<f32>().unwrap(), out[2 * d..3 * d].to_vec());
        }
        println!("max relative |oracle - brute force| = {worst:.2e}");
    }

    #[test]
    fn sampling_reproduces_training_images() {
        let default = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        let short = DdpmSchedule::new(&ScheduleConfig {
            steps: 100,
            beta_start: 1e-4,
            beta_end: 0.1,
            ..Default::default()
        })
        .unwrap();
        let (side, count) = (8usize, 12usize);
        let d = side * side;
        for n in [1usize, 10, 100] {
            let images = random_images(n, d, 100 + n as u64);
            for (schedule, cfg) in [
                (&default, SamplerConfig::Ddim { steps: 20, eta: 0.0 }),
                (&short, SamplerConfig::Ddpm { variance: VarianceType::Beta }),
            ] {
                let den = EmpiricalDenoiser::from_rows(images.clone(), d, schedule).unwrap();
                let sampler = cfg.build(schedule).unwrap();
                let x = SampleRequest {
                    model: &den,
                    prediction: Prediction::Epsilon,
                    schedule,
                    sampler: sampler.as_ref(),
                    noise: &NoiseSource::new(n as u64),
                    dims: &[1, side, side],
                    device: &Device::Cpu,
                }
                .sample_batched(count, 5, None)
                .unwrap();
                let x: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
                let mut least = f64::INFINITY;
                let mut hit = std::collections::BTreeSet::new();
                for s in x.chunks(d) {
                    let (best, arg) = images
                        .chunks(d)
                        .enumerate()
                        .map(|(i, y)| (corr(s, y), i))
                        .fold((f64::NEG_INFINITY, 0), |a, b| if b.0 > a.0 { b } else { a });
                    hit.insert(arg);
                    least = least.min(best);
                }
                println!(
                    "N = {n}, {cfg:?}: least best-correlation {least:.6}, {} distinct images hit",
                    hit.len()
                );
                assert!(
                    least > 0.99,
                    "N = {n}, {cfg:?}: a sample correlates at best {least} with the training set"
                );
            }
        }
    }

    #[test]
    fn refuses_bad_input() {
        let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        assert!(EmpiricalDenoiser::from_rows(vec![0.0; 7], 2, &schedule).is_err());
        assert!(EmpiricalDenoiser::from_rows(vec![f32::NAN; 4], 2, &schedule).is_err());
        let den = EmpiricalDenoiser::from_rows(vec![0.0; 4], 2, &schedule).unwrap();
        let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(den.forward(&x, &Tensor::new(&[0u32, 0], &Device::Cpu).unwrap()).is_err());
        let x = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(den.forward(&x, &Tensor::new(&[0u32, 1000], &Device::Cpu).unwrap()).is_err());
    }
}

//! Denoising error on the training images against held-out images: the papers' evidence of the
//! memorization-to-generalization transition (Kadkhodaie et al. 2024: as N grows the training error
//! rises, the test error falls, and the two meet), with the two denoisers of the same training set
//! that bound a network from both sides:
//!
//! - the Gaussian (linear) denoiser of the set, x̂ = μ0 + Σ0 (Σ0 + σ² I)⁻¹ (y − μ0) ([`WienerDenoiser`]
//!   from the set's mean and covariance): what learning the first two moments achieves;
//! - the empirical optimal denoiser ([`OracleDenoiser`]), E[x | y] under the uniform distribution on
//!   the set: the ideal memorizer, best possible on its own images and poor on fresh ones.
//!
//! Each error is [`crate::curve::denoise_curve`]'s: per-pixel MSE with its standard error and PSNR,
//! the noise of image k at level i keyed by (seed, k, i), so every denoiser sees the same noisy images.

use crate::curve::{denoise_curve, CurvePoint};
use crate::{Error, ImageDenoiser, Result, WienerDenoiser};
use candle::{DType, Tensor};
use memgen_linear::oracle::EmpiricalDenoiser;
use memgen_linear::{Moments, Spectrum};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The default noise levels of a train/test comparison.
pub const DEFAULT_SIGMAS: [f64; 4] = [0.05, 0.1, 0.2, 0.4];

/// The empirical optimal denoiser of a training set at noise level σ:
/// f(y, σ) = Σ_i p_i x_i, p_i ∝ exp(−‖y − x_i‖² / (2σ²)): the posterior mean under the uniform
/// distribution on the set (the ideal memorizer). Computed by [`EmpiricalDenoiser`] through the
/// variance-preserving form x_t = √ᾱ y with ᾱ = 1/(1 + σ²), which has the same posterior.
pub struct OracleDenoiser {
    inner: EmpiricalDenoiser,
}

impl OracleDenoiser {
    /// From the training images, N x d row-major.
    pub fn new(images: Vec<f32>, dim: usize) -> Result<Self> {
        // The schedule only serves the sampler's timesteps, unused here.
        let schedule = memgen_diffusion::DdpmSchedule::new(&memgen_diffusion::ScheduleConfig::default())?;
        let inner = EmpiricalDenoiser::from_rows(images, dim, &schedule)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(OracleDenoiser { inner })
    }
}

impl ImageDenoiser for OracleDenoiser {
    fn denoise(&self, y: &Tensor, sigma: f64) -> Result<Tensor> {
        let abar = 1.0 / (1.0 + sigma * sigma);
        let (b, d) = (y.dim(0)?, self.inner.dim());
        if y.elem_count() != b * d {
            return Err(Error::Invalid(format!(
                "oracle denoiser: input {:?} is not images of {d} values",
                y.dims()
            )));
        }
        let sa = abar.sqrt() as f32;
        let x: Vec<f32> =
            y.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?.iter().map(|v| v * sa).collect();
        let mean = self.inner.posterior_means_at(&x, &vec![abar; b]);
        Ok(Tensor::from_vec(mean, y.shape(), y.device())?.to_dtype(y.dtype())?)
    }
}

/// The Gaussian (linear) denoiser of the training images (N x d row-major): mean and covariance
/// (1/N) of the set.
pub fn gaussian_of(images: &[f32], dim: usize) -> Result<WienerDenoiser> {
    let m = Moments::from_rows(images, dim).map_err(|e| Error::Invalid(e.to_string()))?;
    let s = Spectrum::of(&m.cov).map_err(|e| Error::Invalid(e.to_string()))?;
    let basis = (0..dim * dim).map(|k| s.vectors[(k / dim, k % dim)]).collect();
    WienerDenoiser::new(m.mean, basis, s.values)
}

/// One denoiser's error on the training images and on held-out images, at every σ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainTest {
    pub train: Vec<CurvePoint>,
    pub test: Vec<CurvePoint>,
}

impl TrainTest {
    /// `den` on `train` and on `test` (both n x d row-major, images of shape `dims`) at `sigmas`,
    /// with the noise of `seed`: image k of either set gets the same noise, so the two errors differ
    /// only through the images (and are equal when the sets are).
    pub fn measure(
        den: &dyn ImageDenoiser,
        train: &[f32],
        test: &[f32],
        dims: [usize; 3],
        sigmas: &[f64],
        seed: u64,
        batch: usize,
    ) -> Result<Self> {
        Ok(TrainTest {
            train: denoise_curve(den, train, dims, sigmas, seed, batch)?,
            test: denoise_curve(den, test, dims, sigmas, seed, batch)?,
        })
    }

    /// Test MSE over train MSE at noise level number `i` (1 when the two agree; large when the
    /// denoiser does much better on its own images).
    pub fn gap(&self, i: usize) -> Option<f64> {
        Some(self.test.get(i)?.mse / self.train.get(i)?.mse)
    }
}

/// The denoising errors of one trained network and of the two reference denoisers of its training
/// set, on its training images and on one held-out set (RUN/denoise-error/denoise-error.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiseError {
    pub sigmas: Vec<f64>,
    /// Training images measured (all of them, or an evenly spaced subset).
    pub train_images: usize,
    /// Held-out images measured.
    pub test_images: usize,
    pub network: TrainTest,
    pub linear: TrainTest,
    pub oracle: TrainTest,
}

/// The index of the σ nearest 0.1 in log scale: the noise level the report and the verdicts read.
pub fn reference_sigma(sigmas: &[f64]) -> Option<usize> {
    (0..sigmas.len()).min_by(|&i, &j| (sigmas[i] / 0.1).ln().abs().total_cmp(&(sigmas[j] / 0.1).ln().abs()))
}

/// One network's errors at the reference σ ([`reference_sigma`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AtReference {
    /// Index of the reference σ in [`DenoiseError::sigmas`].
    pub index: usize,
    pub sigma: f64,
    /// The network's test MSE over its train MSE.
    pub gap: f64,
    /// The network's test MSE over the Gaussian denoiser's test MSE.
    pub vs_linear: f64,
}

impl DenoiseError {
    /// The network's errors at the reference σ; `None` when a σ lacks a measurement.
    pub fn at_reference(&self) -> Option<AtReference> {
        let index = reference_sigma(&self.sigmas)?;
        let vs_linear = self.network.test.get(index)?.mse / self.linear.test.get(index)?.mse;
        Some(AtReference { index, sigma: self.sigmas[index], gap: self.network.gap(index)?, vs_linear })
    }
}

/// RUN/denoise-error/denoise-error.json, written by `memgen denoise-error` and read by the
/// experiment report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiseErrorRecord {
    pub run: std::path::PathBuf,
    pub data: std::path::PathBuf,
    pub content_hash: String,
    /// EMA weights (else the raw ones).
    pub ema: bool,
    /// The training images measured (dataset indices).
    pub train_indices: Vec<usize>,
    /// The held-out images (dataset indices): in no training set of the comparison.
    pub held_out_indices: Vec<usize>,
    /// Noise seed of [`crate::curve::curve_noise`].
    pub seed: u64,
    pub errors: DenoiseError,
    pub threads: usize,
    pub seconds: f64,
}

/// What `memgen denoise-error` reports: the files written and the errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiseErrorResult {
    pub out: std::path::PathBuf,
    pub denoise_error_json: std::path::PathBuf,
    pub denoise_error_csv: std::path::PathBuf,
    pub errors: DenoiseError,
}

impl DenoiseErrorRecord {
    /// denoise-error.json and .csv in `out`, with the errors, as reported.
    pub fn result(&self, out: &std::path::Path) -> DenoiseErrorResult {
        DenoiseErrorResult {
            out: out.to_path_buf(),
            denoise_error_json: out.join("denoise-error.json"),
            denoise_error_csv: out.join("denoise-error.csv"),
            errors: self.errors.clone(),
        }
    }

    /// The printed table: per σ, each denoiser's train and test MSE and the network's ratio.
    pub fn table(&self) -> String {
        let e = &self.errors;
        let mut s = format!(
            "denoising MSE per pixel on {} training and {} held-out images ({})\n",
            e.train_images,
            e.test_images,
            if self.ema { "EMA weights" } else { "raw weights" }
        );
        let _ = writeln!(s, "| σ | network train | network test | test/train | linear train | linear test | oracle train | oracle test |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for (i, sigma) in e.sigmas.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {sigma} | {:.3e} ± {:.1e} | {:.3e} ± {:.1e} | {:.3} | {:.3e} | {:.3e} | {:.3e} | {:.3e} |",
                e.network.train[i].mse,
                e.network.train[i].mse_se,
                e.network.test[i].mse,
                e.network.test[i].mse_se,
                e.network.gap(i).unwrap_or(f64::NAN),
                e.linear.train[i].mse,
                e.linear.test[i].mse,
                e.oracle.train[i].mse,
                e.oracle.test[i].mse,
            );
        }
        s
    }
}

impl DenoiseError {
    /// denoise-error.csv: one line per (denoiser, set, σ).
    pub fn csv(&self) -> String {
        let mut s = String::from("denoiser,set,sigma,effective_sigma,mse,mse_se,psnr,input_mse\n");
        for (name, tt) in [("network", &self.network), ("linear", &self.linear), ("oracle", &self.oracle)] {
            for (set, points) in [("train", &tt.train), ("test", &tt.test)] {
                for p in points {
                    let _ = writeln!(
                        s,
                        "{name},{set},{},{},{},{},{},{}",
                        p.sigma, p.effective_sigma, p.mse, p.mse_se, p.psnr, p.input_mse
                    );
                }
            }
        }
        s
    }

    /// The network's, the Gaussian denoiser's and the oracle's errors on `train` and `test` (n x d
    /// row-major images of shape `dims`), the two reference denoisers built from `all_train` (every
    /// training image); the noise of `seed`, `batch` images per pass.
    #[allow(clippy::too_many_arguments)]
    pub fn measure(
        network: &dyn ImageDenoiser,
        all_train: Vec<f32>,
        train: &[f32],
        test: &[f32],
        dims: [usize; 3],
        sigmas: &[f64],
        seed: u64,
        batch: usize,
    ) -> Result<Self> {
        let d: usize = dims.iter().product();
        let measure =
            |den: &dyn ImageDenoiser| TrainTest::measure(den, train, test, dims, sigmas, seed, batch);
        Ok(DenoiseError {
            sigmas: sigmas.to_vec(),
            train_images: train.len() / d.max(1),
            test_images: test.len() / d.max(1),
            network: measure(network)?,
            linear: measure(&gaussian_of(&all_train, d)?)?,
            oracle: measure(&OracleDenoiser::new(all_train, d)?)?,
        })
    }
}

/// Up to `max` of `pool`, evenly spaced over it (all of it when it holds at most `max`).
pub fn evenly_spaced(pool: &[usize], max: usize) -> Vec<usize> {
    let take = max.min(pool.len());
    (0..take).map(|k| pool[k * pool.len() / take]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::Device;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn images(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d)
            .map(|p| {
                let z: f64 = StandardNormal.sample(&mut rng);
                (0.5 + 0.2 * z / (1.0 + (p % d) as f64).sqrt()) as f32
            })
            .collect()
    }

    /// The oracle is E[x | y] under the uniform distribution on the set: a brute-force softmax over
    /// the training images in f64.
    #[test]
    fn the_oracle_is_the_posterior_mean_of_the_set() {
        let (d, n) = (6, 5);
        let train = images(n, d, 1);
        let oracle = OracleDenoiser::new(train.clone(), d).unwrap();
        let y = images(2, d, 2);
        let sigma = 0.3;
        let out = oracle
            .denoise(&Tensor::from_vec(y.clone(), (2, 1, 2, 3), &Device::Cpu).unwrap(), sigma)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for k in 0..2 {
            let yk = &y[k * d..(k + 1) * d];
            let logits: Vec<f64> = train
                .chunks(d)
                .map(|x| {
                    -x.iter().zip(yk).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>()
                        / (2.0 * sigma * sigma)
                })
                .collect();
            let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
            let total: f64 = w.iter().sum();
            for i in 0..d {
                let want: f64 = train.chunks(d).zip(&w).map(|(x, w)| w * x[i] as f64).sum::<f64>() / total;
                assert!(
                    (out[k * d + i] as f64 - want).abs() < 1e-5,
                    "image {k} pixel {i}: {} vs {want}",
                    out[k * d + i]
                );
            }
        }
    }

    /// Train error equals test error when the held-out set is the training set; the oracle of one
    /// image does better on it than on fresh images (it memorizes), and the linear denoiser of many
    /// Gaussian images errs about equally on both.
    #[test]
    fn train_and_test_errors_tell_memorizers_apart() {
        let d = 16;
        let dims = [1, 4, 4];
        let sigmas = [0.1, 0.4];
        let train = images(400, d, 3);
        let test = images(200, d, 4);
        let lin = gaussian_of(&train, d).unwrap();
        let same = TrainTest::measure(&lin, &test, &test, dims, &sigmas, 7, 64).unwrap();
        assert_eq!(same.train, same.test, "the same images with the same noise");
        let lin_tt = TrainTest::measure(&lin, &train[..200 * d], &test, dims, &sigmas, 7, 64).unwrap();
        for i in 0..2 {
            let gap = lin_tt.gap(i).unwrap();
            assert!((gap - 1.0).abs() < 0.15, "σ = {}: linear test/train {gap}", sigmas[i]);
        }
        let one = &train[..d];
        let oracle = OracleDenoiser::new(one.to_vec(), d).unwrap();
        let o = TrainTest::measure(&oracle, one, &test, dims, &sigmas, 7, 64).unwrap();
        for i in 0..2 {
            assert!(o.train[i].mse < 1e-10, "the oracle of one image returns it: {}", o.train[i].mse);
            assert!(o.test[i].mse > 100.0 * o.train[i].mse.max(1e-12), "{:?}", o.test[i]);
        }
        // The record reads back, single-image NaN standard errors and infinite PSNRs included.
        let one_image = TrainTest::measure(&oracle, one, &test[..d], dims, &sigmas, 7, 64).unwrap();
        let text = serde_json::to_string(&one_image).unwrap();
        let back: TrainTest = serde_json::from_str(&text).unwrap();
        assert!(back.train[0].mse_se.is_nan() && back.train[0].psnr == f64::INFINITY, "{text}");
        assert_eq!(back.test[1].mse.to_bits(), one_image.test[1].mse.to_bits());
        assert_eq!(reference_sigma(&[0.05, 0.2, 0.4]), Some(0), "0.05 and 0.2 tie in log; the first wins");
        assert_eq!(reference_sigma(&[0.03, 0.12, 0.4]), Some(1));
        assert_eq!(evenly_spaced(&[10, 11, 12, 13, 14, 15], 3), [10, 12, 14]);
        assert_eq!(evenly_spaced(&[1, 2], 5), [1, 2]);
    }
}

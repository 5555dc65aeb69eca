//! The Jacobian of a denoiser at a noisy image and its eigen-analysis: the geometry-adaptive
//! harmonic basis of Kadkhodaie, Guth, Simoncelli & Mallat 2024 ("Generalization in diffusion
//! models arises from geometry-adaptive harmonic representations", arXiv:2310.02557).
//!
//! At a noisy image y = x + σ z the denoiser is locally linear, f(y + δ) ≈ f(y) + J δ with
//! J_ij = ∂f_i/∂y_j (d x d, d = C·H·W). A good denoiser's J is close to symmetric (it is the Hessian of
//! σ² log p_σ(y) plus the identity for the optimal one, Miyasawa/Tweedie), so it is summarised by the
//! eigendecomposition of its symmetric part S = (J + Jᵀ)/2 = Σ_k λ_k e_k e_kᵀ: J shrinks the noise
//! along e_k by λ_k, keeps the few directions the image lives in (λ ≈ 1) and discards the rest
//! (λ ≈ 0). The eigenvectors are the adaptive basis (for C^α images: oscillations along the contours
//! of the image), and the trace Σ_k λ_k = tr J is the effective dimensionality of the locally
//! preserved subspace (the paper's "effective dimensionality", which falls as σ grows).
//!
//! The rows of J are taken by backpropagation, B rows per pass: y is replicated into a batch of B
//! copies held by one [`Var`], the batch is denoised once, and the scalar L = Σ_k f(Y)_k[i_k] (copy k's
//! output pixel i_k, selected by a one-hot mask) is differentiated: ∂L/∂Y_k = ∂f_{i_k}/∂y = row i_k of
//! J. This needs the copies not to interact. They do not for memgen's networks in evaluation mode:
//! the UNet's GroupNorm normalises each sample on its own, its attention mixes pixels within a sample,
//! the time embedding is per sample, and dropout is off; the blind network's bias-free batch norm uses
//! its running statistics in evaluation mode (its training mode, with batch statistics, would couple
//! the copies, but [`crate::ModelDenoiser`] never uses it). A test checks that batch 1 and batch B give
//! the same rows.
//!
//! jacobian.json, the record of `memgen jacobian`, is [`JacobianRecord`]: one [`ModelJacobian`]'s
//! analysis and, with a second model, the [`overlaps`] of their eigenspaces ([`JacobianComparison`]).

use crate::{Error, ImageDenoiser, Result};
use candle::{DType, Device, Tensor, Var};
use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// J = ∂f/∂y at one noisy image, with the denoiser's output there.
#[derive(Debug, Clone)]
pub struct Jacobian {
    /// Pixels per image, d = C·H·W.
    pub d: usize,
    /// J, d x d row-major: `values[i * d + j]` = ∂f_i/∂y_j.
    pub values: Vec<f64>,
    /// The noisy image y, length d.
    pub noisy: Vec<f64>,
    /// The denoised image f(y, σ), length d.
    pub denoised: Vec<f64>,
    /// The noise level asked for.
    pub sigma: f64,
    /// The noise level the denoiser assumes ([`ImageDenoiser::effective_sigma`]).
    pub effective_sigma: f64,
    /// Wall-clock seconds of the backward passes.
    pub seconds: f64,
}

impl Jacobian {
    /// J_ij.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.values[i * self.d + j]
    }

    /// tr J = Σ_i ∂f_i/∂y_i, the effective dimensionality.
    pub fn trace(&self) -> f64 {
        (0..self.d).map(|i| self.get(i, i)).sum()
    }

    /// ‖J‖_F.
    pub fn frobenius(&self) -> f64 {
        self.values.iter().map(|v| v * v).sum::<f64>().sqrt()
    }

    /// ‖J − Jᵀ‖_F / ‖J‖_F: 0 for a symmetric J (0 also for J = 0).
    pub fn asymmetry(&self) -> f64 {
        let d = self.d;
        let mut off = 0.0;
        for i in 0..d {
            for j in 0..d {
                off += (self.get(i, j) - self.get(j, i)).powi(2);
            }
        }
        let norm = self.frobenius();
        if norm > 0.0 {
            off.sqrt() / norm
        } else {
            0.0
        }
    }

    /// J as a faer matrix.
    pub fn to_mat(&self) -> Mat<f64> {
        Mat::from_fn(self.d, self.d, |i, j| self.get(i, j))
    }

    /// ‖J − K‖_F / ‖J‖_F for another Jacobian K of the same size.
    pub fn relative_difference(&self, other: &Jacobian) -> Result<f64> {
        if other.d != self.d {
            return Err(Error::Invalid(format!("Jacobians of {} and {} pixels", self.d, other.d)));
        }
        let diff: f64 = self.values.iter().zip(&other.values).map(|(a, b)| (a - b).powi(2)).sum();
        Ok(diff.sqrt() / self.frobenius().max(f64::MIN_POSITIVE))
    }

    /// The eigen-analysis of J ([`Analysis::of`]).
    pub fn analyse(&self) -> Result<Analysis> {
        Analysis::of(self)
    }
}

/// J of `den` at `y` (shape (1, C, H, W), in the dtype the denoiser computes in), `batch` rows per
/// backward pass (see the module documentation), with f(y) and the timing. Row i is ∂f_i/∂y; rows
/// are stored in f64 whatever the dtype of the computation.
pub fn jacobian(den: &dyn ImageDenoiser, y: &Tensor, sigma: f64, batch: usize) -> Result<Jacobian> {
    let dims = y.dims().to_vec();
    if dims.len() != 4 || dims[0] != 1 {
        return Err(Error::Invalid(format!("jacobian: y must have shape (1, C, H, W), got {dims:?}")));
    }
    if batch == 0 {
        return Err(Error::Invalid("jacobian: the batch must hold at least one row".into()));
    }
    if !(sigma >= 0.0 && sigma.is_finite()) {
        return Err(Error::Invalid(format!("jacobian: σ must be finite and non-negative, got {sigma}")));
    }
    let d = y.elem_count();
    let start = Instant::now();
    let y = y.detach();
    let mut values = vec![0.0f64; d * d];
    let mut denoised = Vec::new();
    for first in (0..d).step_by(batch) {
        let b = batch.min(d - first);
        let copies = Var::from_tensor(&y.repeat((b, 1, 1, 1))?)?;
        let out = den.denoise(copies.as_tensor(), sigma)?;
        if out.elem_count() != b * d {
            return Err(Error::Invalid(format!(
                "jacobian: the denoiser returned {:?} for an input of {:?}",
                out.dims(),
                copies.dims()
            )));
        }
        let out = out.reshape((b, d))?;
        if first == 0 {
            denoised = out.get(0)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        }
        // One-hot mask: copy k selects output pixel first + k.
        let mut mask = vec![0.0f64; b * d];
        for k in 0..b {
            mask[k * d + first + k] = 1.0;
        }
        let mask = Tensor::from_vec(mask, (b, d), out.device())?.to_dtype(out.dtype())?;
        let grads = (out * mask)?.sum_all()?.backward()?;
        // No gradient: f does not depend on y (its rows stay zero).
        if let Some(g) = grads.get(copies.as_tensor()) {
            let rows = g.reshape((b, d))?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            values[first * d..(first + b) * d].copy_from_slice(&rows);
        }
    }
    let noisy = y.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    Ok(Jacobian {
        d,
        values,
        noisy,
        denoised,
        sigma,
        effective_sigma: den.effective_sigma(sigma),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// [`jacobian`] at an image given as f32 pixels of shape `(channels, height, width)` (row-major),
/// computed in f32 on the CPU (the dtype of a trained run's weights, [`crate::ModelDenoiser::from_run`]).
pub fn jacobian_of_image(
    den: &dyn ImageDenoiser,
    pixels: &[f32],
    shape: (usize, usize, usize),
    sigma: f64,
    batch: usize,
) -> Result<Jacobian> {
    let (c, h, w) = shape;
    if pixels.len() != c * h * w {
        return Err(Error::Invalid(format!("jacobian: {} pixels for an image of {c}x{h}x{w}", pixels.len())));
    }
    let y = Tensor::from_vec(pixels.to_vec(), (1, c, h, w), &Device::Cpu)?;
    jacobian(den, &y, sigma, batch)
}

/// The eigen-analysis of a Jacobian J.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Eigenvalues of S = (J + Jᵀ)/2, descending.
    pub eigenvalues: Vec<f64>,
    /// The orthonormal eigenvectors of S, column k for `eigenvalues[k]` (d x d). Each is signed so
    /// that its entry of largest magnitude is positive.
    pub eigenvectors: Mat<f64>,
    /// ‖J − Jᵀ‖_F / ‖J‖_F.
    pub asymmetry: f64,
    /// tr J, the effective dimensionality.
    pub trace: f64,
    /// Σ_k λ_k (equal to tr J up to rounding: tr S = tr J).
    pub eigenvalue_sum: f64,
    /// Wall-clock seconds of the eigendecomposition.
    pub seconds: f64,
}

impl Analysis {
    /// Eigendecomposition of S = (J + Jᵀ)/2 (faer's self-adjoint solver), the asymmetry and the trace.
    pub fn of(j: &Jacobian) -> Result<Analysis> {
        let start = Instant::now();
        let d = j.d;
        let s = Mat::from_fn(d, d, |r, c| 0.5 * (j.get(r, c) + j.get(c, r)));
        let evd = s
            .self_adjoint_eigen(faer::Side::Lower)
            .map_err(|e| Error::Invalid(format!("eigendecomposition of (J + Jᵀ)/2: {e:?}")))?;
        let (vals, vecs) = (evd.S(), evd.U());
        // faer sorts ascending; reverse to descending.
        let eigenvalues: Vec<f64> = (0..d).rev().map(|k| vals[k]).collect();
        let eigenvectors = Mat::from_fn(d, d, |r, k| vecs[(r, d - 1 - k)]);
        let mut eigenvectors = eigenvectors;
        for k in 0..d {
            let col = eigenvectors.col(k);
            let peak = (0..d).map(|r| col[r]).fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
            if peak < 0.0 {
                for r in 0..d {
                    eigenvectors[(r, k)] = -eigenvectors[(r, k)];
                }
            }
        }
        Ok(Analysis {
            eigenvalue_sum: eigenvalues.iter().sum(),
            eigenvalues,
            eigenvectors,
            asymmetry: j.asymmetry(),
            trace: j.trace(),
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Pixels per image.
    pub fn dim(&self) -> usize {
        self.eigenvalues.len()
    }

    /// Eigenvector `k` (0 = largest eigenvalue), length d.
    pub fn eigenvector(&self, k: usize) -> Vec<f64> {
        let col = self.eigenvectors.col(k);
        (0..self.dim()).map(|r| col[r]).collect()
    }

    /// The top `k` eigenvectors as the columns of a d x k view.
    pub fn top(&self, k: usize) -> MatRef<'_, f64> {
        self.eigenvectors.as_ref().subcols(0, k.min(self.dim()))
    }
}

/// Overlap of the spaces spanned by the first `k` columns of `a` and of `b` (each with orthonormal
/// columns, d rows): ‖U_aᵀ U_b‖_F² / k = (1/k) Σ_i cos² θ_i over the k principal angles θ_i between the
/// two subspaces. It is 1 for the same subspace, 0 for orthogonal ones, and k/d in expectation for a
/// uniformly random k-dimensional subspace against a fixed one.
pub fn subspace_overlap(a: MatRef<'_, f64>, b: MatRef<'_, f64>, k: usize) -> Result<f64> {
    if a.nrows() != b.nrows() || k == 0 || k > a.ncols() || k > b.ncols() {
        return Err(Error::Invalid(format!(
            "subspace overlap of the top {k} columns of {}x{} and {}x{} bases",
            a.nrows(),
            a.ncols(),
            b.nrows(),
            b.ncols()
        )));
    }
    let m = a.subcols(0, k).transpose() * b.subcols(0, k);
    let sq: f64 = (0..k).flat_map(|i| (0..k).map(move |j| (i, j))).map(|(i, j)| m[(i, j)].powi(2)).sum();
    Ok(sq / k as f64)
}

/// Write J and its analysis as safetensors (f32, atomically): "jacobian" (d, d) with row i = ∂f_i/∂y,
/// "eigenvectors" (d, d) with row k = eigenvector k (descending eigenvalues), "eigenvalues" (d,),
/// "noisy" (d,) = y and "denoised" (d,) = f(y).
pub fn save_safetensors(path: &Path, j: &Jacobian, a: &Analysis) -> Result<()> {
    let d = j.d;
    let dev = Device::Cpu;
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let vecs: Vec<f64> = (0..d).flat_map(|k| a.eigenvector(k)).collect();
    let mut tensors = HashMap::new();
    tensors.insert("jacobian".to_string(), Tensor::from_vec(f32s(&j.values), (d, d), &dev)?);
    tensors.insert("eigenvectors".to_string(), Tensor::from_vec(f32s(&vecs), (d, d), &dev)?);
    tensors.insert("eigenvalues".to_string(), Tensor::from_vec(f32s(&a.eigenvalues), d, &dev)?);
    tensors.insert("noisy".to_string(), Tensor::from_vec(f32s(&j.noisy), d, &dev)?);
    tensors.insert("denoised".to_string(), Tensor::from_vec(f32s(&j.denoised), d, &dev)?);
    Ok(memgen_diffusion::checkpoint::save_tensors(path, &tensors)?)
}

/// Per-pixel squared error (1/d) Σ_i (a_i − b_i)² of an f64 image against an f32 one.
pub fn pixel_mse(a: &[f64], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (x - y as f64).powi(2)).sum::<f64>() / a.len().max(1) as f64
}

/// One model's Jacobian at the noisy image of `memgen jacobian` and its analysis.
#[derive(Debug, Clone)]
pub struct ModelJacobian {
    /// The run the network comes from.
    pub run: PathBuf,
    pub jac: Jacobian,
    pub analysis: Analysis,
    /// Whether the image is in the run's training set (`None`: the run trained on other data).
    pub in_training_set: Option<bool>,
}

impl ModelJacobian {
    /// [`jacobian_of_image`] of `den` (the network of `run`) at `noisy` and its [`Analysis`].
    pub fn new(
        run: &Path,
        den: &dyn ImageDenoiser,
        noisy: &[f32],
        shape: (usize, usize, usize),
        sigma: f64,
        batch: usize,
        in_training_set: Option<bool>,
    ) -> Result<Self> {
        let jac = jacobian_of_image(den, noisy, shape, sigma, batch)?;
        let analysis = jac.analyse()?;
        Ok(ModelJacobian { run: run.to_path_buf(), jac, analysis, in_training_set })
    }

    /// Its entry of jacobian.json, errors against the clean image `clean`.
    pub fn record(&self, clean: &[f32]) -> ModelRecord {
        ModelRecord {
            run: self.run.clone(),
            in_training_set: self.in_training_set,
            trace: self.analysis.trace,
            eigenvalue_sum: self.analysis.eigenvalue_sum,
            asymmetry: self.analysis.asymmetry,
            denoised_mse: pixel_mse(&self.jac.denoised, clean),
            noisy_mse: pixel_mse(&self.jac.noisy, clean),
            eigenvalues: self.analysis.eigenvalues.clone(),
            jacobian_s: self.jac.seconds,
            eigen_s: self.analysis.seconds,
        }
    }
}

/// What jacobian.json records of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub run: PathBuf,
    pub in_training_set: Option<bool>,
    /// tr J.
    pub trace: f64,
    /// Σ λ_k of (J + Jᵀ)/2.
    pub eigenvalue_sum: f64,
    /// ‖J − Jᵀ‖_F / ‖J‖_F.
    pub asymmetry: f64,
    /// ‖f(y) − x‖² / d.
    pub denoised_mse: f64,
    /// ‖y − x‖² / d (the noise actually drawn).
    pub noisy_mse: f64,
    pub eigenvalues: Vec<f64>,
    pub jacobian_s: f64,
    pub eigen_s: f64,
}

/// Overlap of the top-k eigenspaces of A and B.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Overlap {
    pub k: usize,
    /// [`subspace_overlap`] of the top k eigenvectors.
    pub overlap: f64,
    /// k / d: the expected overlap of a random k-dimensional subspace.
    pub random: f64,
}

/// k = 1, 2, 4, … up to `top`, and `top` itself.
pub fn overlap_ks(top: usize) -> Vec<usize> {
    let mut ks: Vec<usize> =
        std::iter::successors(Some(1usize), |k| k.checked_mul(2)).take_while(|&k| k <= top).collect();
    if ks.last() != Some(&top) {
        ks.push(top);
    }
    ks
}

/// The [`Overlap`] of the top-k eigenspaces of `a` and `b` for each k of [`overlap_ks`]`(top)`.
pub fn overlaps(a: &Analysis, b: &Analysis, top: usize) -> Result<Vec<Overlap>> {
    let d = a.dim();
    overlap_ks(top)
        .into_iter()
        .map(|k| {
            Ok(Overlap { k, overlap: subspace_overlap(a.top(k), b.top(k), k)?, random: k as f64 / d as f64 })
        })
        .collect()
}

/// The second model of `--compare` in jacobian.json: its record and how it differs from the first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JacobianComparison {
    pub model: ModelRecord,
    pub effective_sigma: f64,
    pub overlap: Vec<Overlap>,
    /// ‖J_A − J_B‖_F / ‖J_A‖_F ([`Jacobian::relative_difference`]).
    pub jacobian_relative_difference: f64,
    /// ‖f_A(y) − f_B(y)‖² / d.
    pub denoised_mse_between: f64,
}

impl JacobianComparison {
    /// B against A: the overlaps of their top-k eigenspaces up to `top`, the difference of their
    /// Jacobians and of their outputs, and B's record against the clean image.
    pub fn new(a: &ModelJacobian, b: &ModelJacobian, clean: &[f32], top: usize) -> Result<Self> {
        let b_out: Vec<f32> = b.jac.denoised.iter().map(|&v| v as f32).collect();
        Ok(JacobianComparison {
            model: b.record(clean),
            effective_sigma: b.jac.effective_sigma,
            overlap: overlaps(&a.analysis, &b.analysis, top)?,
            jacobian_relative_difference: a.jac.relative_difference(&b.jac)?,
            denoised_mse_between: pixel_mse(&a.jac.denoised, &b_out),
        })
    }
}

/// Wall-clock seconds of the first model's Jacobian and eigendecomposition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub jacobian_s: f64,
    pub eigen_s: f64,
}

/// jacobian.json, the record of `memgen jacobian`: the image, the noise, the first model's analysis
/// (also at the top level) and, with `--compare`, the second model's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JacobianRecord {
    pub run: PathBuf,
    pub data: PathBuf,
    /// Index of the clean image x in `data`, and its name there.
    pub image: usize,
    pub image_name: Option<String>,
    pub sigma: f64,
    pub effective_sigma: f64,
    /// y = x + σ z, z the noise of sample `image` at step 0 of this seed.
    pub noise_seed: u64,
    pub ema: bool,
    pub d: usize,
    /// (C, H, W).
    pub shape: [usize; 3],
    /// Jacobian rows per backward pass.
    pub batch: usize,
    pub threads: usize,
    pub trace: f64,
    pub eigenvalue_sum: f64,
    pub asymmetry: f64,
    pub eigenvalues: Vec<f64>,
    pub model: ModelRecord,
    pub timings: Timings,
    pub compare: Option<JacobianComparison>,
}

/// Where and how the Jacobians of `memgen jacobian` were taken (the fields of [`JacobianRecord`] that
/// are not results).
#[derive(Debug, Clone, PartialEq)]
pub struct JacobianSetup {
    pub run: PathBuf,
    pub data: PathBuf,
    pub image: usize,
    pub image_name: Option<String>,
    pub sigma: f64,
    pub noise_seed: u64,
    pub ema: bool,
    pub shape: [usize; 3],
    pub batch: usize,
    pub threads: usize,
}

impl JacobianRecord {
    /// The record of model `a` and, with `--compare`, `b`, at the noisy version of `clean`; overlaps
    /// up to `top`.
    pub fn new(
        setup: JacobianSetup,
        a: &ModelJacobian,
        b: Option<&ModelJacobian>,
        clean: &[f32],
        top: usize,
    ) -> Result<Self> {
        let compare = b.map(|b| JacobianComparison::new(a, b, clean, top)).transpose()?;
        let JacobianSetup { run, data, image, image_name, sigma, noise_seed, ema, shape, batch, threads } =
            setup;
        Ok(JacobianRecord {
            run,
            data,
            image,
            image_name,
            sigma,
            effective_sigma: a.jac.effective_sigma,
            noise_seed,
            ema,
            d: a.jac.d,
            shape,
            batch,
            threads,
            trace: a.analysis.trace,
            eigenvalue_sum: a.analysis.eigenvalue_sum,
            asymmetry: a.analysis.asymmetry,
            eigenvalues: a.analysis.eigenvalues.clone(),
            model: a.record(clean),
            timings: Timings { jacobian_s: a.jac.seconds, eigen_s: a.analysis.seconds },
            compare,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelDenoiser, WienerDenoiser};
    use memgen_diffusion::blind::BlindConfig;
    use memgen_diffusion::init::seeded_var_builder;
    use memgen_diffusion::unet::UNetConfig;
    use memgen_diffusion::{DdpmSchedule, Model, ModelConfig, ScheduleConfig};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// A randomly initialised network of `cfg` in f64 (weights from seed 3), as a denoiser.
    ///
    /// This crate has no candle-nn dependency to name a `VarMap` with, so the map is borrowed from a
    /// throw-away f32 trainer and emptied; the seeded builder then refills it in f64 with the values
    /// the seed gives each variable's name.
    fn tiny_f64(cfg: ModelConfig) -> ModelDenoiser {
        use memgen_diffusion::optim::AdamWConfig;
        use memgen_diffusion::train::{LrDecay, TrainConfig, Trainer};
        let train = TrainConfig {
            model: cfg.clone(),
            schedule: ScheduleConfig::default(),
            steps: 1,
            batch_size: 1,
            lr: 1e-3,
            warmup_steps: 0,
            lr_decay: LrDecay::Constant,
            optimizer: AdamWConfig::default(),
            ema_decay: 0.9,
            ema_warmup: true,
            seed: 3,
            checkpoint_every: 1,
            log_every: 1,
        };
        let data = Tensor::zeros((1, 1, 8, 8), DType::F32, &Device::Cpu).unwrap();
        let varmap = Trainer::new(train, data).unwrap().varmap().clone();
        varmap.data().lock().unwrap().clear();
        let model = Model::new(&cfg, seeded_var_builder(&varmap, 3, DType::F64, &Device::Cpu)).unwrap();
        if let Model::Blind(_) = model {
            // Fresh batch norms have gains ≤ 0.025 and running std 1, so the residual would be ~1e-5 of
            // the input; running stds of 0.004 (the gains' spread) give layers of gain ~1, a non-trivial Jacobian.
            for (name, var) in varmap.data().lock().unwrap().iter() {
                if memgen_diffusion::blind::is_running_stat(name) {
                    var.set(&(var.as_tensor().ones_like().unwrap() * 0.004).unwrap()).unwrap();
                }
            }
        }
        let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        ModelDenoiser::new(model, Some(schedule), cfg.prediction()).unwrap()
    }

    fn noisy_image(seed: u64, sigma: f64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // A smooth ramp plus noise, 8x8.
        let v: Vec<f64> = (0..64)
            .map(|p| {
                let (r, c) = ((p / 8) as f64, (p % 8) as f64);
                0.2 + 0.6 * ((r + c) / 14.0) + sigma * Distribution::<f64>::sample(&StandardNormal, &mut rng)
            })
            .collect();
        Tensor::from_vec(v, (1, 1, 8, 8), &Device::Cpu).unwrap()
    }

    /// Central differences (f(y + h e_j) − f(y − h e_j)) / 2h for all j, all 2d inputs in one batch:
    /// column j of J.
    fn finite_differences(den: &dyn ImageDenoiser, y: &Tensor, sigma: f64, h: f64) -> Vec<f64> {
        let d = y.elem_count();
        let base = y.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let mut inputs = Vec::with_capacity(2 * d * d);
        for j in 0..d {
            for s in [h, -h] {
                let mut v = base.clone();
                v[j] += s;
                inputs.extend(v);
            }
        }
        let dims = y.dims();
        let batch = Tensor::from_vec(inputs, (2 * d, dims[1], dims[2], dims[3]), &Device::Cpu).unwrap();
        let out = den.denoise(&batch, sigma).unwrap().reshape((2 * d, d)).unwrap().to_vec2::<f64>().unwrap();
        let mut jac = vec![0.0; d * d];
        for j in 0..d {
            for i in 0..d {
                jac[i * d + j] = (out[2 * j][i] - out[2 * j + 1][i]) / (2.0 * h);
            }
        }
        jac
    }

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    }

    fn check_against_fd(name: &str, den: &dyn ImageDenoiser, tol: f64) {
        let sigma = 0.1;
        let y = noisy_image(1, sigma);
        let j = jacobian(den, &y, sigma, 16).unwrap();
        let fd = finite_differences(den, &y, sigma, 1e-6);
        let err = max_abs_diff(&j.values, &fd);
        let scale = j.values.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let offdiag = (0..64).flat_map(|i| (0..64).filter(move |&k| k != i).map(move |k| (i, k)));
        let off = offdiag.map(|(i, k)| j.get(i, k).abs()).fold(0.0, f64::max);
        eprintln!(
            "{name}: max |J_backprop − J_fd| = {err:.3e} (max |J_ij| = {scale:.3}, max off-diagonal {off:.3}, \
             trace {:.3}, asymmetry {:.3})",
            j.trace(),
            j.asymmetry()
        );
        assert!(err < tol, "{name}: backprop vs finite differences {err:e}");
        assert!(off > 1e-3, "{name}: the Jacobian is trivially diagonal ({off})");
        // f(y) itself is the denoiser's output at y.
        let f = den.denoise(&y, sigma).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert!(max_abs_diff(&f, &j.denoised) < 1e-12);
    }

    #[test]
    fn unet_jacobian_matches_finite_differences() {
        let den = tiny_f64(ModelConfig::Unet(UNetConfig::tiny()));
        assert_eq!(
            den.model()
                .forward_t(&noisy_image(0, 0.1), &Tensor::new(&[5u32], &Device::Cpu).unwrap(), false)
                .unwrap()
                .dtype(),
            DType::F64
        );
        check_against_fd("unet-tiny (f64)", &den, 1e-6);
    }

    #[test]
    fn blind_jacobian_matches_finite_differences() {
        let den = tiny_f64(ModelConfig::Blind(BlindConfig::tiny()));
        check_against_fd("blind-tiny (f64)", &den, 1e-6);
    }

    #[test]
    fn copies_in_a_batch_do_not_interact() {
        for cfg in [ModelConfig::Unet(UNetConfig::tiny()), ModelConfig::Blind(BlindConfig::tiny())] {
            let den = tiny_f64(cfg);
            let y = noisy_image(2, 0.2);
            let one = jacobian(&den, &y, 0.2, 1).unwrap();
            // 5 does not divide 64: the last pass is a partial batch.
            let five = jacobian(&den, &y, 0.2, 5).unwrap();
            let all = jacobian(&den, &y, 0.2, 64).unwrap();
            let (e5, e64) = (max_abs_diff(&one.values, &five.values), max_abs_diff(&one.values, &all.values));
            eprintln!("batch 1 vs 5: {e5:e}, vs 64: {e64:e}");
            assert!(e5 < 1e-12 && e64 < 1e-12, "batch 1 vs 5: {e5:e}, vs 64: {e64:e}");
        }
    }

    /// A random orthonormal d x d basis (QR of a Gaussian matrix).
    fn random_basis(d: usize, seed: u64) -> Mat<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let g = Mat::from_fn(d, d, |_, _| Distribution::<f64>::sample(&StandardNormal, &mut rng));
        g.qr().compute_thin_Q()
    }

    #[test]
    fn linear_denoiser_jacobian_is_its_matrix() {
        let d = 16;
        let u = random_basis(d, 4);
        let lambdas: Vec<f64> = (0..d).map(|i| 0.5 / (1.0 + i as f64).powi(2)).collect();
        let basis: Vec<f64> = (0..d * d).map(|p| u[(p / d, p % d)]).collect();
        let mean: Vec<f64> = (0..d).map(|i| 0.5 + 0.01 * i as f64).collect();
        let lin = WienerDenoiser::new(mean, basis, lambdas.clone()).unwrap();
        let sigma = 0.1;
        let y = Tensor::from_vec(
            (0..d).map(|i| (i as f64 * 0.37).sin()).collect::<Vec<f64>>(),
            (1, 1, 4, 4),
            &Device::Cpu,
        )
        .unwrap();
        let j = jacobian(&lin, &y, sigma, 3).unwrap();
        let w = lin.matrix(sigma);
        assert!(max_abs_diff(&j.values, &w) < 1e-12, "{:e}", max_abs_diff(&j.values, &w));
        let a = j.analyse().unwrap();
        let want_trace: f64 = lambdas.iter().map(|l| l / (l + sigma * sigma)).sum();
        assert!((a.trace - want_trace).abs() < 1e-12 && (a.eigenvalue_sum - want_trace).abs() < 1e-12);
        assert!(a.asymmetry < 1e-12, "asymmetry {}", a.asymmetry);
        // The gains are already descending (λ decreasing); eigenvectors = ±U's columns.
        let gains = lin.gains(sigma);
        assert!(max_abs_diff(&a.eigenvalues, &gains) < 1e-12, "{:?} vs {gains:?}", a.eigenvalues);
        for k in 0..d {
            let dot: f64 = (0..d).map(|r| a.eigenvectors[(r, k)] * u[(r, k)]).sum();
            assert!((dot.abs() - 1.0).abs() < 1e-9, "eigenvector {k}: |<e, u>| = {}", dot.abs());
        }
        // The top-k spaces of the analysis and of U coincide.
        assert!((subspace_overlap(a.top(5), u.as_ref(), 5).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn record_of_two_models_round_trips() {
        let d = 16;
        let lin = |seed: u64, scale: f64| {
            let u = random_basis(d, seed);
            let basis: Vec<f64> = (0..d * d).map(|p| u[(p / d, p % d)]).collect();
            let lambdas: Vec<f64> = (0..d).map(|i| scale / (1.0 + i as f64).powi(2)).collect();
            WienerDenoiser::new(vec![0.5; d], basis, lambdas).unwrap()
        };
        let clean: Vec<f32> = (0..d).map(|i| 0.5 + 0.3 * (i as f32 * 0.7).sin()).collect();
        let noisy: Vec<f32> =
            clean.iter().enumerate().map(|(i, x)| x + 0.1 * (i as f32 * 1.3).cos()).collect();
        let shape = (1, 4, 4);
        let (den_a, den_b) = (lin(4, 0.5), lin(5, 0.5));
        let a = ModelJacobian::new(Path::new("a"), &den_a, &noisy, shape, 0.1, 5, Some(true)).unwrap();
        let b = ModelJacobian::new(Path::new("b"), &den_b, &noisy, shape, 0.1, 16, None).unwrap();
        let setup = JacobianSetup {
            run: "a".into(),
            data: "ds".into(),
            image: 3,
            image_name: Some("calpha#3".into()),
            sigma: 0.1,
            noise_seed: 0,
            ema: true,
            shape: [1, 4, 4],
            batch: 5,
            threads: 1,
        };
        let rec = JacobianRecord::new(setup.clone(), &a, Some(&b), &clean, 5).unwrap();
        assert_eq!((rec.d, rec.trace, rec.model.in_training_set), (d, a.analysis.trace, Some(true)));
        let cmp = rec.compare.as_ref().unwrap();
        assert_eq!(cmp.overlap.iter().map(|o| o.k).collect::<Vec<_>>(), [1, 2, 4, 5]);
        assert_eq!(cmp.overlap[3].random, 5.0 / 16.0);
        assert!(cmp.jacobian_relative_difference > 0.0 && cmp.denoised_mse_between > 0.0);
        let back: JacobianRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
        assert_eq!(back, rec);
        // One model: no comparison (null).
        let rec = JacobianRecord::new(setup, &b, None, &clean, 5).unwrap();
        let json = serde_json::to_value(&rec).unwrap();
        assert!(json["compare"].is_null() && json["model"]["in_training_set"].is_null());
        assert_eq!(serde_json::from_value::<JacobianRecord>(json).unwrap(), rec);
    }

    #[test]
    fn subspace_overlap_formula() {
        let d = 12;
        let u = random_basis(d, 7);
        for k in [1, 3, 12] {
            assert!((subspace_overlap(u.as_ref(), u.as_ref(), k).unwrap() - 1.0).abs() < 1e-12);
        }
        // The first 4 columns against the last 4 (reordered to come first): orthogonal complements.
        let rest = Mat::from_fn(d, d - 4, |r, c| u[(r, c + 4)]);
        assert!(subspace_overlap(u.as_ref(), rest.as_ref(), 4).unwrap().abs() < 1e-12);
        // A rotation within the span leaves the subspace (overlap 1); in general, the formula.
        let v = random_basis(d, 8);
        let k = 5;
        let direct: f64 = (0..k)
            .flat_map(|i| (0..k).map(move |j| (i, j)))
            .map(|(i, j)| (0..d).map(|r| u[(r, i)] * v[(r, j)]).sum::<f64>().powi(2))
            .sum::<f64>()
            / k as f64;
        let got = subspace_overlap(u.as_ref(), v.as_ref(), k).unwrap();
        assert!((got - direct).abs() < 1e-12 && got > 0.0 && got < 1.0, "{got} vs {direct}");
        let r = random_basis(k, 9);
        let rotated = u.as_ref().subcols(0, k) * r.as_ref();
        assert!((subspace_overlap(u.as_ref(), rotated.as_ref(), k).unwrap() - 1.0).abs() < 1e-12);
        // Random subspaces overlap k/d on average.
        let mean = (0..200)
            .map(|s| subspace_overlap(u.as_ref(), random_basis(d, 100 + s).as_ref(), k).unwrap())
            .sum::<f64>()
            / 200.0;
        assert!(
            (mean - k as f64 / d as f64).abs() < 0.03,
            "mean overlap {mean} vs k/d = {}",
            k as f64 / d as f64
        );
        assert!(subspace_overlap(u.as_ref(), v.as_ref(), 0).is_err());
        assert!(subspace_overlap(u.as_ref(), rest.as_ref(), 9).is_err());
    }

    #[test]
    fn rejects_bad_inputs() {
        let lin = WienerDenoiser::new(
            vec![0.0; 4],
            vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            vec![1.0; 4],
        )
        .unwrap();
        let y = Tensor::zeros((2, 1, 2, 2), DType::F64, &Device::Cpu).unwrap();
        assert!(jacobian(&lin, &y, 0.1, 4).is_err(), "a batch of images");
        let y = Tensor::zeros((1, 1, 2, 2), DType::F64, &Device::Cpu).unwrap();
        assert!(jacobian(&lin, &y, 0.1, 0).is_err());
        assert!(jacobian_of_image(&lin, &[0.0; 3], (1, 2, 2), 0.1, 4).is_err());
    }
}

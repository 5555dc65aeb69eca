//! Denoising error over noise levels, and its rate at small σ (Kadkhodaie, Guth, Simoncelli & Mallat
//! 2024, arXiv:2310.02557, who compare a trained denoiser's rate with the optimal one on C^α images).
//!
//! For clean held-out images x_1 … x_n (d pixels each, values in [0, 1]) and a noise level σ, each image
//! gets its own noise z_k ~ N(0, I), y_k = x_k + σ z_k, and the denoiser's estimate x̂_k = f(y_k, σ):
//!
//! - e_k = ‖x̂_k − x_k‖² / d (per-pixel squared error), MSE(σ) = (1/n) Σ_k e_k, with standard error
//!   SE = s / √n, s² = Σ_k (e_k − MSE)² / (n − 1);
//! - PSNR(σ) = 10 log₁₀(1 / MSE) dB (peak value 1);
//! - input MSE = (1/n) Σ_k ‖y_k − x_k‖² / d, the error of not denoising at all (≈ σ²).
//!
//! The rate is the slope of ln MSE against ln σ over a small-σ range ([`power_law_fit`], [`fit_range`]):
//! MSE ≈ C σ^slope. The optimal rate on C^α images (Korostelev & Tsybakov 1993) is
//! [`calpha_optimal_slope`] = 2α/(α + 1); doing nothing has slope 2.
//!
//! The noise of image k at the i-th noise level comes from a ChaCha8 stream keyed by (seed, k, i) alone
//! (its own domain tag, apart from sampling and training noise), so a curve does not depend on the
//! batch size or on the order of the work, and two denoisers given one seed see the same noisy images.

use crate::{Error, ImageDenoiser, Result};
use candle::{Device, Tensor};
use memgen_diffusion::noise::{keyed_rng, normals};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Domain tag of the denoising-curve noise streams.
const TAG_CURVE: u64 = 0x6d65_6d67_656e_0101;

/// The denoising error at one noise level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// σ of the added noise, y = x + σ z.
    pub sigma: f64,
    /// The noise level the denoiser assumed ([`ImageDenoiser::effective_sigma`]).
    pub effective_sigma: f64,
    /// MSE = (1/n) Σ_k ‖x̂_k − x_k‖² / d (per pixel).
    pub mse: f64,
    /// Standard error of `mse` over the images, s / √n (NaN for a single image; JSON null).
    #[serde(deserialize_with = "crate::nonfinite::null_as_nan")]
    pub mse_se: f64,
    /// 10 log₁₀(1 / MSE) in dB (+∞ for MSE 0, e.g. the oracle on its own images; JSON null).
    #[serde(deserialize_with = "crate::nonfinite::null_as_infinity")]
    pub psnr: f64,
    /// (1/n) Σ_k ‖y_k − x_k‖² / d as measured (σ² in expectation): the MSE of returning y.
    pub input_mse: f64,
}

/// The standard normals of the noise of image `k` at noise level number `level` (`len` values).
pub fn curve_noise(seed: u64, k: u64, level: u64, len: usize) -> Vec<f32> {
    normals(&mut keyed_rng([TAG_CURVE, seed, k, level]), len)
}

/// The denoising error of `den` on the clean `images` (n x d row-major, d = C·H·W of `dims`) at each
/// σ of `sigmas`, the images passed `batch` at a time as f32 tensors (B, C, H, W) on the CPU. The
/// noise of image k at `sigmas[i]` is [`curve_noise`]`(seed, k, i, d)`, so the result is the same for
/// every batch size (for a denoiser whose output on one image does not depend on the others).
pub fn denoise_curve(
    den: &dyn ImageDenoiser,
    images: &[f32],
    dims: [usize; 3],
    sigmas: &[f64],
    seed: u64,
    batch: usize,
) -> Result<Vec<CurvePoint>> {
    let d: usize = dims.iter().product();
    if d == 0 || images.is_empty() || images.len() % d != 0 {
        return Err(Error::Invalid(format!(
            "denoising curve: {} pixel values are not a whole number of {}x{}x{} images",
            images.len(),
            dims[0],
            dims[1],
            dims[2]
        )));
    }
    if batch == 0 {
        return Err(Error::Invalid("denoising curve: the batch size must be at least 1".into()));
    }
    if let Some(s) = sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(Error::Invalid(format!("denoising curve: noise level {s} is not a positive number")));
    }
    let n = images.len() / d;
    let mut points = Vec::with_capacity(sigmas.len());
    for (level, &sigma) in sigmas.iter().enumerate() {
        let s32 = sigma as f32;
        // Per-image errors, in image order whatever the batching.
        let mut errs = Vec::with_capacity(n);
        let mut input_err = 0.0f64;
        for first in (0..n).step_by(batch) {
            let b = batch.min(n - first);
            let clean = &images[first * d..(first + b) * d];
            let mut noisy = Vec::with_capacity(b * d);
            for (j, x) in clean.chunks_exact(d).enumerate() {
                let z = curve_noise(seed, (first + j) as u64, level as u64, d);
                noisy.extend(x.iter().zip(&z).map(|(&x, &z)| x + s32 * z));
            }
            for (x, y) in clean.chunks_exact(d).zip(noisy.chunks_exact(d)) {
                input_err += sq_dist(x, y) / d as f64;
            }
            let y = Tensor::from_vec(noisy, (b, dims[0], dims[1], dims[2]), &Device::Cpu)?;
            let out = den.denoise(&y, sigma)?;
            if out.elem_count() != b * d {
                return Err(Error::Invalid(format!(
                    "denoising curve: the denoiser returned {} values for {b} images of {d} pixels",
                    out.elem_count()
                )));
            }
            let est = out.to_dtype(candle::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            errs.extend(
                clean.chunks_exact(d).zip(est.chunks_exact(d)).map(|(x, e)| sq_dist(x, e) / d as f64),
            );
        }
        let mse = errs.iter().sum::<f64>() / n as f64;
        let mse_se = if n > 1 {
            (errs.iter().map(|e| (e - mse).powi(2)).sum::<f64>() / (n - 1) as f64 / n as f64).sqrt()
        } else {
            f64::NAN
        };
        points.push(CurvePoint {
            sigma,
            effective_sigma: den.effective_sigma(sigma),
            mse,
            mse_se,
            psnr: psnr(mse),
            input_mse: input_err / n as f64,
        });
    }
    Ok(points)
}

/// Σ_i (a_i − b_i)², accumulated in f64.
fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum()
}

/// PSNR = 10 log₁₀(1 / MSE) dB, for pixels in [0, 1].
pub fn psnr(mse: f64) -> f64 {
    -10.0 * mse.log10()
}

use memgen_metrics::stats::power_law_fit;
pub use memgen_metrics::stats::PowerFit;

/// [`power_law_fit`] of MSE against σ (the σ of the added noise, not the effective one) over the points
/// with `sigma_min` ≤ σ ≤ `sigma_max`: the small-σ rate, MSE ≈ e^a σ^b there.
pub fn fit_range(curve: &[CurvePoint], sigma_min: f64, sigma_max: f64) -> Option<PowerFit> {
    let pts: Vec<(f64, f64)> = curve
        .iter()
        .filter(|p| p.sigma >= sigma_min && p.sigma <= sigma_max)
        .map(|p| (p.sigma, p.mse))
        .collect();
    power_law_fit(pts)
}

/// The optimal denoising rate on C^α images (Korostelev & Tsybakov 1993; Kadkhodaie et al. 2024):
/// the minimax MSE at noise level σ scales as σ^{2α/(α+1)}, so the slope of ln MSE against ln σ is
/// 2α/(α + 1) (α = 4: 1.6; it tends to 2, the slope of doing nothing, as α → ∞).
pub fn calpha_optimal_slope(alpha: f64) -> f64 {
    2.0 * alpha / (alpha + 1.0)
}

/// One row of a network's curve: the point plus the DDPM timestep the network was run at (the one
/// whose σ_t is nearest to σ; `None` for a blind network).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurveRow {
    #[serde(flatten)]
    pub point: CurvePoint,
    pub timestep: Option<usize>,
}

/// The small-σ rate ([`fit_range`]) and the σ range it was fitted over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RangeFit {
    pub sigma_min: f64,
    pub sigma_max: f64,
    #[serde(flatten)]
    pub fit: PowerFit,
}

/// denoise-curve.json, the record of `memgen denoise-curve`: which network on which held-out images,
/// the curve, its fitted rate and, for C^alpha data, the optimal rate 2α/(α+1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiseCurveRecord {
    pub run: std::path::PathBuf,
    pub data: std::path::PathBuf,
    /// The dataset's content hash.
    pub content_hash: String,
    /// The EMA weights (else the raw ones).
    pub ema: bool,
    pub model: memgen_diffusion::ModelConfig,
    pub schedule: memgen_diffusion::ScheduleConfig,
    pub train_steps: usize,
    pub training_images: usize,
    /// Held-out images measured, and their dataset indices.
    pub count: usize,
    pub held_out_indices: Vec<usize>,
    /// Seed of the added noise.
    pub seed: u64,
    pub batch_size: usize,
    pub sigmas: Vec<f64>,
    pub points: Vec<CurveRow>,
    pub fit: Option<RangeFit>,
    /// α of the C^alpha data, and where it came from (`--alpha` or the dataset manifest).
    pub alpha: Option<f64>,
    pub alpha_source: Option<String>,
    /// [`calpha_optimal_slope`] of `alpha`.
    pub theoretical_slope: Option<f64>,
    pub threads: usize,
    pub seconds: f64,
}

/// The default σ grid of `memgen denoise-curve`: 10^(−2 + k/6), k = 0..12 (0.01 to 1).
pub fn default_sigmas() -> Vec<f64> {
    (0..13).map(|k| 10f64.powf(-2.0 + k as f64 / 6.0)).collect()
}

/// The checked σ grid: `given` ascending without repeats, or [`default_sigmas`] when empty; an
/// [`Error::Invalid`] naming `--sigmas` for a σ that is not a positive number.
pub fn sigma_grid(given: &[f64]) -> Result<Vec<f64>> {
    let mut s: Vec<f64> = if given.is_empty() { default_sigmas() } else { given.to_vec() };
    if let Some(bad) = s.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        return Err(Error::Invalid(format!("--sigmas: {bad} is not a positive noise level")));
    }
    s.sort_by(f64::total_cmp);
    s.dedup();
    Ok(s)
}

/// The first `count` of the dataset indices 0..`total` that are not in `train`.
pub fn held_out_indices(total: usize, train: &[usize], count: usize) -> Vec<usize> {
    let train: std::collections::HashSet<usize> = train.iter().copied().collect();
    (0..total).filter(|i| !train.contains(i)).take(count).collect()
}

/// How `memgen denoise-curve` measures: the noise levels and their noise, the batching, the fit
/// range and the regularity α of C^α data.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveConfig {
    /// Noise levels, ascending ([`sigma_grid`]).
    pub sigmas: Vec<f64>,
    /// Noise seed ([`curve_noise`]).
    pub seed: u64,
    /// Images per forward pass.
    pub batch_size: usize,
    /// The σ range of the slope fit ([`fit_range`]).
    pub fit_min: f64,
    pub fit_max: f64,
    /// α of C^α data, and where it came from (`--alpha`, the dataset manifest).
    pub alpha: Option<f64>,
    pub alpha_source: Option<String>,
    /// Worker threads, as recorded.
    pub threads: usize,
}

impl CurveConfig {
    /// What is wrong with the batching, the fit range or α, if anything (a NaN bound is wrong too).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.batch_size == 0 {
            return Err("--count and --batch-size must be at least 1".into());
        }
        if !(self.fit_min <= self.fit_max) {
            return Err(format!("--fit-min {} is above --fit-max {}", self.fit_min, self.fit_max));
        }
        if self.alpha.is_some_and(|al| !(al > 0.0 && al.is_finite())) {
            return Err("--alpha must be a positive number".into());
        }
        Ok(())
    }
}

/// The run and the held-out images a curve is measured on.
#[derive(Debug, Clone, Copy)]
pub struct CurveInputs<'a> {
    /// The run directory, its config, and how many images it was trained on.
    pub run: &'a std::path::Path,
    pub config: &'a memgen_diffusion::run::RunConfig,
    pub training_images: usize,
    /// Whether `den` has the EMA weights (else the raw ones).
    pub ema: bool,
    /// The prepared dataset and its content hash.
    pub data: &'a std::path::Path,
    pub content_hash: &'a str,
    /// The held-out images' dataset indices, and their pixels (n x C·H·W row-major, `dims`).
    pub held_out_indices: &'a [usize],
    pub images: &'a [f32],
    pub dims: [usize; 3],
}

/// The curve of the network `den` of `inputs.run` on the held-out images, its fit and, with α, the
/// optimal slope: denoise-curve.json's record.
pub fn network_curve(
    den: &crate::ModelDenoiser,
    inputs: &CurveInputs,
    cfg: &CurveConfig,
) -> Result<DenoiseCurveRecord> {
    let start = std::time::Instant::now();
    let curve = denoise_curve(den, inputs.images, inputs.dims, &cfg.sigmas, cfg.seed, cfg.batch_size)?;
    let seconds = start.elapsed().as_secs_f64();
    let fit = fit_range(&curve, cfg.fit_min, cfg.fit_max).map(|fit| RangeFit {
        sigma_min: cfg.fit_min,
        sigma_max: cfg.fit_max,
        fit,
    });
    let train = &inputs.config.train;
    Ok(DenoiseCurveRecord {
        run: inputs.run.to_path_buf(),
        data: inputs.data.to_path_buf(),
        content_hash: inputs.content_hash.to_string(),
        ema: inputs.ema,
        model: train.model.clone(),
        schedule: train.schedule,
        train_steps: train.steps,
        training_images: inputs.training_images,
        count: inputs.held_out_indices.len(),
        held_out_indices: inputs.held_out_indices.to_vec(),
        seed: cfg.seed,
        batch_size: cfg.batch_size,
        sigmas: cfg.sigmas.clone(),
        points: curve.iter().map(|&point| CurveRow { point, timestep: den.timestep(point.sigma) }).collect(),
        fit,
        alpha: cfg.alpha,
        alpha_source: cfg.alpha_source.clone(),
        theoretical_slope: cfg.alpha.map(calpha_optimal_slope),
        threads: cfg.threads,
        seconds,
    })
}

/// What `memgen denoise-curve` reports: the files written, the fit and the curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiseCurveResult {
    pub out: std::path::PathBuf,
    pub denoise_curve_json: std::path::PathBuf,
    pub denoise_curve_csv: std::path::PathBuf,
    pub fit: Option<RangeFit>,
    pub theoretical_slope: Option<f64>,
    pub points: Vec<CurveRow>,
}

/// How a line of the denoise-curve figure is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Measured points, joined.
    Measured,
    /// The fitted line.
    Fit,
    /// A reference: the optimal rate, or σ² (no denoising).
    Reference,
}

/// One line of the denoise-curve figure.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureLine {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub kind: LineKind,
}

impl DenoiseCurveRecord {
    /// denoise-curve.json and .csv in `out`, with the fit and the curve, as reported.
    pub fn result(&self, out: &std::path::Path) -> DenoiseCurveResult {
        DenoiseCurveResult {
            out: out.to_path_buf(),
            denoise_curve_json: out.join("denoise-curve.json"),
            denoise_curve_csv: out.join("denoise-curve.csv"),
            fit: self.fit,
            theoretical_slope: self.theoretical_slope,
            points: self.points.clone(),
        }
    }

    /// The printed table: per σ the error, its PSNR and MSE / σ²; then the fit and the optimal slope.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| σ | σ_eff | t | MSE | ± SE | PSNR (dB) | input MSE | MSE / σ² |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for r in &self.points {
            let p = &r.point;
            let t = r.timestep.map_or("-".into(), |t| t.to_string());
            let _ = writeln!(
                s,
                "| {:.4} | {:.4} | {t} | {:.4e} | {:.1e} | {:.2} | {:.4e} | {:.4} |",
                p.sigma,
                p.effective_sigma,
                p.mse,
                p.mse_se,
                p.psnr,
                p.input_mse,
                p.mse / (p.sigma * p.sigma)
            );
        }
        match &self.fit {
            Some(f) => {
                let _ = writeln!(
                    s,
                    "slope of ln MSE vs ln σ over σ in [{}, {}] ({} points): {:.4} (r² = {:.4})",
                    f.sigma_min, f.sigma_max, f.fit.points, f.fit.slope, f.fit.r2
                );
            }
            None => {
                let _ = writeln!(s, "slope: fewer than two usable points in the fit range");
            }
        }
        if let Some(al) = self.alpha {
            let _ = writeln!(
                s,
                "optimal slope for C^alpha images, 2α/(α+1) with α = {al}: {:.4}",
                calpha_optimal_slope(al)
            );
        }
        s
    }

    /// denoise-curve.csv: one line per σ.
    pub fn csv(&self) -> String {
        let mut s = String::from("sigma,effective_sigma,timestep,mse,mse_se,psnr,input_mse\n");
        for r in &self.points {
            let p = &r.point;
            let t = r.timestep.map_or(String::new(), |t| t.to_string());
            let _ = writeln!(
                s,
                "{},{},{t},{},{},{},{}",
                p.sigma, p.effective_sigma, p.mse, p.mse_se, p.psnr, p.input_mse
            );
        }
        s
    }

    /// The lines of the figure (MSE vs σ, log-log): the measured MSE, the fitted line over the fit
    /// range, the optimal slope through the first fitted point, and σ² (the error of not denoising);
    /// and the σ of the first and last fitted points, each with its label.
    pub fn figure(&self) -> (Vec<FigureLine>, Vec<(f64, String)>) {
        let curve: Vec<&CurvePoint> = self.points.iter().map(|r| &r.point).collect();
        let fit = self.fit.as_ref();
        let in_fit: Vec<&CurvePoint> = fit.map_or(vec![], |f| {
            curve.iter().copied().filter(|p| p.sigma >= f.sigma_min && p.sigma <= f.sigma_max).collect()
        });
        let line = |name: String, points: Vec<(f64, f64)>, kind| FigureLine { name, points, kind };
        let mut lines =
            vec![line("MSE".into(), curve.iter().map(|p| (p.sigma, p.mse)).collect(), LineKind::Measured)];
        if let Some(f) = fit {
            let fitted = match (in_fit.first(), in_fit.last()) {
                (Some(lo), Some(hi)) => {
                    vec![(lo.sigma, f.fit.predict(lo.sigma)), (hi.sigma, f.fit.predict(hi.sigma))]
                }
                _ => vec![],
            };
            lines.push(line(format!("fit: slope {:.3}", f.fit.slope), fitted, LineKind::Fit));
        }
        if let Some(al) = self.alpha {
            // The optimal-rate line through the first fitted point, over the whole σ range.
            let b = calpha_optimal_slope(al);
            let reference = match (in_fit.first(), curve.first(), curve.last()) {
                (Some(p0), Some(lo), Some(hi)) => {
                    [lo.sigma, hi.sigma].iter().map(|&s| (s, p0.mse * (s / p0.sigma).powf(b))).collect()
                }
                _ => vec![],
            };
            lines.push(line(
                format!("optimal slope 2a/(a+1) = {b:.3} (a = {al})"),
                reference,
                LineKind::Reference,
            ));
        }
        let identity = curve.iter().map(|p| (p.sigma, p.sigma * p.sigma)).collect();
        lines.push(line("sigma squared (no denoising)".into(), identity, LineKind::Reference));
        let vlines = match (in_fit.first(), in_fit.last()) {
            (Some(lo), Some(hi)) => {
                vec![(lo.sigma, format!("fit {:.3}", lo.sigma)), (hi.sigma, format!("fit {:.3}", hi.sigma))]
            }
            _ => vec![],
        };
        (lines, vlines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WienerDenoiser;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn the_calpha_optimal_slope() {
        assert!((calpha_optimal_slope(4.0) - 1.6).abs() < 1e-15);
        assert!((calpha_optimal_slope(1.0) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn fit_range_uses_the_small_sigma_points() {
        let curve: Vec<CurvePoint> = [0.01, 0.03, 0.1, 0.3, 1.0]
            .iter()
            .map(|&s: &f64| {
                let mse = if s <= 0.1 { 2.0 * s.powf(1.5) } else { 0.5 };
                CurvePoint {
                    sigma: s,
                    effective_sigma: s,
                    mse,
                    mse_se: 0.0,
                    psnr: psnr(mse),
                    input_mse: s * s,
                }
            })
            .collect();
        let fit = fit_range(&curve, 0.0, 0.1).unwrap();
        assert_eq!(fit.points, 3);
        assert!((fit.slope - 1.5).abs() < 1e-12);
        assert!(fit_range(&curve, 0.5, 0.6).is_none());
    }

    /// N(μ, U diag(λ) Uᵀ) in d = 16 dims, U a Householder reflection, and `n` samples from it (f32).
    fn gaussian(n: usize) -> (WienerDenoiser, Vec<f32>) {
        let d = 16;
        let v: Vec<f64> = (0..d).map(|i| 1.0 + i as f64 * 0.37 - (i % 3) as f64).collect();
        let vv: f64 = v.iter().map(|x| x * x).sum();
        let basis: Vec<f64> =
            (0..d * d).map(|k| (k / d == k % d) as u8 as f64 - 2.0 * v[k / d] * v[k % d] / vv).collect();
        let eigenvalues: Vec<f64> = (0..d).map(|i| 0.05 / (i + 1) as f64).collect();
        let mean: Vec<f64> = (0..d).map(|i| 0.3 + 0.02 * i as f64).collect();
        let lin = WienerDenoiser::new(mean, basis, eigenvalues).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut images = Vec::with_capacity(n * d);
        for _ in 0..n {
            let g: Vec<f64> = (0..d)
                .map(|i| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    lin.eigenvalues[i].sqrt() * z
                })
                .collect();
            images
                .extend((0..d).map(|r| {
                    (lin.mean[r] + (0..d).map(|i| lin.basis[r * d + i] * g[i]).sum::<f64>()) as f32
                }));
        }
        (lin, images)
    }

    #[test]
    fn optimal_linear_denoiser_meets_its_closed_form() {
        let (lin, images) = gaussian(4000);
        let sigmas = [0.01, 0.05, 0.2, 1.0];
        let curve = denoise_curve(&lin, &images, [1, 4, 4], &sigmas, 5, 64).unwrap();
        assert_eq!(curve.len(), sigmas.len());
        for (p, &s) in curve.iter().zip(&sigmas) {
            // MSE*(σ) per pixel = Σ_i σ²λ_i/(λ_i + σ²) / d.
            let want = lin.mse_on(&lin.eigenvalues, s) / 16.0;
            assert!((p.mse - want).abs() < 4.0 * p.mse_se, "σ = {s}: {} ± {} vs {want}", p.mse, p.mse_se);
            assert!(p.mse_se > 0.0 && p.mse_se < 0.05 * p.mse, "σ = {s}: SE {}", p.mse_se);
            // 64,000 squared normals: relative SE √(2/64000) ≈ 0.56%.
            assert!((p.input_mse / (s * s) - 1.0).abs() < 0.03, "σ = {s}: input MSE {}", p.input_mse);
            assert!((p.psnr - psnr(p.mse)).abs() < 1e-12 && p.effective_sigma == s);
        }
        // The same noise whatever the batch size: the measured input MSE is bitwise equal. The GEMM of
        // the linear denoiser is not bitwise independent of the number of rows it is given (its
        // kernels depend on it), so its MSE agrees to rounding; an elementwise denoiser below is
        // bitwise equal.
        let other = denoise_curve(&lin, &images, [1, 4, 4], &sigmas, 5, 7).unwrap();
        for (a, b) in curve.iter().zip(&other) {
            assert_eq!(a.input_mse.to_bits(), b.input_mse.to_bits(), "σ = {}", a.sigma);
            assert!((a.mse / b.mse - 1.0).abs() < 1e-6, "σ = {}: {} vs {}", a.sigma, a.mse, b.mse);
        }
        // Another seed draws other noise.
        let seed6 = denoise_curve(&lin, &images, [1, 4, 4], &sigmas[..1], 6, 64).unwrap();
        assert_ne!(seed6[0].input_mse, curve[0].input_mse);
    }

    /// x̂ = μ + g (y − μ) pixel by pixel, with g = λ / (λ + σ²): no GEMM, so each output pixel depends
    /// only on its input pixel.
    struct Shrink {
        mean: f64,
        variance: f64,
    }

    impl ImageDenoiser for Shrink {
        fn denoise(&self, y: &Tensor, sigma: f64) -> Result<Tensor> {
            let g = self.variance / (self.variance + sigma * sigma);
            Ok(y.affine(g, (1.0 - g) * self.mean)?)
        }

        fn effective_sigma(&self, sigma: f64) -> f64 {
            sigma * 2.0
        }
    }

    #[test]
    fn curve_is_bitwise_independent_of_the_batch_size() {
        let (_, images) = gaussian(1000);
        let den = Shrink { mean: 0.4, variance: 0.01 };
        let sigmas = [0.02, 0.1, 0.5];
        let a = denoise_curve(&den, &images, [1, 4, 4], &sigmas, 9, 64).unwrap();
        for batch in [1, 7, 1000, 5000] {
            let b = denoise_curve(&den, &images, [1, 4, 4], &sigmas, 9, batch).unwrap();
            for (p, q) in a.iter().zip(&b) {
                assert_eq!(p.mse.to_bits(), q.mse.to_bits(), "batch {batch}, σ = {}", p.sigma);
                assert_eq!(p.mse_se.to_bits(), q.mse_se.to_bits());
                assert_eq!(p.input_mse.to_bits(), q.input_mse.to_bits());
            }
        }
        assert_eq!(a[1].effective_sigma, 0.2);
        // Image k's noise at level i is curve_noise(seed, k, i, d): recompute the input MSE of level 2.
        let d = 16;
        let input: f64 = images
            .chunks_exact(d)
            .enumerate()
            .map(|(k, x)| {
                let z = curve_noise(9, k as u64, 2, d);
                x.iter().zip(&z).map(|(&x, &z)| ((x + 0.5f32 * z) as f64 - x as f64).powi(2)).sum::<f64>()
                    / d as f64
            })
            .sum::<f64>()
            / 1000.0;
        assert_eq!(input.to_bits(), a[2].input_mse.to_bits());
    }

    #[test]
    fn bad_inputs_are_refused() {
        let (lin, images) = gaussian(3);
        assert!(denoise_curve(&lin, &images[..20], [1, 4, 4], &[0.1], 0, 4).is_err());
        assert!(denoise_curve(&lin, &images, [1, 4, 4], &[0.0], 0, 4).is_err());
        assert!(denoise_curve(&lin, &images, [1, 4, 4], &[0.1], 0, 0).is_err());
        let one = denoise_curve(&lin, &images[..16], [1, 4, 4], &[0.1], 0, 4).unwrap();
        assert!(one[0].mse > 0.0 && one[0].mse_se.is_nan());
    }
}

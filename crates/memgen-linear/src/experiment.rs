//! The full linear analysis of one training set: what `memgen linear` reports per N; and the
//! experiment over several N ([`LinearExperiment`]), its record `linear.json` ([`LinearRecord`]) and
//! the files written from it.
//!
//! For a training set of N points with moments (μ0, Σ0 = U diag(s) Uᵀ) and a population (μ, Σ):
//! - the training and test losses of the linear denoiser, summed over the schedule's T steps
//!   ([`crate::loss`]);
//! - the exact distribution ρ_N = N(m_N, U diag(v) Uᵀ) the sampler produces with it
//!   ([`crate::sampling::sampling_distribution`]), its effective c (v_i − s_i), and KL(ρ_N ‖ ρ);
//! - the same KL from samples actually drawn by the sampler (a Gaussian fit: a check of the above);
//! - for N > d, the expected KL of a plain Gaussian fit, −½[Σ_i ψ((N−1−i)/2) + d ln 2 − d ln N], and
//!   its asymptote d(d+3)/(4N) ([`crate::wishart`]).

use crate::kl::{kl_from_samples, Gaussian};
use crate::loss::LinearLoss;
use crate::problem::{DataConfig, Problem};
use crate::sampling::{sampling_distribution, EffectiveC, LinearDenoiser};
use crate::spectral::{Moments, Spectrum};
use crate::theory::Regularization;
use crate::wishart::{expected_fit_kl, expected_fit_kl_asymptote};
use crate::{Error, Result};
use faer::Mat;
use memgen_diffusion::sampler::{SampleRequest, Sampler, SamplerConfig};
use memgen_diffusion::{DdpmSchedule, NoiseSource, Prediction, ScheduleConfig};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the population (μ, Σ) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruthKind {
    /// The exact parameters of a Gaussian source.
    Exact,
    /// Moments estimated from held-out images (not the true distribution of images: a Gaussian with the
    /// same first two moments).
    Estimated { held_out: usize },
}

/// The population: mean, covariance, and its factorisation when the covariance is positive definite.
#[derive(Debug, Clone)]
pub struct Truth {
    pub mean: Vec<f64>,
    pub cov: Mat<f64>,
    pub kind: TruthKind,
    /// N(μ, Σ) factored; `None` when Σ is singular (then no KL is defined).
    pub gaussian: Option<Gaussian>,
    /// Why `gaussian` is `None`.
    pub singular: Option<String>,
}

impl Truth {
    /// A population with the given moments.
    pub fn new(mean: Vec<f64>, cov: Mat<f64>, kind: TruthKind) -> Truth {
        let (gaussian, singular) = match Gaussian::new(&mean, &cov, "Σ (the population)") {
            Ok(g) => (Some(g), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Truth { mean, cov, kind, gaussian, singular }
    }

    /// Moments of held-out rows (N x d f32) as the population.
    pub fn estimated(rows: &[f32], d: usize) -> Result<Truth> {
        let m = Moments::from_rows(rows, d)?;
        Ok(Truth::new(m.mean, m.cov, TruthKind::Estimated { held_out: m.count }))
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

/// What to compute besides the closed forms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalysisConfig {
    pub reg: Regularization,
    /// Samples drawn with the project's sampler for the "KL from samples" check (0: skip; needs > d).
    pub check_samples: usize,
    pub noise_seed: u64,
    /// Batch of the check sampling.
    pub batch_size: usize,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig { reg: Regularization::default(), check_samples: 0, noise_seed: 0, batch_size: 256 }
    }
}

/// Seconds spent in each stage of [`analyse`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub moments_s: f64,
    pub eigen_s: f64,
    pub losses_s: f64,
    pub kl_s: f64,
    pub samples_s: f64,
    pub total_s: f64,
}

/// The results for one training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NResult {
    pub n: usize,
    pub d: usize,
    /// Numerical rank of Σ0 (eigenvalues above 1e-10 of the largest).
    pub rank: usize,
    /// Σ_t E‖ε − ε̂‖² on the training set and on the population.
    pub train_loss: f64,
    pub test_loss: f64,
    /// c_i = v_i − s_i: over all directions, over the range of Σ0 and over its null space.
    pub c: EffectiveC,
    pub c_range: Option<EffectiveC>,
    pub c_null: Option<EffectiveC>,
    /// KL(ρ_N ‖ ρ) from the composed maps: infinite when ρ_N is degenerate (written as null in
    /// JSON, so it reads back as `None`: `degenerate_directions` tells the two apart), `None` when Σ
    /// is singular.
    pub kl: Option<f64>,
    /// Directions of zero variance in ρ_N ([`degenerate_directions`]).
    pub degenerate_directions: usize,
    /// KL of a Gaussian fitted to `check_samples` generated samples (`None` when not drawn, or when
    /// their covariance is not positive definite: directions too thin for f32 samples).
    pub kl_samples: Option<f64>,
    pub check_samples: usize,
    /// N > d: E[KL] of a plain Gaussian fit, and d(d+3)/(4N).
    pub expected_fit_kl: Option<f64>,
    pub fit_kl_asymptote: Option<f64>,
    pub timing: Timing,
}

/// The factored training set: everything about it that does not depend on the regularisation.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub moments: Moments,
    pub spectrum: Spectrum,
    pub train: LinearLoss,
    pub test: LinearLoss,
    pub timing: Timing,
}

impl Fitted {
    /// Moments, eigendecomposition and the loss diagonals of `rows` (N x d) against `truth`.
    pub fn new(rows: &[f32], truth: &Truth) -> Result<Fitted> {
        let t0 = Instant::now();
        let moments = Moments::from_rows(rows, truth.dim())?;
        let mut fitted = Fitted::from_moments(moments, truth)?;
        fitted.timing.moments_s = t0.elapsed().as_secs_f64() - fitted.timing.eigen_s - fitted.timing.losses_s;
        Ok(fitted)
    }

    /// The same from given moments (e.g. the population's own: the N → ∞ limit).
    pub fn from_moments(moments: Moments, truth: &Truth) -> Result<Fitted> {
        if moments.dim() != truth.dim() {
            return Err(Error::Invalid(format!(
                "moments of dimension {} against a population of {}",
                moments.dim(),
                truth.dim()
            )));
        }
        let t0 = Instant::now();
        let spectrum = Spectrum::of(&moments.cov)?;
        let eigen_s = t0.elapsed().as_secs_f64();
        let train = LinearLoss::train(&spectrum);
        let test = LinearLoss::test(&spectrum, &moments.mean, &truth.mean, &truth.cov)?;
        let losses_s = t0.elapsed().as_secs_f64() - eigen_s;
        Ok(Fitted {
            moments,
            spectrum,
            train,
            test,
            timing: Timing { eigen_s, losses_s, ..Default::default() },
        })
    }

    /// KL(ρ_N ‖ ρ) of the sampler's exact output distribution under `reg`, and its c.
    pub fn kl(
        &self,
        truth: &Truth,
        schedule: &DdpmSchedule,
        sampler: &dyn Sampler,
        reg: Regularization,
    ) -> Result<(Option<f64>, crate::sampling::SamplingDistribution)> {
        let dist = sampling_distribution(&self.spectrum, &self.moments.mean, schedule, sampler, reg)?;
        let kl = match &truth.gaussian {
            _ if degenerate_directions(&dist) > 0 => Some(f64::INFINITY),
            Some(g) => Some(g.kl_from_eigen(&dist.mean, &self.spectrum.vectors, &dist.variances)?),
            None => None,
        };
        Ok((kl, dist))
    }
}

/// Directions in which ρ_N has no variance left (v_i ≤ 1e-300): the unregularised denoiser maps the
/// null space of Σ0 exactly onto μ0 at the last step (t = 0, no noise added), so for N ≤ d the samples
/// lie on the training set's affine span and KL(ρ_N ‖ ρ) is infinite.
pub fn degenerate_directions(dist: &crate::sampling::SamplingDistribution) -> usize {
    dist.variances.iter().filter(|&&v| v <= 1e-300).count()
}

/// Directions whose variance in ρ_N is below 1e-10 of the largest (a standard deviation below 1e-5 of
/// the largest): f32 samples cannot resolve them (their fitted variance is rounding noise, ~1e-14), so
/// the KL from samples is not computed when there are any. This is the unregularised denoiser for
/// N ≤ d: the null space of Σ0 keeps a variance c ~ 1e-30 under DDPM (0 under DDIM).
pub fn below_f32_resolution(dist: &crate::sampling::SamplingDistribution) -> usize {
    let top = dist.variances.iter().copied().fold(0.0, f64::max);
    dist.variances.iter().filter(|&&v| v < 1e-10 * top).count()
}

/// The full analysis of one training set `rows` (N x d f32) against `truth`.
pub fn analyse(
    rows: &[f32],
    truth: &Truth,
    schedule: &DdpmSchedule,
    sampler: &dyn Sampler,
    cfg: &AnalysisConfig,
) -> Result<NResult> {
    let start = Instant::now();
    let fitted = Fitted::new(rows, truth)?;
    let mut r = analyse_fitted(&fitted, truth, schedule, sampler, cfg)?;
    r.timing.total_s = start.elapsed().as_secs_f64();
    Ok(r)
}

/// [`analyse`] of an already factored training set (its moments and eigendecomposition reused, e.g.
/// by the regularisation sweeps); `timing.total_s` counts the fitting recorded in `fitted.timing`.
pub fn analyse_fitted(
    fitted: &Fitted,
    truth: &Truth,
    schedule: &DdpmSchedule,
    sampler: &dyn Sampler,
    cfg: &AnalysisConfig,
) -> Result<NResult> {
    let start = Instant::now();
    let d = truth.dim();
    let n = fitted.moments.count;
    let abars = &schedule.alphas_cumprod;
    let mut timing = fitted.timing.clone();
    let t_kl = Instant::now();
    let (kl, dist) = fitted.kl(truth, schedule, sampler, cfg.reg)?;
    timing.kl_s = t_kl.elapsed().as_secs_f64();
    let t_s = Instant::now();
    let degenerate = degenerate_directions(&dist);
    let resolvable = below_f32_resolution(&dist) == 0;
    let kl_samples = if cfg.check_samples > d && truth.gaussian.is_some() && resolvable {
        let x = draw(fitted, schedule, sampler, cfg)?;
        // A sample covariance that rounding leaves indefinite has no Gaussian fit: not measured.
        match kl_from_samples(&x, d, &truth.mean, &truth.cov) {
            Ok(kl) => Some(kl),
            Err(Error::Invalid(msg)) if msg.contains("S1") => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    timing.samples_s = t_s.elapsed().as_secs_f64();
    timing.total_s = fitted.timing.moments_s
        + fitted.timing.eigen_s
        + fitted.timing.losses_s
        + start.elapsed().as_secs_f64();
    let tol = 1e-10 * fitted.spectrum.values.iter().copied().fold(0.0, f64::max);
    Ok(NResult {
        n,
        d,
        rank: fitted.spectrum.rank(1e-10),
        train_loss: fitted.train.total(abars, cfg.reg),
        test_loss: fitted.test.total(abars, cfg.reg),
        c: dist.effective_c(),
        c_range: dist.effective_c_where(|s| s > tol),
        c_null: dist.effective_c_where(|s| s <= tol),
        kl,
        degenerate_directions: degenerate,
        kl_samples,
        check_samples: if kl_samples.is_some() { cfg.check_samples } else { 0 },
        expected_fit_kl: (n > d + 1).then(|| expected_fit_kl(d, n)).transpose()?,
        fit_kl_asymptote: (n > d).then(|| expected_fit_kl_asymptote(d, n)),
        timing,
    })
}

/// `cfg.check_samples` samples of the linear denoiser drawn by `sampler` with the project's noise
/// (x_T and every z from `cfg.noise_seed`), as f64 rows.
pub fn draw(
    fitted: &Fitted,
    schedule: &DdpmSchedule,
    sampler: &dyn Sampler,
    cfg: &AnalysisConfig,
) -> Result<Vec<f64>> {
    let dev = candle::Device::Cpu;
    let model = LinearDenoiser::new(&fitted.spectrum, &fitted.moments.mean, schedule, cfg.reg, &dev)?;
    let noise = NoiseSource::new(cfg.noise_seed);
    let d = fitted.moments.dim();
    let x = SampleRequest {
        model: &model,
        prediction: Prediction::Epsilon,
        schedule,
        sampler,
        noise: &noise,
        dims: &[d],
        device: &dev,
    }
    .sample_batched(cfg.check_samples, cfg.batch_size.max(1), None)?;
    let v: Vec<f32> = x.flatten_all()?.to_vec1()?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::Invalid("the linear sampler produced non-finite values".into()));
    }
    Ok(v.into_iter().map(f64::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn analysis_of_gaussian_data_is_consistent() {
        // d = 6, Σ diagonal with a power-law spectrum, μ = 0.5.
        let d = 6;
        let lam: Vec<f64> = (1..=d).map(|k| 0.5 / k as f64).collect();
        let cov = Mat::from_fn(d, d, |i, j| if i == j { lam[i] } else { 0.0 });
        let truth = Truth::new(vec![0.5; d], cov, TruthKind::Exact);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draw_rows = |n: usize, rng: &mut ChaCha8Rng| -> Vec<f32> {
            (0..n * d)
                .map(|i| {
                    (0.5 + lam[i % d].sqrt() * {
                        let z: f64 = StandardNormal.sample(rng);
                        z
                    }) as f32
                })
                .collect()
        };
        let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
        let sampler = SamplerConfig::Ddim { steps: 50, eta: 0.0 }.build(&schedule).unwrap();
        let acfg = AnalysisConfig { check_samples: 20_000, ..Default::default() };
        let big = analyse(&draw_rows(4000, &mut rng), &truth, &schedule, sampler.as_ref(), &acfg).unwrap();
        let small = analyse(&draw_rows(3, &mut rng), &truth, &schedule, sampler.as_ref(), &acfg).unwrap();
        // N < d: rank N − 1, a null space with its own c, a large KL; N ≫ d: small KL, full rank.
        assert_eq!((small.rank, big.rank), (2, d));
        assert!(small.c_null.is_some() && big.c_null.is_none());
        // Unregularised, N < d: the null space of Σ0 collapses onto μ0 (KL infinite); weight decay
        // keeps variance there and the KL finite.
        assert_eq!((small.degenerate_directions, small.kl), (d - 2, Some(f64::INFINITY)));
        let reg = AnalysisConfig { reg: Regularization { weight_decay: 0.1, train_time: None }, ..acfg };
        let small_rows = draw_rows(3, &mut rng);
        let small_wd = analyse(&small_rows, &truth, &schedule, sampler.as_ref(), &reg).unwrap();
        let (kl_small, kl_big) = (small_wd.kl.unwrap(), big.kl.unwrap());
        assert!(kl_small.is_finite() && kl_small > 10.0 * kl_big, "{kl_small} vs {kl_big}");
        // Memorization: the small set fits its training data better than the population.
        assert!(small.train_loss < small.test_loss);
        assert!((big.train_loss - big.test_loss).abs() < 0.05 * big.test_loss);
        // KL from 20,000 generated samples matches the composed maps (fit bias ≈ d(d+3)/4K ≈ 7e-4).
        let ks = big.kl_samples.unwrap();
        assert!((ks - kl_big).abs() < 0.01 + 0.1 * kl_big, "{ks} vs {kl_big}");
        assert!(big.expected_fit_kl.is_some() && small.expected_fit_kl.is_none());
    }
}

/// The KL of the N → ∞ limit (the population's own moments as the training set): what the sampler's
/// discretisation alone costs; `None` when Σ is singular.
pub fn limit_kl(
    truth: &Truth,
    schedule: &DdpmSchedule,
    sampler: &dyn Sampler,
    reg: Regularization,
) -> Result<Option<f64>> {
    if truth.gaussian.is_none() {
        return Ok(None);
    }
    let moments = Moments { mean: truth.mean.clone(), cov: truth.cov.clone(), count: usize::MAX };
    let fitted = Fitted::from_moments(moments, truth)?;
    Ok(fitted.kl(truth, schedule, sampler, reg)?.0)
}

/// Per N < d: KL and test loss along the weight-decay and training-time sweeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub n: usize,
    /// (λ, test loss, KL).
    pub weight_decay: Vec<(f64, f64, Option<f64>)>,
    /// (τ, test loss, KL).
    pub train_time: Vec<(f64, f64, Option<f64>)>,
}

/// Test loss and KL along `points` log-spaced λ ∈ [1e-4, 10] and τ ∈ [1, 1e6], for one training set.
pub fn sweep(
    fitted: &Fitted,
    truth: &Truth,
    schedule: &DdpmSchedule,
    sampler: &dyn Sampler,
    n: usize,
    points: usize,
) -> Result<Sweep> {
    let grid = |lo: f64, hi: f64| -> Vec<f64> {
        (0..points).map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / (points.max(2) - 1) as f64)).collect()
    };
    let eval = |reg: Regularization| -> Result<(f64, Option<f64>)> {
        let kl = fitted.kl(truth, schedule, sampler, reg)?.0;
        Ok((fitted.test.total(&schedule.alphas_cumprod, reg), kl))
    };
    let mut weight_decay = Vec::new();
    for l in grid(-4.0, 1.0) {
        let (test, kl) = eval(Regularization { weight_decay: l, train_time: None })?;
        weight_decay.push((l, test, kl));
    }
    let mut train_time = Vec::new();
    for tau in grid(0.0, 6.0) {
        let (test, kl) = eval(Regularization { weight_decay: 0.0, train_time: Some(tau) })?;
        train_time.push((tau, test, kl));
    }
    Ok(Sweep { n, weight_decay, train_time })
}

/// The power law KL − KL_∞ ≈ C N^slope over N > d, beside d(d+3)/4, the C of a plain Gaussian fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExcessFit {
    pub slope: f64,
    pub constant: f64,
    #[serde(rename = "d(d+3)/4")]
    pub gaussian_fit_constant: f64,
}

/// [`ExcessFit`] of `results` against `limit` ([`limit_kl`]), by the one power-law fit; `None`
/// without a limit or with fewer than two N > d of positive excess.
pub fn excess_fit(results: &[NResult], limit: Option<f64>, d: usize) -> Option<ExcessFit> {
    let limit = limit?;
    let excess = results.iter().filter(|r| r.n > r.d).filter_map(|r| r.kl.map(|kl| (r.n as f64, kl - limit)));
    let fit = memgen_metrics::stats::power_law_fit(excess)?;
    Some(ExcessFit {
        slope: fit.slope,
        constant: fit.constant,
        gaussian_fit_constant: (d * (d + 3)) as f64 / 4.0,
    })
}

/// `linear.json`, the record of `memgen linear`: the problem, the sampler, and the results per N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearRecord {
    /// The `--data` argument (a dataset directory or a `gaussian[:SPECTRUM]` spec).
    pub data: String,
    pub description: String,
    /// Pixels per image.
    pub d: usize,
    pub truth: TruthKind,
    /// Why the population's covariance is singular (then no KL is defined).
    pub truth_singular: Option<String>,
    pub schedule: memgen_diffusion::ScheduleConfig,
    pub sampler: memgen_diffusion::sampler::SamplerConfig,
    pub regularization: Regularization,
    pub threads: usize,
    /// [`limit_kl`].
    pub kl_limit: Option<f64>,
    pub kl_excess_fit: Option<ExcessFit>,
    pub results: Vec<NResult>,
    pub sweeps: Vec<Sweep>,
}

/// Everything `memgen linear` computes from: the data, the training-set sizes, the regularisation,
/// the sampler, and the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearConfig {
    pub data: DataConfig,
    /// Training-set sizes (sorted and de-duplicated by [`LinearExperiment::new`]; all positive).
    pub ns: Vec<usize>,
    pub reg: Regularization,
    pub sampler: SamplerConfig,
    /// Samples drawn for the "KL from samples" check (0 skips it; needs more than d).
    pub check_samples: usize,
    /// Noise seed of the check samples.
    pub noise_seed: u64,
    /// Points of the weight-decay and training-time sweeps for each N < d (0 skips them).
    pub sweep_points: usize,
    /// Worker threads, as recorded.
    pub threads: usize,
}

impl LinearConfig {
    /// What is wrong with the training-set sizes or the regularisation, if anything.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.ns.is_empty() || self.ns.contains(&0) {
            return Err("--n needs positive training-set sizes".into());
        }
        let valid_time = self.reg.train_time.is_none_or(|t| t > 0.0 && t.is_finite());
        if !(self.reg.weight_decay.is_finite() && self.reg.weight_decay >= 0.0 && valid_time) {
            return Err("--weight-decay must be >= 0 and --train-time > 0".into());
        }
        Ok(())
    }
}

impl Default for LinearConfig {
    fn default() -> Self {
        LinearConfig {
            data: DataConfig::default(),
            ns: vec![],
            reg: Regularization::default(),
            sampler: SamplerConfig::default(),
            check_samples: 2000,
            noise_seed: 0,
            sweep_points: 13,
            threads: 1,
        }
    }
}

/// A linear experiment with its data loaded ([`LinearExperiment::new`]), ready to [`run`](Self::run).
#[derive(Debug, Clone)]
pub struct LinearExperiment {
    pub cfg: LinearConfig,
    pub problem: Problem,
}

impl LinearExperiment {
    /// Check `cfg` and load the training sets up to the largest N and the population.
    pub fn new(mut cfg: LinearConfig) -> Result<Self> {
        cfg.ns.sort_unstable();
        cfg.ns.dedup();
        cfg.check().map_err(Error::Invalid)?;
        let n_max = *cfg.ns.last().expect("non-empty");
        let problem = Problem::load(&cfg.data, n_max)?;
        Ok(LinearExperiment { cfg, problem })
    }

    /// The analysis of every training set ([`analyse_fitted`]), the sweeps of those with N < d, the
    /// N → ∞ limit and the fitted excess, as `linear.json`'s record; a progress bar on stderr.
    pub fn run(&self) -> Result<LinearRecord> {
        let (cfg, p) = (&self.cfg, &self.problem);
        let schedule = DdpmSchedule::new(&ScheduleConfig::default())?;
        let sampler = cfg.sampler.build(&schedule)?;
        let acfg = AnalysisConfig {
            reg: cfg.reg,
            check_samples: cfg.check_samples,
            noise_seed: cfg.noise_seed,
            batch_size: 256,
        };
        let limit = limit_kl(&p.truth, &schedule, sampler.as_ref(), cfg.reg)?;
        let bar = memgen_io::progress::bar(cfg.ns.len() as u64, "linear", "", false);
        let (mut results, mut sweeps) = (Vec::new(), Vec::new());
        for &n in &cfg.ns {
            bar.set_message(format!("N = {n}"));
            let at_n = |e: Error| e.context(format!("N = {n}"));
            let fitted = Fitted::new(p.rows(n), &p.truth).map_err(at_n)?;
            results
                .push(analyse_fitted(&fitted, &p.truth, &schedule, sampler.as_ref(), &acfg).map_err(at_n)?);
            if n < p.d && cfg.sweep_points > 0 {
                sweeps.push(sweep(&fitted, &p.truth, &schedule, sampler.as_ref(), n, cfg.sweep_points)?);
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(LinearRecord {
            data: cfg.data.data.clone(),
            description: p.description.clone(),
            d: p.d,
            truth: p.truth.kind,
            truth_singular: p.truth.singular.clone(),
            schedule: ScheduleConfig::default(),
            sampler: cfg.sampler,
            regularization: cfg.reg,
            threads: cfg.threads,
            kl_limit: limit,
            kl_excess_fit: excess_fit(&results, limit, p.d),
            results,
            sweeps,
        })
    }
}

/// What `memgen linear` reports: the files written, the limit and the fitted excess, and the
/// results per N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearResult {
    pub out: PathBuf,
    pub linear_json: PathBuf,
    pub linear_csv: PathBuf,
    pub d: usize,
    pub kl_limit: Option<f64>,
    pub kl_excess_fit: Option<PowerLaw>,
    pub results: Vec<NResult>,
}

/// KL − KL∞ ≈ constant · N^slope.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLaw {
    pub slope: f64,
    pub constant: f64,
}

impl LinearRecord {
    /// Write OUT/linear.json, OUT/linear.csv and the figures ([`crate::figures::write_figures`]);
    /// the files as [`LinearResult`].
    pub fn write(&self, out: &Path) -> Result<LinearResult> {
        std::fs::create_dir_all(out).map_err(|e| {
            Error::from(memgen_io::FileError::io(out, e)).context(format!("creating {}", out.display()))
        })?;
        let (linear_json, linear_csv) = (out.join("linear.json"), out.join("linear.csv"));
        memgen_io::write_json(&linear_json, self)?;
        memgen_io::write_atomic(&linear_csv, self.csv().as_bytes())?;
        crate::figures::write_figures(out, &self.results, &self.sweeps, self.kl_limit, self.d)?;
        Ok(LinearResult {
            out: out.to_path_buf(),
            linear_json,
            linear_csv,
            d: self.d,
            kl_limit: self.kl_limit,
            kl_excess_fit: self.kl_excess_fit.map(|f| PowerLaw { slope: f.slope, constant: f.constant }),
            results: self.results.clone(),
        })
    }

    /// The printed table: per N the rank, losses, c, the KLs and the d/N law; then the fitted excess.
    pub fn table(&self) -> String {
        let (d, limit) = (self.d, self.kl_limit);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}\nd = {}; KL of the N → ∞ limit (sampler discretisation): {}",
            self.description,
            d,
            fmt_opt(limit)
        );
        let _ = writeln!(s, "| N | rank Σ0 | train loss | test loss | c range(Σ0) | c null(Σ0) | KL | KL − KL∞ | KL samples | E[fit KL] | d(d+3)/4N |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
        for r in &self.results {
            let excess = r.kl.zip(limit).map(|(k, l)| k - l);
            let _ = writeln!(
                s,
                "| {} | {} | {:.4e} | {:.4e} | {} | {} | {} | {} | {} | {} | {} |",
                r.n,
                r.rank,
                r.train_loss,
                r.test_loss,
                fmt_opt(r.c_range.map(|c| c.mean)),
                fmt_opt(r.c_null.map(|c| c.mean)),
                fmt_opt(r.kl),
                fmt_opt(excess),
                fmt_opt(r.kl_samples),
                fmt_opt(r.expected_fit_kl),
                fmt_opt(r.fit_kl_asymptote)
            );
        }
        if let Some(ExcessFit { slope, constant: c, .. }) = self.kl_excess_fit {
            let _ =
                writeln!(s, "KL − KL∞ ≈ {c:.4} · N^{slope:.3} over N > d (d(d+3)/4 = {})", d * (d + 3) / 4);
        }
        s
    }

    /// linear.csv: one line per N.
    pub fn csv(&self) -> String {
        let mut s = String::from("n,d,rank,train_loss,test_loss,c_mean,c_min,c_max,kl,kl_excess,kl_samples,expected_fit_kl,fit_kl_asymptote,seconds\n");
        let o = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
        for r in &self.results {
            let excess = r.kl.zip(self.kl_limit).map(|(k, l)| k - l);
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.n,
                r.d,
                r.rank,
                r.train_loss,
                r.test_loss,
                r.c.mean,
                r.c.min,
                r.c.max,
                o(r.kl),
                o(excess),
                o(r.kl_samples),
                o(r.expected_fit_kl),
                o(r.fit_kl_asymptote),
                r.timing.total_s
            );
        }
        s
    }
}

/// A table cell: `{:.4e}`, `inf`, or `-` for none.
pub fn fmt_opt(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_infinite() => "inf".into(),
        Some(x) => format!("{x:.4e}"),
        None => "-".into(),
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;

    #[test]
    fn a_linear_record_reads_back_equal_and_keeps_its_json_keys() {
        let c = EffectiveC { mean: 0.1, min: 0.0, max: 0.2 };
        let result = NResult {
            n: 10,
            d: 4,
            rank: 4,
            train_loss: 1.5,
            test_loss: 2.25,
            c,
            c_range: Some(c),
            c_null: None,
            kl: Some(0.3),
            degenerate_directions: 0,
            kl_samples: None,
            check_samples: 0,
            expected_fit_kl: Some(0.7),
            fit_kl_asymptote: Some(0.7),
            timing: Timing::default(),
        };
        let record = LinearRecord {
            data: "gaussian".into(),
            description: "test".into(),
            d: 4,
            truth: TruthKind::Estimated { held_out: 7 },
            truth_singular: None,
            schedule: memgen_diffusion::ScheduleConfig::default(),
            sampler: memgen_diffusion::sampler::SamplerConfig::default(),
            regularization: Regularization::default(),
            threads: 2,
            kl_limit: Some(0.01),
            kl_excess_fit: Some(ExcessFit { slope: -1.0, constant: 7.0, gaussian_fit_constant: 7.0 }),
            results: vec![result],
            sweeps: vec![Sweep { n: 2, weight_decay: vec![(1e-4, 1.0, None)], train_time: vec![] }],
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains("\"d(d+3)/4\":7.0") && text.contains("\"kl_excess_fit\""), "{text}");
        let back: LinearRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn the_excess_fit_recovers_d_over_n() {
        let mk = |n: usize, kl: f64| NResult {
            n,
            d: 4,
            rank: 4,
            train_loss: 0.0,
            test_loss: 0.0,
            c: EffectiveC { mean: 0.0, min: 0.0, max: 0.0 },
            c_range: None,
            c_null: None,
            kl: Some(kl),
            degenerate_directions: 0,
            kl_samples: None,
            check_samples: 0,
            expected_fit_kl: None,
            fit_kl_asymptote: None,
            timing: Timing::default(),
        };
        // KL = 0.5 + 7/N for N > d; N ≤ d is left out.
        let results: Vec<NResult> = [2, 8, 16, 64].iter().map(|&n| mk(n, 0.5 + 7.0 / n as f64)).collect();
        let fit = excess_fit(&results, Some(0.5), 4).unwrap();
        assert!((fit.slope + 1.0).abs() < 1e-9 && (fit.constant - 7.0).abs() < 1e-7, "{fit:?}");
        assert_eq!(fit.gaussian_fit_constant, 7.0);
        assert!(excess_fit(&results, None, 4).is_none());
    }
}

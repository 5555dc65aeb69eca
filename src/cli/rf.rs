//! `memgen rf`: random-feature score models (Li et al. 2023) on Gaussian mixtures: KL along training,
//! early stopping, rates in n and m, and the modes-shift comparison.

mod plots;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use memgen_rf::dsm::{DsmConfig, PopulationConfig, Weighting};
use memgen_rf::experiment::{self, Estimator, ExperimentConfig};
use memgen_rf::kl::{OdeConfig, SdeConfig};
use memgen_rf::{Activation, FeatureConfig, Mixture};
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  memgen rf --out rf-mu3\n  \
memgen rf --target mixture:mu=3 --compare-target mixture:mu=15 --n 10,30,100,300,1000,3000 --m 16,64,256,1024 --out rf-shift\n  \
memgen rf --target mixture:mu=3,dim=2 --n 10,100 --m 64,256 --grid 61 --out rf-2d\n  \
memgen --json rf --out rf-mu3-json")]
pub struct RfArgs {
    /// The target p0: `mixture:mu=MU[,sigma=S][,weights=W1/W2][,dim=D]` (two modes at ±MU·e₁, default
    /// sigma 1, equal weights, d = 1; the paper's cases are mu=3 and mu=15) or
    /// `gaussian[:mean=M][,sigma=S][,dim=D]`. d = 1 or 2.
    #[arg(long, default_value = "mixture:mu=3")]
    pub target: String,
    /// A second target run with the same settings, seeds and (n, m) (modes shift: mixture:mu=15).
    #[arg(long)]
    pub compare_target: Option<String>,
    /// Training-set sizes n, comma-separated (training set n is the first n samples of one stream).
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    pub n: Vec<usize>,
    /// Feature counts m, comma-separated (nested: the first m of the largest).
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024")]
    pub m: Vec<usize>,
    /// Smallest training time τ of the KL curves (gradient-flow time).
    #[arg(long, default_value_t = 10.0)]
    pub tau_min: f64,
    /// Largest training time τ.
    #[arg(long, default_value_t = 1e10)]
    pub tau_max: f64,
    /// Log-spaced τ values per curve.
    #[arg(long, default_value_t = 28)]
    pub tau_points: usize,
    /// Smallest diffusion time t0 (the reverse process stops there).
    #[arg(long, default_value_t = 1e-3)]
    pub t0: f64,
    /// Largest diffusion time T (the reverse process starts from N(0, I) there).
    #[arg(long, default_value_t = 8.0)]
    pub t_max: f64,
    /// K: (t, z) draws per training sample in the DSM loss.
    #[arg(long, default_value_t = 32)]
    pub draws: usize,
    /// Time weighting λ(t) of the DSM loss: likelihood (λ = 1) or sigma2 (λ = 1 − e^{−2t}).
    #[arg(long, value_enum, default_value_t = WeightingArg::Likelihood)]
    pub weighting: WeightingArg,
    /// Activation of the random features.
    #[arg(long, value_enum, default_value_t = ActivationArg::Relu)]
    pub activation: ActivationArg,
    /// Standard deviation of the input weights W.
    #[arg(long, default_value_t = 1.0)]
    pub w_std: f64,
    /// Standard deviation of the time weights U.
    #[arg(long, default_value_t = 1.0)]
    pub u_std: f64,
    /// Standard deviation of the biases b.
    #[arg(long, default_value_t = 3.0)]
    pub b_std: f64,
    /// Standard deviation of the initial readout A(0) (0: A(0) = 0).
    #[arg(long, default_value_t = 0.0)]
    pub init_std: f64,
    /// Grid points per coordinate of the KL sum (default 401 in 1-D, 61 in 2-D).
    #[arg(long)]
    pub grid: Option<usize>,
    /// RK4 steps (equal in ln t) of the probability-flow estimator.
    #[arg(long, default_value_t = 100)]
    pub ode_steps: usize,
    /// KL estimator of the curves: fp (the reverse SDE's law by its Fokker–Planck equation on the grid;
    /// 1-D), ode (the probability-flow ODE's law by change of variables), sde (reverse-SDE samples +
    /// KDE, slow). Default: fp in 1-D, ode in 2-D.
    #[arg(long, value_enum)]
    pub estimator: Option<EstimatorArg>,
    /// Also evaluate all three estimators at τ* and the largest τ of every curve (slow: SDE samples).
    #[arg(long)]
    pub checks: bool,
    /// Samples of the SDE estimator.
    #[arg(long, default_value_t = 20000)]
    pub sde_samples: usize,
    /// Euler–Maruyama steps (equal in ln t) of the SDE estimator.
    #[arg(long, default_value_t = 400)]
    pub sde_steps: usize,
    /// KDE bandwidth of the SDE estimator (default: smallest mode sigma · M^(−1/(d+4))).
    #[arg(long)]
    pub bandwidth: Option<f64>,
    /// Skip the n = ∞ reference (population-trained models: floor, score errors).
    #[arg(long)]
    pub no_population: bool,
    /// Grid points per coordinate of the population quadrature (default 400 in 1-D, 48 in 2-D).
    #[arg(long)]
    pub pop_grid: Option<usize>,
    /// Time nodes (midpoint in ln t) of the population quadrature.
    #[arg(long, default_value_t = 64)]
    pub pop_times: usize,
    /// Base seed: features S, training samples S+1, DSM draws S+2, SDE noise S+3, A(0) S+4.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory: rf.json, rf.csv and the plots.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum WeightingArg {
    Likelihood,
    Sigma2,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ActivationArg {
    Relu,
    Tanh,
    Silu,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EstimatorArg {
    Fp,
    Ode,
    Sde,
}

/// Sorted, distinct, positive values of a list flag.
fn sorted_list(flag: &str, v: &[usize]) -> Result<Vec<usize>> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.dedup();
    if v.is_empty() || v[0] == 0 {
        usage_bail!("{flag} needs positive values (comma-separated)");
    }
    Ok(v)
}

/// Check the flags that the library would only reject without naming them.
fn check_flags(a: &RfArgs) -> Result<()> {
    let pos = |v: f64| v > 0.0 && v.is_finite();
    if !(pos(a.tau_min) && a.tau_max > a.tau_min && a.tau_max.is_finite()) || a.tau_points == 0 {
        usage_bail!("--tau-min and --tau-max need 0 < tau-min < tau-max, and --tau-points at least 1");
    }
    if !(pos(a.t0) && a.t_max > a.t0 && a.t_max.is_finite()) {
        usage_bail!("--t0 and --t-max need 0 < t0 < t-max (got {} and {})", a.t0, a.t_max);
    }
    if a.draws == 0 || a.ode_steps == 0 || a.sde_steps == 0 || a.pop_times == 0 {
        usage_bail!("--draws, --ode-steps, --sde-steps and --pop-times must be at least 1");
    }
    if a.grid.is_some_and(|g| g < 2) || a.pop_grid.is_some_and(|g| g < 2) {
        usage_bail!("--grid and --pop-grid need at least 2 points");
    }
    if a.sde_samples < 2 && (a.checks || a.estimator == Some(EstimatorArg::Sde)) {
        usage_bail!("--sde-samples must be at least 2");
    }
    if a.bandwidth.is_some_and(|h| !pos(h)) {
        usage_bail!("--bandwidth must be positive");
    }
    for (flag, v) in
        [("--w-std", a.w_std), ("--u-std", a.u_std), ("--b-std", a.b_std), ("--init-std", a.init_std)]
    {
        if !(v >= 0.0 && v.is_finite()) {
            usage_bail!("{flag} must be finite and >= 0");
        }
    }
    Ok(())
}

/// The target of `flag` = `spec`, 1-D or 2-D.
fn parse_target(flag: &str, spec: &str, estimator: Option<EstimatorArg>) -> Result<Mixture> {
    let t = Mixture::parse(spec).map_err(|e| super::output::usage(format!("{flag} {spec}: {e}")))?;
    if t.dim > 2 {
        usage_bail!("{flag} {spec}: the KL estimators need dim 1 or 2");
    }
    if t.dim == 2 && estimator == Some(EstimatorArg::Fp) {
        usage_bail!("--estimator fp is 1-D only ({flag} {spec} is 2-D): use ode or sde");
    }
    Ok(t)
}

/// The library config for one target.
fn config(a: &RfArgs, target: Mixture, ns: &[usize], ms: &[usize]) -> ExperimentConfig {
    let d = target.dim;
    let weighting = match a.weighting {
        WeightingArg::Likelihood => Weighting::Likelihood,
        WeightingArg::Sigma2 => Weighting::Sigma2,
    };
    let activation = match a.activation {
        ActivationArg::Relu => Activation::Relu,
        ActivationArg::Tanh => Activation::Tanh,
        ActivationArg::Silu => Activation::Silu,
    };
    let estimator = match a.estimator {
        Some(EstimatorArg::Fp) => Estimator::Fp,
        Some(EstimatorArg::Ode) => Estimator::Ode,
        Some(EstimatorArg::Sde) => Estimator::Sde,
        None if d == 1 => Estimator::Fp,
        None => Estimator::Ode,
    };
    let ode = OdeConfig { t0: a.t0, t_max: a.t_max, steps: a.sde_steps };
    ExperimentConfig {
        target,
        ns: ns.to_vec(),
        ms: ms.to_vec(),
        features: FeatureConfig { activation, w_std: a.w_std, u_std: a.u_std, b_std: a.b_std, seed: a.seed },
        dsm: DsmConfig { t0: a.t0, t_max: a.t_max, draws: a.draws, weighting, seed: a.seed + 2 },
        data_seed: a.seed + 1,
        init_std: a.init_std,
        init_seed: a.seed + 4,
        taus: experiment::log_grid(a.tau_min, a.tau_max, a.tau_points),
        grid: a.grid.unwrap_or(if d == 1 { 401 } else { 61 }),
        ode_steps: a.ode_steps,
        sde: SdeConfig { ode, samples: a.sde_samples, seed: a.seed + 3, bandwidth: a.bandwidth },
        estimator,
        checks: a.checks,
        population: (!a.no_population).then(|| PopulationConfig {
            grid: a.pop_grid.unwrap_or(if d == 1 { 400 } else { 48 }),
            times: a.pop_times,
        }),
    }
}

pub fn run_rf(a: RfArgs) -> Result<()> {
    check_flags(&a)?;
    let ns = sorted_list("--n", &a.n)?;
    let ms = sorted_list("--m", &a.m)?;
    let mut targets = vec![("--target", a.target.clone())];
    if let Some(c) = &a.compare_target {
        targets.push(("--compare-target", c.clone()));
    }
    let cfgs: Vec<(String, ExperimentConfig)> = targets
        .iter()
        .map(|(flag, spec)| Ok((spec.clone(), config(&a, parse_target(flag, spec, a.estimator)?, &ns, &ms))))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let bar = memgen_io::progress::bar(cfgs.iter().map(|(_, c)| c.runs() as u64).sum(), "rf", "", false);
    // Each curve but the first starts when the one before has finished.
    let started = std::cell::Cell::new(false);
    let record = memgen_rf::record::run(cfgs, super::threads(), &|label| {
        if started.replace(true) {
            bar.inc(1);
        }
        bar.set_message(label.to_string());
    })?;
    bar.finish_and_clear();
    memgen_io::write_json(&a.out.join("rf.json"), &record)?;
    memgen_io::write_atomic(&a.out.join("rf.csv"), record.csv().as_bytes())?;
    plots::plots(&a.out, &record)?;
    say_text!("{}", record.table());
    say!("wall time {:.1} s on {} threads\n-> {}", record.wall_seconds, record.threads, a.out.display());
    super::output::result(serde_json::json!({
        "out": a.out,
        "rf_json": a.out.join("rf.json"),
        "rf_csv": a.out.join("rf.csv"),
        "targets": record.targets.iter().map(|t| &t.spec).collect::<Vec<_>>(),
        "seconds": record.wall_seconds,
    }));
    Ok(())
}

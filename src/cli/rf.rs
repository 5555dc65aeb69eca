//! `memgen rf`: random-feature score models (Li et al. 2023) on Gaussian mixtures: KL along training,
//! early stopping, rates in n and m, and the modes-shift comparison.

use super::save_plot;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use memgen_plot::lineplot::{LinePlot, LineSeries, LineStyle};
use memgen_rf::dsm::{DsmConfig, PopulationConfig, Weighting};
use memgen_rf::experiment::{self, Curve, Estimator, ExperimentConfig, ExperimentResult};
use memgen_rf::kl::{OdeConfig, SdeConfig};
use memgen_rf::{Activation, FeatureConfig, Mixture};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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
    let bar = progress(cfgs.iter().map(|(_, c)| c.runs()).sum());
    let start = std::time::Instant::now();
    let mut results = Vec::new();
    for (spec, cfg) in &cfgs {
        let started = std::cell::Cell::new(false);
        let report = |label: &str| {
            if started.replace(true) {
                bar.inc(1);
            }
            bar.set_message(format!("{spec}: {label}"));
        };
        let r = experiment::run(cfg, &report).with_context(|| format!("target {spec}"))?;
        bar.inc(1);
        results.push(r);
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    write_outputs(&a, &cfgs, &results, seconds)?;
    say_text!("{}", table(&cfgs, &results));
    say!("wall time {seconds:.1} s on {} threads\n-> {}", super::threads(), a.out.display());
    super::output::result(serde_json::json!({
        "out": a.out,
        "rf_json": a.out.join("rf.json"),
        "rf_csv": a.out.join("rf.csv"),
        "targets": cfgs.iter().map(|(spec, _)| spec).collect::<Vec<_>>(),
        "seconds": seconds,
    }));
    Ok(())
}

fn progress(len: usize) -> indicatif::ProgressBar {
    memgen_io::progress::bar(len as u64, "rf", "", false)
}

fn write_outputs(
    a: &RfArgs,
    cfgs: &[(String, ExperimentConfig)],
    results: &[ExperimentResult],
    seconds: f64,
) -> Result<()> {
    let targets: Vec<serde_json::Value> = cfgs
        .iter()
        .zip(results)
        .map(|((spec, cfg), r)| serde_json::json!({ "spec": spec, "config": cfg, "result": r }))
        .collect();
    let record = serde_json::json!({
        "command": "rf",
        "threads": super::threads(),
        "seed": a.seed,
        "seeds": { "features": a.seed, "samples": a.seed + 1, "dsm_draws": a.seed + 2, "sde": a.seed + 3, "init": a.seed + 4 },
        "wall_seconds": seconds,
        "bound_exponents": { "n": -0.4, "m": -0.8 },
        "modes_shift": modes_shift(cfgs, results),
        "targets": targets,
    });
    memgen_io::write_json(&a.out.join("rf.json"), &record)?;
    memgen_io::write_atomic(&a.out.join("rf.csv"), csv(cfgs, results).as_bytes())?;
    plots(&a.out, cfgs, results)
}

/// Per (n, m): KL* and late KL of the first target next to the second's (with --compare-target).
fn modes_shift(cfgs: &[(String, ExperimentConfig)], results: &[ExperimentResult]) -> serde_json::Value {
    if results.len() < 2 {
        return serde_json::Value::Null;
    }
    let rows: Vec<serde_json::Value> = results[0]
        .curves
        .iter()
        .zip(&results[1].curves)
        .map(|(c0, c1)| {
            serde_json::json!({ "n": c0.n, "m": c0.m,
                "kl_best": [c0.kl_best, c1.kl_best], "kl_late": [c0.kl_late, c1.kl_late],
                "tau_best": [c0.tau_best, c1.tau_best] })
        })
        .collect();
    serde_json::json!({ "targets": [cfgs[0].0, cfgs[1].0], "runs": rows })
}

fn csv(cfgs: &[(String, ExperimentConfig)], results: &[ExperimentResult]) -> String {
    let mut s = String::from("target,n,m,tau,kl,mass,train_loss,score_error,is_best\n");
    for ((spec, _), r) in cfgs.iter().zip(results) {
        for c in r.population.iter().chain(&r.curves) {
            let n = c.n.map_or("inf".to_string(), |n| n.to_string());
            for p in &c.points {
                let se = p.score_error.map_or(String::new(), |v| v.to_string());
                let best = p.tau == c.tau_best;
                let _ = writeln!(
                    s,
                    "\"{spec}\",{n},{},{},{},{},{},{se},{best}",
                    c.m, p.tau, p.kl, p.mass, p.train_loss
                );
            }
        }
    }
    s
}

fn fmt_fit(f: &Option<memgen_metrics::stats::PowerFit>) -> String {
    f.map_or("-".into(), |f| format!("{:.3}", f.slope))
}

fn table(cfgs: &[(String, ExperimentConfig)], results: &[ExperimentResult]) -> String {
    let mut s = String::new();
    for ((spec, _), r) in cfgs.iter().zip(results) {
        let _ = writeln!(
            s,
            "{spec}: {}\nKL of the exact score (estimator floor): {:.3e}",
            r.description, r.kl_exact_score
        );
        let _ = writeln!(s, "| n | m | τ* | KL* | KL late | KL first | falls then rises | rank G |\n|---|---|---|---|---|---|---|---|");
        for c in r.population.iter().chain(&r.curves) {
            let n = c.n.map_or("∞".to_string(), |n| n.to_string());
            let _ = writeln!(
                s,
                "| {n} | {} | {:.3e} | {:.4e} | {:.4e} | {:.4e} | {} | {} |",
                c.m, c.tau_best, c.kl_best, c.kl_late, c.kl_first, c.falls_then_rises, c.rank
            );
        }
        let f = &r.fits;
        let _ = writeln!(
            s,
            "slopes: KL* vs n {} (bound −0.4), floor-subtracted {}; KL* vs m {} (bound −0.8), n = ∞ {}",
            fmt_fit(&f.n),
            fmt_fit(&f.n_floor_subtracted),
            fmt_fit(&f.m),
            fmt_fit(&f.m_population)
        );
        if let Some(c) = &r.ode_check {
            let _ = writeln!(
                s,
                "step check at the largest (n, m): KL* {:.4e} with {} steps, {:.4e} with {}",
                c.kl,
                c.steps,
                c.kl_double_steps,
                2 * c.steps
            );
        }
    }
    s
}

/// Points (x, y) of curves picked by `keep`.
fn pts(curves: &[Curve], keep: impl Fn(&Curve) -> bool, f: impl Fn(&Curve) -> (f64, f64)) -> Vec<(f64, f64)> {
    curves.iter().filter(|c| keep(c)).map(f).collect()
}

/// A reference power law c·x^slope through the first point of `p`, over its x range.
fn reference(p: &[(f64, f64)], slope: f64) -> Vec<(f64, f64)> {
    match (p.first(), p.last()) {
        (Some(&(x0, y0)), Some(&(x1, _))) => vec![(x0, y0), (x1, y0 * (x1 / x0).powf(slope))],
        _ => vec![],
    }
}

fn log_plot<'a>(title: String, x: &str, series: Vec<LineSeries<'a>>) -> LinePlot<'a> {
    LinePlot {
        title,
        x_label: x.into(),
        y_label: "KL(p0 / p_theta)".into(),
        series,
        log_x: true,
        log_y: true,
        vlines: vec![],
    }
}

/// Per target (suffix -1 for the compare target): rf-kl-tau (KL vs τ per n at m_max, and n = ∞),
/// rf-kl-tau-m (per m at n_max), rf-rates-n, rf-rates-m; and rf-modes-shift for two targets.
fn plots(out: &Path, cfgs: &[(String, ExperimentConfig)], results: &[ExperimentResult]) -> Result<()> {
    for (i, ((spec, cfg), r)) in cfgs.iter().zip(results).enumerate() {
        let suffix = if i == 0 { String::new() } else { format!("-{i}") };
        let (m_max, n_max) = (*cfg.ms.last().unwrap_or(&0), *cfg.ns.last().unwrap_or(&0));
        let curve_pts = |c: &Curve| c.points.iter().map(|p| (p.tau, p.kl)).collect::<Vec<_>>();
        let by_n: Vec<(String, Vec<(f64, f64)>)> = r
            .curves
            .iter()
            .chain(&r.population)
            .filter(|c| c.m == m_max)
            .map(|c| (c.n.map_or("n = inf".into(), |n| format!("n = {n}")), curve_pts(c)))
            .collect();
        let series = by_n
            .iter()
            .map(|(name, p)| LineSeries { name: name.clone(), points: p, style: LineStyle::Line })
            .collect();
        save_plot(
            out,
            &format!("rf-kl-tau{suffix}"),
            &log_plot(format!("{spec}: KL along training, m = {m_max}"), "training time tau", series),
        )?;
        let by_m: Vec<(String, Vec<(f64, f64)>)> = r
            .curves
            .iter()
            .filter(|c| c.n == Some(n_max))
            .map(|c| (format!("m = {}", c.m), curve_pts(c)))
            .collect();
        let series = by_m
            .iter()
            .map(|(name, p)| LineSeries { name: name.clone(), points: p, style: LineStyle::Line })
            .collect();
        save_plot(
            out,
            &format!("rf-kl-tau-m{suffix}"),
            &log_plot(format!("{spec}: KL along training, n = {n_max}"), "training time tau", series),
        )?;
        rate_plots(out, &suffix, spec, r, m_max, n_max)?;
    }
    if results.len() == 2 {
        let m_max = *cfgs[0].1.ms.last().unwrap_or(&0);
        let best: Vec<Vec<(f64, f64)>> = results
            .iter()
            .map(|r| pts(&r.curves, |c| c.m == m_max, |c| (c.n.unwrap_or(0) as f64, c.kl_best)))
            .collect();
        let late: Vec<Vec<(f64, f64)>> = results
            .iter()
            .map(|r| pts(&r.curves, |c| c.m == m_max, |c| (c.n.unwrap_or(0) as f64, c.kl_late)))
            .collect();
        let mut series = Vec::new();
        for k in 0..2 {
            series.push(LineSeries {
                name: format!("KL* {}", cfgs[k].0),
                points: &best[k],
                style: LineStyle::LineAndMarkers,
            });
            series.push(LineSeries {
                name: format!("late KL {}", cfgs[k].0),
                points: &late[k],
                style: LineStyle::Dashed,
            });
        }
        save_plot(
            out,
            "rf-modes-shift",
            &log_plot(format!("Modes shift, m = {m_max}"), "training samples n", series),
        )?;
    }
    Ok(())
}

fn rate_plots(
    out: &Path,
    suffix: &str,
    spec: &str,
    r: &ExperimentResult,
    m_max: usize,
    n_max: usize,
) -> Result<()> {
    let kn = pts(&r.curves, |c| c.m == m_max, |c| (c.n.unwrap_or(0) as f64, c.kl_best));
    let floor = r.population.iter().find(|c| c.m == m_max).map(|c| c.kl_best);
    let sub: Vec<(f64, f64)> = floor.map_or(vec![], |f| kn.iter().map(|&(n, k)| (n, k - f)).collect());
    let (ref_n, ref_sub) = (reference(&kn, -0.4), reference(&sub, -0.4));
    let series = vec![
        LineSeries { name: "KL*".into(), points: &kn, style: LineStyle::LineAndMarkers },
        LineSeries { name: "KL* - KL*(n = inf)".into(), points: &sub, style: LineStyle::LineAndMarkers },
        LineSeries { name: "slope -2/5".into(), points: &ref_n, style: LineStyle::Dashed },
        LineSeries {
            name: "slope -2/5 (floor subtracted)".into(),
            points: &ref_sub,
            style: LineStyle::Dashed,
        },
    ];
    save_plot(
        out,
        &format!("rf-rates-n{suffix}"),
        &log_plot(format!("{spec}: early-stopped KL vs n, m = {m_max}"), "training samples n", series),
    )?;
    let km = pts(&r.curves, |c| c.n == Some(n_max), |c| (c.m as f64, c.kl_best));
    let kp = pts(&r.population, |_| true, |c| (c.m as f64, c.kl_best));
    let ref_m = reference(&km, -0.8);
    let series = vec![
        LineSeries { name: format!("KL*, n = {n_max}"), points: &km, style: LineStyle::LineAndMarkers },
        LineSeries { name: "KL*, n = inf".into(), points: &kp, style: LineStyle::LineAndMarkers },
        LineSeries { name: "slope -4/5".into(), points: &ref_m, style: LineStyle::Dashed },
    ];
    save_plot(
        out,
        &format!("rf-rates-m{suffix}"),
        &log_plot(format!("{spec}: early-stopped KL vs m"), "random features m", series),
    )
}

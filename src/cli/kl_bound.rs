//! `memgen kl-bound`: the KL bound from denoising errors (Kadkhodaie et al. 2024) on Gaussian data,
//! where the optimal denoiser is known, next to the linear model's exact KL divergences.

use super::linear::{fmt, gaussian_config, gaussian_data, gaussian_description};
use super::sample::TimeSamplerOpts;
use super::save_plot;
use anyhow::{bail, Context, Result};
use clap::Args;
use memgen_analysis::klbound::{
    fitted_denoiser, kl_bound, kl_truth_to_eigen, monte_carlo_bound, optimal_check, GaussianLinearMse,
    KlBound, McConfig, McMse, OptimalCheck, SigmaGrid, DEGENERATE_REL,
};
use memgen_analysis::{ModelDenoiser, WienerDenoiser};
use memgen_data::gaussian::GaussianConfig;
use memgen_diffusion::run::{RunConfig, SplitRecord};
use memgen_diffusion::{DdpmSchedule, ScheduleConfig};
use memgen_io::read_json;
use memgen_linear::experiment::{Fitted, Truth};
use memgen_linear::theory::Regularization;
use memgen_linear::Moments;
use memgen_plot::lineplot::{LinePlot, LineSeries, LineStyle};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  memgen kl-bound --data gaussian --side 8 --n 16,64,256,1024,4096 --out klb-8\n  \
memgen kl-bound --data gaussian:power:1:0.05 --side 8 --n 1000 --run runs/gauss8-n1000 --out klb-run\n  \
memgen --json kl-bound --data gaussian --side 4 --n 16,64 --out klb-4"
)]
pub struct KlBoundArgs {
    /// `gaussian[:SPECTRUM]`: N(0.5, U diag(λ) Uᵀ) in the DCT basis with SPECTRUM `power:EXPONENT[:SCALE]`
    /// or `flat:VARIANCE` (default power:1:0.05), as in `memgen linear`: the only data whose optimal
    /// denoiser is known in closed form.
    #[arg(long)]
    pub data: String,
    /// Image side (d = side²).
    #[arg(long)]
    pub side: usize,
    /// Training-set sizes of the fitted linear denoiser, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub n: Vec<usize>,
    /// Seed of the training images (training set N is images 0..N of the stream, as `memgen linear`).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A training run of a network on prepared Gaussian data of the same source and side (repeatable):
    /// its bound from Monte-Carlo MSEs.
    #[arg(long)]
    pub run: Vec<PathBuf>,
    /// Runs: use the raw weights instead of the EMA weights.
    #[arg(long)]
    pub no_ema: bool,
    /// Smallest σ of the integral (default: σ_0 of the default DDPM schedule, ≈ 0.01).
    #[arg(long)]
    pub sigma_min: Option<f64>,
    /// Largest σ of the integral (default: σ_{T−1} of the default DDPM schedule, ≈ 157).
    #[arg(long)]
    pub sigma_max: Option<f64>,
    /// Grid points of the closed-form integrals, log-spaced in σ (odd: Simpson's rule).
    #[arg(long, default_value_t = 241)]
    pub points: usize,
    /// Grid points of the Monte-Carlo integrals of --run and of the optimal denoiser (odd).
    #[arg(long, default_value_t = 25)]
    pub run_points: usize,
    /// Monte-Carlo draws per noise level.
    #[arg(long, default_value_t = 512)]
    pub mc_samples: usize,
    /// Seed of the Monte-Carlo draws (the same draws for every run: paired comparisons).
    #[arg(long, default_value_t = 0)]
    pub mc_seed: u64,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// The sampler of the linear model whose exact KL is reported next to the bound.
    #[command(flatten)]
    pub sampler: TimeSamplerOpts,
    /// Output directory: kl-bound.json, kl-bound.csv, kl-bound.svg/.png, kl-bound-integrand.svg/.png.
    #[arg(long, default_value = "kl-bound")]
    pub out: PathBuf,
}

/// The fitted linear denoiser of one training set.
#[derive(Debug, Serialize)]
struct LinearRow {
    n: usize,
    /// Numerical rank of Σ̂ (eigenvalues above 1e-10 of the largest).
    rank: usize,
    /// The bound with the closed-form excess, and its integrand per σ.
    bound: KlBound,
    /// KL(N(μ, Σ + σ_min² I) ‖ N(μ̂, Σ̂ + σ_min² I)): what the bound bounds; equal to it for the linear
    /// model (up to quadrature and the tail estimate).
    kl_smoothed: f64,
    /// KL(N(μ, Σ + σ_max² I) ‖ N(μ̂, Σ̂ + σ_max² I)), which the tail term estimates.
    kl_at_sigma_max: f64,
    /// KL(p ‖ N(μ̂, Σ̂)) (infinite, null in JSON, for N ≤ d).
    kl_fitted: f64,
    /// KL(N(μ̂, Σ̂) ‖ p).
    kl_fitted_reverse: f64,
    /// `memgen linear`'s `kl`: KL(ρ_N ‖ ρ) of the sampler's exact output ρ_N (model first).
    kl_linear: Option<f64>,
    /// KL(ρ ‖ ρ_N): the same sampler output, in the bound's direction (data first).
    kl_linear_truth_first: f64,
    /// Mean effective c of ρ_N ≈ N(μ̂, Σ̂ + c I).
    c_mean: f64,
}

/// A trained network.
#[derive(Debug, Serialize)]
struct RunRow {
    run: PathBuf,
    /// Training images.
    n: usize,
    ema: bool,
    bound: KlBound,
    /// The Monte-Carlo MSEs per σ.
    mse: Vec<McMse>,
}

pub fn run_kl_bound(a: KlBoundArgs) -> Result<()> {
    let Some(spec) = a.data.strip_prefix("gaussian") else {
        usage_bail!("--data {}: kl-bound needs Gaussian data (gaussian[:SPECTRUM]), the only data whose optimal denoiser is known in closed form", a.data);
    };
    if !(spec.is_empty() || spec.starts_with(':')) {
        usage_bail!("--data {}: expected gaussian or gaussian:SPECTRUM", a.data);
    }
    let spec = spec.strip_prefix(':').unwrap_or(spec);
    let mut ns = a.n.clone();
    ns.sort_unstable();
    ns.dedup();
    if ns.is_empty() || ns[0] < 2 {
        usage_bail!("--n needs training-set sizes of at least 2");
    }
    if a.side == 0 {
        usage_bail!("--side must be at least 1");
    }
    if a.mc_samples < 2 || a.batch_size == 0 {
        usage_bail!("--mc-samples must be at least 2 and --batch-size at least 1");
    }
    let schedule = DdpmSchedule::new(&ScheduleConfig::default())?;
    let abar = &schedule.alphas_cumprod;
    let sigma_min = a.sigma_min.unwrap_or_else(|| memgen_analysis::denoiser::sigma_of(abar[0]));
    let sigma_max = a.sigma_max.unwrap_or_else(|| memgen_analysis::denoiser::sigma_of(abar[abar.len() - 1]));
    let grid = SigmaGrid::new(sigma_min, sigma_max, a.points).context("--sigma-min/--sigma-max/--points")?;
    let run_grid = SigmaGrid::new(sigma_min, sigma_max, a.run_points).context("--run-points")?;
    let cfg = gaussian_config(spec, a.seed)?;
    let (side, d) = (a.side, a.side * a.side);
    let n_max = *ns.last().expect("non-empty");
    let (rows, truth) = gaussian_data(&cfg, side, n_max)?;
    let truth_den = truth_denoiser(&cfg, side)?;
    let description = gaussian_description(&cfg, side);
    let sampler_cfg = a.sampler.config();
    let sampler = sampler_cfg.build(&schedule)?;
    let reg = Regularization::default();
    eprintln!("{description}; d = {d}; N = {ns:?}; σ from {sigma_min:.4e} to {sigma_max:.4e}");

    let mut linear = Vec::new();
    for &n in &ns {
        let fitted = Fitted::new(&rows[..n * d], &truth).with_context(|| format!("N = {n}"))?;
        linear.push(linear_row(&fitted, &truth, &truth_den, &grid, &schedule, sampler.as_ref(), reg)?);
    }
    let limit = {
        let moments = Moments { mean: truth.mean.clone(), cov: truth.cov.clone(), count: usize::MAX };
        Fitted::from_moments(moments, &truth)?.kl(&truth, &schedule, sampler.as_ref(), reg)?.0
    };
    let mc = McConfig { count: a.mc_samples, batch: a.batch_size, seed: a.mc_seed, ..Default::default() };
    let optimal = optimal_check(&truth_den, &[1, side, side], &grid, &run_grid, &mc)?;
    let mut runs = Vec::new();
    for run in &a.run {
        runs.push(
            run_row(run, &cfg, side, !a.no_ema, &truth_den, &run_grid, &mc)
                .with_context(|| format!("--run {}", run.display()))?,
        );
    }

    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let record = serde_json::json!({
        "data": a.data, "description": description, "d": d, "side": side, "seed": a.seed,
        "formula": "B = ∫_{σmin}^{σmax} (MSE(f, σ²) − MSE(f*, σ²)) σ⁻³ dσ + e(σmax)/(2σmax²) ≥ KL(p_σmin ‖ q_σmin)",
        "sigma_min": sigma_min, "sigma_max": sigma_max, "points": a.points, "run_points": a.run_points,
        "mc_samples": a.mc_samples, "mc_seed": a.mc_seed,
        "schedule": ScheduleConfig::default(), "sampler": sampler_cfg, "kl_linear_limit": limit,
        "threads": super::threads(), "optimal": optimal, "linear": linear, "runs": runs,
    });
    memgen_io::write_json(&a.out.join("kl-bound.json"), &record)?;
    memgen_io::write_atomic(&a.out.join("kl-bound.csv"), csv(&linear, &runs).as_bytes())?;
    plots(&a.out, &linear, &runs, d)?;
    say_text!("{}", table(&description, d, sigma_min, &linear, &runs, &optimal));
    say!("-> {}", a.out.display());
    super::output::result(serde_json::json!({
        "out": a.out,
        "kl_bound_json": a.out.join("kl-bound.json"),
        "kl_bound_csv": a.out.join("kl-bound.csv"),
        "d": d,
        "sigma_min": sigma_min,
        "sigma_max": sigma_max,
        "linear": linear,
        "runs": runs,
    }));
    Ok(())
}

/// f* of the Gaussian source: (μ = mean·1, the source's basis U, its eigenvalues λ).
fn truth_denoiser(cfg: &GaussianConfig, side: usize) -> Result<WienerDenoiser> {
    let d = side * side;
    let basis = memgen_data::gaussian::basis_matrix(cfg.basis, side);
    let eig = memgen_data::gaussian::eigenvalues(&cfg.spectrum, d);
    Ok(WienerDenoiser::new(vec![cfg.mean; d], basis, eig)?)
}

fn linear_row(
    fitted: &Fitted,
    truth: &Truth,
    truth_den: &WienerDenoiser,
    grid: &SigmaGrid,
    schedule: &DdpmSchedule,
    sampler: &dyn memgen_diffusion::sampler::Sampler,
    reg: Regularization,
) -> Result<LinearRow> {
    let n = fitted.moments.count;
    let den = fitted_denoiser(&fitted.moments.mean, &fitted.spectrum)?;
    let g = GaussianLinearMse::new(&den, truth_den)?;
    let bound = kl_bound(|s| g.excess(s), grid)?;
    let values = &fitted.spectrum.values;
    let top = values.iter().copied().fold(0.0, f64::max);
    let kl_fitted_reverse = match &truth.gaussian {
        _ if values.iter().any(|&s| !(s > DEGENERATE_REL * top)) => f64::INFINITY,
        Some(gauss) => gauss.kl_from_eigen(&fitted.moments.mean, &fitted.spectrum.vectors, values)?,
        None => f64::NAN,
    };
    let (kl_linear, dist) = fitted.kl(truth, schedule, sampler, reg)?;
    let kl_linear_truth_first = kl_truth_to_eigen(truth_den, &dist.mean, &den.basis, &dist.variances)?;
    Ok(LinearRow {
        n,
        rank: fitted.spectrum.rank(1e-10),
        kl_smoothed: g.kl_smoothed(grid.sigma_min),
        kl_at_sigma_max: g.kl_smoothed(grid.sigma_max),
        kl_fitted: g.kl(),
        kl_fitted_reverse,
        kl_linear,
        kl_linear_truth_first,
        c_mean: dist.c_mean,
        bound,
    })
}

/// The bound of a trained network whose data are the Gaussian source `cfg` at `side`.
fn run_row(
    run: &Path,
    cfg: &GaussianConfig,
    side: usize,
    ema: bool,
    truth_den: &WienerDenoiser,
    grid: &SigmaGrid,
    mc: &McConfig,
) -> Result<RunRow> {
    let rc = RunConfig::load(run)?;
    let m = memgen_data::dataset::read_manifest(&rc.data.dir).with_context(|| {
        format!("the run's dataset {} (needed to check it is this Gaussian)", rc.data.dir.display())
    })?;
    if m.source.kind != "gaussian" {
        bail!("trained on {} data ({}), not on a Gaussian source", m.source.kind, rc.data.dir.display());
    }
    if (m.channels, m.height, m.width) != (1, side, side) {
        bail!(
            "trained on {}x{}x{} images, --side {side} needs 1x{side}x{side}",
            m.channels,
            m.height,
            m.width
        );
    }
    let mut params = m.source.params.clone();
    if let serde_json::Value::Object(map) = &mut params {
        map.remove("side");
    }
    let theirs: GaussianConfig =
        serde_json::from_value(params).context("reading the Gaussian parameters of the run's dataset")?;
    if (theirs.mean, &theirs.spectrum, theirs.basis) != (cfg.mean, &cfg.spectrum, cfg.basis) {
        bail!(
            "its data are N({}, {:?}, {:?} basis), not the --data Gaussian N({}, {:?}, {:?} basis)",
            theirs.mean,
            theirs.spectrum,
            theirs.basis,
            cfg.mean,
            cfg.spectrum,
            cfg.basis
        );
    }
    let split: SplitRecord = read_json(&run.join("split.json"))?;
    let den = ModelDenoiser::from_run(run, ema)?;
    let (bound, mse) = monte_carlo_bound(&den, truth_den, &[1, side, side], grid, mc)?;
    Ok(RunRow { run: run.to_path_buf(), n: split.indices.len(), ema, bound, mse })
}

fn table(
    description: &str,
    d: usize,
    sigma_min: f64,
    linear: &[LinearRow],
    runs: &[RunRow],
    opt: &OptimalCheck,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{description}; d = {d}; q = model, p = data; σ_min = {sigma_min:.4e}");
    let _ = writeln!(s, "| N | rank Σ̂ | bound B | KL(p_σmin ‖ q_σmin) | KL(p ‖ N(μ̂,Σ̂)) | KL(N(μ̂,Σ̂) ‖ p) | KL(ρ_N ‖ ρ) linear | KL(ρ ‖ ρ_N) |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for r in linear {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.n,
            r.rank,
            fmt(Some(r.bound.bound)),
            fmt(Some(r.kl_smoothed)),
            fmt(Some(r.kl_fitted)),
            fmt(Some(r.kl_fitted_reverse)),
            fmt(r.kl_linear),
            fmt(Some(r.kl_linear_truth_first))
        );
    }
    for r in runs {
        let _ = writeln!(
            s,
            "run {} (N = {}): B = {} ± {}",
            r.run.display(),
            r.n,
            fmt(Some(r.bound.bound)),
            fmt(Some(r.bound.bound_se))
        );
    }
    let _ = writeln!(
        s,
        "optimal denoiser f*: max integrand {} (closed form); Monte Carlo B = {} ± {} (f64 images), {} ± {} (f32 images: the floor of --run)",
        fmt(Some(opt.closed_form_max_integrand)),
        fmt(Some(opt.monte_carlo_bound)),
        fmt(Some(opt.monte_carlo_bound_se)),
        fmt(Some(opt.monte_carlo_f32_bound)),
        fmt(Some(opt.monte_carlo_f32_bound_se))
    );
    s
}

fn csv(linear: &[LinearRow], runs: &[RunRow]) -> String {
    let mut s = String::from(
        "source,n,rank,bound,bound_se,integral,upper_tail,kl_smoothed,kl_at_sigma_max,kl_fitted,kl_fitted_reverse,kl_linear,kl_linear_truth_first\n",
    );
    let o = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for r in linear {
        let b = &r.bound;
        let _ = writeln!(
            s,
            "linear,{},{},{},{},{},{},{},{},{},{},{},{}",
            r.n,
            r.rank,
            b.bound,
            b.bound_se,
            b.integral,
            b.upper_tail,
            r.kl_smoothed,
            r.kl_at_sigma_max,
            r.kl_fitted,
            r.kl_fitted_reverse,
            o(r.kl_linear),
            r.kl_linear_truth_first
        );
    }
    for r in runs {
        let b = &r.bound;
        let name = r.run.display().to_string().replace(',', "_");
        let _ =
            writeln!(s, "{name},{},,{},{},{},{},,,,,,", r.n, b.bound, b.bound_se, b.integral, b.upper_tail);
    }
    s
}

/// kl-bound (bound and KLs vs N) and kl-bound-integrand (e(σ) σ⁻³ vs σ per N), SVG and PNG.
fn plots(out: &Path, linear: &[LinearRow], runs: &[RunRow], d: usize) -> Result<()> {
    let pts = |f: &dyn Fn(&LinearRow) -> Option<f64>| -> Vec<(f64, f64)> {
        linear.iter().filter_map(|r| f(r).filter(|v| v.is_finite()).map(|v| (r.n as f64, v))).collect()
    };
    let bound = pts(&|r| Some(r.bound.bound));
    let smoothed = pts(&|r| Some(r.kl_smoothed));
    let fitted = pts(&|r| Some(r.kl_fitted));
    let reverse = pts(&|r| Some(r.kl_fitted_reverse));
    let lin = pts(&|r| r.kl_linear);
    let lin_first = pts(&|r| Some(r.kl_linear_truth_first));
    let run_pts: Vec<(f64, f64)> = runs.iter().map(|r| (r.n as f64, r.bound.bound)).collect();
    let mut series = vec![
        LineSeries {
            name: "bound B (linear denoiser)".into(),
            points: &bound,
            style: LineStyle::LineAndMarkers,
        },
        LineSeries { name: "KL(p_smin / q_smin)".into(), points: &smoothed, style: LineStyle::Dashed },
        LineSeries { name: "KL(p / N(mu0, S0))".into(), points: &fitted, style: LineStyle::Markers },
        LineSeries { name: "KL(N(mu0, S0) / p)".into(), points: &reverse, style: LineStyle::Markers },
        LineSeries {
            name: "KL(rho_N / rho), sampler".into(),
            points: &lin,
            style: LineStyle::LineAndMarkers,
        },
        LineSeries { name: "KL(rho / rho_N), sampler".into(), points: &lin_first, style: LineStyle::Dashed },
    ];
    if !run_pts.is_empty() {
        series.push(LineSeries {
            name: "bound B (trained runs)".into(),
            points: &run_pts,
            style: LineStyle::Markers,
        });
    }
    let plot = LinePlot {
        title: "KL bound from denoising errors vs exact KL".into(),
        x_label: "training images N".into(),
        y_label: "KL (nats)".into(),
        series,
        log_x: true,
        log_y: true,
        vlines: vec![(d as f64, format!("N = d = {d}"))],
    };
    save_plot(out, "kl-bound", &plot)?;
    let curves: Vec<Curve> = linear
        .iter()
        .map(|r| (format!("N = {}", r.n), integrand(&r.bound), LineStyle::Line))
        .chain(runs.iter().map(|r| {
            let name = r
                .run
                .file_name()
                .map_or_else(|| r.run.display().to_string(), |f| f.to_string_lossy().into_owned());
            (format!("{name} (N = {})", r.n), integrand(&r.bound), LineStyle::LineAndMarkers)
        }))
        .collect();
    let plot = LinePlot {
        title: "Integrand (MSE - MSE*) sigma^-3".into(),
        x_label: "noise level sigma".into(),
        y_label: "(MSE - MSE*) / sigma^3".into(),
        series: curves
            .iter()
            .map(|(n, p, st)| LineSeries { name: n.clone(), points: p, style: *st })
            .collect(),
        log_x: true,
        log_y: true,
        vlines: vec![],
    };
    save_plot(out, "kl-bound-integrand", &plot)
}

/// A named series of the integrand plot and its style.
type Curve = (String, Vec<(f64, f64)>, LineStyle);

fn integrand(b: &KlBound) -> Vec<(f64, f64)> {
    b.points.iter().map(|p| (p.sigma, p.integrand)).collect()
}

//! `memgen linear`: the linear-denoiser baseline (Merger & Goldt) over a range of training-set sizes.

use super::sample::TimeSamplerOpts;
use super::save_plot;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use faer::Mat;
use memgen_data::dataset::PreparedDataset;
use memgen_data::gaussian::{GaussianConfig, Spectrum as GaussSpectrum};
use memgen_diffusion::{DdpmSchedule, ScheduleConfig};
use memgen_linear::experiment::{
    analyse_fitted, excess_fit, limit_kl, sweep, AnalysisConfig, ExcessFit, Fitted, LinearRecord, NResult,
    Sweep, Truth, TruthKind,
};
use memgen_linear::theory::Regularization;
use memgen_plot::lineplot::{LinePlot, LineSeries, LineStyle};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  memgen linear --data gaussian:power:1:0.05 --side 16 --n 32,64,128,256,512,1024,4096 --out lin-gauss\n  \
memgen linear --data runs/demo/data --n 1,10,100,1000 --out runs/demo-linear\n  \
memgen linear --data runs/fashion-mnist/data --n 10,100,1000,10000 --out lin-fmnist\n  \
memgen --json linear --data gaussian --side 4 --n 8,32,128 --out lin-small"
)]
pub struct LinearArgs {
    /// A prepared dataset directory (the population's moments are estimated from the images in neither
    /// side of the split at the largest N), or `gaussian[:SPECTRUM]`: N(0.5, U diag(λ) Uᵀ) in the DCT
    /// basis with SPECTRUM `power:EXPONENT[:SCALE]` or `flat:VARIANCE` (default power:1:0.05), whose
    /// exact moments are the population.
    #[arg(long)]
    pub data: String,
    /// Gaussian data: image side (d = side²). Prepared data: checked against the dataset if given.
    #[arg(long)]
    pub side: Option<usize>,
    /// Training-set sizes, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub n: Vec<usize>,
    /// Weight decay λ of the linear denoiser (penalty λ‖W_t‖²).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Early stopping: gradient-flow training time η·τ (default: trained to convergence).
    #[arg(long)]
    pub train_time: Option<f64>,
    /// Prepared data: which side of the nested split the training sets come from.
    #[arg(long, value_enum, default_value_t = SplitSide::A)]
    pub split: SplitSide,
    /// Prepared data: seed of the nested split (as `memgen train --split-seed`).
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Gaussian data: seed of the training images (training set N is images 0..N of the stream).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples drawn with the sampler for the "KL from samples" check (0 skips it; needs more than d).
    #[arg(long, default_value_t = 2000)]
    pub check_samples: usize,
    /// Noise seed of the check samples.
    #[arg(long, default_value_t = 0)]
    pub noise_seed: u64,
    #[command(flatten)]
    pub sampler: TimeSamplerOpts,
    /// Points of the weight-decay and training-time sweeps drawn for each N < d (0 skips them).
    #[arg(long, default_value_t = 13)]
    pub sweep_points: usize,
    /// Output directory: linear.json, linear.csv and the plots.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SplitSide {
    A,
    B,
}

/// Training sets (nested: set N is a prefix of the largest) and the population.
struct Problem {
    /// The largest training set's rows; set N is its first N rows.
    rows: Vec<f32>,
    d: usize,
    truth: Truth,
    description: String,
}

pub fn run_linear(a: LinearArgs) -> Result<()> {
    let mut ns = a.n.clone();
    ns.sort_unstable();
    ns.dedup();
    if ns.first() == Some(&0) || ns.is_empty() {
        usage_bail!("--n needs positive training-set sizes");
    }
    let valid_time = a.train_time.is_none_or(|t| t > 0.0 && t.is_finite());
    if !(a.weight_decay.is_finite() && a.weight_decay >= 0.0 && valid_time) {
        usage_bail!("--weight-decay must be >= 0 and --train-time > 0");
    }
    let n_max = *ns.last().expect("non-empty");
    let problem = load_problem(&a, n_max)?;
    let d = problem.d;
    let schedule = DdpmSchedule::new(&ScheduleConfig::default())?;
    let sampler_cfg = a.sampler.config();
    let sampler = sampler_cfg.build(&schedule)?;
    let reg = Regularization { weight_decay: a.weight_decay, train_time: a.train_time };
    let cfg =
        AnalysisConfig { reg, check_samples: a.check_samples, noise_seed: a.noise_seed, batch_size: 256 };
    eprintln!("{}; d = {d}; N = {ns:?}", problem.description);
    let limit = limit_kl(&problem.truth, &schedule, sampler.as_ref(), reg)?;
    let bar = progress(ns.len());
    let mut results = Vec::new();
    let mut sweeps = Vec::new();
    for &n in &ns {
        bar.set_message(format!("N = {n}"));
        let rows = &problem.rows[..n * d];
        let fitted = Fitted::new(rows, &problem.truth).with_context(|| format!("N = {n}"))?;
        let r = analyse_fitted(&fitted, &problem.truth, &schedule, sampler.as_ref(), &cfg);
        results.push(r.with_context(|| format!("N = {n}"))?);
        if n < d && a.sweep_points > 0 {
            sweeps.push(sweep(&fitted, &problem.truth, &schedule, sampler.as_ref(), n, a.sweep_points)?);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let fit = excess_fit(&results, limit, d);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let record = LinearRecord {
        data: a.data.clone(),
        description: problem.description.clone(),
        d,
        truth: problem.truth.kind,
        truth_singular: problem.truth.singular.clone(),
        schedule: ScheduleConfig::default(),
        sampler: sampler_cfg,
        regularization: reg,
        threads: super::threads(),
        kl_limit: limit,
        kl_excess_fit: fit,
        results,
        sweeps,
    };
    memgen_io::write_json(&a.out.join("linear.json"), &record)?;
    let LinearRecord { results, sweeps, .. } = record;
    memgen_io::write_atomic(&a.out.join("linear.csv"), csv(&results, limit).as_bytes())?;
    plots(&a.out, &results, &sweeps, limit, d)?;
    say_text!("{}", table(&problem, &results, limit, fit));
    say!("-> {}", a.out.display());
    super::output::result(serde_json::json!({
        "out": a.out,
        "linear_json": a.out.join("linear.json"),
        "linear_csv": a.out.join("linear.csv"),
        "d": d,
        "kl_limit": limit,
        "kl_excess_fit": fit.map(|f| serde_json::json!({ "slope": f.slope, "constant": f.constant })),
        "results": results,
    }));
    Ok(())
}

fn progress(len: usize) -> indicatif::ProgressBar {
    memgen_io::progress::bar(len as u64, "linear", "", false)
}

/// The training sets and the population of `--data`.
fn load_problem(a: &LinearArgs, n_max: usize) -> Result<Problem> {
    if let Some(spec) = a.data.strip_prefix("gaussian") {
        return gaussian_problem(spec.strip_prefix(':').unwrap_or(spec), a, n_max);
    }
    let dir = Path::new(&a.data);
    let ds = PreparedDataset::read(dir).with_context(|| format!("--data {}", dir.display()))?;
    let m = &ds.manifest;
    if a.side.is_some_and(|s| s != m.height || s != m.width) {
        bail!(
            "--side {} does not match {} ({}x{}); prepare the data at that side",
            a.side.unwrap_or(0),
            dir.display(),
            m.height,
            m.width
        );
    }
    let split = memgen_data::split::NestedSplit::new(m.count, m.groups.as_deref(), a.split_seed);
    let (sa, sb) = split.subsets(n_max).with_context(|| format!("--n {n_max} on {}", dir.display()))?;
    let train = if a.split == SplitSide::A { sa } else { sb };
    let used: std::collections::HashSet<usize> = sa.iter().chain(sb).copied().collect();
    let held: Vec<usize> = (0..m.count).filter(|i| !used.contains(i)).collect();
    let d = ds.image_len();
    if held.len() < 2 {
        bail!(
            "{}: no images are left outside both training sides at N = {n_max} to estimate the population",
            dir.display()
        );
    }
    let rows: Vec<f32> = train.iter().flat_map(|&i| ds.image(i).to_vec()).collect();
    let held_rows: Vec<f32> = held.iter().flat_map(|&i| ds.image(i).to_vec()).collect();
    let truth = Truth::estimated(&held_rows, d)?;
    let description = format!(
        "{} ({} images of {}x{}): population = Gaussian with the moments of {} held-out images",
        dir.display(),
        m.count,
        m.height,
        m.width,
        held.len()
    );
    Ok(Problem { rows, d, truth, description })
}

/// Gaussian data: training images 0..N of the stream, the exact N(μ, Σ) as the population.
fn gaussian_problem(spec: &str, a: &LinearArgs, n_max: usize) -> Result<Problem> {
    let side = a.side.context("gaussian data needs --side (d = side²)")?;
    let cfg = gaussian_config(spec, a.seed)?;
    let (rows, truth) = gaussian_data(&cfg, side, n_max)?;
    let d = side * side;
    Ok(Problem { rows, d, truth, description: gaussian_description(&cfg, side) })
}

/// The Gaussian source of `--data gaussian[:SPEC]` (SPEC without the `gaussian:` prefix; empty for the
/// default spectrum) whose training images come from `seed`.
pub(super) fn gaussian_config(spec: &str, seed: u64) -> Result<GaussianConfig> {
    let mut cfg = GaussianConfig { seed, ..Default::default() };
    if !spec.is_empty() {
        cfg.spectrum =
            super::data::parse_spectrum(spec).map_err(|e| anyhow::anyhow!("--data gaussian:{spec}: {e}"))?;
    }
    Ok(cfg)
}

/// "Gaussian SxS, λ_k = …, DCT basis, mean …".
pub(super) fn gaussian_description(cfg: &GaussianConfig, side: usize) -> String {
    let spectrum = match cfg.spectrum {
        GaussSpectrum::PowerLaw { exponent, scale } => format!("λ_k = {scale} k^-{exponent}"),
        GaussSpectrum::Flat { variance } => format!("λ_k = {variance}"),
    };
    format!("Gaussian {side}x{side}, {spectrum}, DCT basis, mean {}", cfg.mean)
}

/// Images 0..n of the Gaussian stream `cfg` (rows of side² f32) and its exact N(μ, Σ).
pub(super) fn gaussian_data(cfg: &GaussianConfig, side: usize, n: usize) -> Result<(Vec<f32>, Truth)> {
    use rayon::prelude::*;
    memgen_data::gaussian::GaussianSource::new(cfg.clone(), side)?;
    let d = side * side;
    let images: Vec<Vec<f32>> =
        (0..n as u64).into_par_iter().map(|k| memgen_data::gaussian::sample(cfg, side, k).pixels).collect();
    let cov = memgen_data::gaussian::covariance(cfg, side);
    let truth = Truth::new(vec![cfg.mean; d], Mat::from_fn(d, d, |i, j| cov[i * d + j]), TruthKind::Exact);
    Ok((images.concat(), truth))
}

pub(super) fn fmt(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_infinite() => "inf".into(),
        Some(x) => format!("{x:.4e}"),
        None => "-".into(),
    }
}

fn table(p: &Problem, results: &[NResult], limit: Option<f64>, fit: Option<ExcessFit>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}\nd = {}; KL of the N → ∞ limit (sampler discretisation): {}",
        p.description,
        p.d,
        fmt(limit)
    );
    let _ = writeln!(s, "| N | rank Σ0 | train loss | test loss | c range(Σ0) | c null(Σ0) | KL | KL − KL∞ | KL samples | E[fit KL] | d(d+3)/4N |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let excess = r.kl.zip(limit).map(|(k, l)| k - l);
        let _ = writeln!(
            s,
            "| {} | {} | {:.4e} | {:.4e} | {} | {} | {} | {} | {} | {} | {} |",
            r.n,
            r.rank,
            r.train_loss,
            r.test_loss,
            fmt(r.c_range.map(|c| c.mean)),
            fmt(r.c_null.map(|c| c.mean)),
            fmt(r.kl),
            fmt(excess),
            fmt(r.kl_samples),
            fmt(r.expected_fit_kl),
            fmt(r.fit_kl_asymptote)
        );
    }
    if let Some(ExcessFit { slope, constant: c, .. }) = fit {
        let _ =
            writeln!(s, "KL − KL∞ ≈ {c:.4} · N^{slope:.3} over N > d (d(d+3)/4 = {})", p.d * (p.d + 3) / 4);
    }
    s
}

fn csv(results: &[NResult], limit: Option<f64>) -> String {
    let mut s = String::from("n,d,rank,train_loss,test_loss,c_mean,c_min,c_max,kl,kl_excess,kl_samples,expected_fit_kl,fit_kl_asymptote,seconds\n");
    let o = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for r in results {
        let excess = r.kl.zip(limit).map(|(k, l)| k - l);
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

/// linear-kl, linear-loss and (for N < d) linear-weight-decay / linear-train-time, as SVG and PNG.
fn plots(out: &Path, results: &[NResult], sweeps: &[Sweep], limit: Option<f64>, d: usize) -> Result<()> {
    let pts = |f: &dyn Fn(&NResult) -> Option<f64>| -> Vec<(f64, f64)> {
        results.iter().filter_map(|r| f(r).map(|v| (r.n as f64, v))).collect()
    };
    let kl = pts(&|r| r.kl);
    let excess = pts(&|r| r.kl.zip(limit).map(|(k, l)| k - l));
    let samples = pts(&|r| r.kl_samples);
    let expected = pts(&|r| r.expected_fit_kl);
    let asym = pts(&|r| r.fit_kl_asymptote);
    let vline = vec![(d as f64, format!("N = d = {d}"))];
    let plot = LinePlot {
        title: "KL(rho_N / rho) of the linear denoiser".into(),
        x_label: "training images N".into(),
        y_label: "KL".into(),
        series: vec![
            LineSeries { name: "KL (composed maps)".into(), points: &kl, style: LineStyle::LineAndMarkers },
            LineSeries { name: "KL - KL(N = inf)".into(), points: &excess, style: LineStyle::LineAndMarkers },
            LineSeries { name: "KL from samples".into(), points: &samples, style: LineStyle::Markers },
            LineSeries {
                name: "E(KL) of a Gaussian fit".into(),
                points: &expected,
                style: LineStyle::Dashed,
            },
            LineSeries { name: "d(d+3)/4N".into(), points: &asym, style: LineStyle::Dashed },
        ],
        log_x: true,
        log_y: true,
        vlines: vline.clone(),
    };
    save_plot(out, "linear-kl", &plot)?;
    let (train, test) = (pts(&|r| Some(r.train_loss)), pts(&|r| Some(r.test_loss)));
    let plot = LinePlot {
        title: "Denoising loss summed over t".into(),
        x_label: "training images N".into(),
        y_label: "loss".into(),
        series: vec![
            LineSeries { name: "test".into(), points: &test, style: LineStyle::LineAndMarkers },
            LineSeries { name: "train".into(), points: &train, style: LineStyle::LineAndMarkers },
        ],
        log_x: true,
        log_y: true,
        vlines: vline,
    };
    save_plot(out, "linear-loss", &plot)?;
    if !sweeps.is_empty() {
        sweep_plot(out, "linear-weight-decay", "weight decay lambda", sweeps, |s| &s.weight_decay)?;
        sweep_plot(out, "linear-train-time", "training time tau", sweeps, |s| &s.train_time)?;
    }
    Ok(())
}

fn sweep_plot(
    out: &Path,
    name: &str,
    x: &str,
    sweeps: &[Sweep],
    f: impl Fn(&Sweep) -> &Vec<(f64, f64, Option<f64>)>,
) -> Result<()> {
    let curves: Vec<Vec<(f64, f64)>> =
        sweeps.iter().map(|s| f(s).iter().filter_map(|&(x, _, kl)| kl.map(|k| (x, k))).collect()).collect();
    let plot = LinePlot {
        title: format!("KL vs {x} (N < d)"),
        x_label: x.into(),
        y_label: "KL".into(),
        series: sweeps
            .iter()
            .zip(&curves)
            .map(|(s, c)| LineSeries {
                name: format!("N = {}", s.n),
                points: c,
                style: LineStyle::LineAndMarkers,
            })
            .collect(),
        log_x: true,
        log_y: true,
        vlines: vec![],
    };
    save_plot(out, name, &plot)
}

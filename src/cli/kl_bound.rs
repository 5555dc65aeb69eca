//! `memgen kl-bound`: the KL bound from denoising errors (Kadkhodaie et al. 2024) on Gaussian data,
//! where the optimal denoiser is known, next to the linear model's exact KL divergences.

mod plots;

use super::sample::TimeSamplerOpts;
use anyhow::{bail, Context, Result};
use clap::Args;
use memgen_analysis::klbound::{
    linear_limit, linear_rows, optimal_check, KlBoundRecord, McConfig, RunRow, SigmaGrid, FORMULA,
};
use memgen_analysis::{ModelDenoiser, WienerDenoiser};
use memgen_data::gaussian::GaussianConfig;
use memgen_diffusion::run::{RunConfig, SplitRecord};
use memgen_diffusion::{DdpmSchedule, ScheduleConfig};
use memgen_io::read_json;
use memgen_linear::problem::{gaussian_config, gaussian_data, gaussian_description};
use memgen_linear::theory::Regularization;
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
    let (rows, truth) = gaussian_data(&cfg, side, *ns.last().expect("non-empty"))?;
    let truth_den = truth_denoiser(&cfg, side)?;
    let description = gaussian_description(&cfg, side);
    let sampler_cfg = a.sampler.config();
    let sampler = sampler_cfg.build(&schedule)?;
    let reg = Regularization::default();
    eprintln!("{description}; d = {d}; N = {ns:?}; σ from {sigma_min:.4e} to {sigma_max:.4e}");

    let linear = linear_rows(&rows, &ns, &truth, &truth_den, &grid, &schedule, sampler.as_ref(), reg)?;
    let limit = linear_limit(&truth, &schedule, sampler.as_ref(), reg)?;
    let mc = McConfig { count: a.mc_samples, batch: a.batch_size, seed: a.mc_seed, ..Default::default() };
    let optimal = optimal_check(&truth_den, &[1, side, side], &grid, &run_grid, &mc)?;
    let mut runs = Vec::new();
    for run in &a.run {
        let (n, den) =
            gaussian_run(run, &cfg, side, !a.no_ema).with_context(|| format!("--run {}", run.display()))?;
        let row = RunRow::new(run.clone(), n, !a.no_ema, &den, &truth_den, &[1, side, side], &run_grid, &mc);
        runs.push(row.with_context(|| format!("--run {}", run.display()))?);
    }

    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let record = KlBoundRecord {
        data: a.data.clone(),
        description,
        d,
        side,
        seed: a.seed,
        formula: FORMULA.into(),
        sigma_min,
        sigma_max,
        points: a.points,
        run_points: a.run_points,
        mc_samples: a.mc_samples,
        mc_seed: a.mc_seed,
        schedule: ScheduleConfig::default(),
        sampler: sampler_cfg,
        kl_linear_limit: limit,
        threads: super::threads(),
        optimal,
        linear,
        runs,
    };
    memgen_io::write_json(&a.out.join("kl-bound.json"), &record)?;
    memgen_io::write_atomic(&a.out.join("kl-bound.csv"), record.csv().as_bytes())?;
    plots::plots(&a.out, &record)?;
    say_text!("{}", record.table());
    say!("-> {}", a.out.display());
    super::output::result(serde_json::json!({
        "out": a.out,
        "kl_bound_json": a.out.join("kl-bound.json"),
        "kl_bound_csv": a.out.join("kl-bound.csv"),
        "d": d,
        "sigma_min": sigma_min,
        "sigma_max": sigma_max,
        "linear": record.linear,
        "runs": record.runs,
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

/// The training images and the network of a run trained on the Gaussian source `cfg` at `side`
/// (checked against the run's dataset manifest).
fn gaussian_run(run: &Path, cfg: &GaussianConfig, side: usize, ema: bool) -> Result<(usize, ModelDenoiser)> {
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
    Ok((split.indices.len(), den))
}

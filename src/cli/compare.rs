//! `memgen compare` (two models driven by the same noise, or with `--oracle`/`--linear` the baseline
//! denoisers of the two sides of a split) and `memgen memorization` (one model); the stages themselves
//! are [`memgen_pipeline::compare`].

use super::sample::SamplerOpts;
use super::train::ScheduleArg;
use anyhow::{Context, Result};
use clap::Args;
use memgen_metrics::CompareConfig;
use memgen_pipeline::compare::{
    compare, default_dir_of_runs, memorization, write_compare, write_memorization, Baseline, BaselinePair,
    CompareInputs, CompareRecord, ComparedPair, MemorizationInputs,
};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  memgen compare runs/demo/runs/n1000-a runs/demo/runs/n1000-b --noise-seed 1 --count 64\n  \
memgen compare runs/demo/runs/n10-a runs/demo/runs/n10-b --sampler ddim --ddim-steps 50 --out runs/cmp-n10\n  \
memgen compare --oracle --data runs/demo/data --n 10 --count 16   # the empirical optimal denoisers of S_A(10), S_B(10)\n  \
memgen compare --linear --data runs/demo/data --n 100 --sampler ddim --ddim-steps 50   # the Gaussian denoisers of S_A(100), S_B(100)\n  \
memgen --json compare runs/demo/runs/n100-a runs/demo/runs/n100-b --count 16 --device cpu"
)]
pub struct CompareArgs {
    /// Run of model A (from `memgen train`); not with --oracle or --linear.
    #[arg(required_unless_present_any = ["oracle", "linear"], conflicts_with_all = ["oracle", "linear"])]
    pub run_a: Option<PathBuf>,
    /// Run of model B, trained on a set disjoint from A's; not with --oracle or --linear.
    #[arg(required_unless_present_any = ["oracle", "linear"], conflicts_with_all = ["oracle", "linear"])]
    pub run_b: Option<PathBuf>,
    /// Noise seed shared by both models: draw k drives sample k of A and sample k of B.
    #[arg(long, default_value_t = 0)]
    pub noise_seed: u64,
    /// Number of noise draws.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    #[command(flatten)]
    pub sampler: SamplerOpts,
    #[command(flatten)]
    pub thresholds: Thresholds,
    /// Noise draws shown in compare.png (the first R).
    #[arg(long, default_value_t = 8)]
    pub figure_rows: usize,
    /// Held-out images for the novelty reference (each one's best correlation to S_A, what a fresh
    /// image scores): up to this many dataset images in neither training set, evenly spaced over
    /// them; 0: none.
    #[arg(long, default_value_t = 256)]
    pub held_out: usize,
    /// Output directory (default RUN_A/compare/<name of RUN_B>-seed-S; with --oracle
    /// DIR/oracle/compare-n<N>-seed-S, with --linear DIR/linear/compare-n<N>-seed-S).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub oracle: CompareOracleOpts,
}

/// `memgen compare --oracle` or `--linear`: two baseline denoisers of S_A(N) and S_B(N) instead of
/// two runs (the flags of `memgen sample --oracle`, less --split: both sides are used).
#[derive(Debug, Args)]
pub struct CompareOracleOpts {
    /// Compare the empirical optimal denoisers (the ideal memorizers) of the two sides S_A(N), S_B(N)
    /// of the nested split of a prepared dataset instead of two trained runs. CPU only.
    #[arg(long, requires = "data", requires = "n")]
    pub oracle: bool,
    /// Compare the Gaussian (linear) denoisers of S_A(N) and S_B(N), each built from its set's mean
    /// and covariance (the closed form of `memgen linear`), sampled with the networks' sampler and
    /// noise: what agreement two models reach that learned only the data's first two moments.
    /// DDPM and DDIM, or with --blind the blind sampler; CPU only.
    #[arg(long, requires = "data", requires = "n", conflicts_with = "oracle")]
    pub linear: bool,
    /// --linear: sample the blind stochastic sampler (--h0, --beta, --sigma-l, --max-steps), the
    /// Gaussian denoiser reading its noise level off each input by maximum likelihood, as a blind
    /// network must (for comparisons with blind models).
    #[arg(long, requires = "linear")]
    pub blind: bool,
    /// --oracle/--linear: prepared dataset directory.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// --oracle/--linear: training-set size N of each side.
    #[arg(long)]
    pub n: Option<usize>,
    /// --oracle/--linear: seed of the nested split.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// --oracle/--linear: beta schedule (betas 1e-4 .. 0.02 for linear).
    #[arg(long, value_enum, default_value_t = ScheduleArg::Linear)]
    pub schedule: ScheduleArg,
    /// --oracle/--linear: diffusion steps T.
    #[arg(long, default_value_t = 1000)]
    pub diffusion_steps: usize,
}

impl CompareOracleOpts {
    /// Which baseline, if any: "oracle" or "linear".
    fn baseline(&self) -> Option<&'static str> {
        match (self.oracle, self.linear) {
            (true, _) => Some("oracle"),
            (_, true) => Some("linear"),
            _ => None,
        }
    }

    /// The baseline pair of S_A(N), S_B(N) of `data`, N = `n`.
    fn pair(&self, data: PathBuf, n: usize) -> BaselinePair {
        BaselinePair {
            baseline: if self.oracle { Baseline::Oracle } else { Baseline::Linear { blind: self.blind } },
            data,
            n,
            split_seed: self.split_seed,
            schedule: super::sample::schedule(self.schedule, self.diffusion_steps),
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  memgen memorization runs/demo/runs/n10-a --samples runs/demo/runs/n10-a/samples/seed-1/samples.safetensors\n  \
memgen memorization runs/demo/runs/n1000-a --samples runs/demo/runs/n1000-a/samples/seed-1/samples.safetensors --corr-threshold 0.9 --out runs/mem-n1000"
)]
pub struct MemorizationArgs {
    /// Run whose training set the samples are scored against.
    pub run: PathBuf,
    /// Samples: a samples.safetensors from `memgen sample`, or any safetensors file with one
    /// (count, C, H, W) tensor.
    #[arg(long)]
    pub samples: PathBuf,
    #[command(flatten)]
    pub thresholds: Thresholds,
    /// Samples shown in memorization.png (the first R).
    #[arg(long, default_value_t = 16)]
    pub figure_rows: usize,
    /// Output directory (default: the directory of the samples file).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The memorization and agreement thresholds.
#[derive(Debug, Args)]
pub struct Thresholds {
    /// Memorized (and, for two models, agreeing) when the correlation exceeds this.
    #[arg(long, default_value_t = 0.95)]
    pub corr_threshold: f64,
    /// Memorized when ‖x − NN1‖ / ‖x − NN2‖ is below this.
    #[arg(long, default_value_t = 1.0 / 3.0)]
    pub ratio_threshold: f64,
}

impl Thresholds {
    fn config(&self) -> Result<CompareConfig> {
        if !(-1.0..=1.0).contains(&self.corr_threshold) {
            return Err(super::output::usage(format!(
                "--corr-threshold must lie in [-1, 1], got {}",
                self.corr_threshold
            )));
        }
        if !(self.ratio_threshold > 0.0 && self.ratio_threshold <= 1.0) {
            return Err(super::output::usage(format!(
                "--ratio-threshold must lie in (0, 1], got {}",
                self.ratio_threshold
            )));
        }
        Ok(CompareConfig { corr_threshold: self.corr_threshold, ratio_threshold: self.ratio_threshold })
    }
}

pub fn run_compare(a: CompareArgs) -> Result<()> {
    let thresholds = a.thresholds.config()?;
    if a.count == 0 {
        return Err(super::output::usage("--count 0: expected at least 1 noise draw"));
    }
    let dev = a.sampler.device(a.oracle.baseline().map(|kind| match kind {
        "oracle" => "the empirical optimal denoiser of --oracle",
        _ => "the Gaussian denoiser of --linear",
    }))?;
    if let Some(kind) = a.oracle.baseline() {
        return run_compare_baseline(&a, &thresholds, kind);
    }
    if a.oracle.data.is_some() || a.oracle.n.is_some() {
        return Err(super::output::usage("--data and --n choose the training sets of --oracle or --linear"));
    }
    let (Some(run_a), Some(run_b)) = (&a.run_a, &a.run_b) else {
        return Err(super::output::usage("compare needs RUN_A and RUN_B (or --oracle or --linear)"));
    };
    super::output::input("RUN_A", run_a, "a run directory from `memgen train`")?;
    super::output::input("RUN_B", run_b, "a run directory from `memgen train`")?;
    let out = a.out.clone().unwrap_or_else(|| default_dir_of_runs(run_a, run_b, a.noise_seed));
    let cfg = a.sampler.config(a.noise_seed, a.count);
    let inputs = CompareInputs::runs(run_a, run_b, &cfg, &dev, a.held_out, &out)?;
    let pair = ComparedPair::Runs { run_a: run_a.clone(), run_b: run_b.clone() };
    finish_compare(&compare(pair, &inputs, &thresholds)?, &inputs, a.figure_rows, &out)
}

/// `memgen compare --oracle` (`kind` "oracle"): the empirical optimal denoisers of S_A(N) and
/// S_B(N), or `--linear` ("linear"): their Gaussian denoisers; the sets selected exactly as
/// `memgen sample --oracle --split a|b` (and `memgen train`) select them.
fn run_compare_baseline(a: &CompareArgs, thresholds: &CompareConfig, kind: &str) -> Result<()> {
    let o = &a.oracle;
    let data = o.data.clone().with_context(|| format!("--{kind} needs --data DIR (the prepared dataset)"))?;
    let n = o.n.with_context(|| format!("--{kind} needs --n N (the training-set size of each side)"))?;
    super::output::input("--data", &data, "a prepared dataset directory from `memgen data prepare`")?;
    let pair = o.pair(data, n);
    let out = a.out.clone().unwrap_or_else(|| pair.default_dir(a.noise_seed));
    let cfg = a.sampler.config(a.noise_seed, a.count);
    let inputs = CompareInputs::baseline(&pair, &cfg, a.held_out, &out)?;
    finish_compare(&compare(pair.record(), &inputs, thresholds)?, &inputs, a.figure_rows, &out)
}

/// The `--json` result of `memgen compare`: the files written and the headline numbers.
#[derive(Debug, Serialize)]
struct CompareResult<'a> {
    out: &'a Path,
    compare_json: PathBuf,
    compare_csv: PathBuf,
    figure: PathBuf,
    count: usize,
    n_a: usize,
    n_b: usize,
    agree: f64,
    in_range_a: Option<f64>,
    in_range_b: Option<f64>,
    corr_ab_median: Option<f64>,
    a_memorized_by_corr: f64,
    b_memorized_by_corr: f64,
}

/// Write the comparison's files into `out`, print its summary table and record its `--json` result.
fn finish_compare(
    record: &CompareRecord,
    inputs: &CompareInputs,
    figure_rows: usize,
    out: &Path,
) -> Result<()> {
    write_compare(out, record, inputs, figure_rows)?;
    say_text!("{}", record.text());
    say!("-> {}", out.display());
    let cmp = &record.comparison;
    super::output::result(serde_json::to_value(CompareResult {
        out,
        compare_json: out.join("compare.json"),
        compare_csv: out.join("compare.csv"),
        figure: out.join("compare.png"),
        count: cmp.pairs.len(),
        n_a: record.n_a,
        n_b: record.n_b,
        agree: cmp.agree,
        in_range_a: cmp.a.in_range,
        in_range_b: cmp.b.in_range,
        corr_ab_median: cmp.corr_ab.median,
        a_memorized_by_corr: cmp.a.own.memorized_by_corr,
        b_memorized_by_corr: cmp.b.own.memorized_by_corr,
    })?);
    Ok(())
}

/// The `--json` result of `memgen memorization`.
#[derive(Debug, Serialize)]
struct MemorizationResult<'a> {
    out: &'a Path,
    memorization_json: PathBuf,
    memorization_csv: PathBuf,
    figure: PathBuf,
    count: usize,
    n_train: usize,
    memorized_by_corr: f64,
    memorized_by_ratio: f64,
    corr_median: Option<f64>,
}

pub fn run_memorization(a: MemorizationArgs) -> Result<()> {
    let thresholds = a.thresholds.config()?;
    super::output::input("RUN", &a.run, "a run directory from `memgen train`")?;
    super::output::input("--samples", &a.samples, "a samples.safetensors from `memgen sample`")?;
    let inputs = MemorizationInputs::load(&a.run, &a.samples)?;
    let out = a.out.clone().unwrap_or_else(|| a.samples.parent().unwrap_or(Path::new(".")).to_path_buf());
    let record = memorization(&inputs, &thresholds)?;
    write_memorization(&out, &record, &inputs, a.figure_rows)?;
    say_text!("{}", record.text());
    say!("-> {}", out.display());
    super::output::result(serde_json::to_value(MemorizationResult {
        out: &out,
        memorization_json: out.join("memorization.json"),
        memorization_csv: out.join("memorization.csv"),
        figure: out.join("memorization.png"),
        count: record.count,
        n_train: record.n_train,
        memorized_by_corr: record.summary.memorized_by_corr,
        memorized_by_ratio: record.summary.memorized_by_ratio,
        corr_median: record.summary.corr.median,
    })?);
    Ok(())
}

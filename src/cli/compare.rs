//! `memgen compare` (two models driven by the same noise, or with `--oracle` the empirical optimal
//! denoisers of the two sides of a split) and `memgen memorization` (one model).

use super::sample::{
    default_dir, reusable, sample_into, sample_linear_into, sample_oracle_into, OracleOpts, SamplerOpts,
};
use super::train::{ScheduleArg, SideArg};
use anyhow::{bail, Context, Result};
use clap::Args;
use memgen_data::dataset::PreparedDataset;
use memgen_diffusion::generate::{load_samples, GenerateConfig, Generated};
use memgen_diffusion::run::{read_json, select, write_json, RunConfig, SplitRecord};
use memgen_metrics::scores::{MemorizationSummary, PairScores};
use memgen_metrics::{CompareConfig, Comparison, Images, MemorizationScore};
use memgen_plot::figure::{Cell, LabeledTable, TableConfig};
use memgen_plot::font;
use memgen_plot::histogram::{save_rgb_png, save_svg, HistogramPlot, Series};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;

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

    /// The `memgen sample --oracle` options of one side, for N = `n`.
    fn side(&self, data: &Path, split: SideArg, n: usize) -> OracleOpts {
        OracleOpts {
            oracle: true,
            data: Some(data.to_path_buf()),
            split,
            n: Some(n),
            split_seed: self.split_seed,
            indices: None,
            schedule: self.schedule,
            diffusion_steps: self.diffusion_steps,
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

/// A model's training images: a prepared dataset and the indices trained on.
struct TrainingSet {
    data: Rc<PreparedDataset>,
    indices: Vec<usize>,
}

impl TrainingSet {
    /// The images `indices` of `data` (each must be below the dataset's count).
    fn new(data: Rc<PreparedDataset>, indices: Vec<usize>) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= data.manifest.count) {
            bail!("training index {bad} is beyond the dataset's {} images", data.manifest.count);
        }
        Ok(TrainingSet { data, indices })
    }

    /// The training set of a run: its dataset and the indices of split.json.
    fn load(run: &Path) -> Result<Self> {
        let cfg = RunConfig::load(run).with_context(|| format!("{} is not a training run", run.display()))?;
        let split: SplitRecord = read_json(&run.join("split.json"))?;
        let data = PreparedDataset::read(&cfg.data.dir)
            .with_context(|| format!("reading the training data of {}", run.display()))?;
        if data.manifest.content_hash != split.content_hash {
            bail!(
                "{}: the dataset {} changed since the run was trained (content hash {} vs {})",
                run.display(),
                cfg.data.dir.display(),
                data.manifest.content_hash,
                split.content_hash
            );
        }
        TrainingSet::new(Rc::new(data), split.indices)
            .with_context(|| format!("{}: split.json", run.display()))
    }

    fn images(&self) -> Result<Images<'_>> {
        Ok(Images::subset(&self.data.pixels, self.data.image_len(), &self.indices)?)
    }

    fn image(&self, dataset_index: usize) -> &[f32] {
        self.data.image(dataset_index)
    }

    fn dims(&self) -> [usize; 3] {
        let m = &self.data.manifest;
        [m.channels, m.height, m.width]
    }
}

/// Samples: shape (K, C, H, W) and pixels.
type Samples = ([usize; 4], Vec<f32>);

/// `reused` (the samples of `dir`, when they match) or, when there are none, samples drawn by `draw`
/// into `dir` (or into `fallback` when `dir` already holds other samples).
fn reuse_or_draw(
    dir: PathBuf,
    reused: Option<Samples>,
    fallback: &Path,
    draw: impl FnOnce(&Path) -> Result<Generated>,
) -> Result<Samples> {
    if let Some(s) = reused {
        eprintln!("reusing {} samples of {}", s.0[0], dir.display());
        return Ok(s);
    }
    let target = if dir.join("samples.safetensors").exists() { fallback.to_path_buf() } else { dir };
    let g = draw(&target)?;
    Ok((g.dims, g.pixels))
}

/// Samples of `run` for `cfg`: reused from RUN/samples/seed-S when they match, else drawn and saved
/// there on `dev` (or, when that directory holds other samples, under `fallback`).
fn samples_for(run: &Path, cfg: &GenerateConfig, dev: &candle::Device, fallback: &Path) -> Result<Samples> {
    let dir = default_dir(run, cfg.noise_seed);
    let reused = reusable(&dir, cfg);
    reuse_or_draw(dir, reused, fallback, |target| sample_into(run, cfg, dev, target, false))
}

/// Samples of the empirical optimal denoiser of `train` (the side `opts` selects) for `cfg`: reused
/// from the default directory of `memgen sample --oracle` when they match (sampler and noise as
/// [`reusable`] checks, and the same dataset, training indices and schedule), else drawn and saved
/// there (or, when that directory holds other samples, under `fallback`).
fn oracle_samples_for(
    data: &Path,
    opts: &OracleOpts,
    train: &TrainingSet,
    cfg: &GenerateConfig,
    fallback: &Path,
) -> Result<Samples> {
    let dir = opts.default_dir(data, cfg.noise_seed);
    let same_oracle = || -> Option<bool> {
        let meta: serde_json::Value = read_json(&dir.join("samples.json")).ok()?;
        let o = meta.get("oracle")?;
        let indices: Vec<usize> = serde_json::from_value(o.get("indices")?.clone()).ok()?;
        // Both schedules parsed from their JSON text, so that float parsing cannot tell them apart.
        let schedule: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&opts.schedule()).ok()?).ok()?;
        Some(
            o.get("content_hash")?.as_str()? == train.data.manifest.content_hash
                && indices == train.indices
                && o.get("schedule")? == &schedule,
        )
    };
    let reused = reusable(&dir, cfg).filter(|_| same_oracle() == Some(true));
    reuse_or_draw(dir, reused, fallback, |target| sample_oracle_into(data, opts, cfg, target, false))
}

/// Check that two training sets can be compared (same image shape) and warn when they share images;
/// the number shared.
fn check_training_sets(train_a: &TrainingSet, train_b: &TrainingSet, what: &str) -> Result<usize> {
    if train_a.dims() != train_b.dims() {
        bail!("{what} train on images of different shapes: {:?} vs {:?}", train_a.dims(), train_b.dims());
    }
    let overlap = shared_images(train_a, train_b);
    if overlap > 0 {
        eprintln!("warning: the two training sets share {overlap} images (they should be disjoint)");
    }
    Ok(overlap)
}

/// Everything `memgen compare` knows once both training sets and both sample sets are in hand.
struct Experiment {
    train_a: TrainingSet,
    train_b: TrainingSet,
    samples_a: Samples,
    samples_b: Samples,
    /// The shared sampler and noise.
    cfg: GenerateConfig,
    /// Images both training sets hold ([`check_training_sets`]).
    overlap: usize,
    /// Most held-out images of the novelty reference ([`held_out`]).
    held_out: usize,
}

/// Up to `max` dataset indices in neither training set (none when the two sets come from different
/// datasets), evenly spaced over all such images so that no part of the dataset's order dominates.
fn held_out(a: &TrainingSet, b: &TrainingSet, max: usize) -> Vec<usize> {
    if a.data.manifest.content_hash != b.data.manifest.content_hash {
        return Vec::new();
    }
    let used: std::collections::HashSet<usize> = a.indices.iter().chain(&b.indices).copied().collect();
    let free: Vec<usize> = (0..a.data.manifest.count).filter(|i| !used.contains(i)).collect();
    memgen_analysis::generalization::evenly_spaced(&free, max)
}

pub fn run_compare(a: CompareArgs) -> Result<()> {
    let thresholds = a.thresholds.config()?;
    if a.count == 0 {
        return Err(super::output::usage("--count 0: expected at least 1 noise draw"));
    }
    let dev = a.sampler.device(a.oracle.baseline().is_some())?;
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
    let name_b = run_b.file_name().map_or("b".into(), |n| n.to_string_lossy().into_owned());
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| run_a.join("compare").join(format!("{name_b}-seed-{}", a.noise_seed)));
    let (train_a, train_b) = (TrainingSet::load(run_a)?, TrainingSet::load(run_b)?);
    let overlap = check_training_sets(&train_a, &train_b, "the runs")?;
    let cfg = a.sampler.config(a.noise_seed, a.count);
    let samples_a = samples_for(run_a, &cfg, &dev, &out.join("samples-a"))?;
    let samples_b = samples_for(run_b, &cfg, &dev, &out.join("samples-b"))?;
    let settings = serde_json::json!({ "run_a": run_a, "run_b": run_b });
    let e = Experiment { train_a, train_b, samples_a, samples_b, cfg, overlap, held_out: a.held_out };
    score_and_write(&e, settings, &thresholds, a.figure_rows, &out)
}

/// `memgen compare --oracle` (`kind` "oracle"): the empirical optimal denoisers of S_A(N) and
/// S_B(N), or `--linear` ("linear"): their Gaussian denoisers; the sets selected exactly as
/// `memgen sample --oracle --split a|b` (and `memgen train`) select them.
fn run_compare_baseline(a: &CompareArgs, thresholds: &CompareConfig, kind: &str) -> Result<()> {
    let o = &a.oracle;
    let data = o.data.clone().with_context(|| format!("--{kind} needs --data DIR (the prepared dataset)"))?;
    let n = o.n.with_context(|| format!("--{kind} needs --n N (the training-set size of each side)"))?;
    super::output::input("--data", &data, "a prepared dataset directory from `memgen data prepare`")?;
    let (opts_a, opts_b) = (o.side(&data, SideArg::A, n), o.side(&data, SideArg::B, n));
    let ds = Rc::new(PreparedDataset::read(&data).with_context(|| format!("reading {}", data.display()))?);
    let indices_a = select(&ds, &opts_a.selection()).context("selecting S_A")?;
    let indices_b = select(&ds, &opts_b.selection()).context("selecting S_B")?;
    let (train_a, train_b) = (TrainingSet::new(ds.clone(), indices_a)?, TrainingSet::new(ds, indices_b)?);
    let overlap = check_training_sets(&train_a, &train_b, "the two sides")?;
    let split = if o.split_seed == 0 { String::new() } else { format!("-split{}", o.split_seed) };
    let out = a.out.clone().unwrap_or_else(|| {
        let blind = if o.blind { "-blind" } else { "" };
        data.join(kind).join(format!("compare-n{n}{split}{blind}-seed-{}", a.noise_seed))
    });
    let cfg = a.sampler.config(a.noise_seed, a.count);
    let (samples_a, samples_b) = if kind == "oracle" {
        (
            oracle_samples_for(&data, &opts_a, &train_a, &cfg, &out.join("samples-a"))?,
            oracle_samples_for(&data, &opts_b, &train_b, &cfg, &out.join("samples-b"))?,
        )
    } else {
        let draw = |opts: &OracleOpts, dir: &str| -> Result<Samples> {
            let g = sample_linear_into(&data, opts, o.blind, &cfg, &out.join(dir), false)?;
            Ok((g.dims, g.pixels))
        };
        (draw(&opts_a, "samples-a")?, draw(&opts_b, "samples-b")?)
    };
    let mut settings = serde_json::json!({
        kind: true, "data": data, "n": n, "split_seed": o.split_seed, "schedule": opts_a.schedule(),
    });
    if o.linear {
        settings["blind"] = o.blind.into();
    }
    let e = Experiment { train_a, train_b, samples_a, samples_b, cfg, overlap, held_out: a.held_out };
    score_and_write(&e, settings, thresholds, a.figure_rows, &out)
}

/// Score the experiment and write compare.json (`settings`, an object, plus the shared record),
/// compare.csv, compare.png and compare-hist.svg/.png into `out`; print the summary table.
fn score_and_write(
    e: &Experiment,
    settings: serde_json::Value,
    thresholds: &CompareConfig,
    figure_rows: usize,
    out: &Path,
) -> Result<()> {
    let (train_a, train_b) = (&e.train_a, &e.train_b);
    let d = train_a.data.image_len();
    let (sa, sb) = (Images::new(&e.samples_a.1, d)?, Images::new(&e.samples_b.1, d)?);
    let mut cmp = memgen_metrics::compare(&sa, &sb, &train_a.images()?, &train_b.images()?, thresholds)?;
    let fresh = held_out(train_a, train_b, e.held_out);
    if !fresh.is_empty() {
        let fresh = Images::subset(&train_a.data.pixels, d, &fresh)?;
        cmp.novelty = Some(memgen_metrics::scores::reference(&fresh, &train_a.images()?)?);
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let shared = serde_json::json!({
        "noise_seed": e.cfg.noise_seed, "count": e.cfg.count,
        "sampler": &e.cfg, "n_a": train_a.indices.len(), "n_b": train_b.indices.len(),
        "shared_training_images": e.overlap, "threads": super::threads(), "comparison": cmp,
    });
    let mut record = settings;
    if let (Some(r), serde_json::Value::Object(s)) = (record.as_object_mut(), shared) {
        r.extend(s);
    }
    write_json(&out.join("compare.json"), &record)?;
    memgen_data::dataset::write_atomic(&out.join("compare.csv"), compare_csv(&cmp).as_bytes())?;
    let [_, _, h, w] = e.samples_a.0;
    let table = compare_table(&cmp, &sa, &sb, train_a, train_b, figure_rows, h, w);
    memgen_plot::save_png(&table.render(&table_config(&table))?, &out.join("compare.png"))?;
    let reference = cmp.reference.corr.clone();
    let mut series = vec![
        ("A vs own set", cmp.pairs.iter().map(|p| p.a_own.corr).collect::<Vec<_>>()),
        ("A vs other set", cmp.pairs.iter().map(|p| p.a_other.corr).collect()),
        ("A vs B", cmp.pairs.iter().map(|p| p.corr_ab).collect()),
        ("S_A vs S_B (no model)", reference),
    ];
    if let Some(novelty) = &cmp.novelty {
        series.push(("held-out vs S_A (no model)", novelty.corr.clone()));
    }
    write_histogram(out, "compare-hist", "Correlations", &series)?;
    say_text!("{}", compare_text(&cmp, train_a.indices.len(), train_b.indices.len()));
    say!("-> {}", out.display());
    super::output::result(serde_json::json!({
        "out": out,
        "compare_json": out.join("compare.json"),
        "compare_csv": out.join("compare.csv"),
        "figure": out.join("compare.png"),
        "count": cmp.pairs.len(),
        "n_a": train_a.indices.len(),
        "n_b": train_b.indices.len(),
        "agree": cmp.agree,
        "in_range_a": cmp.a.in_range,
        "in_range_b": cmp.b.in_range,
        "corr_ab_median": cmp.corr_ab.median,
        "a_memorized_by_corr": cmp.a.own.memorized_by_corr,
        "b_memorized_by_corr": cmp.b.own.memorized_by_corr,
    }));
    Ok(())
}

/// How many dataset images both training sets hold (0 unless they share a dataset and overlap).
fn shared_images(a: &TrainingSet, b: &TrainingSet) -> usize {
    if a.data.manifest.content_hash != b.data.manifest.content_hash {
        return 0;
    }
    let set: std::collections::HashSet<usize> = a.indices.iter().copied().collect();
    b.indices.iter().filter(|i| set.contains(i)).count()
}

/// The per-draw table as CSV: one row per noise draw.
fn compare_csv(cmp: &Comparison) -> String {
    let mut s = String::from("k,corr_ab");
    for side in ["a_own", "a_other", "b_own", "b_other"] {
        for f in ["corr", "corr_nn", "l2_nn1", "l2_nn", "l2_nn2", "l2_ratio"] {
            let _ = write!(s, ",{side}_{f}");
        }
    }
    s.push('\n');
    for (k, p) in cmp.pairs.iter().enumerate() {
        let _ = write!(s, "{k},{}", p.corr_ab);
        for m in [&p.a_own, &p.a_other, &p.b_own, &p.b_other] {
            s.push(',');
            s.push_str(&score_csv(m));
        }
        s.push('\n');
    }
    s
}

fn score_csv(m: &MemorizationScore) -> String {
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    format!("{},{},{},{},{},{}", m.corr, m.corr_nn, m.l2_nn1, m.l2_nn, opt(m.l2_nn2), opt(m.l2_ratio))
}

/// compare.png: one row per noise draw, [sample A | nearest in S_A | sample B | nearest in S_B], each
/// nearest image labelled with its correlation to the sample and sample B with corr(x_A, x_B).
#[allow(clippy::too_many_arguments)]
fn compare_table<'a>(
    cmp: &Comparison,
    sa: &Images<'a>,
    sb: &Images<'a>,
    train_a: &'a TrainingSet,
    train_b: &'a TrainingSet,
    rows: usize,
    h: usize,
    w: usize,
) -> LabeledTable<'a> {
    let plane = h * w;
    let row = |k: usize, p: &PairScores| {
        vec![
            Cell { image: &sa.get(k)[..plane], label: format!("#{k}") },
            Cell { image: &train_a.image(p.a_own.corr_nn)[..plane], label: format!("{:.3}", p.a_own.corr) },
            Cell { image: &sb.get(k)[..plane], label: format!("AB {:.3}", p.corr_ab) },
            Cell { image: &train_b.image(p.b_own.corr_nn)[..plane], label: format!("{:.3}", p.b_own.corr) },
        ]
    };
    LabeledTable {
        header: ["sample A", "NN in S_A", "sample B", "NN in S_B"].map(String::from).to_vec(),
        rows: cmp.pairs.iter().enumerate().take(rows).map(|(k, p)| row(k, p)).collect(),
        height: h,
        width: w,
    }
}

/// The default look, with images scaled up (at least 2x) until every title and label fits its column.
fn table_config(table: &LabeledTable) -> TableConfig {
    let cfg = TableConfig::default();
    let labels = table.rows.iter().flatten().map(|c| c.label.as_str());
    let widest = table.header.iter().map(String::as_str).chain(labels).map(|l| font::text_width(l, 1)).max();
    let need = (widest.unwrap_or(0) as usize).saturating_sub(cfg.pad);
    TableConfig { scale: need.div_ceil(table.width.max(1)).max(cfg.scale), ..cfg }
}

/// Overlaid histograms of correlations as NAME.svg and NAME.png in `out`.
fn write_histogram(out: &Path, name: &str, title: &str, series: &[(&str, Vec<f64>)]) -> Result<()> {
    let lo = series.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0f64, f64::min);
    let plot = HistogramPlot {
        title: title.into(),
        x_label: "Pearson correlation".into(),
        series: series.iter().map(|(n, v)| Series { name: n.to_string(), values: v }).collect(),
        lo: (lo * 10.0).floor() / 10.0,
        hi: 1.0,
        bins: 50,
    };
    save_svg(&plot.to_svg()?, &out.join(format!("{name}.svg")))?;
    save_rgb_png(&plot.to_png(800, 500)?, &out.join(format!("{name}.png")))?;
    Ok(())
}

/// The summary printed to the terminal.
fn compare_text(cmp: &Comparison, n_a: usize, n_b: usize) -> String {
    let mut s = String::new();
    let c = &cmp.config;
    let _ = writeln!(s, "{} noise draws; N_A = {n_a}, N_B = {n_b}", cmp.pairs.len());
    let _ = writeln!(s, "{:<30} {:>8} {:>8} {:>8} {:>12}", "", "median", "q1", "q3", "fraction");
    let line = |s: &mut String, name: &str, sum: &memgen_metrics::Summary, frac: f64| {
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
        let frac = if frac.is_nan() { "-".into() } else { format!("{frac:.3}") };
        let _ = writeln!(s, "{name:<30} {:>8} {:>8} {:>8} {frac:>12}", f(sum.median), f(sum.q1), f(sum.q3));
    };
    line(&mut s, "corr(A, B) > corr threshold", &cmp.corr_ab, cmp.agree);
    for (side, sum) in [("A", &cmp.a), ("B", &cmp.b)] {
        memorization_lines(&mut s, side, &sum.own, "own set", c);
        memorization_lines(&mut s, side, &sum.other, "other set", c);
    }
    line(&mut s, "S_A vs S_B best corr", &cmp.reference.summary, f64::NAN);
    if let Some(novelty) = &cmp.novelty {
        line(&mut s, "held-out vs S_A best corr", &novelty.summary, f64::NAN);
    }
    let none = memgen_metrics::Summary::of(&[]);
    for (side, sum) in [("A", &cmp.a), ("B", &cmp.b)] {
        line(&mut s, &format!("{side} in [-0.25, 1.25]"), &none, sum.in_range.unwrap_or(f64::NAN));
    }
    s
}

fn memorization_lines(s: &mut String, side: &str, m: &MemorizationSummary, set: &str, c: &CompareConfig) {
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
    let (corr, ratio) = (&m.corr, &m.l2_ratio);
    let name = format!("{side} vs {set}: corr > {}", c.corr_threshold);
    let _ = writeln!(
        s,
        "{name:<30} {:>8} {:>8} {:>8} {:>12.3}",
        f(corr.median),
        f(corr.q1),
        f(corr.q3),
        m.memorized_by_corr
    );
    let name = format!("{side} vs {set}: ratio < {:.3}", c.ratio_threshold);
    let _ = writeln!(
        s,
        "{name:<30} {:>8} {:>8} {:>8} {:>12.3}",
        f(ratio.median),
        f(ratio.q1),
        f(ratio.q3),
        m.memorized_by_ratio
    );
}

pub fn run_memorization(a: MemorizationArgs) -> Result<()> {
    let thresholds = a.thresholds.config()?;
    super::output::input("RUN", &a.run, "a run directory from `memgen train`")?;
    super::output::input("--samples", &a.samples, "a samples.safetensors from `memgen sample`")?;
    let train = TrainingSet::load(&a.run)?;
    let ([n, c, h, w], pixels) = load_samples(&a.samples)?;
    if [c, h, w] != train.dims() {
        bail!(
            "{}: samples are {c}x{h}x{w} but {} trains on {:?}",
            a.samples.display(),
            a.run.display(),
            train.dims()
        );
    }
    let out = a.out.clone().unwrap_or_else(|| a.samples.parent().unwrap_or(Path::new(".")).to_path_buf());
    let samples = Images::new(&pixels, c * h * w)?;
    let scores = memgen_metrics::memorization(&samples, &train.images()?)?;
    let summary = MemorizationSummary::of(&scores, &thresholds);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let record = serde_json::json!({
        "run": a.run, "samples": a.samples, "count": n, "n_train": train.indices.len(),
        "config": thresholds, "threads": super::threads(), "summary": summary, "scores": scores,
    });
    write_json(&out.join("memorization.json"), &record)?;
    let mut csv = String::from("k,corr,corr_nn,l2_nn1,l2_nn,l2_nn2,l2_ratio\n");
    for (k, m) in scores.iter().enumerate() {
        let _ = writeln!(csv, "{k},{}", score_csv(m));
    }
    memgen_data::dataset::write_atomic(&out.join("memorization.csv"), csv.as_bytes())?;
    let plane = h * w;
    let table = LabeledTable {
        header: vec!["sample".into(), "NN in S".into()],
        rows: scores
            .iter()
            .enumerate()
            .take(a.figure_rows)
            .map(|(k, m)| {
                vec![
                    Cell { image: &samples.get(k)[..plane], label: format!("#{k}") },
                    Cell { image: &train.image(m.corr_nn)[..plane], label: format!("{:.3}", m.corr) },
                ]
            })
            .collect(),
        height: h,
        width: w,
    };
    memgen_plot::save_png(&table.render(&table_config(&table))?, &out.join("memorization.png"))?;
    let corr: Vec<f64> = scores.iter().map(|m| m.corr).collect();
    write_histogram(&out, "memorization-hist", "Best correlation to the training set", &[("samples", corr)])?;
    let mut s = String::new();
    let _ = writeln!(s, "{n} samples against N = {} training images", train.indices.len());
    memorization_lines(&mut s, "samples", &summary, "training set", &thresholds);
    say_text!("{s}");
    say!("-> {}", out.display());
    super::output::result(serde_json::json!({
        "out": out,
        "memorization_json": out.join("memorization.json"),
        "memorization_csv": out.join("memorization.csv"),
        "figure": out.join("memorization.png"),
        "count": n,
        "n_train": train.indices.len(),
        "memorized_by_corr": summary.memorized_by_corr,
        "memorized_by_ratio": summary.memorized_by_ratio,
        "corr_median": summary.corr.median,
    }));
    Ok(())
}

//! `memgen compare` (two models driven by the same noise) and `memgen memorization` (one model).

use super::sample::{default_dir, reusable, sample_into, SamplerOpts};
use anyhow::{bail, Context, Result};
use clap::Args;
use memgen_data::dataset::PreparedDataset;
use memgen_diffusion::generate::{load_samples, GenerateConfig};
use memgen_diffusion::run::{read_json, write_json, RunConfig, SplitRecord};
use memgen_metrics::scores::{MemorizationSummary, PairScores};
use memgen_metrics::{CompareConfig, Comparison, Images, MemorizationScore};
use memgen_report::figure::{Cell, LabeledTable, TableConfig};
use memgen_report::font;
use memgen_report::histogram::{save_rgb_png, save_svg, HistogramPlot, Series};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run of model A (from `memgen train`).
    pub run_a: PathBuf,
    /// Run of model B, trained on a set disjoint from A's.
    pub run_b: PathBuf,
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
    /// Output directory (default RUN_A/compare/<name of RUN_B>-seed-S).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
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
            bail!("--corr-threshold must lie in [-1, 1], got {}", self.corr_threshold);
        }
        if !(self.ratio_threshold > 0.0 && self.ratio_threshold <= 1.0) {
            bail!("--ratio-threshold must lie in (0, 1], got {}", self.ratio_threshold);
        }
        Ok(CompareConfig { corr_threshold: self.corr_threshold, ratio_threshold: self.ratio_threshold })
    }
}

/// A run's training images: the prepared dataset and the indices of split.json.
struct TrainingSet {
    data: PreparedDataset,
    indices: Vec<usize>,
}

impl TrainingSet {
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
        if let Some(&bad) = split.indices.iter().find(|&&i| i >= data.manifest.count) {
            bail!("{}: split.json names image {bad}, beyond the dataset's {}", run.display(), data.manifest.count);
        }
        Ok(TrainingSet { data, indices: split.indices })
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

/// Samples of `run` for `cfg`: reused from RUN/samples/seed-S when they match, else drawn and saved
/// there (or, when that directory holds other samples, under `fallback`).
fn samples_for(run: &Path, cfg: &GenerateConfig, fallback: &Path) -> Result<([usize; 4], Vec<f32>)> {
    let dir = default_dir(run, cfg.noise_seed);
    if let Some(s) = reusable(&dir, cfg) {
        eprintln!("reusing {} samples of {}", cfg.count, dir.display());
        return Ok(s);
    }
    let target = if dir.join("samples.safetensors").exists() { fallback.to_path_buf() } else { dir };
    let g = sample_into(run, cfg, &target, false)?;
    Ok((g.dims, g.pixels))
}

pub fn run_compare(a: CompareArgs) -> Result<()> {
    let thresholds = a.thresholds.config()?;
    if a.count == 0 {
        bail!("--count must be at least 1");
    }
    let name_b = a.run_b.file_name().map_or("b".into(), |n| n.to_string_lossy().into_owned());
    let out = a.out.clone().unwrap_or_else(|| a.run_a.join("compare").join(format!("{name_b}-seed-{}", a.noise_seed)));
    let (train_a, train_b) = (TrainingSet::load(&a.run_a)?, TrainingSet::load(&a.run_b)?);
    if train_a.dims() != train_b.dims() {
        bail!("the runs train on images of different shapes: {:?} vs {:?}", train_a.dims(), train_b.dims());
    }
    let overlap = shared_images(&train_a, &train_b);
    if overlap > 0 {
        eprintln!("warning: the two training sets share {overlap} images (they should be disjoint)");
    }
    let cfg = a.sampler.config(a.noise_seed, a.count);
    let (dims_a, pix_a) = samples_for(&a.run_a, &cfg, &out.join("samples-a"))?;
    let (_, pix_b) = samples_for(&a.run_b, &cfg, &out.join("samples-b"))?;
    let d = train_a.data.image_len();
    let (sa, sb) = (Images::new(&pix_a, d)?, Images::new(&pix_b, d)?);
    let cmp = memgen_metrics::compare(&sa, &sb, &train_a.images()?, &train_b.images()?, &thresholds)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let record = serde_json::json!({
        "run_a": a.run_a, "run_b": a.run_b, "noise_seed": a.noise_seed, "count": a.count,
        "sampler": cfg, "n_a": train_a.indices.len(), "n_b": train_b.indices.len(),
        "shared_training_images": overlap, "threads": super::threads(), "comparison": cmp,
    });
    write_json(&out.join("compare.json"), &record)?;
    memgen_data::dataset::write_atomic(&out.join("compare.csv"), compare_csv(&cmp).as_bytes())?;
    let [_, _, h, w] = dims_a;
    let table = compare_table(&cmp, &sa, &sb, &train_a, &train_b, a.figure_rows, h, w);
    memgen_report::save_png(&table.render(&table_config(&table))?, &out.join("compare.png"))?;
    let reference = cmp.reference.corr.clone();
    let series = [
        ("A vs own set", cmp.pairs.iter().map(|p| p.a_own.corr).collect::<Vec<_>>()),
        ("A vs other set", cmp.pairs.iter().map(|p| p.a_other.corr).collect()),
        ("A vs B", cmp.pairs.iter().map(|p| p.corr_ab).collect()),
        ("S_A vs S_B (no model)", reference),
    ];
    write_histogram(&out, "compare-hist", "Correlations", &series)?;
    print!("{}", compare_text(&cmp, train_a.indices.len(), train_b.indices.len()));
    println!("-> {}", out.display());
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
    s
}

fn memorization_lines(s: &mut String, side: &str, m: &MemorizationSummary, set: &str, c: &CompareConfig) {
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
    let (corr, ratio) = (&m.corr, &m.l2_ratio);
    let name = format!("{side} vs {set}: corr > {}", c.corr_threshold);
    let _ = writeln!(s, "{name:<30} {:>8} {:>8} {:>8} {:>12.3}", f(corr.median), f(corr.q1), f(corr.q3), m.memorized_by_corr);
    let name = format!("{side} vs {set}: ratio < {:.3}", c.ratio_threshold);
    let _ = writeln!(s, "{name:<30} {:>8} {:>8} {:>8} {:>12.3}", f(ratio.median), f(ratio.q1), f(ratio.q3), m.memorized_by_ratio);
}

pub fn run_memorization(a: MemorizationArgs) -> Result<()> {
    let thresholds = a.thresholds.config()?;
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
    memgen_report::save_png(&table.render(&table_config(&table))?, &out.join("memorization.png"))?;
    let corr: Vec<f64> = scores.iter().map(|m| m.corr).collect();
    write_histogram(&out, "memorization-hist", "Best correlation to the training set", &[("samples", corr)])?;
    let mut s = String::new();
    let _ = writeln!(s, "{n} samples against N = {} training images", train.indices.len());
    memorization_lines(&mut s, "samples", &summary, "training set", &thresholds);
    print!("{s}");
    println!("-> {}", out.display());
    Ok(())
}

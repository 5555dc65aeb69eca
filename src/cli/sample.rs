//! `memgen sample`: generate images from a trained run with explicit, shareable noise.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use memgen_diffusion::generate::{generate_on, load_samples, save_samples, GenerateConfig, Generated};
use memgen_diffusion::run::{write_json, DataRef, Selection, Side};
use memgen_diffusion::sampler::blind::BlindSamplerConfig;
use memgen_diffusion::sampler::ddpm::VarianceType;
use memgen_diffusion::sampler::SamplerConfig;
use memgen_diffusion::schedule::{BetaSchedule, ScheduleConfig};
use std::path::{Path, PathBuf};

use super::train::{ScheduleArg, SideArg};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  memgen sample runs/demo/runs/n1000-a --noise-seed 1 --count 64\n  \
memgen sample runs/demo/runs/n10-a --sampler ddim --ddim-steps 50 --count 16 --out runs/n10-a-ddim --png-each\n  \
memgen sample --oracle --data runs/demo/data --n 10 --count 16   # the empirical optimal denoiser of S_A(10)\n  \
memgen --json sample runs/demo/runs/n100-b --count 8 --device cpu")]
pub struct SampleArgs {
    /// Run directory (from `memgen train`); not with --oracle.
    #[arg(required_unless_present = "oracle", conflicts_with = "oracle")]
    pub run: Option<PathBuf>,
    /// Noise seed: x_T and every per-step draw of sample k come from (seed, k, t), so runs sampled
    /// with the same seed see identical noise.
    #[arg(long, default_value_t = 0)]
    pub noise_seed: u64,
    /// Number of images.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    #[command(flatten)]
    pub sampler: SamplerOpts,
    /// Output directory (default RUN/samples/seed-S; with --oracle DIR/oracle/<split>-n<N>/seed-S).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write every image as its own PNG.
    #[arg(long)]
    pub png_each: bool,
    #[command(flatten)]
    pub oracle: OracleOpts,
}

/// `memgen sample --oracle`: the empirical optimal denoiser of a training subset instead of a run.
#[derive(Debug, Args)]
pub struct OracleOpts {
    /// Sample the empirical optimal denoiser (exact score of the training subset: the ideal memorizer)
    /// instead of a trained run; the subset is chosen as `memgen train` chooses it. CPU only.
    #[arg(long, requires = "data")]
    pub oracle: bool,
    /// --oracle: prepared dataset directory.
    #[arg(long, requires = "oracle")]
    pub data: Option<PathBuf>,
    /// --oracle: side of the disjoint split.
    #[arg(long, value_enum, default_value_t = SideArg::A, requires = "oracle")]
    pub split: SideArg,
    /// --oracle: training-set size N (S_side(N) of the nested split); default: the whole dataset.
    #[arg(long, requires = "oracle")]
    pub n: Option<usize>,
    /// --oracle: seed of the nested split.
    #[arg(long, default_value_t = 0, requires = "oracle")]
    pub split_seed: u64,
    /// --oracle: the training indices from this JSON file (an array, or a split.json) instead of a split.
    #[arg(long, conflicts_with = "n", requires = "oracle")]
    pub indices: Option<PathBuf>,
    /// --oracle: beta schedule (betas 1e-4 .. 0.02 for linear).
    #[arg(long, value_enum, default_value_t = ScheduleArg::Linear, requires = "oracle")]
    pub schedule: ScheduleArg,
    /// --oracle: diffusion steps T.
    #[arg(long, default_value_t = 1000, requires = "oracle")]
    pub diffusion_steps: usize,
}

impl OracleOpts {
    /// The training subset, as `memgen train` would select it.
    pub fn selection(&self) -> Selection {
        match (&self.indices, self.n) {
            (Some(path), _) => Selection::File { path: path.clone() },
            (None, Some(n)) => Selection::Split {
                side: match self.split {
                    SideArg::A => Side::A,
                    SideArg::B => Side::B,
                },
                n,
                seed: self.split_seed,
            },
            (None, None) => Selection::All,
        }
    }

    /// DIR/oracle/<subset>/seed-S, <subset> = `a-n5` (`a-n5-split3` for split seed 3), `all`, or
    /// `indices-<file stem>`.
    pub fn default_dir(&self, data: &Path, noise_seed: u64) -> PathBuf {
        let subset = match self.selection() {
            Selection::Split { side, n, seed } => {
                let side = if side == Side::A { "a" } else { "b" };
                if seed == 0 {
                    format!("{side}-n{n}")
                } else {
                    format!("{side}-n{n}-split{seed}")
                }
            }
            Selection::All => "all".into(),
            Selection::File { path } => {
                format!("indices-{}", path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default())
            }
        };
        data.join("oracle").join(subset).join(format!("seed-{noise_seed}"))
    }

    pub fn schedule(&self) -> ScheduleConfig {
        ScheduleConfig {
            kind: match self.schedule {
                ScheduleArg::Linear => BetaSchedule::Linear,
                ScheduleArg::Cosine => BetaSchedule::Cosine,
            },
            steps: self.diffusion_steps,
            ..Default::default()
        }
    }
}

/// How to sample (shared by `memgen sample` and `memgen compare`).
#[derive(Debug, Args)]
pub struct SamplerOpts {
    /// Images per batch (bounds memory; does not change the result).
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[command(flatten)]
    pub time: TimeSamplerOpts,
    /// Use the raw weights instead of their moving average.
    #[arg(long)]
    pub no_ema: bool,
    /// Blind sampler: step size h0.
    #[arg(long, default_value_t = 0.01)]
    pub h0: f64,
    /// Blind sampler: noise injection beta (0.1-0.5 takes far fewer steps).
    #[arg(long, default_value_t = 0.01)]
    pub beta: f64,
    /// Blind sampler: stop at this effective noise level.
    #[arg(long, default_value_t = 0.01)]
    pub sigma_l: f64,
    /// Initial noise x_T from a safetensors file holding one (count, C, H, W) tensor (DDPM/DDIM only).
    #[arg(long)]
    pub noise: Option<PathBuf>,
    /// Blind sampler: give up on a sample after this many steps.
    #[arg(long, default_value_t = 10_000)]
    pub max_steps: usize,
    /// Device to run the network on: `cpu`, or `cuda:N` when built with the `cuda` feature (the
    /// empirical optimal denoiser of --oracle runs on the CPU).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The sampler of time-conditioned denoisers (shared by `sample`, `compare` and `linear`).
#[derive(Debug, Args)]
pub struct TimeSamplerOpts {
    /// Sampler for time-conditioned models.
    #[arg(long, value_enum, default_value_t = SamplerArg::Ddpm)]
    pub sampler: SamplerArg,
    /// DDPM variance: beta (σ² = β_t) or posterior (σ² = β̃_t).
    #[arg(long, value_enum, default_value_t = VarianceArg::Beta)]
    pub variance: VarianceArg,
    /// DDIM: number of steps.
    #[arg(long, default_value_t = 50)]
    pub ddim_steps: usize,
    /// DDIM: stochasticity eta (0 = deterministic given x_T).
    #[arg(long, default_value_t = 0.0)]
    pub eta: f64,
}

impl TimeSamplerOpts {
    /// The sampler these flags name.
    pub fn config(&self) -> SamplerConfig {
        match self.sampler {
            SamplerArg::Ddpm => SamplerConfig::Ddpm {
                variance: match self.variance {
                    VarianceArg::Beta => VarianceType::Beta,
                    VarianceArg::Posterior => VarianceType::Posterior,
                },
            },
            SamplerArg::Ddim => SamplerConfig::Ddim { steps: self.ddim_steps, eta: self.eta },
        }
    }
}

impl SamplerOpts {
    /// The device of `--device`, checked before any work; `oracle`: the CPU-only empirical optimal
    /// denoiser is sampled, which only `cpu` fits.
    pub fn device(&self, oracle: bool) -> Result<candle::Device> {
        let dev = super::output::device(&self.device)?;
        if oracle && !dev.is_cpu() {
            return Err(super::output::usage(format!(
                "--device {}: the empirical optimal denoiser of --oracle runs on the CPU only; drop --device",
                self.device
            )));
        }
        Ok(dev)
    }

    /// The generation config for `count` images of noise seed `noise_seed`.
    pub fn config(&self, noise_seed: u64, count: usize) -> GenerateConfig {
        let sampler = self.time.config();
        let blind = BlindSamplerConfig {
            h0: self.h0,
            beta: self.beta,
            sigma_l: self.sigma_l,
            max_steps: self.max_steps,
            ..Default::default()
        };
        GenerateConfig {
            noise_seed,
            count,
            batch_size: self.batch_size,
            ema: !self.no_ema,
            sampler,
            blind,
            initial_noise: self.noise.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SamplerArg {
    Ddpm,
    Ddim,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VarianceArg {
    Beta,
    Posterior,
}

pub fn run_sample(a: SampleArgs) -> Result<()> {
    let cfg = a.sampler.config(a.noise_seed, a.count);
    let dev = a.sampler.device(a.oracle.oracle)?;
    let (g, out) = match &a.run {
        Some(run) => {
            super::output::input("RUN", run, "a run directory from `memgen train`")?;
            let out = a.out.clone().unwrap_or_else(|| default_dir(run, a.noise_seed));
            (sample_into(run, &cfg, &dev, &out, a.png_each)?, out)
        }
        None => {
            let data = a.oracle.data.clone().context("--oracle needs --data")?;
            super::output::input("--data", &data, "a prepared dataset directory from `memgen data prepare`")?;
            let out = a.out.clone().unwrap_or_else(|| a.oracle.default_dir(&data, a.noise_seed));
            (sample_oracle_into(&data, &a.oracle, &cfg, &out, a.png_each)?, out)
        }
    };
    super::output::result(serde_json::json!({
        "out": out,
        "samples": out.join("samples.safetensors"),
        "record": out.join("samples.json"),
        "grid": out.join("grid.png"),
        "count": g.dims[0],
        "dims": g.dims,
        "seconds": g.seconds,
        "images_per_s": g.dims[0] as f64 / g.seconds.max(1e-9),
        "in_range_fraction": g.in_range_fraction,
    }));
    say!(
        "sampled {} images in {:.1} s ({:.2} images/s, {:.0}% within [-0.25, 1.25]) -> {}",
        g.dims[0],
        g.seconds,
        g.dims[0] as f64 / g.seconds.max(1e-9),
        100.0 * g.in_range_fraction,
        out.display()
    );
    Ok(())
}

/// RUN/samples/seed-S: where `memgen sample` writes by default and `memgen compare` looks first.
pub fn default_dir(run: &Path, noise_seed: u64) -> PathBuf {
    run.join("samples").join(format!("seed-{noise_seed}"))
}

/// Sample `run` with `cfg` on `dev` (progress bar on stderr) and write `samples.safetensors`, `grid.png` and
/// `samples.json` (and one PNG per image when `png_each`) into `out`.
pub fn sample_into(
    run: &Path,
    cfg: &GenerateConfig,
    dev: &candle::Device,
    out: &Path,
    png_each: bool,
) -> Result<Generated> {
    let bar = progress_bar(cfg.count, run);
    let g = generate_on(run, cfg, dev, Some(&bar)).with_context(|| format!("sampling {}", run.display()))?;
    bar.finish_and_clear();
    write_with_record(&g, cfg, ("run", serde_json::json!(run)), out, png_each)?;
    Ok(g)
}

/// Sample the empirical optimal denoiser of the training subset of `data` that `oracle` selects and
/// write the same files as [`sample_into`]; samples.json records the dataset, its content hash, the
/// selection, the training indices and the schedule under "oracle".
pub fn sample_oracle_into(
    data: &Path,
    oracle: &OracleOpts,
    cfg: &GenerateConfig,
    out: &Path,
    png_each: bool,
) -> Result<Generated> {
    let schedule = oracle.schedule();
    let data_ref =
        DataRef { dir: data.to_path_buf(), content_hash: String::new(), selection: oracle.selection() };
    let bar = progress_bar(cfg.count, data);
    let (g, split) = memgen_linear::oracle::generate(&data_ref, &schedule, cfg, &|n| bar.inc(n as u64))
        .with_context(|| format!("sampling the empirical optimal denoiser of {}", data.display()))?;
    bar.finish_and_clear();
    write_with_record(&g, cfg, ("oracle", subset_record(&split, &schedule)), out, png_each)?;
    Ok(g)
}

/// Sample the Gaussian (linear) denoiser of the training subset of `data` that `sides` selects (its
/// mean and covariance, unregularised: [`memgen_linear::baseline::generate_linear`]; with `blind`
/// its blind form under the blind sampler) and write the same files as [`sample_into`];
/// samples.json records the dataset, content hash, selection, training indices, schedule and
/// `blind` under "linear".
pub fn sample_linear_into(
    data: &Path,
    sides: &OracleOpts,
    blind: bool,
    cfg: &GenerateConfig,
    out: &Path,
    png_each: bool,
) -> Result<Generated> {
    let schedule = sides.schedule();
    let data_ref =
        DataRef { dir: data.to_path_buf(), content_hash: String::new(), selection: sides.selection() };
    let bar = progress_bar(cfg.count, data);
    let reg = memgen_linear::theory::Regularization::default();
    let (g, split) = memgen_linear::baseline::generate_linear(&data_ref, &schedule, reg, blind, cfg, &|n| {
        bar.inc(n as u64)
    })
    .with_context(|| format!("sampling the Gaussian denoiser of {}", data.display()))?;
    bar.finish_and_clear();
    let mut linear = subset_record(&split, &schedule);
    linear["regularization"] = serde_json::json!(reg);
    linear["blind"] = blind.into();
    write_with_record(&g, cfg, ("linear", linear), out, png_each)?;
    Ok(g)
}

/// What a baseline sampled from: the training subset (dataset, content hash, selection, indices) and
/// the schedule, for samples.json.
fn subset_record(split: &memgen_diffusion::run::SplitRecord, schedule: &ScheduleConfig) -> serde_json::Value {
    serde_json::json!({
        "dataset": split.dataset,
        "content_hash": split.content_hash,
        "selection": split.selection,
        "n_train": split.indices.len(),
        "indices": split.indices,
        "schedule": schedule,
    })
}

/// Write the samples with their samples.json: `source` (what was sampled: "run" or "oracle"), the
/// sampler config, the result, threads and images/s.
fn write_with_record(
    g: &Generated,
    cfg: &GenerateConfig,
    source: (&str, serde_json::Value),
    out: &Path,
    png_each: bool,
) -> Result<()> {
    let mut record = serde_json::json!({
        "config": cfg,
        "result": g,
        "threads": super::threads(),
        "images_per_s": g.dims[0] as f64 / g.seconds.max(1e-9),
    });
    record[source.0] = source.1;
    write_samples(g, &record, out, png_each)
}

fn progress_bar(count: usize, what: &Path) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(count as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "sampling [{elapsed_precise}] {wide_bar} {pos}/{len} ({eta}) {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.display().to_string());
    bar
}

/// Write `samples.safetensors`, `grid.png`, `samples.json` (`record`) and, when `png_each`, one PNG
/// per image into `out`.
fn write_samples(g: &Generated, record: &serde_json::Value, out: &Path, png_each: bool) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    save_samples(g, &out.join("samples.safetensors"))?;
    let [_, c, h, w] = g.dims;
    let plane = h * w;
    let images: Vec<&[f32]> = g.pixels.chunks(c * plane).map(|im| &im[..plane]).collect();
    write_grid(&images, h, w, &out.join("grid.png"))?;
    if png_each {
        for (k, im) in images.iter().enumerate() {
            write_grid(&[im], h, w, &out.join(format!("sample-{k:05}.png")))?;
        }
    }
    write_json(&out.join("samples.json"), record)?;
    Ok(())
}

/// Samples of `dir` (written by [`sample_into`]) when they were made from `run` with the same
/// sampler, weights and noise as `cfg` and hold at least `cfg.count` images: the first `cfg.count`
/// (sample k depends only on the noise seed and k, not on how many were drawn).
pub fn reusable(dir: &Path, cfg: &GenerateConfig) -> Option<([usize; 4], Vec<f32>)> {
    let meta: serde_json::Value = memgen_diffusion::run::read_json(&dir.join("samples.json")).ok()?;
    let mut saved: GenerateConfig = serde_json::from_value(meta.get("config")?.clone()).ok()?;
    if saved.count < cfg.count {
        return None;
    }
    saved.count = cfg.count;
    saved.batch_size = cfg.batch_size;
    if &saved != cfg {
        return None;
    }
    let ([n, c, h, w], mut pixels) = load_samples(&dir.join("samples.safetensors")).ok()?;
    if n < cfg.count {
        return None;
    }
    pixels.truncate(cfg.count * c * h * w);
    Some(([cfg.count, c, h, w], pixels))
}

/// A PNG of `images` in a grid (one image: no padding, scale 1).
pub fn write_grid(images: &[&[f32]], h: usize, w: usize, path: &Path) -> Result<()> {
    use memgen_plot::{save_png, Grid, GridConfig};
    let cfg = if images.len() == 1 {
        GridConfig { cols: 1, pad: 0, scale: 1, ..Default::default() }
    } else {
        GridConfig::default()
    };
    let img = Grid { images, height: h, width: w }.render(&cfg)?;
    save_png(&img, path)?;
    Ok(())
}

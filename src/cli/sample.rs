//! `memgen sample`: generate images from a trained run with explicit, shareable noise (the stage
//! itself is [`memgen_pipeline::sample`]).

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use memgen_diffusion::generate::GenerateConfig;
use memgen_diffusion::run::{DeviceName, Selection, Side};
use memgen_diffusion::sampler::blind::BlindSamplerConfig;
use memgen_diffusion::sampler::ddpm::VarianceType;
use memgen_diffusion::sampler::SamplerConfig;
use memgen_diffusion::schedule::{BetaSchedule, ScheduleConfig};
use memgen_pipeline::sample::{default_dir, images_per_s, sample_into, sample_oracle_into, Subset};
use serde::Serialize;
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

    /// The schedule of the baseline denoiser.
    pub fn schedule(&self) -> ScheduleConfig {
        schedule(self.schedule, self.diffusion_steps)
    }

    /// The training subset of `data` these flags select, with its schedule.
    pub fn subset(&self, data: &Path) -> Subset {
        Subset { data: data.to_path_buf(), selection: self.selection(), schedule: self.schedule() }
    }
}

/// The DDPM schedule of `--schedule` and `--diffusion-steps` (betas 1e-4 .. 0.02 for linear).
pub fn schedule(kind: ScheduleArg, steps: usize) -> ScheduleConfig {
    let kind = match kind {
        ScheduleArg::Linear => BetaSchedule::Linear,
        ScheduleArg::Cosine => BetaSchedule::Cosine,
    };
    ScheduleConfig { kind, steps, ..Default::default() }
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
    /// baselines, --oracle and --linear, run on the CPU only).
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
    /// The device of `--device`, checked before any work; `cpu_only`: the sampled denoiser is a
    /// baseline that runs on the CPU only (named by the string, for the message), which a GPU does
    /// not fit.
    pub fn device(&self, cpu_only: Option<&str>) -> Result<candle::Device> {
        if let (Some(what), Ok(DeviceName::Cuda(_))) = (cpu_only, self.device.parse::<DeviceName>()) {
            return Err(super::output::usage(format!(
                "--device {}: {what} runs on the CPU only; drop --device",
                self.device
            )));
        }
        super::output::device(&self.device)
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

/// The `--json` result of `memgen sample`: the files written and the headline numbers.
#[derive(Debug, Serialize)]
struct SampleResult {
    out: PathBuf,
    samples: PathBuf,
    record: PathBuf,
    grid: PathBuf,
    count: usize,
    dims: [usize; 4],
    seconds: f64,
    images_per_s: f64,
    in_range_fraction: f64,
}

pub fn run_sample(a: SampleArgs) -> Result<()> {
    let cfg = a.sampler.config(a.noise_seed, a.count);
    let dev = a.sampler.device(a.oracle.oracle.then_some("the empirical optimal denoiser of --oracle"))?;
    let (g, out) = match &a.run {
        Some(run) => {
            super::output::input("RUN", run, "a run directory from `memgen train`")?;
            let out = a.out.clone().unwrap_or_else(|| default_dir(run, a.noise_seed));
            (sample_into(run, &cfg, &dev, &out, a.png_each)?, out)
        }
        None => {
            let data = a.oracle.data.clone().context("--oracle needs --data")?;
            super::output::input("--data", &data, "a prepared dataset directory from `memgen data prepare`")?;
            let subset = a.oracle.subset(&data);
            let out = a.out.clone().unwrap_or_else(|| subset.oracle_dir(a.noise_seed));
            (sample_oracle_into(&subset, &cfg, &out, a.png_each)?, out)
        }
    };
    let result = SampleResult {
        samples: out.join("samples.safetensors"),
        record: out.join("samples.json"),
        grid: out.join("grid.png"),
        count: g.dims[0],
        dims: g.dims,
        seconds: g.seconds,
        images_per_s: images_per_s(&g),
        in_range_fraction: g.in_range_fraction,
        out,
    };
    super::output::result(serde_json::to_value(&result)?);
    say!(
        "sampled {} images in {:.1} s ({:.2} images/s, {:.0}% within [-0.25, 1.25]) -> {}",
        result.count,
        result.seconds,
        result.images_per_s,
        100.0 * result.in_range_fraction,
        result.out.display()
    );
    Ok(())
}

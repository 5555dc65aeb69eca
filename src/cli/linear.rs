//! `memgen linear`: the linear-denoiser baseline (Merger & Goldt) over a range of training-set sizes;
//! the experiment itself is [`memgen_linear::experiment::LinearExperiment`].

use super::sample::TimeSamplerOpts;
use anyhow::Result;
use clap::{Args, ValueEnum};
use memgen_diffusion::run::Side;
use memgen_linear::experiment::{LinearConfig, LinearExperiment};
use memgen_linear::problem::DataConfig;
use memgen_linear::theory::Regularization;
use std::path::PathBuf;

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

pub fn run_linear(a: LinearArgs) -> Result<()> {
    let cfg = LinearConfig {
        data: DataConfig {
            data: a.data,
            side: a.side,
            split: if a.split == SplitSide::A { Side::A } else { Side::B },
            split_seed: a.split_seed,
            seed: a.seed,
        },
        ns: a.n,
        reg: Regularization { weight_decay: a.weight_decay, train_time: a.train_time },
        sampler: a.sampler.config(),
        check_samples: a.check_samples,
        noise_seed: a.noise_seed,
        sweep_points: a.sweep_points,
        threads: super::threads(),
    };
    cfg.check().map_err(super::output::usage)?;
    let exp = LinearExperiment::new(cfg)?;
    eprintln!("{}; d = {}; N = {:?}", exp.problem.description, exp.problem.d, exp.cfg.ns);
    let record = exp.run()?;
    let result = record.write(&a.out)?;
    say_text!("{}", record.table());
    say!("-> {}", a.out.display());
    super::output::result(serde_json::to_value(&result)?);
    Ok(())
}

//! `memgen model info` and `memgen model bench`: what a network config amounts to and how fast it runs.

use anyhow::Result;
use clap::Subcommand;
use memgen_diffusion::ModelConfig;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Print a network config's parameter count and FLOPs per image.
    Info {
        /// Network config (TOML), e.g. models/unet-s.toml.
        config: PathBuf,
        /// Image side the network will see.
        #[arg(long, default_value_t = 32)]
        side: usize,
    },
    /// Measure training and sampling throughput of a network config on this machine (random data).
    ///
    /// Prints a table: images/s and achieved GFLOP/s for one training step (forward + backward +
    /// AdamW) and one sampler step (forward). Set --threads or RAYON_NUM_THREADS to compare runs.
    Bench {
        /// Network config (TOML), e.g. models/unet-s.toml.
        config: PathBuf,
        #[arg(long, default_value_t = 32)]
        side: usize,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// Timed repetitions (after one warm-up); the median is reported.
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Also report the time spent in each memgen kernel (conv, group norm, upsample) per step.
        #[arg(long)]
        profile: bool,
        /// Also write the result as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Info { config, side } => {
            let cfg = ModelConfig::load(&config)?;
            cfg.validate(side)?;
            let flops = cfg.flops_per_image(side) as f64;
            println!("config:      {}", config.display());
            println!(
                "arch:        {}",
                if cfg.is_blind() {
                    "blind (bias-free, noise-blind UNet)"
                } else {
                    "unet (time-conditioned DDPM UNet)"
                }
            );
            println!("parameters:  {}", cfg.parameter_count());
            println!("forward:     {:.4} GFLOP per {side}x{side} image", flops / 1e9);
            println!(
                "training:    ~{:.4} GFLOP per image (forward + backward ≈ 3 × forward)",
                3.0 * flops / 1e9
            );
            Ok(())
        }
        ModelCommand::Bench { config, side, batch_size, steps, profile, json } => {
            super::bench::run_model_bench(&config, side, batch_size, steps, profile, json.as_deref())
        }
    }
}

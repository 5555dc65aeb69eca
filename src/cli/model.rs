//! `memgen model info` and `memgen model bench`: what a network config amounts to and how fast it runs.

use anyhow::Result;
use clap::Subcommand;
use memgen_diffusion::ModelConfig;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Print a network config's parameter count and FLOPs per image.
    #[command(after_help = "Examples:\n  memgen model info models/unet-s.toml\n  \
memgen model info models/unet-paper.toml --side 80\n  \
memgen --json model info models/unet-tiny.toml --side 16")]
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
    #[command(
        after_help = "Examples:\n  memgen model bench models/unet-tiny.toml --side 16 --batch-size 32\n  \
RAYON_NUM_THREADS=2 memgen model bench models/unet-s.toml --side 32 --profile --save unet-s-bench.json"
    )]
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
        /// Also write the result as JSON to this file.
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
    },
}

pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Info { config, side } => {
            super::output::input("CONFIG", &config, "a network config (TOML), e.g. models/unet-s.toml")?;
            let cfg = ModelConfig::load(&config)?;
            cfg.validate(side)?;
            let flops = cfg.flops_per_image(side) as f64;
            super::output::result(serde_json::json!({
                "config": config,
                "arch": if cfg.is_blind() { "blind" } else { "unet" },
                "side": side,
                "parameters": cfg.parameter_count(),
                "forward_gflop_per_image": flops / 1e9,
                "train_gflop_per_image": 3.0 * flops / 1e9,
            }));
            say!("config:      {}", config.display());
            say!(
                "arch:        {}",
                if cfg.is_blind() {
                    "blind (bias-free, noise-blind UNet)"
                } else {
                    "unet (time-conditioned DDPM UNet)"
                }
            );
            say!("parameters:  {}", cfg.parameter_count());
            say!("forward:     {:.4} GFLOP per {side}x{side} image", flops / 1e9);
            say!("training:    ~{:.4} GFLOP per image (forward + backward ≈ 3 × forward)", 3.0 * flops / 1e9);
            Ok(())
        }
        ModelCommand::Bench { config, side, batch_size, steps, profile, save } => {
            if config != std::path::Path::new("unet-s") {
                super::output::input("CONFIG", &config, "a network config (TOML) or unet-s")?;
            }
            super::bench::run_model_bench(&config, side, batch_size, steps, profile, save.as_deref())
        }
    }
}

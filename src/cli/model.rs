//! `memgen model info`: what a network config amounts to.

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
    }
}

//! Network configs (TOML files in `models/`, tagged by `arch`) and the model they build.

use crate::blind::{BlindConfig, BlindUNet};
use crate::error::{Error, Result};
use crate::unet::{UNet, UNetConfig};
use crate::{Denoiser, Prediction};
use candle::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A network config: `arch = "unet"` (time-conditioned DDPM UNet) or `arch = "blind"` (the
/// bias-free, noise-blind UNet of Kadkhodaie et al.).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
pub enum ModelConfig {
    Unet(UNetConfig),
    Blind(BlindConfig),
}

impl ModelConfig {
    /// Read a TOML config; unknown keys are errors that name the file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text).map_err(|e| Error::bad_file(path, e.to_string()))
    }

    /// Parse a TOML config (the text of a file in `models/`); unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: ModelConfig =
            toml::from_str(text).map_err(|e| Error::Invalid(format!("invalid model config: {e}")))?;
        cfg.check_size()?;
        Ok(cfg)
    }

    /// Refuse sizes no network of this project has, before anything is built or counted from them
    /// (a config with 2^32 residual blocks would otherwise exhaust memory just listing its layers).
    pub fn check_size(&self) -> Result<()> {
        let too_big = |field: &str, v: usize, max: usize| {
            Err(Error::Invalid(format!("invalid model config: {field} = {v} exceeds the limit of {max}")))
        };
        const MAX_WIDTH: usize = 1 << 16;
        match self {
            ModelConfig::Unet(c) => {
                for (field, v, max) in [
                    ("in_channels", c.in_channels, 64),
                    ("out_channels", c.out_channels, 64),
                    ("base_channels", c.base_channels, MAX_WIDTH),
                    ("num_res_blocks", c.num_res_blocks, 64),
                    ("time_embed_dim", c.time_embed_dim, MAX_WIDTH),
                    ("channel_mult levels", c.channel_mult.len(), 16),
                    ("attention_levels entries", c.attention_levels.len(), 16),
                ] {
                    if v > max {
                        return too_big(field, v, max);
                    }
                }
                if let Some(&m) =
                    c.channel_mult.iter().find(|&&m| m.saturating_mul(c.base_channels) > MAX_WIDTH)
                {
                    return too_big(
                        "base_channels · channel_mult",
                        m.saturating_mul(c.base_channels),
                        MAX_WIDTH,
                    );
                }
            }
            ModelConfig::Blind(c) => {
                for (field, v, max) in [
                    ("in_channels", c.in_channels, 64),
                    ("num_blocks", c.num_blocks, 16),
                    ("convs_per_block", c.convs_per_block, 64),
                ] {
                    if v > max {
                        return too_big(field, v, max);
                    }
                }
                let widest = c.base_channels.checked_shl(c.num_blocks as u32).unwrap_or(usize::MAX);
                if c.base_channels > MAX_WIDTH || widest > MAX_WIDTH {
                    return too_big("base_channels · 2^num_blocks", widest, MAX_WIDTH);
                }
            }
        }
        Ok(())
    }

    /// Check that the network fits `side` x `side` images.
    pub fn validate(&self, side: usize) -> Result<()> {
        self.check_size()?;
        match self {
            ModelConfig::Unet(c) => c.validate(side)?,
            ModelConfig::Blind(c) => c.validate(side)?,
        }
        Ok(())
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        match self {
            ModelConfig::Unet(c) => c.parameter_count(),
            ModelConfig::Blind(c) => c.parameter_count(),
        }
    }

    /// Forward FLOPs per image (2 × multiply-adds of convolutions, linears and attention).
    pub fn flops_per_image(&self, side: usize) -> u64 {
        match self {
            ModelConfig::Unet(c) => c.flops_per_image(side),
            ModelConfig::Blind(c) => c.flops_per_image(side),
        }
    }

    /// True for the noise-blind architecture (trained on sigma = u², sampled by stochastic ascent).
    pub fn is_blind(&self) -> bool {
        matches!(self, ModelConfig::Blind(_))
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        match self {
            ModelConfig::Unet(c) => c.in_channels,
            ModelConfig::Blind(c) => c.in_channels,
        }
    }

    /// What a time-conditioned network predicts (blind networks predict the noise residual).
    pub fn prediction(&self) -> Prediction {
        match self {
            ModelConfig::Unet(c) => c.prediction,
            ModelConfig::Blind(_) => Prediction::Epsilon,
        }
    }
}

/// A built network.
pub enum Model {
    Unet(UNet),
    Blind(BlindUNet),
}

impl Model {
    /// Build (and, through `vb`, initialise or load) the network of `cfg`.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> candle::Result<Self> {
        Ok(match cfg {
            ModelConfig::Unet(c) => Model::Unet(UNet::new(c, vb)?),
            ModelConfig::Blind(c) => Model::Blind(BlindUNet::new(c, vb)?),
        })
    }

    /// The network's output; `t` is ignored by blind networks. `train` selects batch statistics
    /// (and updates running statistics) in the blind network's norms.
    pub fn forward_t(&self, x: &Tensor, t: &Tensor, train: bool) -> candle::Result<Tensor> {
        match self {
            Model::Unet(m) => m.forward_t(x, t, train),
            Model::Blind(m) => m.forward_t(x, train),
        }
    }
}

impl Denoiser for Model {
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> candle::Result<Tensor> {
        self.forward_t(x_t, t, false)
    }
}

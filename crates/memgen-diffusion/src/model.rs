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
        toml::from_str(&text).map_err(|e| Error::bad_file(path, format!("invalid model config: {e}")))
    }

    /// Check that the network fits `side` x `side` images.
    pub fn validate(&self, side: usize) -> Result<()> {
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

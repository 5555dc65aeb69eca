//! The one interface between networks and samplers.

use candle::{Result, Tensor};

/// A denoiser in evaluation mode: given x_t of shape (B, C, H, W) and one timestep per sample
/// (`t`, shape (B,), u32, 0-based index into the schedule), it returns the network's prediction,
/// of the same shape as `x_t` (the noise ε for ε-prediction models).
/// Blind (noise-level-free) denoisers ignore `t`.
pub trait Denoiser {
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor>;
}

impl<F: Fn(&Tensor, &Tensor) -> Result<Tensor>> Denoiser for F {
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        self(x_t, t)
    }
}

/// What a time-conditioned network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// The noise ε (Ho et al.; loss ||ε - ε_θ(x_t, t)||²).
    #[default]
    Epsilon,
    /// The clean image x0.
    X0,
}

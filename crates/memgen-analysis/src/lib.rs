//! memgen-analysis: what a trained denoiser has learned (Kadkhodaie et al. 2024, DESIGN.md).
//!
//! Everything here works on an [`ImageDenoiser`]: f(y, σ) ≈ E[x | y], y = x + σ z, z ~ N(0, I), the
//! clean-image estimate at additive Gaussian noise of standard deviation σ (pixels in [0, 1]). A
//! time-conditioned DDPM network and a noise-blind network are both turned into one
//! ([`ModelDenoiser`]); [`WienerDenoiser`] is the closed-form affine denoiser of a Gaussian, the
//! reference the numerical tools are checked against.

pub mod curve;
pub mod denoiser;
pub mod generalization;
pub mod jacobian;
pub mod klbound;
pub mod nonfinite;

pub use denoiser::{ImageDenoiser, WienerDenoiser, ModelDenoiser};

/// Errors of the analyses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle::Error),
    #[error(transparent)]
    Diffusion(#[from] memgen_diffusion::Error),
    #[error("{0}")]
    Invalid(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

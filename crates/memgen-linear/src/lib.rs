//! memgen-linear: a diffusion model whose behaviour is known exactly (Merger & Goldt 2025), next to
//! which every network experiment can be put, and the ideal memorizer.
//!
//! - [`spectral`]: empirical moments (μ0, Σ0) of a training set and the eigendecomposition of Σ0, the
//!   basis in which every linear map below is diagonal.
//!
//! - [`theory`]: the denoiser gains w_t(s) (converged, weight decay, early-stopped gradient flow).
//!
//! All linear algebra is f64 (faer). Formulas: DESIGN.md, "Linear diffusion".

pub mod spectral;
pub mod theory;

pub use spectral::{Moments, Spectrum};

/// Errors of the linear baseline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("eigendecomposition failed: {0}")]
    Eigen(String),
    #[error(transparent)]
    Candle(#[from] candle::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

//! memgen-linear: a diffusion model whose behaviour is known exactly (Merger & Goldt 2025), next to
//! which every network experiment can be put, and the ideal memorizer.
//!
//! - [`spectral`]: empirical moments (μ0, Σ0) of a training set and the eigendecomposition of Σ0, the
//!   basis in which every linear map below is diagonal.
//!
//! - [`theory`]: the denoiser gains w_t(s) (converged, weight decay, early-stopped gradient flow).
//!
//! - [`sampling`]: the linear denoiser as a [`memgen_diffusion::Denoiser`], and the exact Gaussian
//!   that a DDPM/DDIM sampler produces with it (the effective c of ρ_N = N(μ0, Σ0 + c I)).
//!
//! - [`baseline`]: the oracle and the Gaussian (linear) denoiser of a training subset sampled through
//!   the project's samplers with the networks' shared noise (`memgen compare --oracle / --linear`).
//!
//! - [`oracle`]: the empirical optimal denoiser (exact score of the training set), the ideal memorizer.
//!
//! - [`loss`]: training and test denoising losses per time and summed over a schedule, in closed form.
//!
//! - [`kl`]: KL divergences between Gaussians (Cholesky, eigenbasis, Monte Carlo, from samples).
//!
//! - [`wishart`]: the expected KL of a Gaussian fit to N samples (the exact d/N law), digamma,
//!   log-log power-law fits.
//!
//! - [`experiment`]: the full analysis of one training set (losses, c, KL, checks), as reported by
//!   `memgen linear`, and the experiment over several training-set sizes with its record.
//!
//! - [`problem`]: the training sets and the population of an experiment (a prepared dataset or a
//!   Gaussian stream); [`figures`]: its plots.
//!
//! All linear algebra is f64 (faer). Formulas: DESIGN.md, "Linear diffusion".

pub mod baseline;
pub mod experiment;
pub mod figures;
pub mod kl;
pub mod loss;
pub mod oracle;
pub mod problem;
pub mod sampling;
pub mod spectral;
pub mod theory;
pub mod wishart;

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
    /// Reading the data (a prepared dataset, the Gaussian source).
    #[error(transparent)]
    Data(#[from] memgen_data::Error),
    #[error(transparent)]
    File(#[from] memgen_io::FileError),
    #[error(transparent)]
    Plot(#[from] memgen_plot::Error),
    /// `source`, met while doing `what` ("N = 64"): the message is `what`, the cause its source.
    #[error("{what}")]
    Context {
        what: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// This error as the cause of [`Error::Context`] `what`.
    pub fn context(self, what: impl Into<String>) -> Self {
        Error::Context { what: what.into(), source: Box::new(self) }
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

//! memgen-rf: random-feature score models and their KL training dynamics (Li, Li, Zhang & Bian 2023,
//! "On the Generalization Properties of Diffusion Models", NeurIPS 2023, arXiv:2311.01797).
//!
//! The forward process is the OU/VP process dx = −x dt + √2 dW, so x_t = e^{−t} x_0 + σ_t z with
//! σ_t² = 1 − e^{−2t}, and its probability-flow ODE is dx/dt = −x − s(x, t).
//!
//! - [`target`]: Gaussian-mixture targets p0 (1-D/2-D, spec strings `mixture:mu=3,...`) with the
//!   closed-form density and score of the diffused p_t.
//! - [`features`]: the fixed random features φ(x, t) = σ(W x + U e(t) + b) and the time embedding e(t).
//! - [`score`]: the [`score::ScoreField`] trait (score and divergence on a batch), the random-feature
//!   score s_A = (1/m) A φ and the exact diffused-mixture score.
//! - [`dsm`]: the denoising score-matching loss as the quadratic form
//!   L(A) = tr(A G Aᵀ)/m² − 2 tr(A H)/m + c, from n samples (seeded draws) or the population.
//! - [`flow`]: gradient flow dA/dτ = −∇L in closed form (eigenbasis of G) and plain gradient descent.
//! - [`kl`]: KL(p0 ‖ p_θ) by the probability-flow change of variables (RK4; the ODE sampler's law),
//!   from reverse-SDE samples (Euler–Maruyama + Gaussian KDE), and by the reverse SDE's Fokker–Planck
//!   equation on the grid (1-D); Gaussian closed forms.
//! - rate fits use the one power-law fit of memgen, [`memgen_metrics::stats::power_law_fit`].
//! - [`experiment`]: the (n, m) sweep of `memgen rf`: KL along τ, early-stopping optima, rate fits.
//! - [`record`]: rf.json ([`record::RfRecord`]), the sweeps of one or two targets and their modes-shift
//!   comparison, with the command's table and CSV.
//!
//! Everything is f64; every random draw comes from a seeded `ChaCha8Rng`.

pub mod dsm;
pub mod experiment;
pub mod features;
pub mod flow;
pub mod kl;
pub mod record;
pub mod score;
pub mod target;

pub use features::{Activation, FeatureConfig, RandomFeatures};
pub use score::{RfScore, ScoreField};
pub use target::Mixture;

/// Errors of the random-feature toolkit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument or spec string is invalid (the message names it).
    #[error("{0}")]
    Invalid(String),
    /// The eigendecomposition of the feature Gram matrix failed.
    #[error("eigendecomposition failed: {0}")]
    Eigen(String),
    /// The sweep of one target of [`record::run`] failed.
    #[error("target {spec}")]
    Target {
        spec: String,
        #[source]
        source: Box<Error>,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for an [`Error::Invalid`].
pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}

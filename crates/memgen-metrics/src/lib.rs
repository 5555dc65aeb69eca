//! memgen-metrics: what the papers measure, exactly.
//!
//! - [`nn`]: exact top-k nearest neighbours of generated images among training images under Pearson
//!   correlation, cosine similarity or L2 distance, as blocked matrix products streamed over the
//!   training set.
//! - [`scores`]: per-sample memorization (best correlation to the training set, L2 ratio NN1/NN2),
//!   generalization across two models driven by the same noise (corr(x_A, x_B)), and their summaries.
//!
//! Definitions (DESIGN.md, Metrics): corr(a, b) = ⟨a − ā, b − b̄⟩ / (‖a − ā‖ ‖b − b̄‖), with corr = 0 when
//! either image is constant; a sample is memorized when ‖x − NN1‖ / ‖x − NN2‖ < 1/3.

pub mod nn;
pub mod scores;
pub mod stats;

pub use nn::{search, Images, Metric, Neighbours, SearchConfig};
pub use scores::{compare, memorization, CompareConfig, Comparison, MemorizationScore};
pub use stats::Summary;

/// Errors from the metrics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

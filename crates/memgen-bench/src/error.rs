//! Errors of the benchmarks: the measured library's error, with the network it was measuring (boxed,
//! to keep `Result` small).

/// What went wrong in a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A network config (shipped name or TOML file) could not be read.
    #[error("network {config}")]
    Config {
        config: String,
        #[source]
        source: Box<memgen_diffusion::Error>,
    },
    /// Timing a network failed (e.g. a side the network cannot take).
    #[error("benchmarking {config} at {side}x{side}, batch {batch}")]
    Net {
        config: String,
        side: usize,
        batch: usize,
        #[source]
        source: Box<memgen_diffusion::Error>,
    },
    #[error(transparent)]
    Candle(#[from] candle::Error),
    #[error(transparent)]
    Metrics(#[from] memgen_metrics::Error),
    #[error(transparent)]
    Linear(#[from] memgen_linear::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

//! Errors of training runs, checkpoints and model configs (tensor math itself returns `candle::Result`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file that exists but is not what it should be (bad TOML/JSON, missing tensors, mismatched step).
    #[error("{path}: {msg}")]
    BadFile { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
    /// Refused to protect data already on disk: a run directory that holds another config, or one
    /// written by another memgen version (the command line exits with code 3).
    #[error("{path}: {msg}")]
    Refused { path: PathBuf, msg: String },
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    #[error("training stopped at step {step}: the loss is {loss} (not finite); {kept}")]
    NonFinite { step: usize, loss: f32, kept: String },
    #[error(transparent)]
    Data(#[from] memgen_data::Error),
    #[error(transparent)]
    Candle(#[from] candle::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadFile { path: path.into(), msg: msg.into() }
    }
    /// [`Error::Refused`] for `path`.
    pub fn refused(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Refused { path: path.into(), msg: msg.into() }
    }
}

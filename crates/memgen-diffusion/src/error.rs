//! Errors of training runs, checkpoints and model configs (tensor math itself returns `candle::Result`).

use memgen_io::FileError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file that cannot be read or written, is not what it should be (bad TOML/JSON, missing
    /// tensors, mismatched step), or that is refused to protect data already on disk (a run directory
    /// that holds another config, or one written by another memgen version).
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{0}")]
    Invalid(String),
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
    /// [`FileError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FileError::io(path, source).into()
    }
    /// [`FileError::BadFile`] for `path`.
    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        FileError::bad_file(path, msg).into()
    }
    /// [`FileError::Refused`] for `path`.
    pub fn refused(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        FileError::refused(path, msg).into()
    }
    /// Whether this is a refusal to protect data on disk (the command line exits with code 3).
    pub fn is_refused(&self) -> bool {
        matches!(self, Error::File(FileError::Refused { .. }))
    }
}

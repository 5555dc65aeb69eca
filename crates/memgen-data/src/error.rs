//! The one error type of memgen-data. Every variant that concerns a file names it.

use memgen_io::FileError;
use std::path::PathBuf;

/// Errors from reading sources, preparing datasets and drawing splits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O failure on a named file or directory, or a file whose content is not what its format
    /// requires (bad magic, truncation, corrupt image, ...).
    #[error(transparent)]
    File(#[from] FileError),
    /// Input that is well-formed but unusable (mixed sizes, empty folder, bad parameters, ...).
    #[error("{0}")]
    Invalid(String),
    /// A recipe file that cannot be parsed or holds unknown keys.
    #[error("recipe {path}: {msg}")]
    Recipe { path: PathBuf, msg: String },
    /// A split that asks for more images or groups than the dataset has.
    #[error("{0}")]
    NotEnough(String),
    /// A Hugging Face Hub failure (unreachable, missing file, nothing cached, unsafe file name).
    #[error("hugging face hub: {0}")]
    Hub(String),
    /// A request that is wrong in itself (an unknown source, an option for another kind of source,
    /// a recipe file that does not exist): nothing was done; a command line reports it as a usage
    /// error.
    #[error("{0}")]
    Usage(String),
    /// `source`, met while doing `what` ("opening source \"calpha\""): the message is `what`, the
    /// cause its source.
    #[error("{what}")]
    Context {
        what: String,
        #[source]
        source: Box<Error>,
    },
    #[error(transparent)]
    Candle(#[from] candle::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A [`FileError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FileError::io(path, source).into()
    }

    /// A [`FileError::BadFile`] for `path`.
    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        FileError::bad_file(path, msg).into()
    }

    /// This error as the cause of [`Error::Context`] `what`.
    pub fn context(self, what: impl Into<String>) -> Self {
        Error::Context { what: what.into(), source: Box::new(self) }
    }

    /// The error under any [`Error::Context`] layers.
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.root(),
            e => e,
        }
    }
}

/// Shorthand for [`Error::Invalid`] with a formatted message.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::Error::Invalid(format!($($arg)*)) };
}

//! memgen-experiment: an experiment (an N-sweep over disjoint training pairs, DESIGN.md) as a graph of
//! `memgen` jobs, executed locally in parallel processes with resume ([`exec`]), or written out as a
//! manifest and Slurm job arrays ([`slurm`]); the results table and report gathered from the jobs'
//! output files ([`results`], [`report`]).
//!
//! Every job is one `memgen` command line (prepare, train, compare, linear) whose outputs live under
//! the experiment directory; a job is finished when its stamp `jobs/<id>.json` records the same
//! command line, so a killed sweep resumes where it stopped, and a changed experiment is detected job
//! by job.

pub mod config;
pub mod exec;
pub mod plan;
pub mod report;
pub mod results;
pub mod slurm;
pub mod verdict;

pub use config::Experiment;
pub use plan::{Job, JobKind, Plan, Stage};

use std::path::{Path, PathBuf};

/// Errors of planning, running and reporting experiments.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: {msg}")]
    BadFile { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
    /// Refused to protect data already on disk: an experiment directory run with another network
    /// config or command line, or one another memgen process is running (the command line exits
    /// with code 3).
    #[error("{path}: {msg}")]
    Refused { path: PathBuf, msg: String },
    #[error("job {id} failed ({status}); its log: {log}\n{tail}")]
    JobFailed { id: String, status: String, log: PathBuf, tail: String },
    #[error(transparent)]
    Report(#[from] memgen_plot::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), err: source }
    }

    pub(crate) fn bad_file(path: &Path, msg: impl Into<String>) -> Self {
        Error::BadFile { path: path.to_path_buf(), msg: msg.into() }
    }

    pub(crate) fn refused(path: &Path, msg: impl Into<String>) -> Self {
        Error::Refused { path: path.to_path_buf(), msg: msg.into() }
    }
}

/// Write `bytes` to `path` atomically (a temporary file next to it, then a rename); on failure the
/// temporary file is removed and the error names `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    // A failed write (disk full) or rename removes the temporary file; `path` is left as it was.
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Write `value` as pretty JSON, atomically.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Read JSON from `path`, naming the file on error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::bad_file(path, format!("invalid JSON: {e}")))
}

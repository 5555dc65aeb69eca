//! memgen-experiment: an experiment (an N-sweep over disjoint training pairs, DESIGN.md) as a graph of
//! `memgen` jobs, executed locally in parallel processes with resume ([`exec`]), or written out as a
//! manifest and Slurm job arrays ([`slurm`]); the results table and report gathered from the jobs'
//! output files ([`results`], [`report`]).
//!
//! Every job is one `memgen` command line (prepare, train, compare, linear) whose outputs live under
//! the experiment directory; a job is finished when its stamp `jobs/<id>.json` records the same
//! command line, so a killed sweep resumes where it stopped, and a changed experiment is detected job
//! by job.

pub mod command;
pub mod config;
pub mod exec;
pub mod plan;
pub mod report;
pub mod results;
pub mod slurm;
pub mod verdict;

pub use config::Experiment;
pub use command::Command;
pub use plan::{Job, JobKind, Plan, Stage};

use memgen_io::FileError;
use std::path::{Path, PathBuf};

/// Errors of planning, running and reporting experiments.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file that cannot be read or written, or is not what it should be; or a refusal to protect
    /// data already on disk: an experiment directory run with another network config or command
    /// line, or one another memgen process is running (the command line exits with code 3).
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{0}")]
    Invalid(String),
    #[error("job {id} failed ({status}); its log: {log}\n{tail}")]
    JobFailed { id: String, status: String, log: PathBuf, tail: String },
    #[error(transparent)]
    Plot(#[from] memgen_plot::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        FileError::io(path, source).into()
    }

    pub(crate) fn bad_file(path: &Path, msg: impl Into<String>) -> Self {
        FileError::bad_file(path, msg).into()
    }

    pub(crate) fn refused(path: &Path, msg: impl Into<String>) -> Self {
        FileError::refused(path, msg).into()
    }

    /// Whether this is a refusal to protect data on disk (the command line exits with code 3).
    pub fn is_refused(&self) -> bool {
        matches!(self, Error::File(FileError::Refused { .. }))
    }
}

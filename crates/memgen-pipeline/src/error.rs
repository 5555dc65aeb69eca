//! Errors of the sample and compare stages. Each variant that adds context says what was being done
//! (the run, dataset or file it concerns) and keeps the failure beneath it as its source, so that the
//! command line's `{:#}` prints "what was done: why it failed".

use memgen_io::FileError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file that cannot be read or written, or is not what its format requires.
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Diffusion(#[from] memgen_diffusion::Error),
    #[error(transparent)]
    Data(#[from] memgen_data::Error),
    #[error(transparent)]
    Linear(#[from] memgen_linear::Error),
    #[error(transparent)]
    Metrics(#[from] memgen_metrics::Error),
    #[error(transparent)]
    Plot(#[from] memgen_plot::Error),
    /// Sampling a trained run failed.
    #[error("sampling {}", run.display())]
    Sampling {
        run: PathBuf,
        #[source]
        source: memgen_diffusion::Error,
    },
    /// Sampling a baseline denoiser (`denoiser`: "empirical optimal denoiser" or "Gaussian
    /// denoiser") of a training subset of the prepared dataset `data` failed.
    #[error("sampling the {denoiser} of {}", data.display())]
    SamplingBaseline {
        denoiser: &'static str,
        data: PathBuf,
        #[source]
        source: memgen_linear::Error,
    },
    /// `run` has no readable config.json.
    #[error("{} is not a training run", run.display())]
    NotARun {
        run: PathBuf,
        #[source]
        source: memgen_diffusion::Error,
    },
    /// The prepared dataset a run trained on cannot be read.
    #[error("reading the training data of {}", run.display())]
    TrainingData {
        run: PathBuf,
        #[source]
        source: memgen_data::Error,
    },
    /// A prepared dataset cannot be read.
    #[error("reading {}", dir.display())]
    Dataset {
        dir: PathBuf,
        #[source]
        source: memgen_data::Error,
    },
    /// The dataset of a run no longer holds the images the run was trained on.
    #[error(
        "{}: the dataset {} changed since the run was trained (content hash {now} vs {then})",
        run.display(),
        dataset.display()
    )]
    DatasetChanged { run: PathBuf, dataset: PathBuf, now: String, then: String },
    /// A run's split.json is unusable.
    #[error("{}: split.json", run.display())]
    Split {
        run: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// A training index that the dataset does not have.
    #[error("training index {index} is beyond the dataset's {count} images")]
    IndexBeyond { index: usize, count: usize },
    /// Selecting the training set of a side (`side`: 'A' or 'B') of a split failed.
    #[error("selecting S_{side}")]
    Selecting {
        side: char,
        #[source]
        source: memgen_diffusion::Error,
    },
    /// Two training sets (`what`: "the runs", "the two sides") whose images differ in shape.
    #[error("{what} train on images of different shapes: {a:?} vs {b:?}")]
    Shapes { what: String, a: [usize; 3], b: [usize; 3] },
    /// Samples whose image shape is not the run's.
    #[error(
        "{}: samples are {}x{}x{} but {} trains on {train:?}",
        samples.display(),
        dims[0],
        dims[1],
        dims[2],
        run.display()
    )]
    SampleShape { samples: PathBuf, dims: [usize; 3], run: PathBuf, train: [usize; 3] },
    /// An output directory that cannot be created.
    #[error("creating {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// [`Error::CreateDir`] unless `dir` could be created (with its parents) or exists.
    pub(crate) fn create_dir(dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir { path: dir.to_path_buf(), source })
    }
}

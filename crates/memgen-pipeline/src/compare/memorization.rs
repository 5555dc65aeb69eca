//! One model's samples against its own training set: memorization.json, .csv, .png and
//! memorization-hist.svg/.png.

use super::{figures, TrainingSet};
use crate::sample::{write_record, Samples};
use crate::{Error, Result};
use memgen_diffusion::generate::load_samples;
use memgen_metrics::scores::MemorizationSummary;
use memgen_metrics::{CompareConfig, Images, MemorizationScore};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// memorization.json: which samples against which run's training set, the thresholds, the summary
/// and every sample's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorizationRecord {
    /// The run whose training set the samples were scored against.
    pub run: PathBuf,
    /// The samples file.
    pub samples: PathBuf,
    /// Number of samples.
    pub count: usize,
    /// |S|.
    pub n_train: usize,
    /// The thresholds.
    pub config: CompareConfig,
    /// Worker threads in effect.
    pub threads: usize,
    pub summary: MemorizationSummary,
    /// One entry per sample.
    pub scores: Vec<MemorizationScore>,
}

/// A run's training set and samples of the same image shape, loaded.
#[derive(Debug, Clone)]
pub struct MemorizationInputs {
    pub run: PathBuf,
    /// The samples file.
    pub samples_path: PathBuf,
    pub train: TrainingSet,
    pub samples: Samples,
}

impl MemorizationInputs {
    /// The training set of `run` and the (count, C, H, W) tensor of the safetensors file `samples`,
    /// whose images must have the run's shape.
    pub fn load(run: &Path, samples: &Path) -> Result<Self> {
        let train = TrainingSet::load(run)?;
        let ([n, c, h, w], pixels) = load_samples(samples)?;
        if [c, h, w] != train.dims() {
            return Err(Error::SampleShape {
                samples: samples.to_path_buf(),
                dims: [c, h, w],
                run: run.to_path_buf(),
                train: train.dims(),
            });
        }
        Ok(MemorizationInputs {
            run: run.to_path_buf(),
            samples_path: samples.to_path_buf(),
            train,
            samples: ([n, c, h, w], pixels),
        })
    }

    fn samples(&self) -> Result<Images<'_>> {
        let [_, c, h, w] = self.samples.0;
        Ok(Images::new(&self.samples.1, c * h * w)?)
    }
}

/// Score every sample of `inputs` against the training set (best correlation, L2 ratio NN1/NN2) and
/// summarize under `thresholds`; memorization.json's record.
pub fn memorization(inputs: &MemorizationInputs, thresholds: &CompareConfig) -> Result<MemorizationRecord> {
    let scores = memgen_metrics::memorization(&inputs.samples()?, &inputs.train.images()?)?;
    Ok(MemorizationRecord {
        run: inputs.run.clone(),
        samples: inputs.samples_path.clone(),
        count: inputs.samples.0[0],
        n_train: inputs.train.indices().len(),
        config: *thresholds,
        threads: crate::threads(),
        summary: MemorizationSummary::of(&scores, thresholds),
        scores,
    })
}

/// Write memorization.json (`record`), memorization.csv (one row per sample), memorization.png (the
/// first `figure_rows` samples beside their nearest training image) and the histogram of best
/// correlations memorization-hist.svg/.png into `out` (created if absent).
pub fn write_memorization(
    out: &Path,
    record: &MemorizationRecord,
    inputs: &MemorizationInputs,
    figure_rows: usize,
) -> Result<()> {
    Error::create_dir(out)?;
    write_record(&out.join("memorization.json"), record)?;
    let csv = figures::memorization_csv(&record.scores);
    memgen_io::write_atomic(&out.join("memorization.csv"), csv.as_bytes())?;
    let [_, _, h, w] = inputs.samples.0;
    let samples = inputs.samples()?;
    let table = figures::memorization_table(&record.scores, &samples, &inputs.train, figure_rows, h, w);
    memgen_plot::save_png(&table.render(&figures::table_config(&table))?, &out.join("memorization.png"))?;
    let corr: Vec<f64> = record.scores.iter().map(|m| m.corr).collect();
    let title = "Best correlation to the training set";
    figures::write_histogram(out, "memorization-hist", title, &[("samples", corr)])
}

impl MemorizationRecord {
    /// The summary printed to the terminal.
    pub fn text(&self) -> String {
        let mut s = String::new();
        use std::fmt::Write as _;
        let _ = writeln!(s, "{} samples against N = {} training images", self.count, self.n_train);
        figures::memorization_lines(&mut s, "samples", &self.summary, "training set", &self.config);
        s
    }
}

//! The compare stage: two models driven by the same noise (draw k makes sample k of A and sample k of
//! B), each sample scored against both training sets, and their agreement corr(x_A, x_B)
//! ([`compare`], [`write_compare`]: compare.json, compare.csv, compare.png, compare-hist.svg/.png);
//! and one model's samples scored against its own training set ([`memorization`],
//! [`write_memorization`]: memorization.json, .csv, .png, memorization-hist.svg/.png).
//!
//! The two models are trained runs ([`CompareInputs::runs`]) or a pair of baseline denoisers of the two
//! sides S_A(N), S_B(N) of a nested split ([`CompareInputs::baseline`]: the empirical optimal
//! denoiser, or the Gaussian denoiser). Samples already on disk are reused where they were made with
//! the same sampler and noise by the same model: RUN/samples/seed-S of a run, DATA/oracle/…/seed-S of
//! an oracle side ([`samples_for`], [`oracle_samples_for`]).

mod figures;
mod memorization;

pub use memorization::{memorization, write_memorization, MemorizationInputs, MemorizationRecord};

use crate::sample::{
    default_dir, reusable, sample_into, sample_linear_into, sample_oracle_into, write_record, SampledFrom,
    Samples, SamplesRecord, Subset,
};
use crate::{Error, Result};
use memgen_data::dataset::PreparedDataset;
use memgen_diffusion::generate::{GenerateConfig, Generated};
use memgen_diffusion::run::{select, RunConfig, Selection, Side, SplitRecord};
use memgen_diffusion::schedule::ScheduleConfig;
use memgen_metrics::{CompareConfig, Comparison, Images};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// compare.json: which two models, the shared sampler and noise, the training-set sizes and the
/// comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRecord {
    /// The two models: `run_a`/`run_b`, or a baseline pair's settings.
    #[serde(flatten)]
    pub pair: ComparedPair,
    pub noise_seed: u64,
    /// Noise draws.
    pub count: usize,
    /// The sampler both models ran.
    pub sampler: GenerateConfig,
    /// |S_A| and |S_B|.
    pub n_a: usize,
    pub n_b: usize,
    /// Images both training sets hold (0 when they are disjoint, as they should be).
    pub shared_training_images: usize,
    /// Worker threads in effect.
    pub threads: usize,
    pub comparison: Comparison,
}

/// The two models of a comparison, as compare.json names them (no key of its own: its fields sit
/// beside the others).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ComparedPair {
    /// Two trained runs.
    Runs { run_a: PathBuf, run_b: PathBuf },
    /// The empirical optimal denoisers of S_A(N) and S_B(N) of the prepared dataset `data`.
    Oracle { oracle: True, data: PathBuf, n: usize, split_seed: u64, schedule: ScheduleConfig },
    /// Their Gaussian denoisers (`blind`: the blind form under the blind sampler).
    Linear {
        linear: True,
        data: PathBuf,
        n: usize,
        split_seed: u64,
        schedule: ScheduleConfig,
        /// Absent in records written before it existed: false.
        #[serde(default)]
        blind: bool,
    },
}

/// `true` in JSON, and nothing else: the `"oracle": true` or `"linear": true` that marks a baseline
/// pair in compare.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct True;

impl Serialize for True {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bool(true)
    }
}

impl<'de> Deserialize<'de> for True {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match bool::deserialize(d)? {
            true => Ok(True),
            false => Err(serde::de::Error::custom("expected true")),
        }
    }
}

/// Which baseline denoiser a [`BaselinePair`] samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The empirical optimal denoiser (the exact score of the training set: the ideal memorizer).
    Oracle,
    /// The Gaussian denoiser of the set's mean and covariance; `blind`: its blind form under the
    /// blind sampler.
    Linear { blind: bool },
}

impl Baseline {
    /// "oracle" or "linear": the flag, the directory under the dataset, the key of compare.json.
    pub fn name(&self) -> &'static str {
        match self {
            Baseline::Oracle => "oracle",
            Baseline::Linear { .. } => "linear",
        }
    }
}

/// Two baseline denoisers of the two sides S_A(N), S_B(N) of the nested split of a prepared dataset,
/// the sets selected exactly as `memgen sample --oracle --split a|b` (and `memgen train`) select them.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselinePair {
    pub baseline: Baseline,
    /// The prepared dataset directory.
    pub data: PathBuf,
    /// N, the training-set size of each side.
    pub n: usize,
    /// Seed of the nested split.
    pub split_seed: u64,
    pub schedule: ScheduleConfig,
}

impl BaselinePair {
    /// The training subset of `side`.
    pub fn side(&self, side: Side) -> Subset {
        Subset {
            data: self.data.clone(),
            selection: Selection::Split { side, n: self.n, seed: self.split_seed },
            schedule: self.schedule,
        }
    }

    /// DATA/oracle/compare-nN-seed-S or DATA/linear/compare-nN[-blind]-seed-S (`-splitK` after nN
    /// for split seed K).
    pub fn default_dir(&self, noise_seed: u64) -> PathBuf {
        let split = if self.split_seed == 0 { String::new() } else { format!("-split{}", self.split_seed) };
        let blind = if self.baseline == (Baseline::Linear { blind: true }) { "-blind" } else { "" };
        let name = format!("compare-n{}{split}{blind}-seed-{noise_seed}", self.n);
        self.data.join(self.baseline.name()).join(name)
    }

    /// How compare.json names this pair.
    pub fn record(&self) -> ComparedPair {
        let (data, n, split_seed, schedule) = (self.data.clone(), self.n, self.split_seed, self.schedule);
        match self.baseline {
            Baseline::Oracle => ComparedPair::Oracle { oracle: True, data, n, split_seed, schedule },
            Baseline::Linear { blind } => {
                ComparedPair::Linear { linear: True, data, n, split_seed, schedule, blind }
            }
        }
    }
}

/// RUN_A/compare/<name of RUN_B>-seed-S: where `memgen compare RUN_A RUN_B` writes by default.
pub fn default_dir_of_runs(run_a: &Path, run_b: &Path, noise_seed: u64) -> PathBuf {
    let name_b = run_b.file_name().map_or("b".into(), |n| n.to_string_lossy().into_owned());
    run_a.join("compare").join(format!("{name_b}-seed-{noise_seed}"))
}

/// A model's training images: a prepared dataset and the indices trained on.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    data: Arc<PreparedDataset>,
    indices: Vec<usize>,
}

impl TrainingSet {
    /// The images `indices` of `data` (each must be below the dataset's count).
    pub fn new(data: Arc<PreparedDataset>, indices: Vec<usize>) -> Result<Self> {
        let count = data.manifest.count;
        if let Some(&index) = indices.iter().find(|&&i| i >= count) {
            return Err(Error::IndexBeyond { index, count });
        }
        Ok(TrainingSet { data, indices })
    }

    /// The training set of a run: its dataset and the indices of split.json.
    pub fn load(run: &Path) -> Result<Self> {
        let cfg = RunConfig::load(run).map_err(|source| Error::NotARun { run: run.to_path_buf(), source })?;
        let split: SplitRecord = memgen_io::read_json(&run.join("split.json"))?;
        let data = PreparedDataset::read(&cfg.data.dir)
            .map_err(|source| Error::TrainingData { run: run.to_path_buf(), source })?;
        if data.manifest.content_hash != split.content_hash {
            return Err(Error::DatasetChanged {
                run: run.to_path_buf(),
                dataset: cfg.data.dir,
                now: data.manifest.content_hash,
                then: split.content_hash,
            });
        }
        TrainingSet::new(Arc::new(data), split.indices)
            .map_err(|e| Error::Split { run: run.to_path_buf(), source: Box::new(e) })
    }

    /// The dataset.
    pub fn data(&self) -> &PreparedDataset {
        &self.data
    }

    /// The dataset indices of the set.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The set's images.
    pub fn images(&self) -> Result<Images<'_>> {
        Ok(Images::subset(&self.data.pixels, self.data.image_len(), &self.indices)?)
    }

    /// Image `dataset_index` of the dataset.
    pub fn image(&self, dataset_index: usize) -> &[f32] {
        self.data.image(dataset_index)
    }

    /// (C, H, W) of the images.
    pub fn dims(&self) -> [usize; 3] {
        let m = &self.data.manifest;
        [m.channels, m.height, m.width]
    }

    /// Whether both sets are images of the same dataset (same content hash).
    fn same_dataset(&self, other: &TrainingSet) -> bool {
        self.data.manifest.content_hash == other.data.manifest.content_hash
    }
}

/// The samples of `dir` when `reused` holds them, or else samples drawn by `draw` into `dir` (or into
/// `fallback` when `dir` already holds other samples).
fn reuse_or_draw(
    dir: PathBuf,
    reused: Option<Samples>,
    fallback: &Path,
    draw: impl FnOnce(&Path) -> Result<Generated>,
) -> Result<Samples> {
    if let Some(s) = reused {
        eprintln!("reusing {} samples of {}", s.0[0], dir.display());
        return Ok(s);
    }
    let target = if dir.join("samples.safetensors").exists() { fallback.to_path_buf() } else { dir };
    let g = draw(&target)?;
    Ok((g.dims, g.pixels))
}

/// Samples of `run` for `cfg`: reused from RUN/samples/seed-S when they match ([`reusable`]), else
/// drawn and saved there on `dev` (or, when that directory holds other samples, under `fallback`).
pub fn samples_for(
    run: &Path,
    cfg: &GenerateConfig,
    dev: &candle::Device,
    fallback: &Path,
) -> Result<Samples> {
    let dir = default_dir(run, cfg.noise_seed);
    let reused = reusable(&dir, cfg);
    reuse_or_draw(dir, reused, fallback, |target| sample_into(run, cfg, dev, target, false))
}

/// Samples of the empirical optimal denoiser of `subset` (whose images are `train`) for `cfg`: reused
/// from [`Subset::oracle_dir`] when they match (sampler and noise as [`reusable`] checks, and the
/// same dataset, training indices and schedule), else drawn and saved there (or, when that directory
/// holds other samples, under `fallback`).
pub fn oracle_samples_for(
    subset: &Subset,
    train: &TrainingSet,
    cfg: &GenerateConfig,
    fallback: &Path,
) -> Result<Samples> {
    let dir = subset.oracle_dir(cfg.noise_seed);
    let reused = reusable(&dir, cfg).filter(|_| same_oracle(&dir, subset, train));
    reuse_or_draw(dir, reused, fallback, |target| sample_oracle_into(subset, cfg, target, false))
}

/// Whether the samples.json of `dir` records the empirical optimal denoiser of `train` (same content
/// hash and training indices) under the schedule of `subset`.
fn same_oracle(dir: &Path, subset: &Subset, train: &TrainingSet) -> bool {
    let Ok(record) = memgen_io::read_json::<SamplesRecord>(&dir.join("samples.json")) else { return false };
    let SampledFrom::Oracle(o) = record.source else { return false };
    // Both schedules read from their JSON text, so that float parsing cannot tell them apart.
    let schedule = serde_json::to_string(&subset.schedule).ok().and_then(|s| serde_json::from_str(&s).ok());
    o.content_hash == train.data.manifest.content_hash
        && o.indices == train.indices
        && Some(o.schedule) == schedule
}

/// Check that two training sets can be compared (same image shape) and warn when they share images
/// (`what` names them in the error: "the runs", "the two sides"); the number shared.
pub fn check_training_sets(train_a: &TrainingSet, train_b: &TrainingSet, what: &str) -> Result<usize> {
    if train_a.dims() != train_b.dims() {
        return Err(Error::Shapes { what: what.into(), a: train_a.dims(), b: train_b.dims() });
    }
    let overlap = shared_images(train_a, train_b);
    if overlap > 0 {
        eprintln!("warning: the two training sets share {overlap} images (they should be disjoint)");
    }
    Ok(overlap)
}

/// How many dataset images both training sets hold (0 unless they share a dataset and overlap).
fn shared_images(a: &TrainingSet, b: &TrainingSet) -> usize {
    if !a.same_dataset(b) {
        return 0;
    }
    let set: std::collections::HashSet<usize> = a.indices.iter().copied().collect();
    b.indices.iter().filter(|i| set.contains(i)).count()
}

/// Up to `max` dataset indices in neither training set (none when the two sets come from different
/// datasets), evenly spaced over all such images so that no part of the dataset's order dominates.
pub fn held_out(a: &TrainingSet, b: &TrainingSet, max: usize) -> Vec<usize> {
    if !a.same_dataset(b) {
        return Vec::new();
    }
    let used: std::collections::HashSet<usize> = a.indices.iter().chain(&b.indices).copied().collect();
    let free: Vec<usize> = (0..a.data.manifest.count).filter(|i| !used.contains(i)).collect();
    memgen_analysis::generalization::evenly_spaced(&free, max)
}

/// Everything a comparison scores: both training sets and both sets of samples of the same noise.
#[derive(Debug, Clone)]
pub struct CompareInputs {
    pub train_a: TrainingSet,
    pub train_b: TrainingSet,
    pub samples_a: Samples,
    pub samples_b: Samples,
    /// The shared sampler and noise.
    pub cfg: GenerateConfig,
    /// Images both training sets hold ([`check_training_sets`]).
    pub overlap: usize,
    /// Most held-out images of the novelty reference ([`held_out`]).
    pub held_out: usize,
}

impl CompareInputs {
    /// Two trained runs sampled with `cfg` on `dev`: their training sets and samples, reused from
    /// RUN/samples/seed-S where they match, else drawn there (or under OUT/samples-a, OUT/samples-b
    /// when those directories hold other samples).
    pub fn runs(
        run_a: &Path,
        run_b: &Path,
        cfg: &GenerateConfig,
        dev: &candle::Device,
        held_out: usize,
        out: &Path,
    ) -> Result<Self> {
        let (train_a, train_b) = (TrainingSet::load(run_a)?, TrainingSet::load(run_b)?);
        let overlap = check_training_sets(&train_a, &train_b, "the runs")?;
        let samples_a = samples_for(run_a, cfg, dev, &out.join("samples-a"))?;
        let samples_b = samples_for(run_b, cfg, dev, &out.join("samples-b"))?;
        Ok(CompareInputs { train_a, train_b, samples_a, samples_b, cfg: cfg.clone(), overlap, held_out })
    }

    /// The baseline denoisers of S_A(N) and S_B(N) sampled with `cfg` (on the CPU). The oracle's
    /// samples are reused from (or drawn into) DATA/oracle/<side>-nN/seed-S, falling back to
    /// OUT/samples-a, OUT/samples-b; the Gaussian denoisers' are drawn into OUT/samples-a, -b.
    pub fn baseline(pair: &BaselinePair, cfg: &GenerateConfig, held_out: usize, out: &Path) -> Result<Self> {
        let (subset_a, subset_b) = (pair.side(Side::A), pair.side(Side::B));
        let ds = PreparedDataset::read(&pair.data)
            .map_err(|source| Error::Dataset { dir: pair.data.clone(), source })?;
        let ds = Arc::new(ds);
        let select = |side, subset: &Subset| {
            select(&ds, &subset.selection).map_err(|source| Error::Selecting { side, source })
        };
        let (indices_a, indices_b) = (select('A', &subset_a)?, select('B', &subset_b)?);
        let (train_a, train_b) = (TrainingSet::new(ds.clone(), indices_a)?, TrainingSet::new(ds, indices_b)?);
        let overlap = check_training_sets(&train_a, &train_b, "the two sides")?;
        let (fallback_a, fallback_b) = (out.join("samples-a"), out.join("samples-b"));
        let (samples_a, samples_b) = match pair.baseline {
            Baseline::Oracle => (
                oracle_samples_for(&subset_a, &train_a, cfg, &fallback_a)?,
                oracle_samples_for(&subset_b, &train_b, cfg, &fallback_b)?,
            ),
            Baseline::Linear { blind } => {
                let draw = |subset: &Subset, dir: &Path| -> Result<Samples> {
                    let g = sample_linear_into(subset, blind, cfg, dir, false)?;
                    Ok((g.dims, g.pixels))
                };
                (draw(&subset_a, &fallback_a)?, draw(&subset_b, &fallback_b)?)
            }
        };
        Ok(CompareInputs { train_a, train_b, samples_a, samples_b, cfg: cfg.clone(), overlap, held_out })
    }

    /// Both sample sets as image sets.
    fn samples(&self) -> Result<(Images<'_>, Images<'_>)> {
        let d = self.train_a.data.image_len();
        Ok((Images::new(&self.samples_a.1, d)?, Images::new(&self.samples_b.1, d)?))
    }
}

/// Score `inputs` under `thresholds`: each sample against both training sets, corr(x_A, x_B), the
/// reference S_A vs S_B and the held-out novelty reference; compare.json's record, `pair` naming the
/// two models.
pub fn compare(
    pair: ComparedPair,
    inputs: &CompareInputs,
    thresholds: &CompareConfig,
) -> Result<CompareRecord> {
    let (train_a, train_b) = (&inputs.train_a, &inputs.train_b);
    let (sa, sb) = inputs.samples()?;
    let mut cmp = memgen_metrics::compare(&sa, &sb, &train_a.images()?, &train_b.images()?, thresholds)?;
    let fresh = held_out(train_a, train_b, inputs.held_out);
    if !fresh.is_empty() {
        let fresh = Images::subset(&train_a.data.pixels, train_a.data.image_len(), &fresh)?;
        cmp.novelty = Some(memgen_metrics::scores::reference(&fresh, &train_a.images()?)?);
    }
    Ok(CompareRecord {
        pair,
        noise_seed: inputs.cfg.noise_seed,
        count: inputs.cfg.count,
        sampler: inputs.cfg.clone(),
        n_a: train_a.indices.len(),
        n_b: train_b.indices.len(),
        shared_training_images: inputs.overlap,
        threads: crate::threads(),
        comparison: cmp,
    })
}

/// Write compare.json (`record`), compare.csv (one row per noise draw), compare.png (the first
/// `figure_rows` draws: sample A, its nearest image in S_A, sample B, its nearest in S_B) and the
/// histograms of correlations compare-hist.svg/.png into `out` (created if absent).
pub fn write_compare(
    out: &Path,
    record: &CompareRecord,
    inputs: &CompareInputs,
    figure_rows: usize,
) -> Result<()> {
    let cmp = &record.comparison;
    Error::create_dir(out)?;
    write_record(&out.join("compare.json"), record)?;
    memgen_io::write_atomic(&out.join("compare.csv"), figures::compare_csv(cmp).as_bytes())?;
    let (sa, sb) = inputs.samples()?;
    let [_, _, h, w] = inputs.samples_a.0;
    let table = figures::compare_table(cmp, &sa, &sb, &inputs.train_a, &inputs.train_b, figure_rows, h, w);
    memgen_plot::save_png(&table.render(&figures::table_config(&table))?, &out.join("compare.png"))?;
    let mut series = vec![
        ("A vs own set", cmp.pairs.iter().map(|p| p.a_own.corr).collect::<Vec<_>>()),
        ("A vs other set", cmp.pairs.iter().map(|p| p.a_other.corr).collect()),
        ("A vs B", cmp.pairs.iter().map(|p| p.corr_ab).collect()),
        ("S_A vs S_B (no model)", cmp.reference.corr.clone()),
    ];
    if let Some(novelty) = &cmp.novelty {
        series.push(("held-out vs S_A (no model)", novelty.corr.clone()));
    }
    figures::write_histogram(out, "compare-hist", "Correlations", &series)
}

impl CompareRecord {
    /// The summary table printed to the terminal: medians, quartiles and fractions of agreement,
    /// memorization against each set, the references and the in-range fractions.
    pub fn text(&self) -> String {
        figures::compare_text(&self.comparison, self.n_a, self.n_b)
    }
}

#[cfg(test)]
mod tests;

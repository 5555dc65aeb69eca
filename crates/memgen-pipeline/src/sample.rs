//! The sample stage: draw images with explicit, shareable noise from a trained run
//! ([`sample_into`]), from the empirical optimal denoiser of a training subset
//! ([`sample_oracle_into`]) or from its Gaussian denoiser ([`sample_linear_into`]), and write them
//! into a directory:
//!
//! * `samples.safetensors`: one (count, C, H, W) tensor `samples`;
//! * `grid.png`: the first channel of every image in a grid;
//! * `samples.json`: the [`SamplesRecord`] (what was sampled, how, and how fast);
//! * with `png_each`, `sample-00000.png`, … one image each.
//!
//! Sample k depends only on the noise seed and k (DESIGN.md, shared noise), so samples already on disk
//! serve any request for at most as many images with the same sampler and noise ([`reusable`]).

use crate::{Error, Result};
use memgen_diffusion::generate::{generate_on, load_samples, save_samples, GenerateConfig, Generated};
use memgen_diffusion::run::{DataRef, Selection, Side, SplitRecord};
use memgen_diffusion::schedule::ScheduleConfig;
use memgen_linear::theory::Regularization;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// samples.json: what was sampled, with which sampler and noise, and what it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplesRecord {
    /// The sampler, noise seed and count.
    pub config: GenerateConfig,
    /// The shape, the blind sampler's steps and the in-range fraction (no pixels: those are in
    /// samples.safetensors).
    pub result: Generated,
    /// Worker threads in effect.
    pub threads: usize,
    pub images_per_s: f64,
    /// The model: key "run", "oracle" or "linear".
    #[serde(flatten)]
    pub source: SampledFrom,
}

/// What was sampled: one key of samples.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampledFrom {
    /// "run": a trained run directory.
    Run(PathBuf),
    /// "oracle": the empirical optimal denoiser of a training subset.
    Oracle(SubsetRecord),
    /// "linear": the Gaussian denoiser of a training subset.
    Linear(LinearPairSource),
}

/// A baseline's training subset as samples.json records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubsetRecord {
    /// The prepared dataset directory.
    pub dataset: PathBuf,
    /// Its content hash.
    pub content_hash: String,
    /// How the subset was chosen.
    pub selection: Selection,
    /// `indices.len()`.
    pub n_train: usize,
    /// The dataset indices of the subset.
    pub indices: Vec<usize>,
    /// The DDPM schedule of the denoiser.
    pub schedule: ScheduleConfig,
}

/// The Gaussian denoiser's subset, regularization and form, as samples.json records it (the
/// source of a linear pair's samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearPairSource {
    #[serde(flatten)]
    pub subset: SubsetRecord,
    pub regularization: Regularization,
    /// The blind form (noise level read off each input) under the blind sampler (absent in records
    /// written before it existed: false).
    #[serde(default)]
    pub blind: bool,
}

/// A baseline denoiser's training subset: which images of which prepared dataset, and the schedule
/// (what `memgen sample --oracle` and `memgen compare --oracle/--linear` sample).
#[derive(Debug, Clone, PartialEq)]
pub struct Subset {
    /// The prepared dataset directory.
    pub data: PathBuf,
    /// The images, chosen as `memgen train` chooses them.
    pub selection: Selection,
    pub schedule: ScheduleConfig,
}

impl Subset {
    /// DATA/oracle/<subset>/seed-S: where `memgen sample --oracle` writes by default and
    /// `memgen compare --oracle` looks first. <subset> = `a-n5` (`a-n5-split3` for split seed 3),
    /// `all`, or `indices-<file stem>`.
    pub fn oracle_dir(&self, noise_seed: u64) -> PathBuf {
        let subset = match &self.selection {
            Selection::Split { side, n, seed } => {
                let side = if *side == Side::A { "a" } else { "b" };
                if *seed == 0 {
                    format!("{side}-n{n}")
                } else {
                    format!("{side}-n{n}-split{seed}")
                }
            }
            Selection::All => "all".into(),
            Selection::File { path } => {
                format!("indices-{}", path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default())
            }
        };
        self.data.join("oracle").join(subset).join(format!("seed-{noise_seed}"))
    }

    fn data_ref(&self) -> DataRef {
        DataRef { dir: self.data.clone(), content_hash: String::new(), selection: self.selection.clone() }
    }
}

/// Samples: shape (K, C, H, W) and pixels.
pub type Samples = ([usize; 4], Vec<f32>);

/// RUN/samples/seed-S: where `memgen sample` writes by default and `memgen compare` looks first.
pub fn default_dir(run: &Path, noise_seed: u64) -> PathBuf {
    run.join("samples").join(format!("seed-{noise_seed}"))
}

/// Sample `run` with `cfg` on `dev` (progress bar on stderr) and write `samples.safetensors`,
/// `grid.png` and `samples.json` (and one PNG per image when `png_each`) into `out`.
pub fn sample_into(
    run: &Path,
    cfg: &GenerateConfig,
    dev: &candle::Device,
    out: &Path,
    png_each: bool,
) -> Result<Generated> {
    let bar = progress_bar(cfg.count, run);
    let g = generate_on(run, cfg, dev, Some(&bar))
        .map_err(|source| Error::Sampling { run: run.to_path_buf(), source })?;
    bar.finish_and_clear();
    write_with_record(g, cfg, SampledFrom::Run(run.to_path_buf()), out, png_each)
}

/// Sample the empirical optimal denoiser of `subset` and write the same files as [`sample_into`];
/// samples.json records the dataset, its content hash, the selection, the training indices and the
/// schedule under "oracle".
pub fn sample_oracle_into(
    subset: &Subset,
    cfg: &GenerateConfig,
    out: &Path,
    png_each: bool,
) -> Result<Generated> {
    let bar = progress_bar(cfg.count, &subset.data);
    let (g, split) =
        memgen_linear::oracle::generate(&subset.data_ref(), &subset.schedule, cfg, &|n| bar.inc(n as u64))
            .map_err(|source| Error::SamplingBaseline {
                denoiser: "empirical optimal denoiser",
                data: subset.data.clone(),
                source,
            })?;
    bar.finish_and_clear();
    let source = SampledFrom::Oracle(SubsetRecord::new(split, subset.schedule));
    write_with_record(g, cfg, source, out, png_each)
}

/// Sample the Gaussian (linear) denoiser of `subset` (its mean and covariance, unregularised:
/// [`memgen_linear::baseline::generate_linear`]; with `blind` its blind form under the blind sampler)
/// and write the same files as [`sample_into`]; samples.json records the dataset, content hash,
/// selection, training indices, schedule, regularization and `blind` under "linear".
pub fn sample_linear_into(
    subset: &Subset,
    blind: bool,
    cfg: &GenerateConfig,
    out: &Path,
    png_each: bool,
) -> Result<Generated> {
    let bar = progress_bar(cfg.count, &subset.data);
    let reg = Regularization::default();
    let (g, split) = memgen_linear::baseline::generate_linear(
        &subset.data_ref(),
        &subset.schedule,
        reg,
        blind,
        cfg,
        &|n| bar.inc(n as u64),
    )
    .map_err(|source| Error::SamplingBaseline {
        denoiser: "Gaussian denoiser",
        data: subset.data.clone(),
        source,
    })?;
    bar.finish_and_clear();
    let subset = SubsetRecord::new(split, subset.schedule);
    let source = SampledFrom::Linear(LinearPairSource { subset, regularization: reg, blind });
    write_with_record(g, cfg, source, out, png_each)
}

impl SubsetRecord {
    /// The record of the subset `split` sampled under `schedule`.
    pub fn new(split: SplitRecord, schedule: ScheduleConfig) -> Self {
        SubsetRecord {
            dataset: split.dataset,
            content_hash: split.content_hash,
            selection: split.selection,
            n_train: split.indices.len(),
            indices: split.indices,
            schedule,
        }
    }
}

impl SamplesRecord {
    /// The record of `g` (its pixels left out), sampled from `source` with `cfg`.
    pub fn new(g: &Generated, cfg: &GenerateConfig, source: SampledFrom) -> Self {
        let result = Generated {
            dims: g.dims,
            pixels: Vec::new(),
            steps: g.steps.clone(),
            converged: g.converged.clone(),
            in_range_fraction: g.in_range_fraction,
            seconds: g.seconds,
        };
        SamplesRecord {
            config: cfg.clone(),
            result,
            threads: crate::threads(),
            images_per_s: images_per_s(g),
            source,
        }
    }
}

/// Images per second of `g`.
pub fn images_per_s(g: &Generated) -> f64 {
    g.dims[0] as f64 / g.seconds.max(1e-9)
}

/// Write `g` with its samples.json into `out`; `g` back.
fn write_with_record(
    g: Generated,
    cfg: &GenerateConfig,
    source: SampledFrom,
    out: &Path,
    png_each: bool,
) -> Result<Generated> {
    write_samples(&g, &SamplesRecord::new(&g, cfg, source), out, png_each)?;
    Ok(g)
}

fn progress_bar(count: usize, what: &Path) -> indicatif::ProgressBar {
    let bar = memgen_io::progress::bar(count as u64, "sampling", "", false);
    bar.set_message(what.display().to_string());
    bar
}

/// Write `samples.safetensors`, `grid.png`, `samples.json` (`record`) and, when `png_each`, one PNG
/// per image into `out` (created if absent).
pub fn write_samples(g: &Generated, record: &SamplesRecord, out: &Path, png_each: bool) -> Result<()> {
    Error::create_dir(out)?;
    save_samples(g, &out.join("samples.safetensors"))?;
    let [_, c, h, w] = g.dims;
    let plane = h * w;
    let images: Vec<&[f32]> = g.pixels.chunks(c * plane).map(|im| &im[..plane]).collect();
    write_grid(&images, h, w, &out.join("grid.png"))?;
    if png_each {
        for (k, im) in images.iter().enumerate() {
            write_grid(&[im], h, w, &out.join(format!("sample-{k:05}.png")))?;
        }
    }
    write_record(&out.join("samples.json"), record)
}

/// Write a record as JSON with its keys in alphabetical order, as the records were written before
/// they had types (through `serde_json::Value`), so that the files stay byte for byte the same.
pub(crate) fn write_record<T: Serialize>(path: &Path, record: &T) -> Result<()> {
    let value = serde_json::to_value(record)
        .map_err(|e| memgen_io::FileError::bad_file(path, format!("cannot encode JSON: {e}")))?;
    Ok(memgen_io::write_json(path, &value)?)
}

/// The samples of `dir` (written by [`sample_into`] or its baseline twins) when they were made with
/// the same sampler, weights and noise as `cfg` and hold at least `cfg.count` images: the first
/// `cfg.count` (sample k depends only on the noise seed and k, not on how many were drawn). Which
/// model drew them is for the caller to check (compare reuses RUN/samples/seed-S of its own run).
pub fn reusable(dir: &Path, cfg: &GenerateConfig) -> Option<Samples> {
    let record: SamplesRecord = memgen_io::read_json(&dir.join("samples.json")).ok()?;
    if !same_draws(&record.config, cfg) {
        return None;
    }
    let ([n, c, h, w], mut pixels) = load_samples(&dir.join("samples.safetensors")).ok()?;
    if n < cfg.count {
        return None;
    }
    pixels.truncate(cfg.count * c * h * w);
    Some(([cfg.count, c, h, w], pixels))
}

/// Whether samples drawn with `saved` include the first `cfg.count` of `cfg`: the same config up to
/// the batch size (which does not change the result) and a count at least `cfg.count`.
fn same_draws(saved: &GenerateConfig, cfg: &GenerateConfig) -> bool {
    saved.count >= cfg.count
        && &GenerateConfig { count: cfg.count, batch_size: cfg.batch_size, ..saved.clone() } == cfg
}

/// A PNG of `images` in a grid (one image: no padding, scale 1).
pub fn write_grid(images: &[&[f32]], h: usize, w: usize, path: &Path) -> Result<()> {
    use memgen_plot::{save_png, Grid, GridConfig};
    let cfg = if images.len() == 1 {
        GridConfig { cols: 1, pad: 0, scale: 1, ..Default::default() }
    } else {
        GridConfig::default()
    };
    let img = Grid { images, height: h, width: w }.render(&cfg)?;
    save_png(&img, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use memgen_diffusion::sampler::SamplerConfig;

    fn cfg(count: usize) -> GenerateConfig {
        GenerateConfig {
            noise_seed: 1,
            count,
            batch_size: 8,
            ema: true,
            sampler: SamplerConfig::Ddim { steps: 5, eta: 0.0 },
            blind: Default::default(),
            initial_noise: None,
        }
    }

    fn generated(count: usize) -> Generated {
        let dims = [count, 1, 2, 3];
        let pixels = (0..count * 6).map(|i| i as f32 / 10.0).collect();
        Generated { dims, pixels, steps: None, converged: None, in_range_fraction: 0.5, seconds: 2.0 }
    }

    fn subset_record() -> SubsetRecord {
        SubsetRecord::new(
            SplitRecord {
                dataset: "/data".into(),
                content_hash: "sha256:ab".into(),
                selection: Selection::Split { side: Side::B, n: 3, seed: 2 },
                indices: vec![4, 1, 7],
            },
            ScheduleConfig { beta_start: 0.1 + 0.2, ..Default::default() },
        )
    }

    #[test]
    fn records_of_every_source_round_trip_with_the_keys_of_before() {
        let g = generated(3);
        let linear = LinearPairSource {
            subset: subset_record(),
            regularization: Regularization { weight_decay: 0.25, train_time: Some(3.0) },
            blind: true,
        };
        for (source, key) in [
            (SampledFrom::Run("/runs/n10-a".into()), "run"),
            (SampledFrom::Oracle(subset_record()), "oracle"),
            (SampledFrom::Linear(linear), "linear"),
        ] {
            let rec = SamplesRecord::new(&g, &cfg(3), source);
            assert!(rec.result.pixels.is_empty());
            assert_eq!(rec.images_per_s, 1.5);
            let text = serde_json::to_string(&rec).unwrap();
            let back: SamplesRecord = serde_json::from_str(&text).unwrap();
            assert_eq!(back, rec, "{text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            let mut want = vec!["config", "images_per_s", "result", "threads", key];
            want.sort();
            assert_eq!(keys, want);
            if key != "run" {
                let mut sub: Vec<&str> = v[key].as_object().unwrap().keys().map(String::as_str).collect();
                sub.sort();
                let mut want = vec!["content_hash", "dataset", "indices", "n_train", "schedule", "selection"];
                if key == "linear" {
                    want.extend(["blind", "regularization"]);
                    want.sort();
                }
                assert_eq!(sub, want);
                assert_eq!(v[key]["n_train"], 3);
            }
        }
    }

    #[test]
    fn samples_are_reused_only_for_the_same_sampler_and_noise() {
        let dir = tempfile::tempdir().unwrap();
        let g = generated(4);
        let out = dir.path().join("s");
        write_samples(&g, &SamplesRecord::new(&g, &cfg(4), SampledFrom::Run("r".into())), &out, false)
            .unwrap();
        for f in ["samples.safetensors", "grid.png", "samples.json"] {
            assert!(out.join(f).is_file(), "{f}");
        }
        // Equal, fewer, or in other batches: the first `count` images.
        assert_eq!(reusable(&out, &cfg(4)), Some((g.dims, g.pixels.clone())));
        let (dims, pixels) = reusable(&out, &GenerateConfig { batch_size: 1, ..cfg(2) }).unwrap();
        assert_eq!((dims, &pixels[..]), ([2, 1, 2, 3], &g.pixels[..12]));
        // More images, or anything that changes the draws: not reusable.
        assert_eq!(reusable(&out, &cfg(5)), None);
        for other in [
            GenerateConfig { noise_seed: 2, ..cfg(4) },
            GenerateConfig { ema: false, ..cfg(4) },
            GenerateConfig { sampler: SamplerConfig::Ddim { steps: 6, eta: 0.0 }, ..cfg(4) },
            GenerateConfig { initial_noise: Some("x.safetensors".into()), ..cfg(4) },
        ] {
            assert_eq!(reusable(&out, &other), None, "{other:?}");
        }
        assert_eq!(reusable(&dir.path().join("none"), &cfg(4)), None);
    }

    #[test]
    fn samples_of_a_record_that_lies_about_its_count_are_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let g = generated(2);
        // samples.json claims 4 images, samples.safetensors holds 2.
        write_samples(&g, &SamplesRecord::new(&g, &cfg(4), SampledFrom::Run("r".into())), dir.path(), true)
            .unwrap();
        assert!(dir.path().join("sample-00001.png").is_file());
        assert_eq!(reusable(dir.path(), &cfg(3)), None);
        assert!(reusable(dir.path(), &cfg(2)).is_some());
    }

    #[test]
    fn oracle_dirs_name_the_subset() {
        let subset = |selection| Subset { data: "/d".into(), selection, schedule: Default::default() };
        let split = |side, seed| Selection::Split { side, n: 5, seed };
        assert_eq!(subset(split(Side::A, 0)).oracle_dir(1), Path::new("/d/oracle/a-n5/seed-1"));
        assert_eq!(subset(split(Side::B, 3)).oracle_dir(0), Path::new("/d/oracle/b-n5-split3/seed-0"));
        assert_eq!(subset(Selection::All).oracle_dir(2), Path::new("/d/oracle/all/seed-2"));
        let file = Selection::File { path: "/x/idx.json".into() };
        assert_eq!(subset(file).oracle_dir(2), Path::new("/d/oracle/indices-idx/seed-2"));
        assert_eq!(default_dir(Path::new("/r"), 7), Path::new("/r/samples/seed-7"));
    }
}

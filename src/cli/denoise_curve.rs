//! `memgen denoise-curve`: a trained denoiser's error on held-out images over noise levels, its
//! small-σ rate (slope of log MSE vs log σ) and, for C^α data, the optimal rate 2α/(α + 1); the
//! measurement is [`memgen_analysis::curve::network_curve`]. Also the options `denoise-curve` and
//! `denoise-error` share ([`DenoiseRunOpts`]).

use anyhow::{bail, Context, Result};
use clap::Args;
use memgen_analysis::curve::{
    held_out_indices, network_curve, sigma_grid, CurveConfig, CurveInputs, DenoiseCurveRecord, LineKind,
};
use memgen_analysis::ModelDenoiser;
use memgen_data::dataset::PreparedDataset;
use memgen_diffusion::run::{RunConfig, SplitRecord};
use memgen_io::{read_json, write_json};
use memgen_plot::lineplot::{LinePlot, LineSeries, LineStyle};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  memgen denoise-curve runs/demo/runs/n1000-a --data runs/demo/data --count 256 --fit-max 0.1\n  \
memgen --json denoise-curve runs/demo/runs/n10-a --data runs/demo/data --count 64 --out runs/dc-n10 --device cpu",
    mut_arg("out", |a| a.help("Output directory (default RUN/denoise-curve): denoise-curve.json, .csv, .svg, .png"))
)]
pub struct DenoiseCurveArgs {
    /// Prepared dataset the held-out images come from: its first --count images that are not in the
    /// run's training indices (RUN/split.json). Must be the dataset the run was trained on.
    #[arg(long)]
    pub data: PathBuf,
    /// Noise levels σ (y = x + σ z, pixels in [0, 1]), comma-separated; default: 13 points
    /// log-spaced from 0.01 to 1.
    #[arg(long, value_delimiter = ',')]
    pub sigmas: Vec<f64>,
    /// Held-out images.
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// Noise seed: image k at noise level i gets the noise of (seed, k, i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Smallest σ of the slope fit (default: the smallest σ).
    #[arg(long)]
    pub fit_min: Option<f64>,
    /// Largest σ of the slope fit (the small-σ range).
    #[arg(long, default_value_t = 0.1)]
    pub fit_max: f64,
    /// Regularity α of C^α images, for the optimal slope 2α/(α+1) (default: from the dataset's
    /// manifest when its source is calpha).
    #[arg(long)]
    pub alpha: Option<f64>,
    #[command(flatten)]
    pub net: DenoiseRunOpts,
}

/// The trained run, its weights, batching, output directory and device, as `denoise-curve` and
/// `denoise-error` take them (each command sets the help of --out).
#[derive(Debug, Args)]
pub struct DenoiseRunOpts {
    /// Training run (from `memgen train`).
    pub run: PathBuf,
    /// Use the raw weights instead of the EMA weights.
    #[arg(long)]
    pub no_ema: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Output directory (default RUN/<command>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device to run the network on: `cpu`, or `cuda:N` when built with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DenoiseRunOpts {
    /// The network of the run (EMA weights unless --no-ema) on --device.
    pub fn network(&self, dev: &candle::Device) -> Result<ModelDenoiser> {
        ModelDenoiser::from_run_on(&self.run, !self.no_ema, dev)
            .with_context(|| format!("loading {}", self.run.display()))
    }

    /// --out, else RUN/`name`, created.
    pub fn out_dir(&self, name: &str) -> Result<PathBuf> {
        let out = self.out.clone().unwrap_or_else(|| self.run.join(name));
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        Ok(out)
    }
}

pub fn run_denoise_curve(a: DenoiseCurveArgs) -> Result<()> {
    let dev = super::output::device(&a.net.device)?;
    let sigmas = sigma_grid(&a.sigmas).map_err(|e| super::output::usage(e.to_string()))?;
    if a.count == 0 {
        usage_bail!("--count and --batch-size must be at least 1");
    }
    let mut cfg = CurveConfig {
        fit_min: a.fit_min.unwrap_or(sigmas[0]),
        fit_max: a.fit_max,
        sigmas,
        seed: a.seed,
        batch_size: a.net.batch_size,
        alpha: a.alpha,
        alpha_source: a.alpha.map(|_| "--alpha".into()),
        threads: super::threads(),
    };
    cfg.check().map_err(super::output::usage)?;
    let (run_cfg, split, ds) = run_and_its_data(&a.net.run, &a.data)?;
    let m = &ds.manifest;
    if run_cfg.train.model.in_channels() != m.channels {
        let want = run_cfg.train.model.in_channels();
        bail!("{} has {} channels; the network takes {want}", a.data.display(), m.channels);
    }
    let held = held_out_indices(m.count, &split.indices, a.count);
    if held.len() < a.count {
        bail!(
            "--count {}: only {} of the {} images of {} are outside the run's {} training images",
            a.count,
            held.len(),
            m.count,
            a.data.display(),
            split.indices.len()
        );
    }
    if cfg.alpha.is_none() {
        // α of a C^α dataset, from its manifest's source parameters.
        cfg.alpha = (m.source.kind == "calpha").then(|| m.source.params.get("alpha")?.as_f64()).flatten();
        cfg.alpha_source = cfg.alpha.map(|_| "dataset manifest".into());
    }
    let den = a.net.network(&dev)?;
    let images: Vec<f32> = held.iter().flat_map(|&i| ds.image(i).iter().copied()).collect();
    let inputs = CurveInputs {
        run: &a.net.run,
        config: &run_cfg,
        training_images: split.indices.len(),
        ema: !a.net.no_ema,
        data: &a.data,
        content_hash: &m.content_hash,
        held_out_indices: &held,
        images: &images,
        dims: [m.channels, m.height, m.width],
    };
    let record = network_curve(&den, &inputs, &cfg)?;
    let out = a.net.out_dir("denoise-curve")?;
    write_json(&out.join("denoise-curve.json"), &record)?;
    memgen_io::write_atomic(&out.join("denoise-curve.csv"), record.csv().as_bytes())?;
    plot(&out, &a.net.run, &record)?;
    say_text!("{}", record.table());
    say!("-> {}", out.display());
    super::output::result(serde_json::to_value(record.result(&out))?);
    Ok(())
}

/// A run's config and split.json, and the prepared dataset `data`, which must be the one the run
/// was trained on (same content hash): only then do its training indices say which images are held
/// out.
pub(super) fn run_and_its_data(run: &Path, data: &Path) -> Result<(RunConfig, SplitRecord, PreparedDataset)> {
    let cfg = RunConfig::load(run).with_context(|| format!("{} is not a training run", run.display()))?;
    let split: SplitRecord = read_json(&run.join("split.json"))?;
    let ds = PreparedDataset::read(data).with_context(|| format!("--data {}", data.display()))?;
    if ds.manifest.content_hash != split.content_hash {
        bail!(
            "--data {} is not the dataset {} was trained on (content hash {} vs {} in split.json): its \
             training indices say nothing about which of these images are held out",
            data.display(),
            run.display(),
            ds.manifest.content_hash,
            split.content_hash
        );
    }
    Ok((cfg, split, ds))
}

/// denoise-curve.svg/.png: the lines of [`DenoiseCurveRecord::figure`], log-log.
fn plot(out: &Path, run: &Path, record: &DenoiseCurveRecord) -> Result<()> {
    let name =
        run.file_name().map_or_else(|| run.display().to_string(), |n| n.to_string_lossy().into_owned());
    let (lines, vlines) = record.figure();
    let series = lines
        .iter()
        .map(|l| LineSeries {
            name: l.name.clone(),
            points: &l.points,
            style: match l.kind {
                LineKind::Measured => LineStyle::LineAndMarkers,
                LineKind::Fit => LineStyle::Line,
                LineKind::Reference => LineStyle::Dashed,
            },
        })
        .collect();
    let plot = LinePlot {
        title: format!("Denoising error of {name} ({} held-out images)", record.count),
        x_label: "noise level sigma".into(),
        y_label: "MSE per pixel".into(),
        series,
        log_x: true,
        log_y: true,
        vlines,
    };
    super::save_plot(out, "denoise-curve", &plot)
}

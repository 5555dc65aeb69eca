//! `memgen denoise-curve`: a trained denoiser's error on held-out images over noise levels, its
//! small-σ rate (slope of log MSE vs log σ) and, for C^α data, the optimal rate 2α/(α + 1).

use anyhow::{bail, Context, Result};
use clap::Args;
use memgen_analysis::curve::{
    calpha_optimal_slope, denoise_curve, fit_range, CurvePoint, CurveRow, DenoiseCurveRecord, RangeFit,
};
use memgen_analysis::ModelDenoiser;
use memgen_data::dataset::PreparedDataset;
use memgen_diffusion::run::{RunConfig, SplitRecord};
use memgen_io::{read_json, write_json};
use memgen_plot::lineplot::{LinePlot, LineSeries, LineStyle};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  memgen denoise-curve runs/demo/runs/n1000-a --data runs/demo/data --count 256 --fit-max 0.1\n  \
memgen --json denoise-curve runs/demo/runs/n10-a --data runs/demo/data --count 64 --out runs/dc-n10 --device cpu"
)]
pub struct DenoiseCurveArgs {
    /// Training run (from `memgen train`).
    pub run: PathBuf,
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
    /// Use the raw weights instead of the EMA weights.
    #[arg(long)]
    pub no_ema: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Output directory (default RUN/denoise-curve): denoise-curve.json, .csv, .svg, .png.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device to run the network on: `cpu`, or `cuda:N` when built with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run_denoise_curve(a: DenoiseCurveArgs) -> Result<()> {
    let dev = super::output::device(&a.device)?;
    let sigmas = sigma_grid(&a.sigmas)?;
    if a.count == 0 || a.batch_size == 0 {
        usage_bail!("--count and --batch-size must be at least 1");
    }
    let fit_min = a.fit_min.unwrap_or(sigmas[0]);
    if !(fit_min <= a.fit_max) {
        usage_bail!("--fit-min {fit_min} is above --fit-max {}", a.fit_max);
    }
    if a.alpha.is_some_and(|al| !(al > 0.0 && al.is_finite())) {
        usage_bail!("--alpha must be a positive number");
    }
    let (cfg, split, ds) = run_and_its_data(&a.run, &a.data)?;
    let m = &ds.manifest;
    if cfg.train.model.in_channels() != m.channels {
        bail!(
            "{} has {} channels; the network takes {}",
            a.data.display(),
            m.channels,
            cfg.train.model.in_channels()
        );
    }
    let train: HashSet<usize> = split.indices.iter().copied().collect();
    let held: Vec<usize> = (0..m.count).filter(|i| !train.contains(i)).take(a.count).collect();
    if held.len() < a.count {
        bail!(
            "--count {}: only {} of the {} images of {} are outside the run's {} training images",
            a.count,
            held.len(),
            m.count,
            a.data.display(),
            train.len()
        );
    }
    let (alpha, alpha_source) = match a.alpha {
        Some(al) => (Some(al), Some("--alpha")),
        None => match manifest_alpha(&ds) {
            Some(al) => (Some(al), Some("dataset manifest")),
            None => (None, None),
        },
    };
    let ema = !a.no_ema;
    let den = ModelDenoiser::from_run_on(&a.run, ema, &dev)
        .with_context(|| format!("loading {}", a.run.display()))?;
    let images: Vec<f32> = held.iter().flat_map(|&i| ds.image(i).iter().copied()).collect();
    let dims = [m.channels, m.height, m.width];
    let start = std::time::Instant::now();
    let curve = denoise_curve(&den, &images, dims, &sigmas, a.seed, a.batch_size)?;
    let seconds = start.elapsed().as_secs_f64();
    let fit = fit_range(&curve, fit_min, a.fit_max).map(|fit| RangeFit {
        sigma_min: fit_min,
        sigma_max: a.fit_max,
        fit,
    });
    let theory = alpha.map(calpha_optimal_slope);
    let rows: Vec<CurveRow> =
        curve.iter().map(|&point| CurveRow { point, timestep: den.timestep(point.sigma) }).collect();

    let out = a.out.clone().unwrap_or_else(|| a.run.join("denoise-curve"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let record = DenoiseCurveRecord {
        run: a.run.clone(),
        data: a.data.clone(),
        content_hash: m.content_hash.clone(),
        ema,
        model: cfg.train.model.clone(),
        schedule: cfg.train.schedule,
        train_steps: cfg.train.steps,
        training_images: train.len(),
        count: a.count,
        held_out_indices: held,
        seed: a.seed,
        batch_size: a.batch_size,
        sigmas,
        points: rows,
        fit,
        alpha,
        alpha_source: alpha_source.map(String::from),
        theoretical_slope: theory,
        threads: super::threads(),
        seconds,
    };
    write_json(&out.join("denoise-curve.json"), &record)?;
    let DenoiseCurveRecord { points: rows, fit, .. } = record;
    memgen_io::write_atomic(&out.join("denoise-curve.csv"), csv(&rows).as_bytes())?;
    let title = format!("Denoising error of {} ({} held-out images)", run_name(&a.run), a.count);
    plot(&out, &title, &curve, fit.as_ref(), alpha)?;
    say_text!("{}", table(&rows, fit.as_ref(), alpha));
    say!("-> {}", out.display());
    super::output::result(serde_json::json!({
        "out": out,
        "denoise_curve_json": out.join("denoise-curve.json"),
        "denoise_curve_csv": out.join("denoise-curve.csv"),
        "fit": fit,
        "theoretical_slope": theory,
        "points": rows,
    }));
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

/// The checked σ grid, ascending without repeats (default 10^(−2 + k/6), k = 0..12).
fn sigma_grid(given: &[f64]) -> Result<Vec<f64>> {
    let mut s: Vec<f64> = if given.is_empty() {
        (0..13).map(|k| 10f64.powf(-2.0 + k as f64 / 6.0)).collect()
    } else {
        given.to_vec()
    };
    if let Some(bad) = s.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        usage_bail!("--sigmas: {bad} is not a positive noise level");
    }
    s.sort_by(f64::total_cmp);
    s.dedup();
    Ok(s)
}

/// α of a C^α dataset, from its manifest's source parameters.
fn manifest_alpha(ds: &PreparedDataset) -> Option<f64> {
    let src = &ds.manifest.source;
    (src.kind == "calpha").then(|| src.params.get("alpha")?.as_f64()).flatten()
}

fn run_name(run: &Path) -> String {
    run.file_name().map_or_else(|| run.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn table(rows: &[CurveRow], fit: Option<&RangeFit>, alpha: Option<f64>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| σ | σ_eff | t | MSE | ± SE | PSNR (dB) | input MSE | MSE / σ² |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for r in rows {
        let p = &r.point;
        let t = r.timestep.map_or("-".into(), |t| t.to_string());
        let _ = writeln!(
            s,
            "| {:.4} | {:.4} | {t} | {:.4e} | {:.1e} | {:.2} | {:.4e} | {:.4} |",
            p.sigma,
            p.effective_sigma,
            p.mse,
            p.mse_se,
            p.psnr,
            p.input_mse,
            p.mse / (p.sigma * p.sigma)
        );
    }
    match fit {
        Some(f) => {
            let _ = writeln!(
                s,
                "slope of ln MSE vs ln σ over σ in [{}, {}] ({} points): {:.4} (r² = {:.4})",
                f.sigma_min, f.sigma_max, f.fit.points, f.fit.slope, f.fit.r2
            );
        }
        None => {
            let _ = writeln!(s, "slope: fewer than two usable points in the fit range");
        }
    }
    if let Some(al) = alpha {
        let _ = writeln!(
            s,
            "optimal slope for C^alpha images, 2α/(α+1) with α = {al}: {:.4}",
            calpha_optimal_slope(al)
        );
    }
    s
}

fn csv(rows: &[CurveRow]) -> String {
    let mut s = String::from("sigma,effective_sigma,timestep,mse,mse_se,psnr,input_mse\n");
    for r in rows {
        let p = &r.point;
        let t = r.timestep.map_or(String::new(), |t| t.to_string());
        let _ = writeln!(
            s,
            "{},{},{t},{},{},{},{}",
            p.sigma, p.effective_sigma, p.mse, p.mse_se, p.psnr, p.input_mse
        );
    }
    s
}

/// denoise-curve.svg/.png: MSE vs σ (log-log), the fitted line over the fit range, the optimal slope
/// through the first fitted point, and σ² (the error of not denoising).
fn plot(
    out: &Path,
    title: &str,
    curve: &[CurvePoint],
    fit: Option<&RangeFit>,
    alpha: Option<f64>,
) -> Result<()> {
    let mse: Vec<(f64, f64)> = curve.iter().map(|p| (p.sigma, p.mse)).collect();
    let identity: Vec<(f64, f64)> = curve.iter().map(|p| (p.sigma, p.sigma * p.sigma)).collect();
    let in_fit: Vec<&CurvePoint> = fit.map_or(vec![], |f| {
        curve.iter().filter(|p| p.sigma >= f.sigma_min && p.sigma <= f.sigma_max).collect()
    });
    let fitted: Vec<(f64, f64)> = match (fit, in_fit.first(), in_fit.last()) {
        (Some(f), Some(lo), Some(hi)) => {
            vec![(lo.sigma, f.fit.predict(lo.sigma)), (hi.sigma, f.fit.predict(hi.sigma))]
        }
        _ => vec![],
    };
    // The optimal-rate line through the first fitted point, over the whole σ range.
    let reference: Vec<(f64, f64)> = match (alpha, in_fit.first(), curve.first(), curve.last()) {
        (Some(al), Some(p0), Some(lo), Some(hi)) => {
            let b = calpha_optimal_slope(al);
            [lo.sigma, hi.sigma].iter().map(|&s| (s, p0.mse * (s / p0.sigma).powf(b))).collect()
        }
        _ => vec![],
    };
    let mut series = vec![LineSeries { name: "MSE".into(), points: &mse, style: LineStyle::LineAndMarkers }];
    if let Some(f) = fit {
        series.push(LineSeries {
            name: format!("fit: slope {:.3}", f.fit.slope),
            points: &fitted,
            style: LineStyle::Line,
        });
    }
    if let Some(al) = alpha {
        series.push(LineSeries {
            name: format!("optimal slope 2a/(a+1) = {:.3} (a = {al})", calpha_optimal_slope(al)),
            points: &reference,
            style: LineStyle::Dashed,
        });
    }
    series.push(LineSeries {
        name: "sigma squared (no denoising)".into(),
        points: &identity,
        style: LineStyle::Dashed,
    });
    let vlines = match (in_fit.first(), in_fit.last()) {
        (Some(lo), Some(hi)) => {
            vec![(lo.sigma, format!("fit {:.3}", lo.sigma)), (hi.sigma, format!("fit {:.3}", hi.sigma))]
        }
        _ => vec![],
    };
    let plot = LinePlot {
        title: title.into(),
        x_label: "noise level sigma".into(),
        y_label: "MSE per pixel".into(),
        series,
        log_x: true,
        log_y: true,
        vlines,
    };
    super::save_plot(out, "denoise-curve", &plot)
}

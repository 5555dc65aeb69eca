//! `memgen jacobian`: the Jacobian of a trained denoiser at one noisy image, its eigen-analysis (the
//! geometry-adaptive harmonic basis of Kadkhodaie et al. 2024) and, with `--compare`, the overlap of
//! two models' eigenspaces.

use super::save_plot;
use anyhow::{bail, Context, Result};
use clap::Args;
use memgen_analysis::jacobian::{jacobian_of_image, save_safetensors, subspace_overlap, Analysis, Jacobian};
use memgen_analysis::ModelDenoiser;
use memgen_data::dataset::PreparedDataset;
use memgen_diffusion::run::{RunConfig, SplitRecord};
use memgen_diffusion::NoiseSource;
use memgen_io::{read_json, write_json};
use memgen_plot::lineplot::{LinePlot, LineSeries, LineStyle};
use memgen_plot::{save_png, Grid, GridConfig};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  memgen jacobian runs/demo/runs/n1000-a --image 2995 --sigma 0.1 --compare runs/demo/runs/n1000-b\n  \
memgen jacobian runs/demo/runs/n10-a --data runs/demo/data --image 5 --sigma 0.05 --top 32 --out jac-n10"
)]
pub struct JacobianArgs {
    /// Run directory (from `memgen train`).
    pub run: PathBuf,
    /// Prepared dataset the clean image comes from (default: the run's training dataset).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Index of the clean image x in the dataset (0-based).
    #[arg(long)]
    pub image: usize,
    /// Noise level σ of the noisy image y = x + σ z (pixels in [0, 1]).
    #[arg(long)]
    pub sigma: f64,
    /// Seed of the noise z: the draw of sample IMAGE at step 0 of this noise seed (as `memgen sample`
    /// draws noise), so every run sees the same y.
    #[arg(long, default_value_t = 0)]
    pub noise_seed: u64,
    /// Eigenvectors drawn in eigenvectors.png, and the largest k of the subspace overlaps.
    #[arg(long, default_value_t = 16)]
    pub top: usize,
    /// Jacobian rows per backward pass.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Use the raw weights instead of the EMA weights.
    #[arg(long)]
    pub no_ema: bool,
    /// A second run (trained on disjoint data): its Jacobian at the same y and the overlap of the two
    /// models' top-k eigenspaces.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Output directory (default RUN/jacobian/img-I-sigma-S, with -noise-N for a noise seed N > 0).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device to run the network on: `cpu`, or `cuda:N` when built with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// One model's Jacobian and its analysis.
struct Model {
    run: PathBuf,
    jac: Jacobian,
    analysis: Analysis,
    /// Whether the image is in the run's training set (`None`: the run trained on other data).
    in_training_set: Option<bool>,
}

/// What jacobian.json records of one model.
#[derive(Serialize)]
struct ModelRecord<'a> {
    run: &'a Path,
    in_training_set: Option<bool>,
    /// tr J.
    trace: f64,
    /// Σ λ_k of (J + Jᵀ)/2.
    eigenvalue_sum: f64,
    /// ‖J − Jᵀ‖_F / ‖J‖_F.
    asymmetry: f64,
    /// ‖f(y) − x‖² / d.
    denoised_mse: f64,
    /// ‖y − x‖² / d (the noise actually drawn).
    noisy_mse: f64,
    eigenvalues: &'a [f64],
    jacobian_s: f64,
    eigen_s: f64,
}

/// Overlap of the top-k eigenspaces of A and B.
#[derive(Serialize)]
struct Overlap {
    k: usize,
    overlap: f64,
    /// k / d: the expected overlap of a random k-dimensional subspace.
    random: f64,
}

pub fn run_jacobian(a: JacobianArgs) -> Result<()> {
    let dev = super::output::device(&a.device)?;
    if !(a.sigma > 0.0 && a.sigma.is_finite()) {
        usage_bail!("--sigma must be a positive noise level, got {}", a.sigma);
    }
    if a.top == 0 || a.batch == 0 {
        usage_bail!("--top and --batch must be at least 1");
    }
    let cfg =
        RunConfig::load(&a.run).with_context(|| format!("{} is not a training run", a.run.display()))?;
    let data = a.data.clone().unwrap_or_else(|| cfg.data.dir.clone());
    let ds = PreparedDataset::read(&data).with_context(|| format!("--data {}", data.display()))?;
    let m = &ds.manifest;
    if a.image >= m.count {
        bail!(
            "--image {} is out of range: {} has {} images (0 .. {})",
            a.image,
            data.display(),
            m.count,
            m.count.saturating_sub(1)
        );
    }
    let (c, h, w) = (m.channels, m.height, m.width);
    let d = ds.image_len();
    let clean = ds.image(a.image).to_vec();
    let z = NoiseSource::new(a.noise_seed).draw(a.image as u64, 0, d);
    let noisy: Vec<f32> = clean.iter().zip(&z).map(|(x, z)| x + a.sigma as f32 * z).collect();
    let top = a.top.min(d);
    let ema = !a.no_ema;

    let model_a = analyse(&a.run, &ds, &data, a.image, &noisy, a.sigma, a.batch, ema, &dev)?;
    let model_b = match &a.compare {
        Some(run_b) => Some(analyse(run_b, &ds, &data, a.image, &noisy, a.sigma, a.batch, ema, &dev)?),
        None => None,
    };
    let overlaps: Vec<Overlap> = match &model_b {
        Some(b) => overlap_ks(top)
            .into_iter()
            .map(|k| {
                let overlap = subspace_overlap(model_a.analysis.top(k), b.analysis.top(k), k)?;
                Ok(Overlap { k, overlap, random: k as f64 / d as f64 })
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };

    let out = a.out.clone().unwrap_or_else(|| {
        let noise = if a.noise_seed == 0 { String::new() } else { format!("-noise-{}", a.noise_seed) };
        a.run.join("jacobian").join(format!("img-{}-sigma-{}{noise}", a.image, a.sigma))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let compare = match &model_b {
        Some(b) => Some(serde_json::json!({
            "model": record(b, &clean),
            "effective_sigma": b.jac.effective_sigma,
            "overlap": overlaps,
            "jacobian_relative_difference": model_a.jac.relative_difference(&b.jac)?,
            "denoised_mse_between": mse(&model_a.jac.denoised, &b.jac.denoised.iter().map(|&v| v as f32).collect::<Vec<_>>()),
        })),
        None => None,
    };
    let json = serde_json::json!({
        "run": a.run, "data": data, "image": a.image, "image_name": m.names.get(a.image),
        "sigma": a.sigma, "effective_sigma": model_a.jac.effective_sigma, "noise_seed": a.noise_seed,
        "ema": ema, "d": d, "shape": [c, h, w], "batch": a.batch, "threads": super::threads(),
        "trace": model_a.analysis.trace, "eigenvalue_sum": model_a.analysis.eigenvalue_sum,
        "asymmetry": model_a.analysis.asymmetry,
        "eigenvalues": model_a.analysis.eigenvalues,
        "model": record(&model_a, &clean),
        "timings": { "jacobian_s": model_a.jac.seconds, "eigen_s": model_a.analysis.seconds },
        "compare": compare,
    });
    write_json(&out.join("jacobian.json"), &json)?;
    save_safetensors(&out.join("jacobian.safetensors"), &model_a.jac, &model_a.analysis)?;
    eigen_grid(&out.join("eigenvectors.png"), &model_a, &clean, top, (c, h, w))?;
    if let Some(b) = &model_b {
        save_safetensors(&out.join("jacobian-b.safetensors"), &b.jac, &b.analysis)?;
        eigen_grid(&out.join("eigenvectors-b.png"), b, &clean, top, (c, h, w))?;
        overlap_plot(&out, &overlaps)?;
    }
    spectrum_plot(&out, &model_a, model_b.as_ref())?;

    say!(
        "image {} of {} ({c}x{h}x{w}, d = {d}), sigma = {} (network's sigma {:.4}), noise seed {}",
        a.image,
        data.display(),
        a.sigma,
        model_a.jac.effective_sigma,
        a.noise_seed
    );
    for (name, mm) in std::iter::once(("A", &model_a)).chain(model_b.as_ref().map(|b| ("B", b))) {
        let lead: Vec<String> = mm.analysis.eigenvalues.iter().take(4).map(|v| format!("{v:.3}")).collect();
        let train = match mm.in_training_set {
            Some(true) => "a training image",
            Some(false) => "held out",
            None => "other data",
        };
        say!(
            "{name} {} ({train}): tr J = {:.2}, asymmetry {:.4}, top eigenvalues {}, MSE(f(y), x) = {:.3e} (noise {:.3e}), {:.1} s",
            mm.run.display(), mm.analysis.trace, mm.analysis.asymmetry, lead.join(" "),
            mse(&mm.jac.denoised, &clean), mse(&mm.jac.noisy, &clean), mm.jac.seconds
        );
    }
    if !overlaps.is_empty() {
        let row: Vec<String> =
            overlaps.iter().map(|o| format!("k={}: {:.3} ({:.3})", o.k, o.overlap, o.random)).collect();
        say!("overlap of the top-k eigenspaces of A and B (random k/d): {}", row.join(", "));
    }
    say!("-> {}", out.display());
    super::output::result(serde_json::json!({
        "out": out,
        "jacobian_json": out.join("jacobian.json"),
        "jacobian_safetensors": out.join("jacobian.safetensors"),
        "trace": model_a.analysis.trace,
        "asymmetry": model_a.analysis.asymmetry,
        "top_eigenvalues": model_a.analysis.eigenvalues.iter().take(top).collect::<Vec<_>>(),
        "overlaps": overlaps,
    }));
    Ok(())
}

/// The record of one model in jacobian.json.
fn record<'a>(mm: &'a Model, clean: &[f32]) -> ModelRecord<'a> {
    ModelRecord {
        run: &mm.run,
        in_training_set: mm.in_training_set,
        trace: mm.analysis.trace,
        eigenvalue_sum: mm.analysis.eigenvalue_sum,
        asymmetry: mm.analysis.asymmetry,
        denoised_mse: mse(&mm.jac.denoised, clean),
        noisy_mse: mse(&mm.jac.noisy, clean),
        eigenvalues: &mm.analysis.eigenvalues,
        jacobian_s: mm.jac.seconds,
        eigen_s: mm.analysis.seconds,
    }
}

/// J of `run` (the network on `dev`) at `noisy` and its analysis.
#[allow(clippy::too_many_arguments)]
fn analyse(
    run: &Path,
    ds: &PreparedDataset,
    data: &Path,
    image: usize,
    noisy: &[f32],
    sigma: f64,
    batch: usize,
    ema: bool,
    dev: &candle::Device,
) -> Result<Model> {
    let m = &ds.manifest;
    let cfg = RunConfig::load(run).with_context(|| format!("{} is not a training run", run.display()))?;
    let model_cfg = &cfg.train.model;
    if model_cfg.in_channels() != m.channels || m.height != m.width {
        bail!(
            "{}: the network takes square images with {} channel(s), {} holds {}x{}x{}",
            run.display(),
            model_cfg.in_channels(),
            data.display(),
            m.channels,
            m.height,
            m.width
        );
    }
    model_cfg
        .validate(m.height)
        .with_context(|| format!("{} on {}x{} images", run.display(), m.height, m.width))?;
    let den =
        ModelDenoiser::from_run_on(run, ema, dev).with_context(|| format!("loading {}", run.display()))?;
    let jac = jacobian_of_image(&den, noisy, (m.channels, m.height, m.width), sigma, batch)
        .with_context(|| format!("the Jacobian of {}", run.display()))?;
    let analysis = jac.analyse()?;
    let in_training_set = read_json::<SplitRecord>(&run.join("split.json"))
        .ok()
        .filter(|s| s.content_hash == m.content_hash)
        .map(|s| s.indices.contains(&image));
    Ok(Model { run: run.to_path_buf(), jac, analysis, in_training_set })
}

/// k = 1, 2, 4, … up to `top`, and `top` itself.
fn overlap_ks(top: usize) -> Vec<usize> {
    let mut ks: Vec<usize> =
        std::iter::successors(Some(1usize), |k| k.checked_mul(2)).take_while(|&k| k <= top).collect();
    if ks.last() != Some(&top) {
        ks.push(top);
    }
    ks
}

fn mse(a: &[f64], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (x - y as f64).powi(2)).sum::<f64>() / a.len().max(1) as f64
}

/// eigenvectors.png: first row the noisy image y, the clean image x and the denoised f(y) (values
/// clamped to [0, 1]); then the top eigenvectors e_1, e_2, … in rows of up to 8, each min-max scaled
/// to [0, 1]. Channels are stacked vertically (each tile is C·H x W).
fn eigen_grid(
    path: &Path,
    mm: &Model,
    clean: &[f32],
    top: usize,
    (c, h, w): (usize, usize, usize),
) -> Result<()> {
    let cols = top.clamp(3, 8);
    let blank = vec![1.0f32; c * h * w];
    let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let mut tiles: Vec<Vec<f32>> = vec![to_f32(&mm.jac.noisy), clean.to_vec(), to_f32(&mm.jac.denoised)];
    tiles.resize(cols, blank);
    for k in 0..top {
        let v = mm.analysis.eigenvector(k);
        let (lo, hi) =
            v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        tiles.push(v.iter().map(|&x| ((x - lo) / span) as f32).collect());
    }
    let images: Vec<&[f32]> = tiles.iter().map(|t| t.as_slice()).collect();
    let scale = (96 / h.max(w)).clamp(1, 8);
    let img = Grid { images: &images, height: c * h, width: w }.render(&GridConfig {
        cols,
        scale,
        ..Default::default()
    })?;
    save_png(&img, path)?;
    Ok(())
}

/// spectrum.svg/.png: the eigenvalues of (J + Jᵀ)/2 against their index, with tr J marked.
fn spectrum_plot(out: &Path, a: &Model, b: Option<&Model>) -> Result<()> {
    let pts = |mm: &Model| -> Vec<(f64, f64)> {
        mm.analysis.eigenvalues.iter().enumerate().map(|(k, &v)| ((k + 1) as f64, v)).collect()
    };
    let pa = pts(a);
    let pb = b.map(pts);
    let label = |mm: &Model, tag: &str| {
        format!("{tag} {}", mm.run.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
    };
    let mut series = vec![LineSeries { name: label(a, "A"), points: &pa, style: LineStyle::Line }];
    let mut vlines = vec![(a.analysis.trace, format!("tr J(A) = {:.1}", a.analysis.trace))];
    if let (Some(b), Some(pb)) = (b, &pb) {
        series.push(LineSeries { name: label(b, "B"), points: pb, style: LineStyle::Line });
        vlines.push((b.analysis.trace, format!("tr J(B) = {:.1}", b.analysis.trace)));
    }
    let plot = LinePlot {
        title: format!("Eigenvalues of the denoiser Jacobian, sigma = {}", a.jac.sigma),
        x_label: "index k".into(),
        y_label: "eigenvalue".into(),
        series,
        log_x: false,
        log_y: false,
        vlines,
    };
    save_plot(out, "spectrum", &plot)
}

/// overlap.svg/.png: the overlap of the top-k eigenspaces against k, with the random level k/d.
fn overlap_plot(out: &Path, overlaps: &[Overlap]) -> Result<()> {
    let got: Vec<(f64, f64)> = overlaps.iter().map(|o| (o.k as f64, o.overlap)).collect();
    let random: Vec<(f64, f64)> = overlaps.iter().map(|o| (o.k as f64, o.random)).collect();
    let plot = LinePlot {
        title: "Overlap of the top-k Jacobian eigenspaces of A and B".into(),
        x_label: "k".into(),
        y_label: "overlap".into(),
        series: vec![
            LineSeries { name: "A vs B".into(), points: &got, style: LineStyle::LineAndMarkers },
            LineSeries { name: "random subspaces (k/d)".into(), points: &random, style: LineStyle::Dashed },
        ],
        log_x: true,
        log_y: false,
        vlines: vec![],
    };
    save_plot(out, "overlap", &plot)
}

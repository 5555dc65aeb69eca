//! `memgen jacobian`: the Jacobian of a trained denoiser at one noisy image, its eigen-analysis (the
//! geometry-adaptive harmonic basis of Kadkhodaie et al. 2024) and, with `--compare`, the overlap of
//! two models' eigenspaces.

mod plots;

use anyhow::{bail, Context, Result};
use clap::Args;
use memgen_analysis::jacobian::{pixel_mse, save_safetensors, JacobianRecord, JacobianSetup, ModelJacobian};
use memgen_analysis::ModelDenoiser;
use memgen_data::dataset::PreparedDataset;
use memgen_diffusion::run::{RunConfig, SplitRecord};
use memgen_diffusion::NoiseSource;
use memgen_io::{read_json, write_json};
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
    let out = a.out.clone().unwrap_or_else(|| {
        let noise = if a.noise_seed == 0 { String::new() } else { format!("-noise-{}", a.noise_seed) };
        a.run.join("jacobian").join(format!("img-{}-sigma-{}{noise}", a.image, a.sigma))
    });
    let setup = JacobianSetup {
        run: a.run.clone(),
        data: data.clone(),
        image: a.image,
        image_name: m.names.get(a.image).cloned(),
        sigma: a.sigma,
        noise_seed: a.noise_seed,
        ema,
        shape: [c, h, w],
        batch: a.batch,
        threads: super::threads(),
    };
    let record = JacobianRecord::new(setup, &model_a, model_b.as_ref(), &clean, top)?;
    let overlaps = record.compare.as_ref().map_or(&[][..], |b| &b.overlap);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    write_json(&out.join("jacobian.json"), &record)?;
    save_safetensors(&out.join("jacobian.safetensors"), &model_a.jac, &model_a.analysis)?;
    plots::eigen_grid(&out.join("eigenvectors.png"), &model_a, &clean, top, (c, h, w))?;
    if let Some(b) = &model_b {
        save_safetensors(&out.join("jacobian-b.safetensors"), &b.jac, &b.analysis)?;
        plots::eigen_grid(&out.join("eigenvectors-b.png"), b, &clean, top, (c, h, w))?;
        plots::overlap_plot(&out, overlaps)?;
    }
    plots::spectrum_plot(&out, &model_a, model_b.as_ref())?;

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
            pixel_mse(&mm.jac.denoised, &clean), pixel_mse(&mm.jac.noisy, &clean), mm.jac.seconds
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
) -> Result<ModelJacobian> {
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
    let in_training_set = read_json::<SplitRecord>(&run.join("split.json"))
        .ok()
        .filter(|s| s.content_hash == m.content_hash)
        .map(|s| s.indices.contains(&image));
    ModelJacobian::new(run, &den, noisy, (m.channels, m.height, m.width), sigma, batch, in_training_set)
        .with_context(|| format!("the Jacobian of {}", run.display()))
}

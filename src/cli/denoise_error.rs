//! `memgen denoise-error`: a trained network's denoising error on its own training images against
//! held-out images, beside the linear (Gaussian) and the empirical optimal denoiser of the same set.

use anyhow::{bail, Context, Result};
use clap::Args;
use memgen_analysis::generalization::{
    evenly_spaced, gaussian_of, DenoiseError, DenoiseErrorRecord, OracleDenoiser, TrainTest, DEFAULT_SIGMAS,
};
use memgen_analysis::ModelDenoiser;
use memgen_data::dataset::PreparedDataset;
use memgen_diffusion::run::{RunConfig, Selection, SplitRecord};
use memgen_io::write_json;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  memgen denoise-error runs/demo/runs/n100-a --data runs/demo/data\n  \
memgen denoise-error runs/demo/runs/n10-b --data runs/demo/data --exclude-split 1000 --sigmas 0.05,0.1,0.2,0.4 --count 256\n  \
memgen --json denoise-error runs/demo/runs/n1000-a --data runs/demo/data --count 64 --out runs/de-n1000")]
pub struct DenoiseErrorArgs {
    /// Training run (from `memgen train`).
    pub run: PathBuf,
    /// The prepared dataset the run was trained on (checked by content hash).
    #[arg(long)]
    pub data: PathBuf,
    /// Noise levels σ (y = x + σ z, pixels in [0, 1]), comma-separated. A time-conditioned network
    /// runs at the timestep whose σ_t is nearest, as in `denoise-curve`.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SIGMAS)]
    pub sigmas: Vec<f64>,
    /// At most this many training images and this many held-out images, each evenly spaced over its pool.
    #[arg(long, default_value_t = 256)]
    pub count: usize,
    /// Held-out images also lie outside S_A(N) and S_B(N) of the run's nested split (its split seed):
    /// with the largest N of an experiment, one held-out set serves both models of every N.
    #[arg(long)]
    pub exclude_split: Option<usize>,
    /// Noise seed: image k at noise level i gets the noise of (seed, k, i), in both sets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use the raw weights instead of the EMA weights.
    #[arg(long)]
    pub no_ema: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Output directory (default RUN/denoise-error): denoise-error.json, denoise-error.csv.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device to run the network on: `cpu`, or `cuda:N` when built with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run_denoise_error(a: DenoiseErrorArgs) -> Result<()> {
    let dev = super::output::device(&a.device)?;
    if a.count == 0 || a.batch_size == 0 {
        usage_bail!("--count and --batch-size must be at least 1");
    }
    if let Some(bad) = a.sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        usage_bail!("--sigmas: {bad} is not a positive noise level");
    }
    super::output::input("RUN", &a.run, "a run directory from `memgen train`")?;
    let (cfg, split, ds) = super::denoise_curve::run_and_its_data(&a.run, &a.data)?;
    let m = &ds.manifest;
    let held = held_out(&ds, &cfg, &split, a.exclude_split, a.count)?;
    let train_idx = evenly_spaced(&split.indices, a.count);
    let rows =
        |idx: &[usize]| -> Vec<f32> { idx.iter().flat_map(|&i| ds.image(i).iter().copied()).collect() };
    let (train, test) = (rows(&train_idx), rows(&held));
    let all_train = rows(&split.indices);
    let (d, dims) = (ds.image_len(), [m.channels, m.height, m.width]);
    let ema = !a.no_ema;
    let net = ModelDenoiser::from_run_on(&a.run, ema, &dev)
        .with_context(|| format!("loading {}", a.run.display()))?;
    let start = std::time::Instant::now();
    let measure = |den: &dyn memgen_analysis::ImageDenoiser| {
        TrainTest::measure(den, &train, &test, dims, &a.sigmas, a.seed, a.batch_size)
    };
    let errors = DenoiseError {
        sigmas: a.sigmas.clone(),
        train_images: train_idx.len(),
        test_images: held.len(),
        network: measure(&net)?,
        linear: measure(&gaussian_of(&all_train, d)?)?,
        oracle: measure(&OracleDenoiser::new(all_train, d)?)?,
    };
    let record = DenoiseErrorRecord {
        run: a.run.clone(),
        data: a.data.clone(),
        content_hash: m.content_hash.clone(),
        ema,
        train_indices: train_idx,
        held_out_indices: held,
        seed: a.seed,
        errors,
        threads: super::threads(),
        seconds: start.elapsed().as_secs_f64(),
    };
    let out = a.out.clone().unwrap_or_else(|| a.run.join("denoise-error"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    write_json(&out.join("denoise-error.json"), &record)?;
    memgen_io::write_atomic(&out.join("denoise-error.csv"), csv(&record.errors).as_bytes())?;
    say_text!("{}", table(&record));
    say!("-> {}", out.display());
    super::output::result(serde_json::json!({
        "out": out,
        "denoise_error_json": out.join("denoise-error.json"),
        "denoise_error_csv": out.join("denoise-error.csv"),
        "errors": record.errors,
    }));
    Ok(())
}

/// Up to `count` dataset images, evenly spaced, in neither the run's training set nor (with
/// `exclude_split` N) S_A(N) ∪ S_B(N) of the run's split.
fn held_out(
    ds: &PreparedDataset,
    cfg: &RunConfig,
    split: &SplitRecord,
    exclude_split: Option<usize>,
    count: usize,
) -> Result<Vec<usize>> {
    let mut used: HashSet<usize> = split.indices.iter().copied().collect();
    if let Some(n) = exclude_split {
        let Selection::Split { seed, .. } = cfg.data.selection else {
            usage_bail!("--exclude-split: {} was not trained on a nested split", cfg.data.dir.display());
        };
        let nested =
            memgen_data::split::NestedSplit::new(ds.manifest.count, ds.manifest.groups.as_deref(), seed);
        let (sa, sb) = nested.subsets(n).with_context(|| format!("--exclude-split {n}"))?;
        used.extend(sa.iter().chain(sb.iter()).copied());
    }
    let pool: Vec<usize> = (0..ds.manifest.count).filter(|i| !used.contains(i)).collect();
    if pool.is_empty() {
        bail!("no image of {} is held out: every one is in a training set", ds.manifest.count);
    }
    Ok(evenly_spaced(&pool, count))
}

/// The printed table: per σ, each denoiser's train and test MSE and their ratio.
fn table(r: &DenoiseErrorRecord) -> String {
    let e = &r.errors;
    let mut s = format!(
        "denoising MSE per pixel on {} training and {} held-out images ({})\n",
        e.train_images,
        e.test_images,
        if r.ema { "EMA weights" } else { "raw weights" }
    );
    let _ = writeln!(s, "| σ | network train | network test | test/train | linear train | linear test | oracle train | oracle test |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for (i, sigma) in e.sigmas.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {sigma} | {:.3e} ± {:.1e} | {:.3e} ± {:.1e} | {:.3} | {:.3e} | {:.3e} | {:.3e} | {:.3e} |",
            e.network.train[i].mse,
            e.network.train[i].mse_se,
            e.network.test[i].mse,
            e.network.test[i].mse_se,
            e.network.gap(i).unwrap_or(f64::NAN),
            e.linear.train[i].mse,
            e.linear.test[i].mse,
            e.oracle.train[i].mse,
            e.oracle.test[i].mse,
        );
    }
    s
}

/// One line per (denoiser, set, σ).
fn csv(e: &DenoiseError) -> String {
    let mut s = String::from("denoiser,set,sigma,effective_sigma,mse,mse_se,psnr,input_mse\n");
    for (name, tt) in [("network", &e.network), ("linear", &e.linear), ("oracle", &e.oracle)] {
        for (set, points) in [("train", &tt.train), ("test", &tt.test)] {
            for p in points {
                let _ = writeln!(
                    s,
                    "{name},{set},{},{},{},{},{},{}",
                    p.sigma, p.effective_sigma, p.mse, p.mse_se, p.psnr, p.input_mse
                );
            }
        }
    }
    s
}

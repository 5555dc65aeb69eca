//! `memgen denoise-error`: a trained network's denoising error on its own training images against
//! held-out images, beside the linear (Gaussian) and the empirical optimal denoiser of the same set;
//! the measurement is [`memgen_analysis::generalization::DenoiseError::measure`].

use super::denoise_curve::DenoiseRunOpts;
use anyhow::{bail, Context, Result};
use clap::Args;
use memgen_analysis::generalization::{evenly_spaced, DenoiseError, DenoiseErrorRecord, DEFAULT_SIGMAS};
use memgen_data::dataset::PreparedDataset;
use memgen_diffusion::run::{RunConfig, Selection, SplitRecord};
use memgen_io::write_json;
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  memgen denoise-error runs/demo/runs/n100-a --data runs/demo/data\n  \
memgen denoise-error runs/demo/runs/n10-b --data runs/demo/data --exclude-split 1000 --sigmas 0.05,0.1,0.2,0.4 --count 256\n  \
memgen --json denoise-error runs/demo/runs/n1000-a --data runs/demo/data --count 64 --out runs/de-n1000",
    mut_arg("out", |a| a.help("Output directory (default RUN/denoise-error): denoise-error.json, denoise-error.csv"))
)]
pub struct DenoiseErrorArgs {
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
    #[command(flatten)]
    pub net: DenoiseRunOpts,
}

pub fn run_denoise_error(a: DenoiseErrorArgs) -> Result<()> {
    let dev = super::output::device(&a.net.device)?;
    if a.count == 0 || a.net.batch_size == 0 {
        usage_bail!("--count and --batch-size must be at least 1");
    }
    if let Some(bad) = a.sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        usage_bail!("--sigmas: {bad} is not a positive noise level");
    }
    super::output::input("RUN", &a.net.run, "a run directory from `memgen train`")?;
    let (cfg, split, ds) = super::denoise_curve::run_and_its_data(&a.net.run, &a.data)?;
    let m = &ds.manifest;
    let held = held_out(&ds, &cfg, &split, a.exclude_split, a.count)?;
    let train_idx = evenly_spaced(&split.indices, a.count);
    let rows =
        |idx: &[usize]| -> Vec<f32> { idx.iter().flat_map(|&i| ds.image(i).iter().copied()).collect() };
    let net = a.net.network(&dev)?;
    let start = std::time::Instant::now();
    let dims = [m.channels, m.height, m.width];
    let (train, test) = (rows(&train_idx), rows(&held));
    let errors = DenoiseError::measure(
        &net,
        rows(&split.indices),
        &train,
        &test,
        dims,
        &a.sigmas,
        a.seed,
        a.net.batch_size,
    )?;
    let record = DenoiseErrorRecord {
        run: a.net.run.clone(),
        data: a.data.clone(),
        content_hash: m.content_hash.clone(),
        ema: !a.net.no_ema,
        train_indices: train_idx,
        held_out_indices: held,
        seed: a.seed,
        errors,
        threads: super::threads(),
        seconds: start.elapsed().as_secs_f64(),
    };
    let out = a.net.out_dir("denoise-error")?;
    write_json(&out.join("denoise-error.json"), &record)?;
    memgen_io::write_atomic(&out.join("denoise-error.csv"), record.errors.csv().as_bytes())?;
    say_text!("{}", record.table());
    say!("-> {}", out.display());
    super::output::result(serde_json::to_value(record.result(&out))?);
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

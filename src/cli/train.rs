//! `memgen train`: train a denoiser on a training subset of a prepared dataset.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use memgen_diffusion::checkpoint;
use memgen_diffusion::optim::AdamWConfig;
use memgen_diffusion::run::{load_training_data, parse_device, DataRef, RunConfig, Selection, Side};
use memgen_diffusion::schedule::{BetaSchedule, ScheduleConfig};
use memgen_diffusion::train::{fit, FitOptions, LrDecay, TrainConfig, TrainDefaults, Trainer};
use memgen_diffusion::ModelConfig;
use memgen_io::write_json;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
memgen train --data runs/demo/data --model models/unet-tiny.toml --n 10 --steps 500 --batch-size 16 --out runs/tiny-n10-a\n  \
memgen train --data runs/demo/data --model models/unet-demo.toml --n 100 --split b --steps 2000 --lr 1e-3 --out runs/demo-n100-b --quiet\n  \
memgen train --resume runs/tiny-n10-a --steps 1000   # continue to step 1000\n  \
memgen --json train --data runs/demo/data --model models/unet-tiny.toml --n 10 --steps 20 --out runs/tiny-json")]
pub struct TrainArgs {
    /// Continue the run in this directory from its newest checkpoint (other flags except --steps, --quiet and --force are ignored).
    #[arg(long, conflicts_with_all = ["data", "model", "out"])]
    pub resume: Option<PathBuf>,
    /// With --out: replace a run already in that directory (it is moved aside to
    /// <dir>.replaced-<time>, not deleted). With --resume: continue a run written by another memgen
    /// version.
    #[arg(long)]
    pub force: bool,
    /// Prepared dataset directory (from `memgen data prepare`).
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// Network config (TOML), e.g. models/unet-s.toml.
    #[arg(long, required_unless_present = "resume")]
    pub model: Option<PathBuf>,
    /// Run directory to create.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Side of the disjoint split to train on.
    #[arg(long, value_enum, default_value_t = SideArg::A)]
    pub split: SideArg,
    /// Training-set size N (S_side(N) of the nested split); default: the whole dataset.
    #[arg(long)]
    pub n: Option<usize>,
    /// Seed of the nested split.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Train on the indices in this JSON file (an array, or a split.json) instead of a split.
    #[arg(long, conflicts_with = "n")]
    pub indices: Option<PathBuf>,
    /// Optimisation steps (with --resume: the new total).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Images per step. Default: 64 for a time-conditioned UNet, 128 for a blind network.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate of AdamW. Default: 2e-4 for a time-conditioned UNet, 1e-3 for a blind
    /// network.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Linear warm-up steps. Default: 100 for a time-conditioned UNet, 0 for a blind network.
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Halve the learning rate every FRACTION of the run (e.g. 0.25); 0 keeps it constant. Default:
    /// constant for a time-conditioned UNet, 0.25 for a blind network.
    #[arg(long, value_name = "FRACTION")]
    pub lr_halving: Option<f64>,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Decay of the weights' exponential moving average; with warm-up the decay of step s is
    /// min(EMA_DECAY, (1 + s)/(10 + s)); 0 keeps no average (the EMA weights are the raw weights).
    /// Default: 0.999 for a time-conditioned UNet, 0 for a blind network.
    #[arg(long)]
    pub ema_decay: Option<f64>,
    /// Keep the EMA decay at --ema-decay from the first step: the average then still holds a share
    /// EMA_DECAY^s of the random initial weights after s steps (13.5% after 2,000 steps at 0.999).
    #[arg(long)]
    pub no_ema_warmup: bool,
    /// Beta schedule of the DDPM.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Linear)]
    pub schedule: ScheduleArg,
    /// Diffusion steps T.
    #[arg(long, default_value_t = 1000)]
    pub diffusion_steps: usize,
    /// Seed of the weights and of every training draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: usize,
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    /// `cpu`, or `cuda:N` when built with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar; print log lines instead.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SideArg {
    A,
    B,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    Linear,
    Cosine,
}

pub fn run_train(a: TrainArgs) -> Result<()> {
    match a.resume.clone() {
        Some(dir) => resume(&dir, a.steps, a.quiet, a.force),
        None => start(a),
    }
}

fn start(a: TrainArgs) -> Result<()> {
    let (data, model, out) = (
        a.data.clone().unwrap_or_default(),
        a.model.clone().unwrap_or_default(),
        a.out.clone().unwrap_or_default(),
    );
    let dev = super::output::device(&a.device)?;
    super::output::input("--data", &data, "a prepared dataset directory from `memgen data prepare`")?;
    super::output::input("--model", &model, "a network config (TOML), e.g. models/unet-s.toml")?;
    if let Some(path) = &a.indices {
        super::output::input("--indices", path, "a JSON array of indices or a split.json")?;
    }
    let manifest = memgen_data::dataset::read_manifest(&data)?;
    let selection = match (&a.indices, a.n) {
        (Some(path), _) => Selection::File { path: path.clone() },
        (None, Some(n)) => Selection::Split {
            side: match a.split {
                SideArg::A => Side::A,
                SideArg::B => Side::B,
            },
            n,
            seed: a.split_seed,
        },
        (None, None) => Selection::All,
    };
    let model = ModelConfig::load(&model)?;
    let defaults = TrainDefaults::for_model(&model);
    let lr_decay = match a.lr_halving {
        None => defaults.lr_decay,
        Some(f) if f == 0.0 => LrDecay::Constant,
        Some(fraction) => LrDecay::Halving { fraction },
    };
    let cfg = TrainConfig {
        model,
        schedule: ScheduleConfig {
            kind: match a.schedule {
                ScheduleArg::Linear => BetaSchedule::Linear,
                ScheduleArg::Cosine => BetaSchedule::Cosine,
            },
            steps: a.diffusion_steps,
            ..Default::default()
        },
        steps: a.steps.unwrap_or(10_000),
        batch_size: a.batch_size.unwrap_or(defaults.batch_size),
        lr: a.lr.unwrap_or(defaults.lr),
        warmup_steps: a.warmup.unwrap_or(defaults.warmup_steps),
        lr_decay,
        optimizer: AdamWConfig { weight_decay: a.weight_decay, ..Default::default() },
        ema_decay: a.ema_decay.unwrap_or(defaults.ema_decay),
        ema_warmup: !a.no_ema_warmup,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        log_every: a.log_every,
    };
    cfg.validate()?;
    let run_cfg = RunConfig {
        train: cfg,
        data: DataRef { dir: data.clone(), content_hash: manifest.content_hash.clone(), selection },
        threads: super::threads(),
        device: a.device.clone(),
        memgen_version: env!("CARGO_PKG_VERSION").into(),
    };
    if out.join("config.json").exists() {
        let aside = run_cfg.replace_existing(&out, a.force)?;
        eprintln!("--force: moved the old run {} to {}", out.display(), aside.display());
    }
    let (images, record) = load_training_data(&run_cfg.data, &dev)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    run_cfg.save(&out)?;
    write_json(&out.join("split.json"), &record)?;
    let mut trainer = Trainer::new(run_cfg.train.clone(), images)?;
    eprintln!(
        "training {} parameters on {} images of {}x{} for {} steps (batch {}, {} threads) -> {}",
        run_cfg.train.model.parameter_count(),
        record.indices.len(),
        manifest.height,
        manifest.width,
        run_cfg.train.steps,
        run_cfg.train.batch_size,
        run_cfg.threads,
        out.display()
    );
    finish(&mut trainer, &out, a.quiet)
}

fn resume(dir: &Path, steps: Option<usize>, quiet: bool, force: bool) -> Result<()> {
    super::output::input("--resume", dir, "a run directory from `memgen train`")?;
    let (mut run_cfg, forced) = RunConfig::load_for_resume(dir, env!("CARGO_PKG_VERSION"), force)?;
    if let Some(version) = forced {
        eprintln!(
            "note: resuming a run written by memgen {version} with memgen {} (--force)",
            run_cfg.memgen_version
        );
    }
    let dev = parse_device(&run_cfg.device).map_err(|why| {
        super::output::usage(format!(
            "--resume {}: its config.json records device {}, which this memgen cannot use: {why}",
            dir.display(),
            run_cfg.device
        ))
    })?;
    if let Some(s) = steps {
        run_cfg.train.steps = s;
        run_cfg.train.validate()?;
        run_cfg.save(dir)?;
    }
    let threads = super::threads();
    if threads != run_cfg.threads {
        eprintln!(
            "note: resuming with {threads} threads; the run started with {} (--threads {}), so its \
             weights may differ in the last bits from an uninterrupted run",
            run_cfg.threads, run_cfg.threads
        );
    }
    let (images, _) = load_training_data(&run_cfg.data, &dev)?;
    let mut trainer = if checkpoint::latest(dir)?.is_some() {
        Trainer::resume(run_cfg.train.clone(), images, dir)?
    } else {
        // Stopped before its first checkpoint: start again from step 0 (the same bits).
        Trainer::new(run_cfg.train.clone(), images)?
    };
    eprintln!("resuming {} at step {} of {}", dir.display(), trainer.step, run_cfg.train.steps);
    finish(&mut trainer, dir, quiet)
}

fn finish(trainer: &mut Trainer, out: &Path, quiet: bool) -> Result<()> {
    let last = fit(trainer, out, FitOptions { quiet, stop_at: None })?;
    super::output::result(serde_json::json!({
        "run": out,
        "config": out.join("config.json"),
        "split": out.join("split.json"),
        "log": out.join("train.jsonl"),
        "checkpoint": checkpoint::latest(out)?,
        "parameters": trainer.cfg.model.parameter_count(),
        "step": trainer.step,
        "wall_s": trainer.wall_s,
        "last_log": last,
    }));
    match last {
        Some(l) => say!(
            "trained to step {} (loss {:.5}, {:.1} images/s, {:.1} s) -> {}",
            l.step,
            l.loss,
            l.images_per_s,
            trainer.wall_s,
            out.display()
        ),
        None => say!("nothing to do: the run is already at step {}", trainer.step),
    }
    Ok(())
}

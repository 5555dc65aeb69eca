//! Training runs. A time-conditioned UNet learns the DDPM objective of Ho et al. 2020 (Algorithm 1):
//! t ~ U{0..T−1}, ε ~ N(0, I), x_t = sqrt(abar_t) x0 + sqrt(1 − abar_t) ε, loss = mean (ε − ε_θ(x_t, t))²
//! (or (x0 − x̂0)² for x0-prediction). A blind network learns the objective of Kadkhodaie et al.:
//! σ = u², u ~ U[0,1], y = x + σ z, loss = Σ_pixels (f(y) − σ z)² / batch.
//!
//! Every random draw of step s (image indices, timesteps, noise) comes from
//! [`crate::noise::training_rng`]`(seed, s)`, so a resumed run repeats exactly what an uninterrupted
//! run would have done; weights start from [`crate::init::seeded_var_builder`].

use crate::checkpoint::{
    checkpoints_dir, latest, load_tensors, promote, save_tensors, step_dir, write_atomic,
};
use crate::error::{Error, Result};
use crate::model::{Model, ModelConfig};
use crate::noise::training_rng;
use crate::objective::{Objective, StepGrads};
use crate::optim::{AdamW, AdamWConfig};
use crate::schedule::{DdpmSchedule, ScheduleConfig};
use candle::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// How the learning rate changes after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LrDecay {
    /// Constant after warm-up.
    Constant,
    /// Halved every `fraction` of the run (Kadkhodaie et al. halve every 10%; 25% trains better for
    /// short runs).
    Halving { fraction: f64 },
}

/// The optimisation defaults of a network kind, which `memgen train` and experiment files use where
/// they set nothing.
///
/// - Time-conditioned UNets (DDPM): AdamW at lr 2e-4 with 100 warm-up steps, constant after, batch 64,
///   EMA decay 0.999.
/// - Blind networks, as Kadkhodaie et al. (2024) train them: Adam at lr 1e-3, halved every 25% of
///   the run, no warm-up, batch 128, and no EMA (decay 0: the average is the raw weights).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainDefaults {
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    pub lr_decay: LrDecay,
    pub ema_decay: f64,
}

impl TrainDefaults {
    /// The defaults for `model`'s kind.
    pub fn for_model(model: &ModelConfig) -> Self {
        match model {
            ModelConfig::Blind(_) => TrainDefaults {
                batch_size: 128,
                lr: 1e-3,
                warmup_steps: 0,
                lr_decay: LrDecay::Halving { fraction: 0.25 },
                ema_decay: 0.0,
            },
            ModelConfig::Unet(_) => TrainDefaults {
                batch_size: 64,
                lr: 2e-4,
                warmup_steps: 100,
                lr_decay: LrDecay::Constant,
                ema_decay: 0.999,
            },
        }
    }
}

/// Everything a training run needs besides the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelConfig,
    /// DDPM schedule (time-conditioned models only).
    pub schedule: ScheduleConfig,
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Linear warm-up from 0 to `lr` over this many steps.
    pub warmup_steps: usize,
    pub lr_decay: LrDecay,
    pub optimizer: AdamWConfig,
    /// Decay of the exponential moving average of the weights (the largest; see [`Self::ema_decay_at`]).
    pub ema_decay: f64,
    /// Warm the EMA up: decay_s = min(ema_decay, (1 + s)/(10 + s)), so that the average forgets the
    /// random initial weights within the first steps. Runs configured before this field existed had
    /// no warm-up, and read as `false`.
    #[serde(default)]
    pub ema_warmup: bool,
    pub seed: u64,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Append a line to train.jsonl every this many steps.
    pub log_every: usize,
}

impl TrainConfig {
    /// Check the numbers a run depends on.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.steps == 0 || self.batch_size == 0 {
            return bad(format!(
                "steps ({}) and batch size ({}) must be at least 1",
                self.steps, self.batch_size
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("learning rate must be positive, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad(format!("EMA decay must lie in [0, 1), got {}", self.ema_decay));
        }
        if self.checkpoint_every == 0 || self.log_every == 0 {
            return bad("checkpoint and log intervals must be at least 1".into());
        }
        if let LrDecay::Halving { fraction } = self.lr_decay {
            if !(fraction > 0.0 && fraction <= 1.0) {
                return bad(format!("lr halving fraction must lie in (0, 1], got {fraction}"));
            }
        }
        Ok(())
    }

    /// The learning rate at step `step` (0-based): linear warm-up, then the decay rule.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.lr_decay {
            LrDecay::Constant => self.lr,
            LrDecay::Halving { fraction } => {
                let every = ((self.steps as f64 * fraction).round() as usize).max(1);
                self.lr * 0.5f64.powi((step / every) as i32)
            }
        }
    }
}

impl TrainConfig {
    /// The EMA decay of the update after `step` completed steps (0-based, as [`Self::lr_at`]):
    /// `ema_decay`, or with warm-up min(ema_decay, (1 + step)/(10 + step)).
    ///
    /// Without warm-up the initial weights keep a share ema_decay^s of the average after s steps:
    /// 13.5% after 2,000 steps at 0.999. With it their share after s steps is
    /// Π_{k<s} min(d, (1+k)/(10+k)) ≤ 9!·s!/(s+9)!, below 10⁻¹² after 100 steps at any d.
    pub fn ema_decay_at(&self, step: usize) -> f64 {
        if self.ema_warmup {
            self.ema_decay.min((1.0 + step as f64) / (10.0 + step as f64))
        } else {
            self.ema_decay
        }
    }
}

/// One line of train.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub step: usize,
    /// Mean loss over the steps since the previous line.
    pub loss: f64,
    pub lr: f64,
    pub images_per_s: f64,
    pub wall_s: f64,
}

/// The saved progress of a run (checkpoints/step-*/state.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps completed.
    pub step: usize,
    /// Training wall time so far, seconds.
    pub wall_s: f64,
    /// The losses of the steps since the last train.jsonl line: their sum and count, so that a
    /// resumed run logs the same mean losses as an uninterrupted one.
    #[serde(default)]
    pub log_sum: f64,
    #[serde(default)]
    pub log_count: usize,
}

/// A model being trained, with its optimizer, EMA weights and data.
pub struct Trainer {
    pub cfg: TrainConfig,
    pub model: Model,
    varmap: VarMap,
    opt: AdamW,
    ema: HashMap<String, Tensor>,
    objective: Objective,
    data: Tensor,
    pub step: usize,
    pub wall_s: f64,
    /// Sum and count of the losses since the last log line (see [`TrainState::log_sum`]).
    pub log_window: (f64, usize),
}

impl Trainer {
    /// A fresh run: weights drawn from `cfg.seed`, `data` of shape (N, C, H, W).
    pub fn new(cfg: TrainConfig, data: Tensor) -> Result<Self> {
        cfg.validate()?;
        let (n, c, h, w) = data.dims4()?;
        if n == 0 {
            return Err(Error::Invalid("the training set is empty".into()));
        }
        if h != w || c != cfg.model.in_channels() {
            return Err(Error::Invalid(format!(
                "the data is {c}x{h}x{w} (channels x height x width) but the model expects square images with {} channel(s)",
                cfg.model.in_channels()
            )));
        }
        cfg.model.validate(h)?;
        let varmap = VarMap::new();
        let vb = crate::init::seeded_var_builder(&varmap, cfg.seed, DType::F32, data.device());
        let model = Model::new(&cfg.model, vb)?;
        let opt = AdamW::new(named_vars(&varmap), cfg.optimizer)?;
        let ema = snapshot(&varmap)?;
        let objective = match cfg.model {
            ModelConfig::Blind(_) => Objective::Blind,
            ModelConfig::Unet(_) => Objective::Ddpm {
                schedule: DdpmSchedule::new(&cfg.schedule)?,
                prediction: cfg.model.prediction(),
            },
        };
        Ok(Trainer {
            cfg,
            model,
            varmap,
            opt,
            ema,
            objective,
            data,
            step: 0,
            wall_s: 0.0,
            log_window: (0.0, 0),
        })
    }

    /// Continue the run in `run` from its newest checkpoint.
    pub fn resume(cfg: TrainConfig, data: Tensor, run: &Path) -> Result<Self> {
        let dir = latest(run)?.ok_or_else(|| Error::bad_file(run, "has no checkpoint to resume from"))?;
        let mut t = Trainer::new(cfg, data)?;
        let dev = t.data.device().clone();
        let state_path = dir.join("state.json");
        let text = std::fs::read(&state_path).map_err(|e| Error::io(&state_path, e))?;
        let state: TrainState =
            serde_json::from_slice(&text).map_err(|e| Error::bad_file(&state_path, e.to_string()))?;
        let model_path = dir.join("model.safetensors");
        set_vars(&t.varmap, &load_tensors(&model_path, &dev)?, &model_path)?;
        let ema_path = dir.join("ema.safetensors");
        let ema = load_tensors(&ema_path, &dev)?;
        check_tensors(&t.varmap, &ema, &ema_path)?;
        t.ema = ema.into_iter().filter(|(k, _)| t.ema.contains_key(k)).collect();
        let opt_path = dir.join("optimizer.safetensors");
        t.opt
            .load_state(&load_tensors(&opt_path, &dev)?, state.step)
            .map_err(|e| Error::bad_file(&opt_path, e.to_string()))?;
        t.step = state.step;
        t.wall_s = state.wall_s;
        t.log_window = (state.log_sum, state.log_count);
        Ok(t)
    }

    /// The variables of the network (trainable weights and running statistics).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The EMA weights by name.
    pub fn ema(&self) -> &HashMap<String, Tensor> {
        &self.ema
    }

    /// One optimisation step; returns the loss before the update (see [`Objective`]).
    pub fn train_step(&mut self) -> Result<f32> {
        let mut rng = training_rng(self.cfg.seed, self.step as u64);
        let x0 = self.batch(&mut rng)?;
        let (value, grads) = self.objective.loss(&self.model, &x0, &mut rng)?;
        if !value.is_finite() {
            let kept = match self.step / self.cfg.checkpoint_every * self.cfg.checkpoint_every {
                0 => "no checkpoint had been written yet".to_string(),
                s => format!("the last good checkpoint (step {s}) is kept"),
            };
            return Err(Error::NonFinite { step: self.step, loss: value, kept });
        }
        let lr = self.cfg.lr_at(self.step);
        match grads {
            StepGrads::Graph(loss) => self.opt.step(&loss.backward()?, lr)?,
            StepGrads::Ready(g) => self.opt.step_with(|t| g.get(&t.id()).cloned(), lr)?,
        }
        self.update_ema()?;
        self.step += 1;
        Ok(value)
    }

    /// The batch of step s: without replacement when N ≥ batch, with replacement otherwise.
    fn batch(&self, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let n = self.data.dim(0)?;
        let b = self.cfg.batch_size;
        let idx: Vec<u32> = if n >= b {
            rand::seq::index::sample(rng, n, b).into_iter().map(|i| i as u32).collect()
        } else {
            (0..b).map(|_| rng.random_range(0..n) as u32).collect()
        };
        let idx = Tensor::from_vec(idx, b, self.data.device())?;
        Ok(self.data.index_select(&idx, 0)?)
    }

    /// ema ← d·ema + (1 − d)·θ for every variable, d = [`TrainConfig::ema_decay_at`] of this step;
    /// the variables in parallel, each on its own (one pass each: [`memgen_kernels::ema_update`]).
    fn update_ema(&mut self) -> Result<()> {
        let d = self.cfg.ema_decay_at(self.step);
        let stock = memgen_kernels::stock_kernels();
        let ema = &self.ema;
        let new = named_vars(&self.varmap)
            .into_par_iter()
            .map(|(name, var)| {
                let old = ema.get(&name).ok_or_else(|| Error::Invalid(format!("no EMA entry for {name}")))?;
                let theta = var.as_tensor().detach();
                let new = match memgen_kernels::with_kernel_mode(stock, || {
                    memgen_kernels::ema_update(old, &theta, d)
                })? {
                    Some(t) => t,
                    None => ((old * d)? + (theta * (1.0 - d))?)?.detach(),
                };
                Ok((name, new))
            })
            .collect::<Result<Vec<_>>>()?;
        self.ema.extend(new);
        Ok(())
    }

    /// Write checkpoints/step-N/ completely, then point `latest` at it and refresh RUN/model.safetensors
    /// and RUN/ema.safetensors.
    pub fn save_checkpoint(&self, run: &Path) -> Result<()> {
        let dir = step_dir(run, self.step);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let weights = snapshot(&self.varmap)?;
        save_tensors(&dir.join("model.safetensors"), &weights)?;
        save_tensors(&dir.join("ema.safetensors"), &self.ema)?;
        save_tensors(&dir.join("optimizer.safetensors"), &self.opt.state())?;
        let state = TrainState {
            step: self.step,
            wall_s: self.wall_s,
            log_sum: self.log_window.0,
            log_count: self.log_window.1,
        };
        memgen_io::write_json(&dir.join("state.json"), &state)?;
        promote(run, &dir)?;
        save_tensors(&run.join("model.safetensors"), &weights)?;
        save_tensors(&run.join("ema.safetensors"), &self.ema)
    }
}

/// The variables of `varmap`, sorted by name.
pub fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("var map lock");
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Copies of all variables' current values.
fn snapshot(varmap: &VarMap) -> Result<HashMap<String, Tensor>> {
    named_vars(varmap).into_iter().map(|(k, v)| Ok((k, v.as_tensor().detach().copy()?))).collect()
}

/// Set every variable of `varmap` from `tensors`; a missing or mis-shaped tensor is an error naming `path`.
pub fn set_vars(varmap: &VarMap, tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    check_tensors(varmap, tensors, path)?;
    for (name, var) in named_vars(varmap) {
        var.set(&tensors[&name].to_dtype(var.dtype())?)?;
    }
    Ok(())
}

/// Check that `tensors` (read from `path`) hold every variable of `varmap` with its shape; the error
/// names the tensor and both shapes, or the missing tensor.
pub fn check_tensors(varmap: &VarMap, tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    for (name, var) in named_vars(varmap) {
        let t = tensors.get(&name).ok_or_else(|| {
            Error::bad_file(
                path,
                format!(
                    "no tensor named {name} (the file has {} tensors; was it written for another model config?)",
                    tensors.len()
                ),
            )
        })?;
        if t.shape() != var.shape() {
            return Err(Error::bad_file(
                path,
                format!(
                    "tensor {name} has shape {:?}, the model config needs {:?}",
                    t.shape().dims(),
                    var.shape().dims()
                ),
            ));
        }
    }
    Ok(())
}

/// Options of [`fit`] that do not affect the result.
#[derive(Debug, Clone, Copy, Default)]
pub struct FitOptions {
    /// No progress bar; log lines go to stderr instead.
    pub quiet: bool,
    /// Stop (with a checkpoint) after this step even if the run is longer, as an interruption would.
    pub stop_at: Option<usize>,
}

/// Train until `cfg.steps`, appending to RUN/train.jsonl and checkpointing every
/// `checkpoint_every` steps and at the end. Returns the last logged line.
pub fn fit(trainer: &mut Trainer, run_dir: &Path, opts: FitOptions) -> Result<Option<LogLine>> {
    std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
    let log_path = run_dir.join("train.jsonl");
    truncate_log(&log_path, trainer.step)?;
    remove_stale_tmp(run_dir);
    let cfg = trainer.cfg.clone();
    let bar = progress(cfg.steps, trainer.step, opts.quiet);
    let mut last = None;
    let mut window = Instant::now();
    let end = opts.stop_at.map_or(cfg.steps, |s| s.min(cfg.steps));
    let start = trainer.step;
    while trainer.step < end {
        let started = Instant::now();
        let loss = trainer.train_step()?;
        trainer.wall_s += started.elapsed().as_secs_f64();
        trainer.log_window.0 += loss as f64;
        trainer.log_window.1 += 1;
        bar.inc(1);
        if trainer.step % cfg.log_every == 0 || trainer.step == cfg.steps {
            let secs = window.elapsed().as_secs_f64().max(1e-9);
            let (sum, count) = trainer.log_window;
            let timed = count.min(trainer.step - start);
            let line = LogLine {
                step: trainer.step,
                loss: sum / count as f64,
                lr: cfg.lr_at(trainer.step - 1),
                images_per_s: (timed.max(1) * cfg.batch_size) as f64 / secs,
                wall_s: trainer.wall_s,
            };
            append_log(&log_path, &line)?;
            bar.set_message(format!("loss {:.4}  {:.1} img/s", line.loss, line.images_per_s));
            if opts.quiet {
                eprintln!(
                    "step {:>7}  loss {:.5}  lr {:.2e}  {:.1} img/s",
                    line.step, line.loss, line.lr, line.images_per_s
                );
            }
            last = Some(line);
            (trainer.log_window, window) = ((0.0, 0), Instant::now());
        }
        if trainer.step % cfg.checkpoint_every == 0 || trainer.step == end {
            trainer.save_checkpoint(run_dir)?;
        }
    }
    bar.finish_and_clear();
    Ok(last)
}

/// Remove the temporary files (`*.tmp`) an interrupted write left in the run directory and in its
/// checkpoint directories; none of them is ever read.
fn remove_stale_tmp(run_dir: &Path) {
    let mut dirs = vec![run_dir.to_path_buf(), checkpoints_dir(run_dir)];
    if let Ok(entries) = std::fs::read_dir(checkpoints_dir(run_dir)) {
        dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_file() && p.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

fn progress(steps: usize, done: usize, quiet: bool) -> indicatif::ProgressBar {
    let bar = memgen_io::progress::bar(steps as u64, "training", "", quiet);
    bar.set_position(done as u64);
    bar
}

fn append_log(path: &Path, line: &LogLine) -> Result<()> {
    Ok(memgen_io::append_json_line(path, line)?)
}

/// Drop log lines past `step` (written after the checkpoint a resumed run starts from).
fn truncate_log(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| serde_json::from_str::<LogLine>(l).map(|x| x.step <= step).unwrap_or(false))
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(write_atomic(path, out.as_bytes())?)
}

/// Build a model for inference from a run's weights (`ema` selects the EMA weights).
pub fn load_model(cfg: &ModelConfig, run: &Path, ema: bool, device: &Device) -> Result<Model> {
    let path = run.join(if ema { "ema.safetensors" } else { "model.safetensors" });
    let tensors = load_tensors(&path, device)?;
    let varmap = VarMap::new();
    let vb = crate::init::seeded_var_builder(&varmap, 0, DType::F32, device);
    let model = Model::new(cfg, vb)?;
    set_vars(&varmap, &tensors, &path)?;
    Ok(model)
}

//! The typed command line of each job: the flags the planner sets are fields, the experiment file's
//! free-form flags (`[data] args`, `[train] args`, `[sample] args`, the baselines' `*_args`) are
//! `extra`. [`Command::argv`] is the one place that turns a command into the words after `memgen`;
//! the CLI's test `every_planned_job_parses_with_the_cli_definitions` parses every planned line with
//! the CLI's own clap definitions and checks that each field arrives in the argument it is meant for.
//! Optional fields (`device`, `lr_halving`) add their flag only where set, so that the command lines
//! of an experiment that does not set them stay byte for byte what they were (a finished job is
//! recognised by its command line).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One `memgen` invocation of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// `memgen data prepare SOURCE EXTRA.. --out OUT`.
    Prepare { source: String, extra: Vec<String>, out: PathBuf },
    /// `memgen train --data .. --model .. --n N --split a|b ..`.
    Train(TrainCommand),
    /// `memgen train --resume RUN --steps STEPS --quiet`: continue an interrupted training.
    Resume { run: PathBuf, steps: usize },
    /// `memgen compare RUN_A RUN_B --noise-seed .. --count .. EXTRA.. [--device D] --out OUT`.
    Compare {
        run_a: PathBuf,
        run_b: PathBuf,
        sampling: Sampling,
        /// `--device` of the two networks (`[sample] device`), only where set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        out: PathBuf,
    },
    /// `memgen compare --oracle|--linear --data .. --n N --split-seed .. SAMPLING.. --out OUT`.
    Baseline { pair: BaselinePair, data: PathBuf, n: usize, split_seed: u64, sampling: Sampling, out: PathBuf },
    /// `memgen denoise-error RUN --data .. --exclude-split N EXTRA.. [--device D] --out OUT`.
    DenoiseError {
        run: PathBuf,
        data: PathBuf,
        exclude_split: usize,
        extra: Vec<String>,
        /// `--device` of the network (`[sample] device`), only where set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        out: PathBuf,
    },
    /// `memgen linear --data .. --n N1,N2,.. --split-seed .. EXTRA.. --out OUT`.
    Linear { data: PathBuf, n: Vec<usize>, split_seed: u64, extra: Vec<String>, out: PathBuf },
}

/// The flags of a training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainCommand {
    pub data: PathBuf,
    pub model: PathBuf,
    pub n: usize,
    /// `a` or `b`.
    pub split: char,
    pub split_seed: u64,
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup: usize,
    pub ema_decay: f64,
    /// `--lr-halving`, only where set.
    pub lr_halving: Option<f64>,
    /// `--device` (`[train] device`), only where set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub seed: u64,
    pub checkpoint_every: usize,
    /// `[train] args` of the experiment file.
    pub extra: Vec<String>,
    pub out: PathBuf,
}

/// The sampling flags shared by a compare job and the baseline pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub noise_seed: u64,
    pub count: usize,
    /// The sampler's flags from the experiment file (`--blind` added for a blind network's linear pair).
    pub extra: Vec<String>,
}

/// Which baseline pair a `compare` job samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselinePair {
    /// `--oracle`: the empirical optimal denoisers of S_A(N) and S_B(N).
    Oracle,
    /// `--linear`: the Gaussian denoisers of S_A(N) and S_B(N).
    Linear,
}

impl BaselinePair {
    /// The `compare` flag that selects the pair.
    pub fn flag(self) -> &'static str {
        match self {
            BaselinePair::Oracle => "--oracle",
            BaselinePair::Linear => "--linear",
        }
    }
}

fn s<T: ToString>(v: T) -> String {
    v.to_string()
}

fn p(path: &std::path::Path) -> String {
    path.display().to_string()
}

impl Command {
    /// The words after `memgen` (without `--threads`, which the executor adds).
    pub fn argv(&self) -> Vec<String> {
        let mut a = Vec::new();
        let out = match self {
            Command::Prepare { source, extra, out } => {
                a.extend([s("data"), s("prepare"), source.clone()]);
                a.extend(extra.iter().cloned());
                out
            }
            Command::Train(t) => {
                t.push_args(&mut a);
                &t.out
            }
            Command::Resume { run, steps } => {
                return vec![s("train"), s("--resume"), p(run), s("--steps"), s(steps), s("--quiet")];
            }
            Command::Compare { run_a, run_b, sampling, device, out } => {
                a.extend([s("compare"), p(run_a), p(run_b)]);
                sampling.push_args(&mut a);
                push_device(&mut a, device);
                out
            }
            Command::Baseline { pair, data, n, split_seed, sampling, out } => {
                a.extend([s("compare"), s(pair.flag()), s("--data"), p(data), s("--n"), s(n)]);
                a.extend([s("--split-seed"), s(split_seed)]);
                sampling.push_args(&mut a);
                out
            }
            Command::DenoiseError { run, data, exclude_split, extra, device, out } => {
                a.extend([s("denoise-error"), p(run), s("--data"), p(data)]);
                a.extend([s("--exclude-split"), s(exclude_split)]);
                a.extend(extra.iter().cloned());
                push_device(&mut a, device);
                out
            }
            Command::Linear { data, n, split_seed, extra, out } => {
                let sizes: Vec<String> = n.iter().map(|n| n.to_string()).collect();
                a.extend([s("linear"), s("--data"), p(data), s("--n"), sizes.join(",")]);
                a.extend([s("--split-seed"), s(split_seed)]);
                a.extend(extra.iter().cloned());
                out
            }
        };
        a.extend([s("--out"), p(out)]);
        a
    }

    /// The `memgen` subcommand it runs (`data` for a prepare).
    pub fn subcommand(&self) -> &'static str {
        match self {
            Command::Prepare { .. } => "data",
            Command::Train(_) | Command::Resume { .. } => "train",
            Command::Compare { .. } | Command::Baseline { .. } => "compare",
            Command::DenoiseError { .. } => "denoise-error",
            Command::Linear { .. } => "linear",
        }
    }
}

impl TrainCommand {
    /// Every word but `--out OUT`, in the order the planner has always written them.
    fn push_args(&self, a: &mut Vec<String>) {
        a.extend([s("train"), s("--data"), p(&self.data), s("--model"), p(&self.model)]);
        a.extend([s("--n"), s(self.n), s("--split"), s(self.split), s("--split-seed"), s(self.split_seed)]);
        a.extend([s("--steps"), s(self.steps), s("--batch-size"), s(self.batch_size), s("--lr"), s(self.lr)]);
        a.extend([s("--warmup"), s(self.warmup), s("--ema-decay"), s(self.ema_decay), s("--seed"), s(self.seed)]);
        a.extend([s("--checkpoint-every"), s(self.checkpoint_every), s("--quiet")]);
        if let Some(f) = self.lr_halving {
            a.extend([s("--lr-halving"), s(f)]);
        }
        push_device(a, &self.device);
        a.extend(self.extra.iter().cloned());
    }
}

/// `--device D` where a device is set, else nothing.
fn push_device(a: &mut Vec<String>, device: &Option<String>) {
    if let Some(d) = device {
        a.extend([s("--device"), d.clone()]);
    }
}

impl Sampling {
    fn push_args(&self, a: &mut Vec<String>) {
        a.extend([s("--noise-seed"), s(self.noise_seed), s("--count"), s(self.count)]);
        a.extend(self.extra.iter().cloned());
    }
}

//! The job graph of an experiment: one `memgen` command line per job, with the jobs it waits for
//! and the directory it writes.
//!
//! ```text
//! ROOT/data/                    prepare      memgen data prepare SOURCE ARGS --out ROOT/data
//! ROOT/runs/nN-a, nN-b          train-nN-a   memgen train --data .. --n N --split a|b ..  (per N)
//! ROOT/compare/nN-seed-S        compare-nN-seed-S   memgen compare ROOT/runs/nN-a ROOT/runs/nN-b ..
//! ROOT/oracle/nN-seed-S         oracle-nN-seed-S    memgen compare --oracle --data .. --n N ..
//! ROOT/linear-pair/nN-seed-S    linear-pair-nN-seed-S  memgen compare --linear --data .. --n N ..
//! ROOT/denoise-error/nN-side   denoise-error-nN-side  memgen denoise-error ROOT/runs/nN-side ..
//! ROOT/linear                   linear       memgen linear --data .. --n N1,N2,.. ..
//! ROOT/report                   (the report, gathered from all of the above)
//! ```
//!
//! Each `[[sample.variants]]` entry NAME adds `compare-nN-seedS-NAME` (ROOT/compare/nN-seed-S-NAME)
//! and, where the linear pair is on, `linear-pair-nN-seedS-NAME`, with the variant's sampler flags.
//!
//! `[train] device` becomes `--device` of the training jobs, `[sample] device` that of the jobs that
//! run the trained networks (compare, denoise-error); the baselines run on the CPU.

use crate::command::{BaselinePair, Command, Sampling, TrainCommand};
use crate::config::{Experiment, SamplerVariant};
use memgen_diffusion::model::ModelConfig;
use memgen_diffusion::train::TrainDefaults;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Jobs of one stage depend only on jobs of earlier stages (one Slurm array per stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Data,
    Train,
    Evaluate,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Data, Stage::Train, Stage::Evaluate];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Data => "data",
            Stage::Train => "train",
            Stage::Evaluate => "evaluate",
        }
    }
}

/// What a job computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    Prepare,
    Train {
        n: usize,
        side: char,
        steps: usize,
    },
    Compare {
        n: usize,
        noise_seed: u64,
        /// The `[[sample.variants]]` name; none: `[sample] args`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
    },
    Oracle {
        n: usize,
        noise_seed: u64,
    },
    LinearPair {
        n: usize,
        noise_seed: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
    },
    DenoiseError {
        n: usize,
        side: char,
    },
    Linear,
}

/// One `memgen` invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub stage: Stage,
    #[serde(flatten)]
    pub kind: JobKind,
    /// The command it runs.
    pub command: Command,
    /// Ids of the jobs this one reads the output of.
    pub deps: Vec<String>,
    /// The directory the job writes.
    pub output: PathBuf,
}

/// All jobs of an experiment, in a valid execution order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The experiment directory (absolute).
    pub root: PathBuf,
    /// The prepared dataset every job reads.
    pub data_dir: PathBuf,
    /// The experiment's copy of the network config (`ROOT/model.toml`).
    pub model_file: PathBuf,
    /// The network config the jobs train (its kind sets the training defaults).
    pub model: ModelConfig,
    pub jobs: Vec<Job>,
}

/// `ROOT/runs/nN-side`.
pub fn run_dir(root: &Path, n: usize, side: char) -> PathBuf {
    root.join("runs").join(format!("n{n}-{side}"))
}

/// `ROOT/compare/nN-seed-S`.
pub fn compare_dir(root: &Path, n: usize, seed: u64) -> PathBuf {
    root.join("compare").join(format!("n{n}-seed-{seed}"))
}

/// `DIR-NAME` for sampler variant NAME, `DIR` itself for `[sample] args`.
pub fn for_variant(dir: PathBuf, variant: Option<&str>) -> PathBuf {
    match variant {
        Some(name) => {
            let mut s = dir.into_os_string();
            s.push(format!("-{name}"));
            PathBuf::from(s)
        }
        None => dir,
    }
}

/// `ID-NAME` for sampler variant NAME, `ID` itself for `[sample] args`.
fn id_for_variant(id: String, variant: Option<&SamplerVariant>) -> String {
    match variant {
        Some(v) => format!("{id}-{}", v.name),
        None => id,
    }
}

/// `ROOT/oracle/nN-seed-S`.
pub fn oracle_dir(root: &Path, n: usize, seed: u64) -> PathBuf {
    root.join("oracle").join(format!("n{n}-seed-{seed}"))
}

/// `ROOT/linear-pair/nN-seed-S`.
pub fn linear_pair_dir(root: &Path, n: usize, seed: u64) -> PathBuf {
    root.join("linear-pair").join(format!("n{n}-seed-{seed}"))
}

/// `ROOT/denoise-error/nN-side`.
pub fn denoise_error_dir(root: &Path, n: usize, side: char) -> PathBuf {
    root.join("denoise-error").join(format!("n{n}-{side}"))
}

/// `ROOT/linear`.
pub fn linear_dir(root: &Path) -> PathBuf {
    root.join("linear")
}

impl Job {
    /// The command line after `memgen` (without `--threads`, which the executor adds).
    pub fn args(&self) -> Vec<String> {
        self.command.argv()
    }
}

impl Plan {
    /// The jobs of `exp` (whose file lies in `exp_dir`) writing under `root` (absolute).
    pub fn new(exp: &Experiment, exp_dir: &Path, root: &Path) -> Plan {
        let data_dir = match &exp.data.dir {
            Some(d) => exp_dir.join(d),
            None => root.join("data"),
        };
        let model_file = root.join("model.toml");
        let mut jobs = Vec::new();
        let mut data_deps = Vec::new();
        if let Some(source) = &exp.data.source {
            let resolved = exp_dir.join(source);
            let source = if resolved.exists() { resolved.display().to_string() } else { source.clone() };
            let command = Command::Prepare { source, extra: exp.data.args.clone(), out: data_dir.clone() };
            jobs.push(Job {
                id: "prepare".into(),
                stage: Stage::Data,
                kind: JobKind::Prepare,
                command,
                deps: vec![],
                output: data_dir.clone(),
            });
            data_deps.push("prepare".to_string());
        }
        let model = model_config(&exp_dir.join(&exp.model));
        let blind = matches!(model, ModelConfig::Blind(_));
        let plan = Plan { root: root.to_path_buf(), data_dir, model_file, model, jobs: Vec::new() };
        for n in exp.sizes() {
            for side in ['a', 'b'] {
                jobs.push(plan.train_job(exp, n, side, &data_deps));
            }
        }
        let largest = exp.sizes().into_iter().max().unwrap_or(0);
        for n in exp.sizes() {
            if exp.baselines.denoise_error {
                for side in ['a', 'b'] {
                    jobs.push(plan.denoise_error_job(exp, n, side, largest));
                }
            }
            for &seed in &exp.sample.noise_seeds {
                jobs.push(plan.compare_job(exp, n, seed, None));
                if exp.baselines.oracle {
                    jobs.push(plan.oracle_job(exp, n, seed, &data_deps));
                }
                if exp.baselines.linear_pair {
                    jobs.push(plan.linear_pair_job(exp, n, seed, blind, None, &data_deps));
                }
                for v in &exp.sample.variants {
                    jobs.push(plan.compare_job(exp, n, seed, Some(v)));
                    if exp.baselines.linear_pair {
                        jobs.push(plan.linear_pair_job(exp, n, seed, blind, Some(v), &data_deps));
                    }
                }
            }
        }
        if exp.baselines.linear {
            jobs.push(plan.linear_job(exp, &data_deps));
        }
        Plan { jobs, ..plan }
    }

    fn train_job(&self, exp: &Experiment, n: usize, side: char, deps: &[String]) -> Job {
        let t = &exp.train;
        let o = t.optimization(&TrainDefaults::for_model(&self.model));
        let steps = t.steps_for(n, o.batch_size);
        let seed = t.seed + u64::from(side == 'b');
        let out = run_dir(&self.root, n, side);
        let command = Command::Train(TrainCommand {
            data: self.data_dir.clone(),
            model: self.model_file.clone(),
            n,
            split: side,
            split_seed: exp.split_seed,
            steps,
            batch_size: o.batch_size,
            lr: o.lr,
            warmup: o.warmup,
            ema_decay: o.ema_decay,
            lr_halving: o.lr_halving,
            device: t.device.clone(),
            seed,
            checkpoint_every: t.checkpoint_every_for(steps),
            extra: t.args.clone(),
            out: out.clone(),
        });
        Job {
            id: format!("train-n{n}-{side}"),
            stage: Stage::Train,
            kind: JobKind::Train { n, side, steps },
            command,
            deps: deps.to_vec(),
            output: out,
        }
    }

    /// The comparison of pair N under `[sample] args` or under a sampler variant.
    fn compare_job(&self, exp: &Experiment, n: usize, seed: u64, variant: Option<&SamplerVariant>) -> Job {
        let (a, b) = (run_dir(&self.root, n, 'a'), run_dir(&self.root, n, 'b'));
        let name = variant.map(|v| v.name.as_str());
        let out = for_variant(compare_dir(&self.root, n, seed), name);
        let sampling = sampling(exp, seed, variant.map_or(&exp.sample.args, |v| &v.args));
        let device = exp.sample.device.clone();
        let command = Command::Compare { run_a: a, run_b: b, sampling, device, out: out.clone() };
        Job {
            id: id_for_variant(format!("compare-n{n}-seed{seed}"), variant),
            stage: Stage::Evaluate,
            kind: JobKind::Compare { n, noise_seed: seed, variant: name.map(str::to_string) },
            command,
            deps: vec![format!("train-n{n}-a"), format!("train-n{n}-b")],
            output: out,
        }
    }

    fn oracle_job(&self, exp: &Experiment, n: usize, seed: u64, deps: &[String]) -> Job {
        let sampler = exp.baselines.oracle_args.as_ref().unwrap_or(&exp.sample.args);
        let out = oracle_dir(&self.root, n, seed);
        Job {
            id: format!("oracle-n{n}-seed{seed}"),
            stage: Stage::Evaluate,
            kind: JobKind::Oracle { n, noise_seed: seed },
            command: self.baseline(exp, BaselinePair::Oracle, sampler, n, seed, &out),
            deps: deps.to_vec(),
            output: out,
        }
    }

    /// The linear pair of N and a noise seed, under the networks' sampler (`linear_pair_args`, else
    /// `[sample] args`; a variant's own flags); `blind` (the experiment's network is blind): its
    /// blind form under the blind sampler, as the networks are sampled.
    fn linear_pair_job(
        &self,
        exp: &Experiment,
        n: usize,
        seed: u64,
        blind: bool,
        variant: Option<&SamplerVariant>,
        deps: &[String],
    ) -> Job {
        let mut sampler = match variant {
            Some(v) => v.args.clone(),
            None => exp.baselines.linear_pair_args.clone().unwrap_or_else(|| exp.sample.args.clone()),
        };
        if blind && !sampler.iter().any(|a| a == "--blind") {
            sampler.push("--blind".to_string());
        }
        let name = variant.map(|v| v.name.as_str());
        let out = for_variant(linear_pair_dir(&self.root, n, seed), name);
        Job {
            id: id_for_variant(format!("linear-pair-n{n}-seed{seed}"), variant),
            stage: Stage::Evaluate,
            kind: JobKind::LinearPair { n, noise_seed: seed, variant: name.map(str::to_string) },
            command: self.baseline(exp, BaselinePair::Linear, &sampler, n, seed, &out),
            deps: deps.to_vec(),
            output: out,
        }
    }

    /// The denoising error of run nN-side on its training images and on the images outside
    /// S_A(largest) ∪ S_B(largest), one held-out set for every run.
    fn denoise_error_job(&self, exp: &Experiment, n: usize, side: char, largest: usize) -> Job {
        let out = denoise_error_dir(&self.root, n, side);
        let command = Command::DenoiseError {
            run: run_dir(&self.root, n, side),
            data: self.data_dir.clone(),
            exclude_split: largest,
            extra: exp.baselines.denoise_error_args.clone(),
            device: exp.sample.device.clone(),
            out: out.clone(),
        };
        Job {
            id: format!("denoise-error-n{n}-{side}"),
            stage: Stage::Evaluate,
            kind: JobKind::DenoiseError { n, side },
            command,
            deps: vec![format!("train-n{n}-{side}")],
            output: out,
        }
    }

    /// `compare --oracle|--linear --data .. --n N ..` of a baseline pair writing `out`.
    fn baseline(
        &self,
        exp: &Experiment,
        pair: BaselinePair,
        sampler: &[String],
        n: usize,
        seed: u64,
        out: &Path,
    ) -> Command {
        Command::Baseline {
            pair,
            data: self.data_dir.clone(),
            n,
            split_seed: exp.split_seed,
            sampling: sampling(exp, seed, sampler),
            out: out.to_path_buf(),
        }
    }

    fn linear_job(&self, exp: &Experiment, deps: &[String]) -> Job {
        let out = linear_dir(&self.root);
        let command = Command::Linear {
            data: self.data_dir.clone(),
            n: exp.sizes(),
            split_seed: exp.split_seed,
            extra: exp.baselines.linear_args.clone(),
            out: out.clone(),
        };
        Job {
            id: "linear".into(),
            stage: Stage::Evaluate,
            kind: JobKind::Linear,
            command,
            deps: deps.to_vec(),
            output: out,
        }
    }

    /// The job with this id.
    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// The jobs of one stage, in plan order.
    pub fn stage(&self, stage: Stage) -> impl Iterator<Item = &Job> {
        self.jobs.iter().filter(move |j| j.stage == stage)
    }
}

/// The network config at `path`, or where it cannot be read the default UNet's (the training jobs
/// then report the error).
fn model_config(path: &Path) -> ModelConfig {
    ModelConfig::load(path).unwrap_or_else(|_| ModelConfig::Unet(Default::default()))
}

fn sampling(exp: &Experiment, seed: u64, sampler: &[String]) -> Sampling {
    Sampling { noise_seed: seed, count: exp.sample.count, extra: sampler.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(extra: &str) -> Experiment {
        Experiment::parse(&format!(
            "name = \"t\"\nn = [10, 1]\nmodel = \"m.toml\"\n[data]\nsource = \"calpha\"\nargs = [\"--count\", \"40\"]\n\
             [train]\nsteps = 30\n[sample]\nnoise_seeds = [3, 4]\ncount = 5\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn jobs_stages_and_dependencies() {
        let exp = experiment("[baselines]\nlinear = true\noracle = true\n");
        let plan = Plan::new(&exp, Path::new("/exp"), Path::new("/root/x"));
        let ids: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "prepare",
                "train-n1-a",
                "train-n1-b",
                "train-n10-a",
                "train-n10-b",
                "denoise-error-n1-a",
                "denoise-error-n1-b",
                "compare-n1-seed3",
                "oracle-n1-seed3",
                "linear-pair-n1-seed3",
                "compare-n1-seed4",
                "oracle-n1-seed4",
                "linear-pair-n1-seed4",
                "denoise-error-n10-a",
                "denoise-error-n10-b",
                "compare-n10-seed3",
                "oracle-n10-seed3",
                "linear-pair-n10-seed3",
                "compare-n10-seed4",
                "oracle-n10-seed4",
                "linear-pair-n10-seed4",
                "linear"
            ]
        );
        // Every dependency is an earlier job of an earlier stage.
        for (i, job) in plan.jobs.iter().enumerate() {
            for d in &job.deps {
                let k = plan.jobs.iter().position(|j| &j.id == d).expect("known dependency");
                assert!(k < i && plan.jobs[k].stage < job.stage, "{} -> {d}", job.id);
            }
        }
        let b = plan.job("train-n10-b").unwrap();
        let arg = |name: &str| {
            let i = b.args().iter().position(|a| a == name).unwrap();
            b.args()[i + 1].clone()
        };
        assert_eq!(
            (arg("--n"), arg("--split"), arg("--seed"), arg("--steps")),
            ("10".into(), "b".into(), "1".into(), "30".into())
        );
        assert_eq!(arg("--out"), "/root/x/runs/n10-b");
        assert_eq!(arg("--data"), "/root/x/data");
        let c = plan.job("compare-n10-seed4").unwrap();
        assert_eq!(c.args()[..3], ["compare", "/root/x/runs/n10-a", "/root/x/runs/n10-b"]);
        assert_eq!(c.deps, ["train-n10-a", "train-n10-b"]);
        assert!(plan.job("linear").unwrap().args().contains(&"1,10".to_string()));
        let de = plan.job("denoise-error-n1-b").unwrap();
        assert_eq!(de.args()[..4], ["denoise-error", "/root/x/runs/n1-b", "--data", "/root/x/data"]);
        assert_eq!(de.args()[4..6], ["--exclude-split", "10"], "one held-out set: outside the largest pair");
        assert_eq!(de.deps, ["train-n1-b"]);
        let lp = plan.job("linear-pair-n10-seed4").unwrap();
        assert_eq!(lp.args()[..6], ["compare", "--linear", "--data", "/root/x/data", "--n", "10"]);
        assert_eq!(lp.output, Path::new("/root/x/linear-pair/n10-seed-4"));
        assert_eq!(lp.deps, ["prepare"]);
    }

    #[test]
    fn sampler_variants_add_their_own_comparisons() {
        let variants = "[[sample.variants]]\nname = \"beta-0.01\"\nargs = [\"--beta\", \"0.01\"]\n";
        let plain = Plan::new(&experiment(""), Path::new("/exp"), Path::new("/r"));
        let exp = experiment(variants);
        let plan = Plan::new(&exp, Path::new("/exp"), Path::new("/r"));
        // The plain jobs are unchanged; each (N, seed) gains a compare and a linear-pair job.
        let extra: Vec<&str> =
            plan.jobs.iter().filter(|j| plain.job(&j.id).is_none()).map(|j| j.id.as_str()).collect();
        assert_eq!(extra.len(), 2 * 2 * 2, "{extra:?}");
        for j in &plain.jobs {
            assert_eq!(plan.job(&j.id), Some(j), "{}", j.id);
        }
        let c = plan.job("compare-n10-seed4-beta-0.01").unwrap();
        assert_eq!(c.output, Path::new("/r/compare/n10-seed-4-beta-0.01"));
        assert_eq!(c.kind, JobKind::Compare { n: 10, noise_seed: 4, variant: Some("beta-0.01".into()) });
        assert_eq!(c.deps, ["train-n10-a", "train-n10-b"]);
        let args = c.args();
        assert!(args.windows(2).any(|w| w == ["--beta", "0.01"]), "{args:?}");
        assert_eq!(args[args.len() - 2..], ["--out", "/r/compare/n10-seed-4-beta-0.01"]);
        let lp = plan.job("linear-pair-n1-seed3-beta-0.01").unwrap();
        assert_eq!(lp.output, Path::new("/r/linear-pair/n1-seed-3-beta-0.01"));
        assert!(lp.args().windows(2).any(|w| w == ["--beta", "0.01"]));
        // No oracle under a variant; no linear pair when it is off.
        let off = experiment(&format!("{variants}[baselines]\nlinear_pair = false\noracle = true\n"));
        let off = Plan::new(&off, Path::new("/exp"), Path::new("/r"));
        let ids: Vec<&str> =
            off.jobs.iter().map(|j| j.id.as_str()).filter(|i| i.ends_with("beta-0.01")).collect();
        assert_eq!(
            ids,
            [
                "compare-n1-seed3-beta-0.01",
                "compare-n1-seed4-beta-0.01",
                "compare-n10-seed3-beta-0.01",
                "compare-n10-seed4-beta-0.01"
            ]
        );
        // Plain jobs serialize without a variant field, as before.
        assert!(!serde_json::to_string(&plain.jobs).unwrap().contains("variant"));
    }

    #[test]
    fn prepared_data_needs_no_prepare_job() {
        let mut exp = experiment("");
        exp.data = crate::config::DataSpec { source: None, args: vec![], dir: Some("d".into()) };
        let plan = Plan::new(&exp, Path::new("/exp"), Path::new("/root"));
        assert!(plan.job("prepare").is_none());
        assert_eq!(plan.data_dir, Path::new("/exp/d"));
        assert!(plan.job("train-n1-a").unwrap().deps.is_empty());
        assert!(plan.job("linear").is_none() && plan.job("oracle-n1-seed3").is_none());
        // A blind network's linear pair is sampled blind.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.toml"), "arch = \"blind\"\nin_channels = 1\n").unwrap();
        let blind = Plan::new(&exp, dir.path(), Path::new("/root"));
        assert!(blind.job("linear-pair-n1-seed3").unwrap().args().contains(&"--blind".to_string()));
        assert!(!plan.job("linear-pair-n1-seed3").unwrap().args().contains(&"--blind".to_string()));
        // The linear pair is on by default, and off with `linear_pair = false`.
        assert!(plan.job("linear-pair-n1-seed3").is_some());
        let off = experiment("[baselines]\nlinear_pair = false\n");
        assert!(Plan::new(&off, Path::new("/exp"), Path::new("/root")).job("linear-pair-n1-seed3").is_none());
    }

    #[test]
    fn devices_reach_the_jobs_that_run_networks() {
        let plain = experiment("[baselines]\nlinear = true\noracle = true\n");
        let gpu = Experiment {
            train: crate::config::TrainSpec { device: Some("cuda:1".into()), ..plain.train.clone() },
            sample: crate::config::SampleSpec { device: Some("cuda:0".into()), ..plain.sample.clone() },
            ..plain.clone()
        };
        let [plain, gpu] = [plain, gpu].map(|e| Plan::new(&e, Path::new("/exp"), Path::new("/root")));
        let device = |job: &Job| {
            let args = job.args();
            args.iter().position(|a| a == "--device").map(|i| args[i + 1].clone())
        };
        for (p, g) in plain.jobs.iter().zip(&gpu.jobs) {
            assert_eq!(device(p), None, "{}: no device key, no flag", p.id);
            let want = match g.kind {
                JobKind::Train { .. } => Some("cuda:1"),
                JobKind::Compare { .. } | JobKind::DenoiseError { .. } => Some("cuda:0"),
                _ => None,
            };
            assert_eq!(device(g).as_deref(), want, "{}", g.id);
            // The flag is the only change, and comes before --out (and before [train] args).
            let mut without = g.args();
            if let Some(i) = without.iter().position(|a| a == "--device") {
                without.drain(i..i + 2);
            }
            assert_eq!(without, p.args(), "{}", g.id);
        }
        // Unset, the typed commands serialize as they did before the key existed.
        let json = serde_json::to_string(&plain.jobs).unwrap();
        assert!(!json.contains("device"), "{json}");
        let back: Vec<Job> = serde_json::from_str(&serde_json::to_string(&gpu.jobs).unwrap()).unwrap();
        assert_eq!(back, gpu.jobs);
    }

    /// The training flags of job `id`.
    fn train_flags(plan: &Plan, id: &str) -> (usize, f64, usize, f64, Option<f64>) {
        match &plan.job(id).unwrap().command {
            Command::Train(t) => (t.batch_size, t.lr, t.warmup, t.ema_decay, t.lr_halving),
            other => panic!("{id} is not a training: {other:?}"),
        }
    }

    #[test]
    fn training_defaults_follow_the_network_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.toml"), "arch = \"blind\"\nin_channels = 1\n").unwrap();
        let exp = experiment("");
        let unet = Plan::new(&exp, Path::new("/exp"), Path::new("/root"));
        let blind = Plan::new(&exp, dir.path(), Path::new("/root"));
        assert_eq!(train_flags(&unet, "train-n1-a"), (64, 2e-4, 100, 0.999, None));
        assert!(!unet.job("train-n1-a").unwrap().args().contains(&"--lr-halving".to_string()));
        assert_eq!(train_flags(&blind, "train-n1-a"), (128, 1e-3, 0, 0.0, Some(0.25)));
        let args = blind.job("train-n1-b").unwrap().args();
        let i = args.iter().position(|a| a == "--lr-halving").unwrap();
        assert_eq!(args[i + 1], "0.25");
        // The file's own values win over either kind's defaults; lr_halving = 0 is a constant rate.
        let set = experiment("").train;
        let exp = Experiment {
            train: crate::config::TrainSpec {
                batch_size: Some(32),
                lr: Some(5e-4),
                warmup: Some(7),
                ema_decay: Some(0.99),
                lr_halving: Some(0.0),
                ..set
            },
            ..exp
        };
        let blind = Plan::new(&exp, dir.path(), Path::new("/root"));
        assert_eq!(train_flags(&blind, "train-n10-a"), (32, 5e-4, 7, 0.99, Some(0.0)));
    }
}

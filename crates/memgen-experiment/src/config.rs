//! The experiment file (TOML): what to train, at which training-set sizes N, how to sample and score,
//! and which baselines to run. Unknown keys are errors; relative paths are resolved against the
//! directory of the experiment file.
//!
//! ```toml
//! name = "demo"
//! description = "C^alpha images, N = 1..1000"
//! n = [1, 10, 100, 1000]
//! split_seed = 0
//! model = "unet-demo.toml"            # a network config, relative to this file
//!
//! [data]
//! source = "calpha"                   # anything `memgen data prepare` takes as SOURCE ...
//! args = ["--count", "2200", "--side", "16"]
//! # dir = "data/olivetti"             # ... or an already prepared dataset instead
//!
//! [train]
//! steps = 2000                        # fixed, or: epochs = 200, min_steps = 500, max_steps = 4000
//! batch_size = 64
//! lr = 2e-3
//! # device = "cuda:0"                 # --device of the training jobs (default cpu)
//!
//! [sample]
//! noise_seeds = [1]
//! count = 64
//! args = ["--sampler", "ddim", "--ddim-steps", "50"]
//! # device = "cuda:0"                 # --device of the jobs that run the trained networks
//!                                     # (compare, denoise-error); the baselines run on the CPU
//!
//! # [[sample.variants]]               # further samplers on the same pairs and noise, each
//! # name = "ddim-20"                  # with its own compare and linear-pair jobs and table
//! # args = ["--sampler", "ddim", "--ddim-steps", "20"]
//!
//! [baselines]
//! linear = true
//! oracle = true
//! ```

use crate::{Error, Result};
use memgen_diffusion::run::DeviceName;
use memgen_diffusion::train::{LrDecay, TrainDefaults};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A parsed experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Short name, used for the default output directory.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Training-set sizes; each N gets two models, on S_A(N) and S_B(N) of the nested disjoint split.
    pub n: Vec<usize>,
    /// Seed of the nested disjoint split.
    #[serde(default)]
    pub split_seed: u64,
    /// Network config (TOML), relative to the experiment file.
    pub model: PathBuf,
    pub data: DataSpec,
    pub train: TrainSpec,
    #[serde(default)]
    pub sample: SampleSpec,
    #[serde(default)]
    pub baselines: Baselines,
    #[serde(default)]
    pub cluster: ClusterSpec,
}

/// Where the images come from: a source that `memgen data prepare` reads, or a prepared directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// SOURCE of `memgen data prepare` (a recipe name, a recipe file, `folder:DIR`, `calpha`, ...).
    pub source: Option<String>,
    /// Further `memgen data prepare` flags, e.g. `["--count", "2200", "--side", "16"]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// An already prepared dataset (instead of `source`).
    pub dir: Option<PathBuf>,
}

/// How each model is trained. The number of optimisation steps is either fixed (`steps`) or
/// `ceil(epochs · N / batch_size)` clamped to `[min_steps, max_steps]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    pub steps: Option<usize>,
    pub epochs: Option<f64>,
    #[serde(default)]
    pub min_steps: usize,
    pub max_steps: Option<usize>,
    /// Images per step, learning rate, warm-up steps, EMA decay and the halving fraction of the
    /// learning rate (0: constant): where not set, the network kind's defaults
    /// ([`TrainDefaults::for_model`]).
    pub batch_size: Option<usize>,
    pub lr: Option<f64>,
    pub warmup: Option<usize>,
    pub ema_decay: Option<f64>,
    pub lr_halving: Option<f64>,
    /// Seed of model A's weights and training draws; model B uses `seed + 1`, so that agreement
    /// between the two cannot come from a shared initialisation.
    #[serde(default)]
    pub seed: u64,
    /// Checkpoint interval (default: a tenth of the steps, at least 100).
    pub checkpoint_every: Option<usize>,
    /// `--device` of every training job: `cpu` or `cuda:N` (needs a memgen built with the `cuda`
    /// feature where the jobs run). Not set: no flag, the CPU.
    pub device: Option<String>,
    /// Further `memgen train` flags (e.g. `["--log-every", "100"]`).
    #[serde(default)]
    pub args: Vec<String>,
}

/// The `memgen train` flags the planner writes itself (from `[train]` keys and the job's N and side).
const PLANNED_TRAIN_FLAGS: [&str; 16] = [
    "--data",
    "--model",
    "--out",
    "--n",
    "--split",
    "--split-seed",
    "--steps",
    "--batch-size",
    "--lr",
    "--warmup",
    "--lr-halving",
    "--ema-decay",
    "--seed",
    "--checkpoint-every",
    "--resume",
    "--device",
];

/// The optimisation flags of every training job of an experiment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Optimization {
    pub batch_size: usize,
    pub lr: f64,
    pub warmup: usize,
    pub ema_decay: f64,
    /// `--lr-halving`, written only where set (0: constant).
    pub lr_halving: Option<f64>,
}

/// Sampling and scoring of each pair of models (`memgen compare`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleSpec {
    /// One comparison per noise seed; the report pools the draws of all seeds.
    #[serde(default = "default_seeds")]
    pub noise_seeds: Vec<u64>,
    /// Noise draws per seed.
    #[serde(default = "default_count")]
    pub count: usize,
    /// Sampler flags of `memgen compare` (e.g. `["--sampler", "ddim", "--ddim-steps", "50"]`).
    #[serde(default)]
    pub args: Vec<String>,
    /// `--device` of the jobs that run the trained networks: the comparison of the two runs
    /// (`memgen compare`) and their denoising errors (`memgen denoise-error`); `cpu` or `cuda:N`.
    /// The baselines (oracle, linear pair, linear) run on the CPU whatever it is. Not set: no
    /// flag, the CPU.
    pub device: Option<String>,
    /// Further samplers (`[[sample.variants]]`), each run on the same pairs of networks with the
    /// same noise seeds and count: its own compare jobs and, where the linear pair is on, its own
    /// linear-pair jobs (the control under the same sampler), reported in a table of their own.
    #[serde(default)]
    pub variants: Vec<SamplerVariant>,
}

/// One further sampler of `[sample] variants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerVariant {
    /// Names the variant's jobs and directories (`compare-nN-seedS-NAME`,
    /// `compare/nN-seed-S-NAME`): letters, digits, '.', '_' and '-'.
    pub name: String,
    /// Sampler flags of `memgen compare` in place of `[sample] args` (and of the linear pair's).
    pub args: Vec<String>,
}

/// Baselines run on the same training sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baselines {
    /// The linear denoiser (`memgen linear`) at every N.
    #[serde(default)]
    pub linear: bool,
    /// Further `memgen linear` flags (e.g. `["--weight-decay", "1e-3"]`).
    #[serde(default)]
    pub linear_args: Vec<String>,
    /// The empirical optimal denoiser of S_A(N) and S_B(N) (`memgen compare --oracle`), sampled
    /// with the same noise: it memorizes by construction.
    #[serde(default)]
    pub oracle: bool,
    /// Sampler flags for the oracle (default: `sample.args`).
    pub oracle_args: Option<Vec<String>>,
    /// The Gaussian (linear) denoisers of S_A(N) and S_B(N) (`memgen compare --linear`), sampled
    /// with the networks' sampler and noise: the agreement that the sets' mean and covariance alone
    /// explain. On unless `false`.
    #[serde(default = "default_true")]
    pub linear_pair: bool,
    /// Sampler flags for the linear pair (default: `sample.args`).
    pub linear_pair_args: Option<Vec<String>>,
    /// Each network's denoising error on its training images and on held-out images (outside the
    /// largest pair's sets), beside the linear and the oracle denoiser (`memgen denoise-error`). On
    /// unless `false`.
    #[serde(default = "default_true")]
    pub denoise_error: bool,
    /// Further `memgen denoise-error` flags (e.g. `["--sigmas", "0.05,0.1", "--count", "512"]`).
    #[serde(default)]
    pub denoise_error_args: Vec<String>,
}

impl Default for Baselines {
    fn default() -> Self {
        Baselines {
            linear: false,
            linear_args: Vec::new(),
            oracle: false,
            oracle_args: None,
            linear_pair: true,
            linear_pair_args: None,
            denoise_error: true,
            denoise_error_args: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// Settings of the Slurm scripts written by `memgen run --plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// The memgen binary on the cluster.
    #[serde(default = "default_memgen")]
    pub memgen: String,
    /// `#SBATCH` options of every job (e.g. `["--partition=gpu", "--time=04:00:00"]`).
    #[serde(default)]
    pub sbatch: Vec<String>,
    /// Extra `#SBATCH` options of the training array (e.g. `["--gres=gpu:1"]`).
    #[serde(default)]
    pub train_sbatch: Vec<String>,
    /// Extra `#SBATCH` options of the evaluation array (compare, baselines, denoising errors, the
    /// linear baseline), e.g. `["--gres=gpu:1"]` with `[sample] device = "cuda:0"`.
    #[serde(default)]
    pub evaluate_sbatch: Vec<String>,
    /// `--threads` of each cluster job.
    #[serde(default = "default_cluster_threads")]
    pub threads: usize,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            noise_seeds: default_seeds(),
            count: default_count(),
            args: Vec::new(),
            device: None,
            variants: Vec::new(),
        }
    }
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            memgen: default_memgen(),
            sbatch: Vec::new(),
            train_sbatch: Vec::new(),
            evaluate_sbatch: Vec::new(),
            threads: default_cluster_threads(),
        }
    }
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}
fn default_count() -> usize {
    64
}
fn default_memgen() -> String {
    "memgen".into()
}
fn default_cluster_threads() -> usize {
    8
}

impl Experiment {
    /// Read and check an experiment file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|e| match e {
            Error::Invalid(msg) => Error::bad_file(path, msg),
            other => other,
        })
    }

    /// Parse and check experiment TOML.
    pub fn parse(text: &str) -> Result<Self> {
        let exp: Experiment =
            toml::from_str(text).map_err(|e| Error::Invalid(format!("invalid experiment: {e}")))?;
        exp.validate()?;
        Ok(exp)
    }

    /// Check the values that TOML types cannot.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            return bad(format!("name must be a non-empty file name, got {:?}", self.name));
        }
        if self.n.is_empty() || self.n.contains(&0) {
            return bad(format!("n must list training-set sizes of at least 1, got {:?}", self.n));
        }
        let mut sorted = self.n.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.n.len() {
            return bad(format!("n lists a size twice: {:?}", self.n));
        }
        match (&self.data.source, &self.data.dir) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => return bad("[data] needs exactly one of `source` (to prepare) and `dir` (prepared)".into()),
        }
        if self.data.dir.is_some() && !self.data.args.is_empty() {
            return bad("[data] args are `memgen data prepare` flags; they need `source`, not `dir`".into());
        }
        self.train.validate()?;
        if self.sample.noise_seeds.is_empty() || self.sample.count == 0 {
            return bad("[sample] needs at least one noise seed and a count of at least 1".into());
        }
        check_device("[sample]", &self.sample.device)?;
        check_variants(&self.sample.variants)?;
        let sampler_args = [
            ("[sample] args".to_string(), &self.sample.args),
            ("[baselines] denoise_error_args".to_string(), &self.baselines.denoise_error_args),
        ];
        let variant_args =
            self.sample.variants.iter().map(|v| (format!("[[sample.variants]] {:?}: args", v.name), &v.args));
        for (what, args) in sampler_args.into_iter().chain(variant_args) {
            if args.iter().any(|a| a == "--device") {
                return bad(format!(
                    "{what}: --device is set by the planner; use the [sample] key instead (device = \"cuda:0\")"
                ));
            }
        }
        if self.cluster.threads == 0 {
            return bad("[cluster] threads must be at least 1".into());
        }
        Ok(())
    }

    /// The sizes in increasing order.
    pub fn sizes(&self) -> Vec<usize> {
        let mut n = self.n.clone();
        n.sort_unstable();
        n
    }
}

/// Variant names are unique and usable in job ids and directory names.
fn check_variants(variants: &[SamplerVariant]) -> Result<()> {
    let usable = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    for (i, v) in variants.iter().enumerate() {
        if v.name.is_empty() || !v.name.chars().all(usable) {
            return Err(Error::Invalid(format!(
                "[[sample.variants]] name {:?}: expected letters, digits, '.', '_' or '-' (it names the \
                 variant's jobs and directories)",
                v.name
            )));
        }
        if variants[..i].iter().any(|w| w.name == v.name) {
            return Err(Error::Invalid(format!("[[sample.variants]] name {:?} is used twice", v.name)));
        }
    }
    Ok(())
}

/// A `device` key of `section` is `cpu` or `cuda:N` (its form only: the GPU is looked for where the
/// job runs).
fn check_device(section: &str, device: &Option<String>) -> Result<()> {
    match device.as_deref().map(|d| (d, d.parse::<DeviceName>())) {
        Some((d, Err(why))) => Err(Error::Invalid(format!("{section} device = {d:?}: {why}"))),
        _ => Ok(()),
    }
}

impl TrainSpec {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        match (self.steps, self.epochs) {
            (Some(0), _) => return bad("[train] steps must be at least 1".into()),
            (Some(_), None) => {}
            (None, Some(e)) if e.is_finite() && e > 0.0 => {}
            (None, Some(e)) => return bad(format!("[train] epochs must be positive, got {e}")),
            _ => return bad("[train] needs exactly one of `steps` and `epochs`".into()),
        }
        if self.steps.is_some() && (self.min_steps > 0 || self.max_steps.is_some()) {
            return bad("[train] min_steps/max_steps apply to `epochs`, not to a fixed `steps`".into());
        }
        if let Some(max) = self.max_steps {
            if max == 0 || max < self.min_steps {
                return bad(format!("[train] max_steps ({max}) must be at least 1 and min_steps"));
            }
        }
        if self.batch_size == Some(0) || self.lr.is_some_and(|lr| !(lr.is_finite() && lr > 0.0)) {
            return bad("[train] batch_size must be at least 1 and lr positive".into());
        }
        if let Some(d) = self.ema_decay.filter(|d| !(0.0..1.0).contains(d)) {
            return bad(format!("[train] ema_decay must lie in [0, 1), got {d}"));
        }
        if let Some(f) = self.lr_halving.filter(|f| !(0.0..=1.0).contains(f)) {
            return bad(format!("[train] lr_halving must lie in [0, 1] (0: constant), got {f}"));
        }
        if self.checkpoint_every == Some(0) {
            return bad("[train] checkpoint_every must be at least 1".into());
        }
        check_device("[train]", &self.device)?;
        if let Some(flag) = self.args.iter().find(|a| PLANNED_TRAIN_FLAGS.contains(&a.as_str())) {
            return bad(format!(
                "[train] args: {flag} is set by the planner; use the [train] key instead (for example \
                 lr_halving = 0.25 for --lr-halving)"
            ));
        }
        Ok(())
    }

    /// The optimisation settings, with `defaults` (the network kind's) where the file sets none.
    pub fn optimization(&self, defaults: &TrainDefaults) -> Optimization {
        let halving = match defaults.lr_decay {
            LrDecay::Halving { fraction } => Some(fraction),
            LrDecay::Constant => None,
        };
        Optimization {
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            lr: self.lr.unwrap_or(defaults.lr),
            warmup: self.warmup.unwrap_or(defaults.warmup_steps),
            ema_decay: self.ema_decay.unwrap_or(defaults.ema_decay),
            lr_halving: self.lr_halving.or(halving),
        }
    }

    /// Optimisation steps for a training set of `n` images at `batch_size`: `steps`, or
    /// `clamp(ceil(epochs · n / batch_size), min_steps, max_steps)` (at least 1).
    pub fn steps_for(&self, n: usize, batch_size: usize) -> usize {
        if let Some(s) = self.steps {
            return s;
        }
        let epochs = self.epochs.unwrap_or(1.0);
        let raw = (epochs * n as f64 / batch_size as f64).ceil() as usize;
        let s = raw.max(self.min_steps).max(1);
        self.max_steps.map_or(s, |m| s.min(m))
    }

    /// Checkpoint interval for a run of `steps` steps.
    pub fn checkpoint_every_for(&self, steps: usize) -> usize {
        self.checkpoint_every.unwrap_or((steps / 10).max(100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
n = [4, 1]
model = "m.toml"
[data]
source = "calpha"
[train]
epochs = 100
min_steps = 10
max_steps = 50
batch_size = 8
"#;

    #[test]
    fn defaults_and_steps_rule() {
        let e = Experiment::parse(MINIMAL).unwrap();
        assert_eq!(e.sizes(), vec![1, 4]);
        assert_eq!(e.sample.count, 64);
        assert_eq!(e.sample.noise_seeds, vec![0]);
        assert!(!e.baselines.linear);
        assert_eq!((e.train.device.as_deref(), e.sample.device.as_deref()), (None, None));
        let gpu = MINIMAL.replace("batch_size = 8", "batch_size = 8\ndevice = \"cuda:1\"");
        let gpu = Experiment::parse(&format!("{gpu}[sample]\ndevice = \"cuda:0\"\n")).unwrap();
        assert_eq!(
            (gpu.train.device.as_deref(), gpu.sample.device.as_deref()),
            (Some("cuda:1"), Some("cuda:0"))
        );
        // ceil(100 * 1 / 8) = 13; ceil(100 * 4 / 8) = 50; 100 * 5 / 8 = 62.5 -> capped at 50.
        assert_eq!(e.train.steps_for(1, 8), 13);
        assert_eq!(e.train.steps_for(4, 8), 50);
        assert_eq!(e.train.steps_for(5, 8), 50);
        let mut t = e.train.clone();
        t.epochs = Some(1.0);
        assert_eq!(t.steps_for(1, 8), 10, "min_steps is a floor");
        assert_eq!(t.checkpoint_every_for(5000), 500);
        assert_eq!(t.checkpoint_every_for(300), 100);
    }

    #[test]
    fn bad_files_are_explained() {
        let cases = [
            (MINIMAL.replace("n = [4, 1]", "n = [4, 4]"), "twice"),
            (MINIMAL.replace("n = [4, 1]", "n = [0]"), "at least 1"),
            (MINIMAL.replace("source = \"calpha\"", "dir = \"d\"\nsource = \"x\""), "exactly one"),
            (MINIMAL.replace("epochs = 100", "steps = 10\nepochs = 100"), "exactly one"),
            (MINIMAL.replace("epochs = 100", "epochs = -1"), "positive"),
            (MINIMAL.replace("batch_size = 8", "batch_size = 8\nlearning_rate = 1"), "unknown field"),
            (MINIMAL.replace("name = \"t\"", "name = \"a/b\""), "file name"),
            (MINIMAL.replace("batch_size = 8", "batch_size = 8\nargs = [\"--lr-halving\", \"0.5\"]"), "lr_halving = 0.25"),
            (MINIMAL.replace("batch_size = 8", "batch_size = 8\nlr_halving = 2"), "[0, 1]"),
            (MINIMAL.replace("batch_size = 8", "batch_size = 8\ndevice = \"gpu\""), "cpu or cuda:N"),
            (MINIMAL.replace("batch_size = 8", "batch_size = 8\ndevice = \"cuda\""), "[train] device"),
            (
                MINIMAL.replace("batch_size = 8", "batch_size = 8\nargs = [\"--device\", \"cuda:0\"]"),
                "set by the planner",
            ),
            (format!("{MINIMAL}[sample]\ndevice = \"cuda:x\"\n"), "[sample] device"),
            (format!("{MINIMAL}[sample]\nargs = [\"--device\", \"cuda:0\"]\n"), "[sample] key"),
            (
                format!("{MINIMAL}[baselines]\ndenoise_error_args = [\"--device\", \"cpu\"]\n"),
                "denoise_error_args",
            ),
            (format!("{MINIMAL}[[sample.variants]]\nname = \"a/b\"\nargs = []\n"), "letters, digits"),
            (format!("{MINIMAL}[[sample.variants]]\nname = \"\"\nargs = []\n"), "letters, digits"),
            (
                format!("{MINIMAL}[[sample.variants]]\nname = \"x\"\nargs = []\n[[sample.variants]]\nname = \"x\"\nargs = []\n"),
                "used twice",
            ),
            (
                format!("{MINIMAL}[[sample.variants]]\nname = \"x\"\nargs = [\"--device\", \"cpu\"]\n"),
                "\"x\": args",
            ),
            (format!("{MINIMAL}[[sample.variants]]\nname = \"x\"\n"), "missing field `args`"),
        ];
        for (text, want) in cases {
            let err = Experiment::parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }
}

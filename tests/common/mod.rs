//! Running the `memgen` binary as a user would, for the end-to-end tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Run memgen with `args` (2 threads).
pub fn memgen(args: &[&str]) -> Output {
    memgen_env(args, &[])
}

/// Run memgen with `args` and extra environment variables.
pub fn memgen_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memgen"));
    cmd.args(args).env("RAYON_NUM_THREADS", "2").env_remove("HF_HUB_OFFLINE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("memgen runs")
}

/// Its stdout, after asserting success.
pub fn ok(out: &Output) -> String {
    let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "memgen failed\nstdout: {so}\nstderr: {se}");
    so.into_owned()
}

/// Its stderr, after asserting that memgen reported an error and exited with one of its error codes
/// (1 failed, 2 usage, 3 refused), not a crash or a signal.
pub fn fails(out: &Output) -> String {
    let code = out.status.code();
    assert!(
        matches!(code, Some(1..=3)),
        "expected exit code 1, 2 or 3, got {code:?}; stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("error"), "no error message on stderr: {err}");
    err
}

/// Exit code 1: the work failed.
pub const FAILED: i32 = 1;
/// Exit code 2: usage error (flags, flag values, missing inputs).
pub const USAGE: i32 = 2;
/// Exit code 3: refused to protect data.
pub const REFUSED: i32 = 3;

/// Its stderr, after asserting exit code `code`.
pub fn fails_with(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit code {code}; stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A JSON file, parsed (panics naming the file).
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// The shape and f32 pixels of tensor "samples" of a samples.safetensors file.
pub fn samples(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("samples").unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    (t.shape().to_vec(), t.data().chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Pearson correlation in f64, written out independently of memgen-metrics.
pub fn corr(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) =
        (a.iter().map(|&v| v as f64).sum::<f64>() / n, b.iter().map(|&v| v as f64).sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - ma) * (y as f64 - mb)).sum();
    let va: f64 = a.iter().map(|&x| (x as f64 - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|&y| (y as f64 - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Train models/unet-tiny.toml on S_side(n) of the prepared dataset `ds` into `run` for `steps`
/// steps at `batch` images per step.
pub fn train_tiny(ds: &Path, run: &Path, n: usize, side: &str, steps: usize, batch: usize) {
    train_model(ds, run, "unet-tiny", n, side, steps, batch);
}

/// Train models/MODEL.toml on S_side(n) of the prepared dataset `ds` into `run` for `steps` steps
/// at `batch` images per step.
pub fn train_model(ds: &Path, run: &Path, model: &str, n: usize, side: &str, steps: usize, batch: usize) {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(format!("{model}.toml"));
    let (n, steps, batch) = (n.to_string(), steps.to_string(), batch.to_string());
    ok(&memgen(&[
        "train",
        "--data",
        ds.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--n",
        &n,
        "--split",
        side,
        "--steps",
        &steps,
        "--batch-size",
        &batch,
        "--quiet",
    ]));
}

/// `memgen data prepare SOURCE --count COUNT --side SIDE --out DS` (a generator source).
pub fn prepare(ds: &Path, source: &str, count: usize, side: usize) {
    let (count, side) = (count.to_string(), side.to_string());
    ok(&memgen(&[
        "data",
        "prepare",
        source,
        "--count",
        &count,
        "--side",
        &side,
        "--out",
        ds.to_str().unwrap(),
    ]));
}

/// The experiment file DIR/tiny.toml: unet-tiny on `count` 8x8 C^alpha images, N = 1 and 4,
/// `steps` training steps with a checkpoint every `checkpoint_every`, DDIM samples, both baselines.
pub fn tiny_experiment(
    dir: &Path,
    steps: usize,
    count: usize,
    checkpoint_every: usize,
) -> std::path::PathBuf {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/unet-tiny.toml");
    let text = format!(
        r#"name = "tiny"
description = "unet-tiny on 8x8 C^alpha images"
n = [1, 4]
model = "{}"
[data]
source = "calpha"
args = ["--count", "{count}", "--side", "8"]
[train]
steps = {steps}
batch_size = 8
lr = 1e-3
warmup = 5
ema_decay = 0.9
checkpoint_every = {checkpoint_every}
[sample]
noise_seeds = [2]
count = 6
args = ["--sampler", "ddim", "--ddim-steps", "10"]
[baselines]
linear = true
linear_args = ["--check-samples", "0", "--sweep-points", "3"]
oracle = true
"#,
        model.display()
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// splitmix64: seeded pseudo-random choices of the tests (kill moments, fuzz mutations).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }

    /// Uniform in [0, n) (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

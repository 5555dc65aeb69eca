//! Training runs on the tiny models: exact resume, determinism, NaN handling, and the memorization
//! limit (a model trained on one image reproduces it).

use candle::{Device, Tensor};
use memgen_diffusion::checkpoint::{latest, load_tensors};
use memgen_diffusion::model::ModelConfig;
use memgen_diffusion::optim::AdamWConfig;
use memgen_diffusion::schedule::ScheduleConfig;
use memgen_diffusion::train::{named_vars, run, LrDecay, RunOptions, TrainConfig, Trainer};
use memgen_diffusion::Error;
use std::collections::HashMap;
use std::path::Path;

fn models_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn config(model: &str, steps: usize) -> TrainConfig {
    TrainConfig {
        model: ModelConfig::load(&models_dir().join(model)).unwrap(),
        schedule: ScheduleConfig::default(),
        steps,
        batch_size: 4,
        lr: 1e-3,
        warmup_steps: 2,
        lr_decay: LrDecay::Halving { fraction: 0.5 },
        optimizer: AdamWConfig { weight_decay: 0.01, ..Default::default() },
        ema_decay: 0.9,
        seed: 5,
        checkpoint_every: 3,
        log_every: 1,
    }
}

/// Six random 8x8 images in [0,1].
fn data(seed: u64, n: usize, side: usize) -> Tensor {
    let v = memgen_diffusion::NoiseSource::new(seed).draw(0, 0, n * side * side);
    let v: Vec<f32> = v.iter().map(|x| (x * 0.2 + 0.5).clamp(0.0, 1.0)).collect();
    Tensor::from_vec(v, (n, 1, side, side), &Device::Cpu).unwrap()
}

fn tensors(path: &Path) -> HashMap<String, Vec<f32>> {
    load_tensors(path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn check_resume_equals_uninterrupted(model: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (full, part) = (tmp.path().join("full"), tmp.path().join("part"));
    let quiet = RunOptions { quiet: true, stop_at: None };
    let mut t = Trainer::new(config(model, 6), data(1, 6, 8)).unwrap();
    run(&mut t, &full, quiet).unwrap();
    // Interrupted after step 4, then resumed. A log line written after the checkpoint (as by a run
    // killed between checkpoints) is dropped on resume.
    let mut t = Trainer::new(config(model, 6), data(1, 6, 8)).unwrap();
    run(&mut t, &part, RunOptions { stop_at: Some(4), ..quiet }).unwrap();
    let mut log = std::fs::OpenOptions::new().append(true).open(part.join("train.jsonl")).unwrap();
    std::io::Write::write_all(
        &mut log,
        b"{\"step\":5,\"loss\":9.0,\"lr\":0.0,\"images_per_s\":1.0,\"wall_s\":1.0}\n",
    )
    .unwrap();
    let mut t = Trainer::resume(config(model, 6), data(1, 6, 8), &part).unwrap();
    assert_eq!(t.step, 4);
    run(&mut t, &part, quiet).unwrap();
    for file in ["model.safetensors", "ema.safetensors"] {
        same(
            &tensors(&full.join(file)),
            &tensors(&part.join(file)),
            &format!("{model}: {file} after resume"),
        );
    }
    let opt = |r: &Path| tensors(&latest(r).unwrap().unwrap().join("optimizer.safetensors"));
    same(&opt(&full), &opt(&part), "optimizer state");
    // The log has one line per step, none repeated.
    let log = std::fs::read_to_string(part.join("train.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 6, "{log}");
    // Training changed the weights, and the EMA differs from them.
    let (w, e) = (tensors(&full.join("model.safetensors")), tensors(&full.join("ema.safetensors")));
    assert_ne!(w, e);
}

/// Bitwise equality of two tensor maps, naming the first tensor that differs.
fn same(a: &HashMap<String, Vec<f32>>, b: &HashMap<String, Vec<f32>>, what: &str) {
    let mut keys: Vec<_> = a.keys().collect();
    keys.sort();
    assert_eq!(a.len(), b.len(), "{what}: different tensor sets");
    for k in keys {
        let (x, y) = (&a[k], &b[k]);
        let diff = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        assert!(
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{what}: {k} differs (max |diff| {diff})"
        );
    }
}

#[test]
fn resume_gives_the_same_weights_as_an_uninterrupted_run() {
    check_resume_equals_uninterrupted("unet-tiny.toml");
    check_resume_equals_uninterrupted("blind-tiny.toml");
}

#[test]
fn same_seed_same_bits_and_seeds_differ() {
    let weights = |seed| {
        let mut cfg = config("unet-tiny.toml", 3);
        cfg.seed = seed;
        let mut t = Trainer::new(cfg, data(2, 5, 8)).unwrap();
        for _ in 0..3 {
            t.train_step().unwrap();
        }
        named_vars(t.varmap())
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(weights(1), weights(1));
    assert_ne!(weights(1), weights(2));
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut t = Trainer::new(config("unet-tiny.toml", 3), data(3, 4, 8)).unwrap();
    run(&mut t, &dir, RunOptions { quiet: true, stop_at: None }).unwrap();
    let before = tensors(&dir.join("model.safetensors"));
    let nan = (data(3, 4, 8) * f64::NAN).unwrap();
    let mut t = Trainer::resume(config("unet-tiny.toml", 6), nan, &dir).unwrap();
    let err = run(&mut t, &dir, RunOptions { quiet: true, stop_at: None }).unwrap_err();
    assert!(matches!(err, Error::NonFinite { step: 3, .. }), "{err}");
    assert!(err.to_string().contains("step 3"), "{err}");
    assert_eq!(tensors(&dir.join("model.safetensors")), before, "the last good weights are kept");
    assert!(latest(&dir).unwrap().unwrap().ends_with("step-00000003"));
}

#[test]
fn bad_training_inputs_are_refused() {
    let err =
        |cfg: TrainConfig, d: Tensor| Trainer::new(cfg, d).err().map(|e| e.to_string()).unwrap_or_default();
    let mut c = config("unet-tiny.toml", 3);
    c.lr = -1.0;
    assert!(err(c, data(1, 2, 8)).contains("learning rate"));
    assert!(err(config("unet-tiny.toml", 3), data(1, 2, 7)).contains("7"), "odd side for a 2-level UNet");
    let rgb = Tensor::zeros((2, 3, 8, 8), candle::DType::F32, &Device::Cpu).unwrap();
    assert!(err(config("unet-tiny.toml", 3), rgb).contains("channel"));
}

//! Training runs on the tiny models: exact resume, determinism, NaN handling, and the memorization
//! limit (a model trained on one image reproduces it).

use candle::{Device, Tensor};
use memgen_diffusion::checkpoint::{latest, load_tensors};
use memgen_diffusion::model::ModelConfig;
use memgen_diffusion::optim::AdamWConfig;
use memgen_diffusion::schedule::ScheduleConfig;
use memgen_diffusion::train::{fit, named_vars, FitOptions, LrDecay, TrainConfig, Trainer};
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
        ema_warmup: true,
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
    let quiet = FitOptions { quiet: true, stop_at: None };
    let mut t = Trainer::new(config(model, 6), data(1, 6, 8)).unwrap();
    fit(&mut t, &full, quiet).unwrap();
    // Interrupted after step 4, then resumed. A log line written after the checkpoint (as by a run
    // killed between checkpoints) is dropped on resume.
    let mut t = Trainer::new(config(model, 6), data(1, 6, 8)).unwrap();
    fit(&mut t, &part, FitOptions { stop_at: Some(4), ..quiet }).unwrap();
    let mut log = std::fs::OpenOptions::new().append(true).open(part.join("train.jsonl")).unwrap();
    std::io::Write::write_all(
        &mut log,
        b"{\"step\":5,\"loss\":9.0,\"lr\":0.0,\"images_per_s\":1.0,\"wall_s\":1.0}\n",
    )
    .unwrap();
    let mut t = Trainer::resume(config(model, 6), data(1, 6, 8), &part).unwrap();
    assert_eq!(t.step, 4);
    fit(&mut t, &part, quiet).unwrap();
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
    fit(&mut t, &dir, FitOptions { quiet: true, stop_at: None }).unwrap();
    let before = tensors(&dir.join("model.safetensors"));
    let nan = (data(3, 4, 8) * f64::NAN).unwrap();
    let mut t = Trainer::resume(config("unet-tiny.toml", 6), nan, &dir).unwrap();
    let err = fit(&mut t, &dir, FitOptions { quiet: true, stop_at: None }).unwrap_err();
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

/// The loss of each train.jsonl line, as the bits of its f64.
fn logged_losses(run: &Path) -> Vec<(usize, u64)> {
    std::fs::read_to_string(run.join("train.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let line: memgen_diffusion::train::LogLine = serde_json::from_str(l).unwrap();
            (line.step, line.loss.to_bits())
        })
        .collect()
}

/// A run stopped between two log lines checkpoints the open loss window (its sum and count); the
/// resumed run's log lines equal the uninterrupted run's bit for bit.
#[test]
fn a_run_resumed_mid_log_window_logs_the_uninterrupted_losses() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, part) = (tmp.path().join("full"), tmp.path().join("part"));
    let quiet = FitOptions { quiet: true, stop_at: None };
    let cfg = || TrainConfig { log_every: 4, ..config("unet-tiny.toml", 8) };
    fit(&mut Trainer::new(cfg(), data(1, 6, 8)).unwrap(), &full, quiet).unwrap();
    let mut t = Trainer::new(cfg(), data(1, 6, 8)).unwrap();
    fit(&mut t, &part, FitOptions { stop_at: Some(6), ..quiet }).unwrap();
    assert_eq!(t.log_window.1, 2, "the checkpoint at step 6 holds two unlogged losses");
    let mut t = Trainer::resume(cfg(), data(1, 6, 8), &part).unwrap();
    fit(&mut t, &part, quiet).unwrap();
    assert_eq!(logged_losses(&full), logged_losses(&part));
    assert_eq!(logged_losses(&full).len(), 2);
}

/// state.json keeps the loss window's sum exactly, also a sum that serde_json's default
/// (approximate) float parser reads back one ulp off: 0.24029392004013062 (0x3fcec1f380000000).
#[test]
fn the_checkpointed_loss_sum_reads_back_to_the_same_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let mut t = Trainer::new(config("unet-tiny.toml", 3), data(4, 4, 8)).unwrap();
    t.train_step().unwrap();
    for bits in [0x3fcec1f380000000u64, 0x3ffc0dd710000000, 0x3ff8fc9190000000] {
        t.log_window = (f64::from_bits(bits), 3);
        t.save_checkpoint(&run_dir).unwrap();
        let back = Trainer::resume(config("unet-tiny.toml", 3), data(4, 4, 8), &run_dir).unwrap();
        assert_eq!(
            back.log_window.0.to_bits(),
            bits,
            "{} read back as {}",
            f64::from_bits(bits),
            back.log_window.0
        );
        assert_eq!(back.log_window.1, 3);
    }
    // A resumed run re-reads its TrainConfig from config.json: learning rate and EMA decay too.
    let cfg = TrainConfig {
        lr: f64::from_bits(0x3fcec1f380000000),
        ema_decay: f64::from_bits(0x3fef4e41c0000000),
        ..config("unet-tiny.toml", 3)
    };
    let back: TrainConfig = serde_json::from_str(&serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    assert_eq!((back.lr.to_bits(), back.ema_decay.to_bits()), (cfg.lr.to_bits(), cfg.ema_decay.to_bits()));
}

/// With warm-up the decay of step s is min(d, (1+s)/(10+s)): the first update keeps a tenth of the
/// initial weights, and the decay reaches d = 0.9 at s = 80. Without warm-up it is d throughout.
#[test]
fn the_ema_warms_up_from_the_first_step() {
    let cfg = config("unet-tiny.toml", 3);
    assert_eq!(cfg.ema_decay_at(0), 0.1);
    assert_eq!(cfg.ema_decay_at(8), 9.0 / 18.0);
    assert_eq!(cfg.ema_decay_at(80), 0.9);
    assert_eq!(cfg.ema_decay_at(5000), 0.9);
    let cold = TrainConfig { ema_warmup: false, ..cfg.clone() };
    assert_eq!(cold.ema_decay_at(0), 0.9);
    // The first update: ema = 0.1·θ0 + 0.9·θ1 for every variable.
    let values = |t: &Trainer| -> HashMap<String, Vec<f32>> {
        named_vars(t.varmap())
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
            .collect()
    };
    let mut t = Trainer::new(cfg, data(2, 4, 8)).unwrap();
    let theta0 = values(&t);
    t.train_step().unwrap();
    let theta1 = values(&t);
    let mut moved = 0;
    for (name, e) in t.ema() {
        let e = e.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for ((&a, &b), &got) in theta0[name].iter().zip(&theta1[name]).zip(&e) {
            let want = 0.1 * a as f64 + 0.9 * b as f64;
            assert!((got as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()), "{name}: {got} vs {want}");
            moved += usize::from(a != b);
        }
    }
    assert!(moved > 0, "the step changed no weight");
}

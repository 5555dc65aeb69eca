//! The memorization limit: a model trained on a single image generates that image (Kadkhodaie et al.:
//! every model with N ≤ 100 reproduces its training images; N = 1 is the extreme case).

use candle::{Device, Tensor};
use memgen_diffusion::model::ModelConfig;
use memgen_diffusion::optim::AdamWConfig;
use memgen_diffusion::sampler::{sample_batched, SamplerConfig};
use memgen_diffusion::schedule::{DdpmSchedule, ScheduleConfig};
use memgen_diffusion::train::{LrDecay, TrainConfig, Trainer};
use memgen_diffusion::NoiseSource;
use std::path::Path;

/// Pearson correlation over pixels (0 for a constant image).
fn corr(a: &[f32], b: &[f32]) -> f64 {
    let m = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let (ma, mb) = (m(a), m(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

#[test]
fn a_model_trained_on_one_image_generates_it() {
    let side = 8;
    // A smooth blob with an edge: a recognisable image, not noise.
    let img: Vec<f32> = (0..side * side)
        .map(|p| {
            let (r, c) = ((p / side) as f32, (p % side) as f32);
            let blob = (-((r - 2.5).powi(2) + (c - 5.0).powi(2)) / 6.0).exp();
            (0.15 + 0.7 * blob + if r > 5.0 { 0.1 } else { 0.0 }).min(1.0)
        })
        .collect();
    let data = Tensor::from_vec(img.clone(), (1, 1, side, side), &Device::Cpu).unwrap();
    // x0-prediction: for a point mass the ideal network is the constant image, learned in few steps.
    let mut model =
        ModelConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/unet-tiny.toml"))
            .unwrap();
    match &mut model {
        ModelConfig::Unet(c) => c.prediction = memgen_diffusion::Prediction::X0,
        _ => unreachable!("unet-tiny is a time-conditioned UNet"),
    }
    let cfg = TrainConfig {
        model,
        schedule: ScheduleConfig::default(),
        steps: 400,
        batch_size: 16,
        lr: 2e-3,
        warmup_steps: 20,
        lr_decay: LrDecay::Halving { fraction: 0.5 },
        optimizer: AdamWConfig::default(),
        ema_decay: 0.99,
        seed: 0,
        checkpoint_every: 1000,
        log_every: 1000,
    };
    let mut t = Trainer::new(cfg, data).unwrap();
    let mut first = 0.0;
    for s in 0..400 {
        let loss = t.train_step().unwrap();
        if s == 0 {
            first = loss;
        }
    }
    let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
    let sampler = SamplerConfig::Ddim { steps: 50, eta: 0.0 }.build(&schedule).unwrap();
    let x = sample_batched(
        &t.model,
        t.cfg.model.prediction(),
        &schedule,
        sampler.as_ref(),
        &NoiseSource::new(9),
        6,
        6,
        &[1, side, side],
        &Device::Cpu,
        None,
    )
    .unwrap()
    .flatten_all()
    .unwrap()
    .to_vec1::<f32>()
    .unwrap();
    let corrs: Vec<f64> = x.chunks(side * side).map(|s| corr(s, &img)).collect();
    eprintln!("first loss {first:.3}, corr of 6 samples with the training image: {corrs:.3?}");
    assert!(corrs.iter().all(|&c| c > 0.95), "samples do not reproduce the single training image: {corrs:?}");
}

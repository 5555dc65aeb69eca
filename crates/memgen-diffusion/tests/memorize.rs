//! The memorization limit: a model trained on a single image generates that image (Kadkhodaie et al.:
//! every model with N ≤ 100 reproduces its training images; N = 1 is the extreme case).

use candle::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use memgen_diffusion::model::{Model, ModelConfig};
use memgen_diffusion::optim::AdamWConfig;
use memgen_diffusion::sampler::{SampleRequest, SamplerConfig};
use memgen_diffusion::schedule::{DdpmSchedule, ScheduleConfig};
use memgen_diffusion::train::{LrDecay, TrainConfig, Trainer};
use memgen_diffusion::{NoiseSource, Prediction};
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

/// A smooth blob with an edge: a recognisable `side`x`side` image, not noise.
fn blob(side: usize) -> Vec<f32> {
    (0..side * side)
        .map(|p| {
            let (r, c) = ((p / side) as f32, (p % side) as f32);
            let blob = (-((r - 2.5).powi(2) + (c - 5.0).powi(2)) / 6.0).exp();
            (0.15 + 0.7 * blob + if r > 5.0 { 0.1 } else { 0.0 }).min(1.0)
        })
        .collect()
}

/// unet-tiny with x0-prediction trained on the single image `img` for `steps` steps.
fn train_on_one_image(img: &[f32], side: usize, steps: usize, ema_decay: f64) -> (Trainer, f32) {
    let data = Tensor::from_vec(img.to_vec(), (1, 1, side, side), &Device::Cpu).unwrap();
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
        steps,
        batch_size: 16,
        lr: 2e-3,
        warmup_steps: 20,
        lr_decay: LrDecay::Halving { fraction: 0.5 },
        optimizer: AdamWConfig::default(),
        ema_decay,
        ema_warmup: true,
        seed: 0,
        checkpoint_every: 1000,
        log_every: 1000,
    };
    let mut t = Trainer::new(cfg, data).unwrap();
    let mut first = 0.0;
    for s in 0..steps {
        let loss = t.train_step().unwrap();
        if s == 0 {
            first = loss;
        }
    }
    (t, first)
}

/// The correlations with `img` of 6 DDIM-50 samples of `model` (noise seed 9).
fn sample_corrs(model: &Model, prediction: Prediction, img: &[f32], side: usize) -> Vec<f64> {
    let schedule = DdpmSchedule::new(&ScheduleConfig::default()).unwrap();
    let sampler = SamplerConfig::Ddim { steps: 50, eta: 0.0 }.build(&schedule).unwrap();
    let x = SampleRequest {
        model,
        prediction,
        schedule: &schedule,
        sampler: sampler.as_ref(),
        noise: &NoiseSource::new(9),
        dims: &[1, side, side],
        device: &Device::Cpu,
    }
    .sample_batched(6, 6, None)
    .unwrap()
    .flatten_all()
    .unwrap()
    .to_vec1::<f32>()
    .unwrap();
    x.chunks(side * side).map(|s| corr(s, img)).collect()
}

#[test]
fn a_model_trained_on_one_image_generates_it() {
    let side = 8;
    let img = blob(side);
    let (t, first) = train_on_one_image(&img, side, 400, 0.99);
    let corrs = sample_corrs(&t.model, t.cfg.model.prediction(), &img, side);
    eprintln!("first loss {first:.3}, corr of 6 samples with the training image: {corrs:.3?}");
    assert!(corrs.iter().all(|&c| c > 0.95), "samples do not reproduce the single training image: {corrs:?}");
}

/// A run much shorter than the EMA's horizon (300 steps at decay 0.999, where a constant decay would
/// leave 74% of the random initial weights in the average): the EMA weights, warmed up, reproduce
/// the training image as the raw weights do.
#[test]
fn a_short_runs_ema_samples_memorize_as_its_raw_samples_do() {
    let side = 8;
    let img = blob(side);
    let (t, _) = train_on_one_image(&img, side, 300, 0.999);
    let prediction = t.cfg.model.prediction();
    let raw = sample_corrs(&t.model, prediction, &img, side);
    let vb = VarBuilder::from_tensors(t.ema().clone(), DType::F32, &Device::Cpu);
    let ema_model = Model::new(&t.cfg.model, vb).unwrap();
    let ema = sample_corrs(&ema_model, prediction, &img, side);
    eprintln!("corr with the training image, raw weights: {raw:.3?}; EMA weights: {ema:.3?}");
    assert!(raw.iter().all(|&c| c > 0.95), "the raw weights do not memorize: {raw:?}");
    assert!(ema.iter().all(|&c| c > 0.95), "the EMA weights do not memorize as the raw ones do: {ema:?}");
}

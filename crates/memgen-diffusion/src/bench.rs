//! Throughput of a network on this machine: training steps (forward + backward + AdamW) and
//! sampler steps (one forward in eval mode), on random data, with the achieved GFLOP/s.

use crate::model::ModelConfig;
use crate::noise::NoiseSource;
use crate::optim::AdamWConfig;
use crate::schedule::ScheduleConfig;
use crate::train::{LrDecay, TrainConfig, Trainer};
use crate::Denoiser;
use candle::{DType, Device, Tensor};
use serde::Serialize;
use std::time::Instant;

/// One benchmark result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub parameters: usize,
    pub forward_gflop_per_image: f64,
    pub batch_size: usize,
    pub side: usize,
    pub threads: usize,
    /// Seconds per training step (median of the timed steps).
    pub train_step_s: f64,
    pub train_images_per_s: f64,
    /// Training GFLOP/s counting forward + backward as 3 × forward.
    pub train_gflop_per_s: f64,
    /// Seconds per eval forward of one batch (median).
    pub forward_s: f64,
    pub forward_images_per_s: f64,
    pub forward_gflop_per_s: f64,
    /// Sampler steps (one forward of the whole batch) per second: `1 / forward_s`.
    pub sampler_steps_per_s: f64,
    /// With `profile`: seconds per training step and per forward spent in each memgen kernel
    /// (the rest is Candle's own ops, autograd bookkeeping and the optimizer).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kernel_profile: Vec<KernelTime>,
    /// With `profile`: the conv layers by shape, slowest first, in the training step and the forward.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layer_profile: Vec<LayerProfile>,
}

/// One layer shape of the profile: seconds per step and achieved GFLOP/s of its GEMM work.
#[derive(Debug, Clone, Serialize)]
pub struct LayerProfile {
    /// `"train"` (forward + backward of a training step) or `"forward"`.
    pub phase: &'static str,
    pub kernel: &'static str,
    pub shape: String,
    pub calls_per_step: f64,
    pub seconds_per_step: f64,
    pub gflop_per_s: f64,
}

/// The per-shape totals of the timed section, per step.
fn layer_seconds(phase: &'static str, steps: usize) -> Vec<LayerProfile> {
    let per = steps.max(1) as f64;
    memgen_kernels::profile::layers()
        .into_iter()
        .map(|l| LayerProfile {
            phase,
            kernel: l.kernel.name(),
            shape: l.shape,
            calls_per_step: l.calls as f64 / per,
            seconds_per_step: l.seconds / per,
            gflop_per_s: if l.seconds > 0.0 { l.flops / l.seconds / 1e9 } else { 0.0 },
        })
        .collect()
}

/// Time spent in one memgen kernel, per training step and per forward (seconds).
#[derive(Debug, Clone, Serialize)]
pub struct KernelTime {
    pub kernel: &'static str,
    pub train_step_s: f64,
    pub forward_s: f64,
}

/// Per-kernel seconds of the timed section: totals divided by `steps`.
fn kernel_seconds(steps: usize) -> Vec<(&'static str, f64)> {
    memgen_kernels::profile::report().into_iter().map(|(k, s, _)| (k.name(), s / steps as f64)).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Time `steps` training steps and `steps` forwards (after one warm-up each) on `side` x `side`
/// random images in batches of `batch_size`; with `profile`, also the time in each kernel.
pub fn bench(
    model: &ModelConfig,
    side: usize,
    batch_size: usize,
    steps: usize,
    threads: usize,
    profile: bool,
) -> crate::Result<BenchResult> {
    use memgen_kernels::profile as kp;
    model.validate(side)?;
    let c = model.in_channels();
    let n = batch_size.max(1);
    let data = NoiseSource::new(0).batch(0, n, 0, &[c, side, side], &Device::Cpu)?;
    let cfg = TrainConfig {
        model: model.clone(),
        schedule: ScheduleConfig::default(),
        steps: steps + 1,
        batch_size: n,
        lr: 1e-4,
        warmup_steps: 0,
        lr_decay: LrDecay::Constant,
        optimizer: AdamWConfig::default(),
        ema_decay: 0.999,
        ema_warmup: true,
        seed: 0,
        checkpoint_every: usize::MAX,
        log_every: usize::MAX,
    };
    let mut trainer = Trainer::new(cfg, data.clone())?;
    let mut train = Vec::new();
    for i in 0..=steps {
        if i == 1 {
            kp::reset();
            kp::enable(profile);
        }
        let t0 = Instant::now();
        trainer.train_step()?;
        if i > 0 {
            train.push(t0.elapsed().as_secs_f64());
        }
    }
    kp::enable(false);
    let train_kernels = kernel_seconds(steps);
    let mut layer_profile = if profile { layer_seconds("train", steps) } else { Vec::new() };
    let t = Tensor::full(500u32, n, &Device::Cpu)?.to_dtype(DType::U32)?;
    let mut fwd = Vec::new();
    for i in 0..=steps {
        if i == 1 {
            kp::reset();
            kp::enable(profile);
        }
        let t0 = Instant::now();
        trainer.model.forward(&data, &t)?.sum_all()?.to_scalar::<f32>()?;
        if i > 0 {
            fwd.push(t0.elapsed().as_secs_f64());
        }
    }
    kp::enable(false);
    if profile {
        layer_profile.extend(layer_seconds("forward", steps));
    }
    let kernel_profile = if profile {
        train_kernels
            .into_iter()
            .zip(kernel_seconds(steps))
            .map(|((kernel, train_step_s), (_, forward_s))| KernelTime { kernel, train_step_s, forward_s })
            .collect()
    } else {
        Vec::new()
    };
    let gflop = model.flops_per_image(side) as f64 / 1e9;
    let (ts, fs) = (median(train), median(fwd));
    Ok(BenchResult {
        parameters: model.parameter_count(),
        forward_gflop_per_image: gflop,
        batch_size: n,
        side,
        threads,
        train_step_s: ts,
        train_images_per_s: n as f64 / ts,
        train_gflop_per_s: 3.0 * gflop * n as f64 / ts,
        forward_s: fs,
        forward_images_per_s: n as f64 / fs,
        forward_gflop_per_s: gflop * n as f64 / fs,
        sampler_steps_per_s: 1.0 / fs,
        kernel_profile,
        layer_profile,
    })
}

//! Throughput of a network on this machine: training steps (forward + backward + AdamW) and
//! sampler steps (one forward in eval mode), on random data, with the achieved GFLOP/s.

use crate::{Error, Result};
use candle::{DType, Device, Tensor};
use memgen_diffusion::optim::AdamWConfig;
use memgen_diffusion::train::{LrDecay, TrainConfig, Trainer};
use memgen_diffusion::unet::UNetConfig;
use memgen_diffusion::{Denoiser, ModelConfig, NoiseSource, ScheduleConfig};
use memgen_kernels::profile as kp;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// One network to time: a config at one image side and batch size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    /// A shipped network's name ([`load_config`]) or a TOML file.
    pub config: String,
    /// Image side in pixels.
    pub side: usize,
    pub batch: usize,
}

/// One benchmark result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub parameters: usize,
    pub forward_gflop_per_image: f64,
    pub batch_size: usize,
    pub side: usize,
    pub threads: usize,
    /// The shares the batch runs as, one per thread ([`memgen_diffusion::shards`]; 1: the whole
    /// batch on all threads, op by op). With more than one, the kernel and layer times of the
    /// profile are thread-seconds, summed over the shares' threads.
    #[serde(default = "one")]
    pub shards: usize,
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_profile: Vec<KernelTime>,
    /// With `profile`: the conv layers by shape, slowest first, in the training step and the forward.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layer_profile: Vec<LayerProfile>,
}

fn one() -> usize {
    1
}

/// One network measurement of the table: the config as named plus its [`BenchResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetResult {
    pub config: String,
    #[serde(flatten)]
    pub result: BenchResult,
}

/// One layer shape of the profile: seconds per step and achieved GFLOP/s of its GEMM work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerProfile {
    /// `"train"` (forward + backward of a training step) or `"forward"`.
    pub phase: String,
    pub kernel: String,
    pub shape: String,
    pub calls_per_step: f64,
    pub seconds_per_step: f64,
    pub gflop_per_s: f64,
}

/// Time spent in one memgen kernel, per training step and per forward (seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelTime {
    pub kernel: String,
    pub train_step_s: f64,
    pub forward_s: f64,
}

/// The networks shipped in models/, by the name [`load_config`] accepts for them (`unet-s` is built in).
const SHIPPED: [(&str, &str); 4] = [
    ("blind-tiny", include_str!("../../../models/blind-tiny.toml")),
    ("unet-demo", include_str!("../../../models/unet-demo.toml")),
    ("unet-tiny", include_str!("../../../models/unet-tiny.toml")),
    ("unet-paper", include_str!("../../../models/unet-paper.toml")),
];

/// A network config by shipped name (`unet-s`, `blind-tiny`, `unet-demo`, `unet-tiny`, `unet-paper`,
/// as in models/) or TOML file path.
pub fn load_config(name: &str) -> Result<ModelConfig> {
    let loaded = if name == "unet-s" {
        Ok(ModelConfig::Unet(UNetConfig::default()))
    } else if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) {
        ModelConfig::from_toml(text)
    } else {
        ModelConfig::load(Path::new(name))
    };
    loaded.map_err(|e| Error::Config { config: name.to_string(), source: Box::new(e) })
}

/// Time the network of `spec` ([`bench`]), `steps` timed repetitions on `threads` threads.
pub fn bench_net(spec: &NetSpec, steps: usize, threads: usize, profile: bool) -> Result<NetResult> {
    let NetSpec { config, side, batch } = spec;
    let cfg = load_config(config)?;
    let result = bench(&cfg, *side, *batch, steps.max(1), threads, profile).map_err(|e| Error::Net {
        config: config.clone(),
        side: *side,
        batch: *batch,
        source: Box::new(e),
    })?;
    Ok(NetResult { config: config.clone(), result })
}

/// The per-shape totals of the timed section, per step.
fn layer_seconds(phase: &str, steps: usize) -> Vec<LayerProfile> {
    let per = steps.max(1) as f64;
    kp::layers()
        .into_iter()
        .map(|l| LayerProfile {
            phase: phase.to_string(),
            kernel: l.kernel.name().to_string(),
            shape: l.shape,
            calls_per_step: l.calls as f64 / per,
            seconds_per_step: l.seconds / per,
            gflop_per_s: if l.seconds > 0.0 { l.flops / l.seconds / 1e9 } else { 0.0 },
        })
        .collect()
}

/// Per-kernel seconds of the timed section: totals divided by `steps`.
fn kernel_seconds(steps: usize) -> Vec<(&'static str, f64)> {
    kp::report().into_iter().map(|(k, s, _)| (k.name(), s / steps as f64)).collect()
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
) -> memgen_diffusion::Result<BenchResult> {
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
            .map(|((kernel, train_step_s), (_, forward_s))| KernelTime {
                kernel: kernel.to_string(),
                train_step_s,
                forward_s,
            })
            .collect()
    } else {
        Vec::new()
    };
    let gflop = model.flops_per_image(side) as f64 / 1e9;
    let (ts, fs) = (median(train), median(fwd));
    // Time-conditioned UNets split the batch over the threads (the blind engine splits it too, but
    // its passes are not timed per kernel).
    let shards = match model {
        ModelConfig::Unet(_) => memgen_diffusion::shards::shares(n, threads).len(),
        ModelConfig::Blind(_) => 1,
    };
    Ok(BenchResult {
        parameters: model.parameter_count(),
        forward_gflop_per_image: gflop,
        batch_size: n,
        side,
        threads,
        shards,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_names_load_and_unknown_files_name_the_network() {
        for name in ["unet-s", "blind-tiny", "unet-demo", "unet-tiny", "unet-paper"] {
            load_config(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let err = load_config("no/such/net.toml").unwrap_err();
        assert!(err.to_string().contains("network no/such/net.toml"), "{err}");
    }

    #[test]
    fn a_tiny_network_is_timed() {
        let spec = NetSpec { config: "unet-tiny".into(), side: 8, batch: 2 };
        let r = bench_net(&spec, 1, 1, true).unwrap();
        assert_eq!((r.config.as_str(), r.result.side, r.result.batch_size), ("unet-tiny", 8, 2));
        assert!(r.result.train_images_per_s > 0.0 && r.result.forward_images_per_s > 0.0);
        assert!(!r.result.kernel_profile.is_empty());
    }
}

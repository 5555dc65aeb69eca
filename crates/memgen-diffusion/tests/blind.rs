//! The blind, bias-free UNet (blind.rs) and its stochastic-ascent sampler (sampler/blind.rs).

mod common;

use candle::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use common::{build, randomise_norms, tensor, uniform, values};
use memgen_diffusion::blind::{trainable_vars, BfBatchNorm, BlindConfig, BlindUNet, GAIN_INIT_STD};
use memgen_diffusion::init::seeded_var_builder;
use memgen_diffusion::sampler::blind::{sample_blind, BlindSample, BlindSamplerConfig};
use memgen_diffusion::{Denoiser, NoiseSource};
use std::cell::RefCell;
use std::path::PathBuf;

type R<T = ()> = candle::Result<T>;

fn var(vm: &VarMap, name: &str) -> Var {
    vm.data().lock().unwrap().get(name).unwrap_or_else(|| panic!("no variable {name}")).clone()
}

fn model_toml(name: &str) -> (String, BlindConfig) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(table.remove("arch").and_then(|v| v.as_str().map(String::from)).as_deref(), Some("blind"));
    let cfg: BlindConfig = toml::Value::Table(table).try_into().unwrap();
    (text, cfg)
}

#[test]
fn config_files_are_the_named_presets() {
    let (text, tiny) = model_toml("blind-tiny.toml");
    assert!(text.starts_with("arch = \"blind\"\n"), "arch must be the first key");
    assert_eq!(tiny, BlindConfig::tiny());
    assert_eq!((tiny.base_channels, tiny.num_blocks), (16, 2));
    let (text, paper) = model_toml("unet-paper.toml");
    assert!(text.starts_with("arch = \"blind\"\n"), "arch must be the first key");
    assert_eq!(paper, BlindConfig::default());
    assert_eq!(paper, BlindConfig::paper());
    let d = BlindConfig::default();
    assert_eq!(
        (d.in_channels, d.base_channels, d.num_blocks, d.convs_per_block, d.bn_eps, d.bn_momentum),
        (1, 64, 3, 2, 1e-5, 0.1)
    );
    // Missing keys take the defaults, unknown keys are errors, JSON round-trips.
    let partial: BlindConfig = toml::from_str("base_channels = 16\nnum_blocks = 2").unwrap();
    assert_eq!(partial, BlindConfig::tiny());
    assert!(toml::from_str::<BlindConfig>("base_channel = 16").is_err());
    let json = serde_json::to_string(&tiny).unwrap();
    assert_eq!(serde_json::from_str::<BlindConfig>(&json).unwrap(), tiny);
    // Sides must be multiples of 2^num_blocks.
    assert!(tiny.validate(16).is_ok() && tiny.validate(12).is_ok());
    assert!(tiny.validate(10).is_err() && tiny.validate(0).is_err());
    assert!(paper.validate(80).is_ok() && paper.validate(20).is_err());
    assert!(BlindConfig { num_blocks: 0, ..tiny.clone() }.validate(16).is_err());
    assert!(BlindConfig { num_blocks: 40, ..tiny.clone() }.validate(16).is_err());
    assert!(BlindConfig { bn_momentum: 1.5, ..tiny }.validate(16).is_err());
}

#[test]
fn parameter_counts_match_the_varmap_and_the_torch_reference() {
    // shared/bench/torch_blind_unet.py: UNet(k=16, blocks=2) has 114,496 parameters and
    // UNet(k=64, blocks=3) 7,659,264 (its module construction, counted by hand).
    for (cfg, torch_count, bn_channels) in [
        (BlindConfig::tiny(), 114_496, 16 + 32 + 32 + 64 + 64 + 32 + 32 + 16),
        (BlindConfig::paper(), 7_659_264, 64 + 2 * 128 + 2 * 256 + 2 * 512 + 2 * 256 + 2 * 128 + 64),
    ] {
        let (vm, _) = build(&cfg, 0, DType::F32);
        let trainable: usize = trainable_vars(&vm).iter().map(|v| v.elem_count()).sum();
        let all: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(cfg.parameter_count(), trainable, "{cfg:?}");
        assert_eq!(trainable, torch_count, "{cfg:?}");
        assert_eq!(all - trainable, bn_channels, "running stds: one per normalised channel");
        let names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
        assert!(names
            .iter()
            .all(|n| n.ends_with(".weight") || n.ends_with(".gain") || n.ends_with(".running_sd")));
        assert!(!names.iter().any(|n| n.contains("bias")));
    }
    // 2 x multiply-adds, worked out layer by layer (see the model files' comments).
    // 16x16, base 16: 3x3 convs 5,382,144 MACs + transposed convs 262,144 MACs.
    assert_eq!(BlindConfig::tiny().flops_per_image(16), 2 * 5_644_288);
    assert_eq!(BlindConfig::paper().flops_per_image(80), 6_699_417_600);
}

#[test]
fn forward_shape_dtype_and_input_checks() -> R {
    let (_, net) = build(&BlindConfig::tiny(), 1, DType::F32);
    let y = tensor(1, &[3, 1, 16, 16], 0.0, 1.0, DType::F32);
    for train in [false, true] {
        let f = net.forward_t(&y, train)?;
        assert_eq!(f.dims(), &[3, 1, 16, 16]);
        assert_eq!(f.dtype(), DType::F32);
        assert!(values(&f).iter().all(|v| v.is_finite()));
    }
    // The residual takes both signs (no ReLU or other clipping after the last conv).
    let (vm2, net2) = build(&BlindConfig::tiny(), 1, DType::F32);
    randomise_norms(&vm2, 10);
    let f = values(&net2.forward_t(&y, false)?);
    assert!(f.iter().any(|&v| v < 0.0) && f.iter().any(|&v| v > 0.0));
    // Non-square sides that divide by 4 work; others and wrong channels fail with an error.
    assert_eq!(
        net.forward_t(&tensor(2, &[2, 1, 8, 12], 0.0, 1.0, DType::F32), false)?.dims(),
        &[2, 1, 8, 12]
    );
    assert!(net.forward_t(&tensor(2, &[2, 1, 10, 16], 0.0, 1.0, DType::F32), false).is_err());
    assert!(net.forward_t(&tensor(2, &[2, 2, 16, 16], 0.0, 1.0, DType::F32), false).is_err());
    // The Denoiser impl is the eval-mode residual and ignores t; denoise = y - f(y).
    let t = Tensor::new(&[5u32, 900, 0], &Device::Cpu)?;
    let f = net.forward_t(&y, false)?;
    assert_eq!(values(&Denoiser::forward(&net, &y, &t)?), values(&f));
    assert_eq!(values(&net.denoise(&y)?), values(&(&y - &f)?));
    Ok(())
}

#[test]
fn initialisation_is_seeded_and_follows_the_paper() -> R {
    let cfg = BlindConfig::paper();
    let (vm, _) = build(&cfg, 7, DType::F32);
    let (vm2, _) = build(&cfg, 7, DType::F32);
    let (vm3, _) = build(&cfg, 8, DType::F32);
    let w = values(&var(&vm, "mid.1.weight"));
    assert_eq!(w, values(&var(&vm2, "mid.1.weight")));
    assert_ne!(w, values(&var(&vm3, "mid.1.weight")));
    let std = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
    // Kaiming normal, fan in: conv (512, 512, 3, 3) -> sqrt(2 / 4608).
    assert!((std(&w) / (2.0f64 / 4608.0).sqrt() - 1.0).abs() < 0.01, "conv std {}", std(&w));
    // Transposed conv (512, 256, 2, 2): fan_in = 256 * 4, as PyTorch computes it.
    let u = values(&var(&vm, "up.2.weight"));
    assert_eq!(var(&vm, "up.2.weight").dims(), &[512, 256, 2, 2]);
    assert!((std(&u) / (2.0f64 / 1024.0).sqrt() - 1.0).abs() < 0.01, "transposed conv std {}", std(&u));
    // Gains: N(0, (2/9/64)^2) clamped to ±0.025; running stds start at 1.
    let data = vm.data().lock().unwrap();
    let gains: Vec<f64> =
        data.iter().filter(|(k, _)| k.ends_with(".gain")).flat_map(|(_, v)| values(v.as_tensor())).collect();
    assert_eq!(gains.len(), 2688);
    assert!(gains.iter().all(|g| g.abs() <= 0.025));
    assert!((std(&gains) / GAIN_INIT_STD - 1.0).abs() < 0.06, "gain std {}", std(&gains));
    assert!(data
        .iter()
        .filter(|(k, _)| k.ends_with(".running_sd"))
        .all(|(_, v)| values(v.as_tensor()).iter().all(|&s| s == 1.0)));
    drop(data);
    // An existing (e.g. trained, loaded) gain is used as it is, not clamped again.
    let tiny = BlindConfig::tiny();
    let (vm, _) = build(&tiny, 1, DType::F32);
    var(&vm, "mid.0.bn.gain").set(&Tensor::full(0.5f32, 64, &Device::Cpu)?)?;
    let _again = BlindUNet::new(&tiny, seeded_var_builder(&vm, 1, DType::F32, &Device::Cpu))?;
    assert!(values(&var(&vm, "mid.0.bn.gain")).iter().all(|&g| g == 0.5));
    Ok(())
}

#[test]
fn eval_mode_is_positively_homogeneous() -> R {
    let (vm, net) = build(&BlindConfig::tiny(), 3, DType::F32);
    randomise_norms(&vm, 30);
    let y = tensor(4, &[4, 1, 16, 16], 0.0, 1.0, DType::F32);
    let f = values(&net.forward_t(&y, false)?);
    let scale = f.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(scale > 1e-3, "the residual must not be trivially zero");
    for a in [0.1, 0.73, 4.0] {
        let fa = values(&net.forward_t(&(&y * a)?, false)?);
        let err = fa.iter().zip(&f).fold(0f64, |m, (x, y)| m.max((x - a * y).abs()));
        assert!(err <= 1e-5 * a * scale, "a = {a}: max |f(ay) - a f(y)| = {err}, scale {}", a * scale);
    }
    // Training mode normalises by batch statistics and is not homogeneous: the test above can fail.
    let f2 = values(&net.forward_t(&(&y * 4.0)?, true)?);
    let f1 = values(&net.forward_t(&y, true)?);
    let err = f2.iter().zip(&f1).fold(0f64, |m, (x, y)| m.max((x - 4.0 * y).abs()));
    assert!(err > 1e-2 * scale, "train mode unexpectedly homogeneous ({err})");
    Ok(())
}

#[test]
fn batch_norm_by_hand() -> R {
    let vm = VarMap::new();
    let (eps, m) = (1e-5, 0.1);
    let bn = BfBatchNorm::new(2, eps, m, seeded_var_builder(&vm, 0, DType::F64, &Device::Cpu).pp("bn"))?;
    let gain = [2.0, -0.5];
    var(&vm, "bn.gain").set(&Tensor::new(&gain, &Device::Cpu)?)?;
    // x: batch 2, channels 2, 1x2 pixels. Channel 0 holds {1, 2, 3, 6}, channel 1 {-1, -1, 4, 0}.
    let xs = [1.0, 2.0, -1.0, -1.0, 3.0, 6.0, 4.0, 0.0];
    let x = Tensor::from_vec(xs.to_vec(), (2, 2, 1, 2), &Device::Cpu)?;
    let ch = |c: usize| [xs[2 * c], xs[2 * c + 1], xs[4 + 2 * c], xs[4 + 2 * c + 1]];
    // Population variance about the batch mean: channel 0 mean 3, var (4+1+0+9)/4 = 3.5;
    // channel 1 mean 0.5, var (2.25+2.25+12.25+0.25)/4 = 4.25.
    let var_by_hand = [3.5, 4.25];
    for (c, want) in var_by_hand.iter().enumerate() {
        let v = ch(c);
        let mean = v.iter().sum::<f64>() / 4.0;
        assert!((v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0 - want).abs() < 1e-12);
    }
    let sd = [(3.5f64 + eps).sqrt(), (4.25f64 + eps).sqrt()];
    let expect = |sd: [f64; 2]| -> Vec<f64> {
        (0..8).map(|i| xs[i] / sd[(i / 2) % 2] * gain[(i / 2) % 2]).collect() // no mean subtracted
    };
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
    let y = values(&bn.forward_t(&x, true)?);
    assert!(close(&y, &expect(sd)), "{y:?} vs {:?}", expect(sd));
    // running = 0.9 * 1 + 0.1 * sd, written into the VarMap (so it is checkpointed).
    let r1 = [0.9 + 0.1 * sd[0], 0.9 + 0.1 * sd[1]];
    assert!(close(&values(&var(&vm, "bn.running_sd")), &r1));
    assert!(close(&values(&bn.running_sd()?), &r1));
    // A second step on 2x the input: batch sd doubles (up to eps).
    let x2 = (&x * 2.0)?;
    bn.forward_t(&x2, true)?;
    let sd2 = [(14.0f64 + eps).sqrt(), (17.0f64 + eps).sqrt()];
    let r2 = [0.9 * r1[0] + 0.1 * sd2[0], 0.9 * r1[1] + 0.1 * sd2[1]];
    assert!(close(&values(&var(&vm, "bn.running_sd")), &r2));
    // Evaluation divides by the running std and leaves it alone.
    let y = values(&bn.forward_t(&x, false)?);
    assert!(close(&y, &expect(r2)), "{y:?} vs {:?}", expect(r2));
    assert!(close(&values(&var(&vm, "bn.running_sd")), &r2));
    Ok(())
}

#[test]
fn running_stds_are_checkpointed_and_never_trained() -> R {
    let cfg = BlindConfig::tiny();
    let (vm, net) = build(&cfg, 5, DType::F32);
    let y = tensor(5, &[8, 1, 16, 16], 0.0, 1.0, DType::F32);
    let before = values(&net.forward_t(&y, false)?);
    let loss = net.forward_t(&y, true)?.sqr()?.sum_all()?;
    let grads = loss.backward()?;
    let data = vm.data().lock().unwrap();
    for (name, v) in data.iter() {
        if name.ends_with(".running_sd") {
            assert!(grads.get(v).is_none(), "{name} must not receive a gradient");
            assert!(values(v.as_tensor()).iter().all(|&s| s != 1.0), "{name} was not updated");
        } else {
            assert!(grads.get(v).is_some(), "{name} has no gradient");
        }
    }
    drop(data);
    let after = values(&net.forward_t(&y, false)?);
    assert_ne!(before, after, "eval mode must use the updated running stds");
    // Save, rebuild from another seed, load: identical eval outputs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blind.safetensors");
    vm.save(&path)?;
    let (mut vm2, net2) = build(&cfg, 99, DType::F32);
    assert_ne!(values(&net2.forward_t(&y, false)?), after);
    vm2.load(&path)?;
    assert_eq!(values(&net2.forward_t(&y, false)?), after);
    Ok(())
}

/// Checks d(sum(w * f(y)))/d(param) against central differences in f64, at a few entries of each
/// listed parameter and of the input.
fn gradient_check(train: bool) -> R {
    let cfg = BlindConfig { base_channels: 4, num_blocks: 2, ..BlindConfig::default() };
    let (vm, net) = build(&cfg, 11, DType::F64);
    randomise_norms(&vm, 40);
    let y = Var::from_tensor(&tensor(12, &[3, 1, 8, 8], 0.0, 1.0, DType::F64))?;
    let w = tensor(13, &[3, 1, 8, 8], -1.0, 1.0, DType::F64);
    let loss = || -> R<f64> { net.forward_t(y.as_tensor(), train)?.mul(&w)?.sum_all()?.to_scalar::<f64>() };
    let grads = net.forward_t(y.as_tensor(), train)?.mul(&w)?.sum_all()?.backward()?;
    let mut checked = 0;
    let mut targets: Vec<(String, Var)> = [
        "enc.0.0.weight", // the first conv (no batch norm)
        "enc.1.0.weight",
        "enc.0.1.bn.gain",
        "mid.1.bn.gain",
        "dec.1.0.bn.gain",
        "up.1.weight", // transposed convs
        "up.0.weight",
        "dec.0.1.weight", // the last conv (conv only)
    ]
    .iter()
    .map(|n| (n.to_string(), var(&vm, n)))
    .collect();
    targets.push(("input".into(), y.clone()));
    for (name, v) in &targets {
        let g = values(grads.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}")));
        let base = values(v.as_tensor());
        let picks = uniform(checked as u64 + 50, 4, 0.0, base.len() as f64);
        for p in picks {
            let i = p as usize;
            let h = 1e-6;
            let mut plus = base.clone();
            plus[i] += h;
            let mut minus = base.clone();
            minus[i] -= h;
            v.set(&Tensor::from_vec(plus, v.dims(), &Device::Cpu)?)?;
            let lp = loss()?;
            v.set(&Tensor::from_vec(minus, v.dims(), &Device::Cpu)?)?;
            let lm = loss()?;
            v.set(&Tensor::from_vec(base.clone(), v.dims(), &Device::Cpu)?)?;
            let fd = (lp - lm) / (2.0 * h);
            let tol = 1e-6 * (1.0 + fd.abs().max(g[i].abs()));
            assert!(
                (fd - g[i]).abs() <= tol,
                "{name}[{i}] (train {train}): backprop {} vs finite difference {fd}",
                g[i]
            );
            checked += 1;
        }
        assert!(g.iter().any(|&x| x.abs() > 1e-8), "{name}: all-zero gradient");
    }
    assert_eq!(checked, 36);
    Ok(())
}

#[test]
fn gradients_match_finite_differences_in_train_mode() -> R {
    gradient_check(true)
}

#[test]
fn gradients_match_finite_differences_in_eval_mode() -> R {
    gradient_check(false)
}

// ---------------------------------------------------------------------------------------------
// The sampler, driven by analytic blind denoisers.

const DIMS: [usize; 3] = [1, 16, 16];
const PIXELS: usize = 256;

/// The optimal denoiser of a point mass at x*: every y is x* plus noise, so f(y) = y - x*.
fn point_mass(target: &Tensor) -> impl Fn(&Tensor, &Tensor) -> R<Tensor> + '_ {
    move |y: &Tensor, _t: &Tensor| y.broadcast_sub(target)
}

/// A blind Bayes denoiser for Gaussian data N(mu, s² I): the posterior mean for noise level σ is
/// mu + s²/(s² + σ²) (y − mu), so the residual is σ²/(s² + σ²) (y − mu); σ² is not given, and is
/// estimated per image from ‖y − mu‖²/N = s² + σ² (James–Stein): f(y) = (1 − s² N / ‖y − mu‖²)₊ (y − mu).
fn gaussian_blind(mu: f64, s: f64) -> impl Fn(&Tensor, &Tensor) -> R<Tensor> {
    move |y: &Tensor, _t: &Tensor| {
        let e = (y - mu)?;
        let ss = e.sqr()?.sum_keepdim((1, 2, 3))?;
        let factor = (ss.recip()? * (-s * s * PIXELS as f64))?.affine(1.0, 1.0)?.relu()?;
        e.broadcast_mul(&factor)
    }
}

fn same(a: &BlindSample, b: &BlindSample) -> bool {
    values(&a.images) == values(&b.images) && a.steps == b.steps && a.converged == b.converged
}

#[test]
fn point_mass_sampler_converges_to_the_point_at_the_predicted_rate() -> R {
    const DIMS: [usize; 3] = [1, 32, 32];
    const PIXELS: usize = 1024;
    let target = tensor(20, &DIMS, 0.0, 1.0, DType::F32);
    let x_star = values(&target);
    let f = point_mass(&target);
    // Record σ = ‖y − x*‖ / sqrt(N) of every loop evaluation (batch of one).
    let trace = RefCell::new(Vec::new());
    let recording = |y: &Tensor, t: &Tensor| -> R<Tensor> {
        assert_eq!((t.dtype(), t.dims()), (DType::U32, y.dims()[..1].as_ref()));
        assert!(t.to_vec1::<u32>()?.iter().all(|&v| v == 0));
        let d = f(y, t)?;
        trace.borrow_mut().push((d.sqr()?.sum_all()?.to_scalar::<f32>()? as f64 / PIXELS as f64).sqrt());
        Ok(d)
    };
    let cfg = BlindSamplerConfig::default();
    let out = sample_blind(&recording, &cfg, &NoiseSource::new(3), 0, 1, &DIMS, &Device::Cpu)?;
    let trace = trace.into_inner();
    let steps = out.steps[0];
    assert!(out.converged[0]);
    assert_eq!(trace.len(), steps + 1, "one evaluation per step plus the final one");
    // Output y - f(y) = x*.
    let img = values(&out.images);
    assert_eq!(out.images.dims(), &[1, 1, 32, 32]);
    assert!(img.iter().zip(&x_star).all(|(a, b)| (a - b).abs() < 1e-6));
    // Stopped at the first σ ≤ σ_L.
    assert!(trace[steps - 1] <= cfg.sigma_l && trace[..steps - 1].iter().all(|&s| s > cfg.sigma_l));
    assert!((out.sigmas[0] / trace[steps - 1] - 1.0).abs() < 1e-6);
    // The error e = y − x* evolves as e ← (1 − h) e + γ z with γ² = σ²((1 − βh)² − (1 − h)²), so
    // E‖e‖² shrinks by exactly (1 − βh_t)² at step t. Per step, ln σ_{t+1} − ln σ_t − ln(1 − βh_t)
    // is noise of sd ≈ sqrt(1/2N) ≈ 0.02 and bias ≈ −1/2N ≈ −5e-4: its mean over the run is ≈ 0
    // (standard error ≈ 1e-3), while β h_t itself averages ≈ 0.008. A sampler that re-injected all
    // the removed noise (β = 0) or twice too little would be off by that much.
    let incr: Vec<f64> = (1..steps)
        .map(|t| trace[t].ln() - trace[t - 1].ln() - (1.0 - cfg.beta * cfg.step_size(t)).ln())
        .collect();
    let mean = incr.iter().sum::<f64>() / incr.len() as f64;
    let contraction = (1..steps).map(|t| cfg.beta * cfg.step_size(t)).sum::<f64>() / incr.len() as f64;
    assert!(mean.abs() < 0.003, "mean deviation from the predicted rate {mean}");
    assert!(contraction > 0.006, "{contraction}");
    assert!(trace[steps - 1] < trace[0] / 50.0);
    // ≈ 1 → 0.01 needs Σ β h_t ≈ ln 100 (h rising from 0.01 towards 1): several hundred steps.
    assert!((500..1000).contains(&steps), "{steps} steps");
    // Deterministic given the seed; another seed takes another path.
    let again = sample_blind(&f, &cfg, &NoiseSource::new(3), 0, 1, &DIMS, &Device::Cpu)?;
    assert_eq!(again.steps, out.steps);
    let other = sample_blind(&f, &cfg, &NoiseSource::new(4), 0, 1, &DIMS, &Device::Cpu)?;
    assert_ne!(other.steps, out.steps);
    Ok(())
}

#[test]
fn gaussian_sampler_draws_images_of_the_right_spread() -> R {
    let (mu, s) = (0.5, 0.2);
    let f = gaussian_blind(mu, s);
    let cfg = BlindSamplerConfig { beta: 0.1, ..BlindSamplerConfig::default() };
    let n = 8;
    let out = sample_blind(&f, &cfg, &NoiseSource::new(9), 0, n, &DIMS, &Device::Cpu)?;
    assert!(out.converged.iter().all(|&c| c), "{:?}", out.converged);
    assert!(out.sigmas.iter().all(|&s| s <= cfg.sigma_l));
    // β = 0.1 needs Σ h_t ≈ ln(σ_1 / σ_L)/0.1 ≈ 40: tens of steps, not one and not thousands.
    assert!(out.steps.iter().all(|&t| (20..200).contains(&t)), "{:?}", out.steps);
    let img = values(&out.images);
    let mut firsts = Vec::new();
    for k in 0..n {
        let x = &img[k * PIXELS..(k + 1) * PIXELS];
        let mean = x.iter().sum::<f64>() / PIXELS as f64;
        let sd = (x.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / PIXELS as f64).sqrt();
        // A draw from N(mu, s² I): its spread about mu is s (y − f(y) lies on that sphere once σ̂ → 0).
        assert!((sd / s - 1.0).abs() < 0.02, "sample {k}: spread {sd}");
        assert!((mean - mu).abs() < 4.0 * s / (PIXELS as f64).sqrt(), "sample {k}: mean {mean}");
        firsts.push(x[0]);
    }
    firsts.dedup();
    assert_eq!(firsts.len(), n, "samples must differ");
    Ok(())
}

#[test]
fn sampler_gives_up_on_divergence_and_step_limit() -> R {
    let noise = NoiseSource::new(1);
    // Residual 3(y - 0.5): σ ≈ 3 > 2 at the first step.
    let exploding = |y: &Tensor, _t: &Tensor| (y - 0.5)? * 3.0;
    let out = sample_blind(&exploding, &BlindSamplerConfig::default(), &noise, 0, 2, &DIMS, &Device::Cpu)?;
    assert_eq!((out.steps, out.converged), (vec![1, 1], vec![false, false]));
    assert!(out.sigmas.iter().all(|&s| s > 2.0));
    let target = tensor(21, &DIMS, 0.0, 1.0, DType::F32);
    let cfg = BlindSamplerConfig { max_steps: 7, ..BlindSamplerConfig::default() };
    let out = sample_blind(&point_mass(&target), &cfg, &noise, 0, 2, &DIMS, &Device::Cpu)?;
    assert_eq!((out.steps, out.converged), (vec![7, 7], vec![false, false]));
    assert!(out.sigmas.iter().all(|&s| s > 0.5));
    assert!(BlindSamplerConfig { h0: 0.0, ..BlindSamplerConfig::default() }.validate().is_err());
    assert!(BlindSamplerConfig { sigma_l: 0.0, ..BlindSamplerConfig::default() }.validate().is_err());
    Ok(())
}

#[test]
fn models_share_noise_and_batches_do_not_matter() -> R {
    let noise = NoiseSource::new(17);
    // Two different models see bit-identical y0 = 0.5 + z_0 for each sample.
    let first_inputs = |f: &dyn Fn(&Tensor, &Tensor) -> R<Tensor>| -> R<Vec<f64>> {
        let seen = RefCell::new(None);
        let rec = |y: &Tensor, t: &Tensor| -> R<Tensor> {
            seen.borrow_mut().get_or_insert_with(|| values(y));
            f(y, t)
        };
        let cfg = BlindSamplerConfig { max_steps: 3, ..BlindSamplerConfig::default() };
        sample_blind(&rec, &cfg, &noise, 5, 3, &DIMS, &Device::Cpu)?;
        Ok(seen.into_inner().unwrap())
    };
    let target = tensor(22, &DIMS, 0.0, 1.0, DType::F32);
    let pm = point_mass(&target);
    let gb = gaussian_blind(0.5, 0.2);
    let y0 = first_inputs(&pm)?;
    assert_eq!(y0, first_inputs(&gb)?);
    let expect: Vec<f64> =
        (5..8).flat_map(|k| noise.draw(k, 0, PIXELS)).map(|z| (0.5 + z as f64) as f32 as f64).collect();
    assert_eq!(y0, expect);
    // Samples 0..4 in one batch or two give identical results, although samples stop at different t.
    let cfg = BlindSamplerConfig { beta: 0.1, ..BlindSamplerConfig::default() };
    for f in [&pm as &dyn Denoiser, &gb] {
        let whole = sample_blind(f, &cfg, &noise, 0, 4, &DIMS, &Device::Cpu)?;
        let a = sample_blind(f, &cfg, &noise, 0, 2, &DIMS, &Device::Cpu)?;
        let b = sample_blind(f, &cfg, &noise, 2, 2, &DIMS, &Device::Cpu)?;
        let parts = BlindSample {
            images: Tensor::cat(&[&a.images, &b.images], 0)?,
            steps: [a.steps, b.steps].concat(),
            converged: [a.converged, b.converged].concat(),
            sigmas: [a.sigmas, b.sigmas].concat(),
        };
        assert!(same(&whole, &parts));
        let mut distinct = whole.steps.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 1, "stopping times should differ: {:?}", whole.steps);
    }
    Ok(())
}

#[test]
fn sampler_runs_the_blind_unet() -> R {
    let (vm, net) = build(&BlindConfig::tiny(), 2, DType::F32);
    randomise_norms(&vm, 60);
    let cfg = BlindSamplerConfig { max_steps: 4, ..BlindSamplerConfig::default() };
    let noise = NoiseSource::new(5);
    let whole = sample_blind(&net, &cfg, &noise, 0, 3, &DIMS, &Device::Cpu)?;
    assert_eq!(whole.images.dims(), &[3, 1, 16, 16]);
    assert!(values(&whole.images).iter().all(|v| v.is_finite()));
    let a = sample_blind(&net, &cfg, &noise, 0, 1, &DIMS, &Device::Cpu)?;
    let b = sample_blind(&net, &cfg, &noise, 1, 2, &DIMS, &Device::Cpu)?;
    let split = [values(&a.images), values(&b.images)].concat();
    let err = values(&whole.images).iter().zip(&split).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(err < 1e-5, "batch composition changed a sample by {err}");
    assert_eq!(whole.steps, [a.steps, b.steps].concat());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Timing (ignored by default): cargo test --release -p memgen-diffusion --test blind -- --ignored --nocapture

#[test]
#[ignore]
fn bench_blind_tiny_16x16_batch_128() -> R {
    use candle_nn::Optimizer;
    let cfg = BlindConfig::tiny();
    let (vm, net) = build(&cfg, 0, DType::F32);
    let batch = 128;
    let x = tensor(1, &[batch, 1, 16, 16], 0.0, 1.0, DType::F32);
    let noise = tensor(2, &[batch, 1, 16, 16], -0.5, 0.5, DType::F32);
    let y = (&x + &noise)?;
    let time = |label: &str, reps: usize, f: &mut dyn FnMut() -> R| -> R {
        for _ in 0..10 {
            f()?; // warm-up: the allocator and page tables settle
        }
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            f()?;
        }
        let s = t0.elapsed().as_secs_f64() / reps as f64;
        println!("{label}: {:.2} ms, {:.0} img/s", s * 1e3, batch as f64 / s);
        Ok(())
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    println!("blind-tiny 16x16 batch {batch}, RAYON_NUM_THREADS={threads}, {} params", cfg.parameter_count());
    time("forward (eval)", 50, &mut || net.forward_t(&y, false).map(|_| ()))?;
    time("forward (train)", 50, &mut || net.forward_t(&y, true).map(|_| ()))?;
    let loss = || -> R<Tensor> { net.forward_t(&y, true)?.sub(&noise)?.sqr()?.sum_all()? / batch as f64 };
    time("forward + backward", 20, &mut || loss()?.backward().map(|_| ()))?;
    let params = candle_nn::ParamsAdamW { lr: 1e-3, weight_decay: 0.0, ..Default::default() };
    let mut opt = candle_nn::AdamW::new(trainable_vars(&vm), params)?;
    time("train step (fwd + bwd + Adam)", 20, &mut || opt.backward_step(&loss()?))?;
    Ok(())
}

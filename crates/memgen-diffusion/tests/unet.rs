//! The DDPM UNet: parameter and FLOP counts against DESIGN.md, shapes, configs, the upsampling
//! workaround, finite-difference gradients, determinism and time conditioning.

use candle::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use memgen_diffusion::blocks::upsample_nearest2x;
use memgen_diffusion::embeddings::timestep_embedding;
use memgen_diffusion::init::seeded_var_builder;
use memgen_diffusion::noise::keyed_rng;
use memgen_diffusion::unet::{UNet, UNetConfig};
use memgen_diffusion::Denoiser;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

const DEV: Device = Device::Cpu;

fn build(cfg: &UNetConfig, seed: u64, dtype: DType) -> (VarMap, UNet) {
    let vm = VarMap::new();
    let net = UNet::new(cfg, seeded_var_builder(&vm, seed, dtype, &DEV)).unwrap();
    (vm, net)
}

/// A seeded standard-normal tensor (never `Tensor::randn`).
fn randn(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    let mut rng = keyed_rng([0x7465_7374, seed, 0, 0]);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    Tensor::from_vec(v, shape, &DEV).unwrap().to_dtype(dtype).unwrap()
}

fn ts(v: &[u32]) -> Tensor {
    Tensor::new(v, &DEV).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn varmap_elements(vm: &VarMap) -> usize {
    vm.all_vars().iter().map(|v| v.elem_count()).sum()
}

fn attn_tiny() -> UNetConfig {
    UNetConfig { attention_levels: vec![1], ..UNetConfig::tiny() }
}

#[test]
fn unet_s_has_design_parameter_count() {
    let cfg = UNetConfig::default();
    assert_eq!(cfg.parameter_count(), 3_541_569);
    let (vm, _) = build(&cfg, 0, DType::F32);
    assert_eq!(varmap_elements(&vm), 3_541_569);
}

#[test]
fn analytic_parameter_count_matches_built_variables() {
    for cfg in [
        UNetConfig::tiny(),
        attn_tiny(),
        UNetConfig { attention_levels: vec![0, 2], num_res_blocks: 1, ..Default::default() },
        UNetConfig { in_channels: 3, out_channels: 6, channel_mult: vec![1, 2, 2, 4], ..UNetConfig::tiny() },
    ] {
        let (vm, _) = build(&cfg, 1, DType::F32);
        assert_eq!(cfg.parameter_count(), varmap_elements(&vm), "{cfg:?}");
    }
    assert!(UNetConfig::tiny().parameter_count() < 100_000);
    assert_eq!(UNetConfig::tiny().parameter_count(), 40_489);
}

#[test]
fn checkpoint_keys_are_readable() {
    let (vm, _) = build(&UNetConfig::default(), 0, DType::F32);
    let data = vm.data().lock().unwrap();
    let shape = |k: &str| data.get(k).unwrap_or_else(|| panic!("missing {k}")).shape().dims().to_vec();
    assert_eq!(shape("time_embed.0.weight"), [128, 32]);
    assert_eq!(shape("time_embed.2.bias"), [128]);
    assert_eq!(shape("conv_in.weight"), [32, 1, 3, 3]);
    assert_eq!(shape("down.0.res.1.conv1.weight"), [32, 32, 3, 3]);
    assert_eq!(shape("down.1.res.0.skip.weight"), [64, 32, 1, 1]);
    assert_eq!(shape("down.1.downsample.weight"), [64, 64, 3, 3]);
    assert_eq!(shape("mid.res.1.temb.weight"), [128, 128]);
    // Up level 2 (deepest, runs first): 128 + 128 -> 128, then 128 + 64 (the level-1 downsample) -> 128.
    assert_eq!(shape("up.2.res.0.skip.weight"), [128, 256, 1, 1]);
    assert_eq!(shape("up.2.res.2.norm1.weight"), [192]);
    assert_eq!(shape("up.1.upsample.weight"), [64, 64, 3, 3]);
    // Up level 0 ends with 32 + 32 (the conv_in output) -> 32.
    assert_eq!(shape("up.0.res.2.conv1.weight"), [32, 64, 3, 3]);
    assert_eq!(shape("out.norm.weight"), [32]);
    assert_eq!(shape("out.conv.weight"), [1, 32, 3, 3]);
    for absent in [
        "down.2.downsample.weight",
        "up.0.upsample.weight",
        "down.0.res.0.skip.weight",
        "up.0.res.3.conv1.weight",
    ] {
        assert!(!data.contains_key(absent), "{absent}");
    }
    assert!(!data.keys().any(|k| k.contains("attn")));
}

#[test]
fn unet_s_flops_match_torch_flop_counter() {
    let f = UNetConfig::default().flops_per_image(32) as f64;
    assert!((f / 1.016e9 - 1.0).abs() < 0.05, "{f}");
    assert_eq!(f as u64, 1_015_545_856);
    // Convs scale with the pixel count; only the time MLPs do not.
    let f16 = UNetConfig::default().flops_per_image(16) as f64;
    assert!((f / f16 - 4.0).abs() < 0.01, "{f} vs {f16}");
    // Attention at a level adds its qkv/proj convs and two N x N x C matmuls per block.
    let base = UNetConfig::tiny();
    let extra = attn_tiny().flops_per_image(8) - base.flops_per_image(8);
    let (c, n) = (16u64, 16u64); // level 1 of tiny at side 8: 16 channels, 4x4 pixels
    let per_block = 2 * c * 3 * c * n + 4 * n * n * c + 2 * c * c * n;
    assert_eq!(extra, per_block * 3); // 1 down + 2 up blocks at level 1
}

#[test]
fn output_shape_equals_input_shape() {
    let (_, s) = build(&UNetConfig::default(), 0, DType::F32);
    let (_, tiny) = build(&UNetConfig::tiny(), 0, DType::F32);
    let (_, att) = build(&attn_tiny(), 0, DType::F32);
    for side in [8, 16, 32] {
        let x = randn(side as u64, &[2, 1, side, side], DType::F32);
        let t = ts(&[0, 999]);
        for net in [&s, &tiny, &att] {
            let y = net.forward(&x, &t).unwrap();
            assert_eq!(y.dims(), x.dims());
            assert!(values(&y).iter().all(|v| v.is_finite()));
        }
    }
    // Non-square inputs are fine too; sides must be multiples of 2^(levels-1).
    let x = randn(1, &[1, 1, 8, 16], DType::F32);
    assert_eq!(s.forward(&x, &ts(&[3])).unwrap().dims(), &[1, 1, 8, 16]);
    assert!(s.forward(&randn(1, &[1, 1, 10, 10], DType::F32), &ts(&[3])).is_err());
    assert!(s.forward(&randn(1, &[1, 2, 8, 8], DType::F32), &ts(&[3])).is_err());
    assert!(s.forward(&randn(1, &[2, 1, 8, 8], DType::F32), &ts(&[3])).is_err());
}

#[test]
fn config_files_parse_to_the_presets() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(tag = "arch", rename_all = "snake_case")]
    enum Arch {
        Unet(UNetConfig),
    }
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let read = |name: &str| std::fs::read_to_string(models.join(name)).unwrap();
    let s = read("unet-s.toml");
    assert!(s.starts_with("arch = \"unet\""));
    assert_eq!(toml::from_str::<Arch>(&s).unwrap(), Arch::Unet(UNetConfig::default()));
    assert_eq!(toml::from_str::<Arch>(&read("unet-tiny.toml")).unwrap(), Arch::Unet(UNetConfig::tiny()));
    // Without the tag, the fields alone parse to the same config.
    let fields: String = s.lines().filter(|l| !l.starts_with("arch")).collect::<Vec<_>>().join("\n");
    assert_eq!(toml::from_str::<UNetConfig>(&fields).unwrap(), UNetConfig::default());
    // Missing keys take unet-s defaults; unknown keys are errors.
    let partial: UNetConfig = toml::from_str("base_channels = 64\nattention_levels = [1]").unwrap();
    assert_eq!(partial, UNetConfig { base_channels: 64, attention_levels: vec![1], ..Default::default() });
    assert!(toml::from_str::<UNetConfig>("base_chanels = 64").is_err());
    assert!(toml::from_str::<Arch>("arch = \"unet\"\nnum_res_block = 1").is_err());
    // Serialization round-trips (JSON next to checkpoints).
    let json = serde_json::to_string(&attn_tiny()).unwrap();
    assert_eq!(serde_json::from_str::<UNetConfig>(&json).unwrap(), attn_tiny());
}

#[test]
fn validate_names_the_offending_field() {
    let ok = UNetConfig::default();
    ok.validate(32).unwrap();
    ok.validate(4).unwrap();
    let err = |cfg: &UNetConfig, side: usize| cfg.validate(side).unwrap_err().to_string();
    assert!(err(&ok, 30).contains("side"));
    assert!(err(&ok, 0).contains("side"));
    assert!(err(&UNetConfig { norm_groups: 5, ..ok.clone() }, 32).contains("norm_groups"));
    assert!(err(&UNetConfig { norm_groups: 0, ..ok.clone() }, 32).contains("norm_groups"));
    assert!(
        err(&UNetConfig { base_channels: 33, norm_groups: 1, ..ok.clone() }, 32).contains("base_channels")
    );
    assert!(err(&UNetConfig { channel_mult: vec![], ..ok.clone() }, 32).contains("channel_mult"));
    assert!(err(&UNetConfig { channel_mult: vec![1, 0], ..ok.clone() }, 32).contains("channel_mult"));
    assert!(err(&UNetConfig { attention_levels: vec![3], ..ok.clone() }, 32).contains("attention_levels"));
    assert!(err(&UNetConfig { attention_levels: vec![1, 1], ..ok.clone() }, 32).contains("attention_levels"));
    assert!(err(&UNetConfig { dropout: 1.0, ..ok.clone() }, 32).contains("dropout"));
    assert!(err(&UNetConfig { in_channels: 0, ..ok.clone() }, 32).contains("in_channels"));
    assert!(err(&UNetConfig { time_embed_dim: 0, ..ok.clone() }, 32).contains("time_embed_dim"));
    // One level: no downsampling, any side.
    UNetConfig { channel_mult: vec![1], ..ok.clone() }.validate(7).unwrap();
    // The constructor refuses what validate refuses.
    let vm = VarMap::new();
    let bad = UNetConfig { norm_groups: 5, ..ok };
    assert!(UNet::new(&bad, seeded_var_builder(&vm, 0, DType::F32, &DEV)).is_err());
}

#[test]
fn dropout_is_refused_in_training_only() {
    let cfg = UNetConfig { dropout: 0.1, ..UNetConfig::tiny() };
    let (_, net) = build(&cfg, 0, DType::F32);
    let (_, net0) = build(&UNetConfig::tiny(), 0, DType::F32);
    let x = randn(0, &[1, 1, 8, 8], DType::F32);
    let t = ts(&[5]);
    let msg = net.forward_t(&x, &t, true).unwrap_err().to_string();
    assert!(msg.contains("dropout"), "{msg}");
    // Evaluation ignores dropout: same weights (same seed and names), same output.
    assert_eq!(values(&net.forward(&x, &t).unwrap()), values(&net0.forward(&x, &t).unwrap()));
    assert_eq!(values(&net0.forward_t(&x, &t, true).unwrap()), values(&net0.forward(&x, &t).unwrap()));
}

#[test]
fn sinusoidal_embedding_values() {
    let e = timestep_embedding(&ts(&[0, 7, 999]), 32, DType::F64).unwrap();
    assert_eq!(e.dims(), &[3, 32]);
    let rows: Vec<Vec<f64>> = e.to_vec2().unwrap();
    for (row, t) in rows.iter().zip([0.0f64, 7.0, 999.0]) {
        for k in 0..16 {
            let f = (-(10000f64.ln()) * k as f64 / 16.0).exp();
            assert!((row[k] - (t * f).sin()).abs() < 1e-12);
            assert!((row[16 + k] - (t * f).cos()).abs() < 1e-12);
        }
    }
    assert!(timestep_embedding(&ts(&[1]), 7, DType::F32).is_err());
}

#[test]
fn reshape_broadcast_upsample_equals_candle_forward() {
    let x = randn(3, &[2, 3, 4, 5], DType::F32);
    let ours = upsample_nearest2x(&x).unwrap();
    let theirs = x.upsample_nearest2d(8, 10).unwrap();
    assert_eq!(ours.dims(), &[2, 3, 8, 10]);
    assert_eq!(values(&ours), values(&theirs));
    // A non-contiguous input.
    let xt = x.transpose(2, 3).unwrap();
    assert_eq!(values(&upsample_nearest2x(&xt).unwrap()), values(&xt.upsample_nearest2d(10, 8).unwrap()));
}

/// The candle 0.11 pitfall: an upsampled tensor that also feeds another branch. For
/// L = Σ up(x)·R + Σ x·S, dL/dx = (R summed over each 2x2 block) + S.
#[test]
fn upsample_gradient_adds_to_other_branches() {
    let x = Var::from_tensor(&randn(4, &[2, 3, 4, 4], DType::F64)).unwrap();
    let r = randn(5, &[2, 3, 8, 8], DType::F64);
    let s = randn(6, &[2, 3, 4, 4], DType::F64);
    let loss = ((upsample_nearest2x(x.as_tensor()).unwrap() * &r).unwrap().sum_all().unwrap()
        + (x.as_tensor() * &s).unwrap().sum_all().unwrap())
    .unwrap();
    let g = values(loss.backward().unwrap().get(x.as_tensor()).unwrap());
    let (rv, sv) = (values(&r), values(&s));
    let mut want = vec![0.0; 2 * 3 * 16];
    for bc in 0..6 {
        for i in 0..4 {
            for j in 0..4 {
                let idx = bc * 16 + i * 4 + j;
                let block: f64 = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .iter()
                    .map(|(di, dj)| rv[bc * 64 + (2 * i + di) * 8 + 2 * j + dj])
                    .sum();
                want[idx] = block + sv[idx];
            }
        }
    }
    for (a, b) in g.iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

/// Autograd against central differences for a few entries of `var` (the input or a parameter).
fn check_gradient(
    name: &str,
    var: &Var,
    grad: &Tensor,
    loss: &dyn Fn() -> f64,
    picks: usize,
    rng: &mut impl Rng,
) {
    let base = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let grad = values(grad);
    assert_eq!(grad.len(), base.len(), "{name}");
    let h = 1e-5;
    let mut worst = 0.0f64;
    for _ in 0..picks {
        let i = rng.random_range(0..base.len());
        let eval = |v: f64| {
            let mut p = base.clone();
            p[i] = v;
            var.set(&Tensor::from_vec(p, var.shape(), &DEV).unwrap()).unwrap();
            loss()
        };
        let fd = (eval(base[i] + h) - eval(base[i] - h)) / (2.0 * h);
        let ad = grad[i];
        let rel = (ad - fd).abs() / ad.abs().max(fd.abs()).max(1e-6);
        assert!(rel < 1e-4, "{name}[{i}]: autograd {ad:e}, finite differences {fd:e}, rel {rel:e}");
        worst = worst.max(rel);
    }
    var.set(&Tensor::from_vec(base, var.shape(), &DEV).unwrap()).unwrap();
    eprintln!("{name}: worst relative error {worst:.2e} over {picks} entries");
}

fn finite_difference_check(cfg: &UNetConfig, params: &[&str]) {
    let (vm, net) = build(cfg, 11, DType::F64);
    let x = Var::from_tensor(&randn(12, &[2, 1, 8, 8], DType::F64)).unwrap();
    let r = randn(13, &[2, 1, 8, 8], DType::F64);
    let t = ts(&[17, 640]);
    let loss_t = |x: &Tensor| net.forward_t(x, &t, true).unwrap().mul(&r).unwrap().sum_all().unwrap();
    let grads = loss_t(x.as_tensor()).backward().unwrap();
    let loss = || loss_t(x.as_tensor()).to_scalar::<f64>().unwrap();
    let mut rng = keyed_rng([0x6664, 0, 0, 0]);
    let data = vm.data().lock().unwrap().clone();
    for &p in params {
        let var = data.get(p).unwrap_or_else(|| panic!("no parameter {p}"));
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {p}"));
        check_gradient(p, var, g, &loss, 3, &mut rng);
    }
    check_gradient("x", &x, grads.get(x.as_tensor()).unwrap(), &loss, 6, &mut rng);
    // Every parameter gets a gradient.
    for (k, v) in &data {
        assert!(grads.get(v.as_tensor()).is_some(), "no gradient for {k}");
    }
}

#[test]
fn finite_difference_gradients_unet_tiny() {
    finite_difference_check(
        &UNetConfig::tiny(),
        &[
            "time_embed.0.weight",
            "time_embed.2.bias",
            "conv_in.weight",
            "down.0.res.0.conv1.weight",
            "down.0.res.0.norm2.weight",
            "down.0.downsample.weight",
            "down.1.res.0.skip.weight",
            "mid.res.1.temb.weight",
            "up.1.res.0.skip.weight",
            "up.1.res.1.conv2.bias",
            "up.1.upsample.weight",
            "up.0.res.1.conv1.weight",
            "out.norm.bias",
            "out.conv.weight",
        ],
    );
}

#[test]
fn finite_difference_gradients_with_attention() {
    finite_difference_check(
        &attn_tiny(),
        &[
            "down.1.attn.0.qkv.weight",
            "down.1.attn.0.norm.weight",
            "up.1.attn.1.proj.weight",
            "up.1.attn.0.qkv.bias",
        ],
    );
}

#[test]
fn same_seed_same_output_and_time_matters() {
    let cfg = UNetConfig::tiny();
    let x = randn(20, &[2, 1, 16, 16], DType::F32);
    let t = ts(&[10, 500]);
    let a = values(&build(&cfg, 7, DType::F32).1.forward(&x, &t).unwrap());
    assert_eq!(a, values(&build(&cfg, 7, DType::F32).1.forward(&x, &t).unwrap()));
    assert_ne!(a, values(&build(&cfg, 8, DType::F32).1.forward(&x, &t).unwrap()));

    let (_, net) = build(&cfg, 7, DType::F32);
    let b = values(&net.forward(&x, &ts(&[10, 900])).unwrap());
    // Sample 0 keeps its timestep: unchanged; sample 1 changes with its own timestep only.
    assert_eq!(a[..256], b[..256]);
    let diff: f64 = a[256..].iter().zip(&b[256..]).map(|(p, q)| (p - q).abs()).sum::<f64>() / 256.0;
    assert!(diff > 1e-3, "mean |Δ| {diff}");
    // A sample's output does not depend on the rest of the batch.
    let one = values(&net.forward(&x.narrow(0, 1, 1).unwrap(), &ts(&[500])).unwrap());
    for (p, q) in one.iter().zip(&a[256..]) {
        assert!((p - q).abs() < 1e-5, "{p} vs {q}");
    }
}

/// unet-s against DESIGN.md's PyTorch reference (`shared/bench/torch_unet_s.py`), with every weight
/// set by a formula of its shape (so the values do not depend on the seeded init): for a variable of
/// `n` elements, `s_k = sin(0.731 k + 0.1 n)`; conv/linear weights `s_k / sqrt(n / shape[0])`, norm
/// weights `1 + 0.1 s_k`, biases `0.1 s_k`; input `x_k = sin(0.37 k)`, shape (3, 1, 32, 32),
/// t = [0, 123, 999]. The expected values come from the torch module with the same weights loaded
/// through the key map torch → memgen: `temb.{0,2}` → `time_embed.{0,2}`, `cin` → `conv_in`,
/// `down.{k}` → `down.{k / 2}.res.{k % 2}`, `ds.{i}` → `down.{i}.downsample`, `mid.{j}` → `mid.res.{j}`,
/// `up.{k}` → `up.{2 - k / 3}.res.{k % 3}`, `us.{j}` → `up.{2 - j}.upsample`, `nout`/`cout` →
/// `out.norm`/`out.conv`, residual fields `n1, c1, t, n2, c2, skip` → `norm1, conv1, temb, norm2, conv2, skip`.
/// (Seeded weights exported to the same torch module agreed to 6e-6 too.)
#[test]
fn unet_s_matches_pytorch_reference() {
    let (vm, net) = build(&UNetConfig::default(), 0, DType::F32);
    for (name, var) in vm.data().lock().unwrap().iter() {
        let dims = var.dims().to_vec();
        let n = var.elem_count();
        let v: Vec<f32> = (0..n)
            .map(|k| {
                let s = (0.731 * k as f64 + 0.1 * n as f64).sin();
                let v = if dims.len() >= 2 {
                    s / (n as f64 / dims[0] as f64).sqrt()
                } else if name.ends_with(".weight") {
                    1.0 + 0.1 * s
                } else {
                    0.1 * s
                };
                v as f32
            })
            .collect();
        var.set(&Tensor::from_vec(v, dims, &DEV).unwrap()).unwrap();
    }
    let x: Vec<f32> = (0..3072).map(|k| (0.37 * k as f64).sin() as f32).collect();
    let x = Tensor::from_vec(x, (3, 1, 32, 32), &DEV).unwrap();
    let y = values(&net.forward(&x, &ts(&[0, 123, 999])).unwrap());
    let close = |got: f64, want: f64, what: &str| {
        assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{what}: memgen {got}, PyTorch {want}");
    };
    close(y.iter().sum::<f64>() / 3072.0, 0.007798795931800366, "mean");
    close(y.iter().map(|v| v * v).sum::<f64>() / 3072.0, 0.3140622224062231, "mean square");
    for (i, want) in [
        (0, 0.1442800909280777),
        (517, 0.1623731553554535),
        (1023, -0.3671141266822815),
        (1500, 0.9339212775230408),
        (2047, -0.0675402581691742),
        (2600, 0.6303550601005554),
        (3071, -0.13667646050453186),
    ] {
        close(y[i], want, &format!("y[{i}]"));
    }
}

/// `cargo test --release -p memgen-diffusion --test unet -- --ignored --nocapture time_unet_s`
#[test]
#[ignore]
fn time_unet_s() {
    let (vm, net) = build(&UNetConfig::default(), 0, DType::F32);
    let x = randn(30, &[64, 1, 32, 32], DType::F32);
    let t = Tensor::from_vec((0..64u32).map(|i| i * 15).collect::<Vec<_>>(), 64, &DEV).unwrap();
    let eps = randn(31, &[64, 1, 32, 32], DType::F32);
    let _ = net.forward(&x, &t).unwrap(); // warm-up
    for _ in 0..2 {
        let t0 = std::time::Instant::now();
        let y = net.forward(&x, &t).unwrap();
        let fwd = t0.elapsed().as_secs_f64();
        let t1 = std::time::Instant::now();
        let y_train = net.forward_t(&x, &t, true).unwrap();
        let loss = (y_train - &eps).unwrap().sqr().unwrap().mean_all().unwrap();
        let t2 = std::time::Instant::now();
        let grads = loss.backward().unwrap();
        let t3 = std::time::Instant::now();
        assert!(grads.get(vm.all_vars()[0].as_tensor()).is_some());
        drop(y);
        eprintln!(
            "unet-s 64x1x32x32, {} threads: forward {:.3} s ({:.1} img/s); train forward {:.3} s + backward {:.3} s = {:.3} s ({:.1} img/s)",
            rayon::current_num_threads(),
            fwd,
            64.0 / fwd,
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
            (t3 - t1).as_secs_f64(),
            64.0 / (t3 - t1).as_secs_f64()
        );
    }
}

/// The whole network on memgen's kernels equals the same network on Candle's own ops: output and
/// the gradient of every parameter (f64, so that only real differences show).
#[test]
fn fast_kernels_match_candle_ops_end_to_end() {
    let (vm, net) = build(&attn_tiny(), 21, DType::F64);
    let x = randn(22, &[3, 1, 8, 8], DType::F64);
    let r = randn(23, &[3, 1, 8, 8], DType::F64);
    let t = ts(&[3, 500, 999]);
    let run = || {
        let y = net.forward(&x, &t).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let mut g: Vec<(String, Vec<f64>)> = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(name, v)| {
                (name.clone(), values(grads.get(v.as_tensor()).expect("every parameter has a gradient")))
            })
            .collect();
        g.sort_by(|a, b| a.0.cmp(&b.0));
        (values(&y), g)
    };
    let (y_fast, g_fast) = run();
    let (y_stock, g_stock) = memgen_kernels::with_stock_kernels(run);
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 1e-9 * (1.0 + q.abs()));
    assert!(close(&y_fast, &y_stock), "outputs differ");
    assert_eq!(g_fast.len(), g_stock.len());
    for ((name, a), (_, b)) in g_fast.iter().zip(&g_stock) {
        assert!(close(a, b), "gradient of {name} differs");
    }
}

/// The output for 7 images (with attention) and the gradient of `Σ out · w` with respect to the
/// input, computed inside a pool of `threads` threads.
fn forward_and_input_gradient(threads: usize) -> (Vec<f64>, Vec<f64>) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let expected = threads.min(7 / memgen_diffusion::shards::MIN_SHARE);
        assert_eq!(memgen_diffusion::shards::shares_here(7).len(), expected);
        let (_vm, net) = build(&attn_tiny(), 11, DType::F32);
        let x = Var::from_tensor(&randn(1, &[7, 1, 16, 16], DType::F32)).unwrap();
        let out = net.forward(x.as_tensor(), &ts(&[0, 100, 200, 300, 400, 500, 999])).unwrap();
        let w = randn(2, out.dims(), DType::F32);
        let grads = (&out * &w).unwrap().sum_all().unwrap().backward().unwrap();
        (values(&out), values(grads.get(x.as_tensor()).unwrap()))
    })
}

#[test]
fn a_batch_in_shards_gives_the_whole_batch_output_and_input_gradient() {
    let (whole, whole_grad) = forward_and_input_gradient(1);
    for threads in [2, 3] {
        let (out, grad) = forward_and_input_gradient(threads);
        for (name, a, b) in [("output", &out, &whole), ("input gradient", &grad, &whole_grad)] {
            let scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
            let err = a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(err <= 1e-5 * scale, "{threads} threads, {name}: max error {err}, max |value| {scale}");
        }
    }
    assert!(forward_and_input_gradient(2) == forward_and_input_gradient(2), "same threads, same bits");
}

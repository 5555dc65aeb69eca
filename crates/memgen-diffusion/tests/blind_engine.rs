//! The whole-network engine of the blind UNet (blind_engine/) against Candle's path (blind.rs with
//! autograd): outputs in training and evaluation mode, the loss, every parameter gradient and the
//! running-std update; determinism; finite differences; and the training step that uses it.
//!
//! Tolerances. In f64 both paths compute the same sums in different orders, so they agree to
//! ~1e-12 relative; 1e-9 leaves room for the batch-norm backward, whose terms cancel. In f32 each
//! value carries rounding errors of ~6e-8 relative per operation, accumulated over ~20 layers and
//! sums of up to K = 576 products (GEMM) or N = batch·pixels values (norm statistics, taken in f64
//! by the engine and in f32 by Candle): a random-walk estimate is ~1e-6 relative to each tensor's
//! largest entry, which is what both the engine (9e-7) and Candle (1.7e-6) show in f32 against the
//! f64 truth on the demo network; the bound is 1e-5.

mod common;

use candle::{DType, Tensor, TensorId};
use candle_nn::VarMap;
use common::{build, randomise_norms, tensor, uniform, values};
use memgen_diffusion::blind::{BlindConfig, BlindUNet};
use memgen_diffusion::blind_engine::Engine;
use memgen_kernels::Float;
use std::collections::{BTreeMap, HashMap};

type Named = BTreeMap<String, Vec<f64>>;

/// The same network in f64: a fresh f64 network whose variables are set to `vm`'s values.
fn in_f64(cfg: &BlindConfig, vm: &VarMap) -> (VarMap, BlindUNet) {
    let (vm64, net) = build(cfg, 0, DType::F64);
    let src = vm.data().lock().unwrap();
    for (name, v) in vm64.data().lock().unwrap().iter() {
        v.set(&src[name].as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
    }
    (vm64, net)
}

/// Everything a training pass produces, by variable name.
#[derive(Debug)]
struct Pass {
    output: Vec<f64>,
    loss: f64,
    grads: Named,
    running: Named,
}

fn running(vm: &VarMap) -> Named {
    let data = vm.data().lock().unwrap();
    data.iter()
        .filter(|(k, _)| k.ends_with(".running_sd"))
        .map(|(k, v)| (k.clone(), values(v.as_tensor())))
        .collect()
}

fn names_by_id(vm: &VarMap) -> HashMap<TensorId, String> {
    vm.data().lock().unwrap().iter().map(|(k, v)| (v.as_tensor().id(), k.clone())).collect()
}

/// Candle's path: training forward (updating the running stds), loss Σ (f − target)² / B, autograd.
fn candle_pass(vm: &VarMap, net: &BlindUNet, y: &Tensor, target: &Tensor) -> Pass {
    let b = y.dim(0).unwrap() as f64;
    let out = net.forward_t(y, true).unwrap();
    let loss = ((&out - target).unwrap().sqr().unwrap().sum_all().unwrap() / b).unwrap();
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let grads =
        data.iter().filter_map(|(k, v)| grads.get(v.as_tensor()).map(|g| (k.clone(), values(g)))).collect();
    drop(data);
    Pass { output: values(&out), loss: values(&loss)[0], grads, running: running(vm) }
}

/// The engine on `threads` threads, in the network's dtype T.
fn engine_pass<T: Float>(vm: &VarMap, net: &BlindUNet, y: &Tensor, target: &Tensor, threads: usize) -> Pass {
    let (b, _, side, _) = y.dims4().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_dtype(T::DTYPE).unwrap().to_vec1::<T>().unwrap();
    let p = net.engine_params::<T>().unwrap();
    let g = Engine::<T>::new(threads).train(&p, &flat(y), &flat(target), b, side).unwrap();
    net.update_running_stats(&g.forward.batch_sd).unwrap();
    let names = names_by_id(vm);
    let grads =
        net.gradient_pairs(&g).unwrap().iter().map(|(p, g)| (names[&p.id()].clone(), values(g))).collect();
    let output = g.forward.output.iter().map(|v| v.as_f64()).collect();
    Pass { output, loss: g.loss, grads, running: running(vm) }
}

/// max |a − b| / max |b|.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// The largest relative error of `got` against `want` over output, loss, gradients and running
/// stds, asserting both name the same gradients; with the name of the worst tensor.
fn worst(got: &Pass, want: &Pass) -> (f64, String) {
    assert_eq!(got.grads.keys().collect::<Vec<_>>(), want.grads.keys().collect::<Vec<_>>());
    let mut all = vec![(rel(&got.output, &want.output), "output".to_string())];
    all.push(((got.loss - want.loss).abs() / want.loss.abs(), "loss".into()));
    for (k, g) in &got.grads {
        all.push((rel(g, &want.grads[k]), format!("grad {k}")));
    }
    for (k, r) in &got.running {
        all.push((rel(r, &want.running[k]), format!("running {k}")));
    }
    all.into_iter().fold((0.0, String::new()), |m, e| if e.0 > m.0 { e } else { m })
}

/// Shapes covering the network's options: the demo network, a single block with one conv per block
/// and three channels, three blocks; batches that do not split evenly, and a batch of one.
fn cases() -> Vec<(BlindConfig, usize, usize, usize)> {
    let tiny = BlindConfig::tiny();
    let one =
        BlindConfig { in_channels: 3, base_channels: 4, num_blocks: 1, convs_per_block: 1, ..tiny.clone() };
    let three = BlindConfig { base_channels: 4, num_blocks: 3, convs_per_block: 2, ..tiny.clone() };
    // (config, side, batch, threads)
    vec![(tiny.clone(), 16, 5, 2), (tiny, 8, 1, 2), (one.clone(), 8, 3, 2), (one, 4, 7, 3), (three, 16, 4, 3)]
}

#[test]
fn engine_matches_candle_in_f64() {
    for (i, (cfg, side, batch, threads)) in cases().into_iter().enumerate() {
        let shape = [batch, cfg.in_channels, side, side];
        let y = tensor(10 + i as u64, &shape, -0.5, 1.5, DType::F64);
        let target = tensor(20 + i as u64, &shape, -0.3, 0.3, DType::F64);
        let (vm, net) = build(&cfg, i as u64, DType::F64);
        randomise_norms(&vm, 40);
        let (vm2, net2) = in_f64(&cfg, &vm);
        let eval_want = values(&net.forward_t(&y, false).unwrap());
        let p = net.engine_params::<f64>().unwrap();
        let flat: Vec<f64> = values(&y);
        let eval_got = Engine::<f64>::new(threads).forward(&p, &flat, batch, side, false).unwrap().output;
        assert!(rel(&eval_got, &eval_want) < 1e-12, "case {i}: eval output {}", rel(&eval_got, &eval_want));
        let want = candle_pass(&vm, &net, &y, &target);
        let got = engine_pass::<f64>(&vm2, &net2, &y, &target, threads);
        let (err, what) = worst(&got, &want);
        assert!(
            err < 1e-9,
            "case {i} ({cfg:?}, side {side}, batch {batch}, {threads} threads): {what} {err:e}"
        );
        assert!(want.grads.len() == cfg.parameter_count_tensors(), "every parameter has a gradient");
    }
}

trait CountTensors {
    fn parameter_count_tensors(&self) -> usize;
}

impl CountTensors for BlindConfig {
    /// Parameter tensors: a weight per conv and transposed conv, a gain per norm.
    fn parameter_count_tensors(&self) -> usize {
        let convs = (2 * self.num_blocks + 1) * self.convs_per_block;
        convs + (convs - 2) + self.num_blocks
    }
}

#[test]
fn engine_in_f32_is_as_accurate_as_candle_in_f32() {
    let cfg = BlindConfig::tiny();
    let (vm, net) = build(&cfg, 7, DType::F32);
    randomise_norms(&vm, 50);
    let shape = [9, 1, 16, 16];
    let (y, target) = (tensor(1, &shape, 0.0, 1.5, DType::F32), tensor(2, &shape, -0.3, 0.3, DType::F32));
    let (vm64, net64) = in_f64(&cfg, &vm);
    // Evaluation mode (running statistics; each norm and ReLU applied to the conv's output) in f32,
    // where the convs of 16x16, 8x8 and 4x4 maps run on the direct kernel, against Candle in f64.
    let eval_want = values(&net64.forward_t(&y.to_dtype(DType::F64).unwrap(), false).unwrap());
    let (p, yv) = (net.engine_params::<f32>().unwrap(), y.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    let eval = Engine::<f32>::new(2).forward(&p, &yv, 9, 16, false).unwrap().output;
    let eval_got: Vec<f64> = eval.iter().map(|&v| v as f64).collect();
    assert!(rel(&eval_got, &eval_want) < 1e-5, "engine eval in f32: {:e}", rel(&eval_got, &eval_want));
    let (vm32, net32) = build(&cfg, 7, DType::F32);
    randomise_norms(&vm32, 50);
    let truth =
        candle_pass(&vm64, &net64, &y.to_dtype(DType::F64).unwrap(), &target.to_dtype(DType::F64).unwrap());
    let candle = candle_pass(&vm32, &net32, &y, &target);
    let engine = engine_pass::<f32>(&vm, &net, &y, &target, 2);
    let (e_err, e_what) = worst(&engine, &truth);
    let (c_err, c_what) = worst(&candle, &truth);
    eprintln!("f32 vs f64: engine {e_err:e} ({e_what}), candle {c_err:e} ({c_what})");
    assert!(e_err < 1e-5, "engine in f32: {e_what} {e_err:e} (candle in f32: {c_what} {c_err:e})");
}

#[test]
fn same_threads_same_bits() {
    let cfg = BlindConfig::tiny();
    let (vm, net) = build(&cfg, 3, DType::F32);
    randomise_norms(&vm, 60);
    let p = net.engine_params::<f32>().unwrap();
    let y: Vec<f32> = uniform(5, 13 * 256, 0.0, 1.0).iter().map(|&v| v as f32).collect();
    let t: Vec<f32> = uniform(6, 13 * 256, -0.2, 0.2).iter().map(|&v| v as f32).collect();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut reused = Engine::<f32>::new(2);
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let g = if i == 0 {
                Engine::<f32>::new(2).train(&p, &y, &t, 13, 16)
            } else {
                reused.train(&p, &y, &t, 13, 16)
            };
            g.unwrap()
        })
        .collect();
    for r in &runs[1..] {
        assert_eq!(r.loss.to_bits(), runs[0].loss.to_bits());
        assert_eq!(bits(&r.forward.output), bits(&runs[0].forward.output));
        for (a, b) in r.conv.iter().chain(&r.up).zip(runs[0].conv.iter().chain(&runs[0].up)) {
            assert_eq!(bits(a), bits(b));
        }
        assert_eq!(r.forward.batch_sd, runs[0].forward.batch_sd);
    }
    // Another thread count changes the summation order only.
    let one = Engine::<f32>::new(1).train(&p, &y, &t, 13, 16).unwrap();
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    for (a, b) in one.conv.iter().zip(&runs[0].conv) {
        assert!(rel(&to64(a), &to64(b)) < 1e-4, "1 vs 2 threads: {}", rel(&to64(a), &to64(b)));
    }
}

/// Central differences of the engine's own loss in f64, on a small network, for a spread of
/// parameters of every kind: (L(θ + h) − L(θ − h)) / 2h against the engine's gradient.
#[test]
fn gradients_match_finite_differences_in_f64() {
    let cfg = BlindConfig {
        base_channels: 3,
        num_blocks: 2,
        convs_per_block: 2,
        in_channels: 2,
        ..BlindConfig::tiny()
    };
    let (vm, net) = build(&cfg, 9, DType::F64);
    randomise_norms(&vm, 70);
    let (b, side) = (3, 8);
    let y = uniform(7, b * 2 * side * side, 0.0, 1.0);
    let t = uniform(8, b * 2 * side * side, -0.3, 0.3);
    let p = net.engine_params::<f64>().unwrap();
    let mut eng = Engine::<f64>::new(2);
    let g = eng.train(&p, &y, &t, b, side).unwrap();
    let loss = |p: &memgen_diffusion::blind_engine::Params<f64>| {
        Engine::<f64>::new(2).train(p, &y, &t, b, side).unwrap().loss
    };
    let h = 1e-5;
    let mut checked = 0;
    for k in 0..p.convs.len() {
        for idx in [0, p.convs[k].weight.len() / 2, p.convs[k].weight.len() - 1] {
            let (mut plus, mut minus) = (p.clone(), p.clone());
            plus.convs[k].weight[idx] += h;
            minus.convs[k].weight[idx] -= h;
            let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
            let an = g.conv[k][idx];
            assert!((fd - an).abs() <= 1e-6 * (1.0 + an.abs()), "conv {k} [{idx}]: fd {fd} vs {an}");
            checked += 1;
        }
        if let Some(dg) = &g.gain[k] {
            let (mut plus, mut minus) = (p.clone(), p.clone());
            plus.convs[k].bn.as_mut().unwrap().gain[1] += h;
            minus.convs[k].bn.as_mut().unwrap().gain[1] -= h;
            let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
            assert!((fd - dg[1]).abs() <= 1e-6 * (1.0 + dg[1].abs()), "gain {k}: fd {fd} vs {}", dg[1]);
            checked += 1;
        }
    }
    for (u, dw) in g.up.iter().enumerate() {
        let (mut plus, mut minus) = (p.clone(), p.clone());
        plus.ups[u][2] += h;
        minus.ups[u][2] -= h;
        let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
        assert!((fd - dw[2]).abs() <= 1e-6 * (1.0 + dw[2].abs()), "up {u}: fd {fd} vs {}", dw[2]);
        checked += 1;
    }
    assert!(checked > 30);
}

/// An input that is part of an autograd graph keeps Candle's path (a Jacobian through the network
/// needs it); a plain one runs on the engine, with the same values.
#[test]
fn graph_inputs_keep_candles_path() {
    let cfg = BlindConfig::tiny();
    let (vm, net) = build(&cfg, 4, DType::F32);
    randomise_norms(&vm, 80);
    let y = tensor(3, &[3, 1, 16, 16], 0.0, 1.0, DType::F32);
    assert!(net.uses_engine(&y));
    let fast = values(&net.forward_t(&y, false).unwrap());
    let stock = values(&memgen_kernels::with_stock_kernels(|| net.forward_t(&y, false).unwrap()));
    assert!(rel(&fast, &stock) < 1e-5, "{}", rel(&fast, &stock));
    let var = candle::Var::from_tensor(&y).unwrap();
    assert!(!net.uses_engine(var.as_tensor()));
    let out = net.forward_t(var.as_tensor(), false).unwrap();
    let grads = out.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(var.as_tensor()).is_some(), "the gradient reaches the input");
    assert!(rel(&values(&out), &stock) < 1e-5);
}

/// The training step on the engine against Candle's path (`with_stock_kernels`): the same losses
/// and, after a few AdamW steps, the same weights and running stds up to f32 rounding (AdamW's first
/// steps move each weight by about ±lr whatever the gradient's size, so a gradient entry within
/// rounding of zero may move either way: the weights are compared entry by entry against lr).
#[test]
fn training_steps_on_the_engine_follow_candles_path() {
    use memgen_diffusion::model::ModelConfig;
    use memgen_diffusion::train::{named_vars, LrDecay, TrainConfig, Trainer};
    let lr = 1e-3;
    let cfg = TrainConfig {
        model: ModelConfig::Blind(BlindConfig::tiny()),
        schedule: Default::default(),
        steps: 4,
        batch_size: 6,
        lr,
        warmup_steps: 0,
        lr_decay: LrDecay::Constant,
        optimizer: Default::default(),
        ema_decay: 0.9,
        ema_warmup: false,
        seed: 3,
        checkpoint_every: 100,
        log_every: 100,
    };
    let data = tensor(9, &[10, 1, 16, 16], 0.0, 1.0, DType::F32);
    let mut fast = Trainer::new(cfg.clone(), data.clone()).unwrap();
    let mut stock = Trainer::new(cfg, data).unwrap();
    for step in 0..4 {
        let lf = fast.train_step().unwrap() as f64;
        let ls = memgen_kernels::with_stock_kernels(|| stock.train_step().unwrap()) as f64;
        assert!((lf - ls).abs() <= 1e-5 * ls.abs(), "step {step}: loss {lf} vs {ls}");
    }
    let (a, b) = (named_vars(fast.varmap()), named_vars(stock.varmap()));
    let (mut far, mut total) = (0, 0);
    for ((name, va), (_, vb)) in a.iter().zip(&b) {
        let (x, y) = (values(va.as_tensor()), values(vb.as_tensor()));
        let tol = if name.ends_with(".running_sd") {
            1e-5 * y.iter().fold(0f64, |m, v| m.max(v.abs()))
        } else {
            1e-3 * lr
        };
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() <= 8.0 * lr, "{name}: {p} vs {q}");
            far += usize::from((p - q).abs() > tol);
        }
        total += x.len();
    }
    assert!(far * 1000 <= total, "{far} of {total} entries differ by more than rounding");
}

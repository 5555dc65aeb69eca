//! The fused GroupNorm (+ SiLU) against Candle's GroupNorm followed by SiLU, and against finite
//! differences in f64.

mod common;

use candle::{DType, Module, Tensor};
use common::{check_fd, max_rel_diff, randn, var};
use memgen_kernels::GroupNorm;

/// `(B, C, H, W, groups)`.
const SHAPES: &[(usize, usize, usize, usize, usize)] =
    &[(2, 8, 5, 3, 4), (1, 6, 7, 7, 3), (3, 4, 1, 1, 2), (5, 16, 4, 4, 8), (2, 3, 9, 2, 1)];

fn reference(x: &Tensor, g: &Tensor, b: &Tensor, groups: usize, silu: bool) -> Tensor {
    let y = candle_nn::GroupNorm::new(g.clone(), b.clone(), x.dim(1).unwrap(), groups, 1e-5)
        .unwrap()
        .forward(x)
        .unwrap();
    if silu {
        y.silu().unwrap()
    } else {
        y
    }
}

fn check(dt: DType, tol: f64) {
    for (i, &(b, c, h, w, groups)) in SHAPES.iter().enumerate() {
        for silu in [false, true] {
            let seed = 20 * i as u64;
            // Offset and scaled input: the statistics must not rely on zero-mean, unit-variance data.
            let x =
                candle::Var::from_tensor(&((randn(seed, &[b, c, h, w], dt) * 3.0).unwrap() + 1.5).unwrap())
                    .unwrap();
            let (gm, bt) = (var(seed + 1, &[c], dt), var(seed + 2, &[c], dt));
            let r = randn(seed + 3, &[b, c, h, w], dt);
            let layer = GroupNorm::new(gm.as_tensor().clone(), bt.as_tensor().clone(), groups, 1e-5);
            let yf = if silu { layer.forward_silu(&x).unwrap() } else { layer.forward(&x).unwrap() };
            let ys = reference(&x, &gm, &bt, groups, silu);
            let d = max_rel_diff(&yf, &ys);
            assert!(d < tol, "forward {:?} silu={silu}: {d:e}", SHAPES[i]);
            let gf = (&yf * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gs = (&ys * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("x", x.as_tensor()), ("gamma", gm.as_tensor()), ("beta", bt.as_tensor())] {
                let d = max_rel_diff(gf.get(v).unwrap(), gs.get(v).unwrap());
                assert!(d < tol, "d{name} {:?} silu={silu}: {d:e}", SHAPES[i]);
            }
            if dt == DType::F64 {
                let loss = || {
                    let y = if silu { layer.forward_silu(&x).unwrap() } else { layer.forward(&x).unwrap() };
                    (&y * &r).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
                };
                check_fd(&x, gf.get(&x).unwrap(), &loss, &[0, 5, 17, 40], "x");
                check_fd(&gm, gf.get(&gm).unwrap(), &loss, &[0, 3], "gamma");
                check_fd(&bt, gf.get(&bt).unwrap(), &loss, &[1, 2], "beta");
            }
        }
    }
}

#[test]
fn matches_candle_and_finite_differences_in_f64() {
    check(DType::F64, 1e-10);
}

#[test]
fn matches_candle_in_f32() {
    check(DType::F32, 5e-5);
}

#[test]
fn constant_groups_give_beta_and_no_nan() {
    let x = Tensor::full(2.5f32, (2, 4, 3, 3), &candle::Device::Cpu).unwrap();
    let g = randn(1, &[4], DType::F32);
    let b = randn(2, &[4], DType::F32);
    let y = GroupNorm::new(g, b.clone(), 2, 1e-5).forward(&x).unwrap();
    let expect = b.reshape((1, 4, 1, 1)).unwrap().broadcast_as((2, 4, 3, 3)).unwrap();
    assert!(max_rel_diff(&y, &expect) < 1e-6);
}

#[test]
fn groups_must_divide_channels() {
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &candle::Device::Cpu);
    let err = memgen_kernels::group_norm(3, 8, 1e-5, vb).unwrap_err();
    assert!(err.to_string().contains("3 groups"), "{err}");
}

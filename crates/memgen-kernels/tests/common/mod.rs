//! Shared helpers of the kernel tests: seeded random tensors and comparisons.
#![allow(dead_code)]

use candle::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

pub fn randn(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

pub fn var(seed: u64, shape: &[usize], dtype: DType) -> Var {
    Var::from_tensor(&randn(seed, shape, dtype)).unwrap()
}

pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Largest `|a − b| / (1 + |b|)`.
pub fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, f64::max)
}

/// Central finite differences of `loss` with respect to a few entries of `v`, compared with the
/// autograd gradient `grad`.
pub fn check_fd(v: &Var, grad: &Tensor, loss: &dyn Fn() -> f64, entries: &[usize], name: &str) {
    let base = values(v.as_tensor());
    let g = values(grad);
    let h = 1e-6;
    for &i in entries {
        let i = i % base.len();
        let at = |x: f64| {
            let mut p = base.clone();
            p[i] = x;
            v.set(&Tensor::from_vec(p, v.as_tensor().shape(), &Device::Cpu).unwrap()).unwrap();
            loss()
        };
        let fd = (at(base[i] + h) - at(base[i] - h)) / (2.0 * h);
        at(base[i]);
        let rel = (fd - g[i]).abs() / (1e-3 + fd.abs().max(g[i].abs()));
        assert!(rel < 1e-5, "{name}[{i}]: autograd {:e}, finite differences {fd:e}", g[i]);
    }
}

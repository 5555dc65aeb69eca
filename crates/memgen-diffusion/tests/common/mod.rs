//! Helpers shared by the blind network's tests (blind.rs, blind_engine.rs): a seeded network,
//! seeded inputs and batch norms with values that matter.

#![allow(dead_code)]

use candle::{DType, Device, Tensor};
use candle_nn::VarMap;
use memgen_diffusion::blind::{BlindConfig, BlindUNet};
use memgen_diffusion::init::seeded_var_builder;
use memgen_diffusion::noise::keyed_rng;
use rand::Rng;

/// The blind network of `cfg` with weights drawn from `seed`, and its variables.
pub fn build(cfg: &BlindConfig, seed: u64, dtype: DType) -> (VarMap, BlindUNet) {
    let vm = VarMap::new();
    let net = BlindUNet::new(cfg, seeded_var_builder(&vm, seed, dtype, &Device::Cpu)).unwrap();
    (vm, net)
}

/// The values of `t`, flattened, in f64.
pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Uniform values in [lo, hi) from a seeded stream.
pub fn uniform(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = keyed_rng([0xb11d, seed, 0, 0]);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// A tensor of `shape` with [`uniform`] values.
pub fn tensor(seed: u64, shape: &[usize], lo: f64, hi: f64, dtype: DType) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(uniform(seed, n, lo, hi), shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

/// Overwrites every batch-norm gain with values of size ~1 (either sign) and every running std with
/// values in [0.5, 2], so that tests exercise more than the tiny initial gains.
pub fn randomise_norms(vm: &VarMap, seed: u64) {
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (i, name) in names.into_iter().enumerate() {
        let v = &data[name];
        let (lo, hi) = match name {
            n if n.ends_with(".gain") => (-1.5, 1.5),
            n if n.ends_with(".running_sd") => (0.5, 2.0),
            _ => continue,
        };
        v.set(&tensor(seed + i as u64, v.dims(), lo, hi, v.dtype())).unwrap();
    }
}

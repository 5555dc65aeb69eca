use candle::{DType, Device, Tensor, Var};
use memgen_kernels::GroupNorm;
use std::time::Instant;
fn main() {
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (64, 32, 32, 32), &Device::Cpu).unwrap()).unwrap();
    let gn = GroupNorm::new(
        Tensor::ones(32, DType::F32, &Device::Cpu).unwrap(),
        Tensor::zeros(32, DType::F32, &Device::Cpu).unwrap(),
        8,
        1e-5,
    );
    let r = Tensor::randn(0f32, 1., (64, 32, 32, 32), &Device::Cpu).unwrap();
    let (mut tf, mut tb) = (f64::MAX, f64::MAX);
    for _ in 0..40 {
        let t0 = Instant::now();
        let y = gn.forward_silu(x.as_tensor()).unwrap();
        tf = tf.min(t0.elapsed().as_secs_f64());
        let l = (y * &r).unwrap().sum_all().unwrap();
        let t0 = Instant::now();
        let _ = l.backward().unwrap();
        tb = tb.min(t0.elapsed().as_secs_f64());
    }
    println!("GN+SiLU 64x32x32x32: forward {:.2} ms, backward (incl. mul/sum) {:.2} ms", tf * 1e3, tb * 1e3);
}

use candle::{DType, Device, Module, Tensor, Var};
use candle_nn::Conv2dConfig;
use memgen_kernels::Conv2d;
use std::time::Instant;

fn main() {
    let b = 64;
    // (cin, cout, side, k, stride)
    let shapes = [
        (1, 32, 32, 3, 1),
        (32, 32, 32, 3, 1),
        (64, 32, 32, 3, 1),
        (32, 32, 32, 3, 2),
        (32, 64, 16, 3, 1),
        (64, 64, 16, 3, 1),
        (128, 64, 16, 3, 1),
        (64, 128, 8, 3, 1),
        (128, 128, 8, 3, 1),
        (256, 128, 8, 3, 1),
        (64, 32, 32, 1, 1),
        (256, 128, 8, 1, 1),
    ];
    println!("| cin | cout | side | k | s | fwd ms | fwd GF/s | bwd ms | bwd GF/s |");
    let only: Option<usize> = std::env::var("ONLY").ok().map(|v| v.parse().unwrap());
    for (i, (cin, cout, side, k, s)) in shapes.into_iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let x =
            Var::from_tensor(&Tensor::ones((b, cin, side, side), DType::F32, &Device::Cpu).unwrap()).unwrap();
        let w =
            Var::from_tensor(&Tensor::ones((cout, cin, k, k), DType::F32, &Device::Cpu).unwrap()).unwrap();
        let bias = Tensor::ones(cout, DType::F32, &Device::Cpu).unwrap();
        let conv = Conv2d::new(
            w.as_tensor().clone(),
            Some(bias),
            Conv2dConfig { padding: k / 2, stride: s, ..Default::default() },
        );
        let so = (side + 2 * (k / 2) - k) / s + 1;
        let flop = 2.0 * (b * cin * cout * k * k * so * so) as f64;
        let mut tf = f64::MAX;
        let mut tb = f64::MAX;
        for _ in 0..std::env::var("REPS").map(|v| v.parse().unwrap()).unwrap_or(4) {
            let t0 = Instant::now();
            let y = conv.forward(x.as_tensor()).unwrap();
            tf = tf.min(t0.elapsed().as_secs_f64());
            let l = y.sum_all().unwrap();
            let t0 = Instant::now();
            let _g = l.backward().unwrap();
            tb = tb.min(t0.elapsed().as_secs_f64());
        }
        println!(
            "| {cin} | {cout} | {side} | {k} | {s} | {:.1} | {:.0} | {:.1} | {:.0} |",
            tf * 1e3,
            flop / tf / 1e9,
            tb * 1e3,
            2.0 * flop / tb / 1e9
        );
    }
}

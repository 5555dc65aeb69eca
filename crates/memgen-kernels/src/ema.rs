//! The exponential moving average of one parameter tensor in a single pass:
//! `a ← d·a + (1 − d)·θ`.
//!
//! Candle's ops take three passes (two scalings and a sum), each allocating its output. This one
//! reads `a` and `θ` once and writes the new average once, with the same f32 arithmetic as those
//! ops (`d` and `1 − d` rounded to f32; each scaling is Candle's affine `v·k + 0`, then the sum),
//! so its bits equal theirs.

use crate::storage::with_slice;
use candle::{DType, Result, Tensor};

/// `d·avg + (1 − d)·theta` for CPU f32 tensors of one shape (contiguous), or `None` when the
/// tensors are elsewhere or in stock mode ([`crate::with_stock_kernels`]): callers then use
/// Candle's ops.
pub fn ema_update(avg: &Tensor, theta: &Tensor, d: f64) -> Result<Option<Tensor>> {
    let fast =
        [avg, theta].iter().all(|t| crate::is_fast_path(t) && t.dtype() == DType::F32 && t.is_contiguous())
            && avg.shape() == theta.shape();
    if !fast {
        return Ok(None);
    }
    let (dk, dt) = (d as f32, (1.0 - d) as f32);
    let out = with_slice::<f32, _>(avg, "ema", |a| {
        with_slice::<f32, _>(theta, "ema", |t| {
            Ok(a.iter().zip(t).map(|(a, t)| (a * dk + 0.0) + (t * dt + 0.0)).collect::<Vec<_>>())
        })
    })?;
    Ok(Some(Tensor::from_vec(out, avg.shape(), avg.device())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::Device;

    /// The kernel's bits equal Candle's `avg·d + θ·(1 − d)` on values of mixed sign and scale, at a
    /// decay whose f32 rounding matters, and the result is the average computed in f64 to f32
    /// rounding; stock mode hands back `None`.
    #[test]
    fn one_pass_average_has_candle_ops_bits() {
        let dev = Device::Cpu;
        let n = 5_000;
        let a: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 7.0 - 60.0).collect();
        let t: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 997) as f32 / 3e3 - 0.2).collect();
        let (at, tt) = (Tensor::new(a.as_slice(), &dev).unwrap(), Tensor::new(t.as_slice(), &dev).unwrap());
        for d in [0.0, 0.9991, 0.5] {
            let fused = ema_update(&at, &tt, d).unwrap().expect("fast path").to_vec1::<f32>().unwrap();
            let ops = ((&at * d).unwrap() + (&tt * (1.0 - d)).unwrap()).unwrap().to_vec1::<f32>().unwrap();
            assert!(fused.iter().zip(&ops).all(|(x, y)| x.to_bits() == y.to_bits()), "d = {d}");
            for i in 0..n {
                let exact = d * a[i] as f64 + (1.0 - d) * t[i] as f64;
                assert!((fused[i] as f64 - exact).abs() <= 1e-6 * (1.0 + exact.abs()), "d = {d}, i = {i}");
            }
        }
        let stock = crate::with_stock_kernels(|| ema_update(&at, &tt, 0.9).unwrap());
        assert!(stock.is_none());
    }
}

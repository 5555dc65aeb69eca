//! Nearest-neighbour ×2 upsampling, `(B, C, H, W) → (B, C, 2H, 2W)`, `y[.., i, j] = x[.., i/2, j/2]`,
//! whose backward sums each 2x2 block: `dx[.., i, j] = Σ_{a,b ∈ {0,1}} dy[.., 2i + a, 2j + b]`.
//!
//! Candle 0.11's `upsample_nearest2d` backward overwrites the gradient accumulated for its input
//! instead of adding to it; as a custom op this one's gradient is accumulated like any other.

use crate::elem::{uninit_vec, Float};
use crate::profile::{timed, Kernel};
use crate::storage::{slice, with_slice};
use candle::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct Upsample2x;

fn up<T: Float>(x: &[T], h: usize, w: usize) -> Vec<T> {
    let mut out = uninit_vec(x.len() * 4); // every element is written below
    if x.is_empty() {
        return out;
    }
    out.par_chunks_mut(4 * h * w).zip(x.par_chunks(h * w)).for_each(|(o, xi)| {
        for (i, row) in xi.chunks(w).enumerate() {
            let (r0, r1) = o[i * 4 * w..(i + 1) * 4 * w].split_at_mut(2 * w);
            for (j, &v) in row.iter().enumerate() {
                r0[2 * j] = v;
                r0[2 * j + 1] = v;
            }
            r1.copy_from_slice(r0);
        }
    });
    out
}

fn down_sum<T: Float>(dy: &[T], h: usize, w: usize) -> Vec<T> {
    let mut dx = uninit_vec(dy.len() / 4); // every element is written below
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(h * w).zip(dy.par_chunks(4 * h * w)).for_each(|(d, g)| {
        for (i, row) in d.chunks_mut(w).enumerate() {
            let (r0, r1) = (&g[2 * i * 2 * w..][..2 * w], &g[(2 * i + 1) * 2 * w..][..2 * w]);
            for (j, v) in row.iter_mut().enumerate() {
                *v = (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]);
            }
        }
    });
    dx
}

impl CustomOp1 for Upsample2x {
    fn name(&self) -> &'static str {
        "memgen-upsample-nearest2x"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l.shape().dims4()?;
        let shape = Shape::from((b, c, 2 * h, 2 * w));
        match s {
            CpuStorage::F32(_) => {
                let x = slice::<f32>(s, l, "upsample")?;
                Ok((CpuStorage::F32(timed(Kernel::Upsample, || up(x, h, w))), shape))
            }
            CpuStorage::F64(_) => Ok((CpuStorage::F64(up(slice::<f64>(s, l, "upsample")?, h, w)), shape)),
            _ => candle::bail!("upsample: unsupported dtype (f32 and f64 only)"),
        }
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = x.dims4()?;
        let grad = grad.contiguous()?;
        let dx = match x.dtype() {
            DType::F32 => Tensor::from_vec(
                with_slice::<f32, _>(&grad, "upsample", |g| {
                    Ok(timed(Kernel::Upsample, || down_sum(g, h, w)))
                })?,
                x.shape(),
                x.device(),
            )?,
            DType::F64 => Tensor::from_vec(
                with_slice::<f64, _>(&grad, "upsample", |g| {
                    Ok(timed(Kernel::Upsample, || down_sum(g, h, w)))
                })?,
                x.shape(),
                x.device(),
            )?,
            d => candle::bail!("upsample backward: unsupported dtype {d:?}"),
        };
        Ok(Some(dx))
    }
}

/// Nearest ×2 upsampling with a correct (accumulating) backward: the custom op on CPU f32/f64,
/// reshape + broadcast (whose backward is a sum) elsewhere.
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if crate::is_fast_path(x) {
        return x.contiguous()?.apply_op1(Upsample2x);
    }
    x.reshape((b, c, h, 1, w, 1))?.broadcast_as((b, c, h, 2, w, 2))?.reshape((b, c, 2 * h, 2 * w))
}

//! The 2x2, stride-2 transposed convolution (no padding, no bias) of the blind UNet's decoder, as
//! one GEMM per image, with its backward.
//!
//! `y[b, o, 2i + a, 2j + c] = Σ_k x[b, k, i, j] · w[k, o, a, c]` for `x (B, K, H, W)` and
//! `w (K, O, 2, 2)` (PyTorch's `ConvTranspose2d` layout). With `W` the `K x 4O` matrix of `w` and
//! `X_b` the `K x HW` matrix of image `b`: `Z_b = Wᵀ · X_b` (`4O x HW`) holds every output pixel,
//! and `y` is `Z_b` with each row `(o, a, c)` scattered to the pixels `(2i + a, 2j + c)`. Backward,
//! with `G_b` the same rearrangement of `dy`: `dX_b = W · G_b` and `dW = Σ_b X_b · G_bᵀ`.

use crate::elem::{uninit_vec, Float};
use crate::gemm::{matmul, partition, View};
use crate::storage::{slice, with_slice};
use candle::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy)]
struct Geom {
    b: usize,
    k: usize,
    h: usize,
    w: usize,
    o: usize,
}

impl Geom {
    fn p(&self) -> usize {
        self.h * self.w
    }
}

/// `Z (4O x HW)` of one image → its output `(O, 2H, 2W)`.
fn scatter_blocks<T: Float>(g: &Geom, z: &[T], y: &mut [T]) {
    let (h, w, p) = (g.h, g.w, g.p());
    for o in 0..g.o {
        let yo = &mut y[o * 4 * p..(o + 1) * 4 * p];
        for a in 0..2 {
            for c in 0..2 {
                let zr = &z[(o * 4 + a * 2 + c) * p..][..p];
                for i in 0..h {
                    let row = &mut yo[(2 * i + a) * 2 * w..][..2 * w];
                    for j in 0..w {
                        row[2 * j + c] = zr[i * w + j];
                    }
                }
            }
        }
    }
}

/// The adjoint of [`scatter_blocks`]: `dy (O, 2H, 2W)` of one image → `G (4O x HW)`.
fn gather_blocks<T: Float>(g: &Geom, dy: &[T], gm: &mut [T]) {
    let (h, w, p) = (g.h, g.w, g.p());
    for o in 0..g.o {
        let d = &dy[o * 4 * p..(o + 1) * 4 * p];
        for a in 0..2 {
            for c in 0..2 {
                let gr = &mut gm[(o * 4 + a * 2 + c) * p..][..p];
                for i in 0..h {
                    let row = &d[(2 * i + a) * 2 * w..][..2 * w];
                    for j in 0..w {
                        gr[i * w + j] = row[2 * j + c];
                    }
                }
            }
        }
    }
}

fn forward<T: Float>(g: &Geom, x: &[T], w: &[T]) -> Vec<T> {
    let (p, o4) = (g.p(), 4 * g.o);
    let mut out = uninit_vec(g.b * o4 * p); // every element is written by scatter_blocks
    if out.is_empty() {
        return out;
    }
    let wt = View::transposed(w, o4);
    out.par_chunks_mut(o4 * p).zip(x.par_chunks(g.k * p)).for_each(|(y, xb)| {
        let mut z = uninit_vec(o4 * p); // overwritten by the product
        matmul(o4, p, g.k, &mut z, (p, 1), false, wt, View::rows(xb, p), 1);
        scatter_blocks(g, &z, y);
    });
    out
}

/// `(dx, dw)`; `dx` only when asked for.
fn backward<T: Float>(g: &Geom, x: &[T], w: &[T], dy: &[T], need_dx: bool) -> (Option<Vec<T>>, Vec<T>) {
    let (p, o4) = (g.p(), 4 * g.o);
    let parts = partition(g.b, rayon::current_num_threads());
    let mut dx = need_dx.then(|| uninit_vec(g.b * g.k * p)); // overwritten by the products
    let mut chunks: Vec<Option<&mut [T]>> = Vec::new();
    match dx.as_deref_mut() {
        Some(mut rest) => {
            for r in &parts {
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * g.k * p);
                chunks.push(Some(head));
                rest = tail;
            }
        }
        None => chunks.extend(parts.iter().map(|_| None)),
    }
    let partials: Vec<Vec<T>> = parts
        .into_par_iter()
        .zip(chunks)
        .map(|(r, mut dxp)| {
            let mut dw = vec![T::zero(); g.k * o4];
            let mut gm = uninit_vec(o4 * p); // overwritten by gather_blocks
            for (i, b) in r.enumerate() {
                gather_blocks(g, &dy[b * o4 * p..][..o4 * p], &mut gm);
                let xb = &x[b * g.k * p..][..g.k * p];
                matmul(g.k, o4, p, &mut dw, (o4, 1), true, View::rows(xb, p), View::transposed(&gm, p), 1);
                if let Some(d) = dxp.as_deref_mut() {
                    let dxb = &mut d[i * g.k * p..][..g.k * p];
                    matmul(g.k, p, o4, dxb, (p, 1), false, View::rows(w, o4), View::rows(&gm, p), 1);
                }
            }
            dw
        })
        .collect();
    let mut dw = vec![T::zero(); g.k * o4];
    for part in &partials {
        crate::elem::add_assign(&mut dw, part);
    }
    (dx, dw)
}

struct ConvTranspose2x2;

fn geom(x: &Shape, w: &Shape) -> Result<Geom> {
    let (b, k, h, wd) = x.dims4()?;
    let (k2, o, kh, kw) = w.dims4()?;
    if k != k2 || kh != 2 || kw != 2 {
        candle::bail!(
            "conv_transpose2x2: input {:?} and weight {:?} must be (B, K, H, W) and (K, O, 2, 2)",
            x.dims(),
            w.dims()
        );
    }
    Ok(Geom { b, k, h, w: wd, o })
}

impl CustomOp2 for ConvTranspose2x2 {
    fn name(&self) -> &'static str {
        "memgen-conv-transpose-2x2"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = geom(l1.shape(), l2.shape())?;
        let shape = Shape::from((g.b, g.o, 2 * g.h, 2 * g.w));
        match s1 {
            CpuStorage::F32(_) => {
                let y = forward(
                    &g,
                    slice::<f32>(s1, l1, "conv_transpose2x2")?,
                    slice::<f32>(s2, l2, "conv_transpose2x2")?,
                );
                Ok((CpuStorage::F32(y), shape))
            }
            CpuStorage::F64(_) => {
                let y = forward(
                    &g,
                    slice::<f64>(s1, l1, "conv_transpose2x2")?,
                    slice::<f64>(s2, l2, "conv_transpose2x2")?,
                );
                Ok((CpuStorage::F64(y), shape))
            }
            _ => candle::bail!("conv_transpose2x2: unsupported dtype (f32 and f64 only)"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = geom(x.shape(), w.shape())?;
        let grad = grad.contiguous()?;
        let need_dx = x.track_op();
        macro_rules! run {
            ($t:ty) => {{
                let (dx, dw) = with_slice::<$t, _>(x, "conv_transpose2x2", |xd| {
                    with_slice::<$t, _>(w, "conv_transpose2x2", |wd| {
                        with_slice::<$t, _>(&grad, "conv_transpose2x2", |gd| {
                            Ok(backward(&g, xd, wd, gd, need_dx))
                        })
                    })
                })?;
                let dx = dx.map(|v| Tensor::from_vec(v, x.shape(), x.device())).transpose()?;
                (dx, Some(Tensor::from_vec(dw, w.shape(), w.device())?))
            }};
        }
        Ok(match x.dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            _ => candle::bail!("conv_transpose2x2 backward: unsupported dtype (f32 and f64 only)"),
        })
    }
}

/// The 2x2, stride-2, unpadded, bias-free transposed convolution `x (B, K, H, W)`,
/// `w (K, O, 2, 2)` → `(B, O, 2H, 2W)`: the GEMM op above on CPU f32/f64, Candle's
/// `conv_transpose2d` elsewhere.
pub fn conv_transpose2x2(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if crate::is_fast_path(x) && x.dtype() == w.dtype() {
        return x.contiguous()?.apply_op2(&w.contiguous()?, ConvTranspose2x2);
    }
    x.conv_transpose2d(w, 0, 0, 2, 1)
}

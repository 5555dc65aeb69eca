//! The AdamW update of one parameter tensor in a single pass (Loshchilov & Hutter 2019):
//!
//! `m ← β1 m + (1 − β1) g`, `v ← β2 v + (1 − β2) g²`,
//! `θ ← θ (1 − lr·λ) − lr · (m / c1) / (sqrt(v / c2) + ε)` with the bias corrections
//! `c1 = 1 − β1^t`, `c2 = 1 − β2^t`.
//!
//! Candle's ops would take a dozen passes over the parameter, each allocating its output; this
//! reads θ, m, v, g once and writes θ, m, v once, in parallel over fixed chunks.

use crate::storage::with_slice;
use candle::{DType, Result, Tensor};
use rayon::prelude::*;

/// Elements per parallel work item.
const CHUNK: usize = 16 * 1024;

/// The scalars of one AdamW step.
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub lr: f64,
    /// `1 − β1^t`.
    pub bias_correction1: f64,
    /// `1 − β2^t`.
    pub bias_correction2: f64,
}

/// The updated `(θ, m, v)` for CPU f32 tensors of one shape (contiguous), or `None` when the
/// tensors are elsewhere or in stock mode ([`crate::with_stock_kernels`]): callers then use
/// Candle's ops.
pub fn adamw_update(
    theta: &Tensor,
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    s: AdamWStep,
) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    let all = [theta, m, v, g];
    let fast = all.iter().all(|t| crate::is_fast_path(t) && t.dtype() == DType::F32 && t.is_contiguous())
        && all.iter().all(|t| t.shape() == theta.shape());
    if !fast {
        return Ok(None);
    }
    let n = theta.elem_count();
    let (mut th2, mut m2, mut v2) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    with_slice::<f32, _>(theta, "adamw", |th| {
        with_slice::<f32, _>(m, "adamw", |m| {
            with_slice::<f32, _>(v, "adamw", |v| {
                with_slice::<f32, _>(g, "adamw", |g| {
                    update(s, [th, m, v, g], [&mut th2, &mut m2, &mut v2]);
                    Ok(())
                })
            })
        })
    })?;
    let (shape, dev) = (theta.shape(), theta.device());
    Ok(Some((
        Tensor::from_vec(th2, shape, dev)?,
        Tensor::from_vec(m2, shape, dev)?,
        Tensor::from_vec(v2, shape, dev)?,
    )))
}

/// [`adamw_update`] on slices: `inp = [θ, m, v, g]`, `out = [θ', m', v']`.
fn update(s: AdamWStep, inp: [&[f32]; 4], out: [&mut [f32]; 3]) {
    let [th, m, v, g] = inp;
    let [th2, m2, v2] = out;
    let (b1, b2) = (s.beta1 as f32, s.beta2 as f32);
    let (a1, a2) = ((1.0 - s.beta1) as f32, (1.0 - s.beta2) as f32);
    let (r1, r2) = ((1.0 / s.bias_correction1) as f32, (1.0 / s.bias_correction2) as f32);
    let (decay, lr, eps) = ((1.0 - s.lr * s.weight_decay) as f32, s.lr as f32, s.eps as f32);
    th2.par_chunks_mut(CHUNK)
        .zip(m2.par_chunks_mut(CHUNK))
        .zip(v2.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, ((t2, mm), vv))| {
            let o = c * CHUNK;
            for i in 0..t2.len() {
                let gi = g[o + i];
                let mi = m[o + i] * b1 + gi * a1;
                let vi = v[o + i] * b2 + (gi * gi) * a2;
                let upd = (mi * r1) / ((vi * r2).sqrt() + eps);
                t2[i] = th[o + i] * decay - upd * lr;
                mm[i] = mi;
                vv[i] = vi;
            }
        });
}

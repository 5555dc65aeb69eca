//! GroupNorm (Wu & He 2018, arXiv:1803.08494), optionally fused with SiLU, forward and backward in
//! one pass each.
//!
//! For sample `b` and group `g` of `n = (C/G)·S` values (`S` = pixels):
//! `μ = Σx / n`, `σ² = Σ(x − μ)² / n`, `x̂ = (x − μ) / sqrt(σ² + ε)`, `y = γ_c x̂ + β_c`, and with
//! SiLU the output is `z = y · sigmoid(y)`. Backward, with `u = ∂L/∂y` (for SiLU,
//! `u = ∂L/∂z · s (1 + y (1 − s))`, `s = sigmoid(y)`):
//! `∂L/∂γ_c = Σ u x̂`, `∂L/∂β_c = Σ u`, and
//! `∂L/∂x = (γ_c u − mean_g(γ u) − x̂ · mean_g(γ u x̂)) / sqrt(σ² + ε)`.

use crate::elem::{simd_variant, uninit_vec, Float};
use crate::gemm::partition;
use crate::profile::{timed, Kernel};
use crate::storage::{slice, with_slice};
use candle::{CpuStorage, CustomOp3, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

/// Accumulators of [`lane_sum`]: one 512-bit register of f32 (two of 256 bits).
const LANES: usize = 16;

/// `Σ f(a_i, b_i)` in [`LANES`] independent accumulators (so that the loop vectorises), then
/// in f64. `a` and `b` have the same length.
#[inline(always)]
fn lane_sum<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> f64 {
    let mut acc = [T::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(&x, &y)| f(x, y).as_f64()).sum();
    for (xa, xb) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += f(xa[l], xb[l]);
        }
    }
    acc.iter().map(|v| v.as_f64()).sum::<f64>() + tail
}

/// Shape of one GroupNorm: `B` samples of `C` channels of `S` values, `G` groups.
#[derive(Debug, Clone, Copy)]
struct NormGeom {
    b: usize,
    c: usize,
    s: usize,
    groups: usize,
}

impl NormGeom {
    fn group_len(&self) -> usize {
        self.c / self.groups * self.s
    }
}

/// `(μ, 1 / sqrt(σ² + ε))` of one group's values.
#[inline(always)]
fn stats<T: Float>(x: &[T], eps: f64) -> (T, T) {
    let n = x.len();
    let mean = lane_sum(x, x, |v, _| v) / n as f64;
    let m = T::from_f64(mean);
    let var = lane_sum(x, x, |v, _| (v - m) * (v - m)) / n as f64;
    (m, T::from_f64(1.0 / (var + eps).sqrt()))
}

#[inline(always)]
fn forward_image_body<T: Float>(
    g: &NormGeom,
    op: &GroupNormOp,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    out: &mut [T],
) {
    let (cpg, s) = (g.c / g.groups, g.s);
    for (xg, (og, gi)) in x.chunks(g.group_len()).zip(out.chunks_mut(g.group_len()).zip(0..)) {
        let (mean, rstd) = stats(xg, op.eps);
        for j in 0..cpg {
            let c = gi * cpg + j;
            let (a, shift) = (rstd * gamma[c], beta[c]);
            let (xs, os) = (&xg[j * s..(j + 1) * s], &mut og[j * s..(j + 1) * s]);
            if op.silu {
                for (o, &v) in os.iter_mut().zip(xs) {
                    let y = (v - mean) * a + shift;
                    *o = y * y.sigmoid();
                }
            } else {
                for (o, &v) in os.iter_mut().zip(xs) {
                    *o = (v - mean) * a + shift;
                }
            }
        }
    }
}

/// Backward of one sample: writes `∂L/∂x` into `dx` and adds `Σ u x̂`, `Σ u` per channel to
/// `dgamma`, `dbeta`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_image_body<T: Float>(
    g: &NormGeom,
    op: &GroupNormOp,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    dz: &[T],
    dx: &mut [T],
    dgamma: &mut [f64],
    dbeta: &mut [f64],
) {
    let (cpg, s, n) = (g.c / g.groups, g.s, g.group_len());
    for gi in 0..g.groups {
        let range = gi * n..(gi + 1) * n;
        let (xg, dzg, dxg) = (&x[range.clone()], &dz[range.clone()], &mut dx[range]);
        let (mean, rstd) = stats(xg, op.eps);
        let (mut m1, mut m2) = (0.0f64, 0.0f64);
        for j in 0..cpg {
            let c = gi * cpg + j;
            let (xs, dzs, us) =
                (&xg[j * s..(j + 1) * s], &dzg[j * s..(j + 1) * s], &mut dxg[j * s..(j + 1) * s]);
            if op.silu {
                let (gm, bt) = (gamma[c], beta[c]);
                for ((u, &v), &d) in us.iter_mut().zip(xs).zip(dzs) {
                    let y = (v - mean) * rstd * gm + bt;
                    let sg = y.sigmoid();
                    *u = d * sg * (T::one() + y * (T::one() - sg));
                }
            } else {
                us.copy_from_slice(dzs);
            }
            let su = lane_sum(us, us, |u, _| u);
            let sux = lane_sum(us, xs, |u, v| u * (v - mean)) * rstd.as_f64();
            dbeta[c] += su;
            dgamma[c] += sux;
            m1 += gamma[c].as_f64() * su;
            m2 += gamma[c].as_f64() * sux;
        }
        let (m1, m2) = (T::from_f64(m1 / n as f64), T::from_f64(m2 / n as f64));
        for j in 0..cpg {
            let gm = gamma[gi * cpg + j];
            let (xs, us) = (&xg[j * s..(j + 1) * s], &mut dxg[j * s..(j + 1) * s]);
            for (u, &v) in us.iter_mut().zip(xs) {
                let xhat = (v - mean) * rstd;
                *u = rstd * (gm * *u - m1 - xhat * m2);
            }
        }
    }
}

simd_variant!(fn forward_image = forward_image_body<T>(
    g: &NormGeom, op: &GroupNormOp, x: &[T], gamma: &[T], beta: &[T], out: &mut [T]
));
simd_variant!(fn backward_image = backward_image_body<T>(
    g: &NormGeom, op: &GroupNormOp, x: &[T], gamma: &[T], beta: &[T], dz: &[T], dx: &mut [T],
    dgamma: &mut [f64], dbeta: &mut [f64]
));

/// The fused op `(x, γ, β) → GN(x)` or `SiLU(GN(x))`.
#[derive(Debug, Clone, Copy)]
struct GroupNormOp {
    groups: usize,
    eps: f64,
    silu: bool,
}

impl GroupNormOp {
    fn geom(&self, x: &Shape) -> Result<NormGeom> {
        let dims = x.dims();
        if dims.len() < 2 {
            candle::bail!("group_norm: expected (B, C, ...), got {dims:?}");
        }
        let (b, c, s) = (dims[0], dims[1], dims[2..].iter().product());
        if self.groups == 0 || c % self.groups != 0 {
            candle::bail!("group_norm: {} groups do not divide {c} channels", self.groups);
        }
        Ok(NormGeom { b, c, s, groups: self.groups })
    }

    fn fwd<T: Float>(
        &self,
        x: (&CpuStorage, &Layout),
        gm: (&CpuStorage, &Layout),
        bt: (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geom(x.1.shape())?;
        let (xd, gd, bd) = (
            slice::<T>(x.0, x.1, "group_norm")?,
            slice::<T>(gm.0, gm.1, "group_norm")?,
            slice::<T>(bt.0, bt.1, "group_norm")?,
        );
        if gd.len() != g.c || bd.len() != g.c {
            candle::bail!("group_norm: weight and bias must have {} values", g.c);
        }
        let mut out = uninit_vec(xd.len()); // every element is written by forward_image
        let img = (g.c * g.s).max(1);
        timed(Kernel::NormForward, || {
            out.par_chunks_mut(img)
                .zip(xd.par_chunks(img))
                .for_each(|(o, xi)| forward_image(&g, self, xi, gd, bd, o))
        });
        Ok((T::to_cpu_storage_owned(out), x.1.shape().clone()))
    }

    fn bwd_typed<T: Float>(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        dz: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let g = self.geom(x.shape())?;
        let img = (g.c * g.s).max(1);
        let mut dx = uninit_vec(x.elem_count()); // every element is written by backward_image
        let parts = partition(g.b, rayon::current_num_threads());
        let partials: Vec<(Vec<f64>, Vec<f64>)> = with_slice::<T, _>(x, "group_norm backward", |xd| {
            with_slice::<T, _>(gamma, "group_norm backward", |gd| {
                with_slice::<T, _>(beta, "group_norm backward", |bd| {
                    with_slice::<T, _>(dz, "group_norm backward", |dzd| {
                        let mut chunks = Vec::new();
                        let mut rest = dx.as_mut_slice();
                        for r in &parts {
                            let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * img);
                            chunks.push((r.clone(), head));
                            rest = tail;
                        }
                        Ok(chunks
                            .into_par_iter()
                            .map(|(r, dxp)| {
                                let (mut dgm, mut dbt) = (vec![0.0; g.c], vec![0.0; g.c]);
                                {
                                    for (i, b) in r.enumerate() {
                                        let at = b * img..(b + 1) * img;
                                        let dxi = &mut dxp[i * img..(i + 1) * img];
                                        backward_image(
                                            &g,
                                            self,
                                            &xd[at.clone()],
                                            gd,
                                            bd,
                                            &dzd[at],
                                            dxi,
                                            &mut dgm,
                                            &mut dbt,
                                        );
                                    }
                                }
                                (dgm, dbt)
                            })
                            .collect())
                    })
                })
            })
        })?;
        let (mut dgm, mut dbt) = (vec![0.0f64; g.c], vec![0.0f64; g.c]);
        for (pg, pb) in &partials {
            dgm.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
            dbt.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
        }
        let dev = x.device();
        let cast = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
        Ok((
            Tensor::from_vec(dx, x.shape(), dev)?,
            Tensor::from_vec(cast(dgm), gamma.shape(), dev)?,
            Tensor::from_vec(cast(dbt), beta.shape(), dev)?,
        ))
    }
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        if self.silu {
            "memgen-group-norm-silu"
        } else {
            "memgen-group-norm"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match s1 {
            CpuStorage::F32(_) => self.fwd::<f32>((s1, l1), (s2, l2), (s3, l3)),
            CpuStorage::F64(_) => self.fwd::<f64>((s1, l1), (s2, l2), (s3, l3)),
            _ => candle::bail!("group_norm: unsupported dtype (f32 and f64 only)"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (dx, dg, db) = match x.dtype() {
            DType::F32 => timed(Kernel::NormBackward, || self.bwd_typed::<f32>(x, gamma, beta, &grad))?,
            DType::F64 => timed(Kernel::NormBackward, || self.bwd_typed::<f64>(x, gamma, beta, &grad))?,
            d => candle::bail!("group_norm backward: unsupported dtype {d:?}"),
        };
        Ok((Some(dx), Some(dg), Some(db)))
    }
}

/// GroupNorm with the parameters and checkpoint names of `candle_nn::GroupNorm` (`weight`, `bias`,
/// one per channel). [`GroupNorm::forward_silu`] fuses the SiLU that follows it in a UNet block.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl GroupNorm {
    pub fn new(weight: Tensor, bias: Tensor, groups: usize, eps: f64) -> Self {
        GroupNorm { weight, bias, groups, eps }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    fn apply(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        if crate::is_fast_path(x) && x.dtype() == self.weight.dtype() {
            let op = GroupNormOp { groups: self.groups, eps: self.eps, silu };
            return x.contiguous()?.apply_op3(&self.weight.contiguous()?, &self.bias.contiguous()?, op);
        }
        let y = candle_nn::GroupNorm::new(
            self.weight.clone(),
            self.bias.clone(),
            x.dim(1)?,
            self.groups,
            self.eps,
        )?
        .forward(x)?;
        if silu {
            y.silu()
        } else {
            Ok(y)
        }
    }

    /// `SiLU(GN(x))` in one pass.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, true)
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, false)
    }
}

/// A [`GroupNorm`] initialised and named exactly as `candle_nn::group_norm` (γ = 1, β = 0).
pub fn group_norm(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<GroupNorm> {
    if groups == 0 || channels % groups != 0 {
        candle::bail!("group_norm: {groups} groups do not divide {channels} channels");
    }
    let weight = vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.))?;
    let bias = vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.))?;
    Ok(GroupNorm::new(weight, bias, groups, eps))
}

//! 2-D convolution as GEMM over packed patches, with its backward.
//!
//! For image `b`, with the patch matrix `X_b = im2col(x_b)` of shape `(C·KH·KW) x P` and the weight
//! as an `O x (C·KH·KW)` matrix `W`:
//!
//! - forward: `Y_b = W · X_b + bias` (`O x P`);
//! - weight gradient: `dW = Σ_b dY_b · X_bᵀ`;
//! - input gradient: `dx_b = col2im(Wᵀ · dY_b)`;
//! - bias gradient: `dbias[b, o] = Σ_p dY_b[o, p]` (summed over `b` for a per-channel bias).
//!
//! Images are processed in groups of at least [`GROUP_PIXELS`] output pixels (so that small maps
//! still give GEMMs wide enough to run near peak), groups in parallel with one single-threaded GEMM
//! each; when there are fewer groups than threads, the GEMMs themselves are split instead.
//!
//! The forward of stride-1 convs that keep the map size skips the patch matrix ([`direct`]).

use crate::elem::{as_f32, as_f32_mut, uninit_vec, Float};
use crate::gemm::{matmul, partition, View};
use crate::im2col::{col2im, im2col, ConvGeom};
use crate::profile::{timed_layer, Kernel};
use crate::scratch::with_scratch;
use crate::storage::{slice, with_slice};
use candle::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};
use rayon::prelude::*;
use std::ops::Range;

mod direct;

/// Output pixels per GEMM below which images are grouped into one product.
const GROUP_PIXELS: usize = 256;

/// Size of a patch-matrix block (elements): large maps are cut into bands of output rows so that
/// the block stays in a core's L2 cache between its packing and the GEMM that reads it.
const BLOCK_ELEMS: usize = 96 * 1024;

/// Where the bias comes from: none, one value per output channel `(O,)`, or one per sample and
/// channel `(B, O)`.
#[derive(Clone, Copy)]
enum Bias<'a, T> {
    None,
    Channel(&'a [T]),
    Sample(&'a [T]),
}

impl<'a, T: Float> Bias<'a, T> {
    /// The same bias with f32 elements, when `T` is f32.
    fn as_f32(self) -> Option<Bias<'a, f32>> {
        Some(match self {
            Bias::None => Bias::None,
            Bias::Channel(v) => Bias::Channel(as_f32(v)?),
            Bias::Sample(v) => Bias::Sample(as_f32(v)?),
        })
    }

    fn value(&self, o_count: usize, b: usize, o: usize) -> T {
        match self {
            Bias::None => T::zero(),
            Bias::Channel(v) => v[o],
            Bias::Sample(v) => v[b * o_count + o],
        }
    }
}

/// Images per work item: one for large maps, else enough to give [`GROUP_PIXELS`] columns while
/// the patch matrix stays within a few blocks.
fn images_per_group(g: &ConvGeom) -> usize {
    let p = g.p().max(1);
    if p >= GROUP_PIXELS {
        return 1;
    }
    let by_cache = (4 * BLOCK_ELEMS / (g.k() * p).max(1)).max(1);
    GROUP_PIXELS.div_ceil(p).min(by_cache).clamp(1, g.b.max(1))
}

/// One GEMM's worth of work: images `b0..b0+n`, output rows `rows` of each (all rows when n > 1).
#[derive(Clone)]
struct Block {
    b0: usize,
    n: usize,
    rows: Range<usize>,
}

impl Block {
    /// First output pixel of the block within an image.
    fn p0(&self, g: &ConvGeom) -> usize {
        self.rows.start * g.wo
    }
    /// Output pixels per image in the block.
    fn tp(&self, g: &ConvGeom) -> usize {
        self.rows.len() * g.wo
    }
    /// Columns of the block's patch matrix: `n · tp`.
    fn cols(&self, g: &ConvGeom) -> usize {
        self.n * self.tp(g)
    }
    /// A single image whose (pointwise) input serves as its own patch matrix.
    fn direct(&self, g: &ConvGeom) -> bool {
        self.n == 1 && g.is_pointwise()
    }
}

/// The blocks of the work item of `n` images from `b0`: bands of rows for one image of a large
/// map, else the whole group at once.
fn blocks(g: &ConvGeom, b0: usize, n: usize) -> Vec<Block> {
    if n > 1 || g.is_pointwise() {
        return vec![Block { b0, n, rows: 0..g.ho }];
    }
    let rows_per = (BLOCK_ELEMS / (g.k() * g.wo).max(1)).max(1);
    partition(g.ho, g.ho.div_ceil(rows_per)).into_iter().map(|rows| Block { b0, n: 1, rows }).collect()
}

/// Copies the `o x tp` pixel ranges at `p0` of `n` consecutive images (`src`, image-major, `o x p`
/// each) side by side into the `o x (n·tp)` matrix `dst`.
fn gather<T: Float>(src: &[T], n: usize, o: usize, p: usize, dst: &mut [T]) {
    for i in 0..n {
        for r in 0..o {
            dst[r * n * p + i * p..][..p].copy_from_slice(&src[i * o * p + r * p..][..p]);
        }
    }
}

/// The inverse of [`gather`].
fn scatter<T: Float>(src: &[T], n: usize, o: usize, p: usize, dst: &mut [T]) {
    for i in 0..n {
        for r in 0..o {
            dst[i * o * p + r * p..][..p].copy_from_slice(&src[r * n * p + i * p..][..p]);
        }
    }
}

/// Fills the block's `O x (n·tp)` output region (row stride `rs`) with the bias.
fn fill_bias<T: Float>(g: &ConvGeom, bias: Bias<'_, T>, blk: &Block, dst: &mut [T], rs: usize) {
    let tp = blk.tp(g);
    for o in 0..g.o {
        for i in 0..blk.n {
            dst[o * rs + i * tp..][..tp].fill(bias.value(g.o, blk.b0 + i, o));
        }
    }
}

/// Packs the block's patches side by side into the `K x cols` matrix `col`.
fn pack<T: Float>(g: &ConvGeom, x: &[T], blk: &Block, col: &mut [T]) {
    let (np, tp, p0) = (blk.cols(g), blk.tp(g), blk.p0(g));
    for i in 0..blk.n {
        let xb = &x[(blk.b0 + i) * g.in_len()..][..g.in_len()];
        if g.is_pointwise() {
            for c in 0..g.c {
                col[c * np + i * tp..][..tp].copy_from_slice(&xb[c * g.p() + p0..][..tp]);
            }
        } else {
            im2col(g, xb, blk.rows.clone(), col, np, i * tp);
        }
    }
}

/// The input of a direct (pointwise, single-image) block as its own `C x P` patch matrix.
fn direct_view<'a, T: Float>(g: &ConvGeom, x: &'a [T], blk: &Block) -> View<'a, T> {
    View::rows(&x[blk.b0 * g.in_len()..][..g.in_len()], g.p())
}

/// Forward of the images `b0..` whose outputs are `out` (a whole number of images).
fn forward_item<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Bias<'_, T>,
    b0: usize,
    out: &mut [T],
    threads: usize,
) {
    let (k, p) = (g.k(), g.p());
    let n = out.len() / g.out_len();
    let wv = View::rows(w, k);
    let acc = !matches!(bias, Bias::None);
    for blk in blocks(g, b0, n) {
        let (np, p0) = (blk.cols(g), blk.p0(g));
        let product = |col: View<'_, T>, dst: &mut [T], rs: usize| {
            fill_bias(g, bias, &blk, dst, rs);
            matmul(g.o, np, k, dst, (rs, 1), acc, wv, col, threads);
        };
        if blk.direct(g) {
            product(direct_view(g, x, &blk), out, p);
            continue;
        }
        with_scratch(0, k * np, |col: &mut [T]| {
            pack(g, x, &blk, col);
            if n == 1 {
                product(View::rows(col, np), &mut out[p0..], p);
            } else {
                with_scratch(1, g.o * np, |tmp: &mut [T]| {
                    product(View::rows(col, np), tmp, np);
                    scatter(tmp, n, g.o, p, out);
                });
            }
        });
    }
}

/// Whether the direct kernel computes `g` for elements of type `T` (f32 only).
pub(crate) fn direct_applies<T: Float>(g: &ConvGeom) -> bool {
    direct::applies(g) && as_f32::<T>(&[]).is_some()
}

/// `out = conv(x, w)` (no bias) on channel-major buffers over the `g.b` images through the direct
/// kernel, on the calling thread; `false` (out untouched) where that kernel does not apply.
pub(crate) fn direct_channel_major<T: Float>(g: &ConvGeom, x: &[T], w: &[T], out: &mut [T]) -> bool {
    if !direct_applies::<T>(g) {
        return false;
    }
    match (as_f32(x), as_f32(w), as_f32_mut(out)) {
        (Some(x), Some(w), Some(out)) => {
            direct::forward_channel_major(g, x, w, out);
            true
        }
        _ => false,
    }
}

/// `y = conv(x, w) + bias` for contiguous `x (B, C, H, W)` and `w (O, C, KH, KW)`.
fn forward<T: Float>(g: &ConvGeom, x: &[T], w: &[T], bias: Bias<'_, T>) -> Vec<T> {
    // Every element is written before it is read: by the bias fill, or by the overwriting GEMM.
    let mut out = uninit_vec(g.b * g.out_len());
    if out.is_empty() {
        return out;
    }
    let threads = rayon::current_num_threads();
    // The direct path splits the batch over the threads; a batch smaller than that splits GEMMs.
    if direct::applies(g) && g.b >= threads {
        if let (Some(x), Some(w), Some(bias), Some(o)) =
            (as_f32(x), as_f32(w), bias.as_f32(), as_f32_mut(&mut out))
        {
            direct::forward(g, x, w, bias, o);
            return out;
        }
    }
    let gs = images_per_group(g);
    let chunk = gs * g.out_len();
    if g.b.div_ceil(gs) >= threads {
        out.par_chunks_mut(chunk).enumerate().for_each(|(i, o)| forward_item(g, x, w, bias, i * gs, o, 1));
    } else {
        out.chunks_mut(chunk).enumerate().for_each(|(i, o)| forward_item(g, x, w, bias, i * gs, o, threads));
    }
    out
}

/// The gradients of one conv: `dx` (when asked for), `dw`, and the per-sample bias gradient
/// `dbias[b, o] = Σ_p dy[b, o, p]` (when asked for).
struct Grads<T> {
    dx: Option<Vec<T>>,
    dw: Vec<T>,
    db: Option<Vec<T>>,
}

/// Backward of one block: adds its `dY · Xᵀ` to `dwt` (transposed, `K x O`: the GEMM runs 2-3x
/// faster with this destination layout when both operands are contiguous along the pixel axis)
/// and its input gradient to `dxi` (the block's images).
#[allow(clippy::too_many_arguments)]
fn backward_block<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    dy: &[T],
    blk: &Block,
    dwt: &mut [T],
    dxi: Option<&mut [T]>,
    threads: usize,
) {
    let (k, p, np, tp, p0) = (g.k(), g.p(), blk.cols(g), blk.tp(g), blk.p0(g));
    let dyg = &dy[blk.b0 * g.out_len()..][..blk.n * g.out_len()];
    with_scratch(1, if blk.n > 1 { g.o * np } else { 0 }, |tmp: &mut [T]| {
        let dyv = if blk.n > 1 {
            gather(dyg, blk.n, g.o, p, tmp);
            View::rows(&*tmp, np)
        } else {
            View { data: &dyg[p0..], rs: p, cs: 1 }
        };
        with_scratch(0, if blk.direct(g) { 0 } else { k * np }, |col: &mut [T]| {
            if blk.direct(g) {
                let xv = direct_view(g, x, blk);
                matmul(g.o, k, np, dwt, (1, g.o), true, dyv, View { data: xv.data, rs: 1, cs: p }, threads);
            } else {
                pack(g, x, blk, col);
                matmul(g.o, k, np, dwt, (1, g.o), true, dyv, View::transposed(col, np), threads);
            }
            let Some(dxi) = dxi else { return };
            let wt = View::transposed(w, k);
            if blk.direct(g) {
                return matmul(k, np, g.o, dxi, (p, 1), false, wt, dyv, threads);
            }
            matmul(k, np, g.o, col, (np, 1), false, wt, dyv, threads);
            for i in 0..blk.n {
                let dxb = &mut dxi[i * g.in_len()..][..g.in_len()];
                if g.is_pointwise() {
                    for c in 0..g.c {
                        dxb[c * p + p0..][..tp].copy_from_slice(&col[c * np + i * tp..][..tp]);
                    }
                } else {
                    col2im(g, &mut *col, blk.rows.clone(), np, i * tp, dxb);
                }
            }
        });
    });
}

/// Backward over the images `images`; `dx` is their slice of the full input gradient.
/// Returns their contribution to `dw`, transposed (`K x O`).
#[allow(clippy::too_many_arguments)]
fn backward_part<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    dy: &[T],
    images: Range<usize>,
    mut dx: Option<&mut [T]>,
    threads: usize,
) -> Vec<T> {
    let (gs, first) = (images_per_group(g), images.start);
    let mut dwt = vec![T::zero(); g.k() * g.o];
    for b0 in images.clone().step_by(gs) {
        let n = gs.min(images.end - b0);
        let mut dxi = dx.as_deref_mut().map(|d| &mut d[(b0 - first) * g.in_len()..][..n * g.in_len()]);
        for blk in blocks(g, b0, n) {
            backward_block(g, x, w, dy, &blk, &mut dwt, dxi.as_deref_mut(), threads);
        }
    }
    dwt
}

/// Splits `v` into consecutive mutable chunks of the given lengths.
fn split_lengths<T>(mut v: &mut [T], lens: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    let mut out = Vec::new();
    for len in lens {
        let (head, tail) = std::mem::take(&mut v).split_at_mut(len);
        out.push(head);
        v = tail;
    }
    out
}

/// The geometry of the input gradient of a stride-1 conv as a conv of its own, when it is one:
/// `dx = conv(dy, w̃)` with `w̃[c, o, i, j] = w[o, c, KH−1−i, KW−1−j]` and padding `K−1−p` (a
/// full correlation with the flipped kernel). Square kernels with `p ≤ K−1` only.
fn transposed_geom(g: &ConvGeom) -> Option<ConvGeom> {
    (g.stride == 1 && g.kh == g.kw && g.pad < g.kh && !g.is_pointwise()).then(|| ConvGeom {
        b: g.b,
        c: g.o,
        h: g.ho,
        w: g.wo,
        o: g.c,
        kh: g.kh,
        kw: g.kw,
        stride: 1,
        pad: g.kh - 1 - g.pad,
        ho: g.h,
        wo: g.w,
    })
}

/// `w̃` of [`transposed_geom`], `(C, O, KH, KW)`.
fn flipped_weight<T: Float>(g: &ConvGeom, w: &[T]) -> Vec<T> {
    let (kk, k2) = (g.kh * g.kw, g.kh * g.kw - 1);
    let mut out = vec![T::zero(); w.len()];
    for o in 0..g.o {
        for c in 0..g.c {
            for t in 0..kk {
                out[(c * g.o + o) * kk + t] = w[(o * g.c + c) * kk + k2 - t];
            }
        }
    }
    out
}

fn backward<T: Float>(g: &ConvGeom, x: &[T], w: &[T], dy: &[T], need_dx: bool, need_db: bool) -> Grads<T> {
    let db = need_db.then(|| bias_grad(g, dy));
    if let (true, Some(gt)) = (need_dx, transposed_geom(g)) {
        let (dx, dw) = backward_shared(g, &gt, x, w, dy);
        return Grads { dx: Some(dx), dw, db };
    }
    let (dx, dw) = backward_col2im(g, x, w, dy, need_dx);
    Grads { dx, dw, db }
}

/// `dbias[b, o] = Σ_p dy[b, o, p]`.
fn bias_grad<T: Float>(g: &ConvGeom, dy: &[T]) -> Vec<T> {
    let mut db = vec![T::zero(); g.b * g.o];
    if db.is_empty() {
        return db;
    }
    db.par_chunks_mut(g.o).zip(dy.par_chunks(g.out_len().max(1))).for_each(|(d, img)| {
        for (v, row) in d.iter_mut().zip(img.chunks(g.p().max(1))) {
            *v = T::from_f64(row.iter().map(|v| v.as_f64()).sum());
        }
    });
    db
}

/// One part of the batch per thread: whole groups of `gs` images.
fn image_parts(b: usize, gs: usize) -> Vec<Range<usize>> {
    partition(b.div_ceil(gs), rayon::current_num_threads())
        .into_iter()
        .map(|r| r.start * gs..(r.end * gs).min(b))
        .collect()
}

/// Backward of a stride-1 conv through the patches of `dy` alone (no second im2col of `x`).
///
/// With `D_b` the patch matrix of `dy_b` under the transposed geometry `gt` (rows `(o, i, j)`,
/// columns the input pixels) and `W̃` the flipped kernel as a `C x O·KH·KW` matrix:
/// `dx_b = W̃ · D_b` and `dW̃ = Σ_b X_b · D_bᵀ`, and `dW[o, c, i, j] = dW̃[c, (o, KH−1−i, KW−1−j)]`:
/// `Σ_q x[c, q] dy[o, q − (i, j) + p]` is the weight gradient's correlation written over input
/// pixels. Both products read the same packed `D_b`, while it is in cache.
fn backward_shared<T: Float>(g: &ConvGeom, gt: &ConvGeom, x: &[T], w: &[T], dy: &[T]) -> (Vec<T>, Vec<T>) {
    let wf = flipped_weight(g, w);
    let gs = images_per_group(gt);
    let parts = image_parts(g.b, gs);
    let inner = (rayon::current_num_threads() / parts.len()).max(1);
    let mut dx = uninit_vec(g.b * g.in_len()); // every element is written by a product
    let chunks = split_lengths(&mut dx, parts.iter().map(|r| r.len() * g.in_len()));
    let partials: Vec<Vec<T>> = parts
        .into_par_iter()
        .zip(chunks)
        .map(|(r, dxp)| {
            let mut dwft = vec![T::zero(); gt.k() * g.c];
            for b0 in r.clone().step_by(gs) {
                let n = gs.min(r.end - b0);
                let dxi = &mut dxp[(b0 - r.start) * g.in_len()..][..n * g.in_len()];
                for blk in blocks(gt, b0, n) {
                    backward_shared_block(g, gt, x, &wf, dy, &blk, dxi, &mut dwft, inner);
                }
            }
            dwft
        })
        .collect();
    // dwft is dW̃ transposed: element (c, (o, t)) at (o·KK + t)·C + c.
    let (kk, c) = (g.kh * g.kw, g.c);
    let mut dw = vec![T::zero(); w.len()];
    for part in &partials {
        for o in 0..g.o {
            for ci in 0..c {
                for t in 0..kk {
                    dw[(o * c + ci) * kk + t] += part[(o * kk + kk - 1 - t) * c + ci];
                }
            }
        }
    }
    (dx, dw)
}

/// One block of [`backward_shared`]: the input gradient of the block's images (`dx`, those images)
/// and its term of `dW̃ᵀ` (`dwft`, `O·KH·KW x C`).
#[allow(clippy::too_many_arguments)]
fn backward_shared_block<T: Float>(
    g: &ConvGeom,
    gt: &ConvGeom,
    x: &[T],
    wf: &[T],
    dy: &[T],
    blk: &Block,
    dx: &mut [T],
    dwft: &mut [T],
    threads: usize,
) {
    let (kt, pin, np, p0) = (gt.k(), gt.p(), blk.cols(gt), blk.p0(gt));
    with_scratch(0, kt * np, |col: &mut [T]| {
        pack(gt, dy, blk, col);
        // The second buffer gathers x and scatters dx for groups of images; single images need none.
        with_scratch(1, if blk.n > 1 { g.c * np } else { 0 }, |tmp: &mut [T]| {
            let xs = &x[blk.b0 * g.in_len()..][..blk.n * g.in_len()];
            let xv = if blk.n > 1 {
                gather(xs, blk.n, g.c, pin, tmp);
                View::rows(&*tmp, np)
            } else {
                View { data: &xs[p0..], rs: pin, cs: 1 }
            };
            matmul(g.c, kt, np, dwft, (1, g.c), true, xv, View::transposed(col, np), threads);
            let wv = View::rows(wf, kt);
            if blk.n == 1 {
                matmul(g.c, np, kt, &mut dx[p0..], (pin, 1), false, wv, View::rows(col, np), threads);
            } else {
                matmul(g.c, np, kt, tmp, (np, 1), false, wv, View::rows(col, np), threads);
                scatter(tmp, blk.n, g.c, pin, dx);
            }
        });
    });
}

/// Backward with the input gradient (when asked for) through `Wᵀ · dY` and col2im: `(dx, dw)`.
fn backward_col2im<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    dy: &[T],
    need_dx: bool,
) -> (Option<Vec<T>>, Vec<T>) {
    let parts = image_parts(g.b, images_per_group(g));
    let inner = (rayon::current_num_threads() / parts.len()).max(1);
    // The input gradient is accumulated by col2im, except for pointwise convs, whose GEMM writes
    // every element.
    let mut dx = need_dx.then(|| {
        if g.is_pointwise() {
            uninit_vec(g.b * g.in_len())
        } else {
            vec![T::zero(); g.b * g.in_len()]
        }
    });
    let dx_parts = match dx.as_deref_mut() {
        Some(d) => {
            split_lengths(d, parts.iter().map(|r| r.len() * g.in_len())).into_iter().map(Some).collect()
        }
        None => parts.iter().map(|_| None).collect::<Vec<_>>(),
    };
    let partials: Vec<Vec<T>> = parts
        .into_par_iter()
        .zip(dx_parts)
        .map(|(r, dxp)| backward_part(g, x, w, dy, r, dxp, inner))
        .collect();
    let (k, o) = (g.k(), g.o);
    let mut dw = vec![T::zero(); o * k];
    for part in &partials {
        for (kk, row) in part.chunks(o).enumerate() {
            for (co, v) in row.iter().enumerate() {
                dw[co * k + kk] += *v;
            }
        }
    }
    (dx, dw)
}

/// The conv op: `(x, w[, bias]) → y`, stride and zero padding on both axes.
#[derive(Debug, Clone, Copy)]
struct ConvOp {
    stride: usize,
    pad: usize,
}

impl ConvOp {
    fn geom(&self, x: &Shape, w: &Shape) -> Result<ConvGeom> {
        let (b, c, h, wd) = x.dims4()?;
        let (o, c2, kh, kw) = w.dims4()?;
        if c != c2 {
            candle::bail!("conv2d: input has {c} channels, weight expects {c2}");
        }
        if h + 2 * self.pad < kh || wd + 2 * self.pad < kw || self.stride == 0 {
            candle::bail!("conv2d: kernel {kh}x{kw} larger than the padded {h}x{wd} input (or stride 0)");
        }
        let (ho, wo) =
            ((h + 2 * self.pad - kh) / self.stride + 1, (wd + 2 * self.pad - kw) / self.stride + 1);
        Ok(ConvGeom { b, c, h, w: wd, o, kh, kw, stride: self.stride, pad: self.pad, ho, wo })
    }

    fn fwd<T: Float>(
        &self,
        xs: (&CpuStorage, &Layout),
        ws: (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geom(xs.1.shape(), ws.1.shape())?;
        let x = slice::<T>(xs.0, xs.1, "conv2d")?;
        let w = slice::<T>(ws.0, ws.1, "conv2d")?;
        let bias = match bias {
            None => Bias::None,
            Some((s, l)) => {
                let v = slice::<T>(s, l, "conv2d")?;
                match l.dims() {
                    [o] if *o == g.o => Bias::Channel(v),
                    [b, o] if *b == g.b && *o == g.o => Bias::Sample(v),
                    d => candle::bail!("conv2d: bias must be ({}) or ({}, {}), got {d:?}", g.o, g.b, g.o),
                }
            }
        };
        let shape = || Some((g.describe(), g.gemm_flops()));
        let out = timed_layer(Kernel::ConvForward, shape, || forward(&g, x, w, bias));
        Ok((T::to_cpu_storage_owned(out), Shape::from((g.b, g.o, g.ho, g.wo))))
    }

    fn bwd_typed<T: Float>(&self, x: &Tensor, w: &Tensor, grad: &Tensor, need_db: bool) -> Result<Grads<T>> {
        let g = self.geom(x.shape(), w.shape())?;
        let need_dx = x.track_op();
        with_slice::<T, _>(x, "conv2d backward", |xd| {
            with_slice::<T, _>(w, "conv2d backward", |wd| {
                with_slice::<T, _>(grad, "conv2d backward", |gd| {
                    Ok(backward(&g, xd, wd, gd, need_dx, need_db))
                })
            })
        })
    }

    /// `(dx, dw, dbias)` as tensors; `bias` gives the shape of the bias gradient.
    fn bwd_tensors(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dev = x.device();
        macro_rules! run {
            ($t:ty) => {{
                let g = self.geom(x.shape(), w.shape())?;
                let flops = g.gemm_flops() * if x.track_op() { 2.0 } else { 1.0 };
                let shape = || Some((g.describe(), flops));
                let gr = timed_layer(Kernel::ConvBackward, shape, || {
                    self.bwd_typed::<$t>(x, w, &grad, bias.is_some())
                })?;
                let dx = gr.dx.map(|v| Tensor::from_vec(v, x.shape(), dev)).transpose()?;
                let dw = Tensor::from_vec(gr.dw, w.shape(), dev)?;
                let db = match (bias, gr.db) {
                    (Some(b), Some(v)) => {
                        let (nb, no) = (x.dim(0)?, w.dim(0)?);
                        let per_sample = Tensor::from_vec(v, (nb, no), dev)?;
                        Some(if b.rank() == 1 { per_sample.sum(0)? } else { per_sample })
                    }
                    _ => None,
                };
                (dx, dw, db)
            }};
        }
        Ok(match x.dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            d => candle::bail!("conv2d backward: unsupported dtype {d:?}"),
        })
    }
}

macro_rules! dispatch_fwd {
    ($self:ident, $x:expr, $w:expr, $b:expr) => {
        match $x.0 {
            CpuStorage::F32(_) => $self.fwd::<f32>($x, $w, $b),
            CpuStorage::F64(_) => $self.fwd::<f64>($x, $w, $b),
            _ => candle::bail!("conv2d: unsupported dtype (f32 and f64 only)"),
        }
    };
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "memgen-conv2d"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch_fwd!(self, (s1, l1), (s2, l2), None)
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.bwd_tensors(x, w, None, grad)?;
        Ok((dx, Some(dw)))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "memgen-conv2d-bias"
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
        dispatch_fwd!(self, (s1, l1), (s2, l2), Some((s3, l3)))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.bwd_tensors(x, w, Some(b), grad)?;
        Ok((dx, Some(dw), db))
    }
}

/// A 2-D convolution layer with the weight layout and checkpoint names of `candle_nn::Conv2d`
/// (`weight (O, C, KH, KW)`, `bias (O,)`), running on the GEMM kernels above for CPU f32/f64
/// inputs with `groups = dilation = 1`, and on Candle's conv2d otherwise.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: Conv2dConfig,
}

impl Conv2d {
    pub fn new(weight: Tensor, bias: Option<Tensor>, config: Conv2dConfig) -> Self {
        Conv2d { weight, bias, config }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    fn fast(&self, x: &Tensor) -> bool {
        crate::is_fast_path(x)
            && x.dtype() == self.weight.dtype()
            && self.config.groups == 1
            && self.config.dilation == 1
    }

    /// `y[b, o] = conv(x)[b, o] + bias[o] + sample_bias[b, o]` with an optional per-sample bias
    /// `(B, O)` (e.g. a projected time embedding), added inside the conv on the fast path.
    pub fn forward_with_sample_bias(&self, x: &Tensor, sample_bias: Option<&Tensor>) -> Result<Tensor> {
        let cfg = &self.config;
        if !self.fast(x) {
            let mut y = x.conv2d(&self.weight, cfg.padding, cfg.stride, cfg.dilation, cfg.groups)?;
            let (b, o) = (y.dim(0)?, y.dim(1)?);
            if let Some(bias) = &self.bias {
                y = y.broadcast_add(&bias.reshape((1, o, 1, 1))?)?;
            }
            if let Some(sb) = sample_bias {
                y = y.broadcast_add(&sb.reshape((b, o, 1, 1))?)?;
            }
            return Ok(y);
        }
        let op = ConvOp { stride: cfg.stride, pad: cfg.padding };
        let (x, w) = (x.contiguous()?, self.weight.contiguous()?);
        let bias = match (&self.bias, sample_bias) {
            (None, None) => None,
            (Some(b), None) => Some(b.clone()),
            (None, Some(sb)) => Some(sb.clone()),
            (Some(b), Some(sb)) => Some(sb.broadcast_add(b)?),
        };
        match bias {
            None => x.apply_op2(&w, op),
            Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with_sample_bias(x, None)
    }
}

/// A [`Conv2d`] with bias, initialised and named exactly as `candle_nn::conv2d`.
pub fn conv2d(cin: usize, cout: usize, k: usize, cfg: Conv2dConfig, vb: VarBuilder) -> Result<Conv2d> {
    let c = candle_nn::conv2d(cin, cout, k, cfg, vb)?;
    Ok(Conv2d::new(c.weight().clone(), c.bias().cloned(), cfg))
}

/// A [`Conv2d`] without bias, initialised and named exactly as `candle_nn::conv2d_no_bias`.
pub fn conv2d_no_bias(
    cin: usize,
    cout: usize,
    k: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let c = candle_nn::conv2d_no_bias(cin, cout, k, cfg, vb)?;
    Ok(Conv2d::new(c.weight().clone(), None, cfg))
}

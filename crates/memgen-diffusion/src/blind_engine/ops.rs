//! Single-threaded kernels of the engine, on channel-major activations: a buffer of C channels over
//! the n images of a share, each s x s, holds `x[c][i][y][x]` at `c·n·s² + i·s² + y·s + x`, so one
//! channel of the whole share is one contiguous row of width n·s² and a convolution over the share
//! is one GEMM (`W (O x 9C) · patches (9C x n·s²)`), cut into chunks of images that keep the patch
//! matrix in cache. Every GEMM runs on the calling thread ([`matmul`] with 1 thread).

use memgen_kernels::gemm::{matmul, View};
use memgen_kernels::{planes, Float};
use std::ops::Range;

/// Elements of a patch (or product) matrix per chunk: 64 Ki floats, 256 KiB in f32, which stays in
/// a core's L2 cache next to the GEMM's packed operands.
const CHUNK_BUDGET: usize = 1 << 16;

/// One input of a convolution: `channels` rows of `data`, each of width n·s².
#[derive(Clone, Copy)]
pub(crate) struct Part<'a, T> {
    pub data: &'a [T],
    pub channels: usize,
}

/// One input of a convolution in the backward pass, with where its gradient goes: `dx` is
/// overwritten (`accumulate = false`) or added to.
pub(crate) struct PartGrad<'a, T> {
    pub x: Part<'a, T>,
    pub dx: Option<(&'a mut [T], bool)>,
}

/// Images per chunk such that a matrix of `rows` rows over the chunk's pixels (p per image) holds at
/// most [`CHUNK_BUDGET`] elements; at least 1, at most n.
fn chunk_images(rows: usize, p: usize, n: usize) -> usize {
    (CHUNK_BUDGET / (rows * p).max(1)).clamp(1, n.max(1))
}

/// The image ranges of the chunks of n images, `per` images each (the last one shorter).
fn chunks(n: usize, per: usize) -> impl Iterator<Item = Range<usize>> {
    (0..n).step_by(per.max(1)).map(move |i| i..(i + per).min(n))
}

/// Patch matrix of the images `imgs` of n: `col[(c·3 + ky)·3 + kx][(i − i0)·s² + y·s + x] =
/// x[c][i][y + ky − 1][x + kx − 1]` (0 outside the image), c running over the channels of `parts`
/// in order.
fn im2col<T: Float>(parts: &[Part<'_, T>], n: usize, s: usize, imgs: Range<usize>, col: &mut [T]) {
    let mut c0 = 0;
    for part in parts {
        planes::im2col3x3(part.data, part.channels, n, s, imgs.clone(), col, c0);
        c0 += part.channels;
    }
}

/// Makes `v` hold exactly `len` elements (new ones zero; existing contents are not kept meaningful).
pub(crate) fn fit<T: Float>(v: &mut Vec<T>, len: usize) {
    v.resize(len, T::zero());
}

/// What follows the GEMM of a convolution chunk by chunk, while the chunk is in cache:
/// `z[o] ← max(z[o]·scale[o], 0)` (`relu`) or `z[o]·scale[o]`; nothing when `scale` is `None`
/// (a ReLU alone takes a scale of ones).
#[derive(Clone, Copy)]
pub(crate) struct Epilogue<'a, T> {
    pub scale: Option<&'a [T]>,
    pub relu: bool,
}

/// 3x3 convolution with padding 1 and no bias over the n images of `parts` (C channels in all):
/// `z[o][i][q] = Σ_{c,ky,kx} w[o,c,ky,kx] · x[c][i][q + (ky − 1, kx − 1)]`, w of shape (O, C, 3, 3),
/// z of O rows of width n·s²; then `post`. Through the direct kernel ([`planes::conv_same_direct`])
/// where it applies, else each chunk of images through im2col and one GEMM, `post` on each chunk
/// while it is in cache.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3_fwd<T: Float>(
    w: &[T],
    o: usize,
    parts: &[Part<'_, T>],
    n: usize,
    s: usize,
    z: &mut [T],
    col: &mut Vec<T>,
    post: Epilogue<'_, T>,
) {
    let (p, k) = (s * s, 9 * parts.iter().map(|q| q.channels).sum::<usize>());
    let width = n * p;
    // The direct kernel, without a patch matrix, where it applies (several inputs are concatenated
    // into `col` first: channel-major, that is one input's rows after the other's).
    let inputs: Vec<&[T]> = parts.iter().map(|q| q.data).collect();
    if planes::conv_same_direct(w, o, &inputs, k / 9, n, s, 3, col, &mut z[..o * width]) {
        if let Some(scale) = post.scale {
            planes::scale_relu_in_place(z, width, 0, width, scale, post.relu);
        }
        return;
    }
    for imgs in chunks(n, chunk_images(k, p, n)) {
        let cols = imgs.len() * p;
        fit(col, k * cols);
        im2col(parts, n, s, imgs.clone(), col);
        let off = imgs.start * p;
        matmul(o, cols, k, &mut z[off..], (width, 1), false, View::rows(w, k), View::rows(col, cols), 1);
        if let Some(scale) = post.scale {
            planes::scale_relu_in_place(z, width, off, cols, scale, post.relu);
        }
    }
}

/// The kernel of the input gradient: `flip[c][(o·3 + i)·3 + j] = w[o, c, 2 − i, 2 − j]`, a
/// (C x 9O) matrix, so that `dx = flip · patches(dz)` (the input gradient of a stride-1 "same"
/// convolution is the convolution of dz with the flipped, transposed kernel).
pub(crate) fn flip_kernel<T: Float>(w: &[T], o: usize, c: usize) -> Vec<T> {
    let mut flip = vec![T::zero(); c * 9 * o];
    for oi in 0..o {
        for ci in 0..c {
            for r in 0..9 {
                flip[ci * 9 * o + oi * 9 + (8 - r)] = w[(oi * c + ci) * 9 + r];
            }
        }
    }
    flip
}

/// Backward of [`conv3x3_fwd`] given `dz` (O rows of width n·s²), through the patches of dz only:
/// `dx[c] = Σ_{o,i,j} flip[c][(o,i,j)] · patches(dz)[(o,i,j)]` for each part that wants it, and
/// `G[(o,i,j)][c] = Σ_q patches(dz)[(o,i,j)][q] · x[c][q]`, so that
/// `dw[o, c, ky, kx] = G[(o, 2 − ky, 2 − kx)][c]` (overwritten). `flip` is [`flip_kernel`]'s.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3_bwd<T: Float>(
    flip: &[T],
    o: usize,
    parts: &mut [PartGrad<'_, T>],
    n: usize,
    s: usize,
    dz: &[T],
    col: &mut Vec<T>,
    g: &mut Vec<T>,
    dw: &mut [T],
) {
    let (p, c) = (s * s, parts.iter().map(|q| q.x.channels).sum::<usize>());
    let (width, k) = (n * p, 9 * o);
    fit(g, k * c);
    let dz_part = [Part { data: dz, channels: o }];
    for (first, imgs) in chunks(n, chunk_images(k, p, n)).enumerate().map(|(i, r)| (i == 0, r)) {
        let cols = imgs.len() * p;
        fit(col, k * cols);
        im2col(&dz_part, n, s, imgs.clone(), col);
        let off = imgs.start * p;
        let mut c0 = 0;
        for part in parts.iter_mut() {
            let cp = part.x.channels;
            if let Some((dx, acc)) = part.dx.as_mut() {
                let lhs = View { data: &flip[c0 * k..], rs: k, cs: 1 };
                matmul(cp, cols, k, &mut dx[off..], (width, 1), *acc, lhs, View::rows(col, cols), 1);
            }
            let xt = View { data: &part.x.data[off..], rs: 1, cs: width };
            matmul(k, cp, cols, &mut g[c0..], (c, 1), !first, View::rows(col, cols), xt, 1);
            c0 += cp;
        }
    }
    for oi in 0..o {
        for ci in 0..c {
            for r in 0..9 {
                dw[(oi * c + ci) * 9 + r] = g[(oi * 9 + 8 - r) * c + ci];
            }
        }
    }
}

/// Weight gradient of [`conv3x3_fwd`] through the patches of x (for a layer whose input needs no
/// gradient, typically with few input channels): `dw (O x 9C) = dz · patches(x)ᵀ` (overwritten).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3_wgrad<T: Float>(
    o: usize,
    parts: &[Part<'_, T>],
    n: usize,
    s: usize,
    dz: &[T],
    col: &mut Vec<T>,
    dw: &mut [T],
) {
    let (p, k) = (s * s, 9 * parts.iter().map(|q| q.channels).sum::<usize>());
    let width = n * p;
    for (first, imgs) in chunks(n, chunk_images(k, p, n)).enumerate().map(|(i, r)| (i == 0, r)) {
        let cols = imgs.len() * p;
        fit(col, k * cols);
        im2col(parts, n, s, imgs.clone(), col);
        let lhs = View { data: &dz[imgs.start * p..], rs: width, cs: 1 };
        matmul(o, k, cols, dw, (k, 1), !first, lhs, View::transposed(col, cols), 1);
    }
}

/// Transposed convolution with kernel 2, stride 2 and no bias, from C channels of side s to O
/// channels of side 2s: `out[o][i][2y + a][2x + b] = Σ_c w[c, o, a, b] · x[c][i][y][x]`, w of shape
/// (C, O, 2, 2) as PyTorch's ConvTranspose2d. Per chunk one GEMM `t = wᵀ (4O x C) · x`, whose rows
/// (o, a, b) are then spread onto the output.
#[allow(clippy::too_many_arguments)]
pub(crate) fn up_fwd<T: Float>(
    w: &[T],
    c: usize,
    o: usize,
    x: &[T],
    n: usize,
    s: usize,
    out: &mut [T],
    tmp: &mut Vec<T>,
) {
    let (p, k) = (s * s, 4 * o);
    for imgs in chunks(n, chunk_images(k, p, n)) {
        let cols = imgs.len() * p;
        fit(tmp, k * cols);
        let rhs = View { data: &x[imgs.start * p..], rs: n * p, cs: 1 };
        matmul(k, cols, c, tmp, (cols, 1), false, View::transposed(w, k), rhs, 1);
        planes::spread2x2(tmp, o, n, s, imgs, out, false);
    }
}

/// Backward of [`up_fwd`] given `dout` (O rows of width n·4s²): `dt = gather(dout)`,
/// `dx = w (C x 4O) · dt` when wanted, `dw (C x 4O) = Σ_chunks x · dtᵀ` (overwritten).
#[allow(clippy::too_many_arguments)]
pub(crate) fn up_bwd<T: Float>(
    w: &[T],
    c: usize,
    o: usize,
    x: &[T],
    n: usize,
    s: usize,
    dout: &mut [T],
    mut dx: Option<(&mut [T], bool)>,
    dw: &mut [T],
    tmp: &mut Vec<T>,
) {
    let (p, k) = (s * s, 4 * o);
    for (first, imgs) in chunks(n, chunk_images(k, p, n)).enumerate().map(|(i, r)| (i == 0, r)) {
        let cols = imgs.len() * p;
        fit(tmp, k * cols);
        planes::spread2x2(tmp, o, n, s, imgs.clone(), dout, true);
        let off = imgs.start * p;
        if let Some((dx, acc)) = dx.as_mut() {
            matmul(c, cols, k, &mut dx[off..], (n * p, 1), *acc, View::rows(w, k), View::rows(tmp, cols), 1);
        }
        let xv = View { data: &x[off..], rs: n * p, cs: 1 };
        matmul(c, k, cols, dw, (k, 1), !first, xv, View::transposed(tmp, cols), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference 3x3 "same" convolution of one s x s image by the definition, in f64.
    fn conv_naive(x: &[f64], c: usize, s: usize, w: &[f64], o: usize) -> Vec<f64> {
        let mut z = vec![0.0; o * s * s];
        for oi in 0..o {
            for y in 0..s as isize {
                for xx in 0..s as isize {
                    let mut acc = 0.0;
                    for ci in 0..c {
                        for r in 0..9 {
                            let (iy, ix) = (y + r as isize / 3 - 1, xx + r as isize % 3 - 1);
                            if (0..s as isize).contains(&iy) && (0..s as isize).contains(&ix) {
                                acc += w[(oi * c + ci) * 9 + r]
                                    * x[ci * s * s + (iy as usize) * s + ix as usize];
                            }
                        }
                    }
                    z[oi * s * s + (y as usize) * s + xx as usize] = acc;
                }
            }
        }
        z
    }

    fn val(i: usize) -> f64 {
        ((i * 7919 + 13) % 41) as f64 / 20.0 - 1.0
    }

    #[test]
    fn conv_matches_the_definition_on_channel_major_shares() {
        for (n, c, o, s) in [(3, 2, 5, 4), (1, 1, 3, 1), (2, 3, 2, 2), (5, 4, 4, 8)] {
            let p = s * s;
            let x: Vec<f64> = (0..c * n * p).map(val).collect();
            let w: Vec<f64> = (0..o * c * 9).map(|i| val(i + 3)).collect();
            let mut z = vec![0.0; o * n * p];
            let parts = [Part { data: &x[..c * n * p], channels: c }];
            conv3x3_fwd(&w, o, &parts, n, s, &mut z, &mut Vec::new(), Epilogue { scale: None, relu: false });
            for i in 0..n {
                let img: Vec<f64> = (0..c).flat_map(|ci| x[(ci * n + i) * p..][..p].to_vec()).collect();
                let want = conv_naive(&img, c, s, &w, o);
                for oi in 0..o {
                    let got = &z[(oi * n + i) * p..][..p];
                    for (a, b) in got.iter().zip(&want[oi * p..(oi + 1) * p]) {
                        assert!((a - b).abs() < 1e-12, "n{n} c{c} o{o} s{s}");
                    }
                }
            }
        }
    }

    /// ⟨conv(x), dz⟩ is bilinear: its gradients are dw and dx of the backward, checked through
    /// ⟨conv(x + e·u), dz⟩ − ⟨conv(x), dz⟩ = e·⟨dx, u⟩ exactly (the map is linear in x, and in w).
    #[test]
    fn conv_backward_is_the_adjoint() {
        let (n, c, o, s) = (3, 3, 2, 4);
        let p = s * s;
        let x: Vec<f64> = (0..c * n * p).map(val).collect();
        let u: Vec<f64> = (0..c * n * p).map(|i| val(i + 7)).collect();
        let w: Vec<f64> = (0..o * c * 9).map(|i| val(i + 3)).collect();
        let dz: Vec<f64> = (0..o * n * p).map(|i| val(i + 11)).collect();
        let fwd = |x: &[f64], w: &[f64]| {
            let mut z = vec![0.0; o * n * p];
            let parts = [Part { data: x, channels: c }];
            conv3x3_fwd(w, o, &parts, n, s, &mut z, &mut Vec::new(), Epilogue { scale: None, relu: false });
            z.iter().zip(&dz).map(|(a, b)| a * b).sum::<f64>()
        };
        let (mut dx, mut dw, mut dw2) = (vec![0.0; c * n * p], vec![0.0; o * c * 9], vec![0.0; o * c * 9]);
        let flip = flip_kernel(&w, o, c);
        let mut parts = [PartGrad { x: Part { data: &x, channels: c }, dx: Some((&mut dx[..], false)) }];
        conv3x3_bwd(&flip, o, &mut parts, n, s, &dz, &mut Vec::new(), &mut Vec::new(), &mut dw);
        conv3x3_wgrad(o, &[Part { data: &x, channels: c }], n, s, &dz, &mut Vec::new(), &mut dw2);
        let base = fwd(&x, &w);
        let xu: Vec<f64> = x.iter().zip(&u).map(|(a, b)| a + b).collect();
        let want_dx = fwd(&xu, &w) - base;
        let got_dx: f64 = dx.iter().zip(&u).map(|(a, b)| a * b).sum();
        assert!((want_dx - got_dx).abs() < 1e-9, "{want_dx} {got_dx}");
        let v: Vec<f64> = (0..o * c * 9).map(|i| val(i + 5)).collect();
        let wv: Vec<f64> = w.iter().zip(&v).map(|(a, b)| a + b).collect();
        let want_dw = fwd(&x, &wv) - base;
        for g in [&dw, &dw2] {
            let got: f64 = g.iter().zip(&v).map(|(a, b)| a * b).sum();
            assert!((want_dw - got).abs() < 1e-9, "{want_dw} {got}");
        }
    }

    #[test]
    fn transposed_conv_and_pool_are_adjoint_to_their_backward() {
        let (n, c, o, s) = (2, 3, 2, 2);
        let (p, q) = (s * s, 4 * s * s);
        let x: Vec<f64> = (0..c * n * p).map(val).collect();
        let w: Vec<f64> = (0..c * o * 4).map(|i| val(i + 1)).collect();
        let mut out = vec![0.0; o * n * q];
        up_fwd(&w, c, o, &x, n, s, &mut out, &mut Vec::new());
        // Direct definition for one entry of every (o, a, b).
        for oc in 0..o {
            for r in 0..4 {
                let (a, b) = (r / 2, r % 2);
                let (i, y, xx) = (1, 1, 0);
                let want: f64 =
                    (0..c).map(|ci| w[(ci * o + oc) * 4 + r] * x[(ci * n + i) * p + y * s + xx]).sum();
                let got = out[(oc * n + i) * q + (2 * y + a) * 2 * s + 2 * xx + b];
                assert!((want - got).abs() < 1e-12);
            }
        }
        let mut dout: Vec<f64> = (0..o * n * q).map(|i| val(i + 9)).collect();
        let inner: f64 = out.iter().zip(&dout).map(|(a, b)| a * b).sum();
        let (mut dx, mut dw) = (vec![0.0; c * n * p], vec![0.0; c * o * 4]);
        up_bwd(&w, c, o, &x, n, s, &mut dout, Some((&mut dx[..], false)), &mut dw, &mut Vec::new());
        let via_x: f64 = dx.iter().zip(&x).map(|(a, b)| a * b).sum();
        let via_w: f64 = dw.iter().zip(&w).map(|(a, b)| a * b).sum();
        assert!((inner - via_x).abs() < 1e-9 && (inner - via_w).abs() < 1e-9);
        // Pooling: <pool(x), d> = <x, pool_bwd(d)>.
        let xs: Vec<f64> = (0..2 * 16).map(val).collect();
        let mut pooled = vec![0.0; 2 * 4];
        planes::pool2x2(&xs, 4, &mut pooled);
        let d: Vec<f64> = (0..8).map(|i| val(i + 2)).collect();
        let mut dxs = vec![0.0; 32];
        planes::pool2x2_backward(&d, 4, &mut dxs, false);
        let lhs: f64 = pooled.iter().zip(&d).map(|(a, b)| a * b).sum();
        let rhs: f64 = xs.iter().zip(&dxs).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12);
    }
}

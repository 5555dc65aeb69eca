//! Slice kernels on channel-major activations, for whole-network engines that run a share of a
//! batch on one thread (memgen-diffusion's `blind_engine`). A buffer of C channels over n images of
//! side s holds `x[c][i][y][x]` at `c·n·s² + i·s² + y·s + x`, so one channel of the share is one
//! contiguous row of width n·s².
//!
//! Each kernel is compiled for AVX-512, AVX2 + FMA and the baseline and picks the variant of this CPU
//! (as the rest of the crate); all of them are single-threaded. Reductions are taken in f64 with a
//! fixed order, so the same input gives the same bits.

use crate::elem::{simd_variant, Float};
use std::ops::Range;

/// `max(v, 0)`.
#[inline(always)]
fn relu<T: Float>(v: T) -> T {
    if v < T::zero() {
        T::zero()
    } else {
        v
    }
}

/// `dst[y·s + x] = src[(y + dy)·s + x + dx]`, 0 where that lies outside the s x s plane
/// (`dy, dx ∈ {−1, 0, 1}`): one contiguous copy of the shifted plane, whose wrapped edge column is
/// zeroed afterwards.
#[inline(always)]
fn shifted_plane<T: Float>(src: &[T], s: usize, dy: isize, dx: isize, dst: &mut [T]) {
    let si = s as isize;
    let (y0, y1) = ((-dy).max(0) as usize, (si - dy).min(si) as usize);
    if y0 >= y1 {
        dst.fill(T::zero());
        return;
    }
    dst[..y0 * s].fill(T::zero());
    dst[y1 * s..].fill(T::zero());
    let (start, end) = (y0 * s + (-dx).max(0) as usize, y1 * s - dx.max(0) as usize);
    let from = (start as isize + dy * si + dx) as usize;
    for (d, &v) in dst[start..end].iter_mut().zip(&src[from..from + end - start]) {
        *d = v;
    }
    if dx != 0 {
        let col = if dx > 0 { s - 1 } else { 0 };
        (y0..y1).for_each(|y| dst[y * s + col] = T::zero());
    }
}

/// Patch rows of a 3x3, padding-1 convolution for the images `imgs` of the `channels` channels of
/// `x` (n images of side s): `col[((row0 + c)·9 + ky·3 + kx)·cols + (i − i0)·s² + y·s + x] =
/// x[c][i][y + ky − 1][x + kx − 1]` (0 outside the image), `cols = |imgs|·s²`.
#[inline(always)]
fn im2col3x3_body<T: Float>(
    x: &[T],
    channels: usize,
    n: usize,
    s: usize,
    imgs: Range<usize>,
    col: &mut [T],
    row0: usize,
) {
    let p = s * s;
    let cols = imgs.len() * p;
    for c in 0..channels {
        for i in imgs.clone() {
            let plane = &x[(c * n + i) * p..][..p];
            for r in 0..9 {
                let at = ((row0 + c) * 9 + r) * cols + (i - imgs.start) * p;
                shifted_plane(plane, s, r as isize / 3 - 1, r as isize % 3 - 1, &mut col[at..at + p]);
            }
        }
    }
}

simd_variant!(
    /// See [`im2col3x3_body`].
    pub fn im2col3x3 = im2col3x3_body<T>(x: &[T], channels: usize, n: usize, s: usize, imgs: Range<usize>, col: &mut [T], row0: usize)
);

/// The rows (o, a, b) of a 2x2, stride-2 transposed convolution's product `t` (4·O rows over the
/// pixels of the images `imgs`, side s) and the output (O channels of n images of side 2s):
/// `out[o][i][2y + a][2x + b] = t[(o·2 + a)·2 + b][(i − i0)·s² + y·s + x]`, or the reverse
/// assignment when `gather`.
#[inline(always)]
fn spread2x2_body<T: Float>(
    t: &mut [T],
    o: usize,
    n: usize,
    s: usize,
    imgs: Range<usize>,
    out: &mut [T],
    gather: bool,
) {
    let (p, s2) = (s * s, 2 * s);
    let cols = imgs.len() * p;
    for r in 0..4 * o {
        let (oc, a, b) = (r / 4, (r / 2) % 2, r % 2);
        for i in imgs.clone() {
            let src = (r * cols) + (i - imgs.start) * p;
            let dst = (oc * n + i) * 4 * p + a * s2 + b;
            for y in 0..s {
                let trow = &mut t[src + y * s..src + (y + 1) * s];
                let orow = &mut out[dst + 2 * y * s2..][..2 * s - b];
                if gather {
                    trow.iter_mut().zip(orow.iter().step_by(2)).for_each(|(tv, &ov)| *tv = ov);
                } else {
                    trow.iter().zip(orow.iter_mut().step_by(2)).for_each(|(&tv, ov)| *ov = tv);
                }
            }
        }
    }
}

simd_variant!(
    /// See [`spread2x2_body`].
    pub fn spread2x2 = spread2x2_body<T>(t: &mut [T], o: usize, n: usize, s: usize, imgs: Range<usize>, out: &mut [T], gather: bool)
);

/// 2x2 average pooling of planes of side s stacked row after row: `out[Y][X] = (x[2Y][2X] +
/// x[2Y][2X+1] + x[2Y+1][2X] + x[2Y+1][2X+1]) · 1/4`, summed in that order as Candle's `avg_pool2d`.
#[inline(always)]
fn pool2x2_body<T: Float>(x: &[T], s: usize, out: &mut [T]) {
    let quarter = T::from_f64(0.25);
    for (pair, orow) in x.chunks_exact(2 * s).zip(out.chunks_exact_mut(s / 2)) {
        let (top, bottom) = pair.split_at(s);
        for (xo, v) in orow.iter_mut().enumerate() {
            *v = (top[2 * xo] + top[2 * xo + 1] + bottom[2 * xo] + bottom[2 * xo + 1]) * quarter;
        }
    }
}

simd_variant!(
    /// See [`pool2x2_body`].
    pub fn pool2x2 = pool2x2_body<T>(x: &[T], s: usize, out: &mut [T])
);

/// Backward of [`pool2x2`]: `dx[2Y + a][2X + b] (+)= dout[Y][X] · 1/4`.
#[inline(always)]
fn pool2x2_backward_body<T: Float>(dout: &[T], s: usize, dx: &mut [T], accumulate: bool) {
    let quarter = T::from_f64(0.25);
    for (pair, drow) in dx.chunks_exact_mut(2 * s).zip(dout.chunks_exact(s / 2)) {
        for half in pair.chunks_exact_mut(s) {
            for (two, &d) in half.chunks_exact_mut(2).zip(drow) {
                let g = d * quarter;
                if accumulate {
                    two[0] += g;
                    two[1] += g;
                } else {
                    two[0] = g;
                    two[1] = g;
                }
            }
        }
    }
}

simd_variant!(
    /// See [`pool2x2_backward_body`].
    pub fn pool2x2_backward = pool2x2_backward_body<T>(dout: &[T], s: usize, dx: &mut [T], accumulate: bool)
);

/// `Σ_i a_i·b_i` in f64 with sixteen running sums in a fixed order (vectorisable; the same bits every
/// time).
#[inline(always)]
fn dot_f64<T: Float>(a: &[T], b: &[T]) -> f64 {
    let mut acc = [0f64; 16];
    let (ai, bi) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f64 = ai.remainder().iter().zip(bi.remainder()).map(|(x, y)| x.as_f64() * y.as_f64()).sum();
    for (ac, bc) in ai.zip(bi) {
        for k in 0..16 {
            acc[k] += ac[k].as_f64() * bc[k].as_f64();
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `Σ_i (a_i − c)²` in f64, as [`dot_f64`].
#[inline(always)]
fn centred_squares_f64<T: Float>(a: &[T], c: f64) -> f64 {
    let mut acc = [0f64; 16];
    let ai = a.chunks_exact(16);
    let tail: f64 = ai.remainder().iter().map(|x| (x.as_f64() - c) * (x.as_f64() - c)).sum();
    for ac in ai {
        for k in 0..16 {
            let d = ac[k].as_f64() - c;
            acc[k] += d * d;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `Σ_i a_i` in f64, as [`dot_f64`].
#[inline(always)]
fn sum_f64<T: Float>(a: &[T]) -> f64 {
    let mut acc = [0f64; 16];
    let ai = a.chunks_exact(16);
    let tail: f64 = ai.remainder().iter().map(|x| x.as_f64()).sum();
    for ac in ai {
        for k in 0..16 {
            acc[k] += ac[k].as_f64();
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Per row r of `z` (rows of `width`): `sums[r] = Σ z`, `m2[r] = Σ (z − mean_r)²` with the row's own
/// mean, in f64: the per-share moments of a parallel variance (Chan et al.).
#[inline(always)]
fn row_moments_body<T: Float>(z: &[T], width: usize, sums: &mut [f64], m2: &mut [f64]) {
    for ((row, s), m) in z.chunks_exact(width).zip(sums.iter_mut()).zip(m2.iter_mut()) {
        *s = sum_f64(row);
        *m = centred_squares_f64(row, *s / width as f64);
    }
}

simd_variant!(
    /// See [`row_moments_body`].
    pub fn row_moments = row_moments_body<T>(z: &[T], width: usize, sums: &mut [f64], m2: &mut [f64])
);

/// Per row r (rows of `z` and `a` at `stride`, `cols` elements from `off`): `a = max(z·scale[r], 0)`
/// (`relu`) or `z·scale[r]`.
#[inline(always)]
fn scale_relu_body<T: Float>(
    z: &[T],
    a: &mut [T],
    stride: usize,
    off: usize,
    cols: usize,
    scale: &[T],
    relu_: bool,
) {
    for (r, &sc) in scale.iter().enumerate() {
        let (zr, ar) = (&z[r * stride + off..][..cols], &mut a[r * stride + off..][..cols]);
        if relu_ {
            ar.iter_mut().zip(zr).for_each(|(a, &z)| *a = relu(z * sc));
        } else {
            ar.iter_mut().zip(zr).for_each(|(a, &z)| *a = z * sc);
        }
    }
}

simd_variant!(
    /// See [`scale_relu_body`].
    pub fn scale_relu = scale_relu_body<T>(z: &[T], a: &mut [T], stride: usize, off: usize, cols: usize, scale: &[T], relu_: bool)
);

/// [`scale_relu`] in place: `a ← max(a·scale[r], 0)` or `a·scale[r]` on the same row ranges.
#[inline(always)]
fn scale_relu_in_place_body<T: Float>(
    a: &mut [T],
    stride: usize,
    off: usize,
    cols: usize,
    scale: &[T],
    relu_: bool,
) {
    for (r, &sc) in scale.iter().enumerate() {
        let ar = &mut a[r * stride + off..][..cols];
        if relu_ {
            ar.iter_mut().for_each(|a| *a = relu(*a * sc));
        } else {
            ar.iter_mut().for_each(|a| *a = *a * sc);
        }
    }
}

/// Convolution with an odd square kernel of side `k`, padding `(k − 1)/2` and no bias over the
/// `n` images (side `s`) of the channel-major buffers `inputs`, taken as one input of `c` channels
/// (their channels in order): `z[o][i][q] = Σ_{c,t} w[o, c, t] · x[c][i][q + δ_t]` (0 where the tap
/// falls outside the image), `w` of shape (O, C, k, k), `z` of `o` rows of width n·s², every
/// element written. It runs on the calling thread through the direct kernel (no patch matrix;
/// `conv/direct.rs`); several inputs are first copied one after the other into `concat`. Returns
/// `false`, leaving `z` and `concat` untouched, where that kernel does not apply: elements other
/// than f32, a CPU without AVX2 + FMA, or s² not a multiple of 16.
#[allow(clippy::too_many_arguments)]
pub fn conv_same_direct<T: Float>(
    w: &[T],
    o: usize,
    inputs: &[&[T]],
    c: usize,
    n: usize,
    s: usize,
    k: usize,
    concat: &mut Vec<T>,
    z: &mut [T],
) -> bool {
    let g =
        crate::im2col::ConvGeom { b: n, c, h: s, w: s, o, kh: k, kw: k, stride: 1, pad: k / 2, ho: s, wo: s };
    let x_len = inputs.iter().map(|x| x.len()).sum::<usize>();
    assert!(k % 2 == 1 && w.len() == o * c * k * k && x_len == c * n * s * s && z.len() == o * n * s * s);
    if !crate::conv::direct_applies::<T>(&g) {
        return false;
    }
    let x = match inputs {
        [one] => *one,
        _ => {
            concat.clear();
            inputs.iter().for_each(|x| concat.extend_from_slice(x));
            concat.as_slice()
        }
    };
    crate::conv::direct_channel_major(&g, x, w, z)
}

simd_variant!(
    /// See [`scale_relu_in_place_body`].
    pub fn scale_relu_in_place = scale_relu_in_place_body<T>(a: &mut [T], stride: usize, off: usize, cols: usize, scale: &[T], relu_: bool)
);

/// ReLU backward after a per-row scale, in place, then a dot per row (rows of `width`):
/// `g ← g·[z·scale[r] ≥ 0]` when `relu` (the gradient passes at 0, as Candle's ReLU), and
/// `dots[r] = Σ g·z` in f64 (after the masking).
#[inline(always)]
fn relu_mask_dot_body<T: Float>(
    g: &mut [T],
    z: &[T],
    width: usize,
    scale: &[T],
    relu_: bool,
    dots: &mut [f64],
) {
    for (((gr, zr), &sc), d) in
        g.chunks_exact_mut(width).zip(z.chunks_exact(width)).zip(scale).zip(dots.iter_mut())
    {
        if relu_ {
            gr.iter_mut().zip(zr).for_each(|(g, &z)| *g = if z * sc < T::zero() { T::zero() } else { *g });
        }
        *d = dot_f64(gr, zr);
    }
}

simd_variant!(
    /// See [`relu_mask_dot_body`].
    pub fn relu_mask_dot = relu_mask_dot_body<T>(g: &mut [T], z: &[T], width: usize, scale: &[T], relu_: bool, dots: &mut [f64])
);

/// Batch-norm input gradient in place, per row r (rows of `width`):
/// `g ← g·scale[r] − coef[r]·(z − mean[r])`.
#[inline(always)]
fn norm_input_grad_body<T: Float>(g: &mut [T], z: &[T], width: usize, scale: &[T], coef: &[T], mean: &[T]) {
    for (r, (gr, zr)) in g.chunks_exact_mut(width).zip(z.chunks_exact(width)).enumerate() {
        let (sc, cf, mu) = (scale[r], coef[r], mean[r]);
        gr.iter_mut().zip(zr).for_each(|(g, &z)| *g = *g * sc - cf * (z - mu));
    }
}

simd_variant!(
    /// See [`norm_input_grad_body`].
    pub fn norm_input_grad = norm_input_grad_body<T>(g: &mut [T], z: &[T], width: usize, scale: &[T], coef: &[T], mean: &[T])
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_of_a_small_image_by_hand() {
        // One 3x3 image 1..9, two images stacked; patch row (ky, kx) = (0, 0) of image 1 shifts by
        // (−1, −1).
        let x: Vec<f64> = (1..=18).map(|v| v as f64).collect();
        let mut col = vec![f64::NAN; 9 * 9];
        im2col3x3(&x, 1, 2, 3, 1..2, &mut col, 0);
        assert_eq!(&col[..9], &[0.0, 0.0, 0.0, 0.0, 10.0, 11.0, 0.0, 13.0, 14.0]);
        assert_eq!(&col[4 * 9..5 * 9], &x[9..]);
        assert_eq!(&col[8 * 9..], &[14.0, 15.0, 0.0, 17.0, 18.0, 0.0, 0.0, 0.0, 0.0]);
        // Side 1: only the centre tap sees the pixel.
        let mut col = vec![f64::NAN; 9];
        im2col3x3(&[5.0], 1, 1, 1, 0..1, &mut col, 0);
        assert_eq!(col, [0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn moments_dots_and_masks() {
        let z = [1.0f64, 2.0, 3.0, -4.0, 0.0, 8.0];
        let (mut s, mut m) = ([0.0; 2], [0.0; 2]);
        row_moments(&z, 3, &mut s, &mut m);
        assert_eq!(s, [6.0, 4.0]);
        assert!((m[0] - 2.0).abs() < 1e-12 && (m[1] - 672.0 / 9.0).abs() < 1e-12, "{m:?}");
        let mut g = [1.0f64; 6];
        let mut d = [0.0; 2];
        relu_mask_dot(&mut g, &z, 3, &[1.0, -1.0], true, &mut d);
        assert_eq!(g, [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
        assert_eq!(d, [6.0, -4.0]);
    }
}

//! Patch packing for convolution as GEMM: [`im2col`] lays out the receptive fields of one image as
//! the columns of a `(C·KH·KW) x (HO·WO)` matrix, [`col2im`] adds such a matrix back onto an image
//! (the adjoint of `im2col`, used for the input gradient).

use crate::elem::{simd_variant, Float};
use std::ops::Range;

/// Shape of one 2-D convolution: `(B, C, H, W) * (O, C, KH, KW) → (B, O, HO, WO)` with stride `s`
/// and zero padding `p` on all sides: `HO = (H + 2p − KH) / s + 1`, likewise `WO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub b: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvGeom {
    /// Rows of the patch matrix: `C·KH·KW`.
    pub fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Output pixels per image: `HO·WO`.
    pub fn p(&self) -> usize {
        self.ho * self.wo
    }
    /// Input elements per image.
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Output elements per image.
    pub fn out_len(&self) -> usize {
        self.o * self.p()
    }
    /// `conv KHxKW sS C->O HxW bB`, the shape as the profile shows it.
    pub fn describe(&self) -> String {
        let (g, b) = (self, self.b);
        format!("conv {}x{} s{} {}->{} {}x{} b{b}", g.kh, g.kw, g.stride, g.c, g.o, g.h, g.w)
    }
    /// Floating-point operations of the forward product over the batch: `2·B·O·P·K`.
    pub fn gemm_flops(&self) -> f64 {
        2.0 * (self.b * self.o * self.p() * self.k()) as f64
    }
    /// A 1x1, stride-1, unpadded conv: the image itself is its patch matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    /// The output columns `ox` whose input column `ox·s + kx − p` lies inside `0..W`.
    fn valid_cols(&self, kx: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.pad);
        let lo = if kx >= p { 0 } else { (p - kx).div_ceil(s) };
        let hi = if self.w + p > kx { ((self.w + p - kx - 1) / s + 1).min(self.wo) } else { 0 };
        (lo.min(self.wo), hi.max(lo.min(self.wo)))
    }

    /// The input row of output row `oy` for kernel row `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        let iy = oy * self.stride + ky;
        (iy >= self.pad && iy - self.pad < self.h).then(|| iy - self.pad)
    }
}

/// `col[(c·KH + ky)·KW + kx][off + (oy − oy0)·WO + ox] = x[c][oy·s + ky − p][ox·s + kx − p]` (0
/// outside the image) for the output rows `oy ∈ rows = oy0..oy1` of one image `x` of `C·H·W`
/// values; `col` has row stride `rs`.
#[inline(always)]
fn im2col_body<T: Float>(g: &ConvGeom, x: &[T], rows: Range<usize>, col: &mut [T], rs: usize, off: usize) {
    let (hw, s, p) = (g.h * g.w, g.stride, g.pad);
    for c in 0..g.c {
        let xc = &x[c * hw..(c + 1) * hw];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let r = (c * g.kh + ky) * g.kw + kx;
                let row = &mut col[r * rs + off..r * rs + off + rows.len() * g.wo];
                let (lo, hi) = g.valid_cols(kx);
                if s == 1 && g.wo == g.w {
                    plane_copy(g, xc, rows.clone(), ky, kx, row);
                    continue;
                }
                for (t, oy) in rows.clone().enumerate() {
                    let dst = &mut row[t * g.wo..(t + 1) * g.wo];
                    let Some(iy) = g.input_row(oy, ky) else {
                        dst.fill(T::zero());
                        continue;
                    };
                    let src = &xc[iy * g.w..(iy + 1) * g.w];
                    dst[..lo].fill(T::zero());
                    dst[hi..].fill(T::zero());
                    if s == 1 {
                        let i0 = lo + kx - p;
                        dst[lo..hi].copy_from_slice(&src[i0..i0 + hi - lo]);
                    } else {
                        for (ox, d) in dst[lo..hi].iter_mut().enumerate() {
                            *d = src[(ox + lo) * s + kx - p];
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: `dx[c][oy·s + ky − p][ox·s + kx − p] += col[(c·KH + ky)·KW + kx][off +
/// (oy − oy0)·WO + ox]` over every in-image position of the output rows `rows`, for one image `dx`
/// of `C·H·W` values.
///
/// `col` is used as scratch: its entries for positions outside the image are zeroed.
#[inline(always)]
fn col2im_body<T: Float>(
    g: &ConvGeom,
    col: &mut [T],
    rows: Range<usize>,
    rs: usize,
    off: usize,
    dx: &mut [T],
) {
    let (hw, s, p) = (g.h * g.w, g.stride, g.pad);
    for c in 0..g.c {
        let dxc = &mut dx[c * hw..(c + 1) * hw];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let r = (c * g.kh + ky) * g.kw + kx;
                let row = &mut col[r * rs + off..r * rs + off + rows.len() * g.wo];
                let (lo, hi) = g.valid_cols(kx);
                if s == 1 && g.wo == g.w {
                    plane_add(g, row, rows.clone(), ky, kx, dxc);
                    continue;
                }
                for (t, oy) in rows.clone().enumerate() {
                    let Some(iy) = g.input_row(oy, ky) else { continue };
                    let src = &row[t * g.wo..(t + 1) * g.wo];
                    let dst = &mut dxc[iy * g.w..(iy + 1) * g.w];
                    if s == 1 {
                        let i0 = lo + kx - p;
                        crate::elem::add_assign(&mut dst[i0..i0 + hi - lo], &src[lo..hi]);
                    } else {
                        for ox in lo..hi {
                            dst[ox * s + kx - p] += src[ox];
                        }
                    }
                }
            }
        }
    }
}

/// The output rows of `rows` whose input row for kernel row `ky` lies inside the image, as
/// offsets `t` into `rows` (`oy = rows.start + t`), and the input row of the first of them.
fn valid_rows(g: &ConvGeom, rows: &Range<usize>, ky: usize) -> (Range<usize>, usize) {
    // Stride 1: iy = oy + ky − p ∈ [0, H)  ⇔  oy ∈ [p − ky, H + p − ky).
    let first = rows.start.max(g.pad.saturating_sub(ky));
    let last = rows.end.min((g.h + g.pad).saturating_sub(ky));
    if first >= last {
        return (0..0, 0);
    }
    (first - rows.start..last - rows.start, first + ky - g.pad)
}

/// Stride 1 with `WO = W`: consecutive output rows read consecutive input rows, so the rows of
/// one patch plane are one contiguous copy of the input plane, shifted, with its wrapped edge
/// columns (at most `p` per side) zeroed afterwards.
#[inline(always)]
fn plane_copy<T: Float>(g: &ConvGeom, xc: &[T], rows: Range<usize>, ky: usize, kx: usize, dst: &mut [T]) {
    let (w, wo) = (g.w, g.wo);
    let (lo, hi) = g.valid_cols(kx);
    let (valid, iy0) = valid_rows(g, &rows, ky);
    dst[..valid.start * wo].fill(T::zero());
    dst[valid.end * wo..].fill(T::zero());
    if valid.is_empty() {
        return;
    }
    let len = (valid.len() - 1) * w + (hi - lo);
    let src0 = iy0 * w + lo + kx - g.pad;
    dst[valid.start * wo + lo..][..len].copy_from_slice(&xc[src0..src0 + len]);
    for t in valid {
        dst[t * wo..t * wo + lo].fill(T::zero());
        dst[t * wo + hi..(t + 1) * wo].fill(T::zero());
    }
}

/// The adjoint of [`plane_copy`]: zeroes the out-of-image entries of the patch plane `src`, then
/// adds it onto the input plane as one contiguous, shifted range.
#[inline(always)]
fn plane_add<T: Float>(g: &ConvGeom, src: &mut [T], rows: Range<usize>, ky: usize, kx: usize, dxc: &mut [T]) {
    let (w, wo) = (g.w, g.wo);
    let (lo, hi) = g.valid_cols(kx);
    let (valid, iy0) = valid_rows(g, &rows, ky);
    if valid.is_empty() {
        return;
    }
    for t in valid.clone() {
        src[t * wo..t * wo + lo].fill(T::zero());
        src[t * wo + hi..(t + 1) * wo].fill(T::zero());
    }
    let len = (valid.len() - 1) * w + (hi - lo);
    let dst0 = iy0 * w + lo + kx - g.pad;
    crate::elem::add_assign(&mut dxc[dst0..dst0 + len], &src[valid.start * wo + lo..][..len]);
}

simd_variant!(
    /// [`im2col_body`] for this CPU.
    pub(crate) fn im2col = im2col_body<T>(g: &ConvGeom, x: &[T], rows: Range<usize>, col: &mut [T], rs: usize, off: usize)
);
simd_variant!(
    /// [`col2im_body`] for this CPU.
    pub(crate) fn col2im = col2im_body<T>(g: &ConvGeom, col: &mut [T], rows: Range<usize>, rs: usize, off: usize, dx: &mut [T])
);

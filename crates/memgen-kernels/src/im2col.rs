//! Patch packing for convolution as GEMM: [`im2col`] lays out the receptive fields of one image as
//! the columns of a `(C·KH·KW) x (HO·WO)` matrix, [`col2im`] adds such a matrix back onto an image
//! (the adjoint of `im2col`, used for the input gradient).

use crate::elem::Float;

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

/// `col[(c·KH + ky)·KW + kx][off + oy·WO + ox] = x[c][oy·s + ky − p][ox·s + kx − p]` (0 outside the
/// image), for one image `x` of `C·H·W` values; `col` has row stride `rs`.
pub(crate) fn im2col<T: Float>(g: &ConvGeom, x: &[T], col: &mut [T], rs: usize, off: usize) {
    let (hw, s, p) = (g.h * g.w, g.stride, g.pad);
    for c in 0..g.c {
        let xc = &x[c * hw..(c + 1) * hw];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let r = (c * g.kh + ky) * g.kw + kx;
                let row = &mut col[r * rs + off..r * rs + off + g.p()];
                let (lo, hi) = g.valid_cols(kx);
                for oy in 0..g.ho {
                    let dst = &mut row[oy * g.wo..(oy + 1) * g.wo];
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
/// oy·WO + ox]` over every in-image position, for one image `dx` of `C·H·W` values.
pub(crate) fn col2im<T: Float>(g: &ConvGeom, col: &[T], rs: usize, off: usize, dx: &mut [T]) {
    let (hw, s, p) = (g.h * g.w, g.stride, g.pad);
    for c in 0..g.c {
        let dxc = &mut dx[c * hw..(c + 1) * hw];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let r = (c * g.kh + ky) * g.kw + kx;
                let row = &col[r * rs + off..r * rs + off + g.p()];
                let (lo, hi) = g.valid_cols(kx);
                for oy in 0..g.ho {
                    let Some(iy) = g.input_row(oy, ky) else { continue };
                    let src = &row[oy * g.wo..(oy + 1) * g.wo];
                    let dst = &mut dxc[iy * g.w..(iy + 1) * g.w];
                    if s == 1 {
                        let i0 = lo + kx - p;
                        for (d, v) in dst[i0..i0 + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *d += *v;
                        }
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

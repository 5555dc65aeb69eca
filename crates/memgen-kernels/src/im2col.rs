//! Patch packing for convolution as GEMM: [`im2col`] lays out the receptive fields of one image as
//! the columns of a `(C·KH·KW) x (HO·WO)` matrix, [`col2im`] adds such a matrix back onto an image
//! (the adjoint of `im2col`, used for the input gradient).

use crate::elem::{simd_variant, Float};
use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

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

    /// The input coordinate `o·s + k − p` of output coordinate `o` and kernel offset `k`, if it lies
    /// inside `0..n`.
    fn input_coord(&self, o: usize, k: usize, n: usize) -> Option<usize> {
        (o * self.stride + k).checked_sub(self.pad).filter(|&i| i < n)
    }

    /// The input row of output row `oy` for kernel row `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        self.input_coord(oy, ky, self.h)
    }

    /// The input column of output column `ox` for kernel column `kx`, if inside the image.
    fn input_col(&self, ox: usize, kx: usize) -> Option<usize> {
        self.input_coord(ox, kx, self.w)
    }

    /// For stride 1 with `WO = W`: the offset `δ = (ky − p)·W + (kx − p)` from output pixel
    /// `q = oy·W + ox` to the flat in-plane index that tap `(ky, kx)` reads.
    pub fn tap_shift(&self, ky: usize, kx: usize) -> isize {
        (ky as isize - self.pad as isize) * self.w as isize + kx as isize - self.pad as isize
    }
}

/// `col[(c·KH + ky)·KW + kx][off + (oy − oy0)·WO + ox] = x[c][oy·s + ky − p][ox·s + kx − p]` (0
/// outside the image) for the output rows `oy ∈ rows = oy0..oy1` of one image `x` of `C·H·W`
/// values; `col` has row stride `rs`.
///
/// Stride-1 convs that keep the width (`WO = W`) take [`im2col_shifted`]; the others gather through
/// index tables ([`im2col_gather_body`]).
pub(crate) fn im2col<T: Float>(
    g: &ConvGeom,
    x: &[T],
    rows: Range<usize>,
    col: &mut [T],
    rs: usize,
    off: usize,
) {
    let index = tap_indices(g);
    if g.stride == 1 && g.wo == g.w {
        return im2col_shifted(g, x, rows, col, rs, off, &index);
    }
    im2col_gather(g, x, rows, col, rs, off, &index)
}

/// [`im2col`] for stride 1 with `WO = W`. Output pixel `q = oy·W + ox` of tap `(ky, kx)` reads the
/// image's flat index `c·H·W + q + δ` ([`ConvGeom::tap_shift`]), so each patch row is one shifted
/// run of the image, kept where the tap's index table says it lies inside the image and 0 elsewhere
/// (a select, not a product: a non-finite neighbour outside the tap's window cannot leak in).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn im2col_shifted_body<T: Float>(
    g: &ConvGeom,
    x: &[T],
    rows: Range<usize>,
    col: &mut [T],
    rs: usize,
    off: usize,
    index: &[u32],
) {
    let (hw, p, q0, len) = (g.h * g.w, g.p(), rows.start * g.wo, rows.len() * g.wo);
    for c in 0..g.c {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let tap = ky * g.kw + kx;
                let dst = &mut col[(c * g.kh * g.kw + tap) * rs + off..][..len];
                let m = &index[tap * p + q0..][..len];
                let base = (c * hw + q0) as isize + g.tap_shift(ky, kx);
                // The part of the run that lies inside `x` at all; the rest is outside the image.
                let j0 = (-base).clamp(0, len as isize) as usize;
                let j1 = (x.len() as isize - base).clamp(j0 as isize, len as isize) as usize;
                dst[..j0].fill(T::zero());
                dst[j1..].fill(T::zero());
                if j0 == j1 {
                    continue;
                }
                let src = &x[(base + j0 as isize) as usize..][..j1 - j0];
                for ((d, &v), &k) in dst[j0..j1].iter_mut().zip(src).zip(&m[j0..j1]) {
                    *d = if k != OUTSIDE { v } else { T::zero() };
                }
            }
        }
    }
}

/// [`im2col`] for any stride and padding: each patch row is a gather of the channel plane through
/// the tap's index table ([`tap_indices`]), 0 where the tap reads outside the image.
#[inline(always)]
fn im2col_gather_body<T: Float>(
    g: &ConvGeom,
    x: &[T],
    rows: Range<usize>,
    col: &mut [T],
    rs: usize,
    off: usize,
    index: &[u32],
) {
    let (hw, p, q0, len) = (g.h * g.w, g.p(), rows.start * g.wo, rows.len() * g.wo);
    let kk = g.kh * g.kw;
    for c in 0..g.c {
        let xc = &x[c * hw..(c + 1) * hw];
        for tap in 0..kk {
            let dst = &mut col[(c * kk + tap) * rs + off..][..len];
            let idx = &index[tap * p + q0..][..len];
            for (d, &i) in dst.iter_mut().zip(idx) {
                // SAFETY: `xc` holds hw values and the read happens only for i < hw (OUTSIDE,
                // u32::MAX, is never below it).
                *d = if (i as usize) < hw { unsafe { *xc.get_unchecked(i as usize) } } else { T::zero() };
            }
        }
    }
}

/// The index table of every tap: `ix[(ky·KW + kx)·P + oy·WO + ox]` is the flat in-plane index
/// `iy·W + ix` of `(oy·s + ky − p, ox·s + kx − p)`, or [`OUTSIDE`] where that lies outside the
/// image.
fn build_tap_indices(g: &ConvGeom) -> Vec<u32> {
    let mut ix = Vec::with_capacity(g.kh * g.kw * g.p());
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            for oy in 0..g.ho {
                ix.extend((0..g.wo).map(|ox| match (g.input_row(oy, ky), g.input_col(ox, kx)) {
                    (Some(iy), Some(ixx)) => (iy * g.w + ixx) as u32,
                    _ => OUTSIDE,
                }));
            }
        }
    }
    ix
}

/// [`build_tap_indices`] of `g`, kept per thread for the last few geometries: the table depends
/// only on the map, kernel, stride and padding, not on the channels or the batch.
pub(crate) fn tap_indices(g: &ConvGeom) -> Rc<[u32]> {
    thread_local! {
        static CACHE: RefCell<Vec<([usize; 8], Rc<[u32]>)>> = const { RefCell::new(Vec::new()) };
    }
    let key = [g.h, g.w, g.ho, g.wo, g.kh, g.kw, g.pad, g.stride];
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, t)) = cache.iter().find(|(k, _)| *k == key) {
            return t.clone();
        }
        if cache.len() >= 16 {
            cache.clear();
        }
        let t: Rc<[u32]> = build_tap_indices(g).into();
        cache.push((key, t.clone()));
        t
    })
}

/// The index of a tap position outside the image in [`tap_indices`].
pub(crate) const OUTSIDE: u32 = u32::MAX;

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

/// Stride 1 with `WO = W`, the adjoint of [`im2col_shifted`] for one patch plane: consecutive output
/// rows come from consecutive input rows, so after zeroing the out-of-image entries of `src` (its
/// wrapped edge columns, at most `p` per side) it is added onto the input plane as one contiguous,
/// shifted range.
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
    /// [`im2col_gather_body`] for this CPU.
    fn im2col_gather = im2col_gather_body<T>(g: &ConvGeom, x: &[T], rows: Range<usize>, col: &mut [T], rs: usize, off: usize, index: &[u32])
);
simd_variant!(
    /// [`im2col_shifted_body`] for this CPU.
    fn im2col_shifted = im2col_shifted_body<T>(g: &ConvGeom, x: &[T], rows: Range<usize>, col: &mut [T], rs: usize, off: usize, index: &[u32])
);
simd_variant!(
    /// [`col2im_body`] for this CPU.
    pub(crate) fn col2im = col2im_body<T>(g: &ConvGeom, col: &mut [T], rows: Range<usize>, rs: usize, off: usize, dx: &mut [T])
);

#[cfg(test)]
mod tests {
    use super::{im2col, ConvGeom};

    /// The geometry of `(C, H, W)` under a `K x K` kernel with stride `s` and padding `p`.
    fn geom(c: usize, h: usize, w: usize, k: usize, s: usize, p: usize) -> ConvGeom {
        let out = |n: usize| (n + 2 * p - k) / s + 1;
        ConvGeom { b: 1, c, h, w, o: 1, kh: k, kw: k, stride: s, pad: p, ho: out(h), wo: out(w) }
    }

    /// The patch matrix entry by its definition: `x[c][oy·s + ky − p][ox·s + kx − p]`, 0 outside.
    fn naive(g: &ConvGeom, x: &[f32], r: usize, q: usize) -> f32 {
        let (c, ky, kx) = (r / (g.kh * g.kw), r / g.kw % g.kh, r % g.kw);
        let (iy, ix) = (
            (q / g.wo * g.stride + ky) as isize - g.pad as isize,
            (q % g.wo * g.stride + kx) as isize - g.pad as isize,
        );
        if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
            return 0.0;
        }
        x[(c * g.h + iy as usize) * g.w + ix as usize]
    }

    #[test]
    fn patches_match_their_definition_in_bands_of_rows() {
        // Same-width stride 1 (the shifted runs, including kernels wider than the map and a
        // one-row map), strided and unpadded ones (the gather).
        let cases = [
            (3, 4, 4, 3, 1, 1),
            (2, 5, 7, 3, 1, 1),
            (2, 2, 2, 5, 1, 2),
            (3, 1, 6, 3, 1, 1),
            (1, 16, 16, 3, 1, 1),
            (2, 6, 5, 3, 2, 1),
            (2, 6, 6, 3, 1, 0),
        ];
        for (c, h, w, k, s, p) in cases {
            let g = geom(c, h, w, k, s, p);
            // Infinities outside a tap's window must not reach its patch row.
            let x: Vec<f32> =
                (0..g.in_len()).map(|i| if i % 7 == 3 { f32::INFINITY } else { i as f32 }).collect();
            for rows in [0..g.ho, 0..1.min(g.ho), g.ho / 2..g.ho] {
                let (len, off, rs) = (rows.len() * g.wo, 3, rows.len() * g.wo + 5);
                let mut col = vec![f32::NAN; g.k() * rs];
                im2col(&g, &x, rows.clone(), &mut col, rs, off);
                for r in 0..g.k() {
                    for t in 0..len {
                        let want = naive(&g, &x, r, rows.start * g.wo + t);
                        assert_eq!(col[r * rs + off + t], want, "{g:?} rows {rows:?} r {r} t {t}");
                    }
                    assert!(col[r * rs..r * rs + off].iter().all(|v| v.is_nan()), "wrote before the block");
                }
            }
        }
    }
}

//! Forward of stride-1 "same" convs (odd square kernel `K`, padding `(K − 1)/2`) without a patch
//! matrix, in f32 with AVX-512 or AVX2 + FMA.
//!
//! For output pixel `q = y·W + x` of image `b` and kernel tap `t = (ky, kx)`, the input it reads is
//! the image's flat index `c·P + q + δ_t` with `δ_t = (ky − p)·W + (kx − p)`, inside the image
//! exactly where the tap's mask `m_t[q]` is set (where [`crate::im2col::tap_indices`] finds the
//! read inside the image). So
//!
//! `y[b, o, q] = bias(b, o) + Σ_t Σ_c w[o, c, t] · m_t[q] · x[b, c, q + δ_t]`
//!
//! is computed in tiles of `MR` output channels by runs of [`V`] pixels, the accumulators in
//! registers: per (tap, channel) one masked load of each run and `MR` broadcast weights. AVX-512
//! takes 8 channels by two runs (16 of its 32 registers), AVX2 5 channels by one run (10 of 16).
//! The im2col path writes `K²` copies of the input before its GEMM reads them; for the small maps
//! of memgen's networks that copy costs as much as the product.
//!
//! Every output is `bias + Σ` in the order (tap, channel), one fused multiply-add at a time, so
//! the result does not depend on the tiling or on the thread count. The batch is split into one
//! part per thread (callers keep batches smaller than the thread count on the GEMM path).

use super::Bias;
use crate::elem::{simd, Simd};
use crate::gemm::partition;
use crate::im2col::{tap_indices, ConvGeom, OUTSIDE};
use rayon::prelude::*;

/// Pixels per run: one 512-bit register of f32, two of 256 bits.
const V: usize = 16;

/// Whether the direct path computes `g`: a stride-1 same-size conv with an odd square kernel (1x1
/// included: a batch of small maps is then no GEMM-sized product either) whose maps have a multiple
/// of [`V`] pixels, on a CPU with AVX2 and FMA at least (the caller checks
/// that the elements are f32).
pub(super) fn applies(g: &ConvGeom) -> bool {
    g.stride == 1
        && g.kh == g.kw
        && g.kh % 2 == 1
        && g.pad == g.kh / 2
        && (g.ho, g.wo) == (g.h, g.w)
        && g.p().is_multiple_of(V)
        && simd() != Simd::Baseline
}

/// The weight in tiles of `mr` output channels: `wp[((ob·KK + t)·C + c)·mr + r] = w[ob·mr + r, c, t]`,
/// 0 for the rows past `O` of the last tile.
fn pack_weights(g: &ConvGeom, w: &[f32], mr: usize) -> Vec<f32> {
    let (kk, c) = (g.kh * g.kw, g.c);
    let mut wp = vec![0.0; g.o.div_ceil(mr) * kk * c * mr];
    for o in 0..g.o {
        for ci in 0..c {
            for t in 0..kk {
                wp[((o / mr * kk + t) * c + ci) * mr + o % mr] = w[(o * c + ci) * kk + t];
            }
        }
    }
    wp
}

/// The tap masks as one 16-bit lane mask per (tap, run): bit `l` of `bits[t·P/V + j]` is set when
/// tap `t` of pixel `j·V + l` reads inside the image.
fn mask_bits(g: &ConvGeom) -> Vec<u16> {
    let bits =
        |run: &[u32]| run.iter().enumerate().fold(0u16, |acc, (l, &i)| acc | (u16::from(i != OUTSIDE) << l));
    tap_indices(g).chunks_exact(V).map(bits).collect()
}

/// One run of [`V`] output pixels: image `b` (within the part), first pixel `q0`.
#[derive(Clone, Copy)]
struct Run {
    b: usize,
    q0: usize,
}

/// Where image `i`'s channel `c` starts in a buffer: at `i·img + c·ch` (pixels contiguous).
/// Image-major (B, C, H, W): `img = C·P`, `ch = P`; channel-major over n images: `img = P`,
/// `ch = n·P`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strides {
    pub img: usize,
    pub ch: usize,
}

/// The shared inputs of every tile of one conv.
struct Plan<'a> {
    g: &'a ConvGeom,
    /// The input's and the output's layouts.
    xs: Strides,
    ys: Strides,
    /// [`pack_weights`] in tiles of the kernel's `MR`.
    wp: &'a [f32],
    bits: &'a [u16],
    /// `δ_t` of each tap ([`tap_shifts`]).
    shifts: &'a [isize],
    bias: Bias<'a, f32>,
}

/// `δ_t` of every tap `t` ([`ConvGeom::tap_shift`]).
fn tap_shifts(g: &ConvGeom) -> Vec<isize> {
    (0..g.kh * g.kw).map(|t| g.tap_shift(t / g.kw, t % g.kw)).collect()
}

/// One tile: output channels `ob·MR..` over `N` runs (stored: the first `stores`), with the inputs
/// `x` and outputs `out` of a part of the batch that starts at image `b0` (laid out by the plan's
/// strides).
struct Tile<'a, const N: usize> {
    x: &'a [f32],
    b0: usize,
    ob: usize,
    runs: [Run; N],
    stores: usize,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Plan, Tile, V};
    use std::arch::x86_64::*;

    /// Output channels per tile: with two runs, 16 accumulator registers of the 32.
    pub(super) const MR: usize = 8;

    /// Computes the tile and stores it to `out`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; the runs lie inside the part's images `x` and outputs `out`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile(plan: &Plan<'_>, t: &Tile<'_, 2>, out: &mut [f32]) {
        let g = plan.g;
        let (p, c, kk, xs, ys) = (g.p(), g.c, g.kh * g.kw, plan.xs, plan.ys);
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for (r, row) in acc.iter_mut().enumerate() {
            let o = (t.ob * MR + r).min(g.o - 1);
            *row = t.runs.map(|run| _mm512_set1_ps(plan.bias.value(g.o, t.b0 + run.b, o)));
        }
        let wp = plan.wp[t.ob * kk * c * MR..][..kk * c * MR].as_ptr();
        let [r0, r1] = t.runs;
        let (x0p, x1p) = (
            t.x.as_ptr().wrapping_add(r0.b * xs.img + r0.q0),
            t.x.as_ptr().wrapping_add(r1.b * xs.img + r1.q0),
        );
        // No call and no bounds check inside the tap loop: the accumulators stay in registers.
        for tap in 0..kk {
            let (m0, m1) = (plan.bits[(tap * p + r0.q0) / V], plan.bits[(tap * p + r1.q0) / V]);
            let shift = plan.shifts[tap];
            let (s0, s1) = (x0p.wrapping_offset(shift), x1p.wrapping_offset(shift));
            let wt = wp.add(tap * c * MR);
            for ci in 0..c {
                // A lane is read only where its tap's mask is set, i.e. inside image b_h (whose
                // channel ci starts ci·ch after its channel 0); masked lanes are not accessed.
                let x0 = _mm512_maskz_loadu_ps(m0, s0.wrapping_add(ci * xs.ch));
                let x1 = _mm512_maskz_loadu_ps(m1, s1.wrapping_add(ci * xs.ch));
                let w = wt.add(ci * MR);
                for (r, row) in acc.iter_mut().enumerate() {
                    let wb = _mm512_set1_ps(*w.add(r));
                    row[0] = _mm512_fmadd_ps(wb, x0, row[0]);
                    row[1] = _mm512_fmadd_ps(wb, x1, row[1]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate().take(g.o - t.ob * MR) {
            for (run, &v) in t.runs.iter().zip(row).take(t.stores) {
                let at = run.b * ys.img + (t.ob * MR + r) * ys.ch + run.q0;
                _mm512_storeu_ps(out[at..at + V].as_mut_ptr(), v);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Plan, Tile, V};
    use std::arch::x86_64::*;

    /// Output channels per tile: with one run of two registers, 10 accumulators of the 16 (the run, its
    /// two lane masks and a broadcast weight take 5 more).
    pub(super) const MR: usize = 5;

    /// The lanes of bits `8h..8h + 8` of `bits` as a maskload mask (all ones where set).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn lane_mask(bits: u16, h: usize) -> __m256i {
        let lanes = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        let b = _mm256_set1_epi32(i32::from((bits >> (8 * h)) as u8));
        _mm256_cmpeq_epi32(_mm256_and_si256(b, lanes), lanes)
    }

    /// `acc[r] += Σ_c wt[c, r] · m · x_c` for the runs `x_c` at `src + c·ch` of one tap.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; every lane set in `m` lies inside the part's inputs, and with
    /// `WHOLE` every lane does.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn channels<const WHOLE: bool>(
        acc: &mut [[__m256; 2]; MR],
        src: *const f32,
        ch: usize,
        wt: &[f32],
        m: [__m256i; 2],
    ) {
        let keep = m.map(|v| _mm256_castsi256_ps(v));
        for (ci, w) in wt.chunks_exact(MR).enumerate() {
            let s = src.wrapping_add(ci * ch);
            let (x0, x1) = if WHOLE {
                (
                    _mm256_and_ps(_mm256_loadu_ps(s), keep[0]),
                    _mm256_and_ps(_mm256_loadu_ps(s.add(8)), keep[1]),
                )
            } else {
                (_mm256_maskload_ps(s, m[0]), _mm256_maskload_ps(s.wrapping_add(8), m[1]))
            };
            for r in 0..MR {
                let wb = _mm256_set1_ps(w[r]);
                acc[r][0] = _mm256_fmadd_ps(wb, x0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(wb, x1, acc[r][1]);
            }
        }
    }

    /// Computes the tile and stores it to `out`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; the run lies inside the part's images `x` and outputs `out`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile(plan: &Plan<'_>, t: &Tile<'_, 1>, out: &mut [f32]) {
        let g = plan.g;
        let (p, c, kk, run, xs, ys) = (g.p(), g.c, g.kh * g.kw, t.runs[0], plan.xs, plan.ys);
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for (r, row) in acc.iter_mut().enumerate() {
            let o = (t.ob * MR + r).min(g.o - 1);
            *row = [_mm256_set1_ps(plan.bias.value(g.o, t.b0 + run.b, o)); 2];
        }
        let wp = &plan.wp[t.ob * kk * c * MR..][..kk * c * MR];
        for tap in 0..kk {
            let bits = plan.bits[(tap * p + run.q0) / V];
            let m = [lane_mask(bits, 0), lane_mask(bits, 1)];
            let first = (run.b * xs.img + run.q0) as isize + plan.shifts[tap];
            let src = t.x.as_ptr().wrapping_offset(first);
            let wt = &wp[tap * c * MR..][..c * MR];
            // Whether every channel's run lies inside `x`: then plain loads with the masked-out
            // lanes cleared (a bitwise and, so no value of a neighbour pixel leaks in), else loads
            // that do not touch the masked-out lanes.
            if first >= 0 && first as usize + (c - 1) * xs.ch + V <= t.x.len() {
                channels::<true>(&mut acc, src, xs.ch, wt, m);
            } else {
                channels::<false>(&mut acc, src, xs.ch, wt, m);
            }
        }
        for (r, row) in acc.iter().enumerate().take(g.o - t.ob * MR) {
            let at = run.b * ys.img + (t.ob * MR + r) * ys.ch + run.q0;
            let dst = &mut out[at..at + V];
            _mm256_storeu_ps(dst.as_mut_ptr(), row[0]);
            _mm256_storeu_ps(dst[8..].as_mut_ptr(), row[1]);
        }
    }
}

/// The runs of [`V`] pixels of `n` images of `p` pixels, `N` at a time; a lone last run is
/// computed twice and stored once. Yields the runs and how many to store.
fn run_groups<const N: usize>(n: usize, p: usize) -> impl Iterator<Item = ([Run; N], usize)> {
    let runs = n * p / V;
    let run = move |i: usize| Run { b: i * V / p, q0: i * V % p };
    (0..runs).step_by(N).map(move |i| (std::array::from_fn(|h| run((i + h).min(runs - 1))), N.min(runs - i)))
}

/// The `n` images of the part of the batch from image `b0` (its inputs `x`, its outputs `out`),
/// tile by tile.
fn part(plan: &Plan<'_>, level: Simd, x: &[f32], n: usize, b0: usize, out: &mut [f32]) {
    let g = plan.g;
    #[cfg(target_arch = "x86_64")]
    match level {
        Simd::Avx512 => {
            for (runs, stores) in run_groups::<2>(n, g.p()) {
                for ob in 0..g.o.div_ceil(avx512::MR) {
                    // SAFETY: applies() and simd() checked AVX-512; the runs lie inside the part.
                    unsafe { avx512::tile(plan, &Tile { x, b0, ob, runs, stores }, out) };
                }
            }
        }
        Simd::Avx2 => {
            for (runs, stores) in run_groups::<1>(n, g.p()) {
                for ob in 0..g.o.div_ceil(avx2::MR) {
                    // SAFETY: applies() and simd() checked AVX2 and FMA; the run lies inside the part.
                    unsafe { avx2::tile(plan, &Tile { x, b0, ob, runs, stores }, out) };
                }
            }
        }
        Simd::Baseline => unreachable!("applies() excludes the baseline"),
    }
}

/// `y = conv(x, w) + bias` into `out` (`B·O·P`, every element written) for a geometry that
/// [`applies`]; one part of the batch per thread.
pub(super) fn forward(g: &ConvGeom, x: &[f32], w: &[f32], bias: Bias<'_, f32>, out: &mut [f32]) {
    forward_with(g, x, w, bias, out, simd())
}

/// Output channels per tile of the kernel of `level` (AVX-512 or AVX2; the CPU must have it).
fn tile_rows(level: Simd) -> usize {
    match level {
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => avx512::MR,
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => avx2::MR,
        _ => unreachable!("applies() excludes the baseline"),
    }
}

/// [`forward`] with the kernel of `level` (AVX-512 or AVX2; the CPU must have it).
fn forward_with(g: &ConvGeom, x: &[f32], w: &[f32], bias: Bias<'_, f32>, out: &mut [f32], level: Simd) {
    let (wp, bits, shifts) = (pack_weights(g, w, tile_rows(level)), mask_bits(g), tap_shifts(g));
    let (xs, ys) = (Strides { img: g.in_len(), ch: g.p() }, Strides { img: g.out_len(), ch: g.p() });
    let plan = Plan { g, xs, ys, wp: &wp, bits: &bits, shifts: &shifts, bias };
    let parts = partition(g.b, rayon::current_num_threads());
    let chunks = super::split_lengths(out, parts.iter().map(|r| r.len() * g.out_len()));
    let work: Vec<_> = parts.into_iter().zip(chunks).collect();
    work.into_par_iter().for_each(|(r, o)| {
        part(&plan, level, &x[r.start * g.in_len()..r.end * g.in_len()], r.len(), r.start, o);
    });
}

/// `y = conv(x, w)` (no bias) for a geometry that [`applies`], on channel-major buffers over the
/// `g.b` images (`x[c][i][q]` at `c·B·P + i·P + q`, `out` likewise with `O` rows; every element
/// written), on the calling thread alone.
pub(crate) fn forward_channel_major(g: &ConvGeom, x: &[f32], w: &[f32], out: &mut [f32]) {
    forward_channel_major_with(g, x, w, out, simd())
}

/// [`forward_channel_major`] with the kernel of `level`.
fn forward_channel_major_with(g: &ConvGeom, x: &[f32], w: &[f32], out: &mut [f32], level: Simd) {
    let (wp, bits, shifts) = (pack_weights(g, w, tile_rows(level)), mask_bits(g), tap_shifts(g));
    let strides = Strides { img: g.p(), ch: g.b * g.p() };
    let plan = Plan { g, xs: strides, ys: strides, wp: &wp, bits: &bits, shifts: &shifts, bias: Bias::None };
    part(&plan, level, x, g.b, 0, out);
}

#[cfg(test)]
mod tests {
    use super::{applies, forward_channel_major_with, forward_with, Bias};
    use crate::elem::{simd, Simd};
    use crate::im2col::ConvGeom;

    /// `y[b, o, q]` by its definition, in f64.
    fn naive(g: &ConvGeom, x: &[f32], w: &[f32], bias: &[f32], b: usize, o: usize, q: usize) -> f64 {
        let (y, xq) = (q / g.w, q % g.w);
        let mut s = bias[b * g.o + o] as f64;
        for c in 0..g.c {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let (iy, ix) = ((y + ky) as isize - g.pad as isize, (xq + kx) as isize - g.pad as isize);
                    if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                        let xv = x[((b * g.c + c) * g.h + iy as usize) * g.w + ix as usize] as f64;
                        s += w[((o * g.c + c) * g.kh + ky) * g.kw + kx] as f64 * xv;
                    }
                }
            }
        }
        s
    }

    #[test]
    fn matches_the_definition() {
        // (B, C, H, W, O, K): an odd number of 16-pixel runs and O not a multiple of the tile,
        // a 5x5 kernel, a 2x8 map, channel counts above the tile, and a 1x1 conv.
        let cases = [
            (3, 5, 4, 4, 11, 3),
            (2, 3, 8, 8, 9, 5),
            (1, 2, 2, 8, 3, 3),
            (2, 17, 16, 16, 8, 3),
            (3, 6, 4, 8, 9, 1),
        ];
        for (b, c, h, wd, o, k) in cases {
            let g = ConvGeom { b, c, h, w: wd, o, kh: k, kw: k, stride: 1, pad: k / 2, ho: h, wo: wd };
            if !applies(&g) {
                eprintln!("no AVX2 + FMA here: the direct conv is not used, nor tested");
                return;
            }
            let val = |i: usize, m: usize| ((i * 7919 + m) % 61) as f32 / 30.0 - 1.0;
            let x: Vec<f32> = (0..b * g.in_len()).map(|i| val(i, 1)).collect();
            let w: Vec<f32> = (0..o * c * k * k).map(|i| val(i, 5)).collect();
            let bias: Vec<f32> = (0..b * o).map(|i| val(i, 9)).collect();
            let levels: &[Simd] =
                if simd() == Simd::Avx512 { &[Simd::Avx512, Simd::Avx2] } else { &[Simd::Avx2] };
            for &level in levels {
                let mut out = vec![f32::NAN; b * g.out_len()];
                forward_with(&g, &x, &w, Bias::Sample(&bias), &mut out, level);
                for (i, &got) in out.iter().enumerate() {
                    let (bi, oi, q) = (i / g.out_len(), i / g.p() % o, i % g.p());
                    let want = naive(&g, &x, &w, &bias, bi, oi, q);
                    let ok = (got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs());
                    assert!(ok, "{level:?} {g:?} b{bi} o{oi} q{q}: {got} vs {want}");
                }
                // The same images channel-major (x[c][i][q]), without bias.
                let p = g.p();
                let xcm: Vec<f32> =
                    (0..b * g.in_len()).map(|j| x[(j / p % b * c + j / (b * p)) * p + j % p]).collect();
                let mut zcm = vec![f32::NAN; b * g.out_len()];
                forward_channel_major_with(&g, &xcm, &w, &mut zcm, level);
                let zero = vec![0.0; b * o];
                for (j, &got) in zcm.iter().enumerate() {
                    let (oi, bi, q) = (j / (b * p), j / p % b, j % p);
                    let want = naive(&g, &x, &w, &zero, bi, oi, q);
                    let ok = (got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs());
                    assert!(ok, "channel-major {level:?} {g:?} b{bi} o{oi} q{q}: {got} vs {want}");
                }
            }
        }
    }
}

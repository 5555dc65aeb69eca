//! Forward of stride-1 "same" convs (odd square kernel `K`, padding `(K − 1)/2`) without a patch
//! matrix, in f32 on AVX-512.
//!
//! For output pixel `q = y·W + x` of image `b` and kernel tap `t = (ky, kx)`, the input it reads is
//! the image's flat index `c·P + q + δ_t` with `δ_t = (ky − p)·W + (kx − p)`, inside the image
//! exactly where the tap's mask `m_t[q]` ([`crate::im2col::tap_masks`]) is set. So
//!
//! `y[b, o, q] = bias(b, o) + Σ_t Σ_c w[o, c, t] · m_t[q] · x[b, c, q + δ_t]`
//!
//! is computed in tiles of [`MR`] output channels by two runs of [`V`] pixels, the accumulators in
//! registers: per (tap, channel) one masked load of each run and `MR` broadcast weights. The im2col
//! path writes `K²` copies of the input before its GEMM reads them; for the small maps of memgen's
//! networks that copy costs as much as the product.
//!
//! Every output is `bias + Σ` in the order (tap, channel), one fused multiply-add at a time, so
//! the result does not depend on the tiling or on the thread count.

use super::Bias;
use crate::elem::{simd, Simd};
use crate::gemm::partition;
use crate::im2col::{tap_masks, ConvGeom};
use rayon::prelude::*;

/// Pixels per run: one 512-bit register of f32.
const V: usize = 16;

/// Output channels per tile: 2·MR = 16 accumulator registers of the 32.
const MR: usize = 8;

/// Whether the direct path computes `g`: a stride-1 same-size conv with an odd square kernel whose
/// maps have a multiple of [`V`] pixels, on a CPU with AVX-512 (the caller checks that the
/// elements are f32).
pub(super) fn applies(g: &ConvGeom) -> bool {
    g.stride == 1
        && g.kh == g.kw
        && g.kh % 2 == 1
        && g.pad == g.kh / 2
        && (g.ho, g.wo) == (g.h, g.w)
        && g.p() % V == 0
        && !g.is_pointwise()
        && simd() == Simd::Avx512
}

/// The weight in tiles: `wp[((ob·KK + t)·C + c)·MR + r] = w[ob·MR + r, c, t]`, 0 for the rows past
/// `O` of the last tile.
fn pack_weights(g: &ConvGeom, w: &[f32]) -> Vec<f32> {
    let (kk, c) = (g.kh * g.kw, g.c);
    let mut wp = vec![0.0; g.o.div_ceil(MR) * kk * c * MR];
    for o in 0..g.o {
        for ci in 0..c {
            for t in 0..kk {
                wp[((o / MR * kk + t) * c + ci) * MR + o % MR] = w[(o * c + ci) * kk + t];
            }
        }
    }
    wp
}

/// The tap masks as one 16-bit lane mask per (tap, run): bit `l` of `bits[t·P/V + j]` is
/// `m_t[j·V + l]`.
fn mask_bits(g: &ConvGeom) -> Vec<u16> {
    let m = tap_masks(g);
    m.chunks_exact(V)
        .map(|run| run.iter().enumerate().fold(0u16, |acc, (l, &v)| acc | (((v != 0) as u16) << l)))
        .collect()
}

/// One run of [`V`] output pixels: image `b` (within the part), first pixel `q0`.
#[derive(Clone, Copy)]
struct Run {
    b: usize,
    q0: usize,
}

/// The shared inputs of every tile of one conv.
struct Plan<'a> {
    g: &'a ConvGeom,
    wp: &'a [f32],
    bits: &'a [u16],
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Bias, Plan, Run, MR, V};
    use std::arch::x86_64::*;

    /// The tile of output channels `ob·MR..` over the runs `runs`, stored to `out` (the part's
    /// outputs; a run `h ≥ stores` is computed but not stored).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `x` holds the part's images and `out` their outputs, and the runs lie
    /// inside them.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile(
        plan: &Plan<'_>,
        x: &[f32],
        bias: Bias<'_, f32>,
        b0: usize,
        ob: usize,
        runs: [Run; 2],
        stores: usize,
        out: &mut [f32],
    ) {
        let g = plan.g;
        let (p, c, k, kk) = (g.p(), g.c, g.kw, g.kh * g.kw);
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for (r, row) in acc.iter_mut().enumerate() {
            let o = (ob * MR + r).min(g.o - 1);
            for h in 0..2 {
                row[h] = _mm512_set1_ps(bias.value(g.o, b0 + runs[h].b, o));
            }
        }
        let wp = &plan.wp[ob * kk * c * MR..][..kk * c * MR];
        for t in 0..kk {
            let shift = (t / k) as isize * g.w as isize + (t % k) as isize - (g.pad * (g.w + 1)) as isize;
            let m = runs.map(|r| plan.bits[(t * p + r.q0) / V] as __mmask16);
            let src = runs.map(|r| x.as_ptr().wrapping_offset((r.b * c * p + r.q0) as isize + shift));
            let wt = &wp[t * c * MR..][..c * MR];
            for ci in 0..c {
                // SAFETY: a lane is read only where its tap's mask is set, i.e. inside image b_h
                // (channel ci of which starts ci·P after its first element); masked lanes are not
                // accessed.
                let x0 = _mm512_maskz_loadu_ps(m[0], src[0].wrapping_add(ci * p));
                let x1 = _mm512_maskz_loadu_ps(m[1], src[1].wrapping_add(ci * p));
                let w = &wt[ci * MR..][..MR];
                for r in 0..MR {
                    let wb = _mm512_set1_ps(w[r]);
                    acc[r][0] = _mm512_fmadd_ps(wb, x0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(wb, x1, acc[r][1]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate().take(g.o - ob * MR) {
            for h in 0..stores {
                let at = ((runs[h].b * g.o + ob * MR + r) * p + runs[h].q0)..;
                let dst = &mut out[at][..V];
                // SAFETY: `dst` holds V elements.
                _mm512_storeu_ps(dst.as_mut_ptr(), row[h]);
            }
        }
    }
}

/// The part of the batch from image `b0` (its inputs `x` from that image on, its outputs `out`),
/// tile by tile: pairs of runs, and for each pair every tile of output channels.
fn part(plan: &Plan<'_>, x: &[f32], bias: Bias<'_, f32>, b0: usize, out: &mut [f32]) {
    let (g, p) = (plan.g, plan.g.p());
    let runs = out.len() / g.o / V;
    let run = |i: usize| Run { b: i * V / p, q0: i * V % p };
    for i in (0..runs).step_by(2) {
        // A lone last run is computed twice and stored once.
        let rs = [run(i), run((i + 1).min(runs - 1))];
        let stores = 1 + usize::from(i + 1 < runs);
        for ob in 0..g.o.div_ceil(MR) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: applies() checked AVX-512; the runs lie inside the part.
            unsafe {
                avx512::tile(plan, x, bias, b0, ob, rs, stores, out)
            };
        }
    }
}

/// `y = conv(x, w) + bias` into `out` (`B·O·P`, every element written) for a geometry that
/// [`applies`]; one part of the batch per thread.
pub(super) fn forward(g: &ConvGeom, x: &[f32], w: &[f32], bias: Bias<'_, f32>, out: &mut [f32]) {
    let (wp, bits) = (pack_weights(g, w), mask_bits(g));
    let plan = Plan { g, wp: &wp, bits: &bits };
    let parts = partition(g.b, rayon::current_num_threads());
    let chunks = super::split_lengths(out, parts.iter().map(|r| r.len() * g.out_len()));
    let work: Vec<_> = parts.into_iter().zip(chunks).collect();
    work.into_par_iter().for_each(|(r, o)| {
        part(&plan, &x[r.start * g.in_len()..r.end * g.in_len()], bias, r.start, o);
    });
}

#[cfg(test)]
mod tests {
    use super::{applies, forward, Bias};
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
        // a 5x5 kernel, a 2x8 map, and channel counts above the tile.
        let cases = [(3, 5, 4, 4, 11, 3), (2, 3, 8, 8, 9, 5), (1, 2, 2, 8, 3, 3), (2, 17, 16, 16, 8, 3)];
        for (b, c, h, wd, o, k) in cases {
            let g = ConvGeom { b, c, h, w: wd, o, kh: k, kw: k, stride: 1, pad: k / 2, ho: h, wo: wd };
            if !applies(&g) {
                eprintln!("no AVX-512 here: the direct conv is not used, nor tested");
                return;
            }
            let val = |i: usize, m: usize| ((i * 7919 + m) % 61) as f32 / 30.0 - 1.0;
            let x: Vec<f32> = (0..b * g.in_len()).map(|i| val(i, 1)).collect();
            let w: Vec<f32> = (0..o * c * k * k).map(|i| val(i, 5)).collect();
            let bias: Vec<f32> = (0..b * o).map(|i| val(i, 9)).collect();
            let mut out = vec![f32::NAN; b * g.out_len()];
            forward(&g, &x, &w, Bias::Sample(&bias), &mut out);
            for bi in 0..b {
                for oi in 0..o {
                    for q in 0..g.p() {
                        let want = naive(&g, &x, &w, &bias, bi, oi, q);
                        let got = out[(bi * o + oi) * g.p() + q] as f64;
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "{g:?} b{bi} o{oi} q{q}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

//! C^alpha synthetic images of Kadkhodaie, Guth, Simoncelli and Mallat (ICLR 2024, arXiv 2310.02557),
//! following their generator (`code/synthetic_data_generators.py`, `make_C_alpha_images`).
//!
//! An S x S image is two smooth backgrounds separated by a C^alpha contour:
//!
//! 1. **Contour.** u_i ~ U[-1, 1], i < S; c = Re ifft( fft(u) * H_alpha ), where
//!    H_alpha(k) = (1 / (|f_k| S))^alpha = k^-alpha with k = |f_k| S = min(j, S - j) the integer frequency
//!    magnitude of FFT bin j (`fftfreq(S)`), and H_alpha(0) = H_alpha(1) = 1 (the zero frequency's value is
//!    copied from its neighbour, as the authors do). ifft has numpy's 1/S normalisation. So
//!    E|fft(c)_k|^2 = (S/3) k^(-2 alpha): the curve's power spectrum decays as |f|^(-2 alpha).
//! 2. **Rows.** r_i = round(c_i S) + floor(S/2), rounding half to even (as `torch.round`).
//!    **memgen clamps r_i to [0, S]**; the authors write the mask as the slice `mask[0:r_i, i] = 0`, in which
//!    a negative r_i would wrap to S + r_i (and r_i > S already saturates at S). Clamping is the natural
//!    reading: a contour above the image leaves the whole column in region 1, one below it in region 2.
//! 3. **Mask.** m[r, i] = 0 for r < r_i, else 1 (region 1 is where m = 1, below the contour).
//! 4. **Backgrounds.** Two fields v = Re ifft2( fft2(w) * H_beta ), w ~ U[-1, 1]^(S x S),
//!    H_beta(kx, ky) = (kx^2 + ky^2)^(-beta/2), H_beta(0, 0) = 1 (copied from a neighbour), beta = alpha
//!    by default. With probability 1/2 region 1 is min-max rescaled onto [U, 1] and region 2 onto [0, U'],
//!    else region 1 onto [0, U'] and region 2 onto [U, 1]; U, U' ~ U[0, 1]. The first field is b1, the second
//!    b2; the "bright" region is the one rescaled onto [U, 1].
//!    With `constant_background` the fields are not drawn: the same coin and the same U, U' are drawn, and
//!    the bright region is the constant U, the other the constant U'. The pair (b1, b2) is then two
//!    independent U[0, 1] constants, in law exactly the authors' two `np.random.rand` calls (the "bright"
//!    label carries no ordering in this case).
//! 5. **Anti-aliasing.** m'[r, c] = (1/4) sum_{r' in {r, r+1}, c' in {c, c+1}} m[min(r', S-1), min(c', S-1)]:
//!    a 2x2 box filter with edge-replicating padding at the far edge. (The authors' factor-2 variant is a
//!    2x2 box over {r-1, r} x {c-1, c} with reflect padding at the near edge; memgen's window sits half a
//!    pixel further down-right and needs no reflection. Both are 2x2 box averages of the same mask.)
//! 6. **Image** = b1 m' + b2 (1 - m'), values in [0, 1].
//!
//! Random draws, in order, from `crate::rng::for_item(seed, k)` for image k: u (S values), then (unless
//! constant) the S^2 values of b1's noise and the S^2 values of b2's noise, then the coin, U, U'.
//! Image k thus depends only on (seed, k).

use crate::source::{generate_items, synthetic_provenance};
use crate::{invalid, Image, ImageSource, Provenance, Result, SourceImage};
use rand::Rng;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Parameters of the C^alpha generator (see the module doc for the formulas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalphaConfig {
    /// Regularity of the contour: its filter is k^-alpha. Must be finite and > 0.
    pub alpha: f64,
    /// Regularity of the backgrounds: their filter is |k|^-beta. None means beta = alpha.
    #[serde(default)]
    pub beta: Option<f64>,
    /// Constant backgrounds (U and U') instead of C^beta fields.
    #[serde(default)]
    pub constant_background: bool,
    /// Seed of the stream; image k is drawn from `crate::rng::for_item(seed, k)`.
    #[serde(default)]
    pub seed: u64,
}

impl Default for CalphaConfig {
    /// alpha = 4, beta = alpha, non-constant backgrounds, seed 0.
    fn default() -> Self {
        CalphaConfig { alpha: 4.0, beta: None, constant_background: false, seed: 0 }
    }
}

/// The components of one C^alpha image, all S x S row-major f64 (vectors of length S for the contour):
/// image = b1 * blurred_mask + b2 * (1 - blurred_mask).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CalphaParts {
    /// The real curve c(i), before rounding.
    pub contour: Vec<f64>,
    /// r_i = clamp(round(c_i S) + floor(S/2), 0, S).
    pub rows: Vec<usize>,
    /// m[r, i] = 0 for r < r_i, else 1.
    pub mask: Vec<f64>,
    /// m' = 2x2 box average of m with the far edge replicated.
    pub blurred_mask: Vec<f64>,
    /// Region-1 background (where m = 1).
    pub b1: Vec<f64>,
    /// Region-2 background (where m = 0).
    pub b2: Vec<f64>,
    /// True when region 1 got the bright range [U, 1] (or the constant U).
    pub region1_bright: bool,
}

/// Forward and inverse FFT plans of one length, shared by the contour and the backgrounds.
struct Plans {
    fwd: Arc<dyn Fft<f64>>,
    inv: Arc<dyn Fft<f64>>,
}

impl Plans {
    fn new(len: usize) -> Self {
        let mut planner = FftPlanner::new();
        Plans { fwd: planner.plan_fft_forward(len), inv: planner.plan_fft_inverse(len) }
    }
}

/// |f_j| S for bin j of an `s`-point FFT (`fftfreq`): min(j, s - j).
fn freq_magnitude(j: usize, s: usize) -> f64 {
    j.min(s - j) as f64
}

/// (1 / k)^p for k > 0, and 1 at k = 0 (the value at k = 1).
fn power_filter(k: f64, p: f64) -> f64 {
    if k == 0.0 {
        1.0
    } else {
        k.powf(-p)
    }
}

/// `n` complex samples of U[-1, 1] real noise.
fn uniform_noise(n: usize, rng: &mut impl Rng) -> Vec<Complex<f64>> {
    (0..n).map(|_| Complex::new(rng.random::<f64>() * 2.0 - 1.0, 0.0)).collect()
}

/// H_alpha on the bins of a `side`-point FFT: H(j) = k_j^-alpha, k_j = min(j, side - j), H(0) = 1.
fn contour_filter(side: usize, alpha: f64) -> Vec<f64> {
    (0..side).map(|j| power_filter(freq_magnitude(j, side), alpha)).collect()
}

/// H_beta on the bins of a side x side 2-D FFT (row-major): H(ky, kx) = (ky^2 + kx^2)^(-beta/2), H(0,0) = 1.
fn background_filter(side: usize, beta: f64) -> Vec<f64> {
    (0..side * side)
        .map(|idx| {
            let (ky, kx) = (freq_magnitude(idx / side, side), freq_magnitude(idx % side, side));
            power_filter(ky.hypot(kx), beta)
        })
        .collect()
}

/// The C^alpha curve c = Re ifft( fft(u) * H_alpha ), u_i ~ U[-1, 1] (i < side), H_alpha(k) = k^-alpha for
/// the integer frequency magnitude k = min(j, side - j) of bin j and H_alpha(0) = 1; ifft is normalised by
/// 1/side. Draws exactly `side` values from `rng`.
pub fn contour(alpha: f64, side: usize, rng: &mut impl Rng) -> Vec<f64> {
    if side == 0 {
        return Vec::new();
    }
    filtered_contour(&contour_filter(side, alpha), &Plans::new(side), rng)
}

/// c = Re ifft( fft(u) * filter ) / side for fresh u ~ U[-1, 1]^side.
fn filtered_contour(filter: &[f64], plans: &Plans, rng: &mut impl Rng) -> Vec<f64> {
    let mut buf = uniform_noise(filter.len(), rng);
    plans.fwd.process(&mut buf);
    buf.iter_mut().zip(filter).for_each(|(v, h)| *v *= h);
    plans.inv.process(&mut buf);
    buf.iter().map(|v| v.re / filter.len() as f64).collect()
}

/// Row indices r_i = clamp(round(c_i side) + floor(side/2), 0, side), rounding half to even (as
/// `torch.round`). Clamping replaces the authors' Python-slice wrap of negative indices; a NaN gives 0.
pub fn contour_rows(c: &[f64], side: usize) -> Vec<usize> {
    let s = side as f64;
    c.iter()
        .map(|&ci| {
            let r = (ci * s).round_ties_even() + (side / 2) as f64;
            r.max(0.0).min(s) as usize
        })
        .collect()
}

/// In-place 2-D FFT (forward or inverse, unnormalised) of a side x side row-major buffer.
fn fft2(buf: &mut [Complex<f64>], side: usize, fft: &dyn Fft<f64>) {
    for _ in 0..2 {
        fft.process(buf);
        transpose(buf, side);
    }
}

fn transpose(buf: &mut [Complex<f64>], side: usize) {
    for r in 0..side {
        for c in r + 1..side {
            buf.swap(r * side + c, c * side + r);
        }
    }
}

/// A C^beta field v = Re ifft2( fft2(w) * H_beta ), w ~ U[-1, 1]^(side x side),
/// H_beta(kx, ky) = (kx^2 + ky^2)^(-beta/2), H_beta(0,0) = 1; ifft2 normalised by 1/side^2.
/// `filter` is [`background_filter`]`(side, beta)`.
fn background_field(filter: &[f64], side: usize, plans: &Plans, rng: &mut impl Rng) -> Vec<f64> {
    let mut buf = uniform_noise(side * side, rng);
    fft2(&mut buf, side, &*plans.fwd);
    buf.iter_mut().zip(filter).for_each(|(v, h)| *v *= h);
    fft2(&mut buf, side, &*plans.inv);
    let norm = (side * side) as f64;
    buf.iter().map(|v| v.re / norm).collect()
}

/// Min-max rescale onto [lo, hi]: t = (v - min) / (max - min), v' = (1 - t) lo + t hi (so the minimum maps
/// to lo and the maximum to hi exactly); a constant field maps to lo.
fn rescale(v: &mut [f64], lo: f64, hi: f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = max - min;
    for x in v.iter_mut() {
        let t = if span > 0.0 { (*x - min) / span } else { 0.0 };
        *x = ((1.0 - t) * lo + t * hi).max(lo).min(hi);
    }
}

/// Everything one (config, side) needs that does not depend on the draw: the FFT plans and the filters
/// H_alpha (length S) and H_beta (S x S; empty for constant backgrounds).
struct Generator {
    cfg: CalphaConfig,
    side: usize,
    plans: Plans,
    contour_filter: Vec<f64>,
    background_filter: Vec<f64>,
}

impl Generator {
    fn new(cfg: &CalphaConfig, side: usize) -> Self {
        let beta = cfg.beta.unwrap_or(cfg.alpha);
        let background_filter =
            if cfg.constant_background { Vec::new() } else { background_filter(side, beta) };
        Generator {
            cfg: cfg.clone(),
            side,
            plans: Plans::new(side.max(1)),
            contour_filter: contour_filter(side, cfg.alpha),
            background_filter,
        }
    }

    /// The parts of image `index`, drawn from `crate::rng::for_item(seed, index)`: contour, then backgrounds.
    fn parts(&self, index: u64) -> CalphaParts {
        let (side, mut rng) = (self.side, crate::rng::for_item(self.cfg.seed, index));
        if side == 0 {
            return CalphaParts::default();
        }
        let contour = filtered_contour(&self.contour_filter, &self.plans, &mut rng);
        let rows = contour_rows(&contour, side);
        let (b1, b2, region1_bright) = self.backgrounds(&mut rng);
        let mask = mask_from_rows(&rows, side);
        let blurred_mask = box_blur_2x2(&mask, side);
        CalphaParts { contour, rows, mask, blurred_mask, b1, b2, region1_bright }
    }

    /// pixel = b1 m' + b2 (1 - m'), as f32.
    fn image(&self, index: u64) -> Image {
        let p = self.parts(index);
        let pixels = (0..self.side * self.side)
            .map(|i| {
                let m = p.blurred_mask[i];
                (p.b1[i] * m + p.b2[i] * (1.0 - m)) as f32
            })
            .collect();
        Image::gray(self.side, self.side, pixels)
    }

    /// Draw (b1, b2, region1_bright) as in step 4 of the module doc.
    fn backgrounds(&self, rng: &mut impl Rng) -> (Vec<f64>, Vec<f64>, bool) {
        let (side, n) = (self.side, self.side * self.side);
        let (mut b1, mut b2) = if self.cfg.constant_background {
            (vec![0.0; n], vec![0.0; n])
        } else {
            let first = background_field(&self.background_filter, side, &self.plans, rng);
            (first, background_field(&self.background_filter, side, &self.plans, rng))
        };
        let region1_bright = rng.random::<bool>();
        let (u, u_prime) = (rng.random::<f64>(), rng.random::<f64>());
        let (bright, dark) = if region1_bright { (&mut b1, &mut b2) } else { (&mut b2, &mut b1) };
        fill_regions(self.cfg.constant_background, bright, dark, u, u_prime);
        (b1, b2, region1_bright)
    }
}

/// Constant: bright = U, dark = U'. Otherwise bright is rescaled onto [U, 1], dark onto [0, U'].
fn fill_regions(constant: bool, bright: &mut [f64], dark: &mut [f64], u: f64, u_prime: f64) {
    if constant {
        bright.fill(u);
        dark.fill(u_prime);
    } else {
        rescale(bright, u, 1.0);
        rescale(dark, 0.0, u_prime);
    }
}

/// m[r, i] = 0 for r < rows[i], else 1 (side x side, row-major).
fn mask_from_rows(rows: &[usize], side: usize) -> Vec<f64> {
    (0..side * side).map(|idx| if idx / side < rows[idx % side] { 0.0 } else { 1.0 }).collect()
}

/// m'[r, c] = mean of m over rows {r, r+1} x cols {c, c+1}, indices clamped to side - 1.
fn box_blur_2x2(m: &[f64], side: usize) -> Vec<f64> {
    let last = side.saturating_sub(1);
    (0..side * side)
        .map(|idx| {
            let (r, c) = (idx / side, idx % side);
            let (r1, c1) = ((r + 1).min(last), (c + 1).min(last));
            0.25 * (m[r * side + c] + m[r * side + c1] + m[r1 * side + c] + m[r1 * side + c1])
        })
        .collect()
}

/// The components of image `index` (see [`CalphaParts`]): contour, rows, mask, blurred mask and the two
/// backgrounds, drawn from `crate::rng::for_item(cfg.seed, index)` in the order of the module doc.
pub fn generate_parts(cfg: &CalphaConfig, side: usize, index: u64) -> CalphaParts {
    Generator::new(cfg, side).parts(index)
}

/// Image `index` of the stream: pixel = b1 m' + b2 (1 - m') (as f32, in [0, 1]); a grayscale side x side
/// image that depends only on (cfg, side, index).
pub fn generate(cfg: &CalphaConfig, side: usize, index: u64) -> Image {
    Generator::new(cfg, side).image(index)
}

/// An infinite source of C^alpha images of one size.
#[derive(Debug, Clone)]
pub struct CalphaSource {
    cfg: CalphaConfig,
    side: usize,
}

impl CalphaSource {
    /// A generator of side x side images; requires side >= 4, alpha finite and > 0, beta (if given)
    /// finite and > 0.
    pub fn new(cfg: CalphaConfig, side: usize) -> Result<Self> {
        if side < 4 {
            return Err(invalid!("calpha: side must be >= 4, got {side}"));
        }
        if !(cfg.alpha.is_finite() && cfg.alpha > 0.0) {
            return Err(invalid!("calpha: alpha must be finite and > 0, got {}", cfg.alpha));
        }
        if let Some(beta) = cfg.beta.filter(|b| !(b.is_finite() && *b > 0.0)) {
            return Err(invalid!("calpha: beta must be finite and > 0, got {beta}"));
        }
        Ok(CalphaSource { cfg, side })
    }

    /// The configuration.
    pub fn config(&self) -> &CalphaConfig {
        &self.cfg
    }

    /// The image side S.
    pub fn side(&self) -> usize {
        self.side
    }
}

impl ImageSource for CalphaSource {
    /// kind `calpha`, location `calpha`, params = the config's fields plus `side`.
    fn provenance(&self) -> Provenance {
        synthetic_provenance("calpha", &self.cfg, self.side)
    }

    /// Images 0..count (generated in parallel), named `calpha#{k}`, no group. `count` is required.
    fn load(&mut self, count: Option<usize>) -> Result<Vec<SourceImage>> {
        let generator = Generator::new(&self.cfg, self.side);
        generate_items("calpha", count, |k| generator.image(k))
    }
}

//! Gaussian synthetic images for the linear-diffusion theory (Merger & Goldt 2025).
//!
//! An image of side S has d = S^2 pixels and is drawn from N(mu, Sigma) with mu = mean * 1 and
//! Sigma = U diag(lambda) U^T, where lambda is a [`Spectrum`] (lambda_1 >= lambda_2 >= ... for a power law)
//! and the columns of U are the eigenvectors of a [`Basis`]:
//!
//! x = mu + U (sqrt(lambda) ⊙ z),  z ~ N(0, I_d),
//!
//! with z the first d `StandardNormal` draws of `crate::rng::for_item(seed, k)` for image k, so image k
//! depends only on (seed, k). z_j multiplies eigenvalue lambda_{j+1} and eigenvector (column) j.
//!
//! **Gaussian data are not clamped**: unlike every other source, pixels leave [0, 1] (the exact
//! N(mu, Sigma) is what the linear theory needs). Samples are computed in f64 and stored as f32.
//!
//! With the DCT basis and a power law lambda_k ~ k^-p, the number of modes below frequency |kappa| grows as
//! |kappa|^2, so the power at spatial frequency kappa is ~ |kappa|^(-2p): p = 1 gives the 1/f^2 spectrum of
//! natural images (smooth, image-like fields).

use crate::source::{generate_items, synthetic_provenance};
use crate::{invalid, Image, ImageSource, Provenance, Result, SourceImage};
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The eigenvalues lambda_1..lambda_d of the covariance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Spectrum {
    /// lambda_k = scale * k^(-exponent), k = 1..d (scale > 0, exponent >= 0, both finite).
    PowerLaw { exponent: f64, scale: f64 },
    /// lambda_k = variance for every k (variance > 0, finite).
    Flat { variance: f64 },
}

/// The eigenvectors of the covariance (the columns of U).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// U = I: eigenvalue k goes to pixel k - 1 in row-major order.
    Pixel,
    /// The orthonormal 2-D DCT-II basis: column j is phi_(ky,kx)(r, c) = D[ky, r] D[kx, c] with
    /// D[k, n] = a_k cos(pi (2n + 1) k / (2S)), a_0 = sqrt(1/S), a_k = sqrt(2/S); the (ky, kx) pairs are
    /// sorted by (kx^2 + ky^2, then ky, then kx), so eigenvalue 1 is the constant image and higher
    /// eigenvalues go to lower frequencies.
    Dct,
}

/// Parameters of the Gaussian source: N(mean * 1, U diag(lambda) U^T) (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianConfig {
    /// Every pixel's mean (mu = mean * 1). Default 0.5.
    #[serde(default = "default_mean")]
    pub mean: f64,
    /// The eigenvalues.
    pub spectrum: Spectrum,
    /// The eigenvectors. Default `dct`.
    #[serde(default = "default_basis")]
    pub basis: Basis,
    /// Seed of the stream; image k uses `crate::rng::for_item(seed, k)`.
    #[serde(default)]
    pub seed: u64,
}

fn default_mean() -> f64 {
    0.5
}

fn default_basis() -> Basis {
    Basis::Dct
}

impl Default for GaussianConfig {
    /// mean 0.5, power law lambda_k = 0.05 k^-1, DCT basis, seed 0.
    fn default() -> Self {
        GaussianConfig {
            mean: default_mean(),
            spectrum: Spectrum::PowerLaw { exponent: 1.0, scale: 0.05 },
            basis: default_basis(),
            seed: 0,
        }
    }
}

/// lambda_k for k = 1..d: scale * k^(-exponent) (power law) or variance (flat).
pub fn eigenvalues(spectrum: &Spectrum, d: usize) -> Vec<f64> {
    match *spectrum {
        Spectrum::PowerLaw { exponent, scale } => {
            (1..=d).map(|k| scale * (k as f64).powf(-exponent)).collect()
        }
        Spectrum::Flat { variance } => vec![variance; d],
    }
}

/// The DCT frequency pairs (ky, kx), 0 <= ky, kx < side, sorted by (kx^2 + ky^2, ky, kx): entry j is the
/// frequency of eigenvector j of [`Basis::Dct`].
pub fn dct_order(side: usize) -> Vec<(usize, usize)> {
    let mut order: Vec<(usize, usize)> = (0..side).flat_map(|ky| (0..side).map(move |kx| (ky, kx))).collect();
    order.sort_by_key(|&(ky, kx)| (kx * kx + ky * ky, ky, kx));
    order
}

/// The orthonormal 1-D DCT-II matrix (side x side, row-major): D[k, n] = a_k cos(pi (2n + 1) k / (2 side)),
/// a_0 = sqrt(1/side), a_k = sqrt(2/side). Its rows are the 1-D basis functions.
pub fn dct_matrix(side: usize) -> Vec<f64> {
    let s = side as f64;
    (0..side * side)
        .map(|idx| {
            let (k, n) = (idx / side, idx % side);
            let a = if k == 0 { (1.0 / s).sqrt() } else { (2.0 / s).sqrt() };
            a * (std::f64::consts::PI * (2 * n + 1) as f64 * k as f64 / (2.0 * s)).cos()
        })
        .collect()
}

/// The transform x = U y for one basis and side, with y laid out on a side x side "coefficient grid":
/// eigenvector j sits at grid position `pos[j]` (pixel j for `Pixel`; ky * side + kx of `dct_order()[j]`
/// for `Dct`), and for `Dct` x = D^T Y D (the separable inverse 2-D DCT, two side x side products).
struct Transform {
    side: usize,
    basis: Basis,
    pos: Vec<usize>,
    dct: Vec<f64>,
}

impl Transform {
    fn new(basis: Basis, side: usize) -> Self {
        let (pos, dct) = match basis {
            Basis::Pixel => ((0..side * side).collect(), Vec::new()),
            Basis::Dct => {
                let pos = dct_order(side).into_iter().map(|(ky, kx)| ky * side + kx).collect();
                (pos, dct_matrix(side))
            }
        };
        Transform { side, basis, pos, dct }
    }

    /// x = U y, where `grid[pos[j]] = y_j`.
    fn apply_grid(&self, grid: Vec<f64>) -> Vec<f64> {
        match self.basis {
            Basis::Pixel => grid,
            Basis::Dct => mat_tn(&self.dct, &mat_nn(&grid, &self.dct, self.side), self.side),
        }
    }

    /// x = U y for y in eigenvector order.
    fn apply(&self, y: &[f64]) -> Vec<f64> {
        let mut grid = vec![0.0; y.len()];
        for (&p, &v) in self.pos.iter().zip(y) {
            grid[p] = v;
        }
        self.apply_grid(grid)
    }

    /// Row `p` of U on the coefficient grid: entry g is U[p, j] for the j with pos[j] = g
    /// (delta_(p,g) for `Pixel`; D[ky, r] D[kx, c] for `Dct`, with g = ky * side + kx and p = r * side + c).
    fn row_grid(&self, p: usize) -> Vec<f64> {
        let s = self.side;
        match self.basis {
            Basis::Pixel => (0..s * s).map(|g| if g == p { 1.0 } else { 0.0 }).collect(),
            Basis::Dct => {
                let (r, c) = (p / s, p % s);
                (0..s * s).map(|g| self.dct[(g / s) * s + r] * self.dct[(g % s) * s + c]).collect()
            }
        }
    }
}

/// C = A B for n x n row-major matrices.
fn mat_nn(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for (out_row, a_row) in out.chunks_exact_mut(n.max(1)).zip(a.chunks_exact(n.max(1))) {
        for (&aik, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
            axpy(out_row, aik, b_row);
        }
    }
    out
}

/// C = A^T B for n x n row-major matrices: row i of C is sum_k A[k, i] B[k, :].
fn mat_tn(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for (a_row, b_row) in a.chunks_exact(n.max(1)).zip(b.chunks_exact(n.max(1))) {
        for (&aki, out_row) in a_row.iter().zip(out.chunks_exact_mut(n)) {
            axpy(out_row, aki, b_row);
        }
    }
    out
}

/// y += a x.
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// U as a dense d x d row-major matrix (d = side^2): U[p, j] is pixel p (= r * side + c) of eigenvector j.
/// Pixel: U = I. Dct: U[p, j] = D[ky_j, r] D[kx_j, c] with (ky_j, kx_j) = `dct_order(side)[j]` and D from
/// [`dct_matrix`]. U is orthonormal: U^T U = I.
pub fn basis_matrix(basis: Basis, side: usize) -> Vec<f64> {
    let t = Transform::new(basis, side);
    let d = side * side;
    let mut u = vec![0.0; d * d];
    for p in 0..d {
        let row = t.row_grid(p);
        for (j, &g) in t.pos.iter().enumerate() {
            u[p * d + j] = row[g];
        }
    }
    u
}

/// The exact covariance Sigma = U diag(lambda) U^T (d x d row-major f64, d = side^2), lambda from
/// [`eigenvalues`]. Computed column by column as Sigma e_p = U (lambda ⊙ U^T e_p) with the separable
/// transform: O(d^2.5) time for the DCT basis, d^2 f64 of memory.
pub fn covariance(cfg: &GaussianConfig, side: usize) -> Vec<f64> {
    let t = Transform::new(cfg.basis, side);
    let d = side * side;
    let mut lambda_grid = vec![0.0; d];
    for (&g, &l) in t.pos.iter().zip(&eigenvalues(&cfg.spectrum, d)) {
        lambda_grid[g] = l;
    }
    let mut cov = vec![0.0; d * d];
    cov.par_chunks_mut(d.max(1)).enumerate().for_each(|(p, out)| {
        let w: Vec<f64> = t.row_grid(p).iter().zip(&lambda_grid).map(|(u, l)| u * l).collect();
        out.copy_from_slice(&t.apply_grid(w));
    });
    cov
}

/// z ~ N(0, I_d): the first d `StandardNormal` draws of `crate::rng::for_item(seed, index)`.
pub fn latent(seed: u64, index: u64, d: usize) -> Vec<f64> {
    let mut rng = crate::rng::for_item(seed, index);
    (0..d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect()
}

/// Precomputed sampler for one (config, side): x = mean + U (sqrt(lambda) ⊙ z).
struct Sampler {
    mean: f64,
    seed: u64,
    sqrt_lambda: Vec<f64>,
    transform: Transform,
}

impl Sampler {
    fn new(cfg: &GaussianConfig, side: usize) -> Self {
        let sqrt_lambda = eigenvalues(&cfg.spectrum, side * side).iter().map(|l| l.sqrt()).collect();
        Sampler { mean: cfg.mean, seed: cfg.seed, sqrt_lambda, transform: Transform::new(cfg.basis, side) }
    }

    fn synthesize(&self, z: &[f64]) -> Vec<f64> {
        let y: Vec<f64> = self.sqrt_lambda.iter().zip(z).map(|(s, z)| s * z).collect();
        self.transform.apply(&y).into_iter().map(|v| v + self.mean).collect()
    }

    fn sample(&self, index: u64) -> Image {
        let side = self.transform.side;
        let x = self.synthesize(&latent(self.seed, index, side * side));
        Image::gray(side, side, x.into_iter().map(|v| v as f32).collect())
    }
}

/// x = mean + U (sqrt(lambda) ⊙ z) in f64 for a given latent z of length d = side^2 (separable inverse
/// 2-D DCT for `Dct`, no product at all for `Pixel`). Errors if z.len() != d.
pub fn synthesize(cfg: &GaussianConfig, side: usize, z: &[f64]) -> Result<Vec<f64>> {
    if z.len() != side * side {
        return Err(invalid!("gaussian: latent has {} entries, side {side} needs {}", z.len(), side * side));
    }
    Ok(Sampler::new(cfg, side).synthesize(z))
}

/// Image `index`: x = mean + U (sqrt(lambda) ⊙ z), z = [`latent`](seed, index, side^2), as f32, not clamped.
pub fn sample(cfg: &GaussianConfig, side: usize, index: u64) -> Image {
    Sampler::new(cfg, side).sample(index)
}

/// An infinite source of side x side Gaussian images.
#[derive(Debug, Clone)]
pub struct GaussianSource {
    cfg: GaussianConfig,
    side: usize,
}

impl GaussianSource {
    /// A source of side x side images; requires side >= 1, a finite mean, finite scale > 0 and finite
    /// exponent >= 0 (power law) or finite variance > 0 (flat).
    pub fn new(cfg: GaussianConfig, side: usize) -> Result<Self> {
        if side < 1 {
            return Err(invalid!("gaussian: side must be >= 1, got {side}"));
        }
        if !cfg.mean.is_finite() {
            return Err(invalid!("gaussian: mean must be finite, got {}", cfg.mean));
        }
        validate_spectrum(&cfg.spectrum)?;
        Ok(GaussianSource { cfg, side })
    }

    /// The configuration.
    pub fn config(&self) -> &GaussianConfig {
        &self.cfg
    }

    /// The image side S (d = S^2).
    pub fn side(&self) -> usize {
        self.side
    }
}

fn validate_spectrum(spectrum: &Spectrum) -> Result<()> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    match *spectrum {
        Spectrum::PowerLaw { scale, .. } if !positive(scale) => {
            Err(invalid!("gaussian: power-law scale must be finite and > 0, got {scale}"))
        }
        Spectrum::PowerLaw { exponent, .. } if !(exponent.is_finite() && exponent >= 0.0) => {
            Err(invalid!("gaussian: power-law exponent must be finite and >= 0, got {exponent}"))
        }
        Spectrum::Flat { variance } if !positive(variance) => {
            Err(invalid!("gaussian: flat variance must be finite and > 0, got {variance}"))
        }
        _ => Ok(()),
    }
}

impl ImageSource for GaussianSource {
    /// kind `gaussian`, location `gaussian`, params = the config's fields plus `side`.
    fn provenance(&self) -> Provenance {
        synthetic_provenance("gaussian", &self.cfg, self.side)
    }

    /// Images 0..count (generated in parallel), named `gaussian#{k}`, no group. `count` is required.
    fn load(&mut self, count: Option<usize>) -> Result<Vec<SourceImage>> {
        let sampler = Sampler::new(&self.cfg, self.side);
        generate_items("gaussian", count, |k| sampler.sample(k))
    }
}

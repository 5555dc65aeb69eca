//! The denoising score-matching (DSM) loss of the random-feature model as a quadratic form in A.
//!
//! Loss (Li et al. 2023, eq. (3), with the time average made explicit), over t ∈ [t0, T]:
//!
//! L(A) = 1/(T − t0) ∫_{t0}^{T} λ(t) E_{x0, z} ‖s_A(e^{−t} x0 + σ_t z, t) + z/σ_t‖² dt,
//!
//! with x0 over the n training samples (or p0 for the population loss), z ~ N(0, I), σ_t² = 1 − e^{−2t}.
//! Weighting λ(t): [`Weighting::Likelihood`] λ = 1 (default: for this process g² = 2, so by Girsanov
//! KL(p_{t0} ‖ p_θ) ≤ KL(p_T ‖ N(0, I)) + ∫ E_{p_t}‖s − s_θ‖² dt, and the population loss minus its
//! constant is exactly that integral up to the factor T − t0), or [`Weighting::Sigma2`] λ = σ_t² (the
//! ε-prediction loss of DDPM).
//!
//! Discretisation of the empirical loss: each sample x0_i gets K draws (t_ik, z_ik), k = 0..K−1, from
//! ChaCha8 stream i of the seed. t is log-uniform and stratified: ln t_ik = ln t0 + (k + U_ik)/K · ln(T/t0),
//! U_ik ~ U[0, 1), with importance weight ω(t) = λ(t) · t ln(T/t0)/(T − t0) (the density of a log-uniform t
//! is 1/(t ln(T/t0))), so L(A) ≈ (1/nK) Σ_ik ω_ik ‖s_A(x_ik, t_ik) − y_ik‖², y_ik = −z_ik/σ_{t_ik}.
//! With finite K the fixed draws are themselves a finite sample: the minimiser also fits the noise z
//! (a variance of order m / (nK) on top of the n-sample one); K ≥ 32 keeps it below the n effect here.
//!
//! With φ_p the features of draw p, the loss is quadratic in A (d × m):
//!
//! L(A) = tr(A G Aᵀ)/m² − 2 tr(A H)/m + c,  G = (1/N) Σ_p ω_p φ_p φ_pᵀ (m × m),
//! H = (1/N) Σ_p ω_p φ_p y_pᵀ (m × d),  c = (1/N) Σ_p ω_p ‖y_p‖²,
//!
//! and ∇L = (2/m²) A G − (2/m) Hᵀ.
//!
//! Population form ([`population`]): the same G and H with the expectation over x_t ~ p_t taken on a grid
//! (weights p_t(x) ΔV) and over t by the midpoint rule in ln t with Q nodes; the target is the exact score
//! ∇ log p_t (DSM and score matching differ by a constant in A), so there L(A) is the score error
//! 1/(T − t0) ∫ λ E_{p_t}‖s_A − ∇ log p_t‖² dt itself.

use crate::features::RandomFeatures;
use crate::score::{RfScore, ScoreField};
use crate::target::Mixture;
use crate::{invalid, Result};
use faer::Mat;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The time weighting λ(t) of the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// λ(t) = 1: the likelihood weighting (g(t)² = 2 is constant).
    #[default]
    Likelihood,
    /// λ(t) = σ_t² = 1 − e^{−2t}.
    Sigma2,
}

impl Weighting {
    /// λ(t).
    pub fn at(self, t: f64) -> f64 {
        match self {
            Weighting::Likelihood => 1.0,
            Weighting::Sigma2 => -(-2.0 * t).exp_m1(),
        }
    }
}

/// Time range, weighting and draws of the DSM loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DsmConfig {
    /// Smallest time t0 (the reverse process stops there).
    pub t0: f64,
    /// Largest time T (the reverse process starts from N(0, I) there).
    pub t_max: f64,
    /// K: (t, z) draws per training sample.
    pub draws: usize,
    /// λ(t).
    pub weighting: Weighting,
    /// Seed of the (t, z) draws.
    pub seed: u64,
}

impl Default for DsmConfig {
    fn default() -> Self {
        DsmConfig { t0: 1e-3, t_max: 8.0, draws: 32, weighting: Weighting::Likelihood, seed: 1 }
    }
}

impl DsmConfig {
    /// Checks 0 < t0 < T finite and K ≥ 1.
    pub fn validate(&self) -> Result<()> {
        if !(self.t0 > 0.0 && self.t_max > self.t0 && self.t_max.is_finite()) {
            return invalid(format!("times need 0 < t0 < T (got t0 = {}, T = {})", self.t0, self.t_max));
        }
        if self.draws == 0 {
            return invalid("the DSM loss needs at least one draw per sample");
        }
        Ok(())
    }

    /// Importance weight ω(t) = λ(t) · t ln(T/t0)/(T − t0) of a log-uniform t.
    pub fn weight(&self, t: f64) -> f64 {
        self.weighting.at(t) * t * (self.t_max / self.t0).ln() / (self.t_max - self.t0)
    }
}

/// One point of the discretised loss: input x_t, time t, target y and weight ω.
#[derive(Debug, Clone, PartialEq)]
pub struct Draw {
    pub x: Vec<f64>,
    pub t: f64,
    pub y: Vec<f64>,
    pub w: f64,
}

/// The K draws of training sample `i` (value `x0`): stratified log-uniform t, x_t = e^{−t} x0 + σ_t z,
/// y = −z/σ_t, ω = [`DsmConfig::weight`].
pub fn draws(cfg: &DsmConfig, i: usize, x0: &[f64]) -> Vec<Draw> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream(i as u64);
    let span = (cfg.t_max / cfg.t0).ln();
    (0..cfg.draws)
        .map(|k| {
            let u: f64 = rand::Rng::random(&mut rng);
            let t = cfg.t0 * (span * (k as f64 + u) / cfg.draws as f64).exp();
            let (a, s) = ((-t).exp(), (-(-2.0 * t).exp_m1()).sqrt());
            let z: Vec<f64> = x0.iter().map(|_| StandardNormal.sample(&mut rng)).collect();
            let x = x0.iter().zip(&z).map(|(x0, z)| a * x0 + s * z).collect();
            let y = z.iter().map(|z| -z / s).collect();
            Draw { x, t, y, w: cfg.weight(t) }
        })
        .collect()
}

/// L(A) = tr(A G Aᵀ)/m² − 2 tr(A H)/m + c (module docs).
#[derive(Debug, Clone)]
pub struct Quadratic {
    /// G (m × m, symmetric).
    pub g: Mat<f64>,
    /// H (m × d).
    pub h: Mat<f64>,
    /// c.
    pub c: f64,
    /// Number of points N averaged.
    pub points: usize,
}

impl Quadratic {
    /// Number of features m.
    pub fn m(&self) -> usize {
        self.g.nrows()
    }

    /// The form restricted to the first `m` features (leading blocks of G and H): the loss of the
    /// model over the nested features 0..m.
    pub fn truncated(&self, m: usize) -> Quadratic {
        let m = m.min(self.m());
        Quadratic {
            g: self.g.as_ref().submatrix(0, 0, m, m).to_owned(),
            h: self.h.as_ref().subrows(0, m).to_owned(),
            c: self.c,
            points: self.points,
        }
    }

    /// L(A) for A (d × m).
    pub fn loss(&self, a: &Mat<f64>) -> f64 {
        let m = self.m() as f64;
        let ag = a * &self.g;
        let quad: f64 =
            (0..a.nrows()).map(|i| (0..a.ncols()).map(|j| ag[(i, j)] * a[(i, j)]).sum::<f64>()).sum();
        let ah = a * &self.h;
        let lin: f64 = (0..a.nrows()).map(|i| ah[(i, i)]).sum();
        quad / (m * m) - 2.0 * lin / m + self.c
    }

    /// ∇L(A) = (2/m²) A G − (2/m) Hᵀ (d × m).
    pub fn gradient(&self, a: &Mat<f64>) -> Mat<f64> {
        let m = self.m() as f64;
        let ag = a * &self.g;
        Mat::from_fn(a.nrows(), a.ncols(), |i, j| 2.0 * ag[(i, j)] / (m * m) - 2.0 * self.h[(j, i)] / m)
    }
}

/// Running sums Σ ω φφᵀ (lower triangle), Σ ω φ yᵀ and Σ ω ‖y‖² over blocks of points.
struct Accumulator<'a> {
    features: &'a RandomFeatures,
    g: Mat<f64>,
    h: Mat<f64>,
    c: f64,
    points: usize,
}

/// Rows per block of the Gram accumulation (bounds memory at rows × m values).
const BLOCK_ROWS: usize = 4096;

impl<'a> Accumulator<'a> {
    fn new(features: &'a RandomFeatures) -> Self {
        let (m, d) = (features.m, features.dim);
        Accumulator { features, g: Mat::zeros(m, m), h: Mat::zeros(m, d), c: 0.0, points: 0 }
    }

    /// Add the points (in blocks of [`BLOCK_ROWS`]).
    fn add(&mut self, points: &[Draw]) {
        for block in points.chunks(BLOCK_ROWS) {
            self.add_block(block);
        }
    }

    fn add_block(&mut self, block: &[Draw]) {
        use faer::linalg::matmul::matmul;
        use faer::linalg::matmul::triangular::{matmul as tri_matmul, BlockStructure};
        let (f, m, d) = (self.features, self.features.m, self.features.dim);
        let rows: Vec<Vec<f64>> = block
            .par_iter()
            .map(|p| {
                let mut phi = vec![0.0; m];
                f.phi(&p.x, &f.offsets(p.t), &mut phi);
                let r = p.w.sqrt();
                phi.iter_mut().for_each(|v| *v *= r);
                phi
            })
            .collect();
        let phi = Mat::from_fn(block.len(), m, |i, j| rows[i][j]);
        let y = Mat::from_fn(block.len(), d, |i, k| block[i].w.sqrt() * block[i].y[k]);
        let par = faer::get_global_parallelism();
        let rect = BlockStructure::Rectangular;
        tri_matmul(
            self.g.as_mut(),
            BlockStructure::TriangularLower,
            faer::Accum::Add,
            phi.transpose(),
            rect,
            phi.as_ref(),
            rect,
            1.0,
            par,
        );
        matmul(self.h.as_mut(), faer::Accum::Add, phi.transpose(), y.as_ref(), 1.0, par);
        self.c += block.iter().map(|p| p.w * p.y.iter().map(|v| v * v).sum::<f64>()).sum::<f64>();
        self.points += block.len();
    }

    /// The averaged, symmetrised form so far (`norm` = the number the sums are divided by).
    fn snapshot(&self, norm: f64) -> Quadratic {
        let m = self.g.nrows();
        let g = Mat::from_fn(m, m, |i, j| if i >= j { self.g[(i, j)] } else { self.g[(j, i)] } / norm);
        let h = Mat::from_fn(m, self.h.ncols(), |i, k| self.h[(i, k)] / norm);
        Quadratic { g, h, c: self.c / norm, points: self.points }
    }
}

/// The empirical DSM forms of the nested training sets `samples[..n·d]` for each n of `ns` (strictly
/// increasing, the largest at most the number of samples), in one pass.
pub fn empirical(
    features: &RandomFeatures,
    samples: &[f64],
    ns: &[usize],
    cfg: &DsmConfig,
) -> Result<Vec<Quadratic>> {
    cfg.validate()?;
    let d = features.dim;
    if ns.is_empty()
        || ns[0] == 0
        || ns.windows(2).any(|w| w[0] >= w[1])
        || ns[ns.len() - 1] * d > samples.len()
    {
        return invalid("training-set sizes must be positive, increasing, and at most the number of samples");
    }
    let mut acc = Accumulator::new(features);
    let mut out = Vec::with_capacity(ns.len());
    let mut done = 0;
    let per_block = (BLOCK_ROWS / cfg.draws).max(1);
    for &n in ns {
        while done < n {
            let end = (done + per_block).min(n);
            let pts: Vec<Draw> = (done..end)
                .into_par_iter()
                .flat_map_iter(|i| draws(cfg, i, &samples[i * d..(i + 1) * d]))
                .collect();
            acc.add(&pts);
            done = end;
        }
        out.push(acc.snapshot((n * cfg.draws) as f64));
    }
    Ok(out)
}

/// Grid and time quadrature of the population form.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PopulationConfig {
    /// Grid points per coordinate over [`Mixture::bounding_box`] with `pad` = 6.
    pub grid: usize,
    /// Q: midpoint nodes in ln t over [t0, T].
    pub times: usize,
}

impl Default for PopulationConfig {
    fn default() -> Self {
        PopulationConfig { grid: 400, times: 64 }
    }
}

/// The population form (module docs): G, H and c of 1/(T − t0) ∫ λ E_{p_t} ‖s_A − ∇ log p_t‖² dt by
/// quadrature, so that [`Quadratic::loss`] is that score error and its minimiser the n = ∞ model.
pub fn population(
    features: &RandomFeatures,
    target: &Mixture,
    cfg: &DsmConfig,
    pop: &PopulationConfig,
) -> Result<Quadratic> {
    cfg.validate()?;
    if pop.grid < 2 || pop.times == 0 || target.dim != features.dim {
        return invalid("the population form needs >= 2 grid points, >= 1 time node and matching dimensions");
    }
    let grid = crate::kl::Grid::covering(target, pop.grid)?;
    let span = (cfg.t_max / cfg.t0).ln();
    let mut acc = Accumulator::new(features);
    for q in 0..pop.times {
        let t = cfg.t0 * (span * (q as f64 + 0.5) / pop.times as f64).exp();
        let w_t = cfg.weight(t) / pop.times as f64;
        let pt = target.diffused(t);
        let pts: Vec<Draw> = (0..grid.len())
            .into_par_iter()
            .map(|i| {
                let x = grid.point(i);
                let mut y = vec![0.0; target.dim];
                pt.score_div(&x, &mut y);
                let w = w_t * pt.density(&x) * grid.cell_volume();
                Draw { x, t, y, w }
            })
            .collect();
        acc.add(&pts);
    }
    Ok(acc.snapshot(1.0))
}

/// The DSM loss of s_A evaluated point by point through [`RfScore`] (no Gram matrices): the reference
/// for [`Quadratic::loss`] of [`empirical`]. `a` is d × m row-major.
pub fn loss_direct(features: &RandomFeatures, samples: &[f64], cfg: &DsmConfig, a: &[f64]) -> f64 {
    let d = features.dim;
    let model = RfScore::new(features, a.to_vec());
    let n = samples.len() / d;
    let mut total = 0.0;
    for i in 0..n {
        for p in draws(cfg, i, &samples[i * d..(i + 1) * d]) {
            let (mut s, mut div) = (vec![0.0; d], [0.0]);
            model.eval(&p.x, p.t, &mut s, &mut div);
            total += p.w * s.iter().zip(&p.y).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
        }
    }
    total / (n * cfg.draws) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FeatureConfig;

    #[test]
    fn draws_are_stratified_in_log_t_and_seeded() {
        let cfg = DsmConfig { draws: 8, ..Default::default() };
        let ds = draws(&cfg, 3, &[1.0]);
        let span = (cfg.t_max / cfg.t0).ln();
        for (k, p) in ds.iter().enumerate() {
            let u = (p.t / cfg.t0).ln() / span * 8.0;
            assert!(u >= k as f64 && u < k as f64 + 1.0, "draw {k} at t = {}", p.t);
        }
        assert_eq!(ds, draws(&cfg, 3, &[1.0]));
        assert_ne!(ds[0].t, draws(&cfg, 4, &[1.0])[0].t);
    }

    #[test]
    fn importance_weights_integrate_lambda() {
        // E over a log-uniform t of ω(t) is 1/(T − t0) ∫ λ dt: 1 for λ = 1.
        let cfg = DsmConfig::default();
        let q = 20000;
        let span = (cfg.t_max / cfg.t0).ln();
        let mean: f64 =
            (0..q).map(|i| cfg.weight(cfg.t0 * (span * (i as f64 + 0.5) / q as f64).exp())).sum::<f64>()
                / q as f64;
        assert!((mean - 1.0).abs() < 1e-6, "{mean}");
    }

    #[test]
    fn quadratic_form_equals_the_pointwise_loss_and_nests() {
        let feats = RandomFeatures::new(&FeatureConfig::default(), 2, 12).unwrap();
        let target = Mixture::parse("mixture:mu=3,dim=2").unwrap();
        let xs = target.sample(9, 3);
        let cfg = DsmConfig { draws: 5, ..Default::default() };
        let forms = empirical(&feats, &xs, &[4, 9], &cfg).unwrap();
        let a: Vec<f64> = (0..24).map(|i| (i as f64 * 0.37).sin() * 5.0).collect();
        let am = Mat::from_fn(2, 12, |i, j| a[i * 12 + j]);
        for (q, n) in forms.iter().zip([4, 9]) {
            let direct = loss_direct(&feats, &xs[..2 * n], &cfg, &a);
            assert!(
                (q.loss(&am) - direct).abs() < 1e-10 * direct.abs(),
                "n = {n}: {} vs {direct}",
                q.loss(&am)
            );
        }
        // The first 7 features' form is the leading block of the 12 features' form.
        let small = RandomFeatures::new(&FeatureConfig::default(), 2, 7).unwrap();
        let f7 = empirical(&small, &xs, &[9], &cfg).unwrap();
        let t = forms[1].truncated(7);
        assert!((&f7[0].g - &t.g).norm_max() < 1e-12 && (&f7[0].h - &t.h).norm_max() < 1e-12);
    }
}

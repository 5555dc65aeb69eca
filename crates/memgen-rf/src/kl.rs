//! KL(p0 ‖ p_θ), where p_θ is the distribution at t0 that the reverse process produces from N(0, I) at
//! T when driven by a score field s (the learned s_A, or an exact score for checks). 1-D and 2-D targets,
//! on a regular grid covering p0 (the means ± 6 max(s_k, 1) per coordinate, [`Grid::covering`]):
//!
//! KL ≈ Σ_grid p0(x) (ln p0(x) − ln p_θ(x)) ΔV.
//!
//! **(a) Probability-flow change of variables** ([`kl_ode`]). The map x_T ↦ x_{t0} of the probability-flow
//! ODE dx/dt = −x − s(x, t) generates p_θ from N(0, I); its inverse is the same ODE run forward. For each
//! grid point x0 we integrate from t0 to T, with ℓ' = −d − ∇·s (the divergence of the velocity), so
//!
//! ln p_θ(x0) = ln N(x_T; 0, I) + ∫_{t0}^{T} (−d − ∇·s(x_t, t)) dt.
//!
//! RK4 in u = ln t (dx/du = t(−x − s), dℓ/du = t(−d − ∇·s)) with `steps` equal steps, so the steps are
//! fine near t0 where the score changes fastest. Error: RK4's O(Δu⁴) for smooth fields (below 1e-8 in KL
//! at 100 steps on the Gaussian check), but a ReLU model's field has kinks, where the local order drops
//! (the error is then O(Δu²) per crossing; doubling `steps` is the check, reported by `memgen rf`); the
//! grid sum of a smooth integrand (Riemann sum, spectrally accurate) and the tails beyond 6 standard
//! deviations (relative error ~1e-8) add little. The KL is of the p_θ at t0, against p0 itself, so even
//! the exact score has the floor KL(p0 ‖ p_{t0}) + the prior mismatch of N(0, I) vs p_T (≈ ½ e^{−2T} ‖m‖²).
//!
//! **(b) Samples of the reverse SDE** ([`kl_sde`]). dx = (−x − 2 s(x, t)) dt + √2 dW̄ backwards from
//! x_T ~ N(0, I), by Euler–Maruyama on the same ln-t step grid (sample i's noise from ChaCha8 stream i),
//! then a Gaussian KDE with bandwidth h; the KL is taken between the smoothed densities,
//! KL(p0 * N(0, h²I) ‖ p̂_h) with p0 * N(0, h²I) in closed form, which removes the smoothing bias to
//! first order. Errors: Euler–Maruyama's weak error O(Δt) (a bias); smoothing makes the estimate a
//! lower bound of the KL at the sampled law (data processing), by O(h²); the KDE's sampling noise
//! biases it upward by about (effective number of kernels in the support)/(2M), roughly
//! |support| / (2 M h √(2π)) per dimension, with a standard deviation of order √(KL/M) + that.
//!
//! **(c) The reverse SDE's law by its Fokker–Planck equation** ([`kl_fp`], 1-D). In reversed time
//! r = T − t the SDE is dx = (x + 2 s(x, t)) dr + √2 dW, so its density solves
//! ∂q/∂r = −∂ₓ[(x + 2s) q] + ∂ₓ² q, from q = N(0, 1) at t = T. Finite volumes on the grid with the
//! Scharfetter–Gummel flux F_{i+½} = [B(−P) q_i − B(P) q_{i+1}]/Δx, P = (x + 2s)(x_{i+½}) Δx,
//! B(z) = z/(e^z − 1) (positive, mass-conserving, exact for a locally constant drift), zero flux at the
//! ends, Crank–Nicolson in time on the same ln-t steps. It is the deterministic, noise-free version of
//! (b): the law of the same reverse SDE, with no KDE. Errors: O(Δx²) in space, O(Δt²) in time (below
//! 1e-5 in KL at 401 points and 200 steps on the Gaussian check); mass that the drift pushes to the
//! grid's ends stays there (reflected), which only matters for a score that sends samples beyond
//! 6 standard deviations. By Girsanov this law's KL is at most KL(p_T ‖ N(0, 1)) + ∫ E_{p_t}‖s − s_θ‖² dt
//! (+ the t0 floor), unlike the probability-flow law of (a), which a score with a small L2 error but a
//! rough derivative (a ReLU fit) can move much more.

use crate::score::ScoreField;
use crate::target::{log_normal, Mixture};
use crate::{invalid, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Points of the reverse/forward integrators processed in lockstep by one task.
const CHUNK: usize = 64;

/// A regular grid over a box of R^d (d = 1 or 2), `points` per coordinate, cell centres included at both
/// ends (spacing (hi − lo)/(points − 1)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    pub points: usize,
}

impl Grid {
    /// The grid over [`Mixture::bounding_box`] (pad 6) of `target`.
    pub fn covering(target: &Mixture, points: usize) -> Result<Grid> {
        if !(1..=2).contains(&target.dim) {
            return invalid(format!("grid-based estimates need d = 1 or 2, not d = {}", target.dim));
        }
        if points < 2 {
            return invalid("a grid needs at least 2 points per coordinate");
        }
        let bb = target.bounding_box(6.0);
        Ok(Grid { lo: bb.iter().map(|b| b.0).collect(), hi: bb.iter().map(|b| b.1).collect(), points })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.lo.len()
    }

    /// Number of grid points, points^d.
    pub fn len(&self) -> usize {
        self.points.pow(self.dim() as u32)
    }

    /// Whether the grid is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spacing of coordinate i.
    pub fn step(&self, i: usize) -> f64 {
        (self.hi[i] - self.lo[i]) / (self.points - 1) as f64
    }

    /// ΔV = Π_i step(i).
    pub fn cell_volume(&self) -> f64 {
        (0..self.dim()).map(|i| self.step(i)).product()
    }

    /// Point number `k` (the last coordinate varies fastest).
    pub fn point(&self, mut k: usize) -> Vec<f64> {
        let mut x = vec![0.0; self.dim()];
        for i in (0..self.dim()).rev() {
            x[i] = self.lo[i] + (k % self.points) as f64 * self.step(i);
            k /= self.points;
        }
        x
    }

    /// All points, row-major (len() rows of d values).
    pub fn all_points(&self) -> Vec<f64> {
        (0..self.len()).flat_map(|k| self.point(k)).collect()
    }
}

/// Time range and step count of the integrators.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OdeConfig {
    /// t0 (where p_θ is taken).
    pub t0: f64,
    /// T (where the reverse process starts from N(0, I)).
    pub t_max: f64,
    /// Equal steps in ln t.
    pub steps: usize,
}

impl Default for OdeConfig {
    fn default() -> Self {
        OdeConfig { t0: 1e-3, t_max: 8.0, steps: 100 }
    }
}

impl OdeConfig {
    fn validate(&self) -> Result<()> {
        if !(self.t0 > 0.0 && self.t_max > self.t0 && self.t_max.is_finite()) || self.steps == 0 {
            return invalid("the integrators need 0 < t0 < T and at least one step");
        }
        Ok(())
    }

    /// The ln-t step Δu = ln(T/t0)/steps.
    fn du(&self) -> f64 {
        (self.t_max / self.t0).ln() / self.steps as f64
    }
}

/// A KL estimate with the p_θ mass the grid holds (Σ p_θ ΔV, 1 up to tails and estimator error).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KlEstimate {
    pub kl: f64,
    pub mass: f64,
}

/// The velocity of the augmented ODE in u = ln t at the points `xs`: (t(−x − s), t(−d − ∇·s)).
fn velocity(score: &dyn ScoreField, xs: &[f64], u: f64, dx: &mut [f64], dl: &mut [f64]) {
    let t = u.exp();
    let d = score.dim() as f64;
    score.eval(xs, t, dx, dl);
    for (v, x) in dx.iter_mut().zip(xs) {
        *v = t * (-x - *v);
    }
    dl.iter_mut().for_each(|v| *v = t * (-d - *v));
}

/// ln p_θ(x0) for the rows `xs` by the probability-flow change of variables (module docs, (a)).
pub fn log_density_ode(score: &dyn ScoreField, xs: &[f64], cfg: &OdeConfig) -> Result<Vec<f64>> {
    cfg.validate()?;
    let d = score.dim();
    let out: Vec<Vec<f64>> =
        xs.par_chunks(CHUNK * d).map(|chunk| log_density_chunk(score, chunk, cfg)).collect();
    Ok(out.concat())
}

/// [`log_density_ode`] of one chunk of points, RK4 in lockstep.
fn log_density_chunk(score: &dyn ScoreField, xs: &[f64], cfg: &OdeConfig) -> Vec<f64> {
    let d = score.dim();
    let n = xs.len() / d;
    let (mut x, mut l) = (xs.to_vec(), vec![0.0; n]);
    let h = cfg.du();
    let mut k = vec![(vec![0.0; n * d], vec![0.0; n]); 4];
    let mut stage_x = vec![0.0; n * d];
    for step in 0..cfg.steps {
        let u = cfg.t0.ln() + step as f64 * h;
        // Stages at u, u + h/2, u + h/2, u + h from x, x + (h/2) k1, x + (h/2) k2, x + h k3.
        for stage in 0..4 {
            let c = [0.0, 0.5, 0.5, 1.0][stage];
            if stage == 0 {
                stage_x.copy_from_slice(&x);
            } else {
                for (sv, (xv, kv)) in stage_x.iter_mut().zip(x.iter().zip(&k[stage - 1].0)) {
                    *sv = xv + c * h * kv;
                }
            }
            let (kx, kl) = &mut k[stage];
            velocity(score, &stage_x, u + c * h, kx, kl);
        }
        for i in 0..n * d {
            x[i] += h / 6.0 * (k[0].0[i] + 2.0 * k[1].0[i] + 2.0 * k[2].0[i] + k[3].0[i]);
        }
        for i in 0..n {
            l[i] += h / 6.0 * (k[0].1[i] + 2.0 * k[1].1[i] + 2.0 * k[2].1[i] + k[3].1[i]);
        }
    }
    let zero = vec![0.0; d];
    (0..n).map(|i| log_normal(&x[i * d..(i + 1) * d], &zero, 1.0) + l[i]).collect()
}

/// Σ p(x) (ln p(x) − ln q(x)) ΔV over the grid and Σ q ΔV, for ln q given at the grid points.
pub fn kl_on_grid(p: &Mixture, log_q: &[f64], grid: &Grid) -> KlEstimate {
    let dv = grid.cell_volume();
    let (mut kl, mut mass) = (0.0, 0.0);
    for (k, lq) in log_q.iter().enumerate() {
        let lp = p.log_density(&grid.point(k));
        let pk = lp.exp();
        if pk > 0.0 {
            kl += pk * (lp - lq);
        }
        mass += lq.exp();
    }
    KlEstimate { kl: kl * dv, mass: mass * dv }
}

/// Estimator (a): KL(p0 ‖ p_θ) with ln p_θ from [`log_density_ode`] on `grid`.
pub fn kl_ode(score: &dyn ScoreField, p0: &Mixture, grid: &Grid, cfg: &OdeConfig) -> Result<KlEstimate> {
    let log_q = log_density_ode(score, &grid.all_points(), cfg)?;
    Ok(kl_on_grid(p0, &log_q, grid))
}

/// Settings of estimator (b).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SdeConfig {
    /// Time range and Euler–Maruyama steps (equal in ln t).
    pub ode: OdeConfig,
    /// M: number of samples.
    pub samples: usize,
    /// Seed of x_T and the noise.
    pub seed: u64,
    /// KDE bandwidth h; `None`: Scott's rule h = s_min M^{−1/(d+4)} with s_min the target's smallest
    /// component standard deviation (the finest scale p0 has).
    pub bandwidth: Option<f64>,
}

impl Default for SdeConfig {
    fn default() -> Self {
        SdeConfig {
            ode: OdeConfig { steps: 400, ..Default::default() },
            samples: 20000,
            seed: 2,
            bandwidth: None,
        }
    }
}

/// M samples (rows) of the reverse SDE driven by `score`, Euler–Maruyama from T down to t0.
pub fn sample_reverse_sde(score: &dyn ScoreField, cfg: &SdeConfig) -> Result<Vec<f64>> {
    cfg.ode.validate()?;
    let d = score.dim();
    let chunks: Vec<usize> = (0..cfg.samples.div_ceil(CHUNK)).collect();
    let out: Vec<Vec<f64>> = chunks
        .par_iter()
        .map(|&c| {
            let ids: Vec<usize> = (c * CHUNK..((c + 1) * CHUNK).min(cfg.samples)).collect();
            sde_chunk(score, cfg, &ids, d)
        })
        .collect();
    Ok(out.concat())
}

/// The samples `ids` in lockstep: x_{t−Δ} = x_t + Δ(x_t + 2 s(x_t, t)) + √(2Δ) ξ.
fn sde_chunk(score: &dyn ScoreField, cfg: &SdeConfig, ids: &[usize], d: usize) -> Vec<f64> {
    let mut rngs: Vec<ChaCha8Rng> = ids
        .iter()
        .map(|&i| {
            let mut r = ChaCha8Rng::seed_from_u64(cfg.seed);
            r.set_stream(i as u64);
            r
        })
        .collect();
    let mut x: Vec<f64> = rngs
        .iter_mut()
        .flat_map(|r| (0..d).map(|_| StandardNormal.sample(r)).collect::<Vec<f64>>())
        .collect();
    let (mut s, mut div) = (vec![0.0; x.len()], vec![0.0; ids.len()]);
    let h = cfg.ode.du();
    let top = cfg.ode.t_max.ln();
    for step in 0..cfg.ode.steps {
        let t = (top - step as f64 * h).exp();
        let dt = t - (top - (step + 1) as f64 * h).exp();
        score.eval(&x, t, &mut s, &mut div);
        let noise = (2.0 * dt).sqrt();
        for (i, r) in rngs.iter_mut().enumerate() {
            for k in 0..d {
                let z: f64 = StandardNormal.sample(r);
                let v = &mut x[i * d + k];
                *v += dt * (*v + 2.0 * s[i * d + k]) + noise * z;
            }
        }
    }
    x
}

/// ln of the Gaussian KDE (1/M) Σ_j N(x; x_j, h² I) at the grid points (log-sum-exp, so far tails stay
/// finite).
pub fn kde_log_density(samples: &[f64], d: usize, grid: &Grid, h: f64) -> Vec<f64> {
    let m = samples.len() / d;
    let norm = -(m as f64).ln() - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * h * h).ln();
    (0..grid.len())
        .into_par_iter()
        .map(|k| {
            let x = grid.point(k);
            let e: Vec<f64> = samples
                .chunks_exact(d)
                .map(|y| -0.5 * y.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / (h * h))
                .collect();
            crate::target::log_sum_exp(&e) + norm
        })
        .collect()
}

/// The bandwidth estimator (b) uses for `p0` with `samples` samples.
pub fn bandwidth(cfg: &SdeConfig, p0: &Mixture) -> f64 {
    cfg.bandwidth.unwrap_or_else(|| p0.min_std() * (cfg.samples as f64).powf(-1.0 / (p0.dim as f64 + 4.0)))
}

/// Estimator (b): KL(p0 * N(0, h²) ‖ KDE_h of M reverse-SDE samples) on `grid`, and the bandwidth h.
pub fn kl_sde(
    score: &dyn ScoreField,
    p0: &Mixture,
    grid: &Grid,
    cfg: &SdeConfig,
) -> Result<(KlEstimate, f64)> {
    if cfg.samples < 2 {
        return invalid("the sample-based KL needs at least 2 samples");
    }
    let h = bandwidth(cfg, p0);
    if !(h > 0.0 && h.is_finite()) {
        return invalid(format!("KDE bandwidth must be positive, not {h}"));
    }
    let xs = sample_reverse_sde(score, cfg)?;
    let log_q = kde_log_density(&xs, p0.dim, grid, h);
    Ok((kl_on_grid(&p0.smoothed(h), &log_q, grid), h))
}

/// B(z) = z/(e^z − 1), the Scharfetter–Gummel weight (B(0) = 1).
fn bernoulli(z: f64) -> f64 {
    if z.abs() < 1e-8 {
        1.0 - 0.5 * z
    } else {
        z / z.exp_m1()
    }
}

/// Estimator (c), 1-D: the law of the reverse SDE by its Fokker–Planck equation on the grid (module
/// docs). Returns ln q at the grid points.
pub fn log_density_fp(score: &dyn ScoreField, grid: &Grid, cfg: &OdeConfig) -> Result<Vec<f64>> {
    cfg.validate()?;
    if grid.dim() != 1 || score.dim() != 1 {
        return invalid("the Fokker–Planck estimator is 1-D only");
    }
    let (g, dx) = (grid.points, grid.step(0));
    let xs = grid.all_points();
    let mut q: Vec<f64> = xs.iter().map(|x| log_normal(&[*x], &[0.0], 1.0).exp()).collect();
    let total: f64 = q.iter().sum::<f64>() * dx;
    q.iter_mut().for_each(|v| *v /= total);
    let faces: Vec<f64> = (0..g - 1).map(|i| xs[i] + 0.5 * dx).collect();
    let coeffs = |t: f64| -> (Vec<f64>, Vec<f64>) {
        let (mut s, mut div) = (vec![0.0; g - 1], vec![0.0; g - 1]);
        score.eval(&faces, t, &mut s, &mut div);
        faces
            .iter()
            .zip(&s)
            .map(|(x, s)| {
                let p = (x + 2.0 * s) * dx;
                (bernoulli(-p) / dx, bernoulli(p) / dx)
            })
            .unzip()
    };
    let h = cfg.du();
    let top = cfg.t_max.ln();
    let mut old = coeffs(cfg.t_max);
    for step in 0..cfg.steps {
        let (t_hi, t_lo) = ((top - step as f64 * h).exp(), (top - (step + 1) as f64 * h).exp());
        let new = coeffs(t_lo);
        let r = (t_hi - t_lo) / dx;
        let lq = apply_fp(&old, &q);
        let rhs: Vec<f64> = q.iter().zip(&lq).map(|(q, l)| q + 0.5 * r * l).collect();
        q = solve_fp(&new, &rhs, 0.5 * r);
        old = new;
    }
    Ok(q.iter().map(|v| v.max(1e-300).ln()).collect())
}

/// (L q)_i · Δx = α_{i−1} q_{i−1} − (α_i + β_{i−1}) q_i + β_i q_{i+1}: minus the flux difference of
/// F_{i+½} = α_i q_i − β_i q_{i+1} (zero flux through the ends).
fn apply_fp((alpha, beta): &(Vec<f64>, Vec<f64>), q: &[f64]) -> Vec<f64> {
    let g = q.len();
    (0..g)
        .map(|i| {
            let mut v = 0.0;
            if i > 0 {
                v += alpha[i - 1] * q[i - 1] - beta[i - 1] * q[i];
            }
            if i + 1 < g {
                v += beta[i] * q[i + 1] - alpha[i] * q[i];
            }
            v
        })
        .collect()
}

/// Solve (I − c L) q = rhs (tridiagonal, Thomas algorithm; the matrix is an M-matrix, so no pivoting).
fn solve_fp((alpha, beta): &(Vec<f64>, Vec<f64>), rhs: &[f64], c: f64) -> Vec<f64> {
    let g = rhs.len();
    let lower = |i: usize| if i > 0 { -c * alpha[i - 1] } else { 0.0 };
    let upper = |i: usize| if i + 1 < g { -c * beta[i] } else { 0.0 };
    let diag =
        |i: usize| 1.0 + c * (if i > 0 { beta[i - 1] } else { 0.0 } + if i + 1 < g { alpha[i] } else { 0.0 });
    let (mut cp, mut dp) = (vec![0.0; g], vec![0.0; g]);
    for i in 0..g {
        let den = diag(i) - if i > 0 { lower(i) * cp[i - 1] } else { 0.0 };
        cp[i] = upper(i) / den;
        dp[i] = (rhs[i] - if i > 0 { lower(i) * dp[i - 1] } else { 0.0 }) / den;
    }
    let mut x = vec![0.0; g];
    for i in (0..g).rev() {
        x[i] = dp[i] - if i + 1 < g { cp[i] * x[i + 1] } else { 0.0 };
    }
    x
}

/// Estimator (c): KL(p0 ‖ q) with q the Fokker–Planck law of the reverse SDE on `grid` (1-D).
pub fn kl_fp(score: &dyn ScoreField, p0: &Mixture, grid: &Grid, cfg: &OdeConfig) -> Result<KlEstimate> {
    let log_q = log_density_fp(score, grid, cfg)?;
    Ok(kl_on_grid(p0, &log_q, grid))
}

/// KL(N(μ0, v0 I) ‖ N(μ1, v1 I)) in d dimensions: ½ [d v0/v1 + ‖μ1 − μ0‖²/v1 − d + d ln(v1/v0)].
pub fn kl_gaussian(mu0: &[f64], v0: f64, mu1: &[f64], v1: f64) -> f64 {
    let d = mu0.len() as f64;
    let r2: f64 = mu0.iter().zip(mu1).map(|(a, b)| (a - b) * (a - b)).sum();
    0.5 * (d * v0 / v1 + r2 / v1 - d + d * (v1 / v0).ln())
}

/// The law at t0 of the probability-flow ODE driven by the exact score of N(μ', s'² I)'s diffusion and
/// started from N(0, I) at T. The flow is affine, x_t = e^{−t} μ' + (x_T − e^{−T} μ') √(v_t / v_T) with
/// v_t = e^{−2t} s'² + 1 − e^{−2t}, so p_θ = N(e^{−t0} μ' − e^{−T} μ' √(v_{t0}/v_T), v_{t0}/v_T).
pub fn gaussian_flow_law(mean: &[f64], std: f64, t0: f64, t_max: f64) -> (Vec<f64>, f64) {
    let v = |t: f64| (-2.0 * t).exp() * std * std - (-2.0 * t).exp_m1();
    let r = (v(t0) / v(t_max)).sqrt();
    (mean.iter().map(|m| (-t0).exp() * m - (-t_max).exp() * m * r).collect(), v(t0) / v(t_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_points_and_volume() {
        let g = Grid { lo: vec![0.0, -1.0], hi: vec![1.0, 1.0], points: 3 };
        assert_eq!(g.len(), 9);
        assert_eq!(g.point(5), vec![0.5, 1.0]);
        assert!((g.cell_volume() - 0.5).abs() < 1e-15);
    }

    #[test]
    fn kl_of_a_density_with_itself_is_zero_on_the_grid() {
        let p = Mixture::parse("mixture:mu=3").unwrap();
        let g = Grid::covering(&p, 300).unwrap();
        let lq: Vec<f64> = (0..g.len()).map(|k| p.log_density(&g.point(k))).collect();
        let e = kl_on_grid(&p, &lq, &g);
        assert!(e.kl.abs() < 1e-15 && (e.mass - 1.0).abs() < 1e-8, "{e:?}");
    }
}

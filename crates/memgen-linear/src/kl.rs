//! Kullback–Leibler divergences between Gaussians: exact (Cholesky), with the first covariance given in
//! an eigenbasis (the linear sampler's output), from samples (Gaussian fit), and by Monte Carlo.
//!
//! Throughout, p = N(m1, S1) and q = N(m2, S2) in d dimensions and
//!
//! KL(p ‖ q) = ½ [ Tr(S2⁻¹ S1) + (m2 − m1)ᵀ S2⁻¹ (m2 − m1) − d + ln|S2| − ln|S1| ],
//!
//! DESIGN.md's KL(ρ_N ‖ ρ) with p = ρ_N = N(μ0, Σ0 + cI) and q = ρ = N(μ, Σ). Only the lower triangle of
//! a covariance is read (faer's Cholesky).

use crate::{Error, Result};
use faer::{Mat, MatRef, Side};

/// Rows per block when whitening many points at once.
const BLOCK_ROWS: usize = 1 << 14;

/// A Gaussian N(m, S) prepared for densities and divergences: S = L Lᵀ (Cholesky) and
/// ln|S| = 2 Σ_i ln L_ii.
#[derive(Debug, Clone)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    chol: Mat<f64>,
    log_det: f64,
}

impl Gaussian {
    /// Factor `cov`; `name` (e.g. "S2") names the covariance in the error when it is not positive
    /// definite or its shape does not match `mean`.
    pub fn new(mean: &[f64], cov: &Mat<f64>, name: &str) -> Result<Gaussian> {
        let d = mean.len();
        if d == 0 || cov.nrows() != d || cov.ncols() != d {
            return Err(Error::Invalid(format!(
                "covariance {name} is {}x{}, its mean has {d} entries",
                cov.nrows(),
                cov.ncols()
            )));
        }
        if mean.iter().any(|m| !m.is_finite()) || (0..d).any(|j| (j..d).any(|i| !cov[(i, j)].is_finite())) {
            return Err(Error::Invalid(format!("covariance {name} or its mean has non-finite entries")));
        }
        let llt = cov.llt(Side::Lower).map_err(|e| {
            Error::Invalid(format!("covariance {name} is not positive definite (Cholesky: {e:?})"))
        })?;
        let chol = llt.L().to_owned();
        let log_det = 2.0 * (0..d).map(|i| chol[(i, i)].ln()).sum::<f64>();
        Ok(Gaussian { mean: mean.to_vec(), chol, log_det })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// ln|S|.
    pub fn log_det(&self) -> f64 {
        self.log_det
    }

    /// ‖L⁻¹ B‖²_F = Tr(S⁻¹ B Bᵀ) for a d x k matrix B.
    fn whitened_sq_norm(&self, b: MatRef<'_, f64>) -> f64 {
        let mut z = b.to_owned();
        self.chol.solve_lower_triangular_in_place(z.as_mut());
        z.squared_norm_l2()
    }

    /// (a − m)ᵀ S⁻¹ (a − m) for a point a.
    pub fn mahalanobis_sq(&self, a: &[f64]) -> f64 {
        let r = Mat::from_fn(self.dim(), 1, |i, _| a[i] - self.mean[i]);
        self.whitened_sq_norm(r.as_ref())
    }

    /// ln N(x; m, S) = −½ [ d ln 2π + ln|S| + (x − m)ᵀ S⁻¹ (x − m) ] for each row x of `rows` (n x d,
    /// row-major).
    pub fn log_density_rows(&self, rows: &[f64]) -> Result<Vec<f64>> {
        let d = self.dim();
        if rows.len() % d != 0 {
            return Err(Error::Invalid(format!("{} values do not form rows of {d}", rows.len())));
        }
        let offset = d as f64 * (2.0 * std::f64::consts::PI).ln() + self.log_det;
        let mut out = Vec::with_capacity(rows.len() / d);
        for block in rows.chunks(BLOCK_ROWS * d) {
            let n = block.len() / d;
            let mut z = Mat::from_fn(d, n, |i, k| block[k * d + i] - self.mean[i]);
            self.chol.solve_lower_triangular_in_place(z.as_mut());
            out.extend((0..n).map(|k| -0.5 * (offset + z.col(k).squared_norm_l2())));
        }
        Ok(out)
    }

    /// KL(p ‖ self) for p = N(m1, S1 = L1 L1ᵀ): Tr(S2⁻¹ S1) = ‖L2⁻¹ L1‖²_F.
    pub fn kl_from(&self, p: &Gaussian) -> Result<f64> {
        same_dim(p.dim(), self.dim())?;
        let trace = self.whitened_sq_norm(p.chol.as_ref());
        Ok(self.kl_terms(trace, &p.mean, p.log_det))
    }

    /// ½ [ trace + (m2 − m1)ᵀ S2⁻¹ (m2 − m1) − d + ln|S2| − ln|S1| ] with trace = Tr(S2⁻¹ S1).
    fn kl_terms(&self, trace: f64, m1: &[f64], log_det1: f64) -> f64 {
        let d = self.dim() as f64;
        0.5 * (trace + self.mahalanobis_sq(m1) - d + self.log_det - log_det1)
    }
}

fn same_dim(a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(Error::Invalid(format!("dimensions differ: {a} and {b}")))
    }
}

/// KL(N(m1, S1) ‖ N(m2, S2)) = ½ [ Tr(S2⁻¹S1) + (m2−m1)ᵀS2⁻¹(m2−m1) − d + ln|S2| − ln|S1| ], by the
/// Cholesky factors S1 = L1 L1ᵀ, S2 = L2 L2ᵀ: Tr(S2⁻¹S1) = ‖L2⁻¹L1‖²_F, ln|S| = 2 Σ ln L_ii. O(d³).
/// Errors name the covariance ("S1" or "S2") that is not positive definite.
pub fn gaussian_kl(m1: &[f64], s1: &Mat<f64>, m2: &[f64], s2: &Mat<f64>) -> Result<f64> {
    let p = Gaussian::new(m1, s1, "S1")?;
    Gaussian::new(m2, s2, "S2")?.kl_from(&p)
}

/// KL(N(m1, S1) ‖ N(m2, S2)) with S1 = U diag(v) Uᵀ given by its eigendecomposition (orthonormal columns
/// `u`, eigenvalues `v > 0`), the form of the linear sampler's output N(μ0, Σ0 + cI): S1 is never formed
/// or factored, ln|S1| = Σ_i ln v_i and Tr(S2⁻¹S1) = ‖L2⁻¹ U diag(√v)‖²_F.
pub fn kl_eigen(m1: &[f64], u: &Mat<f64>, v: &[f64], m2: &[f64], s2: &Mat<f64>) -> Result<f64> {
    Gaussian::new(m2, s2, "S2")?.kl_from_eigen(m1, u, v)
}

impl Gaussian {
    /// KL(N(m1, U diag(v) Uᵀ) ‖ self), as [`kl_eigen`] with this Gaussian's factor reused.
    pub fn kl_from_eigen(&self, m1: &[f64], u: &Mat<f64>, v: &[f64]) -> Result<f64> {
        let d = self.dim();
        same_dim(m1.len(), d)?;
        if u.nrows() != d || u.ncols() != d || v.len() != d {
            return Err(Error::Invalid(format!(
                "S1 = U diag(v) Uᵀ: U is {}x{} and v has {} entries, expected d = {d}",
                u.nrows(),
                u.ncols(),
                v.len()
            )));
        }
        if let Some(i) = v.iter().position(|&x| !(x > 0.0 && x.is_finite())) {
            return Err(Error::Invalid(format!("S1 is not positive definite: eigenvalue v[{i}] = {}", v[i])));
        }
        let b = Mat::from_fn(d, d, |i, j| u[(i, j)] * v[j].sqrt());
        let trace = self.whitened_sq_norm(b.as_ref());
        Ok(self.kl_terms(trace, m1, v.iter().map(|x| x.ln()).sum()))
    }
}

/// Monte-Carlo estimate of KL(p ‖ q) from samples x_k ~ p (n x d, row-major): the mean of
/// ln p(x_k) − ln q(x_k) and its standard error sd/√n (sd with the n − 1 normalisation). Returns
/// (estimate, standard_error); n ≥ 2.
pub fn kl_monte_carlo(
    samples_from_p: &[f64],
    m1: &[f64],
    s1: &Mat<f64>,
    m2: &[f64],
    s2: &Mat<f64>,
) -> Result<(f64, f64)> {
    let p = Gaussian::new(m1, s1, "S1")?;
    let q = Gaussian::new(m2, s2, "S2")?;
    same_dim(p.dim(), q.dim())?;
    let lp = p.log_density_rows(samples_from_p)?;
    let lq = q.log_density_rows(samples_from_p)?;
    let n = lp.len();
    if n < 2 {
        return Err(Error::Invalid(format!("Monte-Carlo KL needs at least 2 samples, got {n}")));
    }
    let diffs: Vec<f64> = lp.iter().zip(&lq).map(|(a, b)| a - b).collect();
    Ok(mean_and_standard_error(&diffs))
}

/// (mean, sd/√n) of `x` with the n − 1 variance; n ≥ 2.
pub fn mean_and_standard_error(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Sample mean and covariance of the rows of `samples` (n x d, row-major) with the 1/n normalisation
/// of DESIGN.md (the maximum-likelihood Gaussian fit, like [`crate::Moments`] but in f64).
pub fn sample_moments(samples: &[f64], d: usize) -> Result<(Vec<f64>, Mat<f64>)> {
    if d == 0 || samples.is_empty() || samples.len() % d != 0 {
        return Err(Error::Invalid(format!("{} values do not form rows of {d}", samples.len())));
    }
    let n = samples.len() / d;
    let mut mean = vec![0.0; d];
    for row in samples.chunks_exact(d) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let centred = Mat::from_fn(n, d, |k, j| samples[k * d + j] - mean[j]);
    let cov = (centred.transpose() * &centred) * faer::Scale(1.0 / n as f64);
    Ok((mean, cov))
}

/// "KL from samples": fit N(m̂, Ŝ) to the samples ([`sample_moments`], 1/n) and return
/// KL(N(m̂, Ŝ) ‖ N(m2, S2)) ([`gaussian_kl`]). Needs n > d for Ŝ to be positive definite.
pub fn kl_from_samples(samples: &[f64], d: usize, m2: &[f64], s2: &Mat<f64>) -> Result<f64> {
    let (mean, cov) = sample_moments(samples, d)?;
    let p = Gaussian::new(&mean, &cov, "S1 (the samples' covariance)")?;
    Gaussian::new(m2, s2, "S2")?.kl_from(&p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn normal_mat(d: usize, k: usize, rng: &mut ChaCha8Rng) -> Mat<f64> {
        Mat::from_fn(d, k, |_, _| StandardNormal.sample(rng))
    }

    /// A random SPD matrix A Aᵀ / d + floor·I and a random mean.
    fn random_gaussian(d: usize, floor: f64, rng: &mut ChaCha8Rng) -> (Vec<f64>, Mat<f64>) {
        let a = normal_mat(d, d, rng);
        let s = &a * a.transpose() * faer::Scale(1.0 / d as f64)
            + Mat::<f64>::identity(d, d) * faer::Scale(floor);
        let m = (0..d).map(|_| StandardNormal.sample(rng)).collect();
        (m, s)
    }

    /// n samples of N(m, S), row-major.
    fn sample(m: &[f64], s: &Mat<f64>, n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let d = m.len();
        let l = s.llt(Side::Lower).unwrap().L().to_owned();
        let x = normal_mat(n, d, rng) * l.transpose();
        (0..n * d).map(|k| x[(k / d, k % d)] + m[k % d]).collect()
    }

    #[test]
    fn kl_of_identical_gaussians_is_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (m, s) = random_gaussian(5, 0.1, &mut rng);
        let kl = gaussian_kl(&m, &s, &m, &s).unwrap();
        assert!(kl.abs() < 1e-12, "{kl}");
    }

    #[test]
    fn one_dimensional_kl_by_hand() {
        // KL(N(m1, a²) ‖ N(m2, b²)) = ln(b/a) + (a² + (m1 − m2)²)/(2b²) − ½.
        let (m1, a, m2, b) = (0.3f64, 0.5f64, -1.2f64, 2.0f64);
        let by_hand = (b / a).ln() + (a * a + (m1 - m2).powi(2)) / (2.0 * b * b) - 0.5;
        let s = |x: f64| Mat::from_fn(1, 1, |_, _| x * x);
        let kl = gaussian_kl(&[m1], &s(a), &[m2], &s(b)).unwrap();
        assert!((kl - by_hand).abs() < 1e-14, "{kl} vs {by_hand}");
        // 0.5 ln 4 ... = 1.386294 + (0.25 + 2.25)/8 − 0.5
        assert!((by_hand - (4f64.ln() + 2.5 / 8.0 - 0.5)).abs() < 1e-15);
    }

    #[test]
    fn analytic_kl_matches_monte_carlo() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for d in [3, 4] {
            let (m1, s1) = random_gaussian(d, 0.2, &mut rng);
            let (m2, s2) = random_gaussian(d, 0.5, &mut rng);
            let exact = gaussian_kl(&m1, &s1, &m2, &s2).unwrap();
            let x = sample(&m1, &s1, 100_000, &mut rng);
            let (mc, se) = kl_monte_carlo(&x, &m1, &s1, &m2, &s2).unwrap();
            eprintln!("d = {d}: KL analytic {exact:.5}, Monte Carlo {mc:.5} ± {se:.5}");
            assert!((mc - exact).abs() < 4.0 * se, "d = {d}: {exact} vs {mc} ± {se}");
            assert!(se < 0.05 * exact, "the check is too loose: se {se}, KL {exact}");
        }
    }

    #[test]
    fn eigenbasis_kl_equals_cholesky_kl() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let d = 6;
        let (m1, s1) = random_gaussian(d, 0.05, &mut rng);
        let (m2, s2) = random_gaussian(d, 0.3, &mut rng);
        let sp = crate::Spectrum::of(&s1).unwrap();
        let a = gaussian_kl(&m1, &s1, &m2, &s2).unwrap();
        let b = kl_eigen(&m1, &sp.vectors, &sp.values, &m2, &s2).unwrap();
        assert!((a - b).abs() < 1e-12 * a.max(1.0), "{a} vs {b}");
        let mut bad = sp.values.clone();
        bad[0] = 0.0;
        let e = kl_eigen(&m1, &sp.vectors, &bad, &m2, &s2).unwrap_err().to_string();
        assert!(e.contains("S1") && e.contains("v[0]"), "{e}");
    }

    #[test]
    fn errors_name_the_covariance() {
        let good = Mat::<f64>::identity(2, 2);
        let singular = Mat::from_fn(2, 2, |_, _| 1.0);
        let m = [0.0, 0.0];
        let e = gaussian_kl(&m, &singular, &m, &good).unwrap_err().to_string();
        assert!(e.contains("S1") && e.contains("not positive definite"), "{e}");
        let e = gaussian_kl(&m, &good, &m, &singular).unwrap_err().to_string();
        assert!(e.contains("S2") && e.contains("not positive definite"), "{e}");
        assert!(gaussian_kl(&[0.0], &good, &m, &good).is_err());
        // Fewer samples than dimensions: the fitted covariance is singular.
        let e = kl_from_samples(&[0.0, 1.0, 2.0, 3.0], 2, &m, &good).unwrap_err().to_string();
        assert!(e.contains("samples' covariance"), "{e}");
    }

    #[test]
    fn kl_from_samples_is_the_kl_of_the_fit() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let d = 3;
        let (m1, s1) = random_gaussian(d, 0.2, &mut rng);
        let (m2, s2) = random_gaussian(d, 0.5, &mut rng);
        let x = sample(&m1, &s1, 200_000, &mut rng);
        let (mean, cov) = sample_moments(&x, d).unwrap();
        let fit = kl_from_samples(&x, d, &m2, &s2).unwrap();
        assert!((fit - gaussian_kl(&mean, &cov, &m2, &s2).unwrap()).abs() < 1e-12);
        // Many samples: the fit is close to p itself.
        let exact = gaussian_kl(&m1, &s1, &m2, &s2).unwrap();
        assert!((fit - exact).abs() < 0.02 * exact, "{fit} vs {exact}");
    }
}

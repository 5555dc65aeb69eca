//! Empirical moments of a training set and the eigendecomposition of its covariance.

use crate::{Error, Result};
use faer::Mat;

/// Mean and covariance of a set of d-dimensional points, with the 1/N normalisation of DESIGN.md:
/// μ0 = (1/N) Σ_i x_i, Σ0 = (1/N) Σ_i (x_i − μ0)(x_i − μ0)ᵀ (rank ≤ N − 1).
#[derive(Debug, Clone)]
pub struct Moments {
    pub mean: Vec<f64>,
    pub cov: Mat<f64>,
    /// Number of points N.
    pub count: usize,
}

impl Moments {
    /// Moments of the rows of `data` (N x d, row-major), accumulated in f64.
    pub fn from_rows(data: &[f32], d: usize) -> Result<Moments> {
        if d == 0 || data.is_empty() || data.len() % d != 0 {
            return Err(Error::Invalid(format!("{} values do not form rows of {d}", data.len())));
        }
        let n = data.len() / d;
        let mut mean = vec![0.0; d];
        for row in data.chunks_exact(d) {
            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let centred = Mat::<f64>::from_fn(n, d, |i, j| data[i * d + j] as f64 - mean[j]);
        Ok(Moments { mean, cov: gram(&centred, 1.0 / n as f64), count: n })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

/// `scale · Xᵀ X` (d x d) for X (n x d): the lower triangle by one triangular product (half the flops of
/// a full one), mirrored.
fn gram(x: &Mat<f64>, scale: f64) -> Mat<f64> {
    use faer::linalg::matmul::triangular::{matmul, BlockStructure};
    let d = x.ncols();
    let mut g = Mat::<f64>::zeros(d, d);
    let rect = BlockStructure::Rectangular;
    matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        faer::Accum::Replace,
        x.transpose(),
        rect,
        x.as_ref(),
        rect,
        scale,
        faer::get_global_parallelism(),
    );
    for j in 0..d {
        for i in 0..j {
            g[(i, j)] = g[(j, i)];
        }
    }
    g
}

/// Σ0 = U diag(s) Uᵀ: eigenvalues `values` (ascending, clamped at 0: rounding can make the zero
/// eigenvalues of a rank-deficient Σ0 slightly negative) and orthonormal eigenvectors, the columns of
/// `vectors`.
#[derive(Debug, Clone)]
pub struct Spectrum {
    pub values: Vec<f64>,
    pub vectors: Mat<f64>,
}

impl Spectrum {
    /// Eigendecomposition of the symmetric matrix `cov` (faer's self-adjoint solver, lower triangle).
    pub fn of(cov: &Mat<f64>) -> Result<Spectrum> {
        let evd = cov.self_adjoint_eigen(faer::Side::Lower).map_err(|e| Error::Eigen(format!("{e:?}")))?;
        let s = evd.S();
        let values = (0..cov.nrows()).map(|i| s[i].max(0.0)).collect();
        Ok(Spectrum { values, vectors: evd.U().to_owned() })
    }

    /// Numerical rank: eigenvalues above `rel_tol` times the largest.
    pub fn rank(&self, rel_tol: f64) -> usize {
        let top = self.values.iter().copied().fold(0.0, f64::max);
        self.values.iter().filter(|&&s| s > rel_tol * top).count()
    }

    /// Coordinates of `x` in the eigenbasis: Uᵀ x.
    pub fn to_eigen(&self, x: &[f64]) -> Vec<f64> {
        let d = self.values.len();
        (0..d).map(|j| (0..d).map(|i| self.vectors[(i, j)] * x[i]).sum()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_spectrum_of_a_small_set() {
        // Points (0,0), (2,0), (0,2), (2,2): mean (1,1), covariance I (1/N normalisation).
        let data = [0.0f32, 0.0, 2.0, 0.0, 0.0, 2.0, 2.0, 2.0];
        let m = Moments::from_rows(&data, 2).unwrap();
        assert_eq!(m.mean, vec![1.0, 1.0]);
        assert!((m.cov[(0, 0)] - 1.0).abs() < 1e-15 && m.cov[(0, 1)].abs() < 1e-15);
        // Two points on a line: rank 1, eigenvalues (0, 2) for (0,0), (2,2) (variance 2 along (1,1)/√2).
        let m = Moments::from_rows(&[0.0, 0.0, 2.0, 2.0], 2).unwrap();
        let sp = Spectrum::of(&m.cov).unwrap();
        assert!(sp.values[0].abs() < 1e-12 && (sp.values[1] - 2.0).abs() < 1e-12, "{:?}", sp.values);
        assert_eq!(sp.rank(1e-9), 1);
        let v = sp.to_eigen(&[1.0, 1.0]);
        assert!(v[0].abs() < 1e-12 && (v[1].abs() - 2f64.sqrt()).abs() < 1e-12);
        assert!(Moments::from_rows(&data[..3], 2).is_err());
        // The triangular Gram product equals the full one (a 7 x 5 case with distinct entries).
        let x = Mat::<f64>::from_fn(7, 5, |i, j| ((i * 5 + j) as f64 * 0.37).sin());
        let (g, full) = (gram(&x, 0.5), (x.transpose() * &x) * faer::Scale(0.5));
        assert!((0..5).all(|i| (0..5).all(|j| (g[(i, j)] - full[(i, j)]).abs() < 1e-14)));
    }
}

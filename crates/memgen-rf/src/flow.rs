//! Training dynamics of the readout A under the quadratic DSM loss L(A) = tr(A G Aᵀ)/m² − 2 tr(A H)/m + c
//! ([`crate::dsm::Quadratic`]).
//!
//! Gradient flow dA/dτ = −∇L = −(2/m²) A G + (2/m) Hᵀ is linear, so in the eigenbasis G = V diag(λ) Vᵀ,
//! with B = A V and F = Hᵀ V (d × m), each column k evolves on its own:
//!
//! B_k(τ) = B_k(0) e^{−a_k τ} + m F_k (1 − e^{−a_k τ}) / λ_k,  a_k = 2 λ_k / m²,
//!
//! i.e. B_k → B*_k = m F_k / λ_k (the least-squares readout) at rate a_k. Directions with λ_k = 0 (G is
//! singular when nK < m) have F_k = 0 and stay put; numerically, eigenvalues below 1e-13 λ_max are treated
//! as 0 and move by the roundoff drift (2/m) F_k τ only. (1 − e^{−aτ}) is computed with `expm1`.
//!
//! Gradient descent with learning rate η: A ← A − η ∇L(A), the Euler discretisation of the flow; after
//! s steps it approximates A(τ = η s) with an error O(η) (per direction (1 − η a_k)^s vs e^{−a_k η s}).
//! It is stable for η < m²/λ_max.

use crate::dsm::Quadratic;
use crate::{Error, Result};
use faer::Mat;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Relative eigenvalue threshold below which a direction of G counts as null.
pub const NULL_TOL: f64 = 1e-13;

/// The closed-form gradient flow of one quadratic form from one initial A(0).
#[derive(Debug, Clone)]
pub struct GradientFlow {
    /// Eigenvalues λ_k of G (ascending; below [`NULL_TOL`]·λ_max set to 0).
    pub values: Vec<f64>,
    /// V (m × m), eigenvectors in columns.
    pub vectors: Mat<f64>,
    /// B(0) = A(0) V.
    b0: Mat<f64>,
    /// F = Hᵀ V.
    f: Mat<f64>,
}

impl GradientFlow {
    /// Eigendecompose G and project A(0) (d × m) and Hᵀ.
    pub fn new(q: &Quadratic, a0: &Mat<f64>) -> Result<GradientFlow> {
        let evd = q.g.self_adjoint_eigen(faer::Side::Lower).map_err(|e| Error::Eigen(format!("{e:?}")))?;
        let s = evd.S();
        let m = q.m();
        let top = (0..m).map(|k| s[k]).fold(0.0, f64::max);
        let values = (0..m).map(|k| if s[k] > NULL_TOL * top { s[k] } else { 0.0 }).collect();
        let vectors = evd.U().to_owned();
        let b0 = a0 * &vectors;
        let f = q.h.transpose() * &vectors;
        Ok(GradientFlow { values, vectors, b0, f })
    }

    /// A(τ) (d × m).
    pub fn at(&self, tau: f64) -> Mat<f64> {
        let m = self.vectors.nrows() as f64;
        let b = Mat::from_fn(self.b0.nrows(), self.b0.ncols(), |i, k| {
            let l = self.values[k];
            if l > 0.0 {
                let decay = -(-2.0 * l / (m * m) * tau).exp_m1();
                self.b0[(i, k)] * (1.0 - decay) + m * self.f[(i, k)] * decay / l
            } else {
                self.b0[(i, k)] + 2.0 / m * self.f[(i, k)] * tau
            }
        });
        b * self.vectors.transpose()
    }
}

/// `steps` steps of gradient descent A ← A − η ∇L(A) from `a0`.
pub fn gradient_descent(q: &Quadratic, a0: &Mat<f64>, lr: f64, steps: usize) -> Mat<f64> {
    let mut a = a0.clone();
    for _ in 0..steps {
        let g = q.gradient(&a);
        a -= faer::Scale(lr) * &g;
    }
    a
}

/// The initial readout A(0) (d × m): zero when `std` = 0, else entries N(0, std²) from ChaCha8 `seed`
/// in row-major order.
pub fn initial(d: usize, m: usize, std: f64, seed: u64) -> Mat<f64> {
    if std == 0.0 {
        return Mat::zeros(d, m);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vals: Vec<f64> =
        (0..d * m).map(|_| std * Distribution::<f64>::sample(&StandardNormal, &mut rng)).collect();
    Mat::from_fn(d, m, |i, j| vals[i * m + j])
}

/// A (d × m) as the row-major vector [`crate::RfScore::new`] takes.
pub fn row_major(a: &Mat<f64>) -> Vec<f64> {
    (0..a.nrows()).flat_map(|i| (0..a.ncols()).map(move |j| a[(i, j)])).collect()
}

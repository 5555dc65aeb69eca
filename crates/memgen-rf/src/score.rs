//! Score fields s(x, t) ≈ ∇ log p_t(x) with their divergence ∇·s, evaluated on a batch of points at one
//! time (the ODE and SDE integrators move all points in lockstep, so per-time work is shared).
//!
//! - [`RfScore`]: the random-feature model s_A(x, t) = (1/m) A φ(x, t) (A: d × m), whose Jacobian is
//!   ∂s/∂x = (1/m) A diag(σ'(W x + U e(t) + b)) W, so ∇·s = tr ∂s/∂x = (1/m) Σ_j c_j σ'_j with
//!   c_j = Σ_i A_ij W_ji.
//! - [`crate::Mixture`]: the exact score of its own diffusion p_t (closed form, see [`crate::target`]).

use crate::features::RandomFeatures;
use crate::target::Mixture;

/// A score field on R^d × (0, ∞) with its divergence.
pub trait ScoreField: Sync {
    /// Dimension d.
    fn dim(&self) -> usize;

    /// For the points `xs` (rows of d values) at time t: s(x_i, t) into `scores[i·d..(i+1)·d]` and
    /// ∇·s(x_i, t) into `divs[i]`.
    fn eval(&self, xs: &[f64], t: f64, scores: &mut [f64], divs: &mut [f64]);
}

/// s_A(x, t) = (1/m) A φ(x, t) over fixed random features.
#[derive(Debug, Clone)]
pub struct RfScore<'a> {
    features: &'a RandomFeatures,
    /// A, d × m row-major.
    a: Vec<f64>,
    /// c_j = Σ_i A_ij W_ji (the divergence weights).
    c: Vec<f64>,
}

impl<'a> RfScore<'a> {
    /// The model with readout A (d × m, row-major; length d·m).
    pub fn new(features: &'a RandomFeatures, a: Vec<f64>) -> RfScore<'a> {
        let (d, m) = (features.dim, features.m);
        assert_eq!(a.len(), d * m, "A must be d x m");
        let c = (0..m).map(|j| (0..d).map(|i| a[i * m + j] * features.w[j * d + i]).sum()).collect();
        RfScore { features, a, c }
    }

    /// The readout A (d × m, row-major).
    pub fn a(&self) -> &[f64] {
        &self.a
    }
}

impl ScoreField for RfScore<'_> {
    fn dim(&self) -> usize {
        self.features.dim
    }

    fn eval(&self, xs: &[f64], t: f64, scores: &mut [f64], divs: &mut [f64]) {
        let f = self.features;
        let (d, m) = (f.dim, f.m);
        let offsets = f.offsets(t);
        let inv_m = 1.0 / m as f64;
        for (i, x) in xs.chunks_exact(d).enumerate() {
            let s = &mut scores[i * d..(i + 1) * d];
            s.iter_mut().for_each(|v| *v = 0.0);
            let mut div = 0.0;
            for j in 0..m {
                let (phi, dphi) = f.activation.eval(f.pre(j, x, &offsets));
                for (k, sk) in s.iter_mut().enumerate() {
                    *sk += self.a[k * m + j] * phi;
                }
                div += self.c[j] * dphi;
            }
            s.iter_mut().for_each(|v| *v *= inv_m);
            divs[i] = div * inv_m;
        }
    }
}

impl ScoreField for Mixture {
    fn dim(&self) -> usize {
        self.dim
    }

    /// The exact ∇ log p_t of the mixture's diffusion.
    fn eval(&self, xs: &[f64], t: f64, scores: &mut [f64], divs: &mut [f64]) {
        let d = self.dim;
        let pt = self.diffused(t);
        for (i, x) in xs.chunks_exact(d).enumerate() {
            divs[i] = pt.score_div(x, &mut scores[i * d..(i + 1) * d]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{Activation, FeatureConfig};

    #[test]
    fn rf_divergence_matches_finite_differences() {
        for activation in [Activation::Tanh, Activation::Silu, Activation::Relu] {
            let feats =
                RandomFeatures::new(&FeatureConfig { activation, ..Default::default() }, 2, 30).unwrap();
            let a: Vec<f64> = (0..60).map(|i| ((i * 7919) % 13) as f64 - 6.0).collect();
            let s = RfScore::new(&feats, a);
            let x = [0.37, -1.21];
            let (mut out, mut div) = ([0.0; 2], [0.0]);
            s.eval(&x, 0.5, &mut out, &mut div);
            let h = 1e-6;
            let mut fd = 0.0;
            for i in 0..2 {
                let (mut xp, mut xm) = (x, x);
                xp[i] += h;
                xm[i] -= h;
                let (mut sp, mut sm, mut dd) = ([0.0; 2], [0.0; 2], [0.0]);
                s.eval(&xp, 0.5, &mut sp, &mut dd);
                s.eval(&xm, 0.5, &mut sm, &mut dd);
                fd += (sp[i] - sm[i]) / (2.0 * h);
            }
            assert!((fd - div[0]).abs() < 1e-6 * (1.0 + fd.abs()), "{activation:?}: {fd} vs {}", div[0]);
        }
    }
}

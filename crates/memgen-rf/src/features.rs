//! Fixed random features φ_j(x, t) = σ(w_jᵀ x + u_jᵀ e(t) + b_j), j = 1..m (Li et al. 2023, eq. (5):
//! the random-feature score model s_A(x, t) = (1/m) A σ(W x + U e(t)), here with a bias b).
//!
//! - Time embedding e(t) = (e^{−t}, σ_t) ∈ R² with σ_t = √(1 − e^{−2t}): the OU mean factor and the
//!   noise standard deviation, so x_t = e(t)₁ x_0 + e(t)₂ z. Both are smooth and bounded on [0, ∞) and
//!   σ_t resolves small t (it grows like √(2t)).
//! - Draws: w_j ~ N(0, w_std² I_d), u_j ~ N(0, u_std² I_2), b_j ~ N(0, b_std²), all of feature j from
//!   ChaCha8 stream j of `seed`. Features are nested: the first m of m' > m features are the m features.
//! - Activations: ReLU (the paper's theory, default), tanh, or SiLU/Swish x·sigmoid(x) (the paper's
//!   experiments), each with its derivative σ' for the divergence ∂s/∂x = (1/m) A diag(σ') W.

use crate::{invalid, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Dimension of the time embedding e(t).
pub const EMBED_DIM: usize = 2;

/// The activation σ of the random features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// σ(a) = max(a, 0), σ'(a) = 1[a > 0].
    #[default]
    Relu,
    /// σ(a) = tanh a, σ'(a) = 1 − tanh² a.
    Tanh,
    /// σ(a) = a / (1 + e^{−a}) (Swish), σ'(a) = g + a g (1 − g), g = 1/(1 + e^{−a}).
    Silu,
}

impl Activation {
    /// (σ(a), σ'(a)).
    #[inline]
    pub fn eval(self, a: f64) -> (f64, f64) {
        match self {
            Activation::Relu => {
                if a > 0.0 {
                    (a, 1.0)
                } else {
                    (0.0, 0.0)
                }
            }
            Activation::Tanh => {
                let h = a.tanh();
                (h, 1.0 - h * h)
            }
            Activation::Silu => {
                let g = 1.0 / (1.0 + (-a).exp());
                (a * g, g + a * g * (1.0 - g))
            }
        }
    }

    /// Parse `relu`, `tanh` or `silu` (alias `swish`).
    pub fn parse(s: &str) -> Result<Activation> {
        match s {
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "silu" | "swish" => Ok(Activation::Silu),
            _ => invalid(format!("unknown activation `{s}` (expected relu, tanh or silu)")),
        }
    }
}

/// How the random features are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// The activation σ.
    pub activation: Activation,
    /// Standard deviation of the input weights w_j.
    pub w_std: f64,
    /// Standard deviation of the time weights u_j.
    pub u_std: f64,
    /// Standard deviation of the biases b_j (the ReLU kinks sit at x = −(u_jᵀe(t) + b_j)/w_j).
    pub b_std: f64,
    /// Seed of the draws.
    pub seed: u64,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig { activation: Activation::Relu, w_std: 1.0, u_std: 1.0, b_std: 3.0, seed: 0 }
    }
}

/// m fixed random features on R^d × [0, ∞).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomFeatures {
    /// Input dimension d.
    pub dim: usize,
    /// Number of features m.
    pub m: usize,
    /// W (m × d, row-major: row j is w_j).
    pub w: Vec<f64>,
    /// U (m × 2, row-major).
    pub u: Vec<f64>,
    /// b (m).
    pub b: Vec<f64>,
    /// σ.
    pub activation: Activation,
}

/// e(t) = (e^{−t}, √(1 − e^{−2t})).
#[inline]
pub fn embed(t: f64) -> [f64; EMBED_DIM] {
    [(-t).exp(), (-(-2.0 * t).exp_m1()).sqrt()]
}

impl RandomFeatures {
    /// Draw m features on R^d (module docs).
    pub fn new(cfg: &FeatureConfig, dim: usize, m: usize) -> Result<RandomFeatures> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if dim == 0 || m == 0 || !ok(cfg.w_std) || !ok(cfg.u_std) || !ok(cfg.b_std) {
            return invalid("random features need d >= 1, m >= 1 and finite non-negative scales");
        }
        let (mut w, mut u, mut b) =
            (Vec::with_capacity(m * dim), Vec::with_capacity(m * 2), Vec::with_capacity(m));
        for j in 0..m {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            rng.set_stream(j as u64);
            let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
            w.extend((0..dim).map(|_| cfg.w_std * normal()));
            u.extend((0..EMBED_DIM).map(|_| cfg.u_std * normal()));
            b.push(cfg.b_std * normal());
        }
        Ok(RandomFeatures { dim, m, w, u, b, activation: cfg.activation })
    }

    /// The first `m` features (nested draws: the same as drawing `m`).
    pub fn truncated(&self, m: usize) -> RandomFeatures {
        let m = m.min(self.m);
        RandomFeatures {
            dim: self.dim,
            m,
            w: self.w[..m * self.dim].to_vec(),
            u: self.u[..m * EMBED_DIM].to_vec(),
            b: self.b[..m].to_vec(),
            activation: self.activation,
        }
    }

    /// The time part of the pre-activations, c_j(t) = u_jᵀ e(t) + b_j, shared by all x at time t.
    pub fn offsets(&self, t: f64) -> Vec<f64> {
        let e = embed(t);
        (0..self.m).map(|j| self.u[2 * j] * e[0] + self.u[2 * j + 1] * e[1] + self.b[j]).collect()
    }

    /// The pre-activation w_jᵀ x + c_j.
    #[inline]
    pub fn pre(&self, j: usize, x: &[f64], offsets: &[f64]) -> f64 {
        let w = &self.w[j * self.dim..(j + 1) * self.dim];
        w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + offsets[j]
    }

    /// φ(x, t) into `out` (length m), given [`RandomFeatures::offsets`] at t.
    pub fn phi(&self, x: &[f64], offsets: &[f64], out: &mut [f64]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.activation.eval(self.pre(j, x, offsets)).0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_derivatives_match_finite_differences() {
        for act in [Activation::Relu, Activation::Tanh, Activation::Silu] {
            for a in [-2.0, -0.3, 0.4, 1.7] {
                let h = 1e-6;
                let fd = (act.eval(a + h).0 - act.eval(a - h).0) / (2.0 * h);
                assert!((fd - act.eval(a).1).abs() < 1e-8, "{act:?} at {a}");
            }
        }
        assert!(Activation::parse("gelu").is_err());
    }

    #[test]
    fn features_are_nested_and_seeded() {
        let cfg = FeatureConfig::default();
        let big = RandomFeatures::new(&cfg, 2, 50).unwrap();
        assert_eq!(big.truncated(20), RandomFeatures::new(&cfg, 2, 20).unwrap());
        let other = RandomFeatures::new(&FeatureConfig { seed: 1, ..cfg }, 2, 20).unwrap();
        assert_ne!(other.w, big.truncated(20).w);
        let e = embed(0.7);
        assert!((e[0] * e[0] + e[1] * e[1] - 1.0).abs() < 1e-15);
    }
}

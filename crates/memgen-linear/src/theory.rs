//! The optimal linear denoiser of Merger & Goldt in the eigenbasis of Σ0, and what follows from it in
//! closed form.
//!
//! At time t the denoiser is ε̂(x, t) = W_t (x − √ᾱ_t μ0) with W_t = U diag(w_t(s_i)) Uᵀ, where
//! Σ0 = U diag(s) Uᵀ ([`crate::Spectrum`]) and w_t is [`weight`].

use serde::{Deserialize, Serialize};

/// How the linear denoiser is regularised.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Regularization {
    /// λ of the penalty λ‖W_t‖²_F added to each time step's loss.
    pub weight_decay: f64,
    /// Gradient flow from W = 0 stopped at this training time (η·τ, the learning rate folded in);
    /// `None`: trained to convergence.
    pub train_time: Option<f64>,
}

/// w_t(s): the denoiser's gain along an eigendirection of Σ0 with eigenvalue `s`, at a time with
/// ᾱ_t = `abar`. With m = ᾱ s + 1 − ᾱ (the variance of x_t − √ᾱ μ0 along that direction):
///
/// - converged: w = √(1−ᾱ) / (m + λ)  (λ = 0: W_t = √(1−ᾱ_t)(ᾱ_t Σ0 + (1−ᾱ_t) I)⁻¹, DESIGN.md);
/// - gradient flow on ‖ε − W x̃‖² + λ‖W‖² from W = 0 for time τ: w(τ) = √(1−ᾱ)/(m + λ) · (1 − e^{−2τ(m+λ)}).
pub fn weight(s: f64, abar: f64, reg: Regularization) -> f64 {
    let m = abar * s + 1.0 - abar + reg.weight_decay;
    let converged = (1.0 - abar).sqrt() / m;
    match reg.train_time {
        None => converged,
        Some(tau) => converged * -(-2.0 * tau * m).exp_m1(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_limits() {
        let (s, a) = (0.7, 0.3);
        let w = weight(s, a, Regularization::default());
        // c_t (Σ0 + c_t)^-1 = √(1−ᾱ) w with c_t = (1−ᾱ)/ᾱ.
        let c = (1.0 - a) / a;
        assert!(((1.0 - a).sqrt() * w - c / (s + c)).abs() < 1e-15);
        let long = weight(s, a, Regularization { weight_decay: 0.0, train_time: Some(1e3) });
        assert!((long - w).abs() < 1e-15);
        assert_eq!(weight(s, a, Regularization { weight_decay: 0.0, train_time: Some(0.0) }), 0.0);
        assert!(weight(s, a, Regularization { weight_decay: 0.5, train_time: None }) < w);
    }
}

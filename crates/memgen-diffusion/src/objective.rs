//! The two training objectives, one per network kind:
//!
//! - **DDPM** (Ho et al. 2020, Algorithm 1), time-conditioned UNets: t ~ U{0..T−1}, ε ~ N(0, I),
//!   x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε, loss = mean ‖f(x_t, t) − target‖² over every pixel, the target ε
//!   (or x0 for x0-prediction).
//! - **Blind** (Kadkhodaie et al. 2024), noise-blind networks: σ = u² with u ~ U[0, 1] per image,
//!   z ~ N(0, I), y = x0 + σ z, loss = Σ ‖f(y) − σ z‖² / batch. On the CPU in f32 it is computed on
//!   the whole-network engine ([`crate::blind::BlindUNet::engine_train`], the same values to f32
//!   rounding); elsewhere through Candle's autograd graph.
//!
//! Every draw comes from the step's own RNG, so a step's loss depends only on the seed and the step.

use crate::error::Result;
use crate::model::Model;
use crate::noise::normals;
use crate::schedule::DdpmSchedule;
use crate::Prediction;
use candle::{DType, Tensor, TensorId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// What a training step minimizes.
pub enum Objective {
    /// DDPM regression at a random timestep of `schedule`.
    Ddpm { schedule: DdpmSchedule, prediction: Prediction },
    /// The blind denoiser's noise-residual regression.
    Blind,
}

/// The gradients of one step: a loss graph still to be differentiated (once its value is known to
/// be finite), or the engine's gradients by parameter tensor.
pub(crate) enum StepGrads {
    Graph(Tensor),
    Engine(HashMap<TensorId, Tensor>),
}

impl Objective {
    /// The loss of `model` on the clean batch `x0`, with what its gradients need.
    pub(crate) fn loss(&self, model: &Model, x0: &Tensor, rng: &mut ChaCha8Rng) -> Result<(f32, StepGrads)> {
        match self {
            Objective::Ddpm { schedule, prediction } => graph(ddpm_loss(model, schedule, *prediction, x0, rng)?),
            Objective::Blind => {
                let (y, target) = blind_inputs(x0, rng)?;
                match model {
                    Model::Blind(net) if net.uses_engine(&y) && y.dim(2)? == y.dim(3)? => {
                        let step = net.engine_train(&y, &target)?;
                        let grads = step.grads.into_iter().map(|(p, g)| (p.id(), g)).collect();
                        Ok((step.loss as f32, StepGrads::Engine(grads)))
                    }
                    _ => graph(blind_loss(model, &y, &target)?),
                }
            }
        }
    }
}

/// The value of a loss built as a Candle graph, with the graph.
fn graph(loss: Tensor) -> Result<(f32, StepGrads)> {
    Ok((loss.to_scalar::<f32>()?, StepGrads::Graph(loss)))
}

/// DDPM loss: mean squared error of the predicted ε (or x0) at x_t of a random timestep.
fn ddpm_loss(
    model: &Model,
    schedule: &DdpmSchedule,
    prediction: Prediction,
    x0: &Tensor,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let b = x0.dim(0)?;
    let t: Vec<u32> = (0..b).map(|_| rng.random_range(0..schedule.len()) as u32).collect();
    let eps = Tensor::from_vec(normals(rng, x0.elem_count()), x0.shape(), x0.device())?;
    let x_t = schedule.add_noise(x0, &eps, &t)?;
    let t = Tensor::from_vec(t, b, x0.device())?;
    let pred = model.forward_t(&x_t, &t, true)?;
    let target = match prediction {
        Prediction::Epsilon => eps,
        Prediction::X0 => x0.clone(),
    };
    Ok((pred - target)?.sqr()?.mean_all()?)
}

/// The blind objective's inputs for clean images x0: σ = u² per image (u ~ U[0, 1]), z ~ N(0, I);
/// returns y = x0 + σ z and the target σ z.
fn blind_inputs(x0: &Tensor, rng: &mut ChaCha8Rng) -> Result<(Tensor, Tensor)> {
    let b = x0.dim(0)?;
    let sigma: Vec<f32> = (0..b).map(|_| rng.random::<f32>().powi(2)).collect();
    let sigma = Tensor::from_vec(sigma, (b, 1, 1, 1), x0.device())?;
    let z = Tensor::from_vec(normals(rng, x0.elem_count()), x0.shape(), x0.device())?;
    let noise = z.broadcast_mul(&sigma)?;
    Ok(((x0 + &noise)?, noise))
}

/// Σ ‖f(y) − σ z‖² / batch as a Candle graph.
fn blind_loss(model: &Model, y: &Tensor, noise: &Tensor) -> Result<Tensor> {
    let b = y.dim(0)?;
    let pred = model.forward_t(y, &Tensor::zeros(b, DType::U32, y.device())?, true)?;
    Ok(((pred - noise)?.sqr()?.sum_all()? / b as f64)?)
}

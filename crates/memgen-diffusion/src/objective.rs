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
use crate::shards;
use crate::Prediction;
use candle::backprop::GradStore;
use candle::{DType, Tensor, TensorId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::ops::Range;

/// What a training step minimizes.
pub enum Objective {
    /// DDPM regression at a random timestep of `schedule`.
    Ddpm { schedule: DdpmSchedule, prediction: Prediction },
    /// The blind denoiser's noise-residual regression.
    Blind,
}

/// The gradients of one step: a loss graph still to be differentiated (once its value is known to
/// be finite), or gradients already computed (by the blind engine, or summed over batch shards)
/// by parameter tensor.
pub(crate) enum StepGrads {
    Graph(Tensor),
    Ready(HashMap<TensorId, Tensor>),
}

impl Objective {
    /// The loss of `model` on the clean batch `x0`, with what its gradients need.
    pub(crate) fn loss(&self, model: &Model, x0: &Tensor, rng: &mut ChaCha8Rng) -> Result<(f32, StepGrads)> {
        match self {
            Objective::Ddpm { schedule, prediction } => {
                let (x_t, t, target) = ddpm_inputs(schedule, *prediction, x0, rng)?;
                if matches!(model, Model::Unet(_)) && x0.device().is_cpu() {
                    return sharded_mse(model, &shards::shares_here(x0.dim(0)?), &x_t, &t, &target);
                }
                let pred = model.forward_t(&x_t, &t, true)?;
                graph((pred - target)?.sqr()?.mean_all()?)
            }
            Objective::Blind => {
                let (y, target) = blind_inputs(x0, rng)?;
                match model {
                    Model::Blind(net) if net.uses_engine(&y) && y.dim(2)? == y.dim(3)? => {
                        let step = net.engine_train(&y, &target)?;
                        let grads = step.grads.into_iter().map(|(p, g)| (p.id(), g)).collect();
                        Ok((step.loss as f32, StepGrads::Ready(grads)))
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

/// The DDPM objective's inputs for clean images x0 (Ho et al. 2020, Algorithm 1): t ~ U{0..T−1}
/// and ε ~ N(0, I) per image, drawn in that order; returns `(x_t, t, target)` with
/// x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε and the target ε (or x0 for x0-prediction).
fn ddpm_inputs(
    schedule: &DdpmSchedule,
    prediction: Prediction,
    x0: &Tensor,
    rng: &mut ChaCha8Rng,
) -> Result<(Tensor, Tensor, Tensor)> {
    let b = x0.dim(0)?;
    let t: Vec<u32> = (0..b).map(|_| rng.random_range(0..schedule.len()) as u32).collect();
    let eps = Tensor::from_vec(normals(rng, x0.elem_count()), x0.shape(), x0.device())?;
    let x_t = schedule.add_noise(x0, &eps, &t)?;
    let t = Tensor::from_vec(t, b, x0.device())?;
    let target = match prediction {
        Prediction::Epsilon => eps,
        Prediction::X0 => x0.clone(),
    };
    Ok((x_t, t, target))
}

/// The mean squared error `Σ ‖f(x_t, t) − target‖² / (B·C·H·W)` and its gradients, one share of
/// the batch per thread ([`shards`]): share `s` differentiates its own term
/// `Σ_{i∈s} ‖f(x_t,i, t_i) − target_i‖² / (B·C·H·W)` on its thread, and the terms' values and
/// gradients are summed in share order. Each image's term depends only on that image, so this
/// is the whole batch's loss and gradient to f32 rounding.
fn sharded_mse(
    model: &Model,
    parts: &[Range<usize>],
    x_t: &Tensor,
    t: &Tensor,
    target: &Tensor,
) -> Result<(f32, StepGrads)> {
    let total = x_t.elem_count() as f64;
    let terms = shards::run(parts, |r| -> Result<(f64, GradStore)> {
        let part = |v: &Tensor| v.narrow(0, r.start, r.len());
        let pred = model.forward_t(&part(x_t)?, &part(t)?, true)?;
        let term = ((pred - part(target)?)?.sqr()?.sum_all()? / total)?;
        Ok((term.to_scalar::<f32>()? as f64, term.backward()?))
    })
    .map_err(|e| crate::Error::Invalid(format!("could not start the shard threads: {e}")))?;
    let terms = terms.into_iter().collect::<Result<Vec<_>>>()?;
    let value = terms.iter().map(|(v, _)| v).sum::<f64>() as f32;
    let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
    for (_, store) in &terms {
        for (id, g) in store.get_ids().filter_map(|id| Some((*id, store.get_id(*id)?))) {
            let sum = match grads.remove(&id) {
                None => g.clone(),
                Some(s) => (s + g)?,
            };
            grads.insert(id, sum);
        }
    }
    Ok((value, StepGrads::Ready(grads)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::seeded_var_builder;
    use crate::model::ModelConfig;
    use crate::noise::training_rng;
    use crate::schedule::ScheduleConfig;
    use crate::unet::UNetConfig;
    use candle::Device;
    use candle_nn::VarMap;

    /// The DDPM loss and gradients of a unet-tiny (with attention) step on 7 images of 16x16,
    /// computed inside a pool of `threads` threads: (loss, gradient by variable name).
    fn ddpm_step(threads: usize) -> (f32, Vec<(String, Vec<f32>)>) {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            assert_eq!(shards::shares_here(7).len(), threads.min(3), "the batch is split over the threads");
            let cfg = ModelConfig::Unet(UNetConfig { attention_levels: vec![1], ..UNetConfig::tiny() });
            let vm = VarMap::new();
            let model = Model::new(&cfg, seeded_var_builder(&vm, 3, DType::F32, &Device::Cpu)).unwrap();
            let mut rng = training_rng(5, 0);
            let x0 = Tensor::from_vec(normals(&mut rng, 7 * 16 * 16), (7, 1, 16, 16), &Device::Cpu).unwrap();
            let objective = Objective::Ddpm {
                schedule: DdpmSchedule::new(&ScheduleConfig::default()).unwrap(),
                prediction: Prediction::Epsilon,
            };
            let (value, grads) = objective.loss(&model, &x0, &mut rng).unwrap();
            let grads: Vec<(String, Option<Tensor>)> = match grads {
                StepGrads::Graph(loss) => {
                    let store = loss.backward().unwrap();
                    vm.data()
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(n, v)| (n.clone(), store.get(v).cloned()))
                        .collect()
                }
                StepGrads::Ready(g) => vm
                    .data()
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(n, v)| (n.clone(), g.get(&v.id()).cloned()))
                    .collect(),
            };
            let mut grads: Vec<(String, Vec<f32>)> = grads
                .into_iter()
                .map(|(n, g): (String, Option<Tensor>)| {
                    let g = g.unwrap_or_else(|| panic!("no gradient for {n}"));
                    (n, g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                })
                .collect();
            grads.sort_by(|a, b| a.0.cmp(&b.0));
            (value, grads)
        })
    }

    #[test]
    fn a_sharded_ddpm_step_has_the_whole_batch_loss_and_gradients() {
        let (whole_loss, whole) = ddpm_step(1);
        for threads in [2, 3] {
            let (loss, grads) = ddpm_step(threads);
            assert!(
                (loss - whole_loss).abs() <= 1e-5 * whole_loss.abs(),
                "{threads} threads: loss {loss} vs {whole_loss}"
            );
            for ((name, g), (_, w)) in grads.iter().zip(&whole) {
                let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
                let err = g.iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    err <= 1e-4 * scale,
                    "{threads} threads, {name}: max error {err} against max |g| {scale}"
                );
            }
        }
        let (again_loss, again) = ddpm_step(2);
        let (loss, grads) = ddpm_step(2);
        assert_eq!(again_loss.to_bits(), loss.to_bits());
        assert!(again == grads, "the same thread count gives the same bits");
    }
}

//! Denoisers at a given additive noise level σ.
//!
//! A DDPM network sees x_t = √ᾱ_t x + √(1 − ᾱ_t) ε, i.e. x_t / √ᾱ_t = x + σ_t ε with
//! σ_t = √((1 − ᾱ_t) / ᾱ_t). To denoise y = x + σ z it is given x_t = √ᾱ_t y at the timestep t whose
//! σ_t is nearest to σ (in log σ), and its prediction is turned into the clean estimate
//! x̂ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t (ε-prediction) or x̂ = x̂0 (x0-prediction). The noise level the
//! network actually assumes, σ_t, is [`ImageDenoiser::effective_sigma`]; it differs from σ by at most
//! half a step of the schedule (and is clamped to [σ_0, σ_{T−1}] outside the schedule's range).
//! A blind network denoises y directly: x̂ = y − f(y), at any σ.

use crate::{Error, Result};
use candle::{DType, Device, Tensor};
use memgen_diffusion::sampler::to_x0;
use memgen_diffusion::{DdpmSchedule, Model, Prediction};

/// A clean-image estimate x̂ = f(y, σ) for y = x + σ z. `y` has shape (B, C, H, W); the output too.
/// Implementations are built from differentiable Candle ops, so gradients of f with respect to `y`
/// (the Jacobian) can be taken by backpropagation.
pub trait ImageDenoiser {
    /// f(y, σ).
    fn denoise(&self, y: &Tensor, sigma: f64) -> Result<Tensor>;

    /// The noise level the denoiser actually assumes when asked for `sigma`.
    fn effective_sigma(&self, sigma: f64) -> f64 {
        sigma
    }
}

/// A trained network as an [`ImageDenoiser`]. Its inputs may live on any device: they are moved to the
/// network's device and the estimate is moved back (differentiably, so Jacobians still reach `y`).
pub struct ModelDenoiser {
    model: Model,
    /// The DDPM schedule of a time-conditioned network (`None` for a blind one).
    schedule: Option<DdpmSchedule>,
    prediction: Prediction,
    /// Where the network's weights are.
    device: Device,
}

impl ModelDenoiser {
    /// A network whose weights are on the CPU; `schedule` is needed for time-conditioned networks and
    /// ignored for blind ones.
    pub fn new(model: Model, schedule: Option<DdpmSchedule>, prediction: Prediction) -> Result<Self> {
        let schedule = match model {
            Model::Blind(_) => None,
            Model::Unet(_) => Some(schedule.ok_or_else(|| {
                Error::Invalid("a time-conditioned network needs its DDPM schedule".into())
            })?),
        };
        Ok(ModelDenoiser { model, schedule, prediction, device: Device::Cpu })
    }

    /// The weights of a training run (`ema`: the EMA weights) with the run's schedule, on the CPU.
    pub fn from_run(run: &std::path::Path, ema: bool) -> Result<Self> {
        Self::from_run_on(run, ema, &Device::Cpu)
    }

    /// [`ModelDenoiser::from_run`] with the weights on `device`.
    pub fn from_run_on(run: &std::path::Path, ema: bool, device: &Device) -> Result<Self> {
        let cfg = memgen_diffusion::run::RunConfig::load(run)?;
        let model_cfg = &cfg.train.model;
        let model = memgen_diffusion::train::load_model(model_cfg, run, ema, device)?;
        let schedule = DdpmSchedule::new(&cfg.train.schedule)?;
        let den = ModelDenoiser::new(model, Some(schedule), model_cfg.prediction())?;
        Ok(ModelDenoiser { device: device.clone(), ..den })
    }

    /// The network.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The timestep whose σ_t = √((1 − ᾱ_t)/ᾱ_t) is nearest to `sigma` in log σ (`None` for a blind network).
    pub fn timestep(&self, sigma: f64) -> Option<usize> {
        let s = self.schedule.as_ref()?;
        nearest_timestep(&s.alphas_cumprod, sigma)
    }
}

/// σ_t = √((1 − ᾱ_t) / ᾱ_t).
pub fn sigma_of(alpha_bar: f64) -> f64 {
    ((1.0 - alpha_bar) / alpha_bar).sqrt()
}

/// The index t minimising |ln σ_t − ln σ| (the first one on ties); `None` for an empty schedule.
pub fn nearest_timestep(alphas_cumprod: &[f64], sigma: f64) -> Option<usize> {
    let target = sigma.max(f64::MIN_POSITIVE).ln();
    alphas_cumprod
        .iter()
        .enumerate()
        .map(|(t, &a)| (t, (sigma_of(a).ln() - target).abs()))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(t, _)| t)
}

impl ImageDenoiser for ModelDenoiser {
    fn denoise(&self, y: &Tensor, sigma: f64) -> Result<Tensor> {
        let home = y.device();
        let y = y.to_device(&self.device)?;
        let (Some(s), Some(t)) = (&self.schedule, self.timestep(sigma)) else {
            let Model::Blind(m) = &self.model else {
                unreachable!("a time-conditioned model has a schedule")
            };
            return Ok(m.denoise(&y)?.to_device(home)?);
        };
        let abar = s.alphas_cumprod[t];
        let x_t = (y * abar.sqrt())?;
        let ts = Tensor::full(t as u32, x_t.dim(0)?, &self.device)?;
        let out = self.model.forward_t(&x_t, &ts, false)?;
        let x0 = to_x0(self.prediction, &out, &x_t, abar)?;
        Ok(x0.to_device(home)?)
    }

    fn effective_sigma(&self, sigma: f64) -> f64 {
        match (&self.schedule, self.timestep(sigma)) {
            (Some(s), Some(t)) => sigma_of(s.alphas_cumprod[t]),
            _ => sigma,
        }
    }
}

/// The Wiener filter: the optimal (posterior-mean) denoiser of Gaussian data x ~ N(μ, Σ),
/// Σ = U diag(λ) Uᵀ: f*(y, σ) = μ + W_σ (y − μ), W_σ = U diag(λ_i / (λ_i + σ²)) Uᵀ, with mean squared
/// error MSE*(σ²) = Σ_i σ² λ_i / (λ_i + σ²). Any other eigenvalues (e.g. a fitted spectrum) give the
/// corresponding linear denoiser. Computed in the dtype of the input (f32 or f64). Not to be confused
/// with `memgen_linear::sampling::LinearDenoiser`, the ε-predicting stand-in for a network that the
/// DDPM/DDIM samplers run.
#[derive(Debug, Clone)]
pub struct WienerDenoiser {
    /// μ, length d.
    pub mean: Vec<f64>,
    /// U, d x d row-major (column i = eigenvector i).
    pub basis: Vec<f64>,
    /// λ, length d.
    pub eigenvalues: Vec<f64>,
}

impl WienerDenoiser {
    /// Check the shapes: `basis` d x d for `mean` and `eigenvalues` of length d, λ ≥ 0.
    pub fn new(mean: Vec<f64>, basis: Vec<f64>, eigenvalues: Vec<f64>) -> Result<Self> {
        let d = mean.len();
        if eigenvalues.len() != d || basis.len() != d * d || eigenvalues.iter().any(|&l| !(l >= 0.0)) {
            return Err(Error::Invalid(format!(
                "linear denoiser: mean of length {d} needs a {d} x {d} basis and {d} non-negative eigenvalues"
            )));
        }
        Ok(WienerDenoiser { mean, basis, eigenvalues })
    }

    /// Pixels per image.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The shrinkage factors λ_i / (λ_i + σ²).
    pub fn gains(&self, sigma: f64) -> Vec<f64> {
        let v = sigma * sigma;
        self.eigenvalues.iter().map(|&l| if l + v > 0.0 { l / (l + v) } else { 0.0 }).collect()
    }

    /// W_σ = U diag(gains) Uᵀ, d x d row-major.
    pub fn matrix(&self, sigma: f64) -> Vec<f64> {
        let d = self.dim();
        let g = self.gains(sigma);
        let mut w = vec![0.0; d * d];
        for r in 0..d {
            for c in 0..d {
                w[r * d + c] = (0..d).map(|i| self.basis[r * d + i] * g[i] * self.basis[c * d + i]).sum();
            }
        }
        w
    }

    /// MSE of this denoiser when the data are N(μ, C) with C = U diag(c) Uᵀ in the same basis:
    /// Σ_i (1 − g_i)² c_i + g_i² σ²; for c = λ it is the optimal MSE*(σ²) = Σ_i σ² λ_i / (λ_i + σ²).
    pub fn mse_on(&self, data_eigenvalues: &[f64], sigma: f64) -> f64 {
        let v = sigma * sigma;
        self.gains(sigma).iter().zip(data_eigenvalues).map(|(g, c)| (1.0 - g).powi(2) * c + g * g * v).sum()
    }
}

impl ImageDenoiser for WienerDenoiser {
    fn denoise(&self, y: &Tensor, sigma: f64) -> Result<Tensor> {
        let dims = y.dims().to_vec();
        let (b, d) = (dims[0], y.elem_count() / dims[0].max(1));
        if d != self.dim() {
            return Err(Error::Invalid(format!(
                "linear denoiser of dimension {} got images of {d} pixels",
                self.dim()
            )));
        }
        let (dtype, dev): (DType, &Device) = (y.dtype(), y.device());
        let mean = Tensor::from_vec(self.mean.clone(), (1, d), dev)?.to_dtype(dtype)?;
        let u = Tensor::from_vec(self.basis.clone(), (d, d), dev)?.to_dtype(dtype)?;
        let gains = Tensor::from_vec(self.gains(sigma), (1, d), dev)?.to_dtype(dtype)?;
        let centred = y.reshape((b, d))?.broadcast_sub(&mean)?;
        // x̂ = μ + U diag(g) Uᵀ (y − μ) per row, in the eigenbasis: two B×d by d×d products rather
        // than forming W_σ (d³).
        let coords = centred.matmul(&u)?.broadcast_mul(&gains)?;
        let out = coords.matmul(&u.t()?)?.broadcast_add(&mean)?;
        Ok(out.reshape(dims)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_timestep_in_log_sigma() {
        let abar = [0.99, 0.9, 0.5, 0.1];
        let sig: Vec<f64> = abar.iter().map(|&a| sigma_of(a)).collect();
        assert_eq!(nearest_timestep(&abar, sig[2]), Some(2));
        assert_eq!(nearest_timestep(&abar, sig[1] * 1.01), Some(1));
        assert_eq!(nearest_timestep(&abar, 1e-9), Some(0), "clamped below");
        assert_eq!(nearest_timestep(&abar, 1e9), Some(3), "clamped above");
        // Halfway in log between t = 1 and t = 2 lies nearer whichever is closer in log.
        let mid = (sig[1].ln() * 0.4 + sig[2].ln() * 0.6).exp();
        assert_eq!(nearest_timestep(&abar, mid), Some(2));
    }

    #[test]
    fn linear_denoiser_matches_its_formula() {
        // 2-D, rotated basis: f(y) = μ + W (y − μ) with W = U diag(λ/(λ+σ²)) Uᵀ.
        let (c, s) = (0.6f64, 0.8f64);
        let lin = WienerDenoiser::new(vec![0.5, 0.2], vec![c, -s, s, c], vec![2.0, 0.5]).unwrap();
        let sigma = 0.7;
        let y = Tensor::from_vec(vec![1.0f64, -0.3], (1, 1, 1, 2), &Device::Cpu).unwrap();
        let out = lin.denoise(&y, sigma).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let g = [2.0 / (2.0 + 0.49), 0.5 / (0.5 + 0.49)];
        let u = [[c, -s], [s, c]];
        let dy = [1.0 - 0.5, -0.3 - 0.2];
        for r in 0..2 {
            let want: f64 = [0.5, 0.2][r]
                + (0..2).map(|k| (0..2).map(|i| u[r][i] * g[i] * u[k][i]).sum::<f64>() * dy[k]).sum::<f64>();
            assert!((out[r] - want).abs() < 1e-12, "{} vs {want}", out[r]);
        }
        // The optimal MSE Σ σ²λ/(λ+σ²).
        let want = 0.49 * 2.0 / 2.49 + 0.49 * 0.5 / 0.99;
        assert!((lin.mse_on(&[2.0, 0.5], sigma) - want).abs() < 1e-12);
    }
}

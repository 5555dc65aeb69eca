//! Timestep embeddings of the DDPM UNet (Ho, Jain & Abbeel 2020, arXiv:2006.11239, §B: "diffusion time
//! t is specified by adding the Transformer sinusoidal position embedding into each residual block";
//! Vaswani et al. 2017, arXiv:1706.03762, §3.5).
//!
//! For a timestep t (one per sample) and an even width `dim = 2·half`:
//! `emb(t) = [sin(t·f_0), …, sin(t·f_{half-1}), cos(t·f_0), …, cos(t·f_{half-1})]`,
//! `f_k = exp(-ln(10000)·k / half)`, so `(B,)` timesteps give a `(B, dim)` tensor. [`TimeEmbedding`]
//! then applies `Linear(dim, embed_dim) – SiLU – Linear(embed_dim, embed_dim)`.
//!
//! ```
//! use candle::{DType, Device, Tensor};
//! use memgen_diffusion::embeddings::timestep_embedding;
//! let t = Tensor::new(&[0u32, 10], &Device::Cpu)?;
//! let e = timestep_embedding(&t, 32, DType::F32)?;
//! assert_eq!(e.dims(), &[2, 32]);
//! // t = 0: sines are 0, cosines are 1.
//! let row0: Vec<f32> = e.get(0)?.to_vec1()?;
//! assert!(row0[..16].iter().all(|&v| v == 0.0) && row0[16..].iter().all(|&v| v == 1.0));
//! # Ok::<(), candle::Error>(())
//! ```

use candle::{DType, Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};

/// The sinusoidal embedding of timesteps `t` (shape `(B,)`, any numeric dtype; u32 in memgen) as a
/// `(B, dim)` tensor of `dtype`: half sines, then half cosines, frequencies `exp(-ln(10000)·k/(dim/2))`.
/// The timesteps are converted to `dtype` before the product, as PyTorch's reference does in f32.
pub fn timestep_embedding(t: &Tensor, dim: usize, dtype: DType) -> Result<Tensor> {
    if dim == 0 || dim % 2 != 0 {
        candle::bail!("timestep_embedding: the width must be even and positive, got {dim}");
    }
    let b = match t.dims() {
        [b] => *b,
        d => candle::bail!("timestep_embedding: expected timesteps of shape (B,), got {d:?}"),
    };
    let half = dim / 2;
    let freqs: Vec<f64> = (0..half).map(|k| (-(10000f64.ln()) * k as f64 / half as f64).exp()).collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?.to_dtype(dtype)?;
    let args = t.to_dtype(dtype)?.reshape((b, 1))?.broadcast_mul(&freqs)?;
    Tensor::cat(&[args.sin()?, args.cos()?], 1)
}

/// Widths of the timestep embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEmbeddingConfig {
    /// Width of the sinusoidal embedding (even); the UNet uses its base channel count.
    pub sinusoidal_dim: usize,
    /// Width of the MLP's hidden layer and output, fed to every residual block.
    pub embed_dim: usize,
}

impl Default for TimeEmbeddingConfig {
    /// unet-s: sinusoidal width 32, embedding 128.
    fn default() -> Self {
        TimeEmbeddingConfig { sinusoidal_dim: 32, embed_dim: 128 }
    }
}

/// `t ↦ Linear(embed, embed)(SiLU(Linear(sin, embed)(emb(t))))`. Weights are `0.{weight,bias}` and
/// `2.{weight,bias}` under the builder's prefix, as in a PyTorch `nn.Sequential(Linear, SiLU, Linear)`.
#[derive(Debug, Clone)]
pub struct TimeEmbedding {
    cfg: TimeEmbeddingConfig,
    linear_1: Linear,
    linear_2: Linear,
}

impl TimeEmbedding {
    pub fn new(cfg: &TimeEmbeddingConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.sinusoidal_dim == 0 || cfg.sinusoidal_dim % 2 != 0 {
            candle::bail!(
                "TimeEmbedding: sinusoidal_dim must be even and positive, got {}",
                cfg.sinusoidal_dim
            );
        }
        let linear_1 = linear(cfg.sinusoidal_dim, cfg.embed_dim, vb.pp("0"))?;
        let linear_2 = linear(cfg.embed_dim, cfg.embed_dim, vb.pp("2"))?;
        Ok(TimeEmbedding { cfg: *cfg, linear_1, linear_2 })
    }

    pub fn config(&self) -> &TimeEmbeddingConfig {
        &self.cfg
    }

    /// `(B,)` timesteps to a `(B, embed_dim)` embedding of `dtype` (the model's dtype).
    pub fn forward(&self, t: &Tensor, dtype: DType) -> Result<Tensor> {
        let e = timestep_embedding(t, self.cfg.sinusoidal_dim, dtype)?;
        self.linear_2.forward(&self.linear_1.forward(&e)?.silu()?)
    }
}

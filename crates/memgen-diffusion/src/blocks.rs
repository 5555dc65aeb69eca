//! Building blocks of the DDPM UNet (Ho, Jain & Abbeel 2020, arXiv:2006.11239, §4 and App. B, after
//! the PixelCNN++ / Wide-ResNet UNet): the time-conditioned residual block, single-head self-attention,
//! the stride-2 downsampling conv and the nearest-×2 upsampling conv. Shapes are `(B, C, H, W)`.
//!
//! - [`ResBlock`]: `h = conv1(SiLU(GN(x))) + temb(e)[:, :, None, None]`,
//!   `out = conv2(dropout(SiLU(GN(h)))) + skip(x)`, where `temb` is a `Linear(temb_dim, cout)` applied to
//!   the time embedding `e` as it comes (no extra SiLU, as DESIGN.md and the PyTorch reference) and
//!   `skip` is a 1x1 conv when `cin != cout`, the identity otherwise.
//! - [`AttentionBlock`]: `x + proj(attend(qkv(GN(x))))`, single head, `softmax(qᵀk / sqrt(C))` over
//!   the H·W key positions.
//! - [`Downsample`]: 3x3 conv, stride 2, padding 1 (`H → ceil(H/2)`).
//! - [`Upsample`]: [`upsample_nearest2x`] then a 3x3 conv, padding 1 (`H → 2H`).
//!
//! Convs, GroupNorms (fused with the SiLU that follows them) and the upsampling run on
//! memgen-kernels' CPU kernels; the time embedding is added inside `conv1` as a per-sample bias.
//!
//! Candle 0.11 pitfall: the backward of `Tensor::upsample_nearest2d` *overwrites* the gradient
//! accumulated for its input instead of adding to it, which is wrong whenever that input also feeds
//! another branch. [`upsample_nearest2x`] (from memgen-kernels) has its own, accumulating backward.
//!
//! ```
//! use candle::{Device, Tensor};
//! use memgen_diffusion::blocks::upsample_nearest2x;
//! let x = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu)?;
//! let y = upsample_nearest2x(&x)?;
//! assert_eq!(y.dims(), &[1, 1, 4, 4]);
//! assert_eq!(y.get(0)?.get(0)?.get(1)?.to_vec1::<f32>()?, vec![1., 1., 2., 2.]);
//! # Ok::<(), candle::Error>(())
//! ```

use candle::{Module, Result, Tensor, D};
use candle_nn::{linear, Conv2dConfig, Linear, VarBuilder};
pub use memgen_kernels::upsample_nearest2x;
use memgen_kernels::{conv2d, group_norm, Conv2d, GroupNorm};

/// Epsilon of every GroupNorm (PyTorch's default).
pub const NORM_EPS: f64 = 1e-5;

/// Softmax over the last axis; the max is subtracted for stability and detached (softmax does not
/// depend on it), so no gradient flows through the arg-max.
fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    let max = xs.max_keepdim(D::Minus1)?.detach();
    let num = xs.broadcast_sub(&max)?.exp()?;
    let den = num.sum_keepdim(D::Minus1)?;
    num.broadcast_div(&den)
}

fn conv3x3(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    conv2d(cin, cout, 3, Conv2dConfig { padding: 1, stride, ..Default::default() }, vb)
}

/// A time-conditioned residual block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResBlockConfig {
    /// Input channels `cin`.
    pub in_channels: usize,
    /// Output channels `cout`.
    pub out_channels: usize,
    /// Width of the time embedding fed to the block.
    pub temb_dim: usize,
    /// Groups of both GroupNorms (must divide `cin` and `cout`).
    pub norm_groups: usize,
    /// Dropout probability between the two convs. Training with `dropout > 0` is not supported yet
    /// (candle's dropout draws from its unseeded RNG) and is an error; evaluation ignores it.
    pub dropout: f64,
}

impl Default for ResBlockConfig {
    /// A unet-s level-1 block: 32 → 32 channels, time embedding 128, 8 groups, no dropout.
    fn default() -> Self {
        ResBlockConfig { in_channels: 32, out_channels: 32, temb_dim: 128, norm_groups: 8, dropout: 0.0 }
    }
}

/// `conv2(SiLU(GN(conv1(SiLU(GN(x))) + temb(e)))) + skip(x)`. Weights: `norm1`, `conv1`, `temb`,
/// `norm2`, `conv2` and, when `cin != cout`, `skip` (1x1 conv).
#[derive(Debug, Clone)]
pub struct ResBlock {
    cfg: ResBlockConfig,
    norm1: GroupNorm,
    conv1: Conv2d,
    temb: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    skip: Option<Conv2d>,
}

impl ResBlock {
    pub fn new(cfg: &ResBlockConfig, vb: VarBuilder) -> Result<Self> {
        let (cin, cout, g) = (cfg.in_channels, cfg.out_channels, cfg.norm_groups);
        if !(0.0..1.0).contains(&cfg.dropout) {
            candle::bail!("ResBlock: dropout must be in [0, 1), got {}", cfg.dropout);
        }
        let norm1 = group_norm(g, cin, NORM_EPS, vb.pp("norm1"))?;
        let conv1 = conv3x3(cin, cout, 1, vb.pp("conv1"))?;
        let temb = linear(cfg.temb_dim, cout, vb.pp("temb"))?;
        let norm2 = group_norm(g, cout, NORM_EPS, vb.pp("norm2"))?;
        let conv2 = conv3x3(cout, cout, 1, vb.pp("conv2"))?;
        let skip =
            if cin != cout { Some(conv2d(cin, cout, 1, Default::default(), vb.pp("skip"))?) } else { None };
        Ok(ResBlock { cfg: *cfg, norm1, conv1, temb, norm2, conv2, skip })
    }

    pub fn config(&self) -> &ResBlockConfig {
        &self.cfg
    }

    /// `x`: `(B, cin, H, W)`; `temb`: `(B, temb_dim)`; returns `(B, cout, H, W)`.
    pub fn forward(&self, x: &Tensor, temb: &Tensor, train: bool) -> Result<Tensor> {
        if train && self.cfg.dropout > 0.0 {
            candle::bail!(
                "ResBlock: training with dropout {} > 0 is not supported (no seeded dropout yet); set dropout = 0",
                self.cfg.dropout
            );
        }
        let t = self.temb.forward(temb)?; // (B, cout): a per-sample bias of conv1
        let h = self.conv1.forward_with_sample_bias(&self.norm1.forward_silu(x)?, Some(&t))?;
        // Dropout would go here, between SiLU and conv2 (identity in evaluation).
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        match &self.skip {
            Some(skip) => h + skip.forward(x)?,
            None => h + x,
        }
    }
}

/// A single-head self-attention block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionConfig {
    /// Channels `C` (in = out).
    pub channels: usize,
    /// Groups of the GroupNorm (must divide `channels`).
    pub norm_groups: usize,
}

impl Default for AttentionConfig {
    fn default() -> Self {
        AttentionConfig { channels: 128, norm_groups: 8 }
    }
}

/// `x + proj(v · softmax(qᵀk / sqrt(C))ᵀ)` with `[q; k; v] = qkv(GN(x))` over the `N = H·W` positions.
/// Weights: `norm`, `qkv` (1x1 conv, C → 3C, channel blocks q, k, v), `proj` (1x1 conv, C → C).
#[derive(Debug, Clone)]
pub struct AttentionBlock {
    cfg: AttentionConfig,
    norm: GroupNorm,
    qkv: Conv2d,
    proj: Conv2d,
}

impl AttentionBlock {
    pub fn new(cfg: &AttentionConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.channels;
        let norm = group_norm(cfg.norm_groups, c, NORM_EPS, vb.pp("norm"))?;
        let qkv = conv2d(c, 3 * c, 1, Default::default(), vb.pp("qkv"))?;
        let proj = conv2d(c, c, 1, Default::default(), vb.pp("proj"))?;
        Ok(AttentionBlock { cfg: *cfg, norm, qkv, proj })
    }

    pub fn config(&self) -> &AttentionConfig {
        &self.cfg
    }
}

impl Module for AttentionBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = h * w;
        let qkv = self.qkv.forward(&self.norm.forward(x)?)?.reshape((b, 3 * c, n))?;
        let q = qkv.narrow(1, 0, c)?.transpose(1, 2)?.contiguous()?; // (B, N, C)
        let k = qkv.narrow(1, c, c)?.contiguous()?; // (B, C, N)
        let v = qkv.narrow(1, 2 * c, c)?.contiguous()?; // (B, C, N)
        let scores = (q.matmul(&k)? * (1.0 / (c as f64).sqrt()))?; // (B, N_query, N_key)
        let attn = softmax_last_dim(&scores)?;
        let out = v.matmul(&attn.transpose(1, 2)?.contiguous()?)?.reshape((b, c, h, w))?; // (B, C, N_query)
        x + self.proj.forward(&out)?
    }
}

/// 3x3 conv, stride 2, padding 1, `C → C`. Its weights sit directly under the builder's prefix.
#[derive(Debug, Clone)]
pub struct Downsample {
    conv: Conv2d,
}

impl Downsample {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Downsample { conv: conv3x3(channels, channels, 2, vb)? })
    }
}

impl Module for Downsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(x)
    }
}

/// [`upsample_nearest2x`] then a 3x3 conv, padding 1, `C → C`. Its weights sit directly under the
/// builder's prefix.
#[derive(Debug, Clone)]
pub struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Upsample { conv: conv3x3(channels, channels, 1, vb)? })
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&upsample_nearest2x(x)?)
    }
}

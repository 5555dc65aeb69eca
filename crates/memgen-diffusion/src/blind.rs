//! The noise-blind, bias-free UNet of Kadkhodaie, Guth, Simoncelli & Mallat 2024 (arXiv:2310.02557),
//! as their code builds it (DESIGN.md, "blind mode"; `shared/bench/torch_blind_unet.py` is a PyTorch
//! reference of the same network).
//!
//! The network sees only the noisy image y (no noise level) and returns the **noise residual** f(y);
//! the clean estimate is y − f(y). There is no additive parameter anywhere, so in evaluation mode
//! f(a·y) = a·f(y) for every a > 0.
//!
//! Layout, with c_b = `base_channels`·2^b and `convs_per_block` = 2:
//! ```text
//! enc b = 0 .. num_blocks-1 : conv3x3 → [BN] → ReLU   (×2; the very first conv has no BN)
//!                             skip_b = output; then AvgPool2d(2)
//! mid                       : conv3x3 → BN → ReLU     (×2, c_{num_blocks} channels)
//! dec b = num_blocks-1 .. 0 : ConvTranspose2d(k 2, stride 2, c_{b+1} → c_b), cat [up, skip_b],
//!                             conv3x3 → BN → ReLU     (×2; the very last conv is conv only, c_0 → in_channels)
//! ```
//! so an image passes through `num_blocks` + 1 resolutions (16 → 8 → 4 for the 2-block demo
//! network, 80 → 40 → 20 → 10 for the paper's 3-block one).
//!
//! Bias-free batch norm ([`BfBatchNorm`]): y = x / sd · gain per channel, with
//! sd = sqrt(Var_batch(x) + eps) in training (population variance over batch and pixels, about the
//! batch mean; the mean is *not* subtracted from x) and sd = the running std in evaluation.
//!
//! Parameters and checkpoint keys (VarBuilder paths):
//! `enc.{b}.{l}.weight`, `enc.{b}.{l}.bn.gain`, `enc.{b}.{l}.bn.running_sd`, `mid.{l}.…`,
//! `up.{b}.weight` (shape (c_{b+1}, c_b, 2, 2), as PyTorch's ConvTranspose2d) and `dec.{b}.{l}.…`.
//! `*.running_sd` are running statistics, not parameters: they live in the same [`VarMap`] so that
//! `VarMap::save`/`load` checkpoint them, but they never enter a differentiated graph; train with
//! [`trainable_vars`], which leaves them out.

use crate::blind_engine::{BnParams, ConvParams, Engine, Gradients, Params};
use crate::denoiser::Denoiser;
use candle::{DType, Module, Result, Tensor, Var};
use candle_nn::{Conv2dConfig, Init, VarBuilder, VarMap};
use memgen_kernels::Float;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// The name of the running-std variable of every batch-norm layer.
pub const RUNNING_SD: &str = "running_sd";

/// Standard deviation of the gain's initial normal draw (the authors' `2/9/64`).
pub const GAIN_INIT_STD: f64 = 2.0 / 9.0 / 64.0;

/// The gain's initial draw is clamped to [−GAIN_INIT_CLAMP, GAIN_INIT_CLAMP].
pub const GAIN_INIT_CLAMP: f64 = 0.025;

/// The blind UNet's shape. `Default` is the paper's 80x80 network (models/unet-paper.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlindConfig {
    /// Image channels, both in and out (1: grayscale).
    pub in_channels: usize,
    /// Channels of the first level; each level below doubles them.
    pub base_channels: usize,
    /// Encoder blocks, each followed by a 2x2 average pool; the middle block sits one level below
    /// the last, so there are `num_blocks` + 1 resolutions (3 at 80x80 in the paper; 2 are enough at
    /// 16x16). Images need sides divisible by 2^`num_blocks`. Same meaning as `blocks` in the
    /// PyTorch reference.
    pub num_blocks: usize,
    /// 3x3 convolutions per encoder, middle and decoder block (2 in the paper).
    pub convs_per_block: usize,
    /// Added to the batch variance before the square root in the bias-free batch norm.
    pub bn_eps: f64,
    /// Running-std update weight: running = (1 − momentum)·running + momentum·batch std.
    pub bn_momentum: f64,
}

impl Default for BlindConfig {
    fn default() -> Self {
        BlindConfig {
            in_channels: 1,
            base_channels: 64,
            num_blocks: 3,
            convs_per_block: 2,
            bn_eps: 1e-5,
            bn_momentum: 0.1,
        }
    }
}

/// Where a 3x3 convolution sits, for naming, counting and building.
pub(crate) struct ConvSpec {
    /// Stage ("enc", "mid" or "dec"), block (none for "mid") and index in its block.
    pub stage: &'static str,
    pub block: Option<usize>,
    pub index: usize,
    pub c_in: usize,
    pub c_out: usize,
    /// Resolution level: the image side divided by 2^level.
    pub level: usize,
    pub bn: bool,
    pub relu: bool,
}

impl BlindConfig {
    /// The paper's 80x80 network (64 base channels, 3 blocks) = `Default`.
    pub fn paper() -> Self {
        Self::default()
    }

    /// The demo-scale network: 16 base channels and 2 blocks, 114,496 parameters (models/blind-tiny.toml).
    pub fn tiny() -> Self {
        BlindConfig { base_channels: 16, num_blocks: 2, ..Self::default() }
    }

    /// Channels at resolution level `level`.
    fn channels(&self, level: usize) -> usize {
        self.base_channels << level
    }

    /// Every 3x3 convolution, in forward order (encoder, middle, decoder from the bottom up).
    pub(crate) fn convs(&self) -> Vec<ConvSpec> {
        let (nb, nc) = (self.num_blocks, self.convs_per_block);
        let mut v = Vec::new();
        for b in 0..nb {
            for l in 0..nc {
                let c_in = match (b, l) {
                    (0, 0) => self.in_channels,
                    (_, 0) => self.channels(b - 1),
                    _ => self.channels(b),
                };
                let first = b == 0 && l == 0;
                let c_out = self.channels(b);
                v.push(ConvSpec {
                    stage: "enc",
                    block: Some(b),
                    index: l,
                    c_in,
                    c_out,
                    level: b,
                    bn: !first,
                    relu: true,
                });
            }
        }
        for l in 0..nc {
            let c_in = if l == 0 { self.channels(nb - 1) } else { self.channels(nb) };
            let c_out = self.channels(nb);
            v.push(ConvSpec {
                stage: "mid",
                block: None,
                index: l,
                c_in,
                c_out,
                level: nb,
                bn: true,
                relu: true,
            });
        }
        for b in (0..nb).rev() {
            for l in 0..nc {
                let c_in = if l == 0 { 2 * self.channels(b) } else { self.channels(b) };
                let last = b == 0 && l == nc - 1;
                let c_out = if last { self.in_channels } else { self.channels(b) };
                v.push(ConvSpec {
                    stage: "dec",
                    block: Some(b),
                    index: l,
                    c_in,
                    c_out,
                    level: b,
                    bn: !last,
                    relu: !last,
                });
            }
        }
        v
    }

    /// Checks the config, and that images of side `side` fit it.
    pub fn validate(&self, side: usize) -> Result<()> {
        self.check()?;
        let m = 1usize << self.num_blocks;
        if side == 0 || side % m != 0 {
            candle::bail!("blind UNet: side {side} must be a positive multiple of 2^num_blocks = {m}");
        }
        Ok(())
    }

    /// Checks the fields alone.
    fn check(&self) -> Result<()> {
        if self.in_channels == 0 || self.base_channels == 0 {
            candle::bail!("blind UNet: in_channels and base_channels must be positive");
        }
        if self.num_blocks == 0 || self.convs_per_block == 0 {
            candle::bail!("blind UNet: num_blocks and convs_per_block must be at least 1");
        }
        if self.num_blocks > 16 {
            candle::bail!("blind UNet: num_blocks {} is implausibly large", self.num_blocks);
        }
        if !(self.bn_eps >= 0.0 && self.bn_eps.is_finite()) {
            candle::bail!("blind UNet: bn_eps must be finite and non-negative, got {}", self.bn_eps);
        }
        if !(0.0..=1.0).contains(&self.bn_momentum) {
            candle::bail!("blind UNet: bn_momentum must lie in [0, 1], got {}", self.bn_momentum);
        }
        Ok(())
    }

    /// Trainable parameters (conv weights and batch-norm gains; running stds excluded).
    pub fn parameter_count(&self) -> usize {
        let convs: usize =
            self.convs().iter().map(|c| c.c_in * c.c_out * 9 + if c.bn { c.c_out } else { 0 }).sum();
        let ups: usize = (0..self.num_blocks).map(|b| self.channels(b + 1) * self.channels(b) * 4).sum();
        convs + ups
    }

    /// Forward FLOPs per image of side `side`: 2 × the multiply-adds of the convolutions and transposed
    /// convolutions (what torch's FlopCounter counts; pooling, batch norm and ReLU are left out).
    pub fn flops_per_image(&self, side: usize) -> u64 {
        let px = |level: usize| ((side >> level) * (side >> level)) as u64;
        let convs: u64 = self.convs().iter().map(|c| (c.c_in * c.c_out * 9) as u64 * px(c.level)).sum();
        // A transposed conv with kernel 2, stride 2 does c_in·c_out·4 multiply-adds per input pixel.
        let ups: u64 = (0..self.num_blocks)
            .map(|b| (self.channels(b + 1) * self.channels(b) * 4) as u64 * px(b + 1))
            .sum();
        2 * (convs + ups)
    }
}

/// True for the variables that are running statistics rather than parameters.
pub fn is_running_stat(name: &str) -> bool {
    name == RUNNING_SD || name.ends_with(&format!(".{RUNNING_SD}"))
}

/// The variables of `varmap` an optimiser should update: all but the running statistics, in name
/// order (so the optimiser's state is laid out the same way in every run).
pub fn trainable_vars(varmap: &VarMap) -> Vec<Var> {
    let data = varmap.data().lock().expect("var map lock poisoned");
    let mut named: Vec<(&String, &Var)> = data.iter().filter(|(k, _)| !is_running_stat(k)).collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    named.into_iter().map(|(_, v)| v.clone()).collect()
}

/// Bias-free batch norm of Kadkhodaie et al.: y = x / sd · gain per channel, no mean subtraction,
/// no shift.
///
/// * Training (`train = true`): sd = sqrt(Var(x) + eps), Var the population variance over batch and
///   pixels (about the batch mean, as PyTorch's `x.var(dim=(0,2,3), unbiased=False)`); gradients flow
///   through sd. Each training forward also updates running_sd ← (1 − m)·running_sd + m·sd
///   (m = momentum), in place.
/// * Evaluation: sd = running_sd, so the layer is linear in x.
///
/// Storage of the running std: it is fetched from the VarBuilder as `running_sd` (shape (C,),
/// initialised to 1), so with a [`VarMap`] backend it is a variable of the map and is saved and loaded
/// with the weights. Tensors handed out by a VarMap *are* its variables (`is_variable()`), and
/// [`Var::from_tensor`] on such a tensor wraps the same storage, so `Var::set` here writes into the
/// map's copy. With a read-only backend (safetensors, `VarBuilder::zeros`) the layer keeps a private
/// copy instead, which still updates but is not written back anywhere. The update is computed from
/// detached tensors: running_sd never appears in a training graph and receives no gradient.
/// (`VarBuilder::zeros` gives zero running stds, so its eval mode divides by zero: shape checks only.)
pub struct BfBatchNorm {
    gain: Tensor,
    running_sd: Var,
    eps: f64,
    momentum: f64,
}

impl BfBatchNorm {
    /// A batch norm over `channels` channels. A freshly created gain is drawn as N(0, (2/9/64)²)
    /// through the VarBuilder (seeded with [`crate::init::seeded_var_builder`]) and clamped to
    /// [−0.025, 0.025]; a gain that already exists (a loaded checkpoint) is used as it is.
    pub fn new(channels: usize, eps: f64, momentum: f64, vb: VarBuilder) -> Result<Self> {
        let fresh = !vb.contains_tensor("gain");
        let gain = vb.get_with_hints(channels, "gain", Init::Randn { mean: 0.0, stdev: GAIN_INIT_STD })?;
        let gain = if fresh {
            // Clamp in place so that the VarMap holds the clamped value too.
            let var = Var::from_tensor(&gain)?;
            var.set(&gain.clamp(-GAIN_INIT_CLAMP, GAIN_INIT_CLAMP)?)?;
            var.as_tensor().clone()
        } else {
            gain
        };
        let running = vb.get_with_hints(channels, RUNNING_SD, Init::Const(1.0))?;
        let running_sd = Var::from_tensor(&running)?;
        Ok(BfBatchNorm { gain, running_sd, eps, momentum })
    }

    /// The learned per-channel gain, shape (C,).
    pub fn gain(&self) -> &Tensor {
        &self.gain
    }

    /// The current running std, shape (C,) (a detached copy).
    pub fn running_sd(&self) -> Result<Tensor> {
        self.running_sd.as_detached_tensor().copy()
    }

    /// running_sd ← (1 − m)·running_sd + m·batch_sd (m = momentum), in place, with `batch_sd` of
    /// shape (C,) (converted to the running std's dtype first).
    pub fn update_running(&self, batch_sd: &Tensor) -> Result<()> {
        let batch_sd = batch_sd.detach().to_dtype(self.running_sd.dtype())?;
        let running = self.running_sd.as_detached_tensor();
        let updated = ((running * (1.0 - self.momentum))? + (batch_sd * self.momentum)?)?;
        self.running_sd.set(&updated)
    }

    /// Applies the layer to x of shape (B, C, H, W); see the type's documentation.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let c = x.dim(1)?;
        let gain = self.gain.reshape((1, c, 1, 1))?;
        if train {
            let mean = channel_mean(x)?;
            let var = channel_mean(&x.broadcast_sub(&mean)?.sqr()?)?;
            let sd = (var + self.eps)?.sqrt()?;
            let y = x.broadcast_mul(&gain.broadcast_div(&sd)?)?;
            self.update_running(&sd.detach().flatten_all()?)?;
            Ok(y)
        } else {
            let sd = self.running_sd.as_detached_tensor().to_dtype(x.dtype())?.reshape((1, c, 1, 1))?;
            x.broadcast_mul(&gain.broadcast_div(&sd)?)
        }
    }
}

/// The per-channel mean over batch and pixels of x (B, C, H, W), shape (1, C, 1, 1). Reduces the
/// contiguous pixel dimension first: candle's reduction over (0, 2, 3) at once walks the strided
/// tensor element by element and is several times slower.
fn channel_mean(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h * w))?.sum_keepdim(2)?.sum_keepdim(0)?.reshape((1, c, 1, 1))? / (b * h * w) as f64
}

/// One 3x3 convolution (padding 1, no bias), optionally followed by batch norm and ReLU.
struct ConvLayer {
    weight: Tensor,
    bn: Option<BfBatchNorm>,
    relu: bool,
}

impl ConvLayer {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let conv = memgen_kernels::Conv2d::new(
            self.weight.clone(),
            None,
            Conv2dConfig { padding: 1, ..Default::default() },
        );
        let mut x = conv.forward(x)?;
        if let Some(bn) = &self.bn {
            x = bn.forward_t(&x, train)?;
        }
        if self.relu {
            x = x.relu()?;
        }
        Ok(x)
    }
}

/// The blind, bias-free UNet; see the module documentation.
pub struct BlindUNet {
    cfg: BlindConfig,
    enc: Vec<Vec<ConvLayer>>,
    mid: Vec<ConvLayer>,
    /// Transposed-conv kernels, indexed by the level they upsample *to*.
    up: Vec<Tensor>,
    /// Decoder blocks, indexed by level.
    dec: Vec<Vec<ConvLayer>>,
    /// The whole-network engine's buffers, kept from call to call (see [`BlindUNet::uses_engine`]).
    engine: Mutex<Engine<f32>>,
}

/// One training pass on the engine ([`BlindUNet::engine_train`]).
pub struct EngineStep {
    /// L = Σ (f(y) − target)² / B.
    pub loss: f64,
    /// (parameter, dL/dparameter) for every conv weight, norm gain and transposed-conv weight; the
    /// parameter tensors are the network's own (the VarMap's variables when built from one).
    pub grads: Vec<(Tensor, Tensor)>,
}

impl BlindUNet {
    /// Builds (or, from a filled VarBuilder, loads) the network. Convolution and transposed-convolution
    /// weights use Kaiming normal initialisation with fan-in and ReLU gain, std = sqrt(2 / fan_in),
    /// fan_in = dim 1 × kernel area: PyTorch's `kaiming_normal_(a=0, mode="fan_in")` that the reference
    /// applies, on the same weight shapes (for the transposed conv, fan_in is then c_out·4, as in
    /// PyTorch). candle-nn's `conv2d_no_bias` would draw the same (`DEFAULT_KAIMING_NORMAL`), but
    /// its `conv_transpose2d_no_bias` draws uniform ±1/sqrt(c_out·k²), hence the explicit hints here.
    pub fn new(cfg: &BlindConfig, vb: VarBuilder) -> Result<Self> {
        cfg.check()?;
        let kaiming = candle_nn::init::DEFAULT_KAIMING_NORMAL;
        let nb = cfg.num_blocks;
        let mut enc: Vec<Vec<ConvLayer>> = (0..nb).map(|_| Vec::new()).collect();
        let mut dec: Vec<Vec<ConvLayer>> = (0..nb).map(|_| Vec::new()).collect();
        let mut mid = Vec::new();
        for spec in cfg.convs() {
            let vb = match spec.block {
                Some(b) => vb.pp(spec.stage).pp(b).pp(spec.index),
                None => vb.pp(spec.stage).pp(spec.index),
            };
            let weight = vb.get_with_hints((spec.c_out, spec.c_in, 3, 3), "weight", kaiming)?;
            let bn = if spec.bn {
                Some(BfBatchNorm::new(spec.c_out, cfg.bn_eps, cfg.bn_momentum, vb.pp("bn"))?)
            } else {
                None
            };
            let layer = ConvLayer { weight, bn, relu: spec.relu };
            match (spec.stage, spec.block) {
                ("enc", Some(b)) => enc[b].push(layer),
                ("dec", Some(b)) => dec[b].push(layer),
                _ => mid.push(layer),
            }
        }
        let up = (0..nb)
            .map(|b| {
                let shape = (cfg.channels(b + 1), cfg.channels(b), 2, 2);
                vb.pp("up").pp(b).get_with_hints(shape, "weight", kaiming)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BlindUNet { cfg: cfg.clone(), enc, mid, up, dec, engine: Mutex::new(Engine::new(1)) })
    }

    pub fn config(&self) -> &BlindConfig {
        &self.cfg
    }

    /// The noise residual f(y) for y of shape (B, in_channels, H, W), H and W multiples of
    /// 2^num_blocks; the clean estimate is y − f(y). `train` selects batch statistics (and updates
    /// the running stds) or the running stds in the batch norms.
    /// In evaluation mode the whole-network engine computes the same function when
    /// [`Self::uses_engine`] holds and the images are square.
    pub fn forward_t(&self, y: &Tensor, train: bool) -> Result<Tensor> {
        let (_, c, h, w) = y.dims4()?;
        if !train && h == w && self.uses_engine(y) {
            return self.engine_forward(y);
        }
        let m = 1usize << self.cfg.num_blocks;
        if c != self.cfg.in_channels || h % m != 0 || w % m != 0 || h == 0 || w == 0 {
            candle::bail!(
                "blind UNet: input {:?} needs {} channels and sides that are positive multiples of {m}",
                y.dims(),
                self.cfg.in_channels
            );
        }
        let mut x = y.clone();
        let mut skips = Vec::with_capacity(self.cfg.num_blocks);
        for block in &self.enc {
            for layer in block {
                x = layer.forward_t(&x, train)?;
            }
            skips.push(x.clone());
            x = x.avg_pool2d(2)?;
        }
        for layer in &self.mid {
            x = layer.forward_t(&x, train)?;
        }
        for b in (0..self.cfg.num_blocks).rev() {
            x = memgen_kernels::conv_transpose2x2(&x, &self.up[b])?;
            x = Tensor::cat(&[&x, &skips[b]], 1)?;
            for layer in &self.dec[b] {
                x = layer.forward_t(&x, train)?;
            }
        }
        Ok(x)
    }

    /// Whether evaluation-mode forwards and [`Self::engine_train`] may run on the whole-network
    /// engine ([`crate::blind_engine`]) for the input `y`: CPU f32 weights and input, outside
    /// `memgen_kernels::with_stock_kernels` and without `MEMGEN_STOCK_KERNELS=1`, and an input
    /// that takes no part in an autograd graph (`!y.track_op()`: the engine's output carries no
    /// graph, so a Jacobian through the network keeps Candle's path).
    pub fn uses_engine(&self, y: &Tensor) -> bool {
        self.dtype() == DType::F32
            && y.dtype() == DType::F32
            && memgen_kernels::is_fast_path(y)
            && !y.track_op()
    }

    /// The convolution layers in forward order (that of [`BlindConfig`]'s layer list).
    fn layers(&self) -> impl Iterator<Item = &ConvLayer> {
        self.enc.iter().flatten().chain(&self.mid).chain(self.dec.iter().rev().flatten())
    }

    /// A copy of the parameters and running stds in the engine's layout, converted to `T`.
    pub fn engine_params<T: Float>(&self) -> Result<Params<T>> {
        fn flat<T: Float>(t: &Tensor) -> Result<Vec<T>> {
            t.flatten_all()?.to_dtype(T::DTYPE)?.to_vec1()
        }
        let convs = self
            .layers()
            .zip(self.cfg.convs())
            .map(|(l, s)| {
                let bn = match &l.bn {
                    Some(bn) => {
                        Some(BnParams { gain: flat(&bn.gain)?, running_sd: flat(bn.running_sd.as_tensor())? })
                    }
                    None => None,
                };
                let weight = flat(&l.weight)?;
                Ok(ConvParams { c_in: s.c_in, c_out: s.c_out, level: s.level, weight, bn, relu: l.relu })
            })
            .collect::<Result<Vec<_>>>()?;
        let ups = self.up.iter().map(flat).collect::<Result<Vec<_>>>()?;
        Ok(Params { cfg: self.cfg.clone(), convs, ups })
    }

    /// The engine's gradients as (parameter, gradient) tensor pairs, gradients in the parameters'
    /// shapes, dtype and device.
    pub fn gradient_pairs<T: Float>(&self, g: &Gradients<T>) -> Result<Vec<(Tensor, Tensor)>> {
        let like = |p: &Tensor, v: &[T]| -> Result<(Tensor, Tensor)> {
            let t = Tensor::from_slice(v, p.shape(), p.device())?.to_dtype(p.dtype())?;
            Ok((p.clone(), t))
        };
        let mut out = Vec::new();
        for (k, l) in self.layers().enumerate() {
            out.push(like(&l.weight, &g.conv[k])?);
            if let (Some(bn), Some(dg)) = (&l.bn, &g.gain[k]) {
                out.push(like(&bn.gain, dg)?);
            }
        }
        for (w, dw) in self.up.iter().zip(&g.up) {
            out.push(like(w, dw)?);
        }
        Ok(out)
    }

    /// Updates every norm's running std from the batch stds of an engine training pass, as the
    /// training forward of [`BfBatchNorm`] does.
    pub fn update_running_stats(&self, batch_sd: &[Option<Vec<f64>>]) -> Result<()> {
        for (l, sd) in self.layers().zip(batch_sd) {
            if let (Some(bn), Some(sd)) = (&l.bn, sd) {
                let dev = bn.gain.device();
                bn.update_running(&Tensor::from_slice(sd, sd.len(), dev)?.to_dtype(self.dtype())?)?;
            }
        }
        Ok(())
    }

    /// Runs `f` on the cached engine (or, when another thread holds it, on a fresh one), on as many
    /// threads as rayon's current pool has.
    fn with_engine<R>(&self, f: impl FnOnce(&mut Engine<f32>) -> R) -> R {
        let threads = rayon::current_num_threads();
        match self.engine.try_lock() {
            Ok(mut e) => {
                if e.threads() != threads {
                    *e = Engine::new(threads);
                }
                f(&mut e)
            }
            Err(_) => f(&mut Engine::new(threads)),
        }
    }

    /// The evaluation-mode forward on the engine (square images).
    fn engine_forward(&self, y: &Tensor) -> Result<Tensor> {
        let (b, _, side, _) = y.dims4()?;
        let p = self.engine_params::<f32>()?;
        let x = y.flatten_all()?.to_vec1::<f32>()?;
        let f = self.with_engine(|e| e.forward(&p, &x, b, side, false))?;
        Tensor::from_vec(f.output, y.shape(), y.device())
    }

    /// A training-mode forward and backward pass of L = Σ (f(y) − target)² / B on the engine (for
    /// y with [`Self::uses_engine`], square images), the blind training objective with
    /// target = σ z: updates the running stds as a training forward does and returns L with dL/dθ
    /// for every parameter. The same as `forward_t(y, true)` followed by Candle's backward, to f32
    /// rounding.
    pub fn engine_train(&self, y: &Tensor, target: &Tensor) -> Result<EngineStep> {
        let (b, _, side, w) = y.dims4()?;
        if side != w || target.dims() != y.dims() {
            candle::bail!("blind engine: needs square images and a target of the input's shape");
        }
        let p = self.engine_params::<f32>()?;
        let (x, t) = (y.flatten_all()?.to_vec1::<f32>()?, target.flatten_all()?.to_vec1::<f32>()?);
        let g = self.with_engine(|e| e.train(&p, &x, &t, b, side))?;
        self.update_running_stats(&g.forward.batch_sd)?;
        Ok(EngineStep { loss: g.loss, grads: self.gradient_pairs(&g)? })
    }

    /// The clean estimate y − f(y) in evaluation mode.
    pub fn denoise(&self, y: &Tensor) -> Result<Tensor> {
        y - self.forward_t(y, false)?
    }

    /// The dtype of the weights (inputs must match it).
    pub fn dtype(&self) -> DType {
        self.up[0].dtype()
    }
}

impl Denoiser for BlindUNet {
    /// The noise residual f(x_t) in evaluation mode; `t` is ignored (the network is noise-blind).
    fn forward(&self, x_t: &Tensor, _t: &Tensor) -> Result<Tensor> {
        self.forward_t(x_t, false)
    }
}

//! The time-conditioned DDPM UNet (Ho, Jain & Abbeel 2020, arXiv:2006.11239, App. B; the reference
//! network `unet-s` of DESIGN.md and `shared/bench/torch_unet_s.py`).
//!
//! With `L = channel_mult.len()` levels of widths `w_i = base_channels · channel_mult[i]`:
//! - time embedding: sinusoidal of width `base_channels`, then `Linear – SiLU – Linear` to
//!   `time_embed_dim` ([`crate::embeddings`]);
//! - `conv_in`: 3x3, `in_channels → base_channels`;
//! - down level `i`: `num_res_blocks` [`ResBlock`]s to `w_i` (each followed by an [`AttentionBlock`]
//!   when `i ∈ attention_levels`), then, except at the last level, a stride-2 3x3 conv;
//! - middle: 2 residual blocks at `w_{L-1}`;
//! - up level `i` (from `L-1` down to 0): `num_res_blocks + 1` residual blocks to `w_i`, each on the
//!   channel concatenation `[h, skip]`, then, except at level 0, nearest ×2 upsampling and a 3x3 conv;
//! - out: GroupNorm – SiLU – 3x3 conv, `w_0 → out_channels`.
//!
//! The skips are the output of `conv_in`, of every down residual block (after its attention, if any)
//! and of every downsampling conv: `1 + L·num_res_blocks + (L-1) = L·(num_res_blocks + 1)` tensors,
//! exactly one per up block, consumed last-in first-out. For unet-s (widths 32, 64, 128) the up
//! blocks' inputs are therefore, in order: 128+128, 128+128, 128+64 → 128; upsample; 128+64, 64+64,
//! 64+32 → 64; upsample; 64+32, 32+32, 32+32 → 32. This is the reading of DESIGN.md that gives its
//! 3,541,569 parameters (tested).
//!
//! Checkpoint keys (PyTorch-like): `time_embed.{0,2}.*`, `conv_in.*`,
//! `down.{i}.res.{j}.{norm1,conv1,temb,norm2,conv2,skip}.*`, `down.{i}.attn.{j}.{norm,qkv,proj}.*`,
//! `down.{i}.downsample.*`, `mid.res.{j}.*`, `up.{i}.res.{j}.*`, `up.{i}.attn.{j}.*`, `up.{i}.upsample.*`,
//! `out.norm.*`, `out.conv.*`. Up levels are numbered like the down levels (`up.i` works at the
//! resolution and width of `down.i`), so `up.{L-1}` runs first.
//!
//! ```
//! use candle::{DType, Device, Tensor};
//! use candle_nn::VarMap;
//! use memgen_diffusion::{init::seeded_var_builder, unet::{UNet, UNetConfig}, Denoiser};
//! let cfg = UNetConfig::tiny();
//! let vm = VarMap::new();
//! let net = UNet::new(&cfg, seeded_var_builder(&vm, 0, DType::F32, &Device::Cpu))?;
//! let x = Tensor::zeros((2, 1, 8, 8), DType::F32, &Device::Cpu)?;
//! let t = Tensor::new(&[1u32, 999], &Device::Cpu)?;
//! assert_eq!(net.forward(&x, &t)?.dims(), &[2, 1, 8, 8]);
//! # Ok::<(), candle::Error>(())
//! ```

use crate::blocks::{
    AttentionBlock, AttentionConfig, Downsample, ResBlock, ResBlockConfig, Upsample, NORM_EPS,
};
use crate::embeddings::{TimeEmbedding, TimeEmbeddingConfig};
use crate::{shards, Denoiser, Prediction};
use candle::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};
use memgen_kernels::{conv2d, group_norm, Conv2d, GroupNorm};
use serde::{Deserialize, Serialize};

/// Number of residual blocks in the middle of the network.
const MID_RES_BLOCKS: usize = 2;

/// Architecture of a [`UNet`]. `Default` is DESIGN.md's `unet-s` (3,541,569 parameters); missing TOML
/// keys take these defaults, unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UNetConfig {
    /// Channels of the input image (1 for grayscale).
    pub in_channels: usize,
    /// Channels of the output (the predicted noise or image; normally `in_channels`).
    pub out_channels: usize,
    /// Width of the first level, of `conv_in`, and of the sinusoidal time embedding (must be even).
    pub base_channels: usize,
    /// Width multiplier of each level (level `i` has `base_channels · channel_mult[i]` channels);
    /// its length is the number of levels, so images shrink by `2^(len-1)` at the bottom.
    pub channel_mult: Vec<usize>,
    /// Residual blocks per level on the down path; the up path has `num_res_blocks + 1` per level.
    pub num_res_blocks: usize,
    /// Groups of every GroupNorm (must divide every level width).
    pub norm_groups: usize,
    /// Width of the time embedding MLP (hidden and output) fed to every residual block.
    pub time_embed_dim: usize,
    /// Levels (indices into `channel_mult`) with a single-head self-attention block after each
    /// residual block, on both paths. The middle has no attention.
    pub attention_levels: Vec<usize>,
    /// Dropout in the residual blocks, between the two convs. Only 0 can be trained for now (candle's
    /// dropout uses an unseeded RNG): `forward_t(.., train = true)` with `dropout > 0` is an error;
    /// evaluation ignores it.
    pub dropout: f64,
    /// What the network is trained to predict; the network itself does not depend on it.
    pub prediction: Prediction,
}

impl Default for UNetConfig {
    /// DESIGN.md's `unet-s`: 1 → 1 channels, widths 32/64/128, 2 res blocks, 8 groups, time embedding
    /// 128, no attention, no dropout, ε-prediction.
    fn default() -> Self {
        UNetConfig {
            in_channels: 1,
            out_channels: 1,
            base_channels: 32,
            channel_mult: vec![1, 2, 4],
            num_res_blocks: 2,
            norm_groups: 8,
            time_embed_dim: 128,
            attention_levels: Vec::new(),
            dropout: 0.0,
            prediction: Prediction::Epsilon,
        }
    }
}

/// One parameterised layer, as the analytic counts see it.
enum Layer {
    /// Square conv with bias; `side` is the output side.
    Conv {
        cin: usize,
        cout: usize,
        k: usize,
        side: usize,
    },
    Linear {
        din: usize,
        dout: usize,
    },
    GroupNorm {
        c: usize,
    },
    /// GroupNorm, 1x1 qkv conv, two N x N x C matmuls, 1x1 output conv; `side` of the feature map.
    Attention {
        c: usize,
        side: usize,
    },
}

impl Layer {
    fn parameters(&self) -> usize {
        match *self {
            Layer::Conv { cin, cout, k, .. } => cin * cout * k * k + cout,
            Layer::Linear { din, dout } => din * dout + dout,
            Layer::GroupNorm { c } => 2 * c,
            Layer::Attention { c, .. } => 2 * c + (c * 3 * c + 3 * c) + (c * c + c),
        }
    }

    /// 2 × multiply-adds of convs, linears and matmuls (PyTorch FlopCounter's convention: biases,
    /// norms, activations and softmax are not counted).
    fn flops(&self) -> u64 {
        let f = match *self {
            Layer::Conv { cin, cout, k, side } => 2 * cin * cout * k * k * side * side,
            Layer::Linear { din, dout } => 2 * din * dout,
            Layer::GroupNorm { .. } => 0,
            Layer::Attention { c, side } => {
                let n = side * side;
                2 * c * 3 * c * n + 2 * (2 * n * n * c) + 2 * c * c * n
            }
        };
        f as u64
    }
}

/// Where a block sits: which level of the down or up path, or the middle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Down(usize),
    Mid,
    Up(usize),
}

/// One block of the network with the sizes it works at: the one description of the architecture
/// (module docs) that both [`UNet::new`] (which builds it) and the parameter and FLOP counts read.
/// `side` is the side of the block's output map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// Sinusoidal embedding of width `sinusoidal`, then `Linear – SiLU – Linear` to `dim`.
    TimeEmbed { sinusoidal: usize, dim: usize },
    /// The 3x3 input conv.
    ConvIn { cin: usize, cout: usize, side: usize },
    /// Residual block `j` of `place`, `cin → cout` channels (with the time embedding of width `temb`).
    Res { place: Place, j: usize, cin: usize, cout: usize, temb: usize, side: usize },
    /// Attention block `j` of `place`, after residual block `j`.
    Attn { place: Place, j: usize, c: usize, side: usize },
    /// The stride-2 3x3 conv after down level `level` (`side` is its output side).
    Downsample { level: usize, c: usize, side: usize },
    /// Nearest ×2 upsampling and a 3x3 conv after up level `level` (`side` is its output side).
    Upsample { level: usize, c: usize, side: usize },
    /// GroupNorm – SiLU – 3x3 conv, `cin → cout`.
    Out { cin: usize, cout: usize, side: usize },
}

impl Block {
    /// The parameterised layers of the block, in construction order.
    fn layers(&self) -> Vec<Layer> {
        match *self {
            Block::TimeEmbed { sinusoidal, dim } => {
                vec![Layer::Linear { din: sinusoidal, dout: dim }, Layer::Linear { din: dim, dout: dim }]
            }
            Block::ConvIn { cin, cout, side } => vec![Layer::Conv { cin, cout, k: 3, side }],
            Block::Res { cin, cout, temb, side, .. } => {
                let mut l = vec![
                    Layer::GroupNorm { c: cin },
                    Layer::Conv { cin, cout, k: 3, side },
                    Layer::Linear { din: temb, dout: cout },
                    Layer::GroupNorm { c: cout },
                    Layer::Conv { cin: cout, cout, k: 3, side },
                ];
                if cin != cout {
                    l.push(Layer::Conv { cin, cout, k: 1, side });
                }
                l
            }
            Block::Attn { c, side, .. } => vec![Layer::Attention { c, side }],
            Block::Downsample { c, side, .. } | Block::Upsample { c, side, .. } => {
                vec![Layer::Conv { cin: c, cout: c, k: 3, side }]
            }
            Block::Out { cin, cout, side } => {
                vec![Layer::GroupNorm { c: cin }, Layer::Conv { cin, cout, k: 3, side }]
            }
        }
    }
}

impl UNetConfig {
    /// `unet-tiny` (models/unet-tiny.toml), for tests: widths 8/16, 1 res block, 4 groups, time
    /// embedding 32 (40,489 parameters).
    pub fn tiny() -> Self {
        UNetConfig {
            base_channels: 8,
            channel_mult: vec![1, 2],
            num_res_blocks: 1,
            norm_groups: 4,
            time_embed_dim: 32,
            ..Default::default()
        }
    }

    /// Number of levels (resolutions).
    pub fn levels(&self) -> usize {
        self.channel_mult.len()
    }

    /// Width of level `i`.
    pub fn level_channels(&self, i: usize) -> usize {
        self.base_channels * self.channel_mult[i]
    }

    /// The checks that do not depend on the image size.
    fn check(&self) -> Result<()> {
        let bad = |msg: String| -> Result<()> { candle::bail!("invalid UNet config: {msg}") };
        if self.in_channels == 0 {
            return bad("in_channels must be at least 1".into());
        }
        if self.out_channels == 0 {
            return bad("out_channels must be at least 1".into());
        }
        if self.base_channels == 0 || self.base_channels % 2 != 0 {
            return bad(format!(
                "base_channels = {} must be even and positive (it is also the sinusoidal embedding width)",
                self.base_channels
            ));
        }
        if self.channel_mult.is_empty() {
            return bad("channel_mult must list at least one level".into());
        }
        if let Some(m) = self.channel_mult.iter().find(|&&m| m == 0) {
            return bad(format!("channel_mult = {:?} has a zero multiplier ({m})", self.channel_mult));
        }
        if self.norm_groups == 0 {
            return bad("norm_groups must be at least 1".into());
        }
        let widths: Vec<usize> = (0..self.levels()).map(|i| self.level_channels(i)).collect();
        if widths.iter().any(|w| w % self.norm_groups != 0) {
            return bad(format!(
                "norm_groups = {} must divide every level width (base_channels · channel_mult = {widths:?})",
                self.norm_groups
            ));
        }
        if self.time_embed_dim == 0 {
            return bad("time_embed_dim must be at least 1".into());
        }
        for (k, &l) in self.attention_levels.iter().enumerate() {
            if l >= self.levels() {
                return bad(format!(
                    "attention_levels = {:?} names level {l}, but there are only {} levels (0..{})",
                    self.attention_levels,
                    self.levels(),
                    self.levels()
                ));
            }
            if self.attention_levels[..k].contains(&l) {
                return bad(format!("attention_levels = {:?} lists level {l} twice", self.attention_levels));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout = {} must be in [0, 1)", self.dropout));
        }
        Ok(())
    }

    /// Check the config, and that it fits `side` x `side` images: `side` must be divisible by
    /// `2^(levels-1)` so that every downsampled map upsamples back to the size of its skip.
    pub fn validate(&self, side: usize) -> Result<()> {
        self.check()?;
        let f = 1usize << (self.levels() - 1);
        if side == 0 || side % f != 0 {
            candle::bail!(
                "invalid UNet config for {side}x{side} images: the image side must be a positive multiple of \
                 2^(levels-1) = {f} (channel_mult = {:?} has {} levels)",
                self.channel_mult,
                self.levels()
            );
        }
        Ok(())
    }

    /// Every block, in construction order, with the resolution it runs at for `side` x `side` inputs.
    /// The skips (module docs) are pushed by `ConvIn`, every down `Res` (after its `Attn`) and every
    /// `Downsample`, and popped by the up `Res` blocks, whose inputs are `[h, skip]`.
    fn blocks(&self, side: usize) -> Vec<Block> {
        let temb = self.time_embed_dim;
        let mut out = vec![
            Block::TimeEmbed { sinusoidal: self.base_channels, dim: temb },
            Block::ConvIn { cin: self.in_channels, cout: self.base_channels, side },
        ];
        let mut side = side;
        let mut ch = self.base_channels;
        let mut skips = vec![ch];
        for i in 0..self.levels() {
            let w = self.level_channels(i);
            for j in 0..self.num_res_blocks {
                out.push(Block::Res { place: Place::Down(i), j, cin: ch, cout: w, temb, side });
                ch = w;
                if self.attention_levels.contains(&i) {
                    out.push(Block::Attn { place: Place::Down(i), j, c: ch, side });
                }
                skips.push(ch);
            }
            if i + 1 < self.levels() {
                side = side.div_ceil(2);
                out.push(Block::Downsample { level: i, c: ch, side });
                skips.push(ch);
            }
        }
        for j in 0..MID_RES_BLOCKS {
            out.push(Block::Res { place: Place::Mid, j, cin: ch, cout: ch, temb, side });
        }
        for i in (0..self.levels()).rev() {
            let w = self.level_channels(i);
            for j in 0..self.num_res_blocks + 1 {
                let skip = skips.pop().expect("one skip per up block");
                out.push(Block::Res { place: Place::Up(i), j, cin: ch + skip, cout: w, temb, side });
                ch = w;
                if self.attention_levels.contains(&i) {
                    out.push(Block::Attn { place: Place::Up(i), j, c: ch, side });
                }
            }
            if i > 0 {
                side *= 2;
                out.push(Block::Upsample { level: i, c: ch, side });
            }
        }
        debug_assert!(skips.is_empty());
        out.push(Block::Out { cin: ch, cout: self.out_channels, side });
        out
    }

    /// Every parameterised layer of [`UNetConfig::blocks`], in construction order.
    fn layers(&self, side: usize) -> Vec<Layer> {
        self.blocks(side).iter().flat_map(Block::layers).collect()
    }

    /// Number of trainable parameters, computed from the config alone (unet-s: 3,541,569).
    pub fn parameter_count(&self) -> usize {
        self.layers(1).iter().map(Layer::parameters).sum()
    }

    /// Forward FLOPs per `side` x `side` image: 2 × multiply-adds of convs, linears (including the
    /// time MLP, once per image) and attention matmuls, as PyTorch's FlopCounter counts them
    /// (unet-s at 32x32: 1.0155e9; FlopCounter: 1.016 GFLOP). Assumes `validate(side)` passes.
    pub fn flops_per_image(&self, side: usize) -> u64 {
        self.layers(side).iter().map(Layer::flops).sum()
    }
}

/// The residual blocks (and optional attention) of one level, and its resampling conv.
#[derive(Debug, Clone)]
struct Level<S> {
    res: Vec<ResBlock>,
    /// Empty, or one attention block per residual block.
    attn: Vec<AttentionBlock>,
    resample: Option<S>,
}

impl<S> Default for Level<S> {
    fn default() -> Self {
        Level { res: Vec::new(), attn: Vec::new(), resample: None }
    }
}

impl<S> Level<S> {
    fn res_attn(&self, j: usize, x: &Tensor, temb: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.res[j].forward(x, temb, train)?;
        match self.attn.get(j) {
            Some(a) => a.forward(&h),
            None => Ok(h),
        }
    }
}

/// The time-conditioned DDPM UNet; see the module docs for the architecture and checkpoint keys.
#[derive(Debug, Clone)]
pub struct UNet {
    cfg: UNetConfig,
    time_embed: TimeEmbedding,
    conv_in: Conv2d,
    down: Vec<Level<Downsample>>,
    mid: Vec<ResBlock>,
    /// Indexed by level, like `down` (run in reverse).
    up: Vec<Level<Upsample>>,
    out_norm: GroupNorm,
    out_conv: Conv2d,
}

impl UNet {
    /// Build the network of `cfg`, creating (seeded init) or loading its variables through `vb`: one
    /// module per [`Block`] of the config, named by its place (module docs).
    pub fn new(cfg: &UNetConfig, vb: VarBuilder) -> Result<Self> {
        cfg.check()?;
        let pad1 = Conv2dConfig { padding: 1, ..Default::default() };
        let g = cfg.norm_groups;
        let mut down: Vec<Level<Downsample>> = (0..cfg.levels()).map(|_| Level::default()).collect();
        let mut up: Vec<Level<Upsample>> = (0..cfg.levels()).map(|_| Level::default()).collect();
        let (mut time_embed, mut conv_in, mut mid, mut out) = (None, None, Vec::new(), None);
        let at = |place: Place| match place {
            Place::Down(i) => vb.pp("down").pp(i),
            Place::Mid => vb.pp("mid"),
            Place::Up(i) => vb.pp("up").pp(i),
        };
        // The side does not change what is built; 1 keeps every block's side positive.
        for block in cfg.blocks(1) {
            match block {
                Block::TimeEmbed { sinusoidal, dim } => {
                    let c = TimeEmbeddingConfig { sinusoidal_dim: sinusoidal, embed_dim: dim };
                    time_embed = Some(TimeEmbedding::new(&c, vb.pp("time_embed"))?);
                }
                Block::ConvIn { cin, cout, .. } => {
                    conv_in = Some(conv2d(cin, cout, 3, pad1, vb.pp("conv_in"))?)
                }
                Block::Res { place, j, cin, cout, temb, .. } => {
                    let c = ResBlockConfig {
                        in_channels: cin,
                        out_channels: cout,
                        temb_dim: temb,
                        norm_groups: g,
                        dropout: cfg.dropout,
                    };
                    let r = ResBlock::new(&c, at(place).pp("res").pp(j))?;
                    match place {
                        Place::Down(i) => down[i].res.push(r),
                        Place::Mid => mid.push(r),
                        Place::Up(i) => up[i].res.push(r),
                    }
                }
                Block::Attn { place, j, c, .. } => {
                    let a = AttentionBlock::new(
                        &AttentionConfig { channels: c, norm_groups: g },
                        at(place).pp("attn").pp(j),
                    )?;
                    match place {
                        Place::Down(i) => down[i].attn.push(a),
                        Place::Mid => candle::bail!("UNet: no attention in the middle"),
                        Place::Up(i) => up[i].attn.push(a),
                    }
                }
                Block::Downsample { level, c, .. } => {
                    down[level].resample = Some(Downsample::new(c, at(Place::Down(level)).pp("downsample"))?);
                }
                Block::Upsample { level, c, .. } => {
                    up[level].resample = Some(Upsample::new(c, at(Place::Up(level)).pp("upsample"))?);
                }
                Block::Out { cin, cout, .. } => {
                    let norm = group_norm(g, cin, NORM_EPS, vb.pp("out").pp("norm"))?;
                    out = Some((norm, conv2d(cin, cout, 3, pad1, vb.pp("out").pp("conv"))?));
                }
            }
        }
        let (Some(time_embed), Some(conv_in), Some((out_norm, out_conv))) = (time_embed, conv_in, out) else {
            candle::bail!("UNet: the block list lacks the time embedding, conv_in or the output block")
        };
        Ok(UNet { cfg: cfg.clone(), time_embed, conv_in, down, mid, up, out_norm, out_conv })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }

    /// The network's output for `x` `(B, in_channels, H, W)` (H and W multiples of `2^(levels-1)`)
    /// and one timestep per sample `t` `(B,)` (u32; converted to `x`'s dtype for the embedding).
    /// Returns `(B, out_channels, H, W)`. `train` only matters for dropout (see
    /// [`UNetConfig::dropout`]).
    ///
    /// On the CPU a batch of at least two images per worker thread runs as one share per thread
    /// ([`crate::shards`]): each share through the whole network on its own thread, the outputs
    /// concatenated in batch order. The images do not interact, so the output equals the whole
    /// batch's to f32 rounding, and gradients flow back through the concatenation.
    pub fn forward_t(&self, x: &Tensor, t: &Tensor, train: bool) -> Result<Tensor> {
        let b = x.dim(0)?;
        if !x.device().is_cpu() {
            return self.forward_whole(x, t, train);
        }
        let parts = shards::shares_here(b);
        if parts.len() <= 1 {
            return self.forward_whole(x, t, train);
        }
        check_timesteps(t, b)?;
        let outs = shards::run(&parts, |r| {
            self.forward_whole(&x.narrow(0, r.start, r.len())?, &t.narrow(0, r.start, r.len())?, train)
        })
        .map_err(candle::Error::wrap)?;
        Tensor::cat(&outs.into_iter().collect::<Result<Vec<_>>>()?, 0)
    }

    /// [`Self::forward_t`] of the whole batch on the calling thread's pool.
    fn forward_whole(&self, x: &Tensor, t: &Tensor, train: bool) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let f = 1usize << (self.cfg.levels() - 1);
        if c != self.cfg.in_channels {
            candle::bail!(
                "UNet: input has {c} channels, the config's in_channels is {}",
                self.cfg.in_channels
            );
        }
        if h == 0 || w == 0 || h % f != 0 || w % f != 0 {
            candle::bail!("UNet: input side {h}x{w} is not a positive multiple of 2^(levels-1) = {f}");
        }
        check_timesteps(t, b)?;
        if train && self.cfg.dropout > 0.0 {
            candle::bail!(
                "UNet: training with dropout = {} is not supported yet (no seeded dropout); set dropout = 0.0",
                self.cfg.dropout
            );
        }
        let temb = self.time_embed.forward(t, x.dtype())?;
        let mut h = self.conv_in.forward(x)?;
        let mut skips = vec![h.clone()];
        for level in &self.down {
            for j in 0..level.res.len() {
                h = level.res_attn(j, &h, &temb, train)?;
                skips.push(h.clone());
            }
            if let Some(down) = &level.resample {
                h = down.forward(&h)?;
                skips.push(h.clone());
            }
        }
        for block in &self.mid {
            h = block.forward(&h, &temb, train)?;
        }
        for level in self.up.iter().rev() {
            for j in 0..level.res.len() {
                let skip = skips.pop().expect("one skip per up block");
                h = level.res_attn(j, &Tensor::cat(&[&h, &skip], 1)?, &temb, train)?;
            }
            if let Some(up) = &level.resample {
                h = up.forward(&h)?;
            }
        }
        self.out_conv.forward(&self.out_norm.forward_silu(&h)?)
    }
}

/// `t` must hold one timestep per sample of a batch of `b`; checked before the batch is split into
/// shares as well as in each share's pass.
fn check_timesteps(t: &Tensor, b: usize) -> Result<()> {
    if t.dims() != [b] {
        candle::bail!("UNet: expected one timestep per sample, shape ({b},), got {:?}", t.dims());
    }
    Ok(())
}

impl Denoiser for UNet {
    /// Evaluation mode (`train = false`).
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        self.forward_t(x_t, t, false)
    }
}

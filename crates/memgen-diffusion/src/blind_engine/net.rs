//! One thread's forward and backward pass over its share of the batch: the network as a list of
//! steps ([`plan`]), buffers for every activation and gradient of the share ([`Workspace`]), and the
//! batch-norm exchanges with the other threads.

use super::ops::{self, fit, Epilogue, Part, PartGrad};
use super::sync::Exchange;
use super::Params;
use crate::blind::BlindConfig;
use memgen_kernels::{planes, Float};
use std::mem::take;

/// Where a step reads from: the network input, the activation of conv k, the pooled output of
/// encoder block b, or the upsampled input of decoder block b.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Src {
    Input,
    Act(usize),
    Pool(usize),
    Up(usize),
}

/// One step of the forward pass, in order; the backward pass runs them in reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Conv k (the k-th of [`BlindConfig`]'s convolutions) with its norm and ReLU, reading the
    /// concatenation of `srcs` along channels.
    Conv { k: usize, srcs: Vec<Src> },
    /// 2x2 average pool of conv k's activation, the output of encoder block b.
    Pool { b: usize, k: usize },
    /// Transposed conv of decoder block b from conv k's activation (one level below).
    Up { b: usize, k: usize },
}

/// The steps of the blind UNet of `cfg`, as `BlindUNet::forward_t` runs them: encoder blocks (each
/// ending in a pool), the middle block, then each decoder block: up, conv on [up, skip], convs.
pub(crate) fn plan(cfg: &BlindConfig) -> Vec<Step> {
    let (nb, nc) = (cfg.num_blocks, cfg.convs_per_block);
    let (mut steps, mut k, mut skip) = (Vec::new(), 0, vec![0; nb]);
    let mut conv = |steps: &mut Vec<Step>, srcs: Vec<Src>| {
        steps.push(Step::Conv { k, srcs });
        k += 1;
        k - 1
    };
    let mut last = 0;
    for (b, skip_b) in skip.iter_mut().enumerate() {
        for l in 0..nc {
            let src = match (b, l) {
                (_, l) if l > 0 => Src::Act(last),
                (0, _) => Src::Input,
                _ => Src::Pool(b - 1),
            };
            last = conv(&mut steps, vec![src]);
        }
        *skip_b = last;
        steps.push(Step::Pool { b, k: last });
    }
    for l in 0..nc {
        let src = if l > 0 { Src::Act(last) } else { Src::Pool(nb - 1) };
        last = conv(&mut steps, vec![src]);
    }
    for b in (0..nb).rev() {
        steps.push(Step::Up { b, k: last });
        for l in 0..nc {
            let srcs = if l == 0 { vec![Src::Up(b), Src::Act(skip[b])] } else { vec![Src::Act(last)] };
            last = conv(&mut steps, srcs);
        }
    }
    steps
}

/// The parameters with what every thread derives from them once per call.
pub(crate) struct Prepared<'a, T> {
    pub p: &'a Params<T>,
    pub plan: Vec<Step>,
    /// Per conv, the input-gradient kernel of [`ops::flip_kernel`] (training only).
    pub flips: Vec<Vec<T>>,
    /// Per conv, the scale applied before its ReLU in evaluation: gain / running_sd with a norm,
    /// ones for a ReLU alone, `None` for neither.
    pub eval_scale: Vec<Option<Vec<T>>>,
}

impl<'a, T: Float> Prepared<'a, T> {
    pub fn new(p: &'a Params<T>, train: bool) -> Self {
        let flips = if train {
            p.convs.iter().map(|c| ops::flip_kernel(&c.weight, c.c_out, c.c_in)).collect()
        } else {
            Vec::new()
        };
        let eval_scale = p
            .convs
            .iter()
            .map(|c| match &c.bn {
                Some(bn) => Some(bn.gain.iter().zip(&bn.running_sd).map(|(&g, &r)| g / r).collect()),
                None => c.relu.then(|| vec![T::one(); c.c_out]),
            })
            .collect();
        Prepared { p, plan: plan(&p.cfg), flips, eval_scale }
    }

    /// Channels of a source.
    fn channels(&self, src: Src) -> usize {
        let cfg = &self.p.cfg;
        match src {
            Src::Input => cfg.in_channels,
            Src::Act(k) => self.p.convs[k].c_out,
            Src::Pool(b) | Src::Up(b) => cfg.base_channels << b,
        }
    }

    /// Side of a source's images at input side `side`.
    fn side(&self, src: Src, side: usize) -> usize {
        match src {
            Src::Input => side,
            Src::Act(k) => side >> self.p.convs[k].level,
            Src::Pool(b) => side >> (b + 1),
            Src::Up(b) => side >> b,
        }
    }
}

/// What one thread knows of the call.
pub(crate) struct Ctx<'a, T> {
    pub prep: &'a Prepared<'a, T>,
    pub ex: &'a Exchange,
    pub tid: usize,
    /// Images of each thread's share (all threads), and of this pass of this thread (its share, or
    /// in evaluation a chunk of it).
    pub shares: &'a [usize],
    pub n: usize,
    pub side: usize,
    pub train: bool,
}

impl<T> Ctx<'_, T> {
    fn batch(&self) -> usize {
        self.shares.iter().sum()
    }
}

/// The batch statistics of one norm layer in a training pass: mean and std per channel (f64, over
/// the whole batch) and the scale gain / sd that was applied.
#[derive(Default)]
pub(crate) struct BnState<T> {
    pub mean: Vec<f64>,
    pub sd: Vec<f64>,
    pub scale: Vec<T>,
}

/// Activations of a share, channel-major (see `ops`): the input, and per conv its pre-norm output
/// `z` (training) and activation `a`, per block the pooled and the upsampled tensors.
#[derive(Default)]
struct Acts<T> {
    input: Vec<T>,
    target: Vec<T>,
    z: Vec<Vec<T>>,
    a: Vec<Vec<T>>,
    pool: Vec<Vec<T>>,
    up: Vec<Vec<T>>,
}

impl<T> Acts<T> {
    fn get(&self, src: Src) -> &[T] {
        match src {
            Src::Input => &self.input,
            Src::Act(k) => &self.a[k],
            Src::Pool(b) => &self.pool[b],
            Src::Up(b) => &self.up[b],
        }
    }
}

/// Gradients with respect to the activations, with whether each was written yet in this backward
/// pass (the first writer overwrites, later ones add).
#[derive(Default)]
struct GradBufs<T> {
    a: Vec<(Vec<T>, bool)>,
    pool: Vec<(Vec<T>, bool)>,
    up: Vec<(Vec<T>, bool)>,
}

impl<T> GradBufs<T> {
    /// The gradient buffer of `src` (`None` for the input) and whether it is fresh.
    fn slot(&mut self, src: Src) -> Option<&mut (Vec<T>, bool)> {
        match src {
            Src::Input => None,
            Src::Act(k) => Some(&mut self.a[k]),
            Src::Pool(b) => Some(&mut self.pool[b]),
            Src::Up(b) => Some(&mut self.up[b]),
        }
    }
}

/// Per-thread parameter gradients of one training pass.
#[derive(Default)]
pub(crate) struct ParamGrads<T> {
    pub conv: Vec<Vec<T>>,
    /// Per conv: its norm's gain gradient (empty without a norm).
    pub gain: Vec<Vec<T>>,
    pub up: Vec<Vec<T>>,
}

/// Scratch space of the kernels and of the exchanges.
#[derive(Default)]
struct Scratch<T> {
    col: Vec<T>,
    tmp: Vec<T>,
    g: Vec<T>,
    mine: Vec<f64>,
    all: Vec<f64>,
    round: usize,
}

/// Everything one thread allocates, kept from call to call (buffers only grow).
#[derive(Default)]
pub struct Workspace<T> {
    acts: Acts<T>,
    grads: GradBufs<T>,
    scratch: Scratch<T>,
    pub(crate) bn: Vec<BnState<T>>,
    pub(crate) pgrad: ParamGrads<T>,
}

impl<T: Float> Workspace<T> {
    /// Sizes the per-layer lists for `p` (buffers themselves are sized by the passes).
    fn shape_for(&mut self, p: &Params<T>) {
        let (nconv, nb) = (p.convs.len(), p.cfg.num_blocks);
        let a = &mut self.acts;
        for v in [&mut a.z, &mut a.a, &mut self.pgrad.conv, &mut self.pgrad.gain] {
            v.resize_with(nconv, Vec::new);
        }
        for v in [&mut a.pool, &mut a.up, &mut self.pgrad.up] {
            v.resize_with(nb, Vec::new);
        }
        self.grads.a.resize_with(nconv, Default::default);
        self.grads.pool.resize_with(nb, Default::default);
        self.grads.up.resize_with(nb, Default::default);
        self.bn.resize_with(nconv, Default::default);
        self.scratch.round = 0;
    }

    /// Loads `n` images (NCHW, `c` channels of `p` pixels) as the channel-major input (and target).
    fn load(&mut self, x: &[T], target: Option<&[T]>, c: usize, p: usize, n: usize) {
        to_channel_major(x, c, p, n, &mut self.acts.input);
        if let Some(t) = target {
            to_channel_major(t, c, p, n, &mut self.acts.target);
        }
    }

    /// The network output of the last pass, written to `out` as NCHW.
    fn store(&self, last: usize, c: usize, p: usize, n: usize, out: &mut [T]) {
        let a = &self.acts.a[last];
        for i in 0..n {
            for ci in 0..c {
                out[(i * c + ci) * p..][..p].copy_from_slice(&a[(ci * n + i) * p..][..p]);
            }
        }
    }
}

/// `dst[c][i][q] = src[i][c][q]` for n images of c channels of p pixels.
fn to_channel_major<T: Float>(src: &[T], c: usize, p: usize, n: usize, dst: &mut Vec<T>) {
    fit(dst, c * n * p);
    for i in 0..n {
        for ci in 0..c {
            dst[(ci * n + i) * p..][..p].copy_from_slice(&src[(i * c + ci) * p..][..p]);
        }
    }
}

/// Runs one thread's part of a call on the images `x` (NCHW, this thread's share) and writes the
/// network output to `out`; in training with a `target` also runs the backward pass of the loss
/// Σ (f(y) − target)² / batch and returns this share's Σ (f(y) − target)².
pub(crate) fn run<T: Float>(
    ctx: &Ctx<'_, T>,
    ws: &mut Workspace<T>,
    x: &[T],
    target: Option<&[T]>,
    out: &mut [T],
) -> f64 {
    let p = ctx.prep.p;
    let (c, px) = (p.cfg.in_channels, ctx.side * ctx.side);
    ws.shape_for(p);
    let last = p.convs.len() - 1;
    if !ctx.train {
        let share = ctx.shares[ctx.tid];
        let per = (super::EVAL_PIXELS / px).clamp(1, share.max(1));
        for i0 in (0..share).step_by(per) {
            let n = per.min(share - i0);
            let sub = Ctx { n, ..*ctx };
            ws.load(&x[i0 * c * px..(i0 + n) * c * px], None, c, px, n);
            forward(&sub, ws);
            ws.store(last, c, px, n, &mut out[i0 * c * px..(i0 + n) * c * px]);
        }
        return 0.0;
    }
    ws.load(x, target, c, px, ctx.n);
    forward(ctx, ws);
    ws.store(last, c, px, ctx.n, out);
    if target.is_none() {
        return 0.0;
    }
    let loss = output_grad(ctx, ws, last);
    backward(ctx, ws);
    loss
}

/// The forward pass of `ctx.n` images from `ws`'s input.
fn forward<T: Float>(ctx: &Ctx<'_, T>, ws: &mut Workspace<T>) {
    for step in &ctx.prep.plan {
        match step {
            Step::Conv { k, srcs } => conv_forward(ctx, ws, *k, srcs),
            Step::Pool { b, k } => {
                let s = ctx.prep.side(Src::Act(*k), ctx.side);
                let out = &mut ws.acts.pool[*b];
                fit(out, ws.acts.a[*k].len() / 4);
                planes::pool2x2(&ws.acts.a[*k], s, out);
            }
            Step::Up { b, k } => {
                let (c, o) = (ctx.prep.channels(Src::Act(*k)), ctx.prep.channels(Src::Up(*b)));
                let s = ctx.prep.side(Src::Act(*k), ctx.side);
                let out = &mut ws.acts.up[*b];
                fit(out, o * ctx.n * 4 * s * s);
                ops::up_fwd(&ctx.prep.p.ups[*b], c, o, &ws.acts.a[*k], ctx.n, s, out, &mut ws.scratch.tmp);
            }
        }
    }
}

/// Conv k: in evaluation z·(gain / running_sd) and ReLU fused into the GEMM's chunks; in training
/// the raw output z, then [`normalize`].
fn conv_forward<T: Float>(ctx: &Ctx<'_, T>, ws: &mut Workspace<T>, k: usize, srcs: &[Src]) {
    let cp = &ctx.prep.p.convs[k];
    let s = ctx.side >> cp.level;
    let raw = ctx.train && (cp.bn.is_some() || cp.relu);
    let mut out = take(if raw { &mut ws.acts.z[k] } else { &mut ws.acts.a[k] });
    fit(&mut out, cp.c_out * ctx.n * s * s);
    let parts: Vec<Part<'_, T>> =
        srcs.iter().map(|&src| Part { data: ws.acts.get(src), channels: ctx.prep.channels(src) }).collect();
    let post = match ctx.train {
        true => Epilogue { scale: None, relu: false },
        false => Epilogue { scale: ctx.prep.eval_scale[k].as_deref(), relu: cp.relu },
    };
    ops::conv3x3_fwd(&cp.weight, cp.c_out, &parts, ctx.n, s, &mut out, &mut ws.scratch.col, post);
    if raw {
        ws.acts.z[k] = out;
        normalize(ctx, ws, k);
    } else {
        ws.acts.a[k] = out;
    }
}

/// Training-mode norm and ReLU of conv k: `a = max(z · gain / sd, 0)` with sd = sqrt(Var(z) + eps)
/// per channel over the whole batch (population variance about the batch mean, the mean itself not
/// subtracted), from all threads' moments combined in thread order (Chan et al.:
/// M2 = Σ_t M2_t + n_t (mean_t − mean)²). Without a norm: `a = max(z, 0)`.
fn normalize<T: Float>(ctx: &Ctx<'_, T>, ws: &mut Workspace<T>, k: usize) {
    let cp = &ctx.prep.p.convs[k];
    let z = &ws.acts.z[k];
    let a = &mut ws.acts.a[k];
    fit(a, z.len());
    let width = z.len() / cp.c_out;
    let Some(bn) = &cp.bn else {
        planes::scale_relu(z, a, width, 0, width, &vec![T::one(); cp.c_out], true);
        return;
    };
    let sc = &mut ws.scratch;
    sc.mine.clear();
    sc.mine.resize(2 * cp.c_out, 0.0);
    let (sums, m2) = sc.mine.split_at_mut(cp.c_out);
    planes::row_moments(z, width, sums, m2);
    ctx.ex.gather(ctx.tid, &mut sc.round, &sc.mine, &mut sc.all);
    let st = &mut ws.bn[k];
    let px = (width / ctx.n) as f64;
    let total = ctx.batch() as f64 * px;
    let o = cp.c_out;
    st.mean.clear();
    st.sd.clear();
    st.scale.clear();
    for ch in 0..o {
        let part = |t: usize, which: usize| sc.all[t * 2 * o + which * o + ch];
        let mean = (0..ctx.shares.len()).map(|t| part(t, 0)).sum::<f64>() / total;
        let m2: f64 = (0..ctx.shares.len())
            .map(|t| {
                let nt = ctx.shares[t] as f64 * px;
                part(t, 1) + nt * (part(t, 0) / nt - mean).powi(2)
            })
            .sum();
        let sd = (m2 / total + ctx.prep.p.cfg.bn_eps).sqrt();
        st.mean.push(mean);
        st.sd.push(sd);
        st.scale.push(bn.gain[ch] / T::from_f64(sd));
    }
    planes::scale_relu(z, a, width, 0, width, &st.scale, cp.relu);
}

/// The gradient of Σ (f − target)² / batch at the output, `2 (f − target) / batch`, into the last
/// conv's activation gradient; returns this share's Σ (f − target)² in f64.
fn output_grad<T: Float>(ctx: &Ctx<'_, T>, ws: &mut Workspace<T>, last: usize) -> f64 {
    let (f, t) = (&ws.acts.a[last], &ws.acts.target);
    let slot = &mut ws.grads.a[last];
    fit(&mut slot.0, f.len());
    slot.1 = false;
    let scale = T::from_f64(2.0 / ctx.batch() as f64);
    let mut loss = 0.0;
    for ((g, &f), &t) in slot.0.iter_mut().zip(f).zip(t) {
        let d = f - t;
        loss += d.as_f64() * d.as_f64();
        *g = d * scale;
    }
    loss
}

/// The backward pass: every step in reverse, from the activation gradients the later steps wrote.
fn backward<T: Float>(ctx: &Ctx<'_, T>, ws: &mut Workspace<T>) {
    let g = &mut ws.grads;
    let last = g.a.len() - 1;
    for (i, slot) in g.a.iter_mut().chain(g.pool.iter_mut()).chain(g.up.iter_mut()).enumerate() {
        slot.1 = i != last;
    }
    for step in ctx.prep.plan.iter().rev() {
        match step {
            Step::Conv { k, srcs } => {
                norm_backward(ctx, ws, *k);
                conv_backward(ctx, ws, *k, srcs);
            }
            Step::Pool { b, k } => {
                let s = ctx.prep.side(Src::Act(*k), ctx.side);
                let (dout, _) = take(&mut ws.grads.pool[*b]);
                with_grad(&mut ws.grads, Src::Act(*k), ws.acts.a[*k].len(), |dx, acc| {
                    planes::pool2x2_backward(&dout, s, dx, acc)
                });
                ws.grads.pool[*b] = (dout, false);
            }
            Step::Up { b, k } => up_backward(ctx, ws, *b, *k),
        }
    }
}

/// Runs `f(dx, accumulate)` on the gradient buffer of `src` (sized `len` when fresh), then marks it
/// written.
fn with_grad<T: Float>(g: &mut GradBufs<T>, src: Src, len: usize, f: impl FnOnce(&mut [T], bool)) {
    if let Some((buf, fresh)) = g.slot(src) {
        if *fresh {
            fit(buf, len);
        }
        f(buf, !*fresh);
        *fresh = false;
    }
}

/// Turns conv k's activation gradient into the gradient of its raw output z, in place. With a
/// norm (y = z·s, s = gain/sd, then ReLU): dy = g·[y ≥ 0], A = Σ_batch dy·z (exchanged),
/// dgain = A / sd, dz = dy·s − gain·A·(z − mean) / (N·sd³) (N values per channel; the mean's own
/// dependence on z cancels). Without a norm: dz = g·[z ≥ 0] after a ReLU, g otherwise.
fn norm_backward<T: Float>(ctx: &Ctx<'_, T>, ws: &mut Workspace<T>, k: usize) {
    let cp = &ctx.prep.p.convs[k];
    if cp.bn.is_none() && !cp.relu {
        return;
    }
    let (z, g) = (&ws.acts.z[k], &mut ws.grads.a[k].0);
    let width = z.len() / cp.c_out;
    let o = cp.c_out;
    let sc = &mut ws.scratch;
    sc.mine.clear();
    sc.mine.resize(o, 0.0);
    let Some(bn) = &cp.bn else {
        planes::relu_mask_dot(g, z, width, &vec![T::one(); o], true, &mut sc.mine);
        return;
    };
    let st = &ws.bn[k];
    planes::relu_mask_dot(g, z, width, &st.scale, cp.relu, &mut sc.mine);
    ctx.ex.gather(ctx.tid, &mut sc.round, &sc.mine, &mut sc.all);
    let total = (ctx.batch() * (width / ctx.n)) as f64;
    let dgain = &mut ws.pgrad.gain[k];
    let (mut coef, mut mean) = (Vec::with_capacity(o), Vec::with_capacity(o));
    dgain.clear();
    for ch in 0..o {
        let a: f64 = (0..ctx.shares.len()).map(|t| sc.all[t * o + ch]).sum();
        let sd = st.sd[ch];
        dgain.push(T::from_f64(a / sd));
        coef.push(T::from_f64(bn.gain[ch].as_f64() * a / (total * sd * sd * sd)));
        mean.push(T::from_f64(st.mean[ch]));
    }
    planes::norm_input_grad(g, z, width, &st.scale, &coef, &mean);
}

/// Backward of conv k given dz in its activation-gradient buffer: weight gradient, and the input
/// gradients of its sources (through the patches of dz; through the patches of x when no source
/// needs a gradient).
fn conv_backward<T: Float>(ctx: &Ctx<'_, T>, ws: &mut Workspace<T>, k: usize, srcs: &[Src]) {
    let cp = &ctx.prep.p.convs[k];
    let s = ctx.side >> cp.level;
    let (dz, _) = take(&mut ws.grads.a[k]);
    let dw = &mut ws.pgrad.conv[k];
    fit(dw, cp.weight.len());
    let sc = &mut ws.scratch;
    if srcs.iter().all(|&s| s == Src::Input) {
        let parts: Vec<Part<'_, T>> = srcs
            .iter()
            .map(|&src| Part { data: ws.acts.get(src), channels: ctx.prep.channels(src) })
            .collect();
        ops::conv3x3_wgrad(cp.c_out, &parts, ctx.n, s, &dz, &mut sc.col, dw);
    } else {
        let mut dxs: Vec<Option<(Vec<T>, bool)>> =
            srcs.iter().map(|&src| ws.grads.slot(src).map(take)).collect();
        let mut parts: Vec<PartGrad<'_, T>> = srcs
            .iter()
            .zip(dxs.iter_mut())
            .map(|(&src, dx)| {
                let x = Part { data: ws.acts.get(src), channels: ctx.prep.channels(src) };
                let dx = dx.as_mut().map(|(buf, fresh)| {
                    if *fresh {
                        fit(buf, x.data.len());
                    }
                    (&mut buf[..], !*fresh)
                });
                PartGrad { x, dx }
            })
            .collect();
        ops::conv3x3_bwd(&ctx.prep.flips[k], cp.c_out, &mut parts, ctx.n, s, &dz, &mut sc.col, &mut sc.g, dw);
        drop(parts);
        for (&src, dx) in srcs.iter().zip(dxs) {
            if let (Some(slot), Some((buf, _))) = (ws.grads.slot(src), dx) {
                *slot = (buf, false);
            }
        }
    }
    ws.grads.a[k] = (dz, false);
}

/// Backward of decoder block b's transposed conv (from conv k's activation).
fn up_backward<T: Float>(ctx: &Ctx<'_, T>, ws: &mut Workspace<T>, b: usize, k: usize) {
    let (c, o) = (ctx.prep.channels(Src::Act(k)), ctx.prep.channels(Src::Up(b)));
    let s = ctx.prep.side(Src::Act(k), ctx.side);
    let (mut dout, _) = take(&mut ws.grads.up[b]);
    let dw = &mut ws.pgrad.up[b];
    fit(dw, c * o * 4);
    let (x, tmp) = (&ws.acts.a[k], &mut ws.scratch.tmp);
    let w = &ctx.prep.p.ups[b];
    with_grad(&mut ws.grads, Src::Act(k), x.len(), |dx, acc| {
        ops::up_bwd(w, c, o, x, ctx.n, s, &mut dout, Some((dx, acc)), dw, tmp)
    });
    ws.grads.up[b] = (dout, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_of_the_tiny_network() {
        use Src::*;
        let steps = plan(&BlindConfig::tiny());
        let conv = |k, srcs: Vec<Src>| Step::Conv { k, srcs };
        assert_eq!(
            steps,
            vec![
                conv(0, vec![Input]),
                conv(1, vec![Act(0)]),
                Step::Pool { b: 0, k: 1 },
                conv(2, vec![Pool(0)]),
                conv(3, vec![Act(2)]),
                Step::Pool { b: 1, k: 3 },
                conv(4, vec![Pool(1)]),
                conv(5, vec![Act(4)]),
                Step::Up { b: 1, k: 5 },
                conv(6, vec![Up(1), Act(3)]),
                conv(7, vec![Act(6)]),
                Step::Up { b: 0, k: 7 },
                conv(8, vec![Up(0), Act(1)]),
                conv(9, vec![Act(8)]),
            ]
        );
    }
}

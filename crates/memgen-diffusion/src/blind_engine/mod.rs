//! A whole-network CPU engine for the blind, bias-free UNet ([`crate::blind::BlindUNet`]): the
//! forward pass (training or evaluation mode) and the backward pass of the blind training loss
//! L = Σ (f(y) − target)² / B, on plain slices, without Candle's per-op overhead.
//!
//! The batch of B images is split into one share per thread (contiguous, near-equal sizes; see
//! [`shares`]). Each thread runs the whole network over its share on its own buffers
//! ([`Workspace`], kept from call to call), with single-threaded GEMMs: activations are
//! channel-major over the share, so each 3x3 convolution is one GEMM `W · patches(x)` cut into
//! chunks that keep the patch matrix in cache (module `ops`). The threads meet only where the
//! network couples the images of a batch:
//!
//! * each training-mode batch norm (y = z · gain / sd, sd = sqrt(Var_batch(z) + eps)) exchanges the
//!   per-channel moments (Σ z, Σ (z − mean_t)²) of every share in its forward pass, and Σ dy·z in
//!   its backward pass;
//! * the parameter gradients of the shares are summed once at the end.
//!
//! Every sum across threads is taken in thread order, in f64 for the batch statistics, so a given
//! thread count gives the same bits on every run; different thread counts differ by f32 rounding.
//! Running statistics are not touched here: a training pass returns the batch std of every norm,
//! and the caller updates running_sd ← (1 − m)·running_sd + m·sd as `BfBatchNorm` does.

mod net;
mod ops;
mod sync;

pub use net::Workspace;

use crate::blind::BlindConfig;
use memgen_kernels::Float;

/// Pixels (at the input side) of one evaluation-mode pass of a thread: a share is run in chunks of
/// this many pixels' worth of images (16 images at 16x16), so that the activations stay in cache.
/// (Training passes run the whole share at once: the norms need batch statistics.)
const EVAL_PIXELS: usize = 4096;

/// A bias-free batch norm's parameters, per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct BnParams<T> {
    pub gain: Vec<T>,
    pub running_sd: Vec<T>,
}

/// One 3x3 convolution (padding 1, no bias) with the norm and ReLU that follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvParams<T> {
    pub c_in: usize,
    pub c_out: usize,
    /// Resolution level: the image side divided by 2^level.
    pub level: usize,
    /// Shape (c_out, c_in, 3, 3), row-major.
    pub weight: Vec<T>,
    pub bn: Option<BnParams<T>>,
    pub relu: bool,
}

/// The network's parameters in the engine's layout: the convolutions in the order of
/// `BlindConfig`'s layer list (encoder blocks, middle, decoder blocks from the bottom up) and the
/// transposed-conv kernels `ups[b]` of shape (c_{b+1}, c_b, 2, 2) (indexed by the level they
/// upsample to).
#[derive(Debug, Clone, PartialEq)]
pub struct Params<T> {
    pub cfg: BlindConfig,
    pub convs: Vec<ConvParams<T>>,
    pub ups: Vec<Vec<T>>,
}

impl<T: Float> Params<T> {
    /// Checks every length against the config.
    fn check(&self) -> candle::Result<()> {
        let specs = self.cfg.convs();
        let bad = |what: String| Err(candle::Error::Msg(format!("blind engine: {what}")));
        if specs.len() != self.convs.len() || self.ups.len() != self.cfg.num_blocks {
            return bad(format!(
                "{} convs and {} ups do not fit the config",
                self.convs.len(),
                self.ups.len()
            ));
        }
        for (k, (c, s)) in self.convs.iter().zip(&specs).enumerate() {
            let fits = (c.c_in, c.c_out, c.level, c.relu, c.bn.is_some())
                == (s.c_in, s.c_out, s.level, s.relu, s.bn)
                && c.weight.len() == c.c_in * c.c_out * 9
                && c.bn.as_ref().is_none_or(|b| b.gain.len() == c.c_out && b.running_sd.len() == c.c_out);
            if !fits {
                return bad(format!("conv {k} does not fit the config"));
            }
        }
        for (b, w) in self.ups.iter().enumerate() {
            if w.len() != (self.cfg.base_channels << (b + 1)) * (self.cfg.base_channels << b) * 4 {
                return bad(format!("up {b} has {} weights", w.len()));
            }
        }
        Ok(())
    }
}

/// A forward pass: the network output f(y) (NCHW) and, in training mode, the batch std of every
/// norm (per conv, `None` for convs without a norm), in f64 as computed.
#[derive(Debug, Clone)]
pub struct Forward<T> {
    pub output: Vec<T>,
    pub batch_sd: Vec<Option<Vec<f64>>>,
}

/// A training pass: the loss L = Σ (f(y) − target)² / B, the forward pass, and dL/dθ for every
/// parameter, laid out as [`Params`] (`gain[k]` is `None` for convs without a norm).
#[derive(Debug, Clone)]
pub struct Gradients<T> {
    pub loss: f64,
    pub forward: Forward<T>,
    pub conv: Vec<Vec<T>>,
    pub gain: Vec<Option<Vec<T>>>,
    pub up: Vec<Vec<T>>,
}

/// The images of each thread's share of a batch of `batch` on `threads` threads: min(threads,
/// batch) shares of near-equal size, the first ones one image longer.
pub fn shares(batch: usize, threads: usize) -> Vec<usize> {
    crate::shards::split(batch, threads, 1).into_iter().map(|r| r.len()).collect()
}

/// The engine: one [`Workspace`] per thread, reused from call to call.
pub struct Engine<T> {
    threads: usize,
    workspaces: Vec<Workspace<T>>,
}

impl<T: Float> Engine<T> {
    /// An engine that runs on `threads` threads (at least 1; at most one per image of a batch).
    pub fn new(threads: usize) -> Self {
        Engine { threads: threads.max(1), workspaces: Vec::new() }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// f(y) for `batch` images y (NCHW, `in_channels` x `side` x `side`) in training mode (batch
    /// statistics, returned) or evaluation mode (running stds).
    pub fn forward(
        &mut self,
        p: &Params<T>,
        y: &[T],
        batch: usize,
        side: usize,
        train: bool,
    ) -> candle::Result<Forward<T>> {
        let (out, _, sds) = self.call(p, y, None, batch, side, train)?;
        Ok(Forward { output: out, batch_sd: sds })
    }

    /// A training-mode forward and backward pass of L = Σ (f(y) − target)² / B.
    pub fn train(
        &mut self,
        p: &Params<T>,
        y: &[T],
        target: &[T],
        batch: usize,
        side: usize,
    ) -> candle::Result<Gradients<T>> {
        if target.len() != y.len() {
            candle::bail!("blind engine: target has {} values, the input {}", target.len(), y.len());
        }
        let (output, loss, batch_sd) = self.call(p, y, Some(target), batch, side, true)?;
        let nt = shares(batch, self.threads).len();
        let ws = &self.workspaces[..nt];
        let sum = |get: &dyn Fn(&Workspace<T>) -> &Vec<T>| -> Vec<T> {
            let mut acc = get(&ws[0]).clone();
            for w in &ws[1..] {
                acc.iter_mut().zip(get(w)).for_each(|(a, &b)| *a += b);
            }
            acc
        };
        let conv = (0..p.convs.len()).map(|k| sum(&|w| &w.pgrad.conv[k])).collect();
        let up = (0..p.ups.len()).map(|b| sum(&|w| &w.pgrad.up[b])).collect();
        let gain = p
            .convs
            .iter()
            .enumerate()
            .map(|(k, c)| c.bn.as_ref().map(|_| ws[0].pgrad.gain[k].clone()))
            .collect();
        Ok(Gradients { loss: loss / batch as f64, forward: Forward { output, batch_sd }, conv, gain, up })
    }

    /// Runs every thread's share; returns the output, Σ (f − target)² and the batch stds.
    #[allow(clippy::type_complexity)]
    fn call(
        &mut self,
        p: &Params<T>,
        y: &[T],
        target: Option<&[T]>,
        batch: usize,
        side: usize,
        train: bool,
    ) -> candle::Result<(Vec<T>, f64, Vec<Option<Vec<f64>>>)> {
        p.check()?;
        p.cfg.validate(side)?;
        let per = p.cfg.in_channels * side * side;
        if batch == 0 || y.len() != batch * per {
            candle::bail!("blind engine: {} values are not {batch} images of {per}", y.len());
        }
        let shares = shares(batch, self.threads);
        if self.workspaces.len() < shares.len() {
            self.workspaces.resize_with(shares.len(), Default::default);
        }
        let prep = net::Prepared::new(p, train);
        let ex = sync::Exchange::new(shares.len());
        let mut output = vec![T::zero(); y.len()];
        let losses =
            run_threads(&prep, &ex, &shares, &mut self.workspaces, (y, target, &mut output), side, train);
        let batch_sd = match train {
            true => self.workspaces[0]
                .bn
                .iter()
                .zip(&p.convs)
                .map(|(st, c)| c.bn.as_ref().map(|_| st.sd.clone()))
                .collect(),
            false => vec![None; p.convs.len()],
        };
        Ok((output, losses.iter().sum(), batch_sd))
    }
}

/// The input, the target and the output of a call.
type Io<'a, T> = (&'a [T], Option<&'a [T]>, &'a mut [T]);

/// Runs [`net::run`] for every share, share 0 on this thread and the others on scoped threads;
/// returns each share's Σ (f − target)² in thread order.
fn run_threads<T: Float>(
    prep: &net::Prepared<'_, T>,
    ex: &sync::Exchange,
    shares: &[usize],
    workspaces: &mut [Workspace<T>],
    (y, target, output): Io<'_, T>,
    side: usize,
    train: bool,
) -> Vec<f64> {
    let per = prep.p.cfg.in_channels * side * side;
    let mut jobs = Vec::with_capacity(shares.len());
    let (mut y, mut target, mut output) = (y, target, output);
    for (tid, (ws, &n)) in workspaces.iter_mut().zip(shares).enumerate() {
        let (y_t, y_rest) = y.split_at(n * per);
        let (t_t, t_rest) = match target {
            Some(t) => {
                let (a, b) = t.split_at(n * per);
                (Some(a), Some(b))
            }
            None => (None, None),
        };
        let (o_t, o_rest) = std::mem::take(&mut output).split_at_mut(n * per);
        (y, target, output) = (y_rest, t_rest, o_rest);
        let ctx = net::Ctx { prep, ex, tid, shares, n, side, train };
        jobs.push((ctx, ws, y_t, t_t, o_t));
    }
    let job = |(ctx, ws, y, t, o): (net::Ctx<'_, T>, &mut Workspace<T>, &[T], Option<&[T]>, &mut [T])| {
        let _poison = sync::PoisonOnPanic(&ex.barrier);
        net::run(&ctx, ws, y, t, o)
    };
    let mut jobs = jobs.into_iter();
    let first = jobs.next().expect("at least one share");
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs.map(|j| s.spawn(move || job(j))).collect();
        let mut losses = vec![job(first)];
        for h in handles {
            losses.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        losses
    })
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_cover_the_batch_in_near_equal_parts() {
        assert_eq!(shares(5, 2), vec![3, 2]);
        assert_eq!(shares(1, 2), vec![1]);
        assert_eq!(shares(128, 2), vec![64, 64]);
        assert_eq!(shares(7, 3), vec![3, 2, 2]);
        assert_eq!(shares(4, 0), vec![4]);
    }
}

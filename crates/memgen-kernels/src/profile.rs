//! Optional accounting of the time spent in each kernel, for `memgen model bench --profile`.
//!
//! Off by default (one relaxed atomic load per kernel call); [`enable`] turns it on, [`report`]
//! reads the totals since the last [`reset`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The kernels that are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    ConvForward,
    ConvBackward,
    NormForward,
    NormBackward,
    Upsample,
}

impl Kernel {
    pub const ALL: [Kernel; 5] = [
        Kernel::ConvForward,
        Kernel::ConvBackward,
        Kernel::NormForward,
        Kernel::NormBackward,
        Kernel::Upsample,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::ConvForward => "conv2d forward",
            Kernel::ConvBackward => "conv2d backward",
            Kernel::NormForward => "group norm (+SiLU) forward",
            Kernel::NormBackward => "group norm (+SiLU) backward",
            Kernel::Upsample => "upsample forward + backward",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
static CALLS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
static LAYERS: Mutex<Vec<LayerTime>> = Mutex::new(Vec::new());

/// Time of one kind of layer (one kernel on one shape) since the last [`reset`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTime {
    pub kernel: Kernel,
    /// The shape, e.g. `conv 3x3 s1 32->64 32x32 b64`.
    pub shape: String,
    pub seconds: f64,
    pub calls: u64,
    /// Floating-point operations of all calls (a multiply-add counts 2).
    pub flops: f64,
}

/// Turns the accounting on or off.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Clears the totals.
pub fn reset() {
    for k in 0..Kernel::ALL.len() {
        NANOS[k].store(0, Ordering::Relaxed);
        CALLS[k].store(0, Ordering::Relaxed);
    }
    LAYERS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Per-shape totals since the last reset, slowest first.
pub fn layers() -> Vec<LayerTime> {
    let mut v = LAYERS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    v
}

/// `(kernel, seconds, calls)` since the last reset.
pub fn report() -> Vec<(Kernel, f64, u64)> {
    Kernel::ALL
        .iter()
        .enumerate()
        .map(|(i, &k)| (k, NANOS[i].load(Ordering::Relaxed) as f64 * 1e-9, CALLS[i].load(Ordering::Relaxed)))
        .collect()
}

/// Runs `f`, adding its wall time to `kernel` when the accounting is on.
#[inline]
pub(crate) fn timed<R>(kernel: Kernel, f: impl FnOnce() -> R) -> R {
    timed_layer(kernel, || None, f)
}

/// [`timed`], also adding the time to the layer `shape()` returns (`(shape, flops)`), if any.
#[inline]
pub(crate) fn timed_layer<R>(
    kernel: Kernel,
    shape: impl FnOnce() -> Option<(String, f64)>,
    f: impl FnOnce() -> R,
) -> R {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let t0 = Instant::now();
    let r = f();
    let nanos = t0.elapsed().as_nanos() as u64;
    let i = kernel as usize;
    NANOS[i].fetch_add(nanos, Ordering::Relaxed);
    CALLS[i].fetch_add(1, Ordering::Relaxed);
    if let Some((shape, flops)) = shape() {
        add_layer(kernel, shape, nanos as f64 * 1e-9, flops);
    }
    r
}

fn add_layer(kernel: Kernel, shape: String, seconds: f64, flops: f64) {
    let mut layers = LAYERS.lock().unwrap_or_else(|e| e.into_inner());
    match layers.iter_mut().find(|l| l.kernel == kernel && l.shape == shape) {
        Some(l) => {
            l.seconds += seconds;
            l.calls += 1;
            l.flops += flops;
        }
        None => layers.push(LayerTime { kernel, shape, seconds, calls: 1, flops }),
    }
}

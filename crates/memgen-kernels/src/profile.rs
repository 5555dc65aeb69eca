//! Optional accounting of the time spent in each kernel, for `memgen model bench --profile`.
//!
//! Off by default (one relaxed atomic load per kernel call); [`enable`] turns it on, [`report`]
//! reads the totals since the last [`reset`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let t0 = Instant::now();
    let r = f();
    let i = kernel as usize;
    NANOS[i].fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    CALLS[i].fetch_add(1, Ordering::Relaxed);
    r
}

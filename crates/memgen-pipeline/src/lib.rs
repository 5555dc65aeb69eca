//! memgen-pipeline: the sample and compare stages of memgen as library calls.
//!
//! * [`sample`]: draw images from a trained run, or from a baseline denoiser of a training subset (the
//!   empirical optimal denoiser, the Gaussian denoiser), with explicit noise, and write them with
//!   their [`sample::SamplesRecord`] (samples.json); the rule for reusing samples already on disk.
//! * [`compare`]: two models' samples of the same noise scored against both training sets
//!   ([`compare::CompareRecord`], compare.json) and one model's samples against its own
//!   ([`compare::MemorizationRecord`], memorization.json), with their CSV tables and figures.
//!
//! The command line (`memgen sample`, `memgen compare`, `memgen memorization`) turns its flags into
//! these calls; `memgen run` reads the records they write back through the same types.

pub mod compare;
mod error;
pub mod sample;

pub use error::{Error, Result};

/// The number of worker threads in effect (`RAYON_NUM_THREADS`, else all cores), as the records
/// write it.
pub fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

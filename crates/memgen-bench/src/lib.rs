//! memgen-bench: how fast memgen runs on this machine and thread count.
//!
//! - [`nets`]: a network's training steps (forward + backward + AdamW) and sampler steps (one eval
//!   forward) on random data, in images/s and achieved GFLOP/s, optionally with the time in each
//!   memgen kernel and per conv layer shape ([`memgen_kernels::profile`]).
//! - [`gemm`]: the reference f32 GEMM rate, the best any GEMM-bound stage can reach.
//! - [`search`]: the exact nearest-neighbour search of [`memgen_metrics::search`].
//! - [`linear`]: the linear baseline's analysis of one Gaussian training set, stage by stage.
//! - [`report`]: the typed [`BenchReport`] that `memgen bench --save` writes and its text tables.
//!
//! Absolute numbers depend on the machine, so speed targets are ratios against PyTorch measured
//! side by side on the same machine and threads: scripts/bench-vs-torch.py alternates
//! `memgen bench --only nets --save FILE` with its PyTorch twin and reads
//! `networks[0].train_images_per_s` and `forward_images_per_s` from the saved report.

pub mod error;
pub mod gemm;
pub mod linear;
pub mod nets;
pub mod report;
pub mod run;
pub mod search;

pub use error::{Error, Result};
pub use gemm::GemmResult;
pub use linear::LinearBench;
pub use nets::{BenchResult, KernelTime, LayerProfile, NetResult, NetSpec};
pub use report::BenchReport;
pub use run::{run, BenchConfig};
pub use search::SearchBench;

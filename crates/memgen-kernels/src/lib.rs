//! memgen-kernels: fast CPU kernels for the layers that dominate memgen's networks, wired into
//! Candle as custom ops with their own backward.
//!
//! Candle 0.11's CPU conv2d builds its patch matrix with a scalar copy and computes the input
//! gradient with a direct `conv_transpose2d` loop; its GroupNorm, SiLU and broadcast adds are chains
//! of separate ops whose backward runs `sum_keepdim` reductions. The layers here replace them on the
//! CPU (f32 and f64) and fall back to Candle's own ops on other devices:
//!
//! - [`Conv2d`]: `y[b, o] = Σ_{c, i, j} w[o, c, i, j] · x[b, c, s·y + i − p, s·x + j − p] + bias`,
//!   computed per group of images as one GEMM over packed patches (im2col), except the forward of
//!   stride-1 same-size convs in f32, which is a direct convolution in registers (AVX-512 or AVX2 +
//!   FMA); weight gradient as one GEMM per group, input gradient as a GEMM followed by col2im. The
//!   bias may be per channel `(O,)` or per sample and channel `(B, O)`, which folds a broadcast time
//!   embedding into the conv.
//! - [`GroupNorm`]: `y = γ_c (x − μ_g) / sqrt(σ²_g + ε) + β_c`, optionally followed by
//!   `SiLU(y) = y · sigmoid(y)` in the same pass, with a fused backward.
//! - [`conv_transpose2x2`]: the 2x2, stride-2 transposed conv of the blind UNet's decoder, one
//!   GEMM per image.
//! - [`adamw_update`]: the AdamW step of one parameter in one pass.
//! - [`upsample_nearest2x`]: nearest ×2 upsampling whose backward sums each 2x2 block (and adds to
//!   the input's gradient like any other op).
//! - [`planes`]: single-threaded slice kernels on channel-major activations (3x3 patch packing,
//!   2x2 pooling and transposed-conv spreading, batch-norm moments, scale + ReLU and their
//!   backward) for whole-network engines that run one share of a batch per thread.
//!
//! Reductions run over a fixed partition of the batch into one part per thread, summed in part
//! order, so results are bit-identical for a given thread count.

mod adamw;
mod conv;
mod conv_transpose;
mod elem;
mod ema;
pub mod gemm;
mod im2col;
mod norm;
pub mod planes;
pub mod profile;
mod scratch;
mod storage;
mod upsample;

pub use adamw::{adamw_update, AdamWStep};
pub use conv::{conv2d, conv2d_no_bias, Conv2d};
pub use conv_transpose::conv_transpose2x2;
pub use elem::Float;
pub use ema::ema_update;
pub use norm::{group_norm, GroupNorm};
pub use upsample::upsample_nearest2x;

thread_local! {
    static STOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether `MEMGEN_STOCK_KERNELS=1` is set: every layer then uses Candle's own ops (for A/B checks).
fn stock_from_env() -> bool {
    static ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENV.get_or_init(|| std::env::var("MEMGEN_STOCK_KERNELS").is_ok_and(|v| v == "1"))
}

/// Runs `f` with every layer of this crate built on Candle's own ops instead of the fast kernels,
/// on this thread: the reference for end-to-end comparisons.
pub fn with_stock_kernels<R>(f: impl FnOnce() -> R) -> R {
    let before = STOCK.with(|s| s.replace(true));
    let r = f();
    STOCK.with(|s| s.set(before));
    r
}

/// Whether this thread runs inside [`with_stock_kernels`].
pub fn stock_kernels() -> bool {
    STOCK.with(|s| s.get())
}

/// Runs `f` inside [`with_stock_kernels`] when `stock`, else as it is: carries a caller's
/// [`stock_kernels`] onto the thread that runs part of its work.
pub fn with_kernel_mode<R>(stock: bool, f: impl FnOnce() -> R) -> R {
    if stock {
        with_stock_kernels(f)
    } else {
        f()
    }
}

/// Whether the fast CPU path handles `t`: a CPU tensor of dtype f32 or f64, outside
/// [`with_stock_kernels`] and without `MEMGEN_STOCK_KERNELS=1`.
pub fn is_fast_path(t: &candle::Tensor) -> bool {
    t.device().is_cpu()
        && matches!(t.dtype(), candle::DType::F32 | candle::DType::F64)
        && !STOCK.with(|s| s.get())
        && !stock_from_env()
}

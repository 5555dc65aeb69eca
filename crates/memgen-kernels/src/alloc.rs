//! Allocator settings for training loops.
//!
//! Every Candle op allocates its output, and a training step of a UNet allocates and frees
//! hundreds of megabytes in tensors of a few megabytes each. glibc's malloc hands such blocks back
//! to the kernel when they are freed (`mmap` above a threshold, heap trimming above another), so
//! the next step takes a page fault for every 4 KiB page again: 5-10% of a step on a 2-core
//! machine. [`keep_freed_memory`] raises both thresholds so that freed blocks are reused.

/// Keeps freed blocks of up to 32 MiB (glibc's largest mmap threshold) inside the process for
/// reuse instead of returning them to the kernel. Call it once at program start; it affects only
/// glibc targets and does nothing elsewhere. Returns whether the settings were applied.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes malloc's tuning parameters; it is safe to call at any time.
        unsafe {
            let mmap = libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024 * 1024);
            let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            mmap == 1 && trim == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

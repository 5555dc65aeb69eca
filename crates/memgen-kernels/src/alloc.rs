//! Allocator settings for training loops.
//!
//! Every Candle op allocates its output, and a training step of a UNet allocates and frees
//! hundreds of megabytes in tensors of a few megabytes each. glibc's malloc hands such blocks back
//! to the kernel when they are freed (`mmap` above a threshold, heap trimming above another), so
//! the next step takes a page fault for every 4 KiB page again: 5-10% of a step on a 2-core
//! machine. [`keep_freed_memory`] raises both thresholds so that freed blocks are reused, and
//! keeps every thread on the main arena: a thread's own arena lives in heaps of at most 64 MiB that
//! glibc shrinks and unmaps as they empty, so a network run on worker threads (batch shards, or
//! the whole command on a rayon worker) faulted its activations in anew at every step (about
//! 100,000 faults per unet-s 32x32 batch-64 training step and forward, against none on the main
//! arena).

/// Keeps freed blocks of up to 32 MiB (glibc's largest mmap threshold) inside the process for
/// reuse instead of returning them to the kernel, and has every thread allocate from the main
/// arena. Call it once at program start, before other threads exist; it affects only glibc
/// targets and does nothing elsewhere. Returns whether the settings were applied.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes malloc's tuning parameters; it is safe to call at any time.
        unsafe {
            let mmap = libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024 * 1024);
            let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            let arenas = libc::mallopt(libc::M_ARENA_MAX, 1);
            mmap == 1 && trim == 1 && arenas == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

//! The process's allocator: mimalloc, with freed memory kept mapped for reuse.
//!
//! Every Candle op allocates its output, and a training step of a UNet allocates and frees hundreds
//! of megabytes in tensors of a few megabytes each, from every batch shard's thread at once.
//! - glibc's malloc either gives each thread an arena of its own, whose heaps of at most 64 MiB it
//!   unmaps as they empty (so a network run on worker threads faulted its activations in anew at
//!   every step: about 100,000 page faults per unet-s 32x32 batch-64 step), or, with one arena for
//!   all threads, makes the shards queue for that arena's lock at every allocation.
//! - mimalloc keeps a heap per thread with no shared lock on the common path. By default it
//!   returns ("purges") unused memory to the kernel after 10 ms; [`keep_freed_memory`] turns that
//!   off, so a step reuses the pages of the one before. The process then keeps its peak footprint
//!   mapped, as glibc did with a raised trim threshold.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`enum mi_option_e` in `mimalloc.h`, v3): the delay in
/// milliseconds before unused memory is returned to the kernel, -1 for never. Read from
/// `MIMALLOC_PURGE_DELAY` when the process starts (the test below checks the index that way).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped for reuse instead of returning it to the kernel. Call it at program
/// start, before the first large allocation.
pub fn keep_freed_memory() {
    // SAFETY: mi_option_set only changes one of mimalloc's tuning parameters.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a child process started with `MIMALLOC_PURGE_DELAY=4321`, the option at
    /// [`MI_OPTION_PURGE_DELAY`] reads 4321: the index names the purge delay.
    #[test]
    fn the_option_index_is_the_purge_delay() {
        const CHILD: &str = "MEMGEN_ALLOC_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            // SAFETY: mi_option_get only reads an option.
            let v = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
            assert_eq!(v, 4321, "option {MI_OPTION_PURGE_DELAY} is not mimalloc's purge delay");
            return;
        }
        let exe = std::env::current_exe().expect("the test binary's path");
        let out = std::process::Command::new(exe)
            .args(["--exact", "alloc::tests::the_option_index_is_the_purge_delay", "--nocapture"])
            .env(CHILD, "1")
            .env("MIMALLOC_PURGE_DELAY", "4321")
            .output()
            .expect("could not start the test binary");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "child run failed:\n{text}");
    }
}

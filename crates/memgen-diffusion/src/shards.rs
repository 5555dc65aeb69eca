//! Batch shards: a batch split into one contiguous share per worker thread, each share taken
//! through the whole network (forward, and for training backward) on its own thread with
//! single-threaded kernels.
//!
//! Every conv, norm and elementwise op of a multi-threaded pass splits its work over the threads
//! and waits for all of them before the next op. On small maps (a 16x16 UNet at batch 32) an op
//! lasts 50-250 µs, so the split, the wake-ups and the wait cost as much as the second thread
//! gains. With one share per thread the threads meet once per pass: the images of a batch do not
//! interact in a UNet (GroupNorm normalises each image on its own), so a share's output and its
//! loss gradient need nothing from the other shares. Training sums the shares' gradients once per
//! step, in share order.
//!
//! Each share runs inside its own one-thread rayon pool, so every kernel that sizes its work by
//! `rayon::current_num_threads()` runs single-threaded there. The shares of a batch depend only on
//! its size and the thread count, so the same seed and thread count give the same bits.

use std::ops::Range;
use std::sync::{Arc, Mutex};

/// The smallest share worth a thread: below this many images the per-pass cost of a thread
/// (handing the share over, the scheduler) outweighs what it saves.
pub const MIN_SHARE: usize = 2;

/// The shares of a batch of `b` images over `threads` threads: [`split`] with shares of at least
/// [`MIN_SHARE`] images.
pub fn shares(b: usize, threads: usize) -> Vec<Range<usize>> {
    split(b, threads, MIN_SHARE)
}

/// `b` images in contiguous ranges, in batch order, one per thread of `threads` but each of at
/// least `min` images: sizes within one of each other, the first ones larger. One range (the whole
/// batch) when the batch is too small to split. The blind engine splits its batches with `min` 1.
pub fn split(b: usize, threads: usize, min: usize) -> Vec<Range<usize>> {
    let n = threads.min(b / min.max(1)).max(1);
    let (q, r) = (b / n, b % n);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let len = q + usize::from(i < r);
            start += len;
            start - len..start
        })
        .collect()
}

/// The shares of a batch of `b` images over the threads of the calling context
/// (`rayon::current_num_threads()`: the global pool, or the pool the caller runs in).
pub fn shares_here(b: usize) -> Vec<Range<usize>> {
    shares(b, rayon::current_num_threads())
}

/// Makes Candle's own elementwise thread pool serial unless `CANDLE_NUM_THREADS` is set; returns
/// whether it did. Call it at program start, before the first Candle op and before other threads
/// exist (it sets an environment variable, which Candle reads once, when it builds that pool).
///
/// Candle runs each elementwise op of 64Ki elements or more on a pool of its own (sized by
/// `CANDLE_NUM_THREADS`, else `RAYON_NUM_THREADS`, else the cores), one op at a time under a lock,
/// and its workers spin after every op. Inside batch shards such ops come from every shard at
/// once: they queue for that lock while the spinning workers take the cores from the shards. The
/// shards already keep every core busy, so these ops run serially inside each share.
pub fn serial_candle_ops() -> bool {
    if std::env::var_os("CANDLE_NUM_THREADS").is_some() {
        return false;
    }
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    true
}

/// Stack size of a shard thread: a main thread's, for autograd's recursive walk of deep graphs.
pub const STACK_BYTES: usize = 8 << 20;

/// One single-thread rayon pool per share index, built on first use and kept for the process.
static POOLS: Mutex<Vec<Arc<rayon::ThreadPool>>> = Mutex::new(Vec::new());

/// The first `n` shard pools.
fn pools(n: usize) -> std::io::Result<Vec<Arc<rayon::ThreadPool>>> {
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    while pools.len() < n {
        let i = pools.len();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .stack_size(STACK_BYTES)
            .thread_name(move |_| format!("memgen-shard-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        pools.push(Arc::new(pool));
    }
    Ok(pools[..n].to_vec())
}

/// Runs `job` on every share, share `i` on shard pool `i` (one thread, so the kernels inside run
/// single-threaded), all shares at once; returns the results in share order. A single share runs
/// on the calling thread as it is. A panic in a share is resumed on the caller. Shares run in the
/// caller's kernel mode ([`memgen_kernels::with_stock_kernels`] reaches them).
pub fn run<R: Send>(
    parts: &[Range<usize>],
    job: impl Fn(Range<usize>) -> R + Sync,
) -> std::io::Result<Vec<R>> {
    if parts.len() <= 1 {
        return Ok(parts.iter().map(|r| job(r.clone())).collect());
    }
    let pools = pools(parts.len())?;
    let stock = memgen_kernels::stock_kernels();
    let job = &|r: Range<usize>| memgen_kernels::with_kernel_mode(stock, || job(r));
    // A caller outside rayon's pools runs share 0's hand-over itself and sleeps until it is done.
    // A rayon worker would wait for it the way workers wait, spinning for work on a core that a
    // share needs, so from a worker every share is handed over from a thread of its own and the
    // worker sleeps in `join`.
    let own = usize::from(rayon::current_thread_index().is_none());
    Ok(std::thread::scope(|s| {
        let handles: Vec<_> = parts[own..]
            .iter()
            .zip(&pools[own..])
            .map(|(r, pool)| s.spawn(move || pool.install(|| job(r.clone()))))
            .collect();
        let first = (own == 1).then(|| pools[0].install(|| job(parts[0].clone())));
        let rest = handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        first.into_iter().chain(rest).collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_in_order_in_near_equal_parts() {
        assert_eq!(shares(32, 2), vec![0..16, 16..32]);
        assert_eq!(shares(7, 3), vec![0..3, 3..5, 5..7]);
        assert_eq!(shares(5, 4), vec![0..3, 3..5]); // at least MIN_SHARE images each
        assert_eq!(shares(3, 2), vec![0..3]);
        assert_eq!(shares(1, 8), vec![0..1]);
        assert_eq!(shares(0, 2), vec![0..0]);
        assert_eq!(shares(9, 1), vec![0..9]);
    }

    #[test]
    fn every_share_runs_on_a_one_thread_pool_and_results_keep_share_order() {
        let parts = shares(12, 3);
        let check = || {
            let out =
                run(&parts, |r| (r, rayon::current_num_threads(), std::thread::current().id())).unwrap();
            assert_eq!(out.iter().map(|o| o.0.clone()).collect::<Vec<_>>(), parts);
            assert!(out.iter().all(|o| o.1 == 1), "kernels inside a share must see one thread");
            let ids: std::collections::HashSet<_> = out.iter().map(|o| o.2).collect();
            assert_eq!(ids.len(), 3, "each share has its own thread");
        };
        // From a thread outside rayon's pools, then from a worker of one.
        check();
        rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(check);
    }

    #[test]
    fn shares_run_in_the_callers_kernel_mode() {
        let parts = shares(6, 3);
        let modes = || run(&parts, |_| memgen_kernels::stock_kernels()).unwrap();
        assert_eq!(memgen_kernels::with_stock_kernels(modes), vec![true; 3]);
        assert_eq!(modes(), vec![false; 3]);
    }

    #[test]
    #[should_panic(expected = "share 1 failed")]
    fn a_panic_in_a_share_reaches_the_caller() {
        let _ = run(&shares(4, 2), |r| assert!(r.start == 0, "share 1 failed"));
    }
}

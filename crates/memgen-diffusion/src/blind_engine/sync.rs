//! What the engine's threads share while they run: a barrier and an exchange of per-thread partial
//! sums (the only cross-thread data of a pass besides the final weight-gradient sum).
//!
//! [`Exchange::gather`] is an all-gather: every thread posts its partials, waits at the barrier, and
//! reads all threads' partials in thread order, so every thread folds them in the same order and
//! gets the same bits. Two slot sets alternate between consecutive exchanges: a thread that is
//! still reading exchange k cannot have its slots overwritten, since exchange k + 1 writes the other
//! set and exchange k + 2 needs that thread at the barrier of k + 1 first.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Spins this many times before yielding the CPU while waiting (a few microseconds: exchanges are
/// frequent and short, but a machine busy with other work must not be starved by spinning).
const SPINS: usize = 4096;

/// A reusable barrier for a fixed number of threads that spins, then yields. If a thread panics
/// (see [`PoisonOnPanic`]), the threads waiting at it panic too instead of waiting forever.
pub(crate) struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    pub fn new(threads: usize) -> Self {
        SpinBarrier {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Blocks until all threads have called `wait` for this generation.
    pub fn wait(&self) {
        let gen = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0;
        while self.generation.load(Ordering::Acquire) == gen {
            assert!(!self.poisoned.load(Ordering::Relaxed), "blind engine: another thread panicked");
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Marks the barrier poisoned when dropped during a panic.
pub(crate) struct PoisonOnPanic<'a>(pub &'a SpinBarrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Relaxed);
        }
    }
}

/// The barrier and the exchange slots of one engine call.
pub(crate) struct Exchange {
    pub barrier: SpinBarrier,
    slots: [Vec<Mutex<Vec<f64>>>; 2],
}

impl Exchange {
    pub fn new(threads: usize) -> Self {
        let set = || (0..threads).map(|_| Mutex::new(Vec::new())).collect();
        Exchange { barrier: SpinBarrier::new(threads), slots: [set(), set()] }
    }

    /// Posts `mine` as thread `tid`'s partials of exchange number `*round` (which it then advances)
    /// and returns all threads' partials concatenated in thread order (all the same length).
    pub fn gather(&self, tid: usize, round: &mut usize, mine: &[f64], all: &mut Vec<f64>) {
        let set = &self.slots[*round % 2];
        *round += 1;
        {
            let mut slot = set[tid].lock().unwrap_or_else(|e| e.into_inner());
            slot.clear();
            slot.extend_from_slice(mine);
        }
        self.barrier.wait();
        all.clear();
        for slot in set {
            all.extend_from_slice(&slot.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_sees_all_partials_in_thread_order_every_round() {
        let ex = Exchange::new(3);
        std::thread::scope(|s| {
            for tid in 0..3 {
                let ex = &ex;
                s.spawn(move || {
                    let (mut round, mut all) = (0, Vec::new());
                    for r in 0..200 {
                        ex.gather(tid, &mut round, &[(tid * 1000 + r) as f64, 1.0], &mut all);
                        let want: Vec<f64> = (0..3).flat_map(|t| [(t * 1000 + r) as f64, 1.0]).collect();
                        assert_eq!(all, want, "round {r}");
                    }
                });
            }
        });
    }
}

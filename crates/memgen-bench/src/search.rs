//! Throughput of the exact nearest-neighbour search ([`memgen_metrics::search`]), for benchmark tables.

use crate::Result;
use memgen_metrics::{search, Images, Metric, SearchConfig};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One timing of [`search`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchBench {
    pub metric: Metric,
    pub queries: usize,
    pub base: usize,
    pub dim: usize,
    pub k: usize,
    /// Best wall time of the timed repetitions.
    pub seconds: f64,
    /// 2·M·N·d (the inner products) per second, in GFLOP/s; preparation, candidate upkeep and the
    /// f64 refinement count as overhead.
    pub gflop_per_s: f64,
}

/// Time `search` for `queries` x `base` images of `dim` pixels (deterministic pseudo-random pixels in
/// [0, 1)) on the current rayon pool: the best of `reps` runs after one warm-up.
pub fn bench_search(
    queries: usize,
    base: usize,
    dim: usize,
    k: usize,
    metric: Metric,
    reps: usize,
) -> Result<SearchBench> {
    let q = pixels(queries * dim, 1);
    let b = pixels(base * dim, 2);
    let (qi, bi) = (Images::new(&q, dim)?, Images::new(&b, dim)?);
    let cfg = SearchConfig { k, metric, ..Default::default() };
    let mut best = f64::INFINITY;
    for rep in 0..=reps.max(1) {
        let t0 = Instant::now();
        let nn = search(&qi, &bi, &cfg)?;
        std::hint::black_box(&nn);
        if rep > 0 {
            best = best.min(t0.elapsed().as_secs_f64());
        }
    }
    let flops = 2.0 * queries as f64 * base as f64 * dim as f64;
    Ok(SearchBench { metric, queries, base, dim, k, seconds: best, gflop_per_s: flops / best / 1e9 })
}

/// The rows of `memgen bench`: M = 1000 32x32 images among N = 70,000, under each metric (k = 2 for
/// L2, whose memorization score needs the second neighbour).
pub fn reference() -> Result<Vec<SearchBench>> {
    [(Metric::Pearson, 1), (Metric::L2, 2), (Metric::Cosine, 1)]
        .into_iter()
        .map(|(metric, k)| bench_search(1000, 70_000, 1024, k, metric, 2))
        .collect()
}

/// `n` values in [0, 1) from a 64-bit LCG (speed does not depend on the values).
fn pixels(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_search_is_timed() {
        let r = bench_search(3, 20, 16, 2, Metric::L2, 1).unwrap();
        assert_eq!((r.queries, r.base, r.dim, r.k), (3, 20, 16, 2));
        assert!(r.seconds > 0.0 && r.gflop_per_s > 0.0, "{r:?}");
    }
}

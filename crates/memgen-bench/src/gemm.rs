//! Reference GEMM throughput of this machine, for benchmark tables: what the conv kernels (and
//! any other GEMM-bound stage) can reach at best.

use memgen_kernels::gemm::{matmul, View};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One reference GEMM measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmResult {
    pub what: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub gflop_per_s: f64,
}

/// GFLOP/s of the f32 product `C (m x n) = A (m x k) · B (k x n)` (all row-major) on the current
/// rayon pool's threads: the best of `reps` timed runs after one warm-up, counting `2·m·n·k` flops.
pub fn gemm_gflops(m: usize, n: usize, k: usize, reps: usize) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect();
    let mut c = vec![0f32; m * n];
    let threads = rayon::current_num_threads();
    let mut best = f64::INFINITY;
    for i in 0..=reps.max(1) {
        let t0 = Instant::now();
        matmul(m, n, k, &mut c, (n, 1), false, View::rows(&a, k), View::rows(&b, n), threads);
        if i > 0 {
            best = best.min(t0.elapsed().as_secs_f64());
        }
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}

/// The reference rows of `memgen bench`: a square product (the machine's reference, the first row)
/// and the shape of the nearest-neighbour search's core.
pub fn reference() -> Vec<GemmResult> {
    let shapes: [(&str, usize, usize, usize, usize); 2] = [
        ("square f32 GEMM (machine reference)", 2048, 2048, 2048, 3),
        ("NN-search GEMM core: 1000 queries x 70,000 images x 1024 pixels", 1000, 70_000, 1024, 1),
    ];
    shapes
        .into_iter()
        .map(|(what, m, n, k, reps)| GemmResult {
            what: what.into(),
            m,
            n,
            k,
            gflop_per_s: gemm_gflops(m, n, k, reps),
        })
        .collect()
}

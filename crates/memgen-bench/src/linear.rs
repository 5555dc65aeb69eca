//! Time of the linear baseline's analysis ([`memgen_linear::experiment::Fitted`]) of one Gaussian
//! training set: moments, eigendecomposition of Σ0, loss diagonals, and the DDPM sampler's exact
//! output distribution (T = 1000) with its KL to the truth.

use crate::Result;
use memgen_diffusion::sampler::{SamplerConfig, VarianceType};
use memgen_diffusion::DdpmSchedule;
use memgen_linear::experiment::Fitted;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One timing of the linear analysis (seconds per stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearBench {
    pub side: usize,
    pub d: usize,
    pub n: usize,
    pub moments_s: f64,
    pub eigen_s: f64,
    pub losses_s: f64,
    pub kl_s: f64,
    pub total_s: f64,
}

/// The analysis of N = 2d Gaussian images of `side` x `side` pixels (d = side²), in f64.
pub fn bench_linear(side: usize) -> Result<LinearBench> {
    let schedule = DdpmSchedule::new(&Default::default())?;
    let sampler = SamplerConfig::Ddpm { variance: VarianceType::Beta }.build(&schedule)?;
    let d = side * side;
    let n = 2 * d;
    let (rows, truth) = memgen_linear::problem::gaussian_data(&Default::default(), side, n)?;
    let t0 = Instant::now();
    let fitted = Fitted::new(&rows, &truth)?;
    let t_kl = Instant::now();
    fitted.kl(&truth, &schedule, sampler.as_ref(), Default::default())?;
    let kl_s = t_kl.elapsed().as_secs_f64();
    let t = &fitted.timing;
    Ok(LinearBench {
        side,
        d,
        n,
        moments_s: t.moments_s,
        eigen_s: t.eigen_s,
        losses_s: t.losses_s,
        kl_s,
        total_s: t0.elapsed().as_secs_f64(),
    })
}

/// The rows of `memgen bench`: 32x32 (d = 1024) and 80x80 (d = 6400).
pub fn reference() -> Result<Vec<LinearBench>> {
    [32, 80].into_iter().map(bench_linear).collect()
}

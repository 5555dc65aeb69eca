//! The whole benchmark of `memgen bench`: which parts to measure, and the loop that measures them.

use crate::report::{gemm_table, linear_table, nets_table, search_table};
use crate::{nets, BenchReport, NetSpec, Result};

/// What [`run`] measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchConfig {
    /// Networks to time (training and sampling); empty leaves the part out.
    pub nets: Vec<NetSpec>,
    /// Timed repetitions of each network measurement (after one warm-up); the median is reported.
    pub steps: usize,
    /// Also record the time in each memgen kernel and per conv layer shape.
    pub profile: bool,
    /// This machine's reference GEMM.
    pub gemm: bool,
    /// The nearest-neighbour search of 1000 32x32 images among 70,000.
    pub nn: bool,
    /// The linear baseline's analysis of one training set at d = 1024 and d = 6400.
    pub linear: bool,
}

impl BenchConfig {
    /// The default networks: unet-s at 32x32 batch 64 and at 80x80 batch 16.
    pub fn default_nets() -> Vec<NetSpec> {
        [(32, 64), (80, 16)].map(|(side, batch)| NetSpec { config: "unet-s".into(), side, batch }).into()
    }
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            nets: Self::default_nets(),
            steps: 3,
            profile: false,
            gemm: true,
            nn: true,
            linear: true,
        }
    }
}

/// Measure the parts of `cfg` in order (networks, GEMM, NN search, linear analysis), handing each
/// part's table to `on_table` as soon as it is measured; `threads` is recorded as the run's threads.
pub fn run(cfg: &BenchConfig, threads: usize, mut on_table: impl FnMut(&str)) -> Result<BenchReport> {
    let mut report = BenchReport::new(threads);
    if !cfg.nets.is_empty() {
        for spec in &cfg.nets {
            report.networks.push(nets::bench_net(spec, cfg.steps, threads, cfg.profile)?);
        }
        on_table(&nets_table(&report.networks));
    }
    if cfg.gemm {
        report.gemm = crate::gemm::reference();
        on_table(&gemm_table(&report.gemm));
    }
    if cfg.nn {
        report.nn_search = crate::search::reference()?;
        on_table(&search_table(&report.nn_search, report.peak_gflop_per_s()));
    }
    if cfg.linear {
        report.linear = crate::linear::reference()?;
        on_table(&linear_table(&report.linear));
    }
    Ok(report)
}

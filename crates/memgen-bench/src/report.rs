//! The record of `memgen bench` ([`BenchReport`], the JSON of `--save` and `--json`) and its text
//! tables (Markdown, as printed).

use crate::{GemmResult, LinearBench, NetResult, SearchBench};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Everything one `memgen bench` measured; a part left out is an empty list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The version of memgen that measured (every memgen crate has the workspace's version).
    pub memgen_version: String,
    /// Worker threads of the run.
    pub threads: usize,
    pub networks: Vec<NetResult>,
    /// The reference GEMM; the first row is the square product that the NN search is compared to.
    pub gemm: Vec<GemmResult>,
    pub nn_search: Vec<SearchBench>,
    pub linear: Vec<LinearBench>,
}

impl BenchReport {
    /// An empty report of this memgen version on `threads` threads.
    pub fn new(threads: usize) -> Self {
        BenchReport {
            memgen_version: env!("CARGO_PKG_VERSION").to_string(),
            threads,
            networks: Vec::new(),
            gemm: Vec::new(),
            nn_search: Vec::new(),
            linear: Vec::new(),
        }
    }

    /// The rate of the square reference GEMM, when it was measured.
    pub fn peak_gflop_per_s(&self) -> Option<f64> {
        self.gemm.first().map(|g| g.gflop_per_s)
    }

    /// All tables of the measured parts, in the order they are measured.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if !self.networks.is_empty() {
            out += &nets_table(&self.networks);
        }
        if !self.gemm.is_empty() {
            out += &gemm_table(&self.gemm);
        }
        if !self.nn_search.is_empty() {
            out += &search_table(&self.nn_search, self.peak_gflop_per_s());
        }
        if !self.linear.is_empty() {
            out += &linear_table(&self.linear);
        }
        out
    }
}

/// The networks' table (one row per network), then for each profiled network its kernel times and
/// conv layers by shape. Every line ends in a newline.
pub fn nets_table(nets: &[NetResult]) -> String {
    let mut s = String::new();
    let w = &mut s;
    line(w, "| network | side | batch | params | GFLOP/img | train img/s | train GFLOP/s | forward img/s | forward GFLOP/s | sampler steps/s |");
    line(w, "|---|---|---|---|---|---|---|---|---|---|");
    for n in nets {
        let r = &n.result;
        line(
            w,
            format_args!(
                "| {} | {} | {} | {} | {:.3} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
                n.config,
                r.side,
                r.batch_size,
                r.parameters,
                r.forward_gflop_per_image,
                r.train_images_per_s,
                r.train_gflop_per_s,
                r.forward_images_per_s,
                r.forward_gflop_per_s,
                r.sampler_steps_per_s
            ),
        );
    }
    for n in nets.iter().filter(|n| !n.result.kernel_profile.is_empty()) {
        let r = &n.result;
        line(
            w,
            format_args!(
                "\nkernel time, {} {}x{} batch {} ({} per step):",
                n.config,
                r.side,
                r.side,
                r.batch_size,
                if r.shards > 1 { "thread-seconds" } else { "seconds" }
            ),
        );
        if r.shards > 1 {
            line(
                w,
                format_args!(
                    "(the batch ran as {} shares, one per thread: times are summed over the threads, and \
                     the rest is {} x the step time minus that sum)",
                    r.shards, r.shards
                ),
            );
        }
        line(w, "| kernel | per training step | per forward |");
        line(w, "|---|---|---|");
        let (mut t, mut f) = (0.0, 0.0);
        for k in &r.kernel_profile {
            line(w, format_args!("| {} | {:.3} | {:.3} |", k.kernel, k.train_step_s, k.forward_s));
            t += k.train_step_s;
            f += k.forward_s;
        }
        line(
            w,
            format_args!(
                "| everything else (Candle ops, autograd, AdamW) | {:.3} | {:.3} |",
                r.shards as f64 * r.train_step_s - t,
                r.shards as f64 * r.forward_s - f
            ),
        );
        let per = if r.shards > 1 { "; a share's calls, so per thread" } else { "" };
        line(
            w,
            format_args!(
                "\nconv layers by shape (GFLOP/s: the GEMM work of the layer over its wall time{per}):"
            ),
        );
        line(w, "| phase | kernel | shape | calls per step | ms per step | GFLOP/s |");
        line(w, "|---|---|---|---|---|---|");
        for l in &r.layer_profile {
            line(
                w,
                format_args!(
                    "| {} | {} | {} | {:.0} | {:.1} | {:.1} |",
                    l.phase,
                    l.kernel,
                    l.shape,
                    l.calls_per_step,
                    l.seconds_per_step * 1e3,
                    l.gflop_per_s
                ),
            );
        }
    }
    s
}

/// The reference GEMM's table, after a blank line.
pub fn gemm_table(gemm: &[GemmResult]) -> String {
    let mut s = String::new();
    line(&mut s, "\n| GEMM | m x n x k | GFLOP/s |\n|---|---|---|");
    for g in gemm {
        line(&mut s, format_args!("| {} | {} x {} x {} | {:.1} |", g.what, g.m, g.n, g.k, g.gflop_per_s));
    }
    s
}

/// The nearest-neighbour search's table, after a blank line, each rate also as a share of `peak`
/// (the square GEMM's rate) when that was measured.
pub fn search_table(rows: &[SearchBench], peak: Option<f64>) -> String {
    let mut s = String::new();
    line(
        &mut s,
        "\n| NN search (exact) | M x N x d | k | seconds | GFLOP/s | of square GEMM |\n|---|---|---|---|---|---|",
    );
    for r in rows {
        let share = peak.map_or("-".into(), |p| format!("{:.0}%", 100.0 * r.gflop_per_s / p));
        line(
            &mut s,
            format_args!(
                "| {:?} | {} x {} x {} | {} | {:.2} | {:.1} | {share} |",
                r.metric, r.queries, r.base, r.dim, r.k, r.seconds, r.gflop_per_s
            ),
        );
    }
    s
}

/// The linear analysis' table, after a blank line.
pub fn linear_table(rows: &[LinearBench]) -> String {
    let mut s = String::new();
    line(&mut s, "\n| linear analysis (f64) | N | moments s | eigen s | losses s | exact ρ_N + KL s | total s |\n|---|---|---|---|---|---|---|");
    for r in rows {
        line(
            &mut s,
            format_args!(
                "| {}x{} (d = {}) | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.side, r.side, r.d, r.n, r.moments_s, r.eigen_s, r.losses_s, r.kl_s, r.total_s
            ),
        );
    }
    s
}

/// Append `text` and a newline.
fn line(out: &mut String, text: impl std::fmt::Display) {
    let _ = writeln!(out, "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BenchResult, KernelTime, LayerProfile};
    use memgen_metrics::Metric;

    fn net(config: &str, side: usize, profiled: bool) -> NetResult {
        let (kernel_profile, layer_profile) = if profiled {
            (
                vec![KernelTime { kernel: "conv2d".into(), train_step_s: 0.25, forward_s: 0.125 }],
                vec![LayerProfile {
                    phase: "train".into(),
                    kernel: "conv2d".into(),
                    shape: "64x32x3x3 @ 16x16".into(),
                    calls_per_step: 3.0,
                    seconds_per_step: 0.1,
                    gflop_per_s: 42.5,
                }],
            )
        } else {
            (Vec::new(), Vec::new())
        };
        NetResult {
            config: config.into(),
            result: BenchResult {
                parameters: 1234,
                forward_gflop_per_image: 0.1 + side as f64,
                batch_size: 8,
                side,
                threads: 2,
                shards: 1,
                train_step_s: 0.5,
                train_images_per_s: 16.0,
                train_gflop_per_s: 1.0 / 3.0,
                forward_s: 0.2,
                forward_images_per_s: 40.0,
                forward_gflop_per_s: 7.1,
                sampler_steps_per_s: 5.0,
                kernel_profile,
                layer_profile,
            },
        }
    }

    fn report() -> BenchReport {
        BenchReport {
            networks: vec![
                net("unet-s", 32, true),
                net("blind-tiny", 16, false),
                net("models/x.toml", 8, false),
            ],
            gemm: vec![GemmResult { what: "square".into(), m: 2, n: 3, k: 4, gflop_per_s: 100.0 }],
            nn_search: vec![SearchBench {
                metric: Metric::L2,
                queries: 10,
                base: 20,
                dim: 16,
                k: 2,
                seconds: 0.01,
                gflop_per_s: 0.1 + 0.2,
            }],
            linear: vec![LinearBench {
                side: 4,
                d: 16,
                n: 32,
                moments_s: 1e-3,
                eigen_s: 2e-3,
                losses_s: 3e-3,
                kl_s: 4e-3,
                total_s: 1e-2,
            }],
            ..BenchReport::new(2)
        }
    }

    #[test]
    fn the_report_round_trips_through_json() {
        let r = report();
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<BenchReport>(&text).unwrap(), r);
        // The fields scripts/bench-vs-torch.py reads, flattened into each network.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["networks"][0]["train_images_per_s"], 16.0);
        assert_eq!(v["networks"][0]["forward_images_per_s"], 40.0);
        assert_eq!(v["networks"][0]["config"], "unet-s");
        assert!(v["networks"][1].get("kernel_profile").is_none(), "empty profiles are left out");
        assert_eq!(v["nn_search"][0]["metric"], "l2");
    }

    #[test]
    fn the_table_has_one_row_per_network() {
        let r = report();
        let table = nets_table(&r.networks);
        let rows: Vec<&str> = table.lines().take_while(|l| !l.is_empty()).skip(2).collect();
        assert_eq!(rows.len(), r.networks.len(), "{table}");
        for (row, n) in rows.iter().zip(&r.networks) {
            assert!(row.starts_with(&format!("| {} | {} | 8 | 1234 |", n.config, n.result.side)), "{row}");
        }
        assert_eq!(table.matches("kernel time, ").count(), 1, "only the profiled network: {table}");
        let all = r.table();
        assert!(all.starts_with(&table));
        assert!(all.contains("| square | 2 x 3 x 4 | 100.0 |"), "{all}");
        assert!(all.contains("| L2 | 10 x 20 x 16 | 2 | 0.01 | 0.3 | 0% |"), "{all}");
        assert!(all.contains("| 4x4 (d = 16) | 32 |"), "{all}");
    }
}

//! `memgen bench` and `memgen model bench`: throughput tables of networks and of this machine's
//! GEMM, for comparing runs (and frameworks) on the same machine and threads.

use anyhow::{Context, Result};
use clap::Args;
use memgen_diffusion::bench::BenchResult;
use memgen_diffusion::unet::UNetConfig;
use memgen_diffusion::ModelConfig;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Arguments of `memgen bench`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  RAYON_NUM_THREADS=2 memgen bench --profile --save bench.json\n  \
memgen bench --only nets --net models/unet-tiny.toml:16:32 --steps 1\n  \
memgen --json bench --only gemm   # the whole result as one JSON object on stdout\n\n\
Side-by-side with PyTorch on the same machine: scripts/bench-vs-torch.py (see README).")]
pub struct BenchArgs {
    /// Networks to time, as CONFIG:SIDE:BATCH (CONFIG a TOML file or a shipped network's name:
    /// `unet-s`, `unet-tiny`, `unet-demo`, `unet-paper`, `blind-tiny`); repeatable.
    /// Default: unet-s at 32x32 batch 64 and at 80x80 batch 16.
    #[arg(long = "net", value_name = "CONFIG:SIDE:BATCH")]
    nets: Vec<String>,
    /// Timed repetitions of each measurement (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Also report the time spent in each memgen kernel (conv, group norm, upsample) per step.
    #[arg(long)]
    profile: bool,
    /// Measure only these parts (repeatable): `nets` (training and sampling of the networks),
    /// `gemm` (this machine's reference GEMM), `nn` (nearest-neighbour search of 1000 32x32 images
    /// among 70,000), `linear` (the linear baseline's analysis of one training set at d = 1024 and
    /// d = 6400). Default: all four.
    #[arg(long, value_enum, value_name = "PART")]
    only: Vec<Part>,
    /// Also write every result as JSON to this file (the global --json also prints it on stdout).
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
}

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Nets,
    Gemm,
    Nn,
    Linear,
}

/// One network measurement of the table.
#[derive(Debug, Serialize)]
struct NetResult {
    config: String,
    #[serde(flatten)]
    result: BenchResult,
}

/// One reference GEMM measurement.
#[derive(Debug, Serialize)]
struct GemmResult {
    what: &'static str,
    m: usize,
    n: usize,
    k: usize,
    gflop_per_s: f64,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    memgen_version: &'static str,
    threads: usize,
    networks: Vec<NetResult>,
    gemm: Vec<GemmResult>,
    nn_search: Vec<memgen_metrics::bench::SearchBench>,
    linear: Vec<LinearBench>,
}

/// One timing of the linear analysis (seconds per stage).
#[derive(Debug, Serialize)]
struct LinearBench {
    side: usize,
    d: usize,
    n: usize,
    moments_s: f64,
    eigen_s: f64,
    losses_s: f64,
    kl_s: f64,
    total_s: f64,
}

/// The networks shipped in models/, by the name `--net` accepts for them (`unet-s` is built in).
const SHIPPED: [(&str, &str); 4] = [
    ("blind-tiny", include_str!("../../models/blind-tiny.toml")),
    ("unet-demo", include_str!("../../models/unet-demo.toml")),
    ("unet-tiny", include_str!("../../models/unet-tiny.toml")),
    ("unet-paper", include_str!("../../models/unet-paper.toml")),
];

/// A network config by shipped name (`unet-s`, `blind-tiny`, … as in models/) or TOML file path.
fn load_config(name: &str) -> Result<ModelConfig> {
    if name == "unet-s" {
        return Ok(ModelConfig::Unet(UNetConfig::default()));
    }
    if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) {
        return Ok(ModelConfig::from_toml(text)?);
    }
    Ok(ModelConfig::load(Path::new(name))?)
}

/// `CONFIG:SIDE:BATCH` → its parts.
fn parse_net(spec: &str) -> Result<(String, usize, usize)> {
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let [batch, side, config] = parts[..] else {
        usage_bail!("--net {spec:?}: expected CONFIG:SIDE:BATCH, e.g. unet-s:32:64");
    };
    let num = |v: &str, what: &str| -> Result<usize> {
        v.parse()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("--net {spec:?}: {what} must be a positive integer, got {v:?}"))
    };
    Ok((config.to_string(), num(side, "SIDE")?, num(batch, "BATCH")?))
}

/// Times one network and prints its rows.
fn bench_net(config: &str, side: usize, batch: usize, steps: usize, profile: bool) -> Result<NetResult> {
    let cfg = load_config(config).with_context(|| format!("network {config}"))?;
    let result = memgen_diffusion::bench::bench(&cfg, side, batch, steps.max(1), super::threads(), profile)
        .with_context(|| format!("benchmarking {config} at {side}x{side}, batch {batch}"))?;
    Ok(NetResult { config: config.to_string(), result })
}

fn print_net_rows(nets: &[NetResult]) {
    say!("| network | side | batch | params | GFLOP/img | train img/s | train GFLOP/s | forward img/s | forward GFLOP/s | sampler steps/s |");
    say!("|---|---|---|---|---|---|---|---|---|---|");
    for n in nets {
        let r = &n.result;
        say!(
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
        );
    }
    for n in nets.iter().filter(|n| !n.result.kernel_profile.is_empty()) {
        let r = &n.result;
        say!("\nkernel time, {} {}x{} batch {} (seconds per step):", n.config, r.side, r.side, r.batch_size);
        say!("| kernel | per training step | per forward |");
        say!("|---|---|---|");
        let (mut t, mut f) = (0.0, 0.0);
        for k in &r.kernel_profile {
            say!("| {} | {:.3} | {:.3} |", k.kernel, k.train_step_s, k.forward_s);
            t += k.train_step_s;
            f += k.forward_s;
        }
        say!(
            "| everything else (Candle ops, autograd, AdamW) | {:.3} | {:.3} |",
            r.train_step_s - t,
            r.forward_s - f
        );
        say!("\nconv layers by shape (GFLOP/s: the GEMM work of the layer over its wall time):");
        say!("| phase | kernel | shape | calls per step | ms per step | GFLOP/s |");
        say!("|---|---|---|---|---|---|");
        for l in &r.layer_profile {
            say!(
                "| {} | {} | {} | {:.0} | {:.1} | {:.1} |",
                l.phase,
                l.kernel,
                l.shape,
                l.calls_per_step,
                l.seconds_per_step * 1e3,
                l.gflop_per_s
            );
        }
    }
}

/// `memgen bench`.
pub fn run_bench(a: BenchArgs) -> Result<()> {
    let wants = |p: Part| a.only.is_empty() || a.only.contains(&p);
    let specs = if a.nets.is_empty() {
        vec!["unet-s:32:64".to_string(), "unet-s:80:16".to_string()]
    } else {
        a.nets.clone()
    };
    let threads = super::threads();
    say!(
        "memgen {} bench, {threads} threads (median of {} timed repetitions)\n",
        env!("CARGO_PKG_VERSION"),
        a.steps.max(1)
    );
    let mut networks = Vec::new();
    if wants(Part::Nets) {
        for spec in &specs {
            let (config, side, batch) = parse_net(spec)?;
            networks.push(bench_net(&config, side, batch, a.steps, a.profile)?);
        }
        print_net_rows(&networks);
    }
    let gemm = if wants(Part::Gemm) { bench_gemm() } else { Vec::new() };
    let nn_search = if wants(Part::Nn) { bench_nn(gemm.first().map(|g| g.gflop_per_s))? } else { Vec::new() };
    let linear = if wants(Part::Linear) { bench_linear()? } else { Vec::new() };
    let report =
        BenchReport { memgen_version: env!("CARGO_PKG_VERSION"), threads, networks, gemm, nn_search, linear };
    if let Some(path) = &a.save {
        memgen_io::write_json(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    super::output::result(serde_json::json!({ "saved": a.save, "bench": report }));
    Ok(())
}

/// The reference GEMM rows: a square product and the shape of the NN search's core.
fn bench_gemm() -> Vec<GemmResult> {
    let shapes: [(&'static str, usize, usize, usize, usize); 2] = [
        ("square f32 GEMM (machine reference)", 2048, 2048, 2048, 3),
        ("NN-search GEMM core: 1000 queries x 70,000 images x 1024 pixels", 1000, 70_000, 1024, 1),
    ];
    say!("\n| GEMM | m x n x k | GFLOP/s |\n|---|---|---|");
    let mut out = Vec::new();
    for (what, m, n, k, reps) in shapes {
        let gflop_per_s = memgen_kernels::bench::gemm_gflops(m, n, k, reps);
        say!("| {what} | {m} x {n} x {k} | {gflop_per_s:.1} |");
        out.push(GemmResult { what, m, n, k, gflop_per_s });
    }
    out
}

/// The nearest-neighbour search of M = 1000 32x32 images among N = 70,000, each metric, with its
/// share of the square GEMM's rate when that was measured.
fn bench_nn(peak: Option<f64>) -> Result<Vec<memgen_metrics::bench::SearchBench>> {
    use memgen_metrics::Metric;
    say!("\n| NN search (exact) | M x N x d | k | seconds | GFLOP/s | of square GEMM |\n|---|---|---|---|---|---|");
    let mut out = Vec::new();
    for (metric, k) in [(Metric::Pearson, 1), (Metric::L2, 2), (Metric::Cosine, 1)] {
        let r = memgen_metrics::bench::bench_search(1000, 70_000, 1024, k, metric, 2)?;
        let share = peak.map_or("-".into(), |p| format!("{:.0}%", 100.0 * r.gflop_per_s / p));
        say!(
            "| {metric:?} | {} x {} x {} | {k} | {:.2} | {:.1} | {share} |",
            r.queries,
            r.base,
            r.dim,
            r.seconds,
            r.gflop_per_s
        );
        out.push(r);
    }
    Ok(out)
}

/// The linear analysis of one Gaussian training set of N = 2d images at 32x32 and 80x80: moments,
/// eigendecomposition of Σ0, loss diagonals, the sampler's exact distribution (DDPM, T = 1000) and its KL.
fn bench_linear() -> Result<Vec<LinearBench>> {
    use memgen_linear::experiment::Fitted;
    let schedule = memgen_diffusion::DdpmSchedule::new(&Default::default())?;
    let sampler = memgen_diffusion::sampler::SamplerConfig::Ddpm {
        variance: memgen_diffusion::sampler::VarianceType::Beta,
    }
    .build(&schedule)?;
    say!("\n| linear analysis (f64) | N | moments s | eigen s | losses s | exact ρ_N + KL s | total s |\n|---|---|---|---|---|---|---|");
    let mut out = Vec::new();
    for side in [32, 80] {
        let d = side * side;
        let n = 2 * d;
        let (rows, truth) = memgen_linear::problem::gaussian_data(&Default::default(), side, n)?;
        let t0 = std::time::Instant::now();
        let fitted = Fitted::new(&rows, &truth)?;
        let t_kl = std::time::Instant::now();
        fitted.kl(&truth, &schedule, sampler.as_ref(), Default::default())?;
        let kl_s = t_kl.elapsed().as_secs_f64();
        let t = &fitted.timing;
        let r = LinearBench {
            side,
            d,
            n,
            moments_s: t.moments_s,
            eigen_s: t.eigen_s,
            losses_s: t.losses_s,
            kl_s,
            total_s: t0.elapsed().as_secs_f64(),
        };
        say!(
            "| {side}x{side} (d = {d}) | {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.moments_s,
            r.eigen_s,
            r.losses_s,
            r.kl_s,
            r.total_s
        );
        out.push(r);
    }
    Ok(out)
}

/// `memgen model bench CONFIG`.
pub fn run_model_bench(
    config: &Path,
    side: usize,
    batch: usize,
    steps: usize,
    profile: bool,
    save: Option<&Path>,
) -> Result<()> {
    let net = bench_net(&config.display().to_string(), side, batch, steps, profile)?;
    say!("{} threads (median of {} timed repetitions)\n", net.result.threads, steps.max(1));
    print_net_rows(std::slice::from_ref(&net));
    if let Some(path) = save {
        memgen_io::write_json(path, &net).with_context(|| format!("writing {}", path.display()))?;
    }
    super::output::result(serde_json::json!({ "saved": save, "bench": net }));
    Ok(())
}

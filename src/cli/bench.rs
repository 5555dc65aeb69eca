//! `memgen bench` and `memgen model bench`: throughput tables of networks and of this machine's
//! GEMM, for comparing runs (and frameworks) on the same machine and threads. The measuring, the
//! report and its tables are memgen-bench's.

use anyhow::{Context, Result};
use clap::Args;
use memgen_bench::{BenchConfig, NetSpec};
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

/// `CONFIG:SIDE:BATCH` → the network to time.
fn parse_net(spec: &str) -> Result<NetSpec> {
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
    Ok(NetSpec { config: config.to_string(), side: num(side, "SIDE")?, batch: num(batch, "BATCH")? })
}

/// `memgen bench`.
pub fn run_bench(a: BenchArgs) -> Result<()> {
    let wants = |p: Part| a.only.is_empty() || a.only.contains(&p);
    let nets = match (wants(Part::Nets), a.nets.is_empty()) {
        (false, _) => Vec::new(),
        (true, true) => BenchConfig::default_nets(),
        (true, false) => a.nets.iter().map(|s| parse_net(s)).collect::<Result<_>>()?,
    };
    let cfg = BenchConfig {
        nets,
        steps: a.steps,
        profile: a.profile,
        gemm: wants(Part::Gemm),
        nn: wants(Part::Nn),
        linear: wants(Part::Linear),
    };
    let threads = super::threads();
    say!(
        "memgen {} bench, {threads} threads (median of {} timed repetitions)\n",
        env!("CARGO_PKG_VERSION"),
        a.steps.max(1)
    );
    let report = memgen_bench::run(&cfg, threads, |table| say_text!("{table}"))?;
    if let Some(path) = &a.save {
        memgen_io::write_json(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    super::output::result(serde_json::json!({ "saved": a.save, "bench": report }));
    Ok(())
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
    let spec = NetSpec { config: config.display().to_string(), side, batch };
    let net = memgen_bench::nets::bench_net(&spec, steps, super::threads(), profile)?;
    say!("{} threads (median of {} timed repetitions)\n", net.result.threads, steps.max(1));
    say_text!("{}", memgen_bench::report::nets_table(std::slice::from_ref(&net)));
    if let Some(path) = save {
        memgen_io::write_json(path, &net).with_context(|| format!("writing {}", path.display()))?;
    }
    super::output::result(serde_json::json!({ "saved": save, "bench": net }));
    Ok(())
}

//! Command-line arguments (clap derive) and dispatch.

#[macro_use]
pub mod output;

mod bench;
mod compare;
mod data;
mod denoise_curve;
mod denoise_error;
mod jacobian;
mod kl_bound;
mod linear;
mod model;
mod rf;
mod run;
mod sample;
mod train;

use clap::{Parser, Subcommand};

/// memgen: measure how image diffusion models move from memorizing their training set to generalizing.
///
/// Data flows one way: source → prepared dataset (`memgen data prepare`) → disjoint nested splits
/// (`memgen data split`) → training runs → samples → scores → report. Each stage is a directory of
/// safetensors/JSON files, so any stage can be re-run, resumed or moved to another machine.
#[derive(Debug, Parser)]
#[command(name = "memgen", version, about, long_about, after_help = TOP_AFTER_HELP)]
pub struct Cli {
    /// Worker threads (default: RAYON_NUM_THREADS, else all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Print exactly one JSON object on stdout when the command ends: {"ok": true, "command": ..,
    /// "result": {files written, headline numbers}}, or {"ok": false, "error": .., "exit_code": N};
    /// the human-readable output goes to stderr.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prepare, inspect, view and split datasets.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Inspect network configs.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Train a denoiser on a training subset of a prepared dataset (or resume a run).
    Train(Box<train::TrainArgs>),
    /// Generate images from a trained run with explicit, shareable noise.
    Sample(Box<sample::SampleArgs>),
    /// Sample two models (disjoint training sets) with the same noise and score memorization and
    /// agreement: compare.json, compare.csv, compare.png (the paper's figure), histograms.
    Compare(Box<compare::CompareArgs>),
    /// Score one model's samples against its training set: memorization.json/.csv/.png, histogram.
    Memorization(Box<compare::MemorizationArgs>),
    /// A trained denoiser's MSE and PSNR on held-out images over noise levels σ, the slope of log MSE
    /// vs log σ at small σ and, for C^alpha data, the optimal slope 2α/(α+1): JSON, CSV, plot.
    DenoiseCurve(Box<denoise_curve::DenoiseCurveArgs>),
    /// A trained network's MSE and PSNR on its training images against held-out images at a few noise
    /// levels, beside the linear (Gaussian) and the empirical optimal denoiser of the same training
    /// set: the train/test gap that tells memorization from generalization. JSON, CSV.
    DenoiseError(Box<denoise_error::DenoiseErrorArgs>),
    /// The Jacobian of a trained denoiser at one noisy image: its eigenvalues and eigenvectors (the
    /// adaptive basis), asymmetry and trace (effective dimensionality), and with --compare the overlap
    /// of two models' top-k eigenspaces: JSON, safetensors, spectrum plot, eigenvector grid.
    Jacobian(Box<jacobian::JacobianArgs>),
    /// The KL bound from denoising errors (Kadkhodaie et al.), ∫ (MSE(f, σ²) − MSE(f*, σ²)) σ⁻³ dσ, on
    /// Gaussian data (f* known): for the linear denoiser fitted to N images (closed form) next to its
    /// exact KLs, and for trained runs (Monte Carlo): JSON, CSV, plots.
    KlBound(Box<kl_bound::KlBoundArgs>),
    /// The linear-denoiser baseline (Merger & Goldt) over training-set sizes: losses, effective c, KL
    /// (closed form and from samples), the d/N law, weight-decay and early-stopping sweeps, plots.
    Linear(Box<linear::LinearArgs>),
    /// Random-feature score models (Li et al. 2023) on 1-D/2-D Gaussian mixtures: KL(p0 ‖ p_θ) along
    /// gradient-flow training for each (n, m), early-stopping optima, the fitted rates in n and m next to
    /// the bound's n^-2/5 and m^-4/5, and the modes-shift comparison (--compare-target): JSON, CSV, plots.
    /// Example: memgen rf --target mixture:mu=3 --compare-target mixture:mu=15 --out rf-shift
    Rf(Box<rf::RfArgs>),
    /// Run an experiment file: for every N train two models on disjoint sets, sample both from the same
    /// noise, score them, run the baselines, and write the report (results.json/csv, plots, index.html).
    Run(Box<run::RunArgs>),
    /// The demo: a complete small experiment on built-in C^alpha images (N = 1 to 1000), with its
    /// report, in 11 to 16 minutes on 2 cores (--jobs 2), depending on the machine; --paper: the
    /// paper's setup (blind networks, stochastic sampler, N = 10 to 10^4) in 10 to 13 minutes.
    Demo(Box<run::DemoArgs>),
    /// Throughput table: unet-s training and sampling at 32x32 and 80x80, this machine's GEMM, and the
    /// nearest-neighbour search.
    Bench(bench::BenchArgs),
}

/// The end of `memgen --help`: first steps and the exit codes.
const TOP_AFTER_HELP: &str = "Examples:
  memgen demo
  memgen data prepare calpha --count 200 --side 16 --out runs/calpha-16
  memgen train --data runs/calpha-16 --model models/unet-tiny.toml --n 50 --steps 500 --out runs/c16-n50-a
  memgen --json model info models/unet-s.toml

Exit codes:
  0  success
  1  the work failed (I/O error, training diverged, a bad file met along the way)
  2  usage error: bad flags or flag values, a missing input, an unusable --device; nothing was done
  3  refused to protect data: the output holds a run or experiment of another config or memgen
     version (see --force and --resume)";

/// The subcommand path of parsed arguments, e.g. `train` or `data info`.
pub fn command_name(matches: &clap::ArgMatches) -> String {
    let mut names = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        names.push(name.to_string());
        m = sub;
    }
    names.join(" ")
}

/// Run the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(n) = cli.threads {
        if n == 0 {
            return Err(output::usage("--threads 0: expected at least 1 worker thread"));
        }
        rayon_threads(n)?;
    }
    on_global_pool(move || dispatch(cli.command))
}

/// Runs `f` on the one worker of rayon's global pool when the pool has one thread (sized by
/// `RAYON_NUM_THREADS`; built here, with a main thread's stack, unless something built it already),
/// else on the calling thread.
///
/// The kernels split their loops over that pool. From a thread outside it, every loop is handed
/// to the workers and back, a futex wake-up each way; a unet-demo training step makes a few hundred
/// such calls (AdamW alone one per parameter tensor), and on one thread it ran 1.3x faster on the
/// worker, where the loops run inline. With more threads the network's passes run in batch shards
/// ([`memgen_diffusion::shards`]), whose hand-over from a worker cost 7% of a unet-demo step on 2
/// threads in interleaved runs, so the command stays on the calling thread.
fn on_global_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let _ = rayon::ThreadPoolBuilder::new().stack_size(memgen_diffusion::shards::STACK_BYTES).build_global();
    if rayon::current_num_threads() == 1 {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

/// Hand the parsed command to its subcommand.
fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Data(cmd) => data::run(cmd),
        Command::Model(cmd) => model::run(cmd),
        Command::Train(a) => train::run_train(*a),
        Command::Sample(a) => sample::run_sample(*a),
        Command::Compare(a) => compare::run_compare(*a),
        Command::Memorization(a) => compare::run_memorization(*a),
        Command::DenoiseCurve(a) => denoise_curve::run_denoise_curve(*a),
        Command::DenoiseError(a) => denoise_error::run_denoise_error(*a),
        Command::Jacobian(a) => jacobian::run_jacobian(*a),
        Command::KlBound(a) => kl_bound::run_kl_bound(*a),
        Command::Linear(a) => linear::run_linear(*a),
        Command::Rf(a) => rf::run_rf(*a),
        Command::Run(a) => run::run_run(*a),
        Command::Demo(a) => run::run_demo(*a),
        Command::Bench(a) => bench::run_bench(a),
    }
}

/// Write `plot` as OUT/NAME.svg and an 800 x 560 OUT/NAME.png.
fn save_plot(out: &std::path::Path, name: &str, plot: &memgen_plot::LinePlot) -> anyhow::Result<()> {
    plot.save(out, name, 800, 560)?;
    Ok(())
}

/// Size the global rayon pool (used by the data layer and by candle's CPU kernels).
fn rayon_threads(n: usize) -> anyhow::Result<()> {
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    Ok(())
}

/// The number of worker threads in effect, reported in results files.
pub fn threads() -> usize {
    memgen_pipeline::threads()
}

#[cfg(test)]
mod tests;

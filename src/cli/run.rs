//! `memgen run EXPERIMENT.toml` (an N-sweep over disjoint training pairs, with its report) and
//! `memgen demo` (the same on built-in C^alpha images).

use anyhow::{Context, Result};
use clap::Args;
use memgen_experiment::exec::{self, ExecOptions};
use memgen_experiment::results::RowTables;
use memgen_experiment::{report, results, slurm, Experiment, Plan};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  memgen run experiments/fashion-mnist.toml --jobs 2\n  \
memgen run experiments/faces-80.toml --out /scratch/faces --plan   # Slurm arrays, then: sh /scratch/faces/plan/submit.sh\n  \
memgen run experiments/fashion-mnist.toml --report                 # rebuild the report from what is finished\n  \
memgen run experiments/demo.toml --job train-n10-a                  # one job of the plan\n  \
memgen --json run experiments/gaussian.toml --jobs 2")]
pub struct RunArgs {
    /// Experiment file (TOML; format in the README and in experiments/).
    pub experiment: PathBuf,
    #[command(flatten)]
    pub opts: RunOpts,
    /// Write the jobs as ROOT/plan/manifest.json and Slurm job arrays (ROOT/plan/submit.sh) instead
    /// of running them.
    #[arg(long, conflicts_with_all = ["job", "report"])]
    pub plan: bool,
    /// Run only this job (an id from the manifest, e.g. train-n100-a); used by the Slurm tasks.
    #[arg(long, conflicts_with = "report")]
    pub job: Option<String>,
    /// Only gather the finished jobs' results into the report.
    #[arg(long)]
    pub report: bool,
}

/// Options shared by `memgen run` and `memgen demo`.
#[derive(Debug, Args)]
pub struct RunOpts {
    /// Experiment directory (default runs/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Jobs run at once as separate processes, the threads split between them (default: 1 for
    /// `memgen run`; 2 for `memgen demo` when at least 2 threads are available).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Redo jobs whose finished command line differs from the experiment's (their old output is moved
    /// aside as <dir>.replaced-<time>, never deleted).
    #[arg(long)]
    pub force: bool,
    /// No progress bars: one line per started and finished job.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  cargo run --release -- demo\n  \
memgen demo --jobs 2 --out runs/demo\n  \
memgen demo --paper          # the paper's setup: blind networks, N = 10 to 10^4 (10-13 min on 2 cores)\n  \
memgen --json demo --quiet   # the report's results as one JSON object on stdout")]
pub struct DemoArgs {
    #[command(flatten)]
    pub opts: RunOpts,
    /// The paper's way (experiments/demo-paper.toml): two blind bias-free networks (blind-tiny) per
    /// N = 10, 100, 10^4 (7,000 steps at batch 128 for N = 10^4, 4,500 for the smaller sets), the
    /// stochastic sampler at beta = 0.5, beside the linear pair and the denoising errors; about 13
    /// minutes on 2 cores. Without it: a time-conditioned UNet, N = 1 to
    /// 1000, DDIM (experiments/demo.toml). Default output: runs/demo-paper.
    #[arg(long)]
    pub paper: bool,
}

/// A demo experiment and its network, compiled in.
struct Demo {
    experiment: &'static str,
    /// The network's file name in the experiment directory, and its text.
    model_file: &'static str,
    model: &'static str,
}

const DEMO: Demo = Demo {
    experiment: include_str!("../../experiments/demo.toml"),
    model_file: "unet-demo.toml",
    model: include_str!("../../models/unet-demo.toml"),
};

const PAPER_DEMO: Demo = Demo {
    experiment: include_str!("../../experiments/demo-paper.toml"),
    model_file: "blind-tiny.toml",
    model: include_str!("../../models/blind-tiny.toml"),
};

pub fn run_run(a: RunArgs) -> Result<()> {
    super::output::input(
        "EXPERIMENT",
        &a.experiment,
        "an experiment file (TOML), e.g. experiments/demo.toml",
    )?;
    let exp = Experiment::load(&a.experiment)?;
    let file = absolute(&a.experiment)?;
    let exp_dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let root = experiment_root(&a.opts.out, &exp)?;
    let plan = Plan::new(&exp, &exp_dir, &root);
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    if a.report {
        return write_report(&exp, &plan, &text);
    }
    exec::setup(&plan, &exp_dir.join(&exp.model), &text, a.opts.force)?;
    if a.plan {
        let submit = slurm::write_plan(&exp, &file, &plan)?;
        say!(
            "{} jobs in {} stages -> {}\nsubmit with: sh {}",
            plan.jobs.len(),
            plan.jobs.iter().map(|j| j.stage).collect::<HashSet<_>>().len(),
            root.join("plan").join("manifest.json").display(),
            submit.display()
        );
        super::output::result(serde_json::json!({
            "root": root,
            "manifest": root.join("plan").join("manifest.json"),
            "submit": submit,
            "jobs": plan.jobs.len(),
        }));
        return Ok(());
    }
    let only = match &a.job {
        Some(id) => {
            if plan.job(id).is_none() {
                let ids: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
                return Err(super::output::usage(format!(
                    "--job {id}: no such job in {}; the jobs are {}",
                    a.experiment.display(),
                    ids.join(", ")
                )));
            }
            Some(HashSet::from([id.clone()]))
        }
        None => None,
    };
    let ran = execute(&plan, only.as_ref(), &a.opts, false);
    match &a.job {
        None => finish(ran, &exp, &plan, &text),
        Some(id) => {
            ran?;
            super::output::result(serde_json::json!({ "root": root, "job": id }));
            Ok(())
        }
    }
}

pub fn run_demo(a: DemoArgs) -> Result<()> {
    let demo = if a.paper { PAPER_DEMO } else { DEMO };
    let mut exp = Experiment::parse(demo.experiment).context("the built-in demo experiment")?;
    let root = experiment_root(&a.opts.out, &exp)?;
    let model = root.join(demo.model_file);
    memgen_io::write_atomic(&model, demo.model.as_bytes())?;
    exp.model = model.clone();
    let plan = Plan::new(&exp, &root, &root);
    exec::setup(&plan, &model, demo.experiment, a.opts.force)?;
    eprintln!(
        "memgen demo: {}, N = {:?}, two models per N -> {}",
        exp.description,
        exp.sizes(),
        root.display()
    );
    let started = std::time::Instant::now();
    let ran = execute(&plan, None, &a.opts, true);
    finish(ran, &exp, &plan, demo.experiment)?;
    say!("demo finished in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn execute(plan: &Plan, only: Option<&HashSet<String>>, o: &RunOpts, demo: bool) -> Result<()> {
    let demo_default = (super::threads() >= 2) as usize + 1;
    let jobs = o.jobs.unwrap_or(if demo { demo_default } else { 1 });
    if jobs == 0 {
        return Err(super::output::usage("--jobs 0: expected at least 1 job at a time"));
    }
    let opts = ExecOptions {
        exe: std::env::current_exe().context("locating the memgen binary")?,
        jobs,
        threads: super::threads(),
        force: o.force,
        quiet: o.quiet,
    };
    let s = exec::execute(plan, only, &opts)?;
    eprintln!("{} jobs run, {} already finished", s.ran.len(), s.skipped.len());
    Ok(())
}

/// Write the report after a sweep; after a failed one, a partial report of what finished, and the
/// failure.
fn finish(ran: Result<()>, exp: &Experiment, plan: &Plan, text: &str) -> Result<()> {
    match ran {
        Ok(()) => write_report(exp, plan, text),
        Err(e) => {
            if write_report(exp, plan, text).is_ok() {
                eprintln!("the report above holds only the jobs that finished");
            }
            Err(e)
        }
    }
}

fn write_report(exp: &Experiment, plan: &Plan, text: &str) -> Result<()> {
    let res = results::gather(exp, plan)?;
    let w = report::write(plan, &res, text)?;
    say_text!("{}", res.headline());
    if let Some(v) = res.verdicts() {
        say!("{v}");
    }
    for note in res.linear_pair_notes() {
        say!("{note}");
    }
    for v in &res.variants {
        say_text!("sampler {} ({}):\n{}", v.name, v.args.join(" "), v.headline());
        for line in v.verdicts().into_iter().chain(v.linear_pair_notes()) {
            say!("{line}");
        }
    }
    say!("report: {}", w.index.display());
    super::output::result(serde_json::json!({
        "root": plan.root,
        "report": w.dir,
        "index": w.index,
        "files": w.files,
        "results": res,
    }));
    Ok(())
}

/// `--out`, or runs/<name>, created and made absolute.
fn experiment_root(out: &Option<PathBuf>, exp: &Experiment) -> Result<PathBuf> {
    let dir = out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&exp.name));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    absolute(&dir)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    p.canonicalize().with_context(|| format!("{} does not exist", p.display()))
}

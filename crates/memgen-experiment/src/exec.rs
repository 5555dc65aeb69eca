//! Running a [`Plan`] on this machine: each job is a child `memgen` process with its output in
//! `ROOT/logs/<id>.log`; up to `jobs` run at once, the threads split between them. A job that
//! finished (its stamp `ROOT/jobs/<id>.json` records the same command line) is skipped; an interrupted
//! training resumes from its newest checkpoint. A stamp with a different command line means the
//! experiment changed: the job is refused, or with `force` its old output is moved aside
//! (`<dir>.replaced-<unix time>`) and it runs again; nothing is deleted.

use crate::plan::{Job, JobKind, Plan, Stage};
use crate::{Error, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use memgen_io::{read_json, write_json};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to run the jobs.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The memgen binary the jobs run.
    pub exe: PathBuf,
    /// Jobs run at once.
    pub jobs: usize,
    /// Threads shared by the running jobs (each gets `threads / running`, at least 1).
    pub threads: usize,
    /// Redo jobs whose finished command line differs from the plan's (old output moved aside).
    pub force: bool,
    /// No progress bars; one line per started and finished job.
    pub quiet: bool,
}

/// The record of a finished job, `ROOT/jobs/<id>.json` (also written, as `<id>.started.json`, when
/// the job starts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub id: String,
    pub args: Vec<String>,
    pub threads: usize,
    /// Wall seconds of the last (possibly resumed) execution.
    pub seconds: f64,
}

/// What is known about a job before running anything.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    Done,
    /// Not finished; `resume` is true for a training with a checkpoint to continue from.
    Pending {
        resume: bool,
    },
}

/// What [`execute`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Jobs run in this call, in the order they finished, with their wall seconds.
    pub ran: Vec<(String, f64)>,
    /// Jobs found finished and skipped.
    pub skipped: Vec<String>,
}

/// `ROOT/jobs/<id>.json`.
pub fn stamp_path(root: &Path, id: &str) -> PathBuf {
    root.join("jobs").join(format!("{id}.json"))
}

fn started_path(root: &Path, id: &str) -> PathBuf {
    root.join("jobs").join(format!("{id}.started.json"))
}

/// `ROOT/logs/<id>.log`.
pub fn log_path(root: &Path, id: &str) -> PathBuf {
    root.join("logs").join(format!("{id}.log"))
}

/// Create the experiment directory and its copy of the network config; refuse a directory that holds
/// a different config unless `force` (then the old copy is kept as `model.toml.replaced-<time>`).
pub fn setup(plan: &Plan, model_source: &Path, experiment_text: &str, force: bool) -> Result<()> {
    for dir in ["jobs", "logs"] {
        let d = plan.root.join(dir);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    let model = std::fs::read_to_string(model_source).map_err(|e| Error::io(model_source, e))?;
    match std::fs::read_to_string(&plan.model_file) {
        Ok(old) if old == model => {}
        Ok(_) if !force => {
            return Err(Error::refused(
                &plan.model_file,
                format!(
                    "the experiment directory was run with a different network config than {}; \
                     use another output directory, or --force to redo the affected jobs",
                    model_source.display()
                ),
            ))
        }
        Ok(_) => {
            move_aside(&plan.model_file)?;
            for job in plan.jobs.iter().filter(|j| j.stage == Stage::Train) {
                let _ = std::fs::remove_file(stamp_path(&plan.root, &job.id));
            }
            memgen_io::write_atomic(&plan.model_file, model.as_bytes())?;
        }
        Err(_) => memgen_io::write_atomic(&plan.model_file, model.as_bytes())?,
    }
    Ok(memgen_io::write_atomic(&plan.root.join("experiment.toml"), experiment_text.as_bytes())?)
}

/// Whether `job` has a stamp recording the plan's command line.
fn finished(plan: &Plan, job: &Job) -> bool {
    read_json::<Stamp>(&stamp_path(&plan.root, &job.id)).is_ok_and(|s| s.args == job.args())
}

/// Whether `job` is finished, or how it would run; a conflicting stamp is an error (or, with `force`,
/// the old output is moved aside and the job is pending).
pub fn state(plan: &Plan, job: &Job, force: bool) -> Result<JobState> {
    let stamp = stamp_path(&plan.root, &job.id);
    if stamp.exists() {
        let s: Stamp = read_json(&stamp)?;
        if s.args == job.args() {
            return Ok(JobState::Done);
        }
        conflict(plan, job, &stamp, force)?;
    }
    let started = started_path(&plan.root, &job.id);
    if started.exists() {
        let s: Stamp = read_json(&started)?;
        if s.args != job.args() {
            conflict(plan, job, &started, force)?;
        }
    }
    let resume =
        matches!(job.kind, JobKind::Train { .. }) && job.output.join("checkpoints").join("latest").exists();
    Ok(JobState::Pending { resume })
}

fn conflict(plan: &Plan, job: &Job, stamp: &Path, force: bool) -> Result<()> {
    if !force {
        return Err(Error::refused(
            stamp,
            format!(
                "job {} was run with a different command line than the experiment asks for now \
                 (the experiment file changed); use another output directory, or --force to redo it \
                 (its output {} is moved aside, not deleted)",
                job.id,
                job.output.display()
            ),
        ));
    }
    if job.output.exists() {
        move_aside(&job.output)?;
    }
    let _ = std::fs::remove_file(stamp_path(&plan.root, &job.id));
    let _ = std::fs::remove_file(started_path(&plan.root, &job.id));
    Ok(())
}

fn move_aside(path: &Path) -> Result<()> {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".replaced-{t}"));
    std::fs::rename(path, path.with_file_name(name)).map_err(|e| Error::io(path, e))
}

/// The arguments after the `memgen` binary that run `job` (or, with `resume`, continue an interrupted
/// training) on `threads` threads: exactly what the executor starts.
pub fn argv(job: &Job, resume: bool, threads: usize) -> Vec<String> {
    let mut v = vec!["--threads".to_string(), threads.to_string()];
    v.extend(command(job, resume).argv());
    v
}

/// The command that runs `job`, or with `resume` continues an interrupted training.
pub fn command(job: &Job, resume: bool) -> crate::Command {
    match (&job.kind, resume) {
        (JobKind::Train { steps, .. }, true) => {
            crate::Command::Resume { run: job.output.clone(), steps: *steps }
        }
        _ => job.command.clone(),
    }
}

/// Remove what an interrupted job left that would stop it from starting again: the config, split and
/// log of a training with no checkpoint yet, and the files of a prepare. Other jobs rewrite their
/// files atomically and need nothing removed.
fn clear_partial(job: &Job) -> Result<()> {
    if matches!(job.kind, JobKind::Train { .. }) {
        for f in ["config.json", "split.json", "train.jsonl"] {
            let path = job.output.join(f);
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
    }
    if matches!(job.kind, JobKind::Prepare) {
        // Each file of a prepare is written whole (temporary file + rename), but a prepare killed
        // between its two files, or finished without its stamp, is redone from the start.
        for f in ["manifest.json", "images.safetensors"] {
            let path = job.output.join(f);
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
    }
    Ok(())
}

/// The thread count an interrupted training started with (its config.json).
fn recorded_threads(job: &Job) -> Option<usize> {
    let cfg = memgen_diffusion::run::RunConfig::load(&job.output).ok()?;
    Some(cfg.threads).filter(|&t| t > 0)
}

/// A running child.
struct Running {
    child: Child,
    started: Instant,
    threads: usize,
}

/// Hold a lock file while running: `ROOT/.lock` for a sweep, `ROOT/jobs/<id>.lock` for a single job
/// (`--job`, as Slurm array tasks run them side by side). A second process is refused while the
/// holder is alive; a lock left by a process of another host (a pre-empted cluster task) or by a dead
/// one is taken over.
struct Lock(PathBuf);

impl Lock {
    fn take(path: PathBuf) -> Result<Lock> {
        let me = format!("{}:{}", host(), std::process::id());
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Some((h, pid)) = text.trim().rsplit_once(':') {
                let pid: i32 = pid.parse().unwrap_or(0);
                if h == host() && pid != std::process::id() as i32 && alive(pid) {
                    return Err(Error::refused(
                        &path,
                        format!("another memgen process ({pid}) is running this experiment; wait for it or stop it"),
                    ));
                }
            }
        }
        memgen_io::write_atomic(&path, me.as_bytes())?;
        Ok(Lock(path))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks that the process exists (and is ours to signal).
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Start one job as a child process writing to its log.
fn spawn(plan: &Plan, job: &Job, resume: bool, threads: usize, exe: &Path) -> Result<Child> {
    let log = log_path(&plan.root, &job.id);
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| Error::io(&log, e))?;
    let line = argv(job, resume, threads);
    use std::io::Write;
    writeln!(file, "$ memgen {}", line.join(" ")).map_err(|e| Error::io(&log, e))?;
    let err = file.try_clone().map_err(|e| Error::io(&log, e))?;
    let stamp = Stamp { id: job.id.clone(), args: job.args(), threads, seconds: 0.0 };
    write_json(&started_path(&plan.root, &job.id), &stamp)?;
    let mut cmd = Command::new(exe);
    cmd.args(&line);
    cmd.stdin(Stdio::null()).stdout(file).stderr(err).env("RAYON_NUM_THREADS", threads.to_string());
    die_with_parent(&mut cmd);
    cmd.spawn().map_err(|e| Error::io(exe, e))
}

/// Children get SIGTERM when `memgen run` dies, so a killed sweep leaves no training running that a
/// restarted sweep would race with.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as i32;
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

fn finish(plan: &Plan, job: &Job, run: &Running) -> Result<f64> {
    let seconds = run.started.elapsed().as_secs_f64();
    let stamp = Stamp { id: job.id.clone(), args: job.args(), threads: run.threads, seconds };
    write_json(&stamp_path(&plan.root, &job.id), &stamp)?;
    let _ = std::fs::remove_file(started_path(&plan.root, &job.id));
    Ok(seconds)
}

fn failure(plan: &Plan, job: &Job, status: std::process::ExitStatus) -> Error {
    let log = log_path(&plan.root, &job.id);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    Error::JobFailed { id: job.id.clone(), status: status.to_string(), log, tail }
}

/// Run every unfinished job of `plan` (or only those in `only`), respecting dependencies.
pub fn execute(plan: &Plan, only: Option<&HashSet<String>>, opts: &ExecOptions) -> Result<Summary> {
    let lock = match only.map(|o| o.iter().collect::<Vec<_>>()) {
        Some(ids) if ids.len() == 1 => plan.root.join("jobs").join(format!("{}.lock", ids[0])),
        _ => plan.root.join(".lock"),
    };
    let _lock = Lock::take(lock)?;
    let selected: Vec<&Job> = plan.jobs.iter().filter(|j| only.is_none_or(|o| o.contains(&j.id))).collect();
    let mut states = HashMap::new();
    let mut summary = Summary::default();
    for job in &selected {
        let st = state(plan, job, opts.force)?;
        if st == JobState::Done {
            summary.skipped.push(job.id.clone());
        }
        states.insert(job.id.clone(), st);
    }
    let bars = Bars::new(plan, &selected, &states, opts.quiet);
    let mut pending: Vec<&Job> =
        selected.iter().copied().filter(|j| states[&j.id] != JobState::Done).collect();
    // Finished: the selected jobs found done above, and unselected ones with a matching stamp.
    let mut done: HashSet<String> = plan
        .jobs
        .iter()
        .filter(|j| states.get(&j.id).map_or_else(|| finished(plan, j), |s| *s == JobState::Done))
        .map(|j| j.id.clone())
        .collect();
    let mut running: Vec<(&Job, Running)> = Vec::new();
    let mut failed: Option<Error> = None;
    let jobs = opts.jobs.max(1);
    while !pending.is_empty() || !running.is_empty() {
        if failed.is_none() {
            let ready: Vec<&Job> =
                pending.iter().copied().filter(|j| j.deps.iter().all(|d| done.contains(d))).collect();
            let slots = jobs.saturating_sub(running.len());
            let share = (running.len() + ready.len()).clamp(1, jobs);
            for job in ready.into_iter().take(slots) {
                let resume = states[&job.id] == (JobState::Pending { resume: true });
                if !resume {
                    clear_partial(job)?;
                }
                let mut threads = (opts.threads / share).max(1);
                if resume {
                    // Same thread count as the interrupted run: the same bits as an uninterrupted one.
                    threads = recorded_threads(job).unwrap_or(threads);
                }
                let child = spawn(plan, job, resume, threads, &opts.exe)?;
                bars.note(&format!(
                    "started {} ({threads} threads{})",
                    job.id,
                    if resume { ", resuming" } else { "" }
                ));
                running.push((job, Running { child, started: Instant::now(), threads }));
                pending.retain(|j| j.id != job.id);
            }
            if running.is_empty() && !pending.is_empty() {
                let stuck: Vec<&str> = pending.iter().map(|j| j.id.as_str()).collect();
                return Err(Error::Invalid(format!(
                    "jobs {stuck:?} wait for jobs that were not selected or not run"
                )));
            }
        } else if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut i = 0;
        while i < running.len() {
            let status = running[i].1.child.try_wait().map_err(|e| Error::io(&opts.exe, e))?;
            match status {
                None => i += 1,
                Some(st) => {
                    let (job, run) = running.remove(i);
                    if st.success() {
                        let secs = finish(plan, job, &run)?;
                        bars.note(&format!("finished {} in {secs:.1} s", job.id));
                        done.insert(job.id.clone());
                        summary.ran.push((job.id.clone(), secs));
                    } else if failed.is_none() {
                        bars.note(&format!(
                            "FAILED {} ({st}); see {}",
                            job.id,
                            log_path(&plan.root, &job.id).display()
                        ));
                        failed = Some(failure(plan, job, st));
                    }
                }
            }
        }
        bars.update(plan, &done, running.iter().map(|(j, _)| *j));
    }
    bars.finish();
    match failed {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// One progress bar per stage: training counts optimisation steps (read from the runs' train.jsonl),
/// the other stages count jobs.
struct Bars {
    multi: MultiProgress,
    stages: Vec<(Stage, ProgressBar, Vec<String>)>,
    quiet: bool,
}

impl Bars {
    fn new(plan: &Plan, selected: &[&Job], states: &HashMap<String, JobState>, quiet: bool) -> Bars {
        let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        let multi = MultiProgress::with_draw_target(target);
        let mut stages = Vec::new();
        for stage in Stage::ALL {
            let ids: Vec<String> =
                selected.iter().filter(|j| j.stage == stage).map(|j| j.id.clone()).collect();
            if ids.is_empty() || ids.iter().all(|id| states[id] == JobState::Done) {
                continue;
            }
            let total: u64 = ids.iter().filter_map(|id| plan.job(id)).map(work).sum();
            let bar = multi.add(ProgressBar::new(total));
            let unit = if stage == Stage::Train { "steps" } else { "jobs" };
            bar.set_style(memgen_io::progress::style(stage.name(), unit));
            stages.push((stage, bar, ids));
        }
        Bars { multi, stages, quiet }
    }

    fn note(&self, line: &str) {
        if self.quiet || self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    fn update<'a>(&self, plan: &Plan, done: &HashSet<String>, running: impl Iterator<Item = &'a Job>) {
        let running: Vec<&Job> = running.collect();
        for (stage, bar, ids) in &self.stages {
            let pos: u64 = ids
                .iter()
                .filter_map(|id| plan.job(id))
                .map(|j| if done.contains(&j.id) { work(j) } else { progress(j) })
                .sum();
            bar.set_position(pos);
            let names: Vec<&str> =
                running.iter().filter(|j| j.stage == *stage).map(|j| j.id.as_str()).collect();
            bar.set_message(names.join(" "));
        }
    }

    fn finish(&self) {
        for (_, bar, _) in &self.stages {
            bar.finish_and_clear();
        }
    }
}

/// Units of work of a job: optimisation steps for training, 1 otherwise.
fn work(job: &Job) -> u64 {
    match job.kind {
        JobKind::Train { steps, .. } => steps as u64,
        _ => 1,
    }
}

/// Units done of an unfinished job: the last logged step of a training, else 0.
fn progress(job: &Job) -> u64 {
    if !matches!(job.kind, JobKind::Train { .. }) {
        return 0;
    }
    let log = crate::results::read_train(&job.output.join("train.jsonl"));
    log.ok().flatten().map_or(0, |t| t.steps)
}

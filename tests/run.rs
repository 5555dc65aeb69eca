//! `memgen run`: a tiny experiment end to end (report files parse, values in range), a sweep killed
//! mid-way resumes without redoing finished jobs, a changed experiment is refused, the Slurm plan.

mod common;

use common::{fails, fails_with, json, memgen, ok, REFUSED, USAGE};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn experiment(dir: &Path, steps: usize) -> PathBuf {
    common::tiny_experiment(dir, steps, 80, 25)
}

fn in_range(v: &serde_json::Value, lo: f64, hi: f64) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((lo..=hi).contains(&x), "{x} not in [{lo}, {hi}]");
    x
}

#[test]
fn tiny_experiment_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 40);
    let out = tmp.path().join("out");
    let text = ok(&memgen(&[
        "--threads",
        "2",
        "run",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "2",
        "--quiet",
    ]));
    assert!(text.contains("| 4 |"), "headline table printed:\n{text}");
    let report = out.join("report");
    let res = json(&report.join("results.json"));
    let rows = res["rows"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["n"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 4]);
    assert_eq!(res["d"], 64);
    for r in rows {
        let m = &r["models"];
        assert_eq!(m["draws"], 6);
        for k in ["a_own", "b_own", "a_other", "b_other", "corr_ab"] {
            in_range(&m[k]["median"], -1.0, 1.0);
        }
        in_range(&m["agree"], 0.0, 1.0);
        in_range(&m["memorized_by_corr"], 0.0, 1.0);
        assert_eq!(r["train_a"]["steps"], 40);
        assert!(r["train_b"]["seconds"].as_f64().unwrap() > 0.0);
        // The empirical optimal denoiser reproduces training images.
        assert!(in_range(&r["oracle"]["a_own"]["min"], -1.0, 1.0) > 0.99, "{}", r["oracle"]);
        assert!(r["linear"]["test_loss"].as_f64().unwrap() > 0.0);
    }
    // With one training image per side the oracle's two samples are those two images.
    let o1 = &rows[0]["oracle"];
    assert!(
        (o1["corr_ab"]["median"].as_f64().unwrap() - o1["sets"]["median"].as_f64().unwrap()).abs() < 1e-3
    );
    // So are the linear pair's (Σ0 = 0 for one image), on by default.
    let l1 = &rows[0]["linear_pair"];
    assert!(
        (l1["corr_ab"]["median"].as_f64().unwrap() - o1["sets"]["median"].as_f64().unwrap()).abs() < 1e-3,
        "{l1}"
    );
    assert_eq!(l1["memorized_by_corr"], 1.0);
    // With one image per side the oracle returns its image: zero error on it, large on held-out
    // images (the networks, trained 40 steps, have learned little either way); every row has a verdict.
    let e = &rows[0]["denoise_a"];
    let (train, test) =
        (e["network"]["train"][1]["mse"].as_f64().unwrap(), e["network"]["test"][1]["mse"].as_f64().unwrap());
    assert!(train.is_finite() && test.is_finite() && train > 0.0);
    assert!(e["oracle"]["test"][1]["mse"].as_f64().unwrap() > 1e-3);
    assert!(e["oracle"]["train"][1]["mse"].as_f64().unwrap() < 1e-6);
    assert!(rows.iter().all(|r| r["verdict"]["verdict"].is_string() && r["denoise_b"]["sigmas"].is_array()));
    for r in rows {
        let m = &r["models"];
        assert!((0.0..=1.0).contains(&m["in_range"].as_f64().unwrap()), "{m}");
        // The novelty reference: held-out images against S_A, a correlation in [-1, 1].
        assert!(m["novelty"]["count"].as_u64().unwrap() > 0, "{m}");
        assert!(m["novelty"]["median"].as_f64().unwrap().abs() <= 1.0);
    }
    let csv = std::fs::read_to_string(report.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("n,steps,"));
    assert_eq!(lines[2].split(',').count(), lines[0].split(',').count());
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("data:image/png;base64,"));
    assert!(!html.contains("src=\"http") && !html.contains("<script"), "self-contained");
    for f in [
        "transition.svg",
        "transition.png",
        "fractions.svg",
        "samples-n1.png",
        "samples-n4.png",
        "denoise-error.svg",
        "denoise-error.png",
        "linear-kl.svg",
    ] {
        assert!(report.join(f).is_file(), "{f} missing");
    }
    // A second run finds everything finished.
    let again =
        memgen(&["--threads", "2", "run", exp.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("0 jobs run, 16 already finished"), "{err}");
    // --report --json: the report's results as the JSON result, and its files.
    let again = memgen(&["--json", "run", exp.to_str().unwrap(), "--out", out.to_str().unwrap(), "--report"]);
    let v: serde_json::Value = serde_json::from_str(ok(&again).trim()).unwrap();
    assert_eq!((v["ok"].clone(), v["command"].clone()), (true.into(), "run".into()), "{v}");
    assert_eq!(v["result"]["results"], json(&report.join("results.json")));
    assert_eq!(v["result"]["index"], report.join("index.html").to_str().unwrap());
    assert!(String::from_utf8_lossy(&again.stderr).contains("| 4 |"), "the table goes to stderr");
    // A sampler variant adds its own compare and linear-pair jobs and reuses everything else.
    let text = std::fs::read_to_string(&exp).unwrap();
    let variant =
        "[[sample.variants]]\nname = \"ddim-5\"\nargs = [\"--sampler\", \"ddim\", \"--ddim-steps\", \"5\"]\n";
    std::fs::write(&exp, format!("{text}{variant}")).unwrap();
    let again = memgen(&["run", exp.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("4 jobs run, 16 already finished"), "{err}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("sampler ddim-5"));
    let res = json(&report.join("results.json"));
    let v = &res["variants"][0];
    assert_eq!((v["name"].as_str(), v["args"][3].as_str()), (Some("ddim-5"), Some("5")));
    for (main, row) in res["rows"].as_array().unwrap().iter().zip(v["rows"].as_array().unwrap()) {
        assert_eq!(
            (&row["n"], &row["train_a"], &row["denoise_b"]),
            (&main["n"], &main["train_a"], &main["denoise_b"])
        );
        assert_eq!(row["models"]["draws"], 6);
        assert!(row["oracle"].is_null() && row["verdict"]["verdict"].is_string());
        // Another sampler, other samples from the same networks and noise.
        assert_ne!(row["models"]["corr_ab"], main["models"]["corr_ab"]);
        if row["n"] == 4 {
            // (At N = 1 either sampler's linear pair returns the two training images.)
            assert_ne!(row["linear_pair"]["corr_ab"], main["linear_pair"]["corr_ab"]);
        }
    }
    let csv = std::fs::read_to_string(report.join("results-ddim-5.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(report.join("samples-n4-ddim-5.png").is_file());
    assert!(std::fs::read_to_string(report.join("index.html")).unwrap().contains("Sampler ddim-5"));
    let figure = std::fs::read_to_string(report.join("transition.svg")).unwrap();
    assert!(figure.contains("corr(x_A, x_B), sampler ddim-5"), "the variant's agreement is drawn");
    // Changing the training steps conflicts with the finished trainings.
    let exp2 = experiment(tmp.path(), 41);
    let msg = fails_with(
        &memgen(&["run", exp2.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]),
        REFUSED,
    );
    assert!(msg.contains("train-n1-a") && msg.contains("--force"), "{msg}");
}

#[test]
fn killed_sweep_resumes_without_redoing_finished_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 400);
    let out = tmp.path().join("out");
    let args = ["--threads", "1", "run", exp.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_memgen"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill the sweep (SIGKILL, only the parent process) once two trainings are finished and the third
    // has written a checkpoint.
    let started = Instant::now();
    let third = out.join("runs/n4-a/checkpoints/latest");
    while !(out.join("jobs/train-n1-b.json").exists() && third.exists()) {
        assert!(child.try_wait().unwrap().is_none(), "the sweep ended before it was killed");
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("jobs/train-n4-a.json").exists(), "killed before the third training finished");
    let stamps: Vec<String> = ["prepare", "train-n1-a", "train-n1-b"]
        .iter()
        .map(|id| std::fs::read_to_string(out.join(format!("jobs/{id}.json"))).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let again = memgen(&args);
    let err = ok(&again);
    assert!(String::from_utf8_lossy(&again.stderr).contains("13 jobs run, 3 already finished"));
    assert!(err.contains("| 4 |"));
    for (id, before) in ["prepare", "train-n1-a", "train-n1-b"].iter().zip(&stamps) {
        let after = std::fs::read_to_string(out.join(format!("jobs/{id}.json"))).unwrap();
        assert_eq!(&after, before, "{id} was redone");
    }
    let log = std::fs::read_to_string(out.join("logs/train-n4-a.log")).unwrap();
    assert!(log.contains("train --resume"), "the interrupted training resumed:\n{log}");
    let res = json(&out.join("report/results.json"));
    assert_eq!(res["rows"][1]["train_a"]["steps"], 400);
}

#[test]
fn plan_writes_manifest_and_slurm_arrays() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 40);
    let cluster = "[cluster]\ntrain_sbatch = [\"--gres=gpu:1\"]\nevaluate_sbatch = [\"--gres=gpu:2\"]\n";
    std::fs::write(&exp, format!("{}{cluster}", std::fs::read_to_string(&exp).unwrap())).unwrap();
    let out = tmp.path().join("out");
    let text = ok(&memgen(&["run", exp.to_str().unwrap(), "--out", out.to_str().unwrap(), "--plan"]));
    assert!(text.contains("16 jobs in 3 stages"), "{text}");
    let plan = out.join("plan");
    let manifest = json(&plan.join("manifest.json"));
    assert_eq!(manifest["jobs"].as_array().unwrap().len(), 16);
    assert_eq!(std::fs::read_to_string(plan.join("train.txt")).unwrap().lines().count(), 4);
    let submit = std::fs::read_to_string(plan.join("submit.sh")).unwrap();
    assert!(
        submit.contains("--array=0-3") && submit.contains("job.sh train") && submit.contains("report.sh")
    );
    assert!(submit.contains("afterok"));
    // Each array gets its own extra options.
    let array = |stage: &str| submit.lines().find(|l| l.ends_with(&format!("job.sh {stage})"))).unwrap();
    assert!(array("train").contains("'--gres=gpu:1'") && !array("train").contains("gpu:2"), "{submit}");
    assert!(array("evaluate").contains("'--gres=gpu:2'") && !array("evaluate").contains("gpu:1"), "{submit}");
    assert!(!array("data").contains("--gres"), "{submit}");
    let job = std::fs::read_to_string(plan.join("job.sh")).unwrap();
    assert!(job.contains("--job \"$id\"") && job.contains("SLURM_ARRAY_TASK_ID"));
    assert!(!out.join("runs").exists(), "--plan runs nothing");
    // One job, as an array task runs it; a job whose inputs are missing fails and names them.
    ok(&memgen(&[
        "--threads",
        "1",
        "run",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--job",
        "prepare",
        "--quiet",
    ]));
    assert!(out.join("data/manifest.json").exists() && out.join("jobs/prepare.json").exists());
    let msg = fails(&memgen(&[
        "run",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--job",
        "compare-n1-seed2",
    ]));
    assert!(msg.contains("compare-n1-seed2"), "{msg}");
    let msg = fails_with(
        &memgen(&["run", exp.to_str().unwrap(), "--out", out.to_str().unwrap(), "--job", "nope"]),
        USAGE,
    );
    assert!(msg.contains("no such job") && msg.contains("train-n4-b"), "{msg}");
}

#[test]
fn device_keys_reach_the_jobs_that_run_networks() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 40);
    let text = std::fs::read_to_string(&exp).unwrap();
    let text = text
        .replace("steps = 40", "steps = 40\ndevice = \"cuda:0\"")
        .replace("count = 6", "count = 6\ndevice = \"cuda:1\"");
    std::fs::write(&exp, text).unwrap();
    let out = tmp.path().join("out");
    ok(&memgen(&["run", exp.to_str().unwrap(), "--out", out.to_str().unwrap(), "--plan"]));
    let manifest = json(&out.join("plan/manifest.json"));
    for job in manifest["jobs"].as_array().unwrap() {
        let (id, kind) = (job["id"].as_str().unwrap(), job["kind"].as_str().unwrap());
        let want = match kind {
            "train" => Some("cuda:0"),
            "compare" | "denoise_error" => Some("cuda:1"),
            _ => None,
        };
        let cmd = &job["command"];
        assert_eq!(cmd["device"].as_str(), want, "{id}: {cmd}");
    }
    if !cfg!(feature = "cuda") {
        // A build without CUDA: the training job stops at its device, a usage error the run names.
        let run = |job: &str| {
            memgen(&[
                "--threads",
                "1",
                "run",
                exp.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--job",
                job,
                "--quiet",
            ])
        };
        ok(&run("prepare"));
        let msg = fails(&run("train-n1-a"));
        assert!(
            msg.contains("train-n1-a") && msg.contains("--device cuda:0") && msg.contains("--features cuda"),
            "{msg}"
        );
        assert!(!out.join("runs/n1-a/config.json").exists());
    }
    let bad = std::fs::read_to_string(&exp).unwrap().replace("\"cuda:0\"", "\"gpu0\"");
    std::fs::write(&exp, bad).unwrap();
    let msg =
        fails(&memgen(&["run", exp.to_str().unwrap(), "--out", tmp.path().join("o").to_str().unwrap()]));
    assert!(msg.contains("[train] device") && msg.contains("cpu or cuda:N"), "{msg}");
}

#[test]
fn bad_experiment_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 40);
    let text = std::fs::read_to_string(&exp).unwrap().replace("steps = 40", "steps = 40\nepochs = 3");
    std::fs::write(&exp, text).unwrap();
    let msg =
        fails(&memgen(&["run", exp.to_str().unwrap(), "--out", tmp.path().join("o").to_str().unwrap()]));
    assert!(msg.contains("tiny.toml") && msg.contains("exactly one of `steps` and `epochs`"), "{msg}");
    let msg = fails_with(&memgen(&["run", tmp.path().join("missing.toml").to_str().unwrap()]), USAGE);
    assert!(msg.contains("missing.toml"), "{msg}");
}

#[test]
fn shipped_experiments_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let out = tmp.path().join(&name);
            let text =
                ok(&memgen(&["run", path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--plan"]));
            assert!(text.contains("jobs in 3 stages"), "{name}: {text}");
            assert!(out.join("model.toml").is_file());
            names.push(name);
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "calpha-blind",
            "demo",
            "demo-paper",
            "faces-32",
            "faces-80",
            "fashion-mnist",
            "gaussian",
            "olivetti"
        ]
    );
}

#[test]
fn a_live_sweep_locks_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 40);
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    // This test process is alive: its lock is respected; a lock from another host is taken over.
    std::fs::write(out.join(".lock"), format!("{host}:{}", std::process::id())).unwrap();
    let msg = fails_with(
        &memgen(&["run", exp.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]),
        REFUSED,
    );
    assert!(msg.contains("another memgen process"), "{msg}");
    // Single jobs (Slurm array tasks) lock only themselves.
    ok(&memgen(&[
        "run",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--job",
        "prepare",
        "--quiet",
    ]));
    assert!(!out.join("jobs/prepare.lock").exists(), "the job's lock is released");
    std::fs::write(out.join(".lock"), format!("{host}-elsewhere:{}", std::process::id())).unwrap();
    ok(&memgen(&["run", exp.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]));
    assert!(!out.join(".lock").exists());
}

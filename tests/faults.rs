//! Faults: `memgen train` and `memgen run` killed (SIGKILL) again and again at seeded pseudo-random
//! moments, including in the middle of checkpoint writes, resume each time and end with the bits of
//! an uninterrupted run; no file they leave is ever half-written. Also: writes that fail (disk full,
//! unwritable directory) keep the previous files, and runs from another config or memgen version are
//! refused unless --force.

mod common;

use common::{fails, fails_with, json, memgen, ok, prepare, Rng, FAILED, REFUSED};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/unet-tiny.toml")
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_memgen"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memgen starts")
}

/// All files below `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn is_tmp(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "tmp")
}

/// What a look at a killed directory found.
#[derive(Default, Debug)]
struct Seen {
    /// Files checked (each parsed completely).
    checked: usize,
    /// Temporary files of interrupted writes (never read by memgen).
    tmp: usize,
}

/// Every JSON, safetensors and PNG file below `dir` parses completely; train.jsonl lines parse
/// (a line cut by the kill may only be the last one, without its newline); every `latest`
/// points to a complete checkpoint whose state.json has its step.
fn check_files(dir: &Path) -> Seen {
    let mut seen = Seen::default();
    for p in files(dir) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if is_tmp(&p) {
            seen.tmp += 1;
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        match p.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .unwrap_or_else(|e| panic!("half-written JSON {}: {e}", p.display()));
            }
            Some("safetensors") => {
                safetensors::SafeTensors::deserialize(&bytes)
                    .unwrap_or_else(|e| panic!("half-written safetensors {}: {e}", p.display()));
            }
            Some("png") => {
                image::load_from_memory(&bytes)
                    .unwrap_or_else(|e| panic!("half-written PNG {}: {e}", p.display()));
            }
            Some("jsonl") => {
                let text = String::from_utf8(bytes).unwrap();
                let lines: Vec<&str> = text.split_inclusive('\n').collect();
                for (i, l) in lines.iter().enumerate() {
                    let parsed = serde_json::from_str::<serde_json::Value>(l.trim_end());
                    let cut_last = i + 1 == lines.len() && !l.ends_with('\n');
                    assert!(parsed.is_ok() || cut_last, "{}: line {i} is broken: {l:?}", p.display());
                }
            }
            _ => {}
        }
        if name == "latest" {
            let target = p.with_file_name(std::fs::read_to_string(&p).unwrap().trim());
            for f in ["model.safetensors", "ema.safetensors", "optimizer.safetensors", "state.json"] {
                assert!(target.join(f).is_file(), "{} points to {target:?} without {f}", p.display());
            }
            let state = json(&target.join("state.json"));
            let step = target.file_name().unwrap().to_string_lossy().trim_start_matches("step-").to_string();
            assert_eq!(state["step"].as_u64().unwrap(), step.parse::<u64>().unwrap());
        }
        seen.checked += 1;
    }
    seen
}

/// The step `RUN/checkpoints/latest` points to, if any.
fn latest_step(run: &Path) -> Option<u64> {
    let name = std::fs::read_to_string(run.join("checkpoints/latest")).ok()?;
    name.trim().trim_start_matches("step-").parse().ok()
}

/// Tensors by name, with their dtype, shape and raw bytes.
fn tensors(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, (format!("{:?}", v.dtype()), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

/// train.jsonl without its timing fields.
fn log_values(run: &Path) -> Vec<(u64, f64, f64)> {
    std::fs::read_to_string(run.join("train.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap(), v["lr"].as_f64().unwrap())
        })
        .collect()
}

fn wait_until(child: &mut Child, deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(300));
    }
    false
}

/// Any `*.tmp` file in the checkpoint directories (a checkpoint being written).
fn writing_checkpoint(run: &Path) -> bool {
    files(&run.join("checkpoints")).iter().any(|p| is_tmp(p))
}

#[test]
fn train_killed_repeatedly_resumes_to_the_uninterrupted_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    prepare(&ds, "calpha", 40, 8);
    let (reference, run) = (tmp.path().join("reference"), tmp.path().join("killed"));
    let start = |out: &Path| -> Vec<String> {
        [
            "train",
            "--data",
            ds.to_str().unwrap(),
            "--model",
            tiny_model().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--n",
            "8",
            "--steps",
            "240",
            "--batch-size",
            "8",
            "--lr",
            "1e-3",
            "--warmup",
            "10",
            "--checkpoint-every",
            "4",
            "--log-every",
            "7",
            "--seed",
            "3",
            "--quiet",
        ]
        .map(String::from)
        .to_vec()
    };
    let resume: Vec<String> =
        ["train", "--resume", run.to_str().unwrap(), "--quiet"].map(String::from).to_vec();
    let t0 = Instant::now();
    let out = spawn(&start(&reference)).wait_with_output().unwrap();
    ok(&out);
    let full_secs = t0.elapsed().as_secs_f64();

    // Kill moments: right after start (maybe before config.json), at a seeded checkpoint step, in
    // the middle of a checkpoint write (a temporary file exists), after a seeded delay.
    let mut rng = Rng(0x5eed_0010);
    let mut last = None;
    let (mut kills, mut mid_write, mut tmp_seen) = (Vec::new(), 0, 0);
    let deadline = Instant::now() + Duration::from_secs(90);
    for k in 0..6 {
        let args = if run.join("config.json").exists() { resume.clone() } else { start(&run) };
        let mut child = spawn(&args);
        let from = last.unwrap_or(0);
        let target = from + rng.range(6, 30);
        let moment = match k % 3 {
            0 => {
                let ms = rng.range(1, 80);
                std::thread::sleep(Duration::from_millis(ms));
                format!("{ms} ms after the start")
            }
            1 => {
                let hit = wait_until(&mut child, deadline, || latest_step(&run).is_some_and(|s| s >= target));
                std::thread::sleep(Duration::from_micros(rng.range(0, 3000)));
                format!("near step {target} ({hit})")
            }
            _ => {
                let hit = wait_until(&mut child, deadline, || {
                    latest_step(&run).is_some_and(|s| s >= target) && writing_checkpoint(&run)
                });
                mid_write += hit as usize;
                format!("writing a checkpoint after step {target} ({hit})")
            }
        };
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!finished, "kill {k} ({moment}) came after the run had finished");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        // A restart starts where the newest checkpoint is, never before. (A kill milliseconds after
        // the start may land before the process says anything; the final resume below always speaks.)
        if args == resume && (k % 3 != 0 || err.contains("resuming")) {
            let at = format!("at step {from} of 240");
            assert!(err.contains("resuming") && err.contains(&at), "restart {k}: expected {at}:\n{err}");
        }
        let seen = check_files(&run);
        tmp_seen += seen.tmp;
        let now = latest_step(&run);
        assert!(now >= last, "kill {k}: latest went back from {last:?} to {now:?}");
        kills.push(format!("{moment}: latest {now:?}, {} files ok, {} tmp", seen.checked, seen.tmp));
        last = now;
    }
    let out = spawn(&resume).wait_with_output().unwrap();
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("at step {} of 240", last.unwrap_or(0))), "{err}");
    eprintln!("train: uninterrupted run {full_secs:.1} s; kills:\n  {}", kills.join("\n  "));
    eprintln!(
        "train: {mid_write} kills during a checkpoint write, {tmp_seen} temporary files seen after kills"
    );
    assert!(mid_write >= 1, "no kill landed during a checkpoint write");

    for f in ["model.safetensors", "ema.safetensors"] {
        assert!(
            tensors(&reference.join(f)) == tensors(&run.join(f)),
            "{f} differs from the uninterrupted run"
        );
    }
    let opt = |r: &Path| tensors(&r.join("checkpoints/step-00000240/optimizer.safetensors"));
    assert!(opt(&reference) == opt(&run), "optimizer state differs");
    assert_eq!(log_values(&reference), log_values(&run), "train.jsonl losses differ");
    // Nothing is left behind: no temporary files, one checkpoint.
    let left: Vec<PathBuf> = files(&run).into_iter().filter(|p| is_tmp(p)).collect();
    assert!(left.is_empty(), "{left:?}");
    let steps: Vec<_> =
        std::fs::read_dir(run.join("checkpoints")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(steps.len(), 2, "{steps:?}");
}

/// A tiny experiment of `steps` training steps.
fn experiment(dir: &Path, steps: usize) -> PathBuf {
    common::tiny_experiment(dir, steps, 60, 10)
}

/// Wait until no process has `dir` on its command line (the jobs of a killed `memgen run` get
/// SIGTERM from the kernel when their parent dies).
fn wait_for_jobs_to_exit(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains(&needle)
        });
        if !alive {
            return;
        }
        assert!(Instant::now() < deadline, "jobs of the killed sweep still run");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// results.json without what depends on time (seconds, images/s).
fn timeless(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "seconds" | "images_per_s" | "wall_s"))
            .map(|(k, v)| (k.clone(), timeless(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        serde_json::Value::Array(a) => a.iter().map(timeless).collect(),
        other => other.clone(),
    }
}

#[test]
fn run_killed_repeatedly_gives_the_uninterrupted_results() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 150);
    let args = |out: &Path| -> Vec<String> {
        [
            "--threads",
            "2",
            "run",
            exp.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--jobs",
            "2",
            "--quiet",
        ]
        .map(String::from)
        .to_vec()
    };
    let (reference, out) = (tmp.path().join("reference"), tmp.path().join("killed"));
    let t0 = Instant::now();
    ok(&spawn(&args(&reference)).wait_with_output().unwrap());
    let full = t0.elapsed();

    let mut rng = Rng(0x5eed_0011);
    let mut done_before: Vec<String> = Vec::new();
    let mut kills = Vec::new();
    for k in 0..5 {
        let mut child = spawn(&args(&out));
        let delay = full.mul_f64(rng.range(8, 30) as f64 / 100.0);
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_some() {
            kills.push(format!("kill {k}: the sweep had finished after {delay:?}"));
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        wait_for_jobs_to_exit(&out);
        let seen = check_files(&out);
        // Finished jobs stay finished: their stamps are never removed or rewritten.
        let mut done: Vec<String> = files(&out.join("jobs"))
            .iter()
            .filter(|p| {
                !is_tmp(p)
                    && !p.to_string_lossy().contains(".started")
                    && !p.to_string_lossy().ends_with(".lock")
            })
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        done.sort();
        assert!(done_before.iter().all(|s| done.contains(s)), "kill {k}: a finished job was redone");
        kills.push(format!(
            "kill {k} after {delay:.2?}: {} jobs finished, {} files ok, {} tmp",
            done.len(),
            seen.checked,
            seen.tmp
        ));
        done_before = done;
    }
    let last = spawn(&args(&out)).wait_with_output().unwrap();
    ok(&last);
    eprintln!("run: uninterrupted sweep {full:.1?}; kills:\n  {}", kills.join("\n  "));
    check_files(&out);
    let (a, b) = (json(&reference.join("report/results.json")), json(&out.join("report/results.json")));
    assert_eq!(timeless(&a), timeless(&b), "results.json differs from the uninterrupted sweep's");
    assert!(a["rows"][1]["models"]["draws"] == 6, "{a}");
}

/// `memgen train` on S_a(8) of `ds` into `out` with extra flags; the output.
fn train(ds: &Path, out: &Path, steps: usize, extra: &[&str]) -> std::process::Output {
    let steps = steps.to_string();
    let model = tiny_model();
    let mut args = vec![
        "train",
        "--data",
        ds.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--n",
        "8",
        "--steps",
        &steps,
        "--batch-size",
        "8",
        "--checkpoint-every",
        "5",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    memgen(&args)
}

/// Rewrite safetensors file `path` through `edit` (name -> (dtype, shape, bytes)).
fn rewrite(path: &Path, edit: impl FnOnce(&mut BTreeMap<String, (String, Vec<usize>, Vec<u8>)>)) {
    let mut t = tensors(path);
    edit(&mut t);
    let views: Vec<(String, safetensors::tensor::TensorView)> = t
        .iter()
        .map(|(k, (_, shape, data))| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn runs_of_another_config_or_version_and_mismatched_checkpoints_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    prepare(&ds, "calpha", 40, 8);
    let run = tmp.path().join("run");
    ok(&train(&ds, &run, 10, &[]));
    let msg = fails_with(&train(&ds, &run, 10, &[]), REFUSED);
    assert!(msg.contains("already holds this run") && msg.contains("--resume"), "{msg}");
    let msg = fails_with(&train(&ds, &run, 20, &["--lr", "1e-3"]), REFUSED);
    assert!(msg.contains("train.steps: 10 -> 20") && msg.contains("train.lr: 0.0002 -> 0.001"), "{msg}");
    assert!(msg.contains("--force"), "{msg}");
    let before = std::fs::read(run.join("model.safetensors")).unwrap();
    ok(&train(&ds, &run, 20, &["--force"]));
    let aside: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("run.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "the old run is moved aside");
    assert_eq!(std::fs::read(aside[0].join("model.safetensors")).unwrap(), before);
    assert_eq!(json(&run.join("config.json"))["train"]["steps"], 20);

    // Another memgen version wrote the run: refused, unless --force.
    let cfg_path = run.join("config.json");
    let mut cfg = json(&cfg_path);
    cfg["memgen_version"] = "0.0.1".into();
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let resume = |extra: &[&str]| {
        let mut a = vec!["train", "--resume", run.to_str().unwrap(), "--steps", "25", "--quiet"];
        a.extend_from_slice(extra);
        memgen(&a)
    };
    let msg = fails_with(&resume(&[]), REFUSED);
    assert!(
        msg.contains("memgen 0.0.1") && msg.contains(env!("CARGO_PKG_VERSION")) && msg.contains("--force"),
        "{msg}"
    );
    ok(&resume(&["--force"]));
    assert_eq!(json(&cfg_path)["memgen_version"], env!("CARGO_PKG_VERSION"));

    // Checkpoints whose tensors do not fit the model config: the tensor and both shapes are named.
    let name = "conv_in.weight";
    let ema = run.join("ema.safetensors");
    assert!(tensors(&ema).contains_key(name), "{:?}", tensors(&ema).keys().take(5).collect::<Vec<_>>());
    rewrite(&ema, |t| {
        let e = t.get_mut(name).unwrap();
        e.1 = vec![e.1.iter().product()];
    });
    let sample = || {
        memgen(&[
            "sample",
            run.to_str().unwrap(),
            "--noise-seed",
            "1",
            "--count",
            "2",
            "--sampler",
            "ddim",
            "--ddim-steps",
            "2",
        ])
    };
    let msg = fails_with(&sample(), FAILED);
    assert!(
        msg.contains("ema.safetensors")
            && msg.contains(name)
            && msg.contains("[72]")
            && msg.contains("[8, 1, 3, 3]"),
        "{msg}"
    );
    rewrite(&ema, |t| {
        t.remove(name);
    });
    let msg = fails(&sample());
    assert!(msg.contains(&format!("no tensor named {name}")), "{msg}");
    let latest =
        run.join("checkpoints").join(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap().trim());
    for file in ["model.safetensors", "ema.safetensors"] {
        let path = latest.join(file);
        let good = std::fs::read(&path).unwrap();
        rewrite(&path, |t| {
            let e = t.get_mut(name).unwrap();
            e.1 = vec![1, 8, 3, 3];
        });
        let msg = fails(&resume(&[]));
        assert!(msg.contains(file) && msg.contains(name) && msg.contains("[1, 8, 3, 3]"), "{msg}");
        std::fs::write(&path, good).unwrap();
    }
    // Not a safetensors file at all.
    std::fs::write(latest.join("optimizer.safetensors"), b"\x10\0\0\0\0\0\0\0{\"a\":1}").unwrap();
    let msg = fails(&resume(&[]));
    assert!(msg.contains("optimizer.safetensors"), "{msg}");
}

/// A small tmpfs mounted for the test (needs root and mount permission), unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.to_str().unwrap()])
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Mount(dir.to_path_buf()))
    }
    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}"), self.0.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "remount {opts}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn a_full_or_read_only_disk_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    prepare(&ds, "calpha", 40, 8);
    // An output path below a regular file: an unwritable directory for any user, root included.
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let msg = fails(&train(&ds, &file.join("run"), 10, &[]));
    assert!(
        msg.contains(&file.join("run").display().to_string()) && msg.contains("Not a directory"),
        "{msg}"
    );

    let reference = tmp.path().join("reference");
    ok(&train(&ds, &reference, 15, &[]));
    // 1.3 MB hold the first checkpoint (step dir 648 kB + the run's two weight files 324 kB) but
    // not the second next to it.
    let disk = tmp.path().join("disk");
    let mount = match Mount::tmpfs(&disk, "1300k") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED the disk-full and read-only checks: {why} (they need root and mount)");
            return;
        }
    };
    let run = disk.join("run");
    let msg = fails_with(&train(&ds, &run, 15, &[]), FAILED);
    assert!(msg.contains("No space left on device") && msg.contains(&run.display().to_string()), "{msg}");
    assert_eq!(latest_step(&run), Some(5), "the first checkpoint stays the newest");
    check_files(&run);
    let left: Vec<PathBuf> = files(&run).into_iter().filter(|p| is_tmp(p)).collect();
    assert!(left.is_empty(), "temporary files left after the failed write: {left:?}");
    let weights = std::fs::read(run.join("model.safetensors")).unwrap();
    assert_eq!(
        tensors(&run.join("model.safetensors")),
        tensors(&run.join("checkpoints/step-00000005/model.safetensors"))
    );

    // Read-only: a clear error, nothing changed.
    mount.remount("ro");
    let msg = fails(&memgen(&["train", "--resume", run.to_str().unwrap(), "--quiet"]));
    assert!(msg.contains("Read-only file system") && msg.contains(&run.display().to_string()), "{msg}");
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), weights);

    // Space again: the run resumes from the kept checkpoint to the uninterrupted bits.
    mount.remount("rw,size=8m");
    let out = memgen(&["train", "--resume", run.to_str().unwrap(), "--quiet"]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("at step 5 of 15"));
    for f in ["model.safetensors", "ema.safetensors"] {
        assert!(tensors(&reference.join(f)) == tensors(&run.join(f)), "{f}");
    }
    eprintln!("disk full at the second checkpoint: error named the run, step 5 kept, resumed to equal bits");
}

//! The global `--json` flag, the exit codes and `--device`, run as a script would run memgen.

mod common;

use common::{fails_with, json, memgen, ok, prepare, samples, train_tiny, FAILED, REFUSED, USAGE};
use memgen_analysis::curve::DenoiseCurveRecord;
use memgen_data::dataset::Manifest;
use memgen_data::split::SplitFile;
use memgen_data::stage::{InfoRecord, PrepareRecord, SplitResult};
use memgen_linear::experiment::{LinearRecord, LinearResult};
use std::path::Path;
use std::process::Output;

/// stdout of a `--json` run: exactly one JSON object (on one line), returned parsed.
fn one_object(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is not one line\nstdout: {stdout}\nstderr: {}", stderr(out));
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(v.is_object(), "{v}");
    v
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The object of a successful `--json` run of `command`, checked for ok/command; its "result".
fn succeeded(out: &Output, command: &str) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(out));
    let v = one_object(out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["command"], command, "{v}");
    v["result"].clone()
}

/// The object of a failed `--json` run, checked against the exit code `code`.
fn failed(out: &Output, code: i32) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
    let v = one_object(out);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["exit_code"], code, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn model_info_as_json_matches_the_human_output() {
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/unet-tiny.toml");
    let out = memgen(&["--json", "model", "info", s(&tiny), "--side", "16"]);
    let r = succeeded(&out, "model info");
    // The human-readable text went to stderr, with the same numbers.
    let human = ok(&memgen(&["model", "info", s(&tiny), "--side", "16"]));
    assert_eq!(stderr(&out), human);
    assert_eq!(r["parameters"], 40_489);
    assert!(human.contains(&format!("parameters:  {}", r["parameters"])), "{human}");
    let gflop = r["forward_gflop_per_image"].as_f64().unwrap();
    assert!(human.contains(&format!("{gflop:.4} GFLOP per 16x16 image")), "{human}\n{r}");
    assert_eq!(r["side"], 16);
    assert_eq!(r["arch"], "unet");
    // --json after the subcommand works the same.
    let after = memgen(&["model", "info", s(&tiny), "--side", "16", "--json"]);
    assert_eq!(succeeded(&after, "model info"), r);
}

#[test]
fn data_prepare_and_info_as_json_match_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    let out =
        memgen(&["--json", "data", "prepare", "calpha", "--count", "12", "--side", "8", "--out", s(&ds)]);
    let r: PrepareRecord = serde_json::from_value(succeeded(&out, "data prepare")).unwrap();
    assert!(stderr(&out).contains("prepared 12 images of 8x8"), "{}", stderr(&out));
    let manifest: Manifest = memgen_io::read_json(&ds.join("manifest.json")).unwrap();
    assert_eq!(r.manifest, ds.join("manifest.json"));
    assert_eq!(r.count, manifest.count);
    assert_eq!(r.count, 12);
    assert_eq!(r.content_hash, manifest.content_hash);
    assert_eq!((r.height, r.width), (manifest.height, manifest.width));

    let out = memgen(&["data", "info", s(&ds), "--json"]);
    let r: InfoRecord = serde_json::from_value(succeeded(&out, "data info")).unwrap();
    assert_eq!(r.manifest, manifest, "data info --json holds the whole manifest");
    assert!(stderr(&out).contains("content hash: "), "{}", stderr(&out));

    let out = memgen(&["--json", "data", "split", s(&ds), "--n", "2,4", "--out", s(&tmp.path().join("sp"))]);
    let r: SplitResult = serde_json::from_value(succeeded(&out, "data split")).unwrap();
    let split: SplitFile = memgen_io::read_json(&r.split).unwrap();
    assert_eq!(r.n, [2, 4]);
    assert_eq!(split.content_hash, manifest.content_hash);

    // A second prepare into the same directory is refused (3), in JSON too.
    let again =
        memgen(&["--json", "data", "prepare", "calpha", "--count", "12", "--side", "8", "--out", s(&ds)]);
    let v = failed(&again, REFUSED);
    assert!(v["error"].as_str().unwrap().contains("--force"), "{v}");
}

#[test]
fn train_as_json_reports_the_last_log_line_and_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    prepare(&ds, "calpha", 40, 8);
    let run = tmp.path().join("run");
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/unet-tiny.toml");
    let args = [
        "--json",
        "train",
        "--data",
        s(&ds),
        "--model",
        s(&tiny),
        "--out",
        s(&run),
        "--n",
        "8",
        "--steps",
        "6",
        "--batch-size",
        "4",
        "--log-every",
        "3",
        "--checkpoint-every",
        "3",
        "--quiet",
    ];
    let out = memgen(&args);
    let r = succeeded(&out, "train");
    assert!(stderr(&out).contains("trained to step 6"), "{}", stderr(&out));
    let log = std::fs::read_to_string(run.join("train.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(r["last_log"], last, "the reported loss, lr and speed are those of train.jsonl");
    assert_eq!(r["step"], 6);
    assert_eq!(r["step"], json(&run.join("config.json"))["train"]["steps"]);
    assert_eq!(r["log"], s(&run.join("train.jsonl")));
    let ckpt = Path::new(r["checkpoint"].as_str().unwrap());
    assert!(ckpt.join("model.safetensors").is_file(), "{ckpt:?}");
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    assert!(ckpt.ends_with(latest.trim()), "{ckpt:?} vs {latest}");

    // The same command again: refused to protect the run (3), the run left as it was.
    let v = failed(&memgen(&args), REFUSED);
    assert!(v["error"].as_str().unwrap().contains("already holds this run"), "{v}");
    assert_eq!(std::fs::read_to_string(run.join("train.jsonl")).unwrap(), log);
    // Resuming at its last step has nothing to do, and says so in JSON.
    let out = memgen(&["--json", "train", "--resume", s(&run), "--quiet"]);
    let r = succeeded(&out, "train");
    assert_eq!(r["step"], 6);
    assert_eq!(r["last_log"], serde_json::Value::Null);
}

#[test]
fn linear_as_json_holds_the_results_of_linear_json() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("lin");
    let out = memgen(&[
        "--json",
        "linear",
        "--data",
        "gaussian",
        "--side",
        "3",
        "--n",
        "4,16",
        "--check-samples",
        "0",
        "--sweep-points",
        "2",
        "--out",
        s(&out_dir),
    ]);
    let r: LinearResult = serde_json::from_value(succeeded(&out, "linear")).unwrap();
    let file: LinearRecord = memgen_io::read_json(&out_dir.join("linear.json")).unwrap();
    assert_eq!(r.results, file.results);
    assert_eq!(r.results.len(), 2);
    assert_eq!(r.kl_limit, file.kl_limit);
    assert_eq!(r.d, 9);
    assert_eq!(r.linear_json, out_dir.join("linear.json"));
    // The table went to stderr.
    assert!(stderr(&out).contains("| 16 |"), "{}", stderr(&out));
}

#[test]
fn exit_codes_tell_usage_refusal_and_failure_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-dataset");
    // 2: clap's own usage errors, in JSON too.
    let v = failed(&memgen(&["--json", "data", "info"]), USAGE);
    assert!(v["error"].as_str().unwrap().contains("DIR"), "{v}");
    fails_with(&memgen(&["train", "--no-such-flag"]), USAGE);
    fails_with(&memgen(&["--threads", "0", "data", "recipes"]), USAGE);
    // 2: a missing input, named with its flag, before anything is written.
    let v = failed(&memgen(&["--json", "data", "info", s(&missing)]), USAGE);
    let e = v["error"].as_str().unwrap();
    assert!(e.contains(s(&missing)) && e.contains("memgen data prepare"), "{v}");
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/unet-tiny.toml");
    let run = tmp.path().join("run");
    let err = fails_with(
        &memgen(&["train", "--data", s(&missing), "--model", s(&tiny), "--out", s(&run), "--steps", "2"]),
        USAGE,
    );
    assert!(err.contains("--data") && err.contains(s(&missing)), "{err}");
    assert!(!run.exists(), "nothing is created for a usage error");
    // 1: the work failed on a file that is there but broken.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("manifest.json"), b"{ not json").unwrap();
    let v = failed(&memgen(&["--json", "data", "info", s(&bad)]), FAILED);
    assert!(v["error"].as_str().unwrap().contains("manifest.json"), "{v}");
    // 0, with the human text on stdout when --json is not given.
    let out = memgen(&["data", "recipes"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("calpha"));
    let r = succeeded(&memgen(&["--json", "data", "recipes"]), "data recipes");
    assert!(r["recipes"]["calpha"].is_string(), "{r}");
}

#[test]
fn device_flags_are_checked_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    prepare(&ds, "calpha", 40, 8);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    train_tiny(&ds, &a, 8, "a", 4, 4);
    train_tiny(&ds, &b, 8, "b", 4, 4);
    let sample = |out: &Path, extra: &[&str]| {
        let mut args =
            vec!["sample", s(&a), "--count", "3", "--sampler", "ddim", "--ddim-steps", "3", "--out", s(out)];
        args.extend_from_slice(extra);
        memgen(&args)
    };
    if !cfg!(feature = "cuda") {
        let out = tmp.path().join("cuda");
        let err = fails_with(&sample(&out, &["--device", "cuda:0"]), USAGE);
        assert!(err.contains("--device cuda:0") && err.contains("--features cuda"), "{err}");
        assert!(!out.exists(), "nothing is written before the device is checked");
        let cmp = tmp.path().join("cmp-cuda");
        let err = fails_with(
            &memgen(&["compare", s(&a), s(&b), "--count", "2", "--out", s(&cmp), "--device", "cuda:1"]),
            USAGE,
        );
        assert!(err.contains("--features cuda"), "{err}");
        assert!(!cmp.exists());
    }
    let err = fails_with(&sample(&tmp.path().join("gpu"), &["--device", "gpu"]), USAGE);
    assert!(err.contains("--device gpu") && err.contains("cpu or cuda:N"), "{err}");
    let err = fails_with(
        &memgen(&["sample", "--oracle", "--data", s(&ds), "--n", "4", "--count", "1", "--device", "cuda:0"]),
        USAGE,
    );
    assert!(err.contains("--device cuda:0"), "{err}");

    // --device cpu is the default: the same samples, bit for bit.
    let (default, cpu) = (tmp.path().join("default"), tmp.path().join("cpu"));
    ok(&sample(&default, &[]));
    let out = sample(&cpu, &["--device", "cpu", "--json"]);
    let r = succeeded(&out, "sample");
    let (dims, pixels) = samples(&cpu.join("samples.safetensors"));
    assert_eq!((dims.clone(), pixels.iter().map(|v| v.to_bits()).collect::<Vec<_>>()), {
        let (d, p) = samples(&default.join("samples.safetensors"));
        (d, p.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
    });
    // The JSON result is what samples.json records.
    let record = json(&cpu.join("samples.json"));
    assert_eq!(r["count"], 3);
    assert_eq!(r["dims"], serde_json::json!(dims));
    assert_eq!(r["in_range_fraction"], record["result"]["in_range_fraction"]);
    assert_eq!(r["seconds"], record["result"]["seconds"]);
    assert_eq!(r["samples"], s(&cpu.join("samples.safetensors")));

    // denoise-curve and jacobian: checked before any work; --device cpu is the default's numbers.
    if !cfg!(feature = "cuda") {
        let dc = tmp.path().join("dc-cuda");
        let args =
            ["denoise-curve", s(&a), "--data", s(&ds), "--count", "4", "--out", s(&dc), "--device", "cuda:0"];
        let err = fails_with(&memgen(&args), USAGE);
        assert!(err.contains("--features cuda"), "{err}");
        assert!(!dc.exists());
        let jac = tmp.path().join("jac-cuda");
        let args =
            ["jacobian", s(&a), "--image", "0", "--sigma", "0.1", "--out", s(&jac), "--device", "cuda:0"];
        let err = fails_with(&memgen(&args), USAGE);
        assert!(err.contains("--features cuda"), "{err}");
        assert!(!jac.exists());
    }
    let curve = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "denoise-curve",
            s(&a),
            "--data",
            s(&ds),
            "--count",
            "4",
            "--sigmas",
            "0.05,0.2",
            "--out",
            s(out),
        ];
        args.extend_from_slice(extra);
        ok(&memgen(&args));
        memgen_io::read_json::<DenoiseCurveRecord>(&out.join("denoise-curve.json")).unwrap().points
    };
    let points = curve(&tmp.path().join("dc-default"), &[]);
    assert_eq!(points.len(), 2, "{points:?}");
    assert_eq!(curve(&tmp.path().join("dc-cpu"), &["--device", "cpu"]), points);

    // compare --device cpu, in JSON: the numbers of compare.json.
    let cmp = tmp.path().join("cmp");
    let out = memgen(&[
        "--json",
        "compare",
        s(&a),
        s(&b),
        "--count",
        "3",
        "--sampler",
        "ddim",
        "--ddim-steps",
        "3",
        "--out",
        s(&cmp),
        "--device",
        "cpu",
    ]);
    let r = succeeded(&out, "compare");
    let file = json(&cmp.join("compare.json"));
    assert_eq!(r["agree"], file["comparison"]["agree"]);
    assert_eq!(r["corr_ab_median"], file["comparison"]["corr_ab"]["median"]);
    assert_eq!(r["a_memorized_by_corr"], file["comparison"]["a"]["own"]["memorized_by_corr"]);
    assert_eq!(r["count"], 3);
}

/// Every command that runs a network takes `--device`, and checks it before anything else (here the
/// inputs do not even exist): a name that is not `cpu` or `cuda:N`, and in a build without the
/// `cuda` feature any GPU, is a usage error (exit 2) naming the flag.
#[test]
fn every_network_command_checks_its_device_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, data, out) = (tmp.path().join("run"), tmp.path().join("data"), tmp.path().join("out"));
    let (run, data, out) = (s(&run), s(&data), s(&out));
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/unet-tiny.toml");
    let commands: Vec<Vec<&str>> = vec![
        vec!["train", "--data", data, "--model", s(&model), "--out", out, "--steps", "2"],
        vec!["sample", run, "--count", "2", "--out", out],
        vec!["compare", run, run, "--count", "2", "--out", out],
        vec!["denoise-curve", run, "--data", data, "--out", out],
        vec!["denoise-error", run, "--data", data, "--out", out],
        vec!["jacobian", run, "--image", "0", "--sigma", "0.1", "--out", out],
        // The baselines run on the CPU only.
        vec!["sample", "--oracle", "--data", data, "--n", "4", "--out", out],
        vec!["compare", "--oracle", "--data", data, "--n", "4", "--out", out],
        vec!["compare", "--linear", "--data", data, "--n", "4", "--out", out],
    ];
    for args in &commands {
        let with = |device: &str| {
            let mut a = vec!["--json"];
            a.extend_from_slice(args);
            a.extend_from_slice(&["--device", device]);
            memgen(&a)
        };
        let what = args.join(" ");
        let v = failed(&with("gpu"), USAGE);
        let e = v["error"].as_str().unwrap();
        assert!(e.contains("--device gpu") && e.contains("cpu or cuda:N"), "{what}: {v}");
        let baseline = args.contains(&"--oracle") || args.contains(&"--linear");
        if !cfg!(feature = "cuda") || baseline {
            let v = failed(&with("cuda:0"), USAGE);
            let e = v["error"].as_str().unwrap();
            assert!(e.contains("--device cuda:0"), "{what}: {v}");
            let why = if baseline { "CPU only" } else { "--features cuda" };
            assert!(e.contains(why), "{what}: {v}");
        }
        assert!(!Path::new(out).exists(), "{what}: nothing is written before the device is checked");
    }
}

#[test]
fn model_bench_saves_with_save_and_prints_with_json() {
    let tmp = tempfile::tempdir().unwrap();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/unet-tiny.toml");
    let file = tmp.path().join("bench.json");
    let out = memgen(&[
        "--json",
        "model",
        "bench",
        s(&tiny),
        "--side",
        "8",
        "--batch-size",
        "2",
        "--steps",
        "1",
        "--save",
        s(&file),
    ]);
    let r = succeeded(&out, "model bench");
    assert_eq!(r["bench"], json(&file));
    assert_eq!(r["saved"], s(&file));
    assert_eq!(r["bench"]["batch_size"], 2);
}

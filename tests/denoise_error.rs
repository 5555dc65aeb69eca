//! End-to-end test of `memgen denoise-error`: a run's error on its training images against held-out
//! images, with the linear and oracle denoisers of its training set.

mod common;

use common::{fails, json, memgen, ok};
use std::collections::HashSet;

fn indices(v: &serde_json::Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as usize).collect()
}

#[test]
fn denoise_error_of_a_tiny_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (ds, run) = (tmp.path().join("ds"), tmp.path().join("run"));
    common::prepare(&ds, "calpha", 60, 8);
    common::train_tiny(&ds, &run, 4, "a", 20, 8);
    let (ds_s, run_s) = (ds.to_str().unwrap(), run.to_str().unwrap());
    let args = [
        "denoise-error",
        run_s,
        "--data",
        ds_s,
        "--exclude-split",
        "20",
        "--count",
        "16",
        "--batch-size",
        "5",
    ];
    let text = ok(&memgen(&args));
    assert!(text.contains("| σ | network train"), "{text}");
    let out = run.join("denoise-error");
    let rec = json(&out.join("denoise-error.json"));
    // The training images are the run's; the held-out ones lie outside S_A(20) ∪ S_B(20).
    let split = json(&run.join("split.json"));
    assert_eq!(indices(&rec["train_indices"]), indices(&split["indices"]));
    let held = indices(&rec["held_out_indices"]);
    assert_eq!(held.len(), 16);
    let split_run = tmp.path().join("split");
    ok(&memgen(&["data", "split", ds_s, "--n", "20", "--seed", "0", "--out", split_run.to_str().unwrap()]));
    let s = json(&split_run.join("split.json"));
    let used: HashSet<usize> =
        indices(&s["splits"][0]["a"]).into_iter().chain(indices(&s["splits"][0]["b"])).collect();
    assert!(held.iter().all(|i| !used.contains(i)), "{held:?} meets S_A(20) ∪ S_B(20)");
    let e = &rec["errors"];
    assert_eq!(e["sigmas"], serde_json::json!([0.05, 0.1, 0.2, 0.4]));
    assert_eq!((e["train_images"].as_u64(), e["test_images"].as_u64()), (Some(4), Some(16)));
    for i in 0..4 {
        let mse = |d: &str, set: &str| e[d][set][i]["mse"].as_f64().unwrap();
        // The oracle of 4 images: (near) exact on them, far off on fresh ones.
        assert!(mse("oracle", "train") < 1e-3 * mse("oracle", "test"), "σ #{i}");
        assert!(mse("network", "test").is_finite() && mse("linear", "test").is_finite());
    }
    let csv = std::fs::read_to_string(out.join("denoise-error.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 2 * 4);
    // Refusals: another dataset, and a noise level that is not positive.
    let other = tmp.path().join("other");
    common::prepare(&other, "calpha", 30, 8);
    let err = fails(&memgen(&["denoise-error", run_s, "--data", other.to_str().unwrap()]));
    assert!(err.contains("not the dataset"), "{err}");
    let err = fails(&memgen(&["denoise-error", run_s, "--data", ds_s, "--sigmas", "0.1,-1"]));
    assert!(err.contains("--sigmas"), "{err}");
}

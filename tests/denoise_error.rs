//! End-to-end test of `memgen denoise-error`: a run's error on its training images against held-out
//! images, with the linear and oracle denoisers of its training set.

mod common;

use common::{fails, memgen, ok};
use memgen_analysis::generalization::DenoiseErrorRecord;
use memgen_data::split::SplitFile;
use memgen_diffusion::run::SplitRecord;
use std::collections::HashSet;

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
    let rec: DenoiseErrorRecord = memgen_io::read_json(&out.join("denoise-error.json")).unwrap();
    // The training images are the run's; the held-out ones lie outside S_A(20) ∪ S_B(20).
    let split: SplitRecord = memgen_io::read_json(&run.join("split.json")).unwrap();
    assert_eq!(rec.train_indices, split.indices);
    let held = &rec.held_out_indices;
    assert_eq!(held.len(), 16);
    let split_run = tmp.path().join("split");
    ok(&memgen(&["data", "split", ds_s, "--n", "20", "--seed", "0", "--out", split_run.to_str().unwrap()]));
    let s: SplitFile = memgen_io::read_json(&split_run.join("split.json")).unwrap();
    let used: HashSet<usize> = s.splits[0].a.iter().chain(&s.splits[0].b).copied().collect();
    assert!(held.iter().all(|i| !used.contains(i)), "{held:?} meets S_A(20) ∪ S_B(20)");
    let e = &rec.errors;
    assert_eq!(e.sigmas, [0.05, 0.1, 0.2, 0.4]);
    assert_eq!((e.train_images, e.test_images), (4, 16));
    for i in 0..4 {
        // The oracle of 4 images: (near) exact on them, far off on fresh ones.
        assert!(e.oracle.train[i].mse < 1e-3 * e.oracle.test[i].mse, "σ #{i}");
        assert!(e.network.test[i].mse.is_finite() && e.linear.test[i].mse.is_finite());
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

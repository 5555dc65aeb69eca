//! End-to-end tests of `memgen compare` and `memgen memorization`.

mod common;

use common::{corr, fails, json, memgen, ok, samples};
use std::path::Path;

fn train(ds: &Path, run: &Path, side: &str) {
    common::train_tiny(ds, run, 5, side, 3, 4);
}

#[test]
fn compare_two_runs_and_score_verbatim_training_images() {
    let tmp = tempfile::tempdir().unwrap();
    let (ds, run_a, run_b) = (tmp.path().join("ds"), tmp.path().join("a"), tmp.path().join("b"));
    common::prepare(&ds, "calpha", 20, 8);
    train(&ds, &run_a, "a");
    train(&ds, &run_b, "b");
    let out = tmp.path().join("cmp");
    let args = [
        "compare",
        run_a.to_str().unwrap(),
        run_b.to_str().unwrap(),
        "--noise-seed",
        "3",
        "--count",
        "6",
        "--sampler",
        "ddim",
        "--ddim-steps",
        "5",
        "--out",
        out.to_str().unwrap(),
    ];
    let text = ok(&memgen(&args));
    assert!(text.contains("corr(A, B)"), "{text}");
    for f in ["compare.json", "compare.csv", "compare.png", "compare-hist.svg", "compare-hist.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Samples were saved in each run's default place; corr(x_A, x_B) recomputed here matches.
    let (_, sa) = samples(&run_a.join("samples/seed-3/samples.safetensors"));
    let (_, sb) = samples(&run_b.join("samples/seed-3/samples.safetensors"));
    let report = json(&out.join("compare.json"));
    let pairs = report["comparison"]["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 6);
    for (k, p) in pairs.iter().enumerate() {
        let want = corr(&sa[k * 64..(k + 1) * 64], &sb[k * 64..(k + 1) * 64]);
        assert!((p["corr_ab"].as_f64().unwrap() - want).abs() < 1e-9, "draw {k}");
    }
    assert_eq!(report["shared_training_images"], 0);
    // The nearest image in S_A is one of A's training indices.
    let split_a = json(&run_a.join("split.json"));
    let ia: Vec<u64> = split_a["indices"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(pairs.iter().all(|p| ia.contains(&p["a_own"]["corr_nn"].as_u64().unwrap())));
    assert_eq!(std::fs::read_to_string(out.join("compare.csv")).unwrap().lines().count(), 7);
    // A second comparison reuses the saved samples and gives the same numbers.
    let again = tmp.path().join("cmp2");
    let mut args2 = args.to_vec();
    *args2.last_mut().unwrap() = again.to_str().unwrap();
    let out2 = memgen(&args2);
    assert!(String::from_utf8_lossy(&out2.stderr).contains("reusing"));
    assert_eq!(json(&again.join("compare.json"))["comparison"], report["comparison"]);

    // Samples that are A's training images verbatim score as fully memorized.
    let data = memgen_data::dataset::PreparedDataset::read(&ds).unwrap();
    let verbatim: Vec<f32> = ia.iter().flat_map(|&i| data.image(i as usize).to_vec()).collect();
    let file = tmp.path().join("verbatim.safetensors");
    let bytes: Vec<u8> = verbatim.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![ia.len(), 1, 8, 8], &bytes)
        .unwrap();
    std::fs::write(&file, safetensors::serialize([("samples", view)], None).unwrap()).unwrap();
    let mem = tmp.path().join("mem");
    ok(&memgen(&[
        "memorization",
        run_a.to_str().unwrap(),
        "--samples",
        file.to_str().unwrap(),
        "--out",
        mem.to_str().unwrap(),
    ]));
    let m = json(&mem.join("memorization.json"));
    assert_eq!(m["summary"]["memorized_by_corr"], 1.0);
    assert_eq!(m["summary"]["memorized_by_ratio"], 1.0);
    let scores = m["scores"].as_array().unwrap();
    for (s, i) in scores.iter().zip(&ia) {
        assert_eq!(s["corr_nn"].as_u64(), Some(*i));
        assert_eq!(s["l2_nn1"], 0.0);
    }
    assert!(mem.join("memorization.png").is_file() && mem.join("memorization-hist.svg").is_file());
    // Against B's training set the same images are not memorized.
    ok(&memgen(&[
        "memorization",
        run_b.to_str().unwrap(),
        "--samples",
        file.to_str().unwrap(),
        "--out",
        mem.to_str().unwrap(),
    ]));
    assert_eq!(json(&mem.join("memorization.json"))["summary"]["memorized_by_ratio"], 0.0);

    // Bad input is refused with a message naming what is wrong.
    let err = fails(&memgen(&[&args[..3], &["--corr-threshold", "2"]].concat()));
    assert!(err.contains("--corr-threshold"), "{err}");
    let err = fails(&memgen(&[
        "memorization",
        run_a.to_str().unwrap(),
        "--samples",
        ds.join("manifest.json").to_str().unwrap(),
    ]));
    assert!(err.contains("manifest.json"), "{err}");
    let err = fails(&memgen(&["compare", run_a.to_str().unwrap(), tmp.path().to_str().unwrap()]));
    assert!(err.contains("not a training run"), "{err}");
}

//! End-to-end tests of `memgen compare --linear`: the Gaussian denoisers of S_A(N) and S_B(N),
//! sampled with the networks' sampler and shared noise, and scored like the networks.

mod common;

use common::{corr, fails, json, memgen, ok, samples};

/// The indices of a JSON array.
fn indices(v: &serde_json::Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as usize).collect()
}

#[test]
fn linear_pair_of_one_image_each_reproduces_it_and_is_scored_like_the_networks() {
    let tmp = tempfile::tempdir().unwrap();
    let ds_dir = tmp.path().join("ds");
    let ds_s = ds_dir.to_str().unwrap();
    ok(&memgen(&["data", "prepare", "calpha", "--count", "40", "--side", "8", "--out", ds_s]));
    let split_run = tmp.path().join("split");
    ok(&memgen(&["data", "split", ds_s, "--n", "1", "--seed", "0", "--out", split_run.to_str().unwrap()]));
    let split = json(&split_run.join("split.json"));
    let (set_a, set_b) = (indices(&split["splits"][0]["a"]), indices(&split["splits"][0]["b"]));
    let args = [
        "compare",
        "--linear",
        "--data",
        ds_s,
        "--n",
        "1",
        "--count",
        "4",
        "--sampler",
        "ddim",
        "--ddim-steps",
        "20",
    ];
    let text = ok(&memgen(&args));
    assert!(text.contains("corr(A, B)") && text.contains("A in [-0.25, 1.25]"), "{text}");
    let out = ds_dir.join("linear/compare-n1-seed-0");
    let report = json(&out.join("compare.json"));
    assert_eq!(report["linear"], true);
    assert_eq!((report["n_a"].as_u64(), report["n_b"].as_u64()), (Some(1), Some(1)));
    let rec_a = json(&out.join("samples-a/samples.json"));
    assert_eq!(indices(&rec_a["linear"]["indices"]), set_a);
    assert_eq!(indices(&json(&out.join("samples-b/samples.json"))["linear"]["indices"]), set_b);
    // Σ0 = 0 for one image: every sample is that image, so every sample is memorized and in range,
    // and the two sides "agree" exactly as much as their two training images correlate.
    let cmp = &report["comparison"];
    assert_eq!(cmp["a"]["own"]["memorized_by_corr"], 1.0);
    assert_eq!(cmp["b"]["own"]["memorized_by_corr"], 1.0);
    assert_eq!((cmp["a"]["in_range"].as_f64(), cmp["b"]["in_range"].as_f64()), (Some(1.0), Some(1.0)));
    // The novelty reference: the 38 images in neither training set against S_A (its one image).
    let novelty = &cmp["novelty"];
    assert_eq!(novelty["corr"].as_array().unwrap().len(), 38, "{novelty}");
    assert!(indices(&novelty["nn"]).iter().all(|&i| i == set_a[0]));
    assert!(novelty["summary"]["max"].as_f64().unwrap() < 0.999, "a held-out image is a copy of S_A's");
    let (_, sa) = samples(&out.join("samples-a/samples.safetensors"));
    let (_, sb) = samples(&out.join("samples-b/samples.safetensors"));
    let ds = memgen_data::dataset::PreparedDataset::read(&ds_dir).unwrap();
    assert!(corr(&sb[..64], ds.image(set_b[0])) > 0.9999);
    let images_corr = corr(ds.image(set_a[0]), ds.image(set_b[0]));
    for (k, p) in cmp["pairs"].as_array().unwrap().iter().enumerate() {
        assert!(corr(&sa[k * 64..(k + 1) * 64], ds.image(set_a[0])) > 0.9999, "draw {k}");
        assert!((p["corr_ab"].as_f64().unwrap() - images_corr).abs() < 1e-3, "draw {k}");
    }
}

/// `--blind`: the blind sampler with the Gaussian denoiser reading σ off its input; one image per
/// side is again reproduced (the residual of Σ0 = 0 is y − μ0), and the samples record their steps.
#[test]
fn blind_linear_pair_of_one_image_each_reproduces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ds_dir = tmp.path().join("ds");
    let ds_s = ds_dir.to_str().unwrap();
    ok(&memgen(&["data", "prepare", "calpha", "--count", "40", "--side", "8", "--out", ds_s]));
    let args =
        ["compare", "--linear", "--blind", "--data", ds_s, "--n", "1", "--count", "3", "--beta", "0.5"];
    ok(&memgen(&args));
    let out = ds_dir.join("linear/compare-n1-blind-seed-0");
    let report = json(&out.join("compare.json"));
    assert_eq!((report["linear"].clone(), report["blind"].clone()), (true.into(), true.into()));
    assert_eq!(report["comparison"]["a"]["own"]["memorized_by_corr"], 1.0);
    let rec = json(&out.join("samples-a/samples.json"));
    assert_eq!(rec["linear"]["blind"], true);
    assert_eq!(rec["result"]["steps"].as_array().unwrap().len(), 3);
    assert!(rec["result"]["converged"].as_array().unwrap().iter().all(|c| c == true));
    let err = fails(&memgen(&["compare", "--blind", "--data", ds_s, "--n", "1"]));
    assert!(err.contains("--linear"), "{err}");
}

#[test]
fn linear_pair_flags_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let ds_dir = tmp.path().join("ds");
    let ds_s = ds_dir.to_str().unwrap();
    ok(&memgen(&["data", "prepare", "calpha", "--count", "40", "--side", "8", "--out", ds_s]));
    let err = fails(&memgen(&["compare", "--linear", "--n", "4"]));
    assert!(err.contains("--data"), "{err}");
    let err = fails(&memgen(&["compare", "--linear", "--data", ds_s]));
    assert!(err.contains("--n"), "{err}");
    let err = fails(&memgen(&["compare", "--linear", "--oracle", "--data", ds_s, "--n", "4"]));
    assert!(err.contains("cannot be used with"), "{err}");
    let err = fails(&memgen(&["compare", "run-a", "run-b", "--linear", "--data", ds_s, "--n", "4"]));
    assert!(err.contains("cannot be used with"), "{err}");
    let err = fails(&memgen(&["compare", "run-a", "run-b", "--data", ds_s, "--n", "4"]));
    assert!(err.contains("--oracle or --linear"), "{err}");
    assert!(!ds_dir.join("linear").exists());
}

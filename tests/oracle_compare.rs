//! End-to-end tests of `memgen compare --oracle`: the empirical optimal denoisers of S_A(N) and
//! S_B(N), driven by the same noise, each reproduce their own training images.

mod common;

use common::{corr, fails, json, memgen, ok, samples};
use memgen_data::dataset::PreparedDataset;

/// The indices of a JSON array.
fn indices(v: &serde_json::Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as usize).collect()
}

/// The best correlation of every sample in `pixels` with the images `set` of `ds`, and its index.
fn nearest(pixels: &[f32], ds: &PreparedDataset, set: &[usize]) -> Vec<(f64, usize)> {
    pixels
        .chunks(ds.image_len())
        .map(|s| {
            set.iter().map(|&i| (corr(s, ds.image(i)), i)).fold((f64::NEG_INFINITY, 0), |b, c| {
                if c.0 > b.0 {
                    c
                } else {
                    b
                }
            })
        })
        .collect()
}

#[test]
fn oracle_compare_memorizes_each_side_and_reuses_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let ds_dir = tmp.path().join("ds");
    let ds_s = ds_dir.to_str().unwrap();
    ok(&memgen(&["data", "prepare", "calpha", "--count", "40", "--side", "8", "--out", ds_s]));
    let ds = PreparedDataset::read(&ds_dir).unwrap();
    // S_A(4), S_B(4) as `memgen data split` draws them.
    let split_run = tmp.path().join("split");
    ok(&memgen(&["data", "split", ds_s, "--n", "4", "--seed", "0", "--out", split_run.to_str().unwrap()]));
    let split = json(&split_run.join("split.json"));
    let (set_a, set_b) = (indices(&split["splits"][0]["a"]), indices(&split["splits"][0]["b"]));
    assert!(set_a.iter().all(|i| !set_b.contains(i)), "{set_a:?} and {set_b:?} overlap");

    let args = [
        "compare",
        "--oracle",
        "--data",
        ds_s,
        "--n",
        "4",
        "--count",
        "6",
        "--sampler",
        "ddim",
        "--ddim-steps",
        "20",
    ];
    let first = memgen(&args);
    let text = ok(&first);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(text.contains("corr(A, B)") && text.contains("N_A = 4, N_B = 4"), "{text}");
    // Default output directory; samples in the default directories of `memgen sample --oracle`.
    let out = ds_dir.join("oracle/compare-n4-seed-0");
    for f in ["compare.json", "compare.csv", "compare.png", "compare-hist.svg", "compare-hist.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let (dir_a, dir_b) = (ds_dir.join("oracle/a-n4/seed-0"), ds_dir.join("oracle/b-n4/seed-0"));
    assert_eq!(indices(&json(&dir_a.join("samples.json"))["oracle"]["indices"]), set_a);
    assert_eq!(indices(&json(&dir_b.join("samples.json"))["oracle"]["indices"]), set_b);

    let report = json(&out.join("compare.json"));
    assert_eq!(report["oracle"], true);
    assert_eq!(report["data"], ds_s);
    assert_eq!((report["n"].as_u64(), report["split_seed"].as_u64()), (Some(4), Some(0)));
    assert_eq!((report["n_a"].as_u64(), report["n_b"].as_u64()), (Some(4), Some(4)));
    assert_eq!(report["shared_training_images"], 0);
    assert_eq!(report["count"], 6);
    assert_eq!(report["sampler"]["sampler"]["ddim"]["steps"], 20);
    assert!(report["threads"].as_u64().unwrap() >= 1);
    assert_eq!(report["schedule"]["steps"], 1000);

    // Each sample is (a copy of) an image of its own side; the recorded neighbours agree.
    let (shape, sa) = samples(&dir_a.join("samples.safetensors"));
    assert_eq!(shape, vec![6, 1, 8, 8]);
    let (_, sb) = samples(&dir_b.join("samples.safetensors"));
    let pairs = report["comparison"]["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 6);
    let (near_a, near_b) = (nearest(&sa, &ds, &set_a), nearest(&sb, &ds, &set_b));
    println!("best correlations A: {near_a:?}\nB: {near_b:?}");
    for (k, p) in pairs.iter().enumerate() {
        assert!(near_a[k].0 > 0.99 && near_b[k].0 > 0.99, "draw {k}: {:?} {:?}", near_a[k], near_b[k]);
        let nn_a = p["a_own"]["corr_nn"].as_u64().unwrap() as usize;
        assert!(set_a.contains(&nn_a), "draw {k}: nearest {nn_a} not in S_A {set_a:?}");
        assert_eq!(nn_a, near_a[k].1, "draw {k}");
        assert_eq!(p["b_own"]["corr_nn"].as_u64().unwrap() as usize, near_b[k].1, "draw {k}");
        assert!(p["a_own"]["corr"].as_f64().unwrap() > 0.99, "draw {k}");
        let want = corr(&sa[k * 64..(k + 1) * 64], &sb[k * 64..(k + 1) * 64]);
        assert!((p["corr_ab"].as_f64().unwrap() - want).abs() < 1e-9, "draw {k}");
    }
    assert_eq!(std::fs::read_to_string(out.join("compare.csv")).unwrap().lines().count(), 7);

    // A second comparison (elsewhere) reuses both sides' samples and gives the same numbers.
    let again = tmp.path().join("again");
    let second = memgen(&[&args[..], &["--out", again.to_str().unwrap()]].concat());
    ok(&second);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(stderr.matches("reusing").count(), 2, "{stderr}");
    assert_eq!(json(&again.join("compare.json"))["comparison"], report["comparison"]);
    assert!(!again.join("samples-a").exists());

    // Another schedule does not reuse them: fresh samples go under OUT/samples-a|b.
    let cosine = tmp.path().join("cosine");
    let third = memgen(&[&args[..], &["--schedule", "cosine", "--out", cosine.to_str().unwrap()]].concat());
    ok(&third);
    assert!(!String::from_utf8_lossy(&third.stderr).contains("reusing"));
    assert!(cosine.join("samples-a/samples.safetensors").is_file());
    assert!(cosine.join("samples-b/samples.safetensors").is_file());
    assert_eq!(json(&cosine.join("compare.json"))["schedule"]["kind"], "cosine");
}

#[test]
fn oracle_compare_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let ds_dir = tmp.path().join("ds");
    let ds_s = ds_dir.to_str().unwrap();
    ok(&memgen(&["data", "prepare", "calpha", "--count", "40", "--side", "8", "--out", ds_s]));
    let err = fails(&memgen(&["compare", "--oracle", "--n", "4"]));
    assert!(err.contains("--data"), "{err}");
    let err = fails(&memgen(&["compare", "--oracle", "--data", ds_s]));
    assert!(err.contains("--n"), "{err}");
    let err = fails(&memgen(&["compare", "run-a", "run-b", "--oracle", "--data", ds_s, "--n", "4"]));
    assert!(err.contains("cannot be used with"), "{err}");
    // --split is `memgen sample --oracle`'s: both sides are compared here.
    let err = fails(&memgen(&["compare", "--oracle", "--data", ds_s, "--n", "4", "--split", "b"]));
    assert!(err.contains("--split"), "{err}");
    // More images per side than the split holds.
    let err = fails(&memgen(&["compare", "--oracle", "--data", ds_s, "--n", "30", "--count", "1"]));
    assert!(err.contains("at most N = 20"), "{err}");
    assert!(!ds_dir.join("oracle").exists());
}

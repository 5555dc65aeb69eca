//! End-to-end tests of `memgen sample --oracle`: the empirical optimal denoiser reproduces its
//! training images.

mod common;

use common::{corr, fails, json, memgen, ok, samples};
use memgen_data::dataset::PreparedDataset;
use memgen_data::split::NestedSplit;
use std::path::Path;

/// Every sample of `dir` correlates > 0.99 with one of the images `indices` of `ds`; the best
/// correlation of each sample.
fn assert_memorized(dir: &Path, ds: &PreparedDataset, indices: &[usize], count: usize) -> Vec<f64> {
    let (shape, pixels) = samples(&dir.join("samples.safetensors"));
    let m = &ds.manifest;
    assert_eq!(shape, vec![count, m.channels, m.height, m.width]);
    let best: Vec<f64> = pixels
        .chunks(ds.image_len())
        .map(|s| indices.iter().map(|&i| corr(s, ds.image(i))).fold(f64::NEG_INFINITY, f64::max))
        .collect();
    assert!(best.iter().all(|&c| c > 0.99), "best correlations to the training images: {best:?}");
    best
}

#[test]
fn oracle_samples_reproduce_the_training_subset() {
    let tmp = tempfile::tempdir().unwrap();
    let ds_dir = tmp.path().join("ds");
    let ds_s = ds_dir.to_str().unwrap();
    ok(&memgen(&["data", "prepare", "calpha", "--count", "40", "--side", "8", "--out", ds_s]));
    let ds = PreparedDataset::read(&ds_dir).unwrap();
    let split = NestedSplit::new(ds.manifest.count, ds.manifest.groups.as_deref(), 0);
    let (a, b) = split.subsets(5).unwrap();

    // DDIM, 20 steps, explicit --out.
    let out = tmp.path().join("oracle-a");
    ok(&memgen(&[
        "sample",
        "--oracle",
        "--data",
        ds_s,
        "--split",
        "a",
        "--n",
        "5",
        "--count",
        "4",
        "--sampler",
        "ddim",
        "--ddim-steps",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]));
    let meta = json(&out.join("samples.json"));
    let recorded: Vec<usize> =
        meta["oracle"]["indices"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(recorded, a, "samples.json records the training indices of S_A(5)");
    assert_eq!(meta["oracle"]["n_train"], 5);
    assert_eq!(meta["oracle"]["content_hash"], ds.manifest.content_hash.as_str());
    assert_eq!(meta["oracle"]["schedule"]["steps"], 1000);
    assert_eq!(meta["config"]["sampler"]["ddim"]["steps"], 20);
    assert!(out.join("grid.png").exists());
    let best = assert_memorized(&out, &ds, a, 4);
    println!("ddim-20, S_A(5): best correlations {best:?}");

    // DDPM (all 1000 steps) on side B, default output directory DIR/oracle/b-n5/seed-3.
    ok(&memgen(&[
        "sample",
        "--oracle",
        "--data",
        ds_s,
        "--split",
        "b",
        "--n",
        "5",
        "--count",
        "2",
        "--noise-seed",
        "3",
    ]));
    let dir = ds_dir.join("oracle").join("b-n5").join("seed-3");
    let best = assert_memorized(&dir, &ds, b, 2);
    println!("ddpm, S_B(5): best correlations {best:?}");
    // The dataset directory still reads (the oracle's output does not disturb it).
    PreparedDataset::read(&ds_dir).unwrap();
}

#[test]
fn oracle_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let ds_dir = tmp.path().join("ds");
    let ds_s = ds_dir.to_str().unwrap();
    ok(&memgen(&["data", "prepare", "calpha", "--count", "40", "--side", "8", "--out", ds_s]));
    let out = tmp.path().join("o");
    let out_s = out.to_str().unwrap();
    // More images per side than the split holds.
    let err =
        fails(&memgen(&["sample", "--oracle", "--data", ds_s, "--n", "30", "--count", "1", "--out", out_s]));
    assert!(err.contains("at most N = 20"), "{err}");
    assert!(!out.join("samples.safetensors").exists());
    // Neither a run nor --oracle; both; --oracle without --data; oracle flags without --oracle.
    let err = fails(&memgen(&["sample"]));
    assert!(err.contains("RUN"), "{err}");
    let err = fails(&memgen(&["sample", "some-run", "--oracle", "--data", ds_s]));
    assert!(err.contains("cannot be used with"), "{err}");
    let err = fails(&memgen(&["sample", "--oracle", "--n", "5"]));
    assert!(err.contains("--data"), "{err}");
    let err = fails(&memgen(&["sample", "some-run", "--n", "5"]));
    assert!(err.contains("--oracle"), "{err}");
    // A missing dataset.
    let missing = tmp.path().join("nope");
    let err = fails(&memgen(&[
        "sample",
        "--oracle",
        "--data",
        missing.to_str().unwrap(),
        "--n",
        "2",
        "--out",
        out_s,
    ]));
    assert!(err.contains("nope"), "{err}");
}

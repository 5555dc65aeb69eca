//! End-to-end test of `memgen jacobian`.

mod common;

use common::{fails, fails_with, json, memgen, ok, USAGE};
use std::path::Path;

fn train(ds: &Path, run: &Path, side: &str) {
    common::train_tiny(ds, run, 8, side, 10, 4);
}

/// The f32 values and shape of tensor `name` of a safetensors file.
fn tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    (t.shape().to_vec(), t.data().chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

#[test]
fn jacobian_of_two_runs_and_their_overlap() {
    let tmp = tempfile::tempdir().unwrap();
    let (ds, run_a, run_b) = (tmp.path().join("ds"), tmp.path().join("a"), tmp.path().join("b"));
    common::prepare(&ds, "calpha", 40, 8);
    train(&ds, &run_a, "a");
    train(&ds, &run_b, "b");
    let (ds_s, a_s, b_s) = (ds.to_str().unwrap(), run_a.to_str().unwrap(), run_b.to_str().unwrap());
    let args = [
        "jacobian",
        a_s,
        "--data",
        ds_s,
        "--image",
        "0",
        "--sigma",
        "0.1",
        "--compare",
        b_s,
        "--batch",
        "24",
    ];
    let text = ok(&memgen(&args));
    assert!(text.contains("tr J") && text.contains("overlap"), "{text}");
    let out = run_a.join("jacobian/img-0-sigma-0.1");
    for f in [
        "jacobian.json",
        "jacobian.safetensors",
        "jacobian-b.safetensors",
        "spectrum.svg",
        "spectrum.png",
        "eigenvectors.png",
        "eigenvectors-b.png",
        "overlap.svg",
        "overlap.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let j = json(&out.join("jacobian.json"));
    assert_eq!(j["d"], 64);
    assert_eq!(j["image"], 0);
    assert_eq!(j["sigma"], 0.1);
    let eff = j["effective_sigma"].as_f64().unwrap();
    assert!((eff / 0.1 - 1.0).abs() < 0.1, "effective sigma {eff}");
    let eig: Vec<f64> = j["eigenvalues"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(eig.len(), 64);
    assert!(eig.windows(2).all(|w| w[0] >= w[1]), "eigenvalues descending");
    let (trace, sum) = (j["trace"].as_f64().unwrap(), j["eigenvalue_sum"].as_f64().unwrap());
    assert!((trace - sum).abs() < 1e-6 * trace.abs().max(1.0), "tr J {trace} vs Σλ {sum}");
    let asym = j["asymmetry"].as_f64().unwrap();
    assert!(asym.is_finite() && asym >= 0.0, "{asym}");
    // Image 0 is in at most one of the two training sets.
    let (in_a, in_b) = (
        j["model"]["in_training_set"].as_bool().unwrap(),
        j["compare"]["model"]["in_training_set"].as_bool().unwrap(),
    );
    assert!(!(in_a && in_b));
    let overlaps = j["compare"]["overlap"].as_array().unwrap();
    let ks: Vec<u64> = overlaps.iter().map(|o| o["k"].as_u64().unwrap()).collect();
    assert_eq!(ks, [1, 2, 4, 8, 16]);
    for o in overlaps {
        let (v, r) = (o["overlap"].as_f64().unwrap(), o["random"].as_f64().unwrap());
        assert!((-1e-9..=1.0 + 1e-9).contains(&v), "overlap {v}");
        assert_eq!(r, o["k"].as_f64().unwrap() / 64.0);
    }

    // The stored Jacobian: its trace is the reported one; eigenvectors are orthonormal rows.
    let (shape, jac) = tensor(&out.join("jacobian.safetensors"), "jacobian");
    assert_eq!(shape, [64, 64]);
    let tr: f64 = (0..64).map(|i| jac[i * 64 + i] as f64).sum();
    assert!((tr - trace).abs() < 1e-4 * trace.abs().max(1.0), "{tr} vs {trace}");
    let (shape, vecs) = tensor(&out.join("jacobian.safetensors"), "eigenvectors");
    assert_eq!(shape, [64, 64]);
    let dot =
        |a: usize, b: usize| (0..64).map(|r| vecs[a * 64 + r] as f64 * vecs[b * 64 + r] as f64).sum::<f64>();
    assert!((dot(0, 0) - 1.0).abs() < 1e-5 && dot(0, 1).abs() < 1e-5);
    // Grid: 8 columns of 8x8 tiles at scale 8 (96 / 8 = 12 → capped at 8), 1 + 16/8 = 3 rows, pad 2.
    let grid = image::open(out.join("eigenvectors.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (8 * 66 + 2, 3 * 66 + 2));

    // A bad image index is refused with a clear message.
    let err = fails(&memgen(&["jacobian", a_s, "--data", ds_s, "--image", "40", "--sigma", "0.1"]));
    assert!(err.contains("--image 40 is out of range") && err.contains("40 images"), "{err}");
    let err = fails_with(&memgen(&["jacobian", a_s, "--image", "0", "--sigma", "0"]), USAGE);
    assert!(err.contains("--sigma"), "{err}");
}

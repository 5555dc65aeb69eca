//! End-to-end test of `memgen jacobian`.

mod common;

use common::{fails, fails_with, json, memgen, ok, USAGE};
use memgen_analysis::jacobian::JacobianRecord;
use memgen_io::read_json;
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
    let j: JacobianRecord = read_json(&out.join("jacobian.json")).unwrap();
    assert_eq!(serde_json::to_value(&j).unwrap(), json(&out.join("jacobian.json")), "typed round trip");
    assert_eq!((j.d, j.image, j.sigma, j.shape), (64, 0, 0.1, [1, 8, 8]));
    let eff = j.effective_sigma;
    assert!((eff / 0.1 - 1.0).abs() < 0.1, "effective sigma {eff}");
    let eig = &j.eigenvalues;
    assert_eq!(eig.len(), 64);
    assert!(eig.windows(2).all(|w| w[0] >= w[1]), "eigenvalues descending");
    assert_eq!(&j.model.eigenvalues, eig);
    let (trace, sum) = (j.trace, j.eigenvalue_sum);
    assert!((trace - sum).abs() < 1e-6 * trace.abs().max(1.0), "tr J {trace} vs Σλ {sum}");
    assert!(j.asymmetry.is_finite() && j.asymmetry >= 0.0, "{}", j.asymmetry);
    // Image 0 is in at most one of the two training sets.
    let compare = j.compare.as_ref().expect("--compare");
    let (in_a, in_b) = (j.model.in_training_set.unwrap(), compare.model.in_training_set.unwrap());
    assert!(!(in_a && in_b));
    let ks: Vec<usize> = compare.overlap.iter().map(|o| o.k).collect();
    assert_eq!(ks, [1, 2, 4, 8, 16]);
    for o in &compare.overlap {
        assert!((-1e-9..=1.0 + 1e-9).contains(&o.overlap), "overlap {}", o.overlap);
        assert_eq!(o.random, o.k as f64 / 64.0);
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

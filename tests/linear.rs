//! End-to-end tests of `memgen linear`.

mod common;

use common::{fails, memgen, ok};
use memgen_linear::experiment::{LinearRecord, TruthKind};

/// OUT/linear.json, read through its typed record.
fn record(out: &std::path::Path) -> LinearRecord {
    memgen_io::read_json(&out.join("linear.json")).unwrap()
}

#[test]
fn gaussian_data_follows_the_theory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lin");
    let text = ok(&memgen(&[
        "linear",
        "--data",
        "gaussian:power:1:0.05",
        "--side",
        "4",
        "--n",
        "8,64,256,1024",
        "--check-samples",
        "3000",
        "--sweep-points",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("| 1024 | 16 |"), "{text}");
    for f in [
        "linear.json",
        "linear.csv",
        "linear-kl.svg",
        "linear-kl.png",
        "linear-loss.png",
        "linear-weight-decay.svg",
        "linear-train-time.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let j = record(&out);
    assert_eq!(j.d, 16);
    let r = &j.results;
    let nan = f64::NAN;
    // Rank of Σ0 is min(N − 1, d); the test/train gap closes as N grows.
    assert_eq!(r.iter().map(|x| x.rank).collect::<Vec<_>>(), vec![7, 16, 16, 16]);
    assert!(r[0].test_loss > 1.5 * r[0].train_loss);
    assert!((r[3].test_loss / r[3].train_loss - 1.0).abs() < 0.05);
    // KL falls with N, and for N > d it sits near the expected KL of a Gaussian fit plus the limit.
    let limit = j.kl_limit.unwrap();
    let kl = |i: usize| r[i].kl.unwrap_or(nan);
    for i in 1..4 {
        assert!(kl(i) < kl(i - 1), "KL not falling at {i}");
        let excess = kl(i) - limit;
        let expected = r[i].expected_fit_kl.unwrap_or(nan);
        assert!(excess > 0.3 * expected && excess < 3.0 * expected, "N index {i}: {excess} vs {expected}");
        // The sampled check agrees once the fit bias d(d+3)/4K of K = 3000 samples is allowed for.
        let bias = 16.0 * 19.0 / (4.0 * 3000.0);
        let samples = r[i].kl_samples.unwrap_or(nan);
        assert!((samples - kl(i) - bias).abs() < 0.5 * kl(i) + 0.05, "{i}");
    }
    // N = 8 < d: weight decay and early stopping both beat the unregularised KL.
    let sweep = &j.sweeps[0];
    let best =
        |points: &[(f64, f64, Option<f64>)]| points.iter().filter_map(|p| p.2).fold(f64::INFINITY, f64::min);
    assert!(best(&sweep.weight_decay) < kl(0) && best(&sweep.train_time) < kl(0));
}

#[test]
fn prepared_data_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    common::prepare(&ds, "calpha", 40, 4);
    let out = tmp.path().join("lin");
    let text = ok(&memgen(&[
        "linear",
        "--data",
        ds.to_str().unwrap(),
        "--n",
        "2,8",
        "--check-samples",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("held-out"), "{text}");
    let j = record(&out);
    assert_eq!(j.truth, TruthKind::Estimated { held_out: 24 });
    assert!(j.results[1].test_loss.is_finite());
    let err = fails(&memgen(&[
        "linear",
        "--data",
        ds.to_str().unwrap(),
        "--side",
        "8",
        "--n",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(err.contains("--side 8"), "{err}");
    let err = fails(&memgen(&["linear", "--data", "gaussian", "--n", "2", "--out", out.to_str().unwrap()]));
    assert!(err.contains("--side"), "{err}");
    let err = fails(&memgen(&[
        "linear",
        "--data",
        "gaussian:power:x",
        "--side",
        "4",
        "--n",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(err.contains("not a number"), "{err}");
    let err = fails(&memgen(&[
        "linear",
        "--data",
        ds.to_str().unwrap(),
        "--n",
        "30",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(err.contains("--n 30"), "{err}");
}

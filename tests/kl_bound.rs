//! End-to-end tests of `memgen kl-bound`.

mod common;

use common::{fails, json, memgen, ok};
use memgen_analysis::klbound::KlBoundRecord;
use memgen_io::read_json;
use std::path::Path;

#[test]
fn gaussian_bound_sits_on_the_smoothed_kl() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("klb");
    let text = ok(&memgen(&[
        "kl-bound",
        "--data",
        "gaussian:power:1:0.05",
        "--side",
        "4",
        "--n",
        "8,64,512",
        "--points",
        "121",
        "--run-points",
        "5",
        "--mc-samples",
        "64",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("| 512 | 16 |"), "{text}");
    for f in [
        "kl-bound.json",
        "kl-bound.csv",
        "kl-bound.svg",
        "kl-bound.png",
        "kl-bound-integrand.svg",
        "kl-bound-integrand.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let j: KlBoundRecord = read_json(&out.join("kl-bound.json")).unwrap();
    assert_eq!(j.d, 16);
    assert!((j.sigma_min - 0.01).abs() < 1e-4, "{}", j.sigma_min);
    let rows = &j.linear;
    assert_eq!(rows.len(), 3);
    let mut last = f64::INFINITY;
    for (i, r) in rows.iter().enumerate() {
        let b = r.bound.bound;
        assert!(b.is_finite() && b > 0.0, "{i}: {b}");
        assert!(b < last, "bound not falling at {i}");
        last = b;
        // The fitted linear denoiser is exact for N(μ̂, Σ̂): the bound is the smoothed KL.
        let kl = r.kl_smoothed;
        assert!((b - kl).abs() < 1e-4 * kl, "{i}: {b} vs {kl}");
        assert_eq!(r.bound.points.len(), 121);
        assert!(r.bound.points.iter().all(|p| p.integrand >= 0.0));
        // The sampler's model: KL in the bound's direction too (infinite, null in JSON: a degenerate
        // model).
        assert!(r.kl_linear_truth_first > 0.0, "{i}");
    }
    // N = 8 < d: the unsmoothed KLs of N(μ̂, Σ̂) are infinite (null in JSON); N = 512: finite, above
    // the smoothed one.
    let raw = json(&out.join("kl-bound.json"));
    assert!(raw["linear"][0]["kl_fitted"].is_null() && raw["linear"][0]["kl_fitted_reverse"].is_null());
    assert!(rows[0].kl_fitted == f64::INFINITY && rows[0].kl_fitted_reverse == f64::INFINITY);
    assert!(rows[2].kl_fitted >= 0.999 * rows[2].kl_smoothed && rows[2].kl_linear.unwrap() > 0.0);
    // The optimal denoiser: zero integrand in closed form, zero bound within a few SE by Monte Carlo.
    let opt = &j.optimal;
    assert!(opt.closed_form_max_integrand < 1e-12, "{opt:?}");
    assert!(opt.monte_carlo_bound.abs() <= 4.0 * opt.monte_carlo_bound_se + 1e-6, "{opt:?}");
    // The typed record writes back the same JSON.
    assert_eq!(serde_json::to_value(&j).unwrap(), raw);
    let csv = std::fs::read_to_string(out.join("kl-bound.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("source,n,rank,bound,"));
}

#[test]
fn trained_runs_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let (ds, run, out) = (tmp.path().join("ds"), tmp.path().join("run"), tmp.path().join("klb"));
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    common::prepare(&ds, "gaussian", 40, 8);
    ok(&memgen(&[
        "train",
        "--data",
        ds.to_str().unwrap(),
        "--model",
        models.join("unet-tiny.toml").to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--n",
        "6",
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--quiet",
    ]));
    let text = ok(&memgen(&[
        "kl-bound",
        "--data",
        "gaussian",
        "--side",
        "8",
        "--n",
        "16",
        "--points",
        "31",
        "--run-points",
        "5",
        "--mc-samples",
        "16",
        "--run",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("(N = 6): B = "), "{text}");
    let j: KlBoundRecord = read_json(&out.join("kl-bound.json")).unwrap();
    let r = &j.runs[0];
    assert_eq!(r.n, 6);
    let b = r.bound.bound;
    assert!(b.is_finite() && b > 0.0 && r.bound.bound_se >= 0.0, "{r:?}");
    assert_eq!(r.mse.len(), 5);
    // A barely trained network is far from optimal: its bound is far above the fitted linear one's.
    assert!(b > j.linear[0].bound.bound, "{b}");

    let o = out.to_str().unwrap();
    // Wrong data, wrong side for the run, a different spectrum, bad grids.
    let err =
        fails(&memgen(&["kl-bound", "--data", ds.to_str().unwrap(), "--side", "8", "--n", "16", "--out", o]));
    assert!(err.contains("Gaussian data"), "{err}");
    let err = fails(&memgen(&[
        "kl-bound",
        "--data",
        "gaussian",
        "--side",
        "4",
        "--n",
        "16",
        "--run",
        run.to_str().unwrap(),
        "--out",
        o,
    ]));
    assert!(err.contains("--side 4"), "{err}");
    let err = fails(&memgen(&[
        "kl-bound",
        "--data",
        "gaussian:flat:0.01",
        "--side",
        "8",
        "--n",
        "16",
        "--run",
        run.to_str().unwrap(),
        "--out",
        o,
    ]));
    assert!(err.contains("not the --data Gaussian"), "{err}");
    let err = fails(&memgen(&[
        "kl-bound", "--data", "gaussian", "--side", "4", "--n", "16", "--points", "40", "--out", o,
    ]));
    assert!(err.contains("odd"), "{err}");
    let err = fails(&memgen(&["kl-bound", "--data", "gaussian", "--side", "4", "--n", "1", "--out", o]));
    assert!(err.contains("--n"), "{err}");
    let err = fails(&memgen(&[
        "kl-bound",
        "--data",
        "gaussian",
        "--side",
        "4",
        "--n",
        "8",
        "--sigma-min",
        "2",
        "--sigma-max",
        "1",
        "--out",
        o,
    ]));
    assert!(err.contains("σ_min"), "{err}");
}

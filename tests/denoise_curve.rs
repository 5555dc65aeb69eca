//! End-to-end test of `memgen denoise-curve` on a tiny run.

mod common;

use common::{fails, fails_with, json, memgen, ok, USAGE};

#[test]
fn denoise_curve_of_a_tiny_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (ds, run) = (tmp.path().join("ds"), tmp.path().join("run"));
    common::prepare(&ds, "calpha", 60, 8);
    common::train_tiny(&ds, &run, 8, "a", 20, 8);

    let sigmas = "0.01,0.03,0.1,0.3,1";
    let args = [
        "denoise-curve",
        run.to_str().unwrap(),
        "--data",
        ds.to_str().unwrap(),
        "--sigmas",
        sigmas,
        "--count",
        "20",
        "--batch-size",
        "6",
        "--fit-max",
        "0.1",
    ];
    let text = ok(&memgen(&args));
    assert!(text.contains("slope of ln MSE") && text.contains("2α/(α+1)"), "{text}");
    let out = run.join("denoise-curve");
    for f in ["denoise-curve.json", "denoise-curve.csv", "denoise-curve.svg", "denoise-curve.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let rec = json(&out.join("denoise-curve.json"));
    // The file is the library's typed record.
    let typed: memgen_analysis::curve::DenoiseCurveRecord =
        memgen_io::read_json(&out.join("denoise-curve.json")).unwrap();
    assert_eq!((typed.points.len(), typed.held_out_indices.len(), typed.count), (5, 20, 20));
    assert_eq!(typed.alpha_source.as_deref(), Some("dataset manifest"));
    assert_eq!(typed.fit.map(|f| (f.sigma_min, f.sigma_max, f.fit.points)), Some((0.01, 0.1, 3)));
    let points = rec["points"].as_array().unwrap();
    assert_eq!(points.len(), 5);
    for (p, want) in points.iter().zip([0.01, 0.03, 0.1, 0.3, 1.0]) {
        assert_eq!(p["sigma"].as_f64().unwrap(), want);
        let mse = p["mse"].as_f64().unwrap();
        assert!(mse > 0.0 && mse.is_finite(), "{p}");
        assert!(p["mse_se"].as_f64().unwrap() > 0.0);
        let input = p["input_mse"].as_f64().unwrap();
        assert!((input / (want * want) - 1.0).abs() < 0.2, "{p}");
        assert!((p["psnr"].as_f64().unwrap() + 10.0 * mse.log10()).abs() < 1e-9);
        // A time-conditioned network: the timestep used and the σ_t it assumes.
        assert!(p["timestep"].as_u64().is_some());
        assert!(p["effective_sigma"].as_f64().unwrap() > 0.0);
    }
    // α = 4 is the C^alpha generator's default, recorded in the manifest.
    assert_eq!(rec["alpha"].as_f64(), Some(4.0));
    assert_eq!(rec["alpha_source"], "dataset manifest");
    assert!((rec["theoretical_slope"].as_f64().unwrap() - 1.6).abs() < 1e-12);
    assert_eq!(rec["fit"]["points"], 3);
    assert!(rec["fit"]["slope"].as_f64().unwrap().is_finite());
    // The held-out images are outside the run's training set.
    let train: Vec<u64> = json(&run.join("split.json"))["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let held = rec["held_out_indices"].as_array().unwrap();
    assert_eq!(held.len(), 20);
    assert!(held.iter().all(|i| !train.contains(&i.as_u64().unwrap())));
    let csv = std::fs::read_to_string(out.join("denoise-curve.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6);
    assert!(csv.starts_with("sigma,effective_sigma,timestep,mse"));

    // The same curve whatever the batch size (same noise per image and level).
    let other = tmp.path().join("other");
    let mut args2 = args.to_vec();
    args2[9] = "20";
    args2.extend(["--out", other.to_str().unwrap(), "--alpha", "2"]);
    ok(&memgen(&args2));
    let rec2 = json(&other.join("denoise-curve.json"));
    for (p, q) in points.iter().zip(rec2["points"].as_array().unwrap()) {
        assert_eq!(p["input_mse"], q["input_mse"]);
        let (a, b) = (p["mse"].as_f64().unwrap(), q["mse"].as_f64().unwrap());
        assert!((a / b - 1.0).abs() < 1e-4, "{a} vs {b}");
    }
    assert_eq!(rec2["alpha_source"], "--alpha");
    assert!((rec2["theoretical_slope"].as_f64().unwrap() - 4.0 / 3.0).abs() < 1e-12);

    // More held-out images asked for than there are (60 − 8 = 52).
    let msg = fails(&memgen(&[
        "denoise-curve",
        run.to_str().unwrap(),
        "--data",
        ds.to_str().unwrap(),
        "--count",
        "53",
    ]));
    assert!(msg.contains("--count 53") && msg.contains("52"), "{msg}");
    // Bad noise levels.
    let msg = fails_with(
        &memgen(&[
            "denoise-curve",
            run.to_str().unwrap(),
            "--data",
            ds.to_str().unwrap(),
            "--sigmas",
            "0.1,-1",
        ]),
        USAGE,
    );
    assert!(msg.contains("--sigmas"), "{msg}");
}

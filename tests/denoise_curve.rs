//! End-to-end test of `memgen denoise-curve` on a tiny run.

mod common;

use common::{fails, fails_with, memgen, ok, USAGE};
use memgen_analysis::curve::DenoiseCurveRecord;
use memgen_diffusion::run::SplitRecord;

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
    // The file is the library's typed record.
    let rec: DenoiseCurveRecord = memgen_io::read_json(&out.join("denoise-curve.json")).unwrap();
    assert_eq!((rec.points.len(), rec.held_out_indices.len(), rec.count), (5, 20, 20));
    assert_eq!(rec.fit.map(|f| (f.sigma_min, f.sigma_max, f.fit.points)), Some((0.01, 0.1, 3)));
    for (row, want) in rec.points.iter().zip([0.01, 0.03, 0.1, 0.3, 1.0]) {
        let p = &row.point;
        assert_eq!(p.sigma, want);
        assert!(p.mse > 0.0 && p.mse.is_finite(), "{p:?}");
        assert!(p.mse_se > 0.0);
        assert!((p.input_mse / (want * want) - 1.0).abs() < 0.2, "{p:?}");
        assert!((p.psnr + 10.0 * p.mse.log10()).abs() < 1e-9);
        // A time-conditioned network: the timestep used and the σ_t it assumes.
        assert!(row.timestep.is_some());
        assert!(p.effective_sigma > 0.0);
    }
    // α = 4 is the C^alpha generator's default, recorded in the manifest.
    assert_eq!(rec.alpha, Some(4.0));
    assert_eq!(rec.alpha_source.as_deref(), Some("dataset manifest"));
    assert!((rec.theoretical_slope.unwrap() - 1.6).abs() < 1e-12);
    assert!(rec.fit.unwrap().fit.slope.is_finite());
    // The held-out images are outside the run's training set.
    let split: SplitRecord = memgen_io::read_json(&run.join("split.json")).unwrap();
    assert!(rec.held_out_indices.iter().all(|i| !split.indices.contains(i)));
    let csv = std::fs::read_to_string(out.join("denoise-curve.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6);
    assert!(csv.starts_with("sigma,effective_sigma,timestep,mse"));

    // The same curve whatever the batch size (same noise per image and level).
    let other = tmp.path().join("other");
    let mut args2 = args.to_vec();
    args2[9] = "20";
    args2.extend(["--out", other.to_str().unwrap(), "--alpha", "2"]);
    ok(&memgen(&args2));
    let rec2: DenoiseCurveRecord = memgen_io::read_json(&other.join("denoise-curve.json")).unwrap();
    for (p, q) in rec.points.iter().zip(&rec2.points) {
        assert_eq!(p.point.input_mse, q.point.input_mse);
        let (a, b) = (p.point.mse, q.point.mse);
        assert!((a / b - 1.0).abs() < 1e-4, "{a} vs {b}");
    }
    assert_eq!(rec2.alpha_source.as_deref(), Some("--alpha"));
    assert!((rec2.theoretical_slope.unwrap() - 4.0 / 3.0).abs() < 1e-12);

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

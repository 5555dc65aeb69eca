//! End-to-end tests of `memgen rf` (tiny settings).

mod common;

use common::{fails_with, json, memgen, ok, USAGE};
use memgen_io::read_json;
use memgen_rf::record::RfRecord;

#[test]
fn tiny_sweep_writes_consistent_results() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rf");
    let text = ok(&memgen(&[
        "rf",
        "--target",
        "mixture:mu=3",
        "--compare-target",
        "mixture:mu=15",
        "--n",
        "10,100",
        "--m",
        "16,64",
        "--tau-points",
        "8",
        "--draws",
        "8",
        "--grid",
        "201",
        "--ode-steps",
        "40",
        "--pop-grid",
        "150",
        "--pop-times",
        "16",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("slopes: KL* vs n"), "{text}");
    for f in [
        "rf.json",
        "rf.csv",
        "rf-kl-tau.svg",
        "rf-kl-tau.png",
        "rf-kl-tau-m.png",
        "rf-rates-n.svg",
        "rf-rates-m.png",
        "rf-kl-tau-1.png",
        "rf-modes-shift.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let j: RfRecord = read_json(&out.join("rf.json")).unwrap();
    assert_eq!(serde_json::to_value(&j).unwrap(), json(&out.join("rf.json")), "typed round trip");
    assert_eq!((j.command.as_str(), j.threads), ("rf", 2));
    assert_eq!(j.bound_exponents.m, -0.8);
    assert_eq!(j.seeds.dsm_draws, j.seed + 2);
    assert_eq!(j.targets.len(), 2);
    for (i, t) in j.targets.iter().enumerate() {
        let r = &t.result;
        assert_eq!(r.curves.len(), 4);
        assert_eq!(r.population.len(), 2);
        for c in r.curves.iter().chain(&r.population) {
            let kls: Vec<f64> = c.points.iter().map(|p| p.kl).collect();
            assert_eq!(kls.len(), 8);
            assert!(kls.iter().all(|&k| c.kl_best <= k), "KL* above a point of its curve");
            assert!(kls.contains(&c.kl_best) && c.kl_late == kls[7]);
            assert!(kls.iter().all(|k| k.is_finite()));
        }
        assert!(r.fits.n.unwrap().slope.is_finite());
        // The exact score's KL is the estimator floor: small for mu = 3 even on this coarse grid (for
        // mu = 15, 201 points and 40 steps are too coarse for the Fokker–Planck solver).
        let floor = r.kl_exact_score;
        assert!(i == 1 || floor.abs() < 1e-2, "exact-score KL {floor}");
    }
    // mu = 15's first target entry is the compare target; the modes-shift table pairs the runs.
    let shift = j.modes_shift.as_ref().unwrap();
    assert_eq!(shift.targets, ["mixture:mu=3".to_string(), "mixture:mu=15".to_string()]);
    assert_eq!(shift.runs.len(), 4);
    assert_eq!(
        shift.runs[0].kl_best,
        [j.targets[0].result.curves[0].kl_best, j.targets[1].result.curves[0].kl_best]
    );
    let csv = std::fs::read_to_string(out.join("rf.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * (4 + 2) * 8);
}

#[test]
fn bad_flags_name_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rf");
    let o = out.to_str().unwrap();
    for (args, word) in [
        (vec!["--target", "mixture:mu=x"], "--target mixture:mu=x"),
        (vec!["--compare-target", "blob"], "--compare-target"),
        (vec!["--n", "0,10"], "--n"),
        (vec!["--tau-min", "100", "--tau-max", "10"], "--tau-min"),
        (vec!["--t0", "0"], "--t0"),
        (vec!["--target", "mixture:mu=3,dim=2", "--estimator", "fp"], "--estimator fp"),
        (vec!["--b-std=-1"], "--b-std"),
    ] {
        let mut all = vec!["rf", "--out", o];
        all.extend(args.iter().copied());
        let err = fails_with(&memgen(&all), USAGE);
        assert!(err.contains(word), "{args:?}: {err}");
    }
}

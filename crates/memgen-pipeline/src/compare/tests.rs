use super::*;
use memgen_diffusion::sampler::SamplerConfig;
use memgen_diffusion::schedule::BetaSchedule;

/// A prepared dataset of `count` 4x4 C^alpha images in `dir`.
fn prepare(dir: &Path, count: usize) {
    use memgen_data::prepare::{prepare, PrepareOptions};
    let mut source = memgen_data::calpha::CalphaSource::new(Default::default(), 4).unwrap();
    let opts = PrepareOptions { count: Some(count), ..Default::default() };
    prepare(&mut source, &opts).unwrap().write(dir).unwrap();
}

fn cfg(count: usize) -> GenerateConfig {
    GenerateConfig {
        noise_seed: 3,
        count,
        batch_size: 2,
        ema: true,
        sampler: SamplerConfig::Ddim { steps: 4, eta: 0.0 },
        blind: Default::default(),
        initial_noise: None,
    }
}

fn pair(data: &Path, baseline: Baseline) -> BaselinePair {
    BaselinePair {
        baseline,
        data: data.to_path_buf(),
        n: 2,
        split_seed: 0,
        schedule: ScheduleConfig::default(),
    }
}

fn thresholds() -> CompareConfig {
    CompareConfig { corr_threshold: 0.95, ratio_threshold: 1.0 / 3.0 }
}

#[test]
fn a_compared_pair_of_each_kind_round_trips_with_the_keys_of_before() {
    let schedule =
        ScheduleConfig { kind: BetaSchedule::Cosine, steps: 7, beta_start: 0.1 + 0.2, beta_end: 0.5 };
    let runs = ComparedPair::Runs { run_a: "/r/n1-a".into(), run_b: "/r/n1-b".into() };
    let oracle = BaselinePair { split_seed: 4, schedule, ..pair(Path::new("/d"), Baseline::Oracle) };
    let linear = BaselinePair { baseline: Baseline::Linear { blind: true }, ..oracle.clone() };
    let cases = [
        (runs, vec!["run_a", "run_b"]),
        (oracle.record(), vec!["data", "n", "oracle", "schedule", "split_seed"]),
        (linear.record(), vec!["blind", "data", "linear", "n", "schedule", "split_seed"]),
    ];
    for (pair, keys) in cases {
        let v = serde_json::to_value(&pair).unwrap();
        let got: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(got, keys);
        assert_eq!(serde_json::from_value::<ComparedPair>(v.clone()).unwrap(), pair, "{v}");
        if let Some(marker) = v.get("oracle").or(v.get("linear")) {
            assert_eq!(marker, &serde_json::json!(true));
        }
    }
    // "oracle": false is no oracle pair, and a linear pair written before --blind is not blind.
    let v = serde_json::json!({"oracle": false, "data": "/d", "n": 1, "split_seed": 0, "schedule": {}});
    assert!(serde_json::from_value::<ComparedPair>(v).is_err());
    let v = serde_json::json!({"linear": true, "data": "/d", "n": 1, "split_seed": 0, "schedule": {}});
    assert!(matches!(serde_json::from_value(v).unwrap(), ComparedPair::Linear { blind: false, .. }));
}

#[test]
fn baseline_pairs_name_their_sides_and_directories() {
    let p = pair(Path::new("/d"), Baseline::Oracle);
    assert_eq!(p.default_dir(1), Path::new("/d/oracle/compare-n2-seed-1"));
    let blind = BaselinePair { baseline: Baseline::Linear { blind: true }, split_seed: 3, ..p.clone() };
    assert_eq!(blind.default_dir(0), Path::new("/d/linear/compare-n2-split3-blind-seed-0"));
    let b = p.side(Side::B);
    assert_eq!(b.selection, Selection::Split { side: Side::B, n: 2, seed: 0 });
    assert_eq!(b.oracle_dir(5), Path::new("/d/oracle/b-n2/seed-5"));
    assert_eq!(
        default_dir_of_runs(Path::new("/r/n1-a"), Path::new("/r/n1-b"), 2),
        Path::new("/r/n1-a/compare/n1-b-seed-2")
    );
}

#[test]
fn training_sets_refuse_indices_beyond_the_dataset_and_held_out_images_avoid_both_sets() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path(), 12);
    let ds = Arc::new(PreparedDataset::read(dir.path()).unwrap());
    let err = TrainingSet::new(ds.clone(), vec![0, 12]).unwrap_err();
    assert_eq!(err.to_string(), "training index 12 is beyond the dataset's 12 images");
    let a = TrainingSet::new(ds.clone(), vec![0, 1, 2]).unwrap();
    let b = TrainingSet::new(ds.clone(), vec![2, 5]).unwrap();
    assert_eq!(check_training_sets(&a, &b, "the runs").unwrap(), 1);
    assert_eq!(held_out(&a, &b, 100), [3, 4, 6, 7, 8, 9, 10, 11]);
    assert_eq!(held_out(&a, &b, 2), [3, 8]);
    assert_eq!(a.images().unwrap().len(), 3);
    assert_eq!(a.dims(), [1, 4, 4]);
}

#[test]
fn oracle_samples_are_reused_only_for_the_same_subset_and_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data, 12);
    let p = pair(&data, Baseline::Oracle);
    let ds = Arc::new(PreparedDataset::read(&data).unwrap());
    let subset = p.side(Side::A);
    let train = TrainingSet::new(ds.clone(), select(&ds, &subset.selection).unwrap()).unwrap();
    let fallback = dir.path().join("fallback");
    let drawn = oracle_samples_for(&subset, &train, &cfg(3), &fallback).unwrap();
    let home = subset.oracle_dir(3);
    let record: SamplesRecord = memgen_io::read_json(&home.join("samples.json")).unwrap();
    let SampledFrom::Oracle(o) = &record.source else { panic!("{record:?}") };
    assert_eq!((o.indices.as_slice(), o.n_train), (train.indices(), 2));
    assert!(same_oracle(&home, &subset, &train));
    // Fewer draws: the first ones, from the oracle's directory.
    let again = oracle_samples_for(&subset, &train, &cfg(2), &fallback).unwrap();
    assert_eq!(again.1, drawn.1[..2 * 16]);
    assert!(!fallback.exists());
    // Another schedule, or another training set: drawn anew into the fallback.
    let other = Subset { schedule: ScheduleConfig { steps: 500, ..subset.schedule }, ..subset.clone() };
    assert!(!same_oracle(&home, &other, &train));
    let train_b = TrainingSet::new(ds.clone(), vec![0, 1]).unwrap();
    assert!(!same_oracle(&home, &subset, &train_b));
    oracle_samples_for(&other, &train, &cfg(2), &fallback).unwrap();
    let record: SamplesRecord = memgen_io::read_json(&fallback.join("samples.json")).unwrap();
    let SampledFrom::Oracle(o) = &record.source else { panic!("{record:?}") };
    assert_eq!(o.schedule.steps, 500);
}

#[test]
fn a_baseline_comparison_is_written_and_reads_back_as_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepare(&data, 12);
    for baseline in [Baseline::Oracle, Baseline::Linear { blind: false }] {
        let p = pair(&data, baseline);
        let out = p.default_dir(3);
        let inputs = CompareInputs::baseline(&p, &cfg(3), 4, &out).unwrap();
        assert_eq!((inputs.overlap, inputs.samples_a.0, inputs.samples_b.0), (0, [3, 1, 4, 4], [3, 1, 4, 4]));
        let record = compare(p.record(), &inputs, &thresholds()).unwrap();
        assert_eq!((record.n_a, record.n_b, record.count, record.noise_seed), (2, 2, 3, 3));
        assert_eq!(record.comparison.pairs.len(), 3);
        assert_eq!(record.comparison.novelty.as_ref().map(|r| r.corr.len()), Some(4));
        write_compare(&out, &record, &inputs, 2).unwrap();
        for f in ["compare.json", "compare.csv", "compare.png", "compare-hist.svg", "compare-hist.png"] {
            assert!(out.join(f).is_file(), "{baseline:?}: {f}");
        }
        let back: CompareRecord = memgen_io::read_json(&out.join("compare.json")).unwrap();
        assert_eq!(back, record);
        assert!(record.text().contains("3 noise draws; N_A = 2, N_B = 2"), "{}", record.text());
        let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.starts_with("k,corr_ab,a_own_corr,"));
    }
    // The linear pair draws into OUT/samples-a and -b, recording its subsets under "linear".
    let out = pair(&data, Baseline::Linear { blind: false }).default_dir(3);
    let record: SamplesRecord = memgen_io::read_json(&out.join("samples-b/samples.json")).unwrap();
    let SampledFrom::Linear(l) = &record.source else { panic!("{record:?}") };
    assert_eq!(l.subset.selection, Selection::Split { side: Side::B, n: 2, seed: 0 });
    assert!(!l.blind);
}

#[test]
fn memorization_scores_copies_of_training_images_as_memorized_and_its_record_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path(), 12);
    let ds = Arc::new(PreparedDataset::read(dir.path()).unwrap());
    let train = TrainingSet::new(ds.clone(), vec![4, 7, 9]).unwrap();
    // Samples: training images 7 and 9, and image 0 (not in the set).
    let pixels = [7, 9, 0].iter().flat_map(|&i| ds.image(i).to_vec()).collect();
    let inputs = MemorizationInputs {
        run: "/r/n3-a".into(),
        samples_path: "/r/n3-a/samples.safetensors".into(),
        train,
        samples: ([3, 1, 4, 4], pixels),
    };
    let record = memorization(&inputs, &thresholds()).unwrap();
    assert_eq!((record.count, record.n_train), (3, 3));
    assert_eq!(record.scores.iter().map(|s| s.corr_nn).take(2).collect::<Vec<_>>(), [7, 9]);
    assert!(record.scores[0].corr > 0.999 && record.scores[1].corr > 0.999);
    let out = dir.path().join("mem");
    write_memorization(&out, &record, &inputs, 2).unwrap();
    let back: MemorizationRecord = memgen_io::read_json(&out.join("memorization.json")).unwrap();
    assert_eq!(back, record);
    let v: serde_json::Value = memgen_io::read_json(&out.join("memorization.json")).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["config", "count", "n_train", "run", "samples", "scores", "summary", "threads"]);
    for f in ["memorization.csv", "memorization.png", "memorization-hist.svg", "memorization-hist.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert!(record.text().starts_with("3 samples against N = 3 training images\n"), "{}", record.text());
}

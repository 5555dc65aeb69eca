//! samples.json and compare.json written by memgen before these records had types (the demo's files,
//! in tests/data) parse into the typed records with their values, and write back byte for byte.

use memgen_diffusion::run::{Selection, Side};
use memgen_diffusion::sampler::SamplerConfig;
use memgen_diffusion::schedule::ScheduleConfig;
use memgen_pipeline::compare::{CompareRecord, ComparedPair};
use memgen_pipeline::sample::{SampledFrom, SamplesRecord};
use std::path::Path;

fn text(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `name` as its record `T`, after checking that the record writes the file's exact text back (keys
/// in alphabetical order, pretty-printed; memgen_io::write_json adds the final newline these files,
/// written before memgen-io, lack).
fn record<T: serde::de::DeserializeOwned + serde::Serialize>(name: &str) -> T {
    let text = text(name);
    let rec: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let again = serde_json::to_string_pretty(&serde_json::to_value(&rec).unwrap()).unwrap();
    assert!(again == text, "{name} does not write back as it was:\n{again}");
    rec
}

#[test]
fn samples_json_of_a_run_the_oracle_and_the_linear_denoiser_parse_with_their_values() {
    let run: SamplesRecord = record("samples-run.json");
    assert_eq!(run.source, SampledFrom::Run("/tmp/demo-before/runs/n10-a".into()));
    assert_eq!((run.config.noise_seed, run.config.count, run.config.batch_size), (1, 64, 64));
    assert_eq!(run.config.sampler, SamplerConfig::Ddim { steps: 50, eta: 0.0 });
    assert!(run.config.ema && run.config.initial_noise.is_none());
    assert_eq!(run.result.dims, [64, 1, 16, 16]);
    assert_eq!((run.result.in_range_fraction, run.result.seconds), (0.8125, 3.710046573));
    assert_eq!((run.threads, run.images_per_s), (1, 17.250457303086797));

    let oracle: SamplesRecord = record("samples-oracle.json");
    let SampledFrom::Oracle(o) = &oracle.source else { panic!("{oracle:?}") };
    assert_eq!(o.dataset, Path::new("/tmp/demo-before/data"));
    assert_eq!(o.content_hash, "sha256:d0d07ff941f2a581df4feba14dd653beb80b0688deea9e4a03c9e0d3e36707f9");
    assert_eq!(o.selection, Selection::Split { side: Side::A, n: 10, seed: 0 });
    assert_eq!(o.indices, [2481, 1134, 862, 2150, 2302, 2111, 2052, 113, 1151, 1766]);
    assert_eq!((o.n_train, o.schedule), (10, ScheduleConfig::default()));

    let linear: SamplesRecord = record("samples-linear.json");
    let SampledFrom::Linear(l) = &linear.source else { panic!("{linear:?}") };
    assert_eq!(l.subset.selection, Selection::Split { side: Side::B, n: 10, seed: 0 });
    assert_eq!(l.subset.indices[..3], [2519, 1147, 357]);
    assert_eq!((l.regularization.weight_decay, l.regularization.train_time, l.blind), (0.0, None, false));
    assert_eq!(linear.result.in_range_fraction, 0.859375);
}

#[test]
fn compare_json_of_runs_oracles_and_linear_denoisers_parse_with_their_values() {
    let runs: CompareRecord = record("compare-runs.json");
    let want = ComparedPair::Runs {
        run_a: "/tmp/demo-before/runs/n10-a".into(),
        run_b: "/tmp/demo-before/runs/n10-b".into(),
    };
    assert_eq!(runs.pair, want);
    assert_eq!((runs.noise_seed, runs.count, runs.n_a, runs.n_b), (1, 64, 10, 10));
    assert_eq!((runs.shared_training_images, runs.threads), (0, 1));
    assert_eq!(runs.sampler.sampler, SamplerConfig::Ddim { steps: 50, eta: 0.0 });
    let c = &runs.comparison;
    assert_eq!((c.pairs.len(), c.agree, c.corr_ab.median), (64, 0.0, Some(0.5072631992238986)));
    assert_eq!((c.config.corr_threshold, c.config.ratio_threshold), (0.95, 1.0 / 3.0));
    assert_eq!((c.pairs[0].corr_ab, c.pairs[0].a_own.corr_nn), (-0.05234249498523792, 1134));
    assert_eq!(c.pairs[0].a_own.l2_ratio, Some(0.40336635600624804));
    assert_eq!(c.a.in_range, Some(0.8125));
    assert!(c.novelty.is_some());

    let oracle: CompareRecord = record("compare-oracle.json");
    let ComparedPair::Oracle { data, n, split_seed, schedule, .. } = &oracle.pair else {
        panic!("{:?}", oracle.pair)
    };
    assert_eq!((data.as_path(), *n, *split_seed), (Path::new("/tmp/demo-before/data"), 10, 0));
    assert_eq!(*schedule, ScheduleConfig::default());
    assert_eq!(oracle.comparison.pairs[0].a_own.corr_nn, 2481);
    assert_eq!(oracle.comparison.corr_ab.median, Some(0.31959851032431313));

    let linear: CompareRecord = record("compare-linear.json");
    assert!(matches!(linear.pair, ComparedPair::Linear { blind: false, n: 10, .. }), "{:?}", linear.pair);
    assert_eq!(linear.comparison.a.in_range, Some(0.625));
    assert_eq!(linear.comparison.pairs[0].corr_ab, 0.7260626356448093);
}

#[test]
fn a_record_written_and_read_back_is_equal_and_a_record_of_one_kind_is_no_other() {
    for name in ["compare-runs.json", "compare-oracle.json", "compare-linear.json"] {
        let rec: CompareRecord = serde_json::from_str(&text(name)).unwrap();
        let back: CompareRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
        assert_eq!(back, rec, "{name}");
    }
    for name in ["samples-run.json", "samples-oracle.json", "samples-linear.json"] {
        let rec: SamplesRecord = serde_json::from_str(&text(name)).unwrap();
        let back: SamplesRecord = serde_json::from_str(&serde_json::to_string_pretty(&rec).unwrap()).unwrap();
        assert_eq!(back, rec, "{name}");
    }
    // samples.json without its source, or compare.json without its pair, is no record.
    let mut v: serde_json::Value = serde_json::from_str(&text("samples-oracle.json")).unwrap();
    v.as_object_mut().unwrap().remove("oracle");
    assert!(serde_json::from_value::<SamplesRecord>(v).is_err());
    let mut v: serde_json::Value = serde_json::from_str(&text("compare-linear.json")).unwrap();
    v.as_object_mut().unwrap().remove("linear");
    assert!(serde_json::from_value::<CompareRecord>(v).is_err());
}

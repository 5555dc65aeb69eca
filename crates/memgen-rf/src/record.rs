//! rf.json, the record of `memgen rf`: one [`crate::experiment`] sweep per target (the `--target` and,
//! with `--compare-target`, a second one with the same settings), the seeds, and the modes-shift
//! comparison of the two targets (Li et al. 2023: the early-stopped KL of well-separated modes, mu = 15,
//! next to close ones, mu = 3). [`RfRecord::table`] and [`RfRecord::csv`] are the command's text outputs.

use crate::experiment::{self, ExperimentConfig, ExperimentResult};
use crate::{Error, Result};
use memgen_metrics::stats::PowerFit;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Instant;

/// The seeds of a sweep, each derived from the base seed S.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RfSeeds {
    /// The random features (S).
    pub features: u64,
    /// The training samples (S + 1).
    pub samples: u64,
    /// The (t, z) draws of the DSM loss (S + 2).
    pub dsm_draws: u64,
    /// The noise of the SDE estimator (S + 3).
    pub sde: u64,
    /// The initial readout A(0) (S + 4).
    pub init: u64,
}

impl RfSeeds {
    /// The seeds `cfg` uses.
    pub fn of(cfg: &ExperimentConfig) -> Self {
        RfSeeds {
            features: cfg.features.seed,
            samples: cfg.data_seed,
            dsm_draws: cfg.dsm.seed,
            sde: cfg.sde.seed,
            init: cfg.init_seed,
        }
    }
}

/// The exponents of the bound O(n^{−2/5} + m^{−4/5}) (Li et al. 2023, Theorem 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundExponents {
    pub n: f64,
    pub m: f64,
}

impl Default for BoundExponents {
    /// n: −0.4, m: −0.8.
    fn default() -> Self {
        BoundExponents { n: -0.4, m: -0.8 }
    }
}

/// One target: its spec string as given, the sweep's config and its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub spec: String,
    pub config: ExperimentConfig,
    pub result: ExperimentResult,
}

/// One (n, m) of the modes-shift comparison: [first target, second target].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModesShiftRow {
    pub n: Option<usize>,
    pub m: usize,
    pub kl_best: [f64; 2],
    pub kl_late: [f64; 2],
    pub tau_best: [f64; 2],
}

/// Per (n, m): KL*, late KL and τ* of the first target next to the second's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModesShift {
    /// The two spec strings.
    pub targets: [String; 2],
    pub runs: Vec<ModesShiftRow>,
}

impl ModesShift {
    /// The comparison of the first two targets (None with fewer than two).
    pub fn of(targets: &[TargetRecord]) -> Option<Self> {
        let [t0, t1, ..] = targets else { return None };
        let runs = t0
            .result
            .curves
            .iter()
            .zip(&t1.result.curves)
            .map(|(c0, c1)| ModesShiftRow {
                n: c0.n,
                m: c0.m,
                kl_best: [c0.kl_best, c1.kl_best],
                kl_late: [c0.kl_late, c1.kl_late],
                tau_best: [c0.tau_best, c1.tau_best],
            })
            .collect();
        Some(ModesShift { targets: [t0.spec.clone(), t1.spec.clone()], runs })
    }
}

/// rf.json, the record of `memgen rf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfRecord {
    /// "rf".
    pub command: String,
    pub threads: usize,
    /// The base seed S.
    pub seed: u64,
    pub seeds: RfSeeds,
    pub wall_seconds: f64,
    pub bound_exponents: BoundExponents,
    /// With two targets.
    pub modes_shift: Option<ModesShift>,
    pub targets: Vec<TargetRecord>,
}

/// Run the sweep of every target (spec string, config), in order. `progress` is called with
/// "SPEC: n = N, m = M" before each curve. The seeds recorded are the first target's; `threads` is
/// recorded as given.
pub fn run(
    targets: Vec<(String, ExperimentConfig)>,
    threads: usize,
    progress: &dyn Fn(&str),
) -> Result<RfRecord> {
    let Some((_, first)) = targets.first() else {
        return Err(Error::Invalid("rf: no target".into()));
    };
    let seeds = RfSeeds::of(first);
    let start = Instant::now();
    let mut done = Vec::with_capacity(targets.len());
    for (spec, config) in targets {
        let result = experiment::run(&config, &|label| progress(&format!("{spec}: {label}")))
            .map_err(|e| Error::Target { spec: spec.clone(), source: Box::new(e) })?;
        done.push(TargetRecord { spec, config, result });
    }
    Ok(RfRecord {
        command: "rf".into(),
        threads,
        seed: seeds.features,
        seeds,
        wall_seconds: start.elapsed().as_secs_f64(),
        bound_exponents: BoundExponents::default(),
        modes_shift: ModesShift::of(&done),
        targets: done,
    })
}

fn fmt_fit(f: &Option<PowerFit>) -> String {
    f.map_or("-".into(), |f| format!("{:.3}", f.slope))
}

impl RfRecord {
    /// rf.csv: one row per τ of every curve (n = inf for the population reference).
    pub fn csv(&self) -> String {
        let mut s = String::from("target,n,m,tau,kl,mass,train_loss,score_error,is_best\n");
        for t in &self.targets {
            let r = &t.result;
            for c in r.population.iter().chain(&r.curves) {
                let n = c.n.map_or("inf".to_string(), |n| n.to_string());
                for p in &c.points {
                    let se = p.score_error.map_or(String::new(), |v| v.to_string());
                    let best = p.tau == c.tau_best;
                    let _ = writeln!(
                        s,
                        "\"{}\",{n},{},{},{},{},{},{se},{best}",
                        t.spec, c.m, p.tau, p.kl, p.mass, p.train_loss
                    );
                }
            }
        }
        s
    }

    /// The Markdown summary per target: KL*, τ* and the late KL per (n, m), the rate fits and the ODE
    /// step check.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for t in &self.targets {
            let r = &t.result;
            let _ = writeln!(
                s,
                "{}: {}\nKL of the exact score (estimator floor): {:.3e}",
                t.spec, r.description, r.kl_exact_score
            );
            let _ = writeln!(s, "| n | m | τ* | KL* | KL late | KL first | falls then rises | rank G |\n|---|---|---|---|---|---|---|---|");
            for c in r.population.iter().chain(&r.curves) {
                let n = c.n.map_or("∞".to_string(), |n| n.to_string());
                let _ = writeln!(
                    s,
                    "| {n} | {} | {:.3e} | {:.4e} | {:.4e} | {:.4e} | {} | {} |",
                    c.m, c.tau_best, c.kl_best, c.kl_late, c.kl_first, c.falls_then_rises, c.rank
                );
            }
            let f = &r.fits;
            let _ = writeln!(
                s,
                "slopes: KL* vs n {} (bound −0.4), floor-subtracted {}; KL* vs m {} (bound −0.8), n = ∞ {}",
                fmt_fit(&f.n),
                fmt_fit(&f.n_floor_subtracted),
                fmt_fit(&f.m),
                fmt_fit(&f.m_population)
            );
            if let Some(c) = &r.ode_check {
                let _ = writeln!(
                    s,
                    "step check at the largest (n, m): KL* {:.4e} with {} steps, {:.4e} with {}",
                    c.kl,
                    c.steps,
                    c.kl_double_steps,
                    2 * c.steps
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsm::{DsmConfig, PopulationConfig};
    use crate::experiment::{log_grid, Estimator};
    use crate::kl::SdeConfig;
    use crate::{FeatureConfig, Mixture};

    /// A sweep small enough for a unit test: n ∈ {5, 20}, m ∈ {4, 8}, 4 τ values, a coarse grid.
    fn tiny(spec: &str) -> (String, ExperimentConfig) {
        let cfg = ExperimentConfig {
            target: Mixture::parse(spec).unwrap(),
            ns: vec![5, 20],
            ms: vec![4, 8],
            features: FeatureConfig { seed: 7, ..Default::default() },
            dsm: DsmConfig { draws: 4, seed: 9, ..Default::default() },
            data_seed: 8,
            init_std: 0.0,
            init_seed: 11,
            taus: log_grid(10.0, 1e6, 4),
            grid: 81,
            ode_steps: 10,
            sde: SdeConfig { seed: 10, ..Default::default() },
            estimator: Estimator::Fp,
            checks: false,
            population: Some(PopulationConfig { grid: 40, times: 8 }),
        };
        (spec.to_string(), cfg)
    }

    #[test]
    fn record_round_trips_and_pairs_the_targets() {
        let calls = std::cell::Cell::new(0);
        let rec = run(vec![tiny("mixture:mu=3"), tiny("mixture:mu=15")], 2, &|label| {
            assert!(label.starts_with("mixture:mu="), "{label}");
            calls.set(calls.get() + 1);
        })
        .unwrap();
        assert_eq!(calls.get(), 2 * (4 + 2));
        assert_eq!(rec.seeds, RfSeeds { features: 7, samples: 8, dsm_draws: 9, sde: 10, init: 11 });
        assert_eq!(rec.seed, 7);
        let shift = rec.modes_shift.as_ref().unwrap();
        assert_eq!(shift.targets, ["mixture:mu=3".to_string(), "mixture:mu=15".to_string()]);
        assert_eq!(shift.runs.len(), 4);
        assert_eq!(shift.runs[3].kl_best[1], rec.targets[1].result.curves[3].kl_best);
        let text = serde_json::to_string(&rec).unwrap();
        let back: RfRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, rec);
        assert_eq!(rec.csv().lines().count(), 1 + 2 * (4 + 2) * 4);
        assert!(rec.table().contains("slopes: KL* vs n"));
        // One target: no comparison.
        let one = run(vec![tiny("mixture:mu=3")], 1, &|_| {}).unwrap();
        assert!(one.modes_shift.is_none());
        assert!(run(vec![], 1, &|_| {}).is_err());
    }
}

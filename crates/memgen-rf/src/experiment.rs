//! The sweep of `memgen rf`: for each training-set size n and feature count m, the random-feature score
//! model trained by gradient flow on the DSM loss of n samples, and KL(p0 ‖ p_θ(τ)) along the training
//! time τ; the early-stopping optimum (τ*, KL*) = argmin/min over the τ grid, the late KL at the largest τ
//! (the memorizing end), and log-log fits of KL* against n (at the largest m) and m (at the largest n),
//! to put next to the bound's O(n^{−2/5} + m^{−4/5}) (Li et al. 2023, Theorem 1).
//!
//! The n = ∞ reference ("population"): the same flow on the population form ([`crate::dsm::population`]),
//! one per m. Its KL*_∞(m) is the floor that finite n cannot beat at that m; "floor subtracted" fits
//! use KL*(n, m_max) − KL*_∞(m_max) (points where the difference is not positive are left out).
//!
//! Nesting: training set n is the first n samples of one seeded stream, and the m features are the
//! first m of m_max, so G and H for every (n, m) come from one pass (leading blocks of the m_max forms).

use crate::dsm::{self, DsmConfig, PopulationConfig, Quadratic};
use crate::features::{FeatureConfig, RandomFeatures};
use crate::flow::{initial, row_major, GradientFlow};
use crate::kl::{kl_fp, kl_ode, kl_sde, Grid, OdeConfig, SdeConfig};
use crate::score::RfScore;
use crate::target::Mixture;
use crate::{invalid, Result};
use memgen_metrics::stats::{power_law_fit, PowerFit};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Which KL estimator the curves use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Estimator {
    /// (a) probability-flow change of variables on every τ: the law of the ODE sampler.
    Ode,
    /// (b) reverse-SDE samples + KDE on every τ (slow, noisy).
    Sde,
    /// (c) the reverse SDE's law by its Fokker–Planck equation (1-D; default there).
    #[default]
    Fp,
}

/// Everything one sweep needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentConfig {
    /// The target p0.
    pub target: Mixture,
    /// Training-set sizes n (sorted, distinct, positive).
    pub ns: Vec<usize>,
    /// Feature counts m (sorted, distinct, positive).
    pub ms: Vec<usize>,
    /// The random features.
    pub features: FeatureConfig,
    /// The DSM loss (t0, T, K draws, λ(t), seed of the draws).
    pub dsm: DsmConfig,
    /// Seed of the training samples.
    pub data_seed: u64,
    /// Standard deviation of A(0) (0: A(0) = 0).
    pub init_std: f64,
    /// Seed of A(0).
    pub init_seed: u64,
    /// The training times τ at which the KL is evaluated (increasing, positive).
    pub taus: Vec<f64>,
    /// Grid points per coordinate of the KL sum.
    pub grid: usize,
    /// RK4 steps of estimator (a).
    pub ode_steps: usize,
    /// Estimator (b): samples, Euler–Maruyama steps, seed, bandwidth (its `ode.t0/t_max` are set from `dsm`).
    pub sde: SdeConfig,
    /// Which estimator the curves use.
    pub estimator: Estimator,
    /// Also evaluate all three estimators at τ* and at the largest τ of every curve.
    pub checks: bool,
    /// The n = ∞ reference (None: skipped).
    pub population: Option<PopulationConfig>,
}

/// `count` log-spaced values from `lo` to `hi`.
pub fn log_grid(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if count <= 1 {
        return vec![lo];
    }
    (0..count).map(|i| (lo.ln() + (hi / lo).ln() * i as f64 / (count - 1) as f64).exp()).collect()
}

/// One point of a KL curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub tau: f64,
    /// The KL of the curve's estimator.
    pub kl: f64,
    /// Σ p_θ ΔV on the grid.
    pub mass: f64,
    /// The training (DSM) loss L(A(τ)) of the run's own form.
    pub train_loss: f64,
    /// 1/(T − t0) ∫ λ E_{p_t}‖s_A − ∇ log p_t‖² dt (with the population reference).
    pub score_error: Option<f64>,
}

/// The three estimators at one τ (KL of the ODE law (a), of the SDE law from samples (b) and by
/// Fokker–Planck (c, 1-D only)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SdeCheck {
    pub tau: f64,
    pub kl_ode: f64,
    pub kl_sde: f64,
    pub kl_fp: Option<f64>,
    pub bandwidth: f64,
}

/// KL along τ for one (n, m); `n` is None for the population (n = ∞) reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub n: Option<usize>,
    pub m: usize,
    pub points: Vec<CurvePoint>,
    /// τ* and KL* = the minimum over the τ grid.
    pub tau_best: f64,
    pub kl_best: f64,
    /// KL at the largest τ (memorization end) and at the smallest.
    pub kl_late: f64,
    pub kl_first: f64,
    /// τ* is inside the grid and the KL rises after it by more than 1%: first falls, then rises.
    pub falls_then_rises: bool,
    /// Rank of G (eigenvalues above the null threshold).
    pub rank: usize,
    /// Estimator checks (with `checks`).
    pub sde_checks: Vec<SdeCheck>,
    pub seconds: f64,
}

/// The fitted exponents next to the bound's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fits {
    /// KL*(n, m_max) vs n; the bound's exponent is −0.4.
    pub n: Option<PowerFit>,
    /// KL*(n_max, m) vs m; the bound's exponent is −0.8.
    pub m: Option<PowerFit>,
    /// KL*(n, m_max) − KL*_∞(m_max) vs n (n = ∞ floor subtracted).
    pub n_floor_subtracted: Option<PowerFit>,
    /// KL*_∞(m) vs m (the n = ∞ reference alone: the approximation error).
    pub m_population: Option<PowerFit>,
    pub n_bound: f64,
    pub m_bound: f64,
}

/// The ODE error check: KL at (n_max, m_max, τ*) with `steps` and 2·`steps`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OdeCheck {
    pub steps: usize,
    pub kl: f64,
    pub kl_double_steps: f64,
}

/// The result of one sweep on one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResult {
    pub description: String,
    pub curves: Vec<Curve>,
    pub population: Vec<Curve>,
    /// KL of the exact mixture score through the curves' estimator ((a) for sde): the floor of t0, T
    /// and the steps.
    pub kl_exact_score: f64,
    pub fits: Fits,
    pub ode_check: Option<OdeCheck>,
    pub seconds: f64,
}

impl ExperimentConfig {
    /// Checks the lists and settings.
    pub fn validate(&self) -> Result<()> {
        self.dsm.validate()?;
        let sorted = |v: &[usize]| !v.is_empty() && v[0] > 0 && v.windows(2).all(|w| w[0] < w[1]);
        if !sorted(&self.ns) || !sorted(&self.ms) {
            return invalid("n and m need increasing, distinct, positive values");
        }
        let taus_ok = !self.taus.is_empty()
            && self.taus.iter().all(|t| *t > 0.0 && t.is_finite())
            && self.taus.windows(2).all(|w| w[0] < w[1]);
        if !taus_ok {
            return invalid("training times τ must be positive, finite and increasing");
        }
        if !(self.init_std >= 0.0 && self.init_std.is_finite()) || self.ode_steps == 0 {
            return invalid("the initial scale must be >= 0 and the ODE needs at least 1 step");
        }
        if self.estimator == Estimator::Fp && self.target.dim != 1 {
            return invalid("the Fokker–Planck estimator is 1-D only (use ode or sde in 2-D)");
        }
        Grid::covering(&self.target, self.grid).map(|_| ())
    }

    /// Number of KL curves the sweep computes (for progress bars).
    pub fn runs(&self) -> usize {
        self.ns.len() * self.ms.len() + if self.population.is_some() { self.ms.len() } else { 0 }
    }

    fn ode(&self, steps: usize) -> OdeConfig {
        OdeConfig { t0: self.dsm.t0, t_max: self.dsm.t_max, steps }
    }

    fn sde_cfg(&self) -> SdeConfig {
        SdeConfig { ode: OdeConfig { t0: self.dsm.t0, t_max: self.dsm.t_max, ..self.sde.ode }, ..self.sde }
    }
}

/// Run the sweep. `progress` is called with a label before each curve.
pub fn run(cfg: &ExperimentConfig, progress: &dyn Fn(&str)) -> Result<ExperimentResult> {
    cfg.validate()?;
    let start = Instant::now();
    let d = cfg.target.dim;
    let m_max = *cfg.ms.last().expect("validated");
    let n_max = *cfg.ns.last().expect("validated");
    let features = RandomFeatures::new(&cfg.features, d, m_max)?;
    let grid = Grid::covering(&cfg.target, cfg.grid)?;
    let samples = cfg.target.sample(n_max, cfg.data_seed);
    let forms = dsm::empirical(&features, &samples, &cfg.ns, &cfg.dsm)?;
    let pop_form = match &cfg.population {
        Some(p) => Some(dsm::population(&features, &cfg.target, &cfg.dsm, p)?),
        None => None,
    };
    let mut population = Vec::new();
    if let Some(pf) = &pop_form {
        for &m in &cfg.ms {
            progress(&format!("n = inf, m = {m}"));
            let q = pf.truncated(m);
            population.push(curve(cfg, &features, &grid, None, m, &q, Some(&q))?);
        }
    }
    let mut curves = Vec::new();
    for (form, &n) in forms.iter().zip(&cfg.ns) {
        for &m in &cfg.ms {
            progress(&format!("n = {n}, m = {m}"));
            let pop_m = pop_form.as_ref().map(|p| p.truncated(m));
            curves.push(curve(cfg, &features, &grid, Some(n), m, &form.truncated(m), pop_m.as_ref())?);
        }
    }
    let kl_exact_score = match cfg.estimator {
        Estimator::Fp => kl_fp(&cfg.target, &cfg.target, &grid, &cfg.ode(cfg.ode_steps))?.kl,
        _ => kl_ode(&cfg.target, &cfg.target, &grid, &cfg.ode(cfg.ode_steps))?.kl,
    };
    let ode_check = ode_check(cfg, &features, &grid, forms.last().expect("validated"), &curves)?;
    let fits = fits(cfg, &curves, &population);
    Ok(ExperimentResult {
        description: cfg.target.describe(),
        curves,
        population,
        kl_exact_score,
        fits,
        ode_check,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The model's KL (by the configured estimator) at A.
fn kl_at(
    cfg: &ExperimentConfig,
    features: &RandomFeatures,
    grid: &Grid,
    a: &faer::Mat<f64>,
    steps: usize,
) -> Result<(f64, f64)> {
    let model = RfScore::new(features, row_major(a));
    match cfg.estimator {
        Estimator::Sde => kl_sde(&model, &cfg.target, grid, &cfg.sde_cfg()).map(|(e, _)| (e.kl, e.mass)),
        Estimator::Fp => kl_fp(&model, &cfg.target, grid, &cfg.ode(steps)).map(|e| (e.kl, e.mass)),
        Estimator::Ode => kl_ode(&model, &cfg.target, grid, &cfg.ode(steps)).map(|e| (e.kl, e.mass)),
    }
}

/// The KL curve of one form (features 0..m).
fn curve(
    cfg: &ExperimentConfig,
    all: &RandomFeatures,
    grid: &Grid,
    n: Option<usize>,
    m: usize,
    q: &Quadratic,
    pop: Option<&Quadratic>,
) -> Result<Curve> {
    let start = Instant::now();
    let features = all.truncated(m);
    let a0 = initial(features.dim, m, cfg.init_std, cfg.init_seed);
    let flow = GradientFlow::new(q, &a0)?;
    let mut points = Vec::with_capacity(cfg.taus.len());
    for &tau in &cfg.taus {
        let a = flow.at(tau);
        let (kl, mass) = kl_at(cfg, &features, grid, &a, cfg.ode_steps)?;
        points.push(CurvePoint {
            tau,
            kl,
            mass,
            train_loss: q.loss(&a),
            score_error: pop.map(|p| p.loss(&a)),
        });
    }
    let best =
        (0..points.len()).min_by(|&i, &j| points[i].kl.total_cmp(&points[j].kl)).expect("taus non-empty");
    let (kl_best, kl_late) = (points[best].kl, points[points.len() - 1].kl);
    let mut c = Curve {
        n,
        m,
        tau_best: points[best].tau,
        kl_best,
        kl_late,
        kl_first: points[0].kl,
        falls_then_rises: best > 0 && best + 1 < points.len() && kl_late > 1.01 * kl_best,
        rank: flow.values.iter().filter(|v| **v > 0.0).count(),
        sde_checks: Vec::new(),
        points,
        seconds: 0.0,
    };
    if cfg.checks {
        for tau in [c.tau_best, *cfg.taus.last().expect("non-empty")] {
            let model = RfScore::new(&features, row_major(&flow.at(tau)));
            let (e, h) = kl_sde(&model, &cfg.target, grid, &cfg.sde_cfg())?;
            let kl_ode = kl_ode(&model, &cfg.target, grid, &cfg.ode(cfg.ode_steps))?.kl;
            let kl_fp = if cfg.target.dim == 1 {
                Some(kl_fp(&model, &cfg.target, grid, &cfg.ode(cfg.ode_steps))?.kl)
            } else {
                None
            };
            c.sde_checks.push(SdeCheck { tau, kl_ode, kl_sde: e.kl, kl_fp, bandwidth: h });
        }
    }
    c.seconds = start.elapsed().as_secs_f64();
    Ok(c)
}

/// KL at (n_max, m_max, τ*) with the configured and twice the steps (estimators (a) and (c)).
fn ode_check(
    cfg: &ExperimentConfig,
    all: &RandomFeatures,
    grid: &Grid,
    q: &Quadratic,
    curves: &[Curve],
) -> Result<Option<OdeCheck>> {
    let Some(last) = curves.last() else { return Ok(None) };
    if cfg.estimator == Estimator::Sde {
        return Ok(None);
    }
    let features = all.truncated(last.m);
    let flow =
        GradientFlow::new(&q.truncated(last.m), &initial(features.dim, last.m, cfg.init_std, cfg.init_seed))?;
    let a = flow.at(last.tau_best);
    let (kl2, _) = kl_at(cfg, &features, grid, &a, 2 * cfg.ode_steps)?;
    Ok(Some(OdeCheck { steps: cfg.ode_steps, kl: last.kl_best, kl_double_steps: kl2 }))
}

/// The rate fits (module docs).
fn fits(cfg: &ExperimentConfig, curves: &[Curve], population: &[Curve]) -> Fits {
    let (m_max, n_max) = (*cfg.ms.last().expect("validated"), *cfg.ns.last().expect("validated"));
    let at_m: Vec<&Curve> = curves.iter().filter(|c| c.m == m_max).collect();
    let at_n: Vec<&Curve> = curves.iter().filter(|c| c.n == Some(n_max)).collect();
    let nf = |c: &Curve| c.n.unwrap_or(0) as f64;
    let floor = population.iter().find(|c| c.m == m_max).map(|c| c.kl_best);
    Fits {
        n: power_law_fit(at_m.iter().map(|c| (nf(c), c.kl_best))),
        m: power_law_fit(at_n.iter().map(|c| (c.m as f64, c.kl_best))),
        n_floor_subtracted: floor.and_then(|f| power_law_fit(at_m.iter().map(|c| (nf(c), c.kl_best - f)))),
        m_population: power_law_fit(population.iter().map(|c| (c.m as f64, c.kl_best))),
        n_bound: -0.4,
        m_bound: -0.8,
    }
}

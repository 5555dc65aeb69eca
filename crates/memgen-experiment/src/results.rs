//! The results table: one row per training-set size N, gathered from the jobs' output files
//! (`runs/*/train.jsonl`, `compare/*/compare.json`, `oracle/*/compare.json`,
//! `linear-pair/*/compare.json`, `linear/linear.json`).
//! The draws of all noise seeds of one N are pooled before summarising. Each `[[sample.variants]]`
//! sampler gets rows of its own ([`VariantResults`]).

use crate::config::SamplerVariant;
use crate::plan::{
    compare_dir, denoise_error_dir, for_variant, linear_dir, linear_pair_dir, oracle_dir, run_dir, Plan,
};
use crate::verdict::{judge, Judgement, Rules};
use crate::{Experiment, Result};
use memgen_analysis::generalization::{AtReference, DenoiseError, DenoiseErrorRecord};
use memgen_diffusion::train::LogLine;
use memgen_io::read_json;
use memgen_linear::experiment::LinearRecord;
use memgen_metrics::scores::{pool, PooledScores};
use memgen_metrics::Summary;
use memgen_pipeline::compare::CompareRecord;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One trained model of a pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainResult {
    pub steps: u64,
    /// Mean training loss over the last logging window.
    pub final_loss: f64,
    /// Wall seconds of the optimisation steps (as recorded by the run).
    pub seconds: f64,
    pub images_per_s: f64,
}

/// The linear baseline at this N (`memgen linear`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearResult {
    pub kl: Option<f64>,
    pub kl_samples: Option<f64>,
    pub train_loss: Option<f64>,
    pub test_loss: Option<f64>,
    pub rank: Option<u64>,
}

/// Everything measured at one N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub n: usize,
    pub train_a: Option<TrainResult>,
    pub train_b: Option<TrainResult>,
    pub models: Option<PooledScores>,
    pub oracle: Option<PooledScores>,
    /// The Gaussian denoisers of S_A(N) and S_B(N) sampled with the same noise (`compare --linear`).
    #[serde(default)]
    pub linear_pair: Option<PooledScores>,
    pub linear: Option<LinearResult>,
    /// Each network's denoising error on its training images and on the shared held-out set, beside
    /// the linear and the oracle denoiser of its training set (`memgen denoise-error`).
    #[serde(default)]
    pub denoise_a: Option<DenoiseError>,
    #[serde(default)]
    pub denoise_b: Option<DenoiseError>,
    /// What these numbers say ([`crate::verdict`]).
    #[serde(default)]
    pub verdict: Option<Judgement>,
}

/// The experiment's results (`report/results.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub name: String,
    pub description: String,
    /// Pixels per image (d).
    pub d: Option<usize>,
    pub corr_threshold: Option<f64>,
    pub rows: Vec<Row>,
    /// The rows under each `[[sample.variants]]` sampler, in the file's order.
    #[serde(default)]
    pub variants: Vec<VariantResults>,
    pub experiment: Experiment,
}

/// The rows of one sampler variant: the main rows with the variant's comparisons of the networks
/// and of the linear pair, and the verdicts these give. Training, the linear baseline and the
/// denoising errors do not depend on the sampler and are the main rows'; no oracle runs under a
/// variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantResults {
    pub name: String,
    /// Its sampler flags.
    pub args: Vec<String>,
    pub rows: Vec<Row>,
}

/// Gather what the jobs of `plan` have written so far (missing pieces are `None`).
pub fn gather(exp: &Experiment, plan: &Plan) -> Result<Results> {
    let root = &plan.root;
    let linear = read_linear(&linear_dir(root).join("linear.json"))?;
    let mut rows = Vec::new();
    let mut threshold = None;
    for n in exp.sizes() {
        let models = pooled(
            exp.sample.noise_seeds.iter().map(|&s| compare_dir(root, n, s)).collect(),
            &mut threshold,
        )?;
        let oracle =
            pooled(exp.sample.noise_seeds.iter().map(|&s| oracle_dir(root, n, s)).collect(), &mut threshold)?;
        let linear_pair = pooled(
            exp.sample.noise_seeds.iter().map(|&s| linear_pair_dir(root, n, s)).collect(),
            &mut threshold,
        )?;
        let mut row = Row {
            n,
            train_a: read_train(&run_dir(root, n, 'a').join("train.jsonl"))?,
            train_b: read_train(&run_dir(root, n, 'b').join("train.jsonl"))?,
            models,
            oracle,
            linear_pair,
            linear: linear.iter().find(|(m, _)| *m == n).map(|(_, l)| l.clone()),
            denoise_a: read_denoise(&denoise_error_dir(root, n, 'a'))?,
            denoise_b: read_denoise(&denoise_error_dir(root, n, 'b'))?,
            verdict: None,
        };
        row.verdict = judge(&row, &Rules::default());
        rows.push(row);
    }
    let variants = exp
        .sample
        .variants
        .iter()
        .map(|v| variant_results(exp, plan, v, &rows, &mut threshold))
        .collect::<Result<Vec<_>>>()?;
    Ok(Results {
        name: exp.name.clone(),
        description: exp.description.clone(),
        d: pixels(&plan.data_dir),
        corr_threshold: threshold,
        rows,
        variants,
        experiment: exp.clone(),
    })
}

/// `rows` with the comparisons of sampler `v` in place of the main sampler's, and their verdicts.
fn variant_results(
    exp: &Experiment,
    plan: &Plan,
    v: &SamplerVariant,
    rows: &[Row],
    threshold: &mut Option<f64>,
) -> Result<VariantResults> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let dirs = |dir: fn(&Path, usize, u64) -> PathBuf| -> Vec<PathBuf> {
            let seeds = exp.sample.noise_seeds.iter();
            seeds.map(|&s| for_variant(dir(&plan.root, row.n, s), Some(&v.name))).collect()
        };
        let mut r = Row {
            models: pooled(dirs(compare_dir), threshold)?,
            linear_pair: pooled(dirs(linear_pair_dir), threshold)?,
            oracle: None,
            verdict: None,
            ..row.clone()
        };
        r.verdict = judge(&r, &Rules::default());
        out.push(r);
    }
    Ok(VariantResults { name: v.name.clone(), args: v.args.clone(), rows: out })
}

/// The errors of DIR/denoise-error.json (`None` when the job has not run).
fn read_denoise(dir: &Path) -> Result<Option<DenoiseError>> {
    let path = dir.join("denoise-error.json");
    if !path.exists() {
        return Ok(None);
    }
    let record: DenoiseErrorRecord = read_json(&path)?;
    Ok(Some(record.errors))
}

/// Pixels per image (C·H·W) of the dataset's manifest.json (`None` while it is not prepared).
fn pixels(data_dir: &Path) -> Option<usize> {
    let m = memgen_data::dataset::read_manifest(data_dir).ok()?;
    Some(m.channels * m.height * m.width)
}

/// The last line of a train.jsonl (`None` when the file is missing or empty).
pub(crate) fn read_train(path: &Path) -> Result<Option<TrainResult>> {
    if !path.exists() {
        return Ok(None);
    }
    let last: Option<LogLine> = memgen_io::read_last_json_line(path)?;
    Ok(last.map(|l| TrainResult {
        steps: l.step as u64,
        final_loss: l.loss,
        seconds: l.wall_s,
        images_per_s: l.images_per_s,
    }))
}

/// The comparisons found in `dirs` (one per noise seed), pooled; `None` when none exists yet.
fn pooled(dirs: Vec<PathBuf>, threshold: &mut Option<f64>) -> Result<Option<PooledScores>> {
    let mut cmps = Vec::new();
    for dir in dirs {
        let path = dir.join("compare.json");
        if !path.exists() {
            continue;
        }
        let record: CompareRecord = read_json(&path)?;
        cmps.push(record.comparison);
    }
    if let Some(first) = cmps.first() {
        *threshold = Some(first.config.corr_threshold);
    }
    Ok(pool(&cmps))
}

/// (n, result) for every row of a linear.json (none while it is not written).
fn read_linear(path: &Path) -> Result<Vec<(usize, LinearResult)>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let record: LinearRecord = read_json(path)?;
    Ok(record
        .results
        .iter()
        .map(|r| {
            let result = LinearResult {
                kl: r.kl,
                kl_samples: r.kl_samples,
                train_loss: Some(r.train_loss),
                test_loss: Some(r.test_loss),
                rank: Some(r.rank as u64),
            };
            (r.n, result)
        })
        .collect())
}

/// Columns of results.csv, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "n",
    "steps",
    "train_seconds_a",
    "train_seconds_b",
    "loss_a",
    "loss_b",
    "draws",
    "corr_own_a_median",
    "corr_own_b_median",
    "corr_other_a_median",
    "corr_other_b_median",
    "memorized_by_corr",
    "memorized_by_ratio",
    "corr_ab_median",
    "corr_ab_mean",
    "agree",
    "sets_median",
    "novelty_median",
    "oracle_corr_own_median",
    "oracle_corr_ab_median",
    "in_range",
    "linear_pair_corr_own_median",
    "linear_pair_corr_ab_median",
    "linear_pair_corr_ab_mean",
    "linear_pair_agree",
    "reference_sigma",
    "test_over_train_mse_a",
    "test_over_train_mse_b",
    "test_mse_over_linear_a",
    "test_mse_over_linear_b",
    "oracle_test_over_train_mse_a",
    "linear_kl",
    "linear_kl_samples",
    "linear_train_loss",
    "linear_test_loss",
    "verdict",
];

/// One line per N, columns [`CSV_COLUMNS`]; missing values are empty.
pub fn csv(rows: &[Row]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for r in rows {
        let m = r.models.as_ref();
        let o = r.oracle.as_ref();
        let lp = r.linear_pair.as_ref();
        let l = r.linear.as_ref();
        let ta = r.train_a.as_ref();
        let tb = r.train_b.as_ref();
        let (ra, rb) = (at_reference(&r.denoise_a), at_reference(&r.denoise_b));
        let cells: Vec<Option<f64>> = vec![
            Some(r.n as f64),
            ta.map(|t| t.steps as f64),
            ta.map(|t| t.seconds),
            tb.map(|t| t.seconds),
            ta.map(|t| t.final_loss),
            tb.map(|t| t.final_loss),
            m.map(|m| m.draws as f64),
            m.and_then(|m| m.a_own.median),
            m.and_then(|m| m.b_own.median),
            m.and_then(|m| m.a_other.median),
            m.and_then(|m| m.b_other.median),
            m.map(|m| m.memorized_by_corr),
            m.map(|m| m.memorized_by_ratio),
            m.and_then(|m| m.corr_ab.median),
            m.and_then(|m| m.corr_ab.mean),
            m.map(|m| m.agree),
            m.and_then(|m| m.sets.median),
            m.and_then(|m| m.novelty.as_ref()?.median),
            o.and_then(|o| Summary::of(&[o.a_own.median?, o.b_own.median?]).mean),
            o.and_then(|o| o.corr_ab.median),
            m.and_then(|m| m.in_range),
            lp.and_then(|p| Summary::of(&[p.a_own.median?, p.b_own.median?]).mean),
            lp.and_then(|p| p.corr_ab.median),
            lp.and_then(|p| p.corr_ab.mean),
            lp.map(|p| p.agree),
            ra.map(|x| x.sigma),
            ra.map(|x| x.gap),
            rb.map(|x| x.gap),
            ra.map(|x| x.vs_linear),
            rb.map(|x| x.vs_linear),
            r.denoise_a.as_ref().zip(ra).and_then(|(e, x)| e.oracle.gap(x.index)),
            l.and_then(|l| l.kl),
            l.and_then(|l| l.kl_samples),
            l.and_then(|l| l.train_loss),
            l.and_then(|l| l.test_loss),
        ];
        let mut text: Vec<String> =
            cells.iter().map(|c| c.map_or(String::new(), |v| format!("{v}"))).collect();
        text.push(r.verdict.as_ref().map_or(String::new(), |j| j.verdict.name().to_string()));
        let _ = writeln!(out, "{}", text.join(","));
    }
    out
}

/// The headline table, one row per N: the median correlation of the samples with their own
/// training set (A, B), the memorized fraction, the two models' agreement (median
/// corr(x_A, x_B), fraction above the threshold), held-out images against S_A (the novelty
/// reference), the oracles' agreement, the linear pair's agreement (both medians), the
/// fraction of the networks' samples in range, the linear KL and test loss, each network's test
/// MSE over its train MSE and over the Gaussian denoiser's at the reference σ, the verdict.
pub fn table(rows: &[Row]) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "N",
        "corr to own set A",
        "corr to own set B",
        "memorized",
        "corr(x_A, x_B)",
        "agree",
        "held-out vs S_A",
        "oracle corr(x_A, x_B)",
        "linear pair corr(x_A, x_B)",
        "in range",
        "linear KL",
        "linear test loss",
        "test/train MSE (A, B)",
        "test MSE / linear's (A, B)",
        "verdict",
    ];
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |x| format!("{x:.p$}"));
    let e = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4e}"));
    let rows = rows
        .iter()
        .map(|row| {
            let m = row.models.as_ref();
            let l = row.linear.as_ref();
            vec![
                row.n.to_string(),
                f(m.and_then(|m| m.a_own.median), 3),
                f(m.and_then(|m| m.b_own.median), 3),
                f(m.map(|m| m.memorized_by_corr), 2),
                f(m.and_then(|m| m.corr_ab.median), 3),
                f(m.map(|m| m.agree), 2),
                f(m.and_then(|m| m.novelty.as_ref()?.median), 3),
                f(row.oracle.as_ref().and_then(|o| o.corr_ab.median), 3),
                f(row.linear_pair.as_ref().and_then(|p| p.corr_ab.median), 3),
                f(m.and_then(|m| m.in_range), 2),
                e(l.and_then(|l| l.kl)),
                e(l.and_then(|l| l.test_loss)),
                pair(row, |x| x.gap),
                pair(row, |x| x.vs_linear),
                row.verdict.as_ref().map_or("-".into(), |j| j.verdict.name().to_string()),
            ]
        })
        .collect();
    (header.iter().map(|h| h.to_string()).collect(), rows)
}

/// For every N where the linear pair agrees at least as well as the networks (median
/// corr(x_A, x_B)), a sentence saying that agreement alone does not show that the networks
/// learned more than their sets' mean and covariance, and whether their held-out denoising error
/// (below the Gaussian denoiser's or not) does.
pub fn linear_pair_notes(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter_map(|row| {
            let net = row.models.as_ref()?.corr_ab.median?;
            let lin = row.linear_pair.as_ref()?.corr_ab.median?;
            (lin >= net).then(|| {
                let ratio = |e: &Option<DenoiseError>| Some(at_reference(e)?.vs_linear);
                let errors = match (ratio(&row.denoise_a), ratio(&row.denoise_b)) {
                    (Some(a), Some(b)) if a < 1.0 && b < 1.0 => format!(
                        " Their denoising error on held-out images, {a:.3} and {b:.3} times the Gaussian \
                         denoiser's, does show it."
                    ),
                    (Some(a), Some(b)) => format!(
                        " Nor does their denoising error on held-out images ({a:.3} and {b:.3} times the \
                         Gaussian denoiser's)."
                    ),
                    _ => String::new(),
                };
                format!(
                    "N = {}: the Gaussian denoisers of the same two sets agree as much as the networks \
                     (median corr(x_A, x_B) {lin:.3} against {net:.3}), so this agreement alone does not \
                     show that the networks learned more than their sets' mean and covariance.{errors}",
                    row.n
                )
            })
        })
        .collect()
}

/// The headline sentence from the verdicts ([`crate::verdict::headline`]).
pub fn verdicts(rows: &[Row]) -> Option<String> {
    crate::verdict::headline(rows)
}

/// [`table`] as Markdown.
pub fn headline(rows: &[Row]) -> String {
    let (header, rows) = table(rows);
    let mut t = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for row in rows {
        let _ = writeln!(t, "| {} |", row.join(" | "));
    }
    t
}

/// The summaries of a set of rows (the main sampler's or a variant's) as methods.
pub trait RowTables {
    fn rows(&self) -> &[Row];

    /// [`csv`] of the rows.
    fn csv(&self) -> String {
        csv(self.rows())
    }

    /// [`table`] of the rows.
    fn table(&self) -> (Vec<String>, Vec<Vec<String>>) {
        table(self.rows())
    }

    /// [`headline`] of the rows.
    fn headline(&self) -> String {
        headline(self.rows())
    }

    /// [`linear_pair_notes`] of the rows.
    fn linear_pair_notes(&self) -> Vec<String> {
        linear_pair_notes(self.rows())
    }

    /// [`verdicts`] of the rows.
    fn verdicts(&self) -> Option<String> {
        verdicts(self.rows())
    }
}

impl RowTables for Results {
    fn rows(&self) -> &[Row] {
        &self.rows
    }
}

impl RowTables for VariantResults {
    fn rows(&self) -> &[Row] {
        &self.rows
    }
}

/// One network's errors at the reference σ, when measured.
fn at_reference(e: &Option<DenoiseError>) -> Option<AtReference> {
    e.as_ref()?.at_reference()
}

/// "a, b" of `f` at the reference σ for networks A and B, 3 significant digits ("-" where missing).
fn pair(row: &Row, f: impl Fn(AtReference) -> f64) -> String {
    let digits = |v: f64| match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    };
    let one = |e: &Option<DenoiseError>| at_reference(e).map_or("-".to_string(), |x| digits(f(x)));
    format!("{}, {}", one(&row.denoise_a), one(&row.denoise_b))
}

//! A verdict per training-set size N, computed from the measured numbers and their controls
//! (README, "Verdicts"). In order:
//!
//! 1. **fails**: the samples are not data-like: the median of the samples' best correlation with their
//!    own training set lies more than `fail_margin` below the novelty reference (held-out images
//!    against S_A), or fewer than `min_in_range` of them lie in [−0.25, 1.25]. Two models that echo
//!    the same starting noise "agree" without having learned anything; this rule catches them first.
//! 2. **memorizes**: at least `memorized` of the samples are copies (best correlation with their own
//!    set above the threshold).
//! 3. **generalizes**: at most `few_copies` are copies, each network's test MSE is within
//!    `gap_tolerance` of its training MSE at the reference σ (the one nearest 0.1), the two networks
//!    agree (median corr(x_A, x_B) ≥ `agree`), and each network's test MSE is below that of the
//!    Gaussian (linear) denoiser of its own training set: the networks learned more than the data's
//!    mean and covariance.
//! 4. otherwise **in between** (also when the novelty reference or the in-range fraction is missing,
//!    so that rule 1 could not be checked).

use crate::results::Row;
use memgen_analysis::generalization::{AtReference, DenoiseError};
use memgen_metrics::scores::PooledScores;
use serde::{Deserialize, Serialize};

/// What the numbers at one N say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Fails,
    Memorizes,
    Generalizes,
    InBetween,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Fails => "fails",
            Verdict::Memorizes => "memorizes",
            Verdict::Generalizes => "generalizes",
            Verdict::InBetween => "in between",
        }
    }
}

/// The thresholds of the rules (module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    pub fail_margin: f64,
    pub min_in_range: f64,
    pub memorized: f64,
    pub few_copies: f64,
    pub gap_tolerance: f64,
    pub agree: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            fail_margin: 0.2,
            min_in_range: 0.5,
            memorized: 0.5,
            few_copies: 0.1,
            gap_tolerance: 0.1,
            agree: 0.9,
        }
    }
}

/// A verdict with the measured reasons for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub rules: Rules,
}

/// The verdict of `row` under `rules`; `None` until the networks' comparison exists.
pub fn judge(row: &Row, rules: &Rules) -> Option<Judgement> {
    let m: &PooledScores = row.models.as_ref()?;
    let own = (m.a_own.median? + m.b_own.median?) / 2.0;
    let mut reasons = Vec::new();
    let verdict = if let Some(why) = not_data_like(m, own, rules) {
        reasons.push(why);
        Verdict::Fails
    } else if m.memorized_by_corr >= rules.memorized {
        reasons.push(format!(
            "{:.0}% of the samples are copies of their own training images",
            100.0 * m.memorized_by_corr
        ));
        Verdict::Memorizes
    } else if m.novelty.is_none() || m.in_range.is_none() {
        reasons.push("no novelty reference or in-range fraction (a compare.json of an older memgen): whether the samples are data-like was not checked".into());
        Verdict::InBetween
    } else {
        generalizes(row, m, rules, &mut reasons)
    };
    Some(Judgement { verdict, reasons, rules: *rules })
}

/// Why the samples are not data-like, if they are not.
fn not_data_like(m: &PooledScores, own: f64, rules: &Rules) -> Option<String> {
    if let Some(fresh) = m.novelty.as_ref().and_then(|n| n.median) {
        if own < fresh - rules.fail_margin {
            return Some(format!(
                "the samples correlate {own:.3} (median) with their own set, far below the {fresh:.3} of fresh images"
            ));
        }
    }
    match m.in_range {
        Some(f) if f < rules.min_in_range => {
            Some(format!("only {:.0}% of the samples lie in [-0.25, 1.25]", 100.0 * f))
        }
        _ => None,
    }
}

/// Generalizes when every condition holds; otherwise in between, with the conditions that failed.
fn generalizes(row: &Row, m: &PooledScores, rules: &Rules, reasons: &mut Vec<String>) -> Verdict {
    let mut ok = true;
    let mut check = |holds: bool, text: String| {
        ok &= holds;
        reasons.push(if holds { text } else { format!("not: {text}") });
    };
    check(
        m.memorized_by_corr <= rules.few_copies,
        format!("{:.0}% copies (at most {:.0}%)", 100.0 * m.memorized_by_corr, 100.0 * rules.few_copies),
    );
    let corr_ab = m.corr_ab.median.unwrap_or(f64::NAN);
    check(
        corr_ab >= rules.agree,
        format!("the two networks agree: median corr(x_A, x_B) {corr_ab:.3} ≥ {}", rules.agree),
    );
    for (side, e) in [("A", &row.denoise_a), ("B", &row.denoise_b)] {
        match e.as_ref().and_then(DenoiseError::at_reference) {
            Some(AtReference { sigma, gap, vs_linear, .. }) => {
                check(
                    (gap - 1.0).abs() <= rules.gap_tolerance,
                    format!(
                        "{side}: test MSE / train MSE {gap:.3} at σ = {sigma} (within {})",
                        rules.gap_tolerance
                    ),
                );
                check(
                    vs_linear < 1.0,
                    format!("{side}: test MSE {vs_linear:.3}× the linear denoiser's at σ = {sigma}"),
                );
            }
            None => check(false, format!("{side}: no denoising error measured")),
        }
    }
    if ok {
        Verdict::Generalizes
    } else {
        Verdict::InBetween
    }
}

/// The report's headline: the sizes N under each verdict, in order of N, e.g. "Memorizes at
/// N = 1, 10; in between at N = 100; generalizes at N = 1000."
pub fn headline(rows: &[Row]) -> Option<String> {
    let mut groups: Vec<(Verdict, Vec<usize>)> = Vec::new();
    for row in rows {
        let Some(v) = row.verdict.as_ref().map(|j| j.verdict) else { continue };
        match groups.last_mut() {
            Some((last, ns)) if *last == v => ns.push(row.n),
            _ => groups.push((v, vec![row.n])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(v, ns)| {
            let ns: Vec<String> = ns.iter().map(|n| n.to_string()).collect();
            format!("{} at N = {}", v.name(), ns.join(", "))
        })
        .collect();
    let mut s = parts.join("; ");
    let first = s.chars().next()?.to_uppercase().to_string();
    s.replace_range(..1, &first);
    Some(s + ".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use memgen_analysis::curve::CurvePoint;
    use memgen_analysis::generalization::TrainTest;
    use memgen_metrics::scores::PooledScores;
    use memgen_metrics::Summary;

    fn pair(own: f64, fresh: f64, memorized: f64, corr_ab: f64, in_range: f64) -> PooledScores {
        PooledScores {
            draws: 10,
            a_own: Summary::of(&[own]),
            b_own: Summary::of(&[own]),
            a_other: Summary::of(&[0.5]),
            b_other: Summary::of(&[0.5]),
            memorized_by_corr: memorized,
            memorized_by_ratio: memorized,
            corr_ab: Summary::of(&[corr_ab]),
            agree: 0.0,
            sets: Summary::of(&[0.7]),
            in_range: Some(in_range),
            novelty: Some(Summary::of(&[fresh])),
        }
    }

    fn point(sigma: f64, mse: f64) -> CurvePoint {
        CurvePoint { sigma, effective_sigma: sigma, mse, mse_se: 0.0, psnr: 0.0, input_mse: sigma * sigma }
    }

    /// Errors at σ = 0.05, 0.1, 0.4: the network's train and test MSE at 0.1 as given, the linear
    /// denoiser's test MSE 0.01 there.
    fn errors(train: f64, test: f64) -> DenoiseError {
        let sigmas = vec![0.05, 0.1, 0.4];
        let tt = |a: f64, b: f64| TrainTest {
            train: sigmas.iter().map(|&s| point(s, a)).collect(),
            test: sigmas.iter().map(|&s| point(s, b)).collect(),
        };
        DenoiseError {
            sigmas: sigmas.clone(),
            train_images: 10,
            test_images: 10,
            network: tt(train, test),
            linear: tt(0.008, 0.01),
            oracle: tt(0.0, 0.05),
        }
    }

    fn row(models: PooledScores, err: Option<(f64, f64)>) -> Row {
        Row {
            n: 100,
            train_a: None,
            train_b: None,
            models: Some(models),
            oracle: None,
            linear_pair: None,
            linear: None,
            denoise_a: err.map(|(a, b)| errors(a, b)),
            denoise_b: err.map(|(a, b)| errors(a, b)),
            verdict: None,
        }
    }

    fn verdict(r: &Row) -> Verdict {
        judge(r, &Rules::default()).unwrap().verdict
    }

    #[test]
    fn the_rules_on_constructed_cases() {
        let good = Some((0.005, 0.0052));
        // Samples that are noise, which the two models share: high agreement, no copies, far from
        // data (the broken-EMA case) -> fails, whatever else holds.
        assert_eq!(verdict(&row(pair(0.17, 0.72, 0.0, 0.81, 0.9), good)), Verdict::Fails);
        assert_eq!(verdict(&row(pair(0.9, 0.85, 0.0, 0.95, 0.3), good)), Verdict::Fails, "out of range");
        // Copies.
        assert_eq!(verdict(&row(pair(0.99, 0.8, 0.9, 0.5, 1.0), Some((1e-4, 0.03)))), Verdict::Memorizes);
        // Few copies, agreement, test ≈ train, below the linear denoiser.
        let j = judge(&row(pair(0.85, 0.88, 0.02, 0.95, 0.95), good), &Rules::default()).unwrap();
        assert_eq!(j.verdict, Verdict::Generalizes, "{:?}", j.reasons);
        // Each condition alone turns it into "in between".
        assert_eq!(
            verdict(&row(pair(0.85, 0.88, 0.02, 0.80, 0.95), good)),
            Verdict::InBetween,
            "no agreement"
        );
        assert_eq!(
            verdict(&row(pair(0.85, 0.88, 0.02, 0.95, 0.95), Some((0.004, 0.0052)))),
            Verdict::InBetween,
            "gap 1.3"
        );
        assert_eq!(
            verdict(&row(pair(0.85, 0.88, 0.02, 0.95, 0.95), Some((0.011, 0.012)))),
            Verdict::InBetween,
            "above linear"
        );
        assert_eq!(verdict(&row(pair(0.85, 0.88, 0.2, 0.95, 0.95), good)), Verdict::InBetween, "20% copies");
        let none = judge(&row(pair(0.85, 0.88, 0.02, 0.95, 0.95), None), &Rules::default()).unwrap();
        assert_eq!(none.verdict, Verdict::InBetween);
        assert!(none.reasons.iter().any(|r| r.contains("no denoising error")), "{:?}", none.reasons);
        let mut old = pair(0.85, 0.88, 0.02, 0.95, 0.95);
        old.novelty = None;
        assert_eq!(verdict(&row(old, good)), Verdict::InBetween, "rule 1 unchecked");
    }

    #[test]
    fn the_headline_groups_consecutive_verdicts() {
        let mut rows: Vec<Row> = [
            (1, Verdict::Memorizes),
            (10, Verdict::Memorizes),
            (100, Verdict::InBetween),
            (1000, Verdict::Generalizes),
        ]
        .into_iter()
        .map(|(n, v)| {
            let mut r = row(pair(0.9, 0.9, 0.0, 0.9, 1.0), None);
            r.n = n;
            r.verdict = Some(Judgement { verdict: v, reasons: vec![], rules: Rules::default() });
            r
        })
        .collect();
        assert_eq!(
            headline(&rows).unwrap(),
            "Memorizes at N = 1, 10; in between at N = 100; generalizes at N = 1000."
        );
        rows.iter_mut().for_each(|r| r.verdict = None);
        assert_eq!(headline(&rows), None);
    }
}

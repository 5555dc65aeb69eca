//! The tables and figures of compare and memorization: CSV rows, labeled image tables, histograms of
//! correlations and the summary text.

use super::TrainingSet;
use crate::Result;
use memgen_metrics::scores::{MemorizationSummary, PairScores};
use memgen_metrics::{CompareConfig, Comparison, Images, MemorizationScore};
use memgen_plot::figure::{Cell, LabeledTable, TableConfig};
use memgen_plot::histogram::{save_rgb_png, save_svg, HistogramPlot, Series};
use memgen_plot::text::text_width;
use std::fmt::Write as _;
use std::path::Path;

/// The per-draw table as CSV: one row per noise draw.
pub(super) fn compare_csv(cmp: &Comparison) -> String {
    let mut s = String::from("k,corr_ab");
    for side in ["a_own", "a_other", "b_own", "b_other"] {
        for f in ["corr", "corr_nn", "l2_nn1", "l2_nn", "l2_nn2", "l2_ratio"] {
            let _ = write!(s, ",{side}_{f}");
        }
    }
    s.push('\n');
    for (k, p) in cmp.pairs.iter().enumerate() {
        let _ = write!(s, "{k},{}", p.corr_ab);
        for m in [&p.a_own, &p.a_other, &p.b_own, &p.b_other] {
            s.push(',');
            s.push_str(&score_csv(m));
        }
        s.push('\n');
    }
    s
}

/// The per-sample table of memorization.csv.
pub(super) fn memorization_csv(scores: &[MemorizationScore]) -> String {
    let mut csv = String::from("k,corr,corr_nn,l2_nn1,l2_nn,l2_nn2,l2_ratio\n");
    for (k, m) in scores.iter().enumerate() {
        let _ = writeln!(csv, "{k},{}", score_csv(m));
    }
    csv
}

fn score_csv(m: &MemorizationScore) -> String {
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    format!("{},{},{},{},{},{}", m.corr, m.corr_nn, m.l2_nn1, m.l2_nn, opt(m.l2_nn2), opt(m.l2_ratio))
}

/// compare.png: one row per noise draw, [sample A | nearest in S_A | sample B | nearest in S_B], each
/// nearest image labelled with its correlation to the sample and sample B with corr(x_A, x_B).
#[allow(clippy::too_many_arguments)]
pub(super) fn compare_table<'a>(
    cmp: &Comparison,
    sa: &Images<'a>,
    sb: &Images<'a>,
    train_a: &'a TrainingSet,
    train_b: &'a TrainingSet,
    rows: usize,
    h: usize,
    w: usize,
) -> LabeledTable<'a> {
    let plane = h * w;
    let row = |k: usize, p: &PairScores| {
        vec![
            Cell { image: &sa.get(k)[..plane], label: format!("#{k}") },
            Cell { image: &train_a.image(p.a_own.corr_nn)[..plane], label: format!("{:.3}", p.a_own.corr) },
            Cell { image: &sb.get(k)[..plane], label: format!("AB {:.3}", p.corr_ab) },
            Cell { image: &train_b.image(p.b_own.corr_nn)[..plane], label: format!("{:.3}", p.b_own.corr) },
        ]
    };
    LabeledTable {
        header: ["sample A", "NN in S_A", "sample B", "NN in S_B"].map(String::from).to_vec(),
        rows: cmp.pairs.iter().enumerate().take(rows).map(|(k, p)| row(k, p)).collect(),
        height: h,
        width: w,
    }
}

/// memorization.png: one row per sample, [sample | nearest in S], labelled with their correlation.
pub(super) fn memorization_table<'a>(
    scores: &[MemorizationScore],
    samples: &Images<'a>,
    train: &'a TrainingSet,
    rows: usize,
    h: usize,
    w: usize,
) -> LabeledTable<'a> {
    let plane = h * w;
    LabeledTable {
        header: vec!["sample".into(), "NN in S".into()],
        rows: scores
            .iter()
            .enumerate()
            .take(rows)
            .map(|(k, m)| {
                vec![
                    Cell { image: &samples.get(k)[..plane], label: format!("#{k}") },
                    Cell { image: &train.image(m.corr_nn)[..plane], label: format!("{:.3}", m.corr) },
                ]
            })
            .collect(),
        height: h,
        width: w,
    }
}

/// The default look, with images scaled up (at least 2x) until every title and label fits its column.
pub(super) fn table_config(table: &LabeledTable) -> TableConfig {
    let cfg = TableConfig::default();
    let labels = table.rows.iter().flatten().map(|c| c.label.as_str());
    let widest = table.header.iter().map(String::as_str).chain(labels).map(|l| text_width(l, cfg.font_px));
    let need = (widest.fold(0.0f32, f32::max).ceil() as usize).saturating_sub(cfg.pad);
    TableConfig { scale: need.div_ceil(table.width.max(1)).max(cfg.scale), ..cfg }
}

/// Overlaid histograms of correlations as NAME.svg and NAME.png in `out`.
pub(super) fn write_histogram(
    out: &Path,
    name: &str,
    title: &str,
    series: &[(&str, Vec<f64>)],
) -> Result<()> {
    let lo = series.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0f64, f64::min);
    let plot = HistogramPlot {
        title: title.into(),
        x_label: "Pearson correlation".into(),
        series: series.iter().map(|(n, v)| Series { name: n.to_string(), values: v }).collect(),
        lo: (lo * 10.0).floor() / 10.0,
        hi: 1.0,
        bins: 50,
    };
    save_svg(&plot.to_svg()?, &out.join(format!("{name}.svg")))?;
    save_rgb_png(&plot.to_png(800, 500)?, &out.join(format!("{name}.png")))?;
    Ok(())
}

/// The summary of a comparison printed to the terminal.
pub(super) fn compare_text(cmp: &Comparison, n_a: usize, n_b: usize) -> String {
    let mut s = String::new();
    let c = &cmp.config;
    let _ = writeln!(s, "{} noise draws; N_A = {n_a}, N_B = {n_b}", cmp.pairs.len());
    let _ = writeln!(s, "{:<30} {:>8} {:>8} {:>8} {:>12}", "", "median", "q1", "q3", "fraction");
    let line = |s: &mut String, name: &str, sum: &memgen_metrics::Summary, frac: f64| {
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
        let frac = if frac.is_nan() { "-".into() } else { format!("{frac:.3}") };
        let _ = writeln!(s, "{name:<30} {:>8} {:>8} {:>8} {frac:>12}", f(sum.median), f(sum.q1), f(sum.q3));
    };
    line(&mut s, "corr(A, B) > corr threshold", &cmp.corr_ab, cmp.agree);
    for (side, sum) in [("A", &cmp.a), ("B", &cmp.b)] {
        memorization_lines(&mut s, side, &sum.own, "own set", c);
        memorization_lines(&mut s, side, &sum.other, "other set", c);
    }
    line(&mut s, "S_A vs S_B best corr", &cmp.reference.summary, f64::NAN);
    if let Some(novelty) = &cmp.novelty {
        line(&mut s, "held-out vs S_A best corr", &novelty.summary, f64::NAN);
    }
    let none = memgen_metrics::Summary::of(&[]);
    for (side, sum) in [("A", &cmp.a), ("B", &cmp.b)] {
        line(&mut s, &format!("{side} in [-0.25, 1.25]"), &none, sum.in_range.unwrap_or(f64::NAN));
    }
    s
}

/// The two lines (by correlation, by L2 ratio) of one set of samples against one training set.
pub(super) fn memorization_lines(
    s: &mut String,
    side: &str,
    m: &MemorizationSummary,
    set: &str,
    c: &CompareConfig,
) {
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
    let rows = [
        (format!("{side} vs {set}: corr > {}", c.corr_threshold), &m.corr, m.memorized_by_corr),
        (format!("{side} vs {set}: ratio < {:.3}", c.ratio_threshold), &m.l2_ratio, m.memorized_by_ratio),
    ];
    for (name, q, memorized) in rows {
        let _ = writeln!(s, "{name:<30} {:>8} {:>8} {:>8} {memorized:>12.3}", f(q.median), f(q.q1), f(q.q3));
    }
}

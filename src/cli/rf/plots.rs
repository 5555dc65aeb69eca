//! The figures of `memgen rf`: KL along training per n and per m, the rates in n and m, and the modes
//! shift of two targets.

use super::super::save_plot;
use anyhow::Result;
use memgen_plot::lineplot::{LinePlot, LineSeries, LineStyle};
use memgen_rf::experiment::{Curve, ExperimentResult};
use memgen_rf::record::RfRecord;
use std::path::Path;

/// Points (x, y) of curves picked by `keep`.
fn pts(curves: &[Curve], keep: impl Fn(&Curve) -> bool, f: impl Fn(&Curve) -> (f64, f64)) -> Vec<(f64, f64)> {
    curves.iter().filter(|c| keep(c)).map(f).collect()
}

/// A reference power law c·x^slope through the first point of `p`, over its x range.
fn reference(p: &[(f64, f64)], slope: f64) -> Vec<(f64, f64)> {
    match (p.first(), p.last()) {
        (Some(&(x0, y0)), Some(&(x1, _))) => vec![(x0, y0), (x1, y0 * (x1 / x0).powf(slope))],
        _ => vec![],
    }
}

fn log_plot<'a>(title: String, x: &str, series: Vec<LineSeries<'a>>) -> LinePlot<'a> {
    LinePlot {
        title,
        x_label: x.into(),
        y_label: "KL(p0 / p_theta)".into(),
        series,
        log_x: true,
        log_y: true,
        vlines: vec![],
    }
}

/// Per target (suffix -1 for the compare target): rf-kl-tau (KL vs τ per n at m_max, and n = ∞),
/// rf-kl-tau-m (per m at n_max), rf-rates-n, rf-rates-m; and rf-modes-shift for two targets.
pub(super) fn plots(out: &Path, record: &RfRecord) -> Result<()> {
    let targets = &record.targets;
    for (i, t) in targets.iter().enumerate() {
        let (spec, cfg, r) = (&t.spec, &t.config, &t.result);
        let suffix = if i == 0 { String::new() } else { format!("-{i}") };
        let (m_max, n_max) = (*cfg.ms.last().unwrap_or(&0), *cfg.ns.last().unwrap_or(&0));
        let curve_pts = |c: &Curve| c.points.iter().map(|p| (p.tau, p.kl)).collect::<Vec<_>>();
        let by_n: Vec<(String, Vec<(f64, f64)>)> = r
            .curves
            .iter()
            .chain(&r.population)
            .filter(|c| c.m == m_max)
            .map(|c| (c.n.map_or("n = inf".into(), |n| format!("n = {n}")), curve_pts(c)))
            .collect();
        let series = by_n
            .iter()
            .map(|(name, p)| LineSeries { name: name.clone(), points: p, style: LineStyle::Line })
            .collect();
        save_plot(
            out,
            &format!("rf-kl-tau{suffix}"),
            &log_plot(format!("{spec}: KL along training, m = {m_max}"), "training time tau", series),
        )?;
        let by_m: Vec<(String, Vec<(f64, f64)>)> = r
            .curves
            .iter()
            .filter(|c| c.n == Some(n_max))
            .map(|c| (format!("m = {}", c.m), curve_pts(c)))
            .collect();
        let series = by_m
            .iter()
            .map(|(name, p)| LineSeries { name: name.clone(), points: p, style: LineStyle::Line })
            .collect();
        save_plot(
            out,
            &format!("rf-kl-tau-m{suffix}"),
            &log_plot(format!("{spec}: KL along training, n = {n_max}"), "training time tau", series),
        )?;
        rate_plots(out, &suffix, spec, r, m_max, n_max)?;
    }
    if targets.len() == 2 {
        let m_max = *targets[0].config.ms.last().unwrap_or(&0);
        let best: Vec<Vec<(f64, f64)>> = targets
            .iter()
            .map(|t| pts(&t.result.curves, |c| c.m == m_max, |c| (c.n.unwrap_or(0) as f64, c.kl_best)))
            .collect();
        let late: Vec<Vec<(f64, f64)>> = targets
            .iter()
            .map(|t| pts(&t.result.curves, |c| c.m == m_max, |c| (c.n.unwrap_or(0) as f64, c.kl_late)))
            .collect();
        let mut series = Vec::new();
        for k in 0..2 {
            series.push(LineSeries {
                name: format!("KL* {}", targets[k].spec),
                points: &best[k],
                style: LineStyle::LineAndMarkers,
            });
            series.push(LineSeries {
                name: format!("late KL {}", targets[k].spec),
                points: &late[k],
                style: LineStyle::Dashed,
            });
        }
        save_plot(
            out,
            "rf-modes-shift",
            &log_plot(format!("Modes shift, m = {m_max}"), "training samples n", series),
        )?;
    }
    Ok(())
}

fn rate_plots(
    out: &Path,
    suffix: &str,
    spec: &str,
    r: &ExperimentResult,
    m_max: usize,
    n_max: usize,
) -> Result<()> {
    let kn = pts(&r.curves, |c| c.m == m_max, |c| (c.n.unwrap_or(0) as f64, c.kl_best));
    let floor = r.population.iter().find(|c| c.m == m_max).map(|c| c.kl_best);
    let sub: Vec<(f64, f64)> = floor.map_or(vec![], |f| kn.iter().map(|&(n, k)| (n, k - f)).collect());
    let (ref_n, ref_sub) = (reference(&kn, -0.4), reference(&sub, -0.4));
    let series = vec![
        LineSeries { name: "KL*".into(), points: &kn, style: LineStyle::LineAndMarkers },
        LineSeries { name: "KL* - KL*(n = inf)".into(), points: &sub, style: LineStyle::LineAndMarkers },
        LineSeries { name: "slope -2/5".into(), points: &ref_n, style: LineStyle::Dashed },
        LineSeries {
            name: "slope -2/5 (floor subtracted)".into(),
            points: &ref_sub,
            style: LineStyle::Dashed,
        },
    ];
    save_plot(
        out,
        &format!("rf-rates-n{suffix}"),
        &log_plot(format!("{spec}: early-stopped KL vs n, m = {m_max}"), "training samples n", series),
    )?;
    let km = pts(&r.curves, |c| c.n == Some(n_max), |c| (c.m as f64, c.kl_best));
    let kp = pts(&r.population, |_| true, |c| (c.m as f64, c.kl_best));
    let ref_m = reference(&km, -0.8);
    let series = vec![
        LineSeries { name: format!("KL*, n = {n_max}"), points: &km, style: LineStyle::LineAndMarkers },
        LineSeries { name: "KL*, n = inf".into(), points: &kp, style: LineStyle::LineAndMarkers },
        LineSeries { name: "slope -4/5".into(), points: &ref_m, style: LineStyle::Dashed },
    ];
    save_plot(
        out,
        &format!("rf-rates-m{suffix}"),
        &log_plot(format!("{spec}: early-stopped KL vs m"), "random features m", series),
    )
}

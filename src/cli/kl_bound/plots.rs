//! The figures of `memgen kl-bound`: the bound and the KLs against N, and the integrand per σ.

use super::super::save_plot;
use anyhow::Result;
use memgen_analysis::klbound::{KlBound, KlBoundRecord, LinearRow};
use memgen_plot::lineplot::{LinePlot, LineSeries, LineStyle};
use std::path::Path;

/// kl-bound (bound and KLs vs N) and kl-bound-integrand (e(σ) σ⁻³ vs σ per N), SVG and PNG.
pub(super) fn plots(out: &Path, record: &KlBoundRecord) -> Result<()> {
    let (linear, runs, d) = (&record.linear, &record.runs, record.d);
    let pts = |f: &dyn Fn(&LinearRow) -> Option<f64>| -> Vec<(f64, f64)> {
        linear.iter().filter_map(|r| f(r).filter(|v| v.is_finite()).map(|v| (r.n as f64, v))).collect()
    };
    let bound = pts(&|r| Some(r.bound.bound));
    let smoothed = pts(&|r| Some(r.kl_smoothed));
    let fitted = pts(&|r| Some(r.kl_fitted));
    let reverse = pts(&|r| Some(r.kl_fitted_reverse));
    let lin = pts(&|r| r.kl_linear);
    let lin_first = pts(&|r| Some(r.kl_linear_truth_first));
    let run_pts: Vec<(f64, f64)> = runs.iter().map(|r| (r.n as f64, r.bound.bound)).collect();
    let mut series = vec![
        LineSeries {
            name: "bound B (linear denoiser)".into(),
            points: &bound,
            style: LineStyle::LineAndMarkers,
        },
        LineSeries { name: "KL(p_smin / q_smin)".into(), points: &smoothed, style: LineStyle::Dashed },
        LineSeries { name: "KL(p / N(mu0, S0))".into(), points: &fitted, style: LineStyle::Markers },
        LineSeries { name: "KL(N(mu0, S0) / p)".into(), points: &reverse, style: LineStyle::Markers },
        LineSeries {
            name: "KL(rho_N / rho), sampler".into(),
            points: &lin,
            style: LineStyle::LineAndMarkers,
        },
        LineSeries { name: "KL(rho / rho_N), sampler".into(), points: &lin_first, style: LineStyle::Dashed },
    ];
    if !run_pts.is_empty() {
        series.push(LineSeries {
            name: "bound B (trained runs)".into(),
            points: &run_pts,
            style: LineStyle::Markers,
        });
    }
    let plot = LinePlot {
        title: "KL bound from denoising errors vs exact KL".into(),
        x_label: "training images N".into(),
        y_label: "KL (nats)".into(),
        series,
        log_x: true,
        log_y: true,
        vlines: vec![(d as f64, format!("N = d = {d}"))],
    };
    save_plot(out, "kl-bound", &plot)?;
    let curves: Vec<Curve> = linear
        .iter()
        .map(|r| (format!("N = {}", r.n), integrand(&r.bound), LineStyle::Line))
        .chain(runs.iter().map(|r| {
            let name = r
                .run
                .file_name()
                .map_or_else(|| r.run.display().to_string(), |f| f.to_string_lossy().into_owned());
            (format!("{name} (N = {})", r.n), integrand(&r.bound), LineStyle::LineAndMarkers)
        }))
        .collect();
    let plot = LinePlot {
        title: "Integrand (MSE - MSE*) sigma^-3".into(),
        x_label: "noise level sigma".into(),
        y_label: "(MSE - MSE*) / sigma^3".into(),
        series: curves
            .iter()
            .map(|(n, p, st)| LineSeries { name: n.clone(), points: p, style: *st })
            .collect(),
        log_x: true,
        log_y: true,
        vlines: vec![],
    };
    save_plot(out, "kl-bound-integrand", &plot)
}

/// A named series of the integrand plot and its style.
type Curve = (String, Vec<(f64, f64)>, LineStyle);

fn integrand(b: &KlBound) -> Vec<(f64, f64)> {
    b.points.iter().map(|p| (p.sigma, p.integrand)).collect()
}

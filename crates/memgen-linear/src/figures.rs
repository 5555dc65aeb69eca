//! The figures of `memgen linear`, as SVG and PNG: linear-kl (the KLs against N beside the d/N law),
//! linear-loss (train and test losses) and, for N < d, linear-weight-decay and linear-train-time (KL
//! along the regularisation sweeps).

use crate::experiment::{NResult, Sweep};
use crate::Result;
use memgen_plot::lineplot::{LinePlot, LineSeries, LineStyle};
use std::path::Path;

/// Write `plot` as OUT/NAME.svg and an 800 x 560 OUT/NAME.png.
fn save(out: &Path, name: &str, plot: &LinePlot) -> Result<()> {
    plot.save(out, name, 800, 560)?;
    Ok(())
}

/// linear-kl, linear-loss and (for N < d) linear-weight-decay / linear-train-time, as SVG and PNG.
pub fn write_figures(
    out: &Path,
    results: &[NResult],
    sweeps: &[Sweep],
    limit: Option<f64>,
    d: usize,
) -> Result<()> {
    let pts = |f: &dyn Fn(&NResult) -> Option<f64>| -> Vec<(f64, f64)> {
        results.iter().filter_map(|r| f(r).map(|v| (r.n as f64, v))).collect()
    };
    let kl = pts(&|r| r.kl);
    let excess = pts(&|r| r.kl.zip(limit).map(|(k, l)| k - l));
    let samples = pts(&|r| r.kl_samples);
    let expected = pts(&|r| r.expected_fit_kl);
    let asym = pts(&|r| r.fit_kl_asymptote);
    let vline = vec![(d as f64, format!("N = d = {d}"))];
    let plot = LinePlot {
        title: "KL(rho_N / rho) of the linear denoiser".into(),
        x_label: "training images N".into(),
        y_label: "KL".into(),
        series: vec![
            LineSeries { name: "KL (composed maps)".into(), points: &kl, style: LineStyle::LineAndMarkers },
            LineSeries { name: "KL - KL(N = inf)".into(), points: &excess, style: LineStyle::LineAndMarkers },
            LineSeries { name: "KL from samples".into(), points: &samples, style: LineStyle::Markers },
            LineSeries {
                name: "E(KL) of a Gaussian fit".into(),
                points: &expected,
                style: LineStyle::Dashed,
            },
            LineSeries { name: "d(d+3)/4N".into(), points: &asym, style: LineStyle::Dashed },
        ],
        log_x: true,
        log_y: true,
        vlines: vline.clone(),
    };
    save(out, "linear-kl", &plot)?;
    let (train, test) = (pts(&|r| Some(r.train_loss)), pts(&|r| Some(r.test_loss)));
    let plot = LinePlot {
        title: "Denoising loss summed over t".into(),
        x_label: "training images N".into(),
        y_label: "loss".into(),
        series: vec![
            LineSeries { name: "test".into(), points: &test, style: LineStyle::LineAndMarkers },
            LineSeries { name: "train".into(), points: &train, style: LineStyle::LineAndMarkers },
        ],
        log_x: true,
        log_y: true,
        vlines: vline,
    };
    save(out, "linear-loss", &plot)?;
    if !sweeps.is_empty() {
        sweep_plot(out, "linear-weight-decay", "weight decay lambda", sweeps, |s| &s.weight_decay)?;
        sweep_plot(out, "linear-train-time", "training time tau", sweeps, |s| &s.train_time)?;
    }
    Ok(())
}

fn sweep_plot(
    out: &Path,
    name: &str,
    x: &str,
    sweeps: &[Sweep],
    f: impl Fn(&Sweep) -> &Vec<(f64, f64, Option<f64>)>,
) -> Result<()> {
    let curves: Vec<Vec<(f64, f64)>> =
        sweeps.iter().map(|s| f(s).iter().filter_map(|&(x, _, kl)| kl.map(|k| (x, k))).collect()).collect();
    let plot = LinePlot {
        title: format!("KL vs {x} (N < d)"),
        x_label: x.into(),
        y_label: "KL".into(),
        series: sweeps
            .iter()
            .zip(&curves)
            .map(|(s, c)| LineSeries {
                name: format!("N = {}", s.n),
                points: c,
                style: LineStyle::LineAndMarkers,
            })
            .collect(),
        log_x: true,
        log_y: true,
        vlines: vec![],
    };
    save(out, name, &plot)
}

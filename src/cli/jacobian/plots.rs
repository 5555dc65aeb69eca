//! The figures of `memgen jacobian`: the eigenvector grid, the spectrum and the overlaps.

use super::super::save_plot;
use anyhow::Result;
use memgen_analysis::jacobian::{ModelJacobian, Overlap};
use memgen_plot::lineplot::{LinePlot, LineSeries, LineStyle};
use memgen_plot::{save_png, Grid, GridConfig};
use std::path::Path;

/// eigenvectors.png: first row the noisy image y, the clean image x and the denoised f(y) (values
/// clamped to [0, 1]); then the top eigenvectors e_1, e_2, … in rows of up to 8, each min-max scaled
/// to [0, 1]. Channels are stacked vertically (each tile is C·H x W).
pub(super) fn eigen_grid(
    path: &Path,
    mm: &ModelJacobian,
    clean: &[f32],
    top: usize,
    (c, h, w): (usize, usize, usize),
) -> Result<()> {
    let cols = top.clamp(3, 8);
    let blank = vec![1.0f32; c * h * w];
    let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let mut tiles: Vec<Vec<f32>> = vec![to_f32(&mm.jac.noisy), clean.to_vec(), to_f32(&mm.jac.denoised)];
    tiles.resize(cols, blank);
    for k in 0..top {
        let v = mm.analysis.eigenvector(k);
        let (lo, hi) =
            v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        tiles.push(v.iter().map(|&x| ((x - lo) / span) as f32).collect());
    }
    let images: Vec<&[f32]> = tiles.iter().map(|t| t.as_slice()).collect();
    let scale = (96 / h.max(w)).clamp(1, 8);
    let img = Grid { images: &images, height: c * h, width: w }.render(&GridConfig {
        cols,
        scale,
        ..Default::default()
    })?;
    save_png(&img, path)?;
    Ok(())
}

/// spectrum.svg/.png: the eigenvalues of (J + Jᵀ)/2 against their index, with tr J marked.
pub(super) fn spectrum_plot(out: &Path, a: &ModelJacobian, b: Option<&ModelJacobian>) -> Result<()> {
    let pts = |mm: &ModelJacobian| -> Vec<(f64, f64)> {
        mm.analysis.eigenvalues.iter().enumerate().map(|(k, &v)| ((k + 1) as f64, v)).collect()
    };
    let pa = pts(a);
    let pb = b.map(pts);
    let label = |mm: &ModelJacobian, tag: &str| {
        format!("{tag} {}", mm.run.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
    };
    let mut series = vec![LineSeries { name: label(a, "A"), points: &pa, style: LineStyle::Line }];
    let mut vlines = vec![(a.analysis.trace, format!("tr J(A) = {:.1}", a.analysis.trace))];
    if let (Some(b), Some(pb)) = (b, &pb) {
        series.push(LineSeries { name: label(b, "B"), points: pb, style: LineStyle::Line });
        vlines.push((b.analysis.trace, format!("tr J(B) = {:.1}", b.analysis.trace)));
    }
    let plot = LinePlot {
        title: format!("Eigenvalues of the denoiser Jacobian, sigma = {}", a.jac.sigma),
        x_label: "index k".into(),
        y_label: "eigenvalue".into(),
        series,
        log_x: false,
        log_y: false,
        vlines,
    };
    save_plot(out, "spectrum", &plot)
}

/// overlap.svg/.png: the overlap of the top-k eigenspaces against k, with the random level k/d.
pub(super) fn overlap_plot(out: &Path, overlaps: &[Overlap]) -> Result<()> {
    let got: Vec<(f64, f64)> = overlaps.iter().map(|o| (o.k as f64, o.overlap)).collect();
    let random: Vec<(f64, f64)> = overlaps.iter().map(|o| (o.k as f64, o.random)).collect();
    let plot = LinePlot {
        title: "Overlap of the top-k Jacobian eigenspaces of A and B".into(),
        x_label: "k".into(),
        y_label: "overlap".into(),
        series: vec![
            LineSeries { name: "A vs B".into(), points: &got, style: LineStyle::LineAndMarkers },
            LineSeries { name: "random subspaces (k/d)".into(), points: &random, style: LineStyle::Dashed },
        ],
        log_x: true,
        log_y: false,
        vlines: vec![],
    };
    save_plot(out, "overlap", &plot)
}

//! The report of an experiment, `ROOT/report/`: results.json and results.csv (one row per N;
//! results-NAME.csv for each sampler variant), the transition figures (SVG + PNG), the linear
//! baseline's figures, one image panel per N (and per variant), and index.html, a single
//! self-contained page (every image inlined) with all of it and the experiment file.

use crate::plan::{compare_dir, for_variant, linear_dir, Plan};
use crate::results::{Results, Row, RowTables, VariantResults};
use crate::{Error, Result};
use memgen_io::write_json;
use memgen_plot::html::{Block, Page};
use memgen_plot::lineplot::{LinePlot, LineSeries, LineStyle};
use std::path::{Path, PathBuf};

/// Size of the PNG versions of the plots.
const PNG_SIZE: (u32, u32) = (900, 560);

/// Files written by [`write`].
#[derive(Debug, Clone)]
pub struct Written {
    pub dir: PathBuf,
    pub index: PathBuf,
    pub files: Vec<PathBuf>,
}

/// Write the report of `results` into `ROOT/report`.
pub fn write(plan: &Plan, results: &Results, experiment_text: &str) -> Result<Written> {
    let dir = plan.root.join("report");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut files = Vec::new();
    let json = dir.join("results.json");
    write_json(&json, results)?;
    let csv = dir.join("results.csv");
    memgen_io::write_atomic(&csv, results.csv().as_bytes())?;
    files.extend([json, csv]);
    let mut blocks = vec![Block::Heading("Results".into())];
    blocks.extend(results.verdicts().map(Block::Paragraph));
    blocks.push(headline_block(results));
    blocks.extend(results.linear_pair_notes().into_iter().map(Block::Paragraph));
    for v in &results.variants {
        let csv = dir.join(format!("results-{}.csv", v.name));
        memgen_io::write_atomic(&csv, v.csv().as_bytes())?;
        files.push(csv);
        blocks.extend(variant_blocks(results, v));
    }
    let (transition, fractions) = (transition_series(results), fraction_series(results));
    let figures = [
        ("transition", plot_of(results, TRANSITION_TITLE, "median correlation", &transition), "Median correlations against N. Memorization: samples correlate ~1 with their own training set and not with each other; generalization: the two models, trained on disjoint sets, produce the same image from the same noise (corr(x_A, x_B) → 1) that is in neither training set."),
        ("fractions", plot_of(results, FRACTION_TITLE, "fraction", &fractions), "Fractions of samples memorized (best correlation with the own training set above the threshold, or L2 NN1/NN2 ratio below it) and of noise draws on which the two models agree."),
    ];
    let errors = error_series(results);
    let mut error_plot = plot_of(results, ERROR_TITLE, "MSE per pixel", &errors);
    error_plot.log_y = true;
    let figures = figures.into_iter().chain(
        (!error_plot.series.is_empty()).then_some((
            "denoise-error",
            error_plot,
            "Denoising error against N at the σ nearest 0.1 (mean of networks A and B): each network on its own training images and on held-out images (outside the largest pair's sets), with the Gaussian (linear) and the empirical optimal denoiser of the same training sets. Memorization: training error far below test error; generalization: the two meet, below the Gaussian denoiser's test error.",
        )),
    );
    for (name, plot, caption) in figures {
        let svg = plot.save(&dir, name, PNG_SIZE.0, PNG_SIZE.1)?;
        files.extend(["svg", "png"].map(|ext| dir.join(format!("{name}.{ext}"))));
        blocks.push(Block::Svg { caption: caption.into(), svg });
    }
    blocks.extend(linear_blocks(plan, &dir, &mut files)?);
    blocks.push(Block::Heading("Samples from the same noise".into()));
    blocks.push(Block::Paragraph(
        "Each row is one noise draw: the sample of model A, its nearest image in S_A, the sample of model B (with corr(x_A, x_B)), its nearest image in S_B.".into(),
    ));
    let seed = results.experiment.sample.noise_seeds[0];
    let variants = results.variants.iter().map(|v| Some(v.name.as_str()));
    for variant in std::iter::once(None).chain(variants) {
        for row in &results.rows {
            let src = for_variant(compare_dir(&plan.root, row.n, seed), variant).join("compare.png");
            let Ok(bytes) = std::fs::read(&src) else { continue };
            let suffix = variant.map_or(String::new(), |name| format!("-{name}"));
            let dst = dir.join(format!("samples-n{}{suffix}.png", row.n));
            memgen_io::write_atomic(&dst, &bytes)?;
            files.push(dst);
            let sampler = variant.map_or(String::new(), |name| format!(", sampler {name}"));
            blocks.push(Block::Png { caption: format!("N = {} (noise seed {seed}{sampler})", row.n), bytes });
        }
    }
    blocks.push(Block::Heading("Experiment".into()));
    blocks.push(Block::Pre(experiment_text.to_string()));
    blocks.push(job_table(plan));
    let page = Page { title: format!("memgen: {}", results.name), subtitle: Some(subtitle(results)), blocks };
    let index = dir.join("index.html");
    page.save(&index)?;
    files.push(index.clone());
    Ok(Written { dir, index, files })
}

fn subtitle(r: &Results) -> String {
    let mut s = r.description.clone();
    if let Some(d) = r.d {
        s.push_str(&format!(" (d = {d} pixels; N = {:?})", r.experiment.sizes()));
    }
    s
}

fn save_svg(dir: &Path, name: &str, svg: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.svg"));
    memgen_plot::save_svg(svg, &path)?;
    Ok(path)
}

/// The table, verdicts and linear-pair notes of sampler variant `v`.
fn variant_blocks(r: &Results, v: &VariantResults) -> Vec<Block> {
    let mut blocks = vec![
        Block::Heading(format!("Sampler {}", v.name)),
        Block::Paragraph(format!(
            "The same pairs of networks and noise, sampled with `{}` (the linear pair too); training, the \
             linear baseline and the denoising errors are those above. No oracle under this sampler.",
            v.args.join(" ")
        )),
    ];
    blocks.extend(v.verdicts().map(Block::Paragraph));
    blocks.push(table_block(r, v));
    blocks.extend(v.linear_pair_notes().into_iter().map(Block::Paragraph));
    blocks
}

fn headline_block(r: &Results) -> Block {
    table_block(r, r)
}

/// The headline table of `rows` (the main rows or a variant's) with its caption.
fn table_block(r: &Results, rows: &dyn RowTables) -> Block {
    let (header, rows) = rows.table();
    Block::Table {
        caption: Some(format!(
            "Medians over {} noise draws per N; memorized / agree: fraction above corr {}. Linear pair: the Gaussian denoisers of S_A(N) and S_B(N) (their sets' mean and covariance), sampled with the same sampler and noise. In range: fraction of the networks' samples with every pixel in [-0.25, 1.25]. Held-out vs S_A: fresh images' best correlation to S_A (the novelty reference). Test/train MSE and test MSE / linear's: each network's denoising error at the σ nearest 0.1 on held-out images over its error on its training images, and over the test error of the Gaussian denoiser of its training set. Verdicts: README, \"Verdicts\".",
            r.rows.iter().find_map(|x| x.models.as_ref().map(|m| m.draws)).unwrap_or(0),
            r.corr_threshold.map_or("-".into(), |t| t.to_string())
        )),
        header,
        rows,
    }
}

/// (N, value) points of the rows that have the value.
fn points(r: &Results, f: impl Fn(&crate::results::Row) -> Option<f64>) -> Vec<(f64, f64)> {
    r.rows.iter().filter_map(|row| Some((row.n as f64, f(row)?))).collect()
}

/// A named series of (N, value) points and how it is drawn.
pub type NamedSeries = (String, Vec<(f64, f64)>, LineStyle);

const TRANSITION_TITLE: &str = "Memorization to generalization";
const FRACTION_TITLE: &str = "Memorized samples and agreeing models";

/// Figure 1: correlation with the nearest training image and between the two models' samples, vs N
/// (and the two models' agreement under each sampler variant).
pub fn transition_series(r: &Results) -> Vec<NamedSeries> {
    let mut series = vec![
        (
            "A: corr to nearest image of own set".into(),
            points(r, |x| x.models.as_ref()?.a_own.median),
            LineStyle::LineAndMarkers,
        ),
        (
            "B: corr to nearest image of own set".into(),
            points(r, |x| x.models.as_ref()?.b_own.median),
            LineStyle::LineAndMarkers,
        ),
        (
            "corr(x_A, x_B): the two models".into(),
            points(r, |x| x.models.as_ref()?.corr_ab.median),
            LineStyle::LineAndMarkers,
        ),
        (
            "A: corr to nearest image of S_B".into(),
            points(r, |x| x.models.as_ref()?.a_other.median),
            LineStyle::Dashed,
        ),
        ("oracle corr(x_A, x_B)".into(), points(r, |x| x.oracle.as_ref()?.corr_ab.median), LineStyle::Dashed),
        (
            "linear pair corr(x_A, x_B)".into(),
            points(r, |x| x.linear_pair.as_ref()?.corr_ab.median),
            LineStyle::Dashed,
        ),
        (
            "S_A vs nearest in S_B (no model)".into(),
            points(r, |x| x.models.as_ref()?.sets.median),
            LineStyle::Markers,
        ),
    ];
    for v in &r.variants {
        let corr_ab = |x: &Row| x.models.as_ref()?.corr_ab.median;
        let at = v.rows.iter().filter_map(|x| Some((x.n as f64, corr_ab(x)?))).collect();
        series.push((format!("corr(x_A, x_B), sampler {}", v.name), at, LineStyle::LineAndMarkers));
    }
    series
}

const ERROR_TITLE: &str = "Denoising error on training and held-out images";

/// Figure 3: train and test MSE at the reference σ vs N, for the networks, the linear and the oracle
/// denoiser (each the mean over sides A and B).
pub fn error_series(r: &Results) -> Vec<NamedSeries> {
    use memgen_analysis::generalization::{DenoiseError, TrainTest};
    type Pick = fn(&DenoiseError) -> &TrainTest;
    let mean = |row: &crate::results::Row, pick: Pick, test: bool| -> Option<f64> {
        let one = |e: &DenoiseError| {
            let i = memgen_analysis::generalization::reference_sigma(&e.sigmas)?;
            let tt = pick(e);
            Some(if test { tt.test.get(i)?.mse } else { tt.train.get(i)?.mse })
        };
        Some((one(row.denoise_a.as_ref()?)? + one(row.denoise_b.as_ref()?)?) / 2.0)
    };
    let series =
        |name: &str, pick: Pick, test, style| (name.into(), points(r, |x| mean(x, pick, test)), style);
    let (net, lin, orc): (Pick, Pick, Pick) = (|e| &e.network, |e| &e.linear, |e| &e.oracle);
    vec![
        series("network: held-out images", net, true, LineStyle::LineAndMarkers),
        series("network: training images", net, false, LineStyle::LineAndMarkers),
        series("linear: held-out images", lin, true, LineStyle::Dashed),
        series("linear: training images", lin, false, LineStyle::Dashed),
        series("oracle: held-out images", orc, true, LineStyle::Markers),
    ]
}

/// Figure 2: memorized and agreeing fractions vs N.
pub fn fraction_series(r: &Results) -> Vec<NamedSeries> {
    vec![
        (
            "memorized (corr to own set > threshold)".into(),
            points(r, |x| x.models.as_ref().map(|m| m.memorized_by_corr)),
            LineStyle::LineAndMarkers,
        ),
        (
            "memorized (L2 ratio < threshold)".into(),
            points(r, |x| x.models.as_ref().map(|m| m.memorized_by_ratio)),
            LineStyle::Dashed,
        ),
        (
            "agree (corr(x_A, x_B) > threshold)".into(),
            points(r, |x| x.models.as_ref().map(|m| m.agree)),
            LineStyle::LineAndMarkers,
        ),
    ]
}

/// A log-x plot of `series` against N, with N = d marked.
pub fn plot_of<'a>(r: &Results, title: &str, y: &str, series: &'a [NamedSeries]) -> LinePlot<'a> {
    let series = series
        .iter()
        .filter(|(_, p, _)| !p.is_empty())
        .map(|(name, p, style)| LineSeries { name: name.clone(), points: p, style: *style })
        .collect();
    LinePlot {
        title: title.into(),
        x_label: "training-set size N".into(),
        y_label: y.into(),
        series,
        log_x: true,
        log_y: false,
        vlines: r.d.map(|d| vec![(d as f64, "N = d".to_string())]).unwrap_or_default(),
    }
}

/// The linear baseline's KL and loss figures (written by `memgen linear`), copied into the report.
fn linear_blocks(plan: &Plan, dir: &Path, files: &mut Vec<PathBuf>) -> Result<Vec<Block>> {
    let src = linear_dir(&plan.root);
    let mut blocks = Vec::new();
    let figures = [
        ("linear-kl", "Linear denoiser: KL(ρ_N ‖ ρ) of its sampled distribution, exact (closed form) and measured from samples, with the Wishart law d(d+3)/4N; N = d marked."),
        ("linear-loss", "Linear denoiser: training and test loss (closed form) against N."),
    ];
    for (name, caption) in figures {
        let Ok(svg) = std::fs::read_to_string(src.join(format!("{name}.svg"))) else { continue };
        if blocks.is_empty() {
            blocks.push(Block::Heading("Linear baseline".into()));
        }
        files.push(save_svg(dir, name, &svg)?);
        blocks.push(Block::Svg { caption: caption.into(), svg });
    }
    Ok(blocks)
}

fn job_table(plan: &Plan) -> Block {
    let rows = plan
        .jobs
        .iter()
        .map(|j| {
            let stamp: Option<crate::exec::Stamp> =
                memgen_io::read_json(&crate::exec::stamp_path(&plan.root, &j.id)).ok();
            vec![
                j.id.clone(),
                stamp.as_ref().map_or("not finished".into(), |s| format!("{:.1}", s.seconds)),
                stamp.as_ref().map_or("-".into(), |s| s.threads.to_string()),
                format!("memgen {}", j.args().join(" ")),
            ]
        })
        .collect();
    Block::Table {
        caption: Some("Jobs (wall seconds of the last execution).".into()),
        header: ["job", "seconds", "threads", "command"].iter().map(|s| s.to_string()).collect(),
        rows,
    }
}

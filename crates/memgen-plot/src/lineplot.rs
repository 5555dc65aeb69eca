//! Line and scatter plots of (x, y) series, e.g. the KL divergence or the test loss against the
//! training-set size N (log-log) or against the weight decay λ (log x), with labelled vertical reference
//! lines (N = d), as hand-written SVG or as an RGB image labelled with the built-in bitmap font, in the
//! look of [`crate::histogram`] plots: the same layout, palette ([`series_color`]) and text.
//!
//! The axes fit the drawable points (and, on x, the reference lines) with a 5% margin on each side (in
//! decades on a log axis); with nothing to fit an axis shows [0, 1] (linear) or [1, 10] (log). A log axis
//! has ticks at the powers of ten (every 2nd, 5th, 10th, ... one when there are many) with minor ticks at
//! 2..9 times them; on a range of under two decades at 1, 2 and 5 times them, and on one too short even
//! for that at round values. A linear axis has round ticks (1, 2 or 5 times a power of ten apart).
//!
//! A point is drawn only if both its coordinates are finite and, on a log axis, positive; the others are
//! left out and counted ([`LinePlot::skipped_points`], and in the legend), and a line breaks there.

use crate::font::{self, ADVANCE, GLYPH_HEIGHT, LINE_HEIGHT};
use crate::histogram::series_color;
use crate::plot::{self, format_tick, hex, nice_step, rect, ticks, xml_escape, SVG_LEFT, SVG_RIGHT};
use crate::Result;
use image::{Rgb, RgbImage};
use std::fmt::Write as _;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineStyle {
    /// A solid line through the points, in their order (a lone point, between skipped ones or the ends,
    /// is drawn as a marker so that it shows).
    #[default]
    Line,
    /// A marker (dot) at each point and no line: a scatter plot.
    Markers,
    /// A solid line and a marker at each point.
    LineAndMarkers,
    /// A dashed line, otherwise as [`LineStyle::Line`].
    Dashed,
}

impl LineStyle {
    /// Whether the points are joined by a line.
    fn has_line(self) -> bool {
        self != LineStyle::Markers
    }

    /// Whether every point gets a marker.
    fn has_markers(self) -> bool {
        matches!(self, LineStyle::Markers | LineStyle::LineAndMarkers)
    }
}

/// One series of a [`LinePlot`]: a name for the legend, its points (x, y) and how they are drawn.
#[derive(Debug, Clone)]
pub struct LineSeries<'a> {
    pub name: String,
    pub points: &'a [(f64, f64)],
    pub style: LineStyle,
}

/// Several (x, y) series on common axes, linear or logarithmic each, one colour per series
/// ([`series_color`]), with vertical reference lines at given x values (`vlines`: the x value and a
/// label, e.g. `(3072.0, "N = d".into())`; one that is not drawable on the x axis is left out).
#[derive(Debug, Clone)]
pub struct LinePlot<'a> {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<LineSeries<'a>>,
    pub log_x: bool,
    pub log_y: bool,
    pub vlines: Vec<(f64, String)>,
}

/// Share of the data range added as margin on each side of an axis.
const MARGIN: f64 = 0.05;
/// Number of ticks the SVG axes aim at (the most labelled decades on a log axis).
const SVG_X_TICKS: usize = 8;
const SVG_Y_TICKS: usize = 6;
/// Radius of an SVG marker in px.
const SVG_MARKER_R: f64 = 3.0;
/// Dash pattern (on, off) of dashed series, in px (times the text scale in PNG).
const DASH: (f64, f64) = (6.0, 4.0);
/// Dash pattern of the vertical reference lines.
const VLINE_DASH: (f64, f64) = (4.0, 3.0);
/// Colour of the vertical reference lines and their labels (not one of the palette's).
const VLINE_COLOR: [u8; 3] = [0x44; 3];

/// The axis coordinate of the value `v` (log10 v on a log axis), `None` if `v` is not drawable there:
/// not finite, or on a log axis not positive.
fn coord(log: bool, v: f64) -> Option<f64> {
    match (v.is_finite(), log) {
        (true, false) => Some(v),
        (true, true) if v > 0.0 => Some(v.log10()),
        _ => None,
    }
}

/// One axis: the range [lo, hi] it shows, in axis coordinates (log10 of the values on a log axis).
/// `lo` and `hi` are finite with hi/2 − lo/2 > 0, so [`Axis::frac`] of a finite coordinate is finite.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    /// The range of the (finite) coordinates `cs` with a [`MARGIN`] on each side. A range of a single
    /// value (or too narrow to show, under 1e-9 of its values or 1e-6 decades) is widened around it: by
    /// half a decade on a log axis, 10% of the value (1 at 0) on a linear one. No coordinates: [0, 1].
    fn fit(log: bool, cs: impl Iterator<Item = f64>) -> Axis {
        let (mut lo, mut hi) = cs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), c| (a.min(c), b.max(c)));
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        let narrow =
            if log { hi - lo <= 1e-6 } else { hi - lo <= 1e-9 * lo.abs().max(hi.abs()) || hi - lo <= 1e-300 };
        if narrow {
            let c = lo * 0.5 + hi * 0.5;
            let d = match (log, c == 0.0) {
                (true, _) => 0.5,
                (false, true) => 1.0,
                (false, false) => (c.abs() * 0.1).max(1e-300),
            };
            (lo, hi) = (c - d, c + d);
        }
        let m = (hi * 0.5 - lo * 0.5) * 2.0 * MARGIN;
        Axis { lo: (lo - m).max(-f64::MAX), hi: (hi + m).min(f64::MAX), log }
    }

    /// Where the coordinate `c` lies along the axis: 0 at `lo`, 1 at `hi` (computed in halves so that
    /// ranges wider than `f64::MAX` do not overflow).
    fn frac(&self, c: f64) -> f64 {
        (c * 0.5 - self.lo * 0.5) / (self.hi * 0.5 - self.lo * 0.5)
    }

    /// Ticks of the axis, about `target` of them (at most `target` labelled decades on a log axis).
    fn ticks(&self, target: usize) -> Ticks {
        if self.log {
            log_ticks(self.lo, self.hi, target)
        } else {
            linear_ticks(self.lo, self.hi, target)
        }
    }
}

/// Ticks of an axis, in axis coordinates: labelled major ticks and unlabelled minor ones.
#[derive(Debug, Clone, PartialEq, Default)]
struct Ticks {
    major: Vec<(f64, String)>,
    minor: Vec<f64>,
}

/// Round ticks on the linear range [lo, hi] (finite, lo < hi), about `target` of them.
fn linear_ticks(lo: f64, hi: f64, target: usize) -> Ticks {
    let step = if (hi - lo).is_finite() {
        nice_step(hi - lo, target)
    } else {
        nice_step(hi * 0.5 - lo * 0.5, target / 2)
    };
    let major = ticks(lo, hi, step).into_iter().map(|v| (v, format_tick(v, step))).collect();
    Ticks { major, minor: Vec::new() }
}

/// Ticks on the log range [lo, hi] (in decades, finite, lo < hi): at the powers of ten in it, every
/// k-th one labelled (k = 1, 2, 5, 10, 20, ..., the least leaving at most `max_major` labels, at least
/// 2) and the others, or (with k = 1) 2..9 times them, minor ticks. With fewer than two powers of ten
/// in range at 1, 2 and 5 times them (3, 4, 6, .. 9 times them minor), and with fewer than two of those
/// at round values. Labels are plain numbers (0.001 .. 900000) or all in `1e-4` style.
fn log_ticks(lo: f64, hi: f64, max_major: usize) -> Ticks {
    let inside = |c: f64| c >= lo - 1e-9 && c <= hi + 1e-9;
    let at = |m: u32, e: i32| f64::from(e) + f64::from(m).log10();
    // Decades of the range: lo and hi are within about ±340 (logs of finite positive values, plus margin).
    let (f0, f1) = (lo.floor() as i32, hi.floor() as i32);
    let powers: Vec<i32> = (f0..=f1 + 1).filter(|&e| inside(f64::from(e))).collect();
    let (major, minor): (Vec<(u32, i32)>, Vec<f64>) = if powers.len() >= 2 {
        let n = powers.len() as f64;
        let max_major = max_major.max(2) as f64;
        let k = (0..)
            .flat_map(|j| [1, 2, 5].map(|m| m * 10i32.pow(j)))
            .find(|&k| n / f64::from(k) <= max_major)
            .unwrap_or(1);
        let (labelled, rest): (Vec<i32>, Vec<i32>) = powers.iter().partition(|&&e| e.rem_euclid(k) == 0);
        let minor = if k == 1 {
            (f0..=f1).flat_map(|e| (2..=9).map(move |m| at(m, e))).filter(|&c| inside(c)).collect()
        } else {
            rest.into_iter().map(f64::from).collect()
        };
        (labelled.into_iter().map(|e| (1, e)).collect(), minor)
    } else {
        let all = |ms: &'static [u32]| {
            (f0..=f1).flat_map(move |e| ms.iter().map(move |&m| (m, e))).filter(|&(m, e)| inside(at(m, e)))
        };
        let major: Vec<(u32, i32)> = all(&[1, 2, 5]).collect();
        if major.len() < 2 {
            return log_round_ticks(lo, hi);
        }
        (major, all(&[3, 4, 6, 7, 8, 9]).map(|(m, e)| at(m, e)).collect())
    };
    let plain = major.iter().all(|&(_, e)| (-3..=5).contains(&e));
    let major = major.into_iter().map(|(m, e)| (at(m, e), log_label(m, e, plain))).collect();
    Ticks { major, minor }
}

/// Ticks at round values (as on a linear axis) of a log range [lo, hi] too short for [`log_ticks`]'s.
fn log_round_ticks(lo: f64, hi: f64) -> Ticks {
    let (vlo, vhi) = (10f64.powf(lo), 10f64.powf(hi).min(f64::MAX));
    if vhi <= vlo {
        return Ticks::default();
    }
    let step = nice_step(vhi - vlo, 4);
    let major =
        ticks(vlo, vhi, step).into_iter().filter(|&v| v > 0.0).map(|v| (v.log10(), format_tick(v, step)));
    Ticks { major: major.collect(), minor: Vec::new() }
}

/// Label of the tick at m·10^e: a plain number (`plain`, for −3 ≤ e ≤ 5: "0.002", "10", "500") or
/// `{m}e{e}` ("1e-4", "2e6").
fn log_label(m: u32, e: i32, plain: bool) -> String {
    match e {
        _ if !plain => format!("{m}e{e}"),
        0.. => format!("{}", u64::from(m) * 10u64.pow(e.unsigned_abs())),
        _ => format!("{:.*}", e.unsigned_abs() as usize, f64::from(m) * 10f64.powi(e)),
    }
}

/// What both renderings need: the drawable points and reference lines and the axes that fit them.
struct Prepared<'p> {
    /// Per series, its runs of consecutive drawable points, in axis coordinates (a skipped point ends a
    /// run; runs are not empty).
    runs: Vec<Vec<Vec<(f64, f64)>>>,
    /// Per series, how many of its points are not drawable.
    skipped: Vec<usize>,
    /// The drawable reference lines: x in axis coordinates, and their labels.
    vlines: Vec<(f64, &'p str)>,
    x: Axis,
    y: Axis,
}

/// Where the plot area lies in output coordinates (y grows downwards) and what it shows.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x: Axis,
    y: Axis,
}

impl Frame {
    /// x of the x axis coordinate `c`.
    fn px(&self, c: f64) -> f64 {
        self.left + (self.right - self.left) * self.x.frac(c)
    }

    /// y of the y axis coordinate `c`.
    fn py(&self, c: f64) -> f64 {
        self.bottom - (self.bottom - self.top) * self.y.frac(c)
    }

    /// Output coordinates of a point given in axis coordinates.
    fn at(&self, (cx, cy): (f64, f64)) -> (f64, f64) {
        (self.px(cx), self.py(cy))
    }

    /// Output coordinates of the data point (x, y), if it is drawable and they are finite.
    fn project(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (px, py) = self.at((coord(self.x.log, x)?, coord(self.y.log, y)?));
        (px.is_finite() && py.is_finite()).then_some((px, py))
    }

    /// (left, right, top, bottom).
    fn bounds(&self) -> (f64, f64, f64, f64) {
        (self.left, self.right, self.top, self.bottom)
    }
}

impl LinePlot<'_> {
    /// The drawable points of each series in runs, what was skipped, and the axes.
    fn prepare(&self) -> Prepared<'_> {
        let (log_x, log_y) = (self.log_x, self.log_y);
        let (mut runs, mut skipped) = (Vec::new(), Vec::new());
        for s in &self.series {
            let (mut series_runs, mut run, mut k) = (Vec::new(), Vec::new(), 0);
            for &(x, y) in s.points {
                if let (Some(cx), Some(cy)) = (coord(log_x, x), coord(log_y, y)) {
                    run.push((cx, cy));
                } else {
                    k += 1;
                    if !run.is_empty() {
                        series_runs.push(std::mem::take(&mut run));
                    }
                }
            }
            if !run.is_empty() {
                series_runs.push(run);
            }
            runs.push(series_runs);
            skipped.push(k);
        }
        let vlines: Vec<(f64, &str)> =
            self.vlines.iter().filter_map(|(v, label)| Some((coord(log_x, *v)?, label.as_str()))).collect();
        let points = || runs.iter().flatten().flatten();
        let x = Axis::fit(log_x, points().map(|p| p.0).chain(vlines.iter().map(|v| v.0)));
        let y = Axis::fit(log_y, points().map(|p| p.1));
        Prepared { runs, skipped, vlines, x, y }
    }

    /// How many points of each series are not drawn (a coordinate not finite, or not positive on a log
    /// axis), in series order.
    pub fn skipped_points(&self) -> Vec<usize> {
        self.prepare().skipped
    }

    /// Legend text of series `i`: its name, and how many of its points are not drawn if any are.
    fn legend_text(&self, p: &Prepared, i: usize) -> String {
        let s = &self.series[i];
        match p.skipped[i] {
            0 => s.name.clone(),
            k => format!("{} ({k} of {} points not shown)", s.name, s.points.len()),
        }
    }

    /// The SVG plot area.
    fn svg_frame(&self, p: &Prepared) -> Frame {
        let top = plot::svg_plot_top(self.series.len());
        let bottom = top + plot::SVG_PLOT_HEIGHT;
        Frame { left: SVG_LEFT, right: SVG_RIGHT, top, bottom, x: p.x, y: p.y }
    }

    /// Where the data point (x, y) lies in [`Self::to_svg`]'s document (px from its top-left corner, y
    /// downwards): `None` if it is not drawn (a coordinate not finite, or not positive on a log axis),
    /// or lies so far outside the axes that the position overflows.
    pub fn project(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        self.svg_frame(&self.prepare()).project(x, y)
    }

    /// As [`Self::project`], in the image of `to_png(width, height)`: the point is drawn around pixel
    /// (x.round(), y.round()). Errors as [`Self::to_png`].
    pub fn project_png(&self, width: u32, height: u32, x: f64, y: f64) -> Result<Option<(f64, f64)>> {
        let p = self.prepare();
        let (f, ..) = self.png_frame(width, height, plot::text_scale(width, height), &p)?;
        Ok(f.project(x, y))
    }

    /// The plot as a standalone SVG 1.1 document, 720 px wide: title, legend (one line per series, with
    /// the number of points not shown if any), axes with grid lines, ticks and tick labels, the reference
    /// lines dashed in grey with their labels, one `<path>` per series drawn with a line that has a
    /// drawable point (its name as a `<title>`), `<circle>` markers, and the axis labels. Text is
    /// XML-escaped; all coordinates are finite. Does not fail at present.
    pub fn to_svg(&self) -> Result<String> {
        let p = self.prepare();
        let f = self.svg_frame(&p);
        let (xt, yt) = (f.x.ticks(SVG_X_TICKS), f.y.ticks(SVG_Y_TICKS));
        let mut s = String::new();
        plot::svg_begin(&mut s, f.bottom + 60.0);
        svg_axes(&mut s, &f, &xt, &yt);
        svg_vlines(&mut s, &f, &p.vlines);
        self.svg_series(&mut s, &f, &p);
        plot::svg_title(&mut s, &self.title);
        let swatch = |i, x, y| self.svg_swatch(i, x, y);
        plot::svg_legend(&mut s, f.left, self.series.len(), swatch, |i| self.legend_text(&p, i));
        plot::svg_axis_labels(&mut s, f.bounds(), &self.x_label, &self.y_label);
        s.push_str("</svg>");
        Ok(s)
    }

    /// Per series a `<path>` (series with a line and a drawable point) and a `<g>` of `<circle>`
    /// markers (series with markers, and lone points of the others), in series order.
    fn svg_series(&self, s: &mut String, f: &Frame, p: &Prepared) {
        for (i, runs) in p.runs.iter().enumerate() {
            if runs.is_empty() {
                continue;
            }
            let style = self.series[i].style;
            let (c, name) = (hex(series_color(i)), xml_escape(&self.series[i].name));
            if style.has_line() {
                let mut d = String::new();
                for run in runs {
                    for (k, &pt) in run.iter().enumerate() {
                        let (x, y) = f.at(pt);
                        let sep = if d.is_empty() { "" } else { " " };
                        let _ = write!(d, "{sep}{}{x:.2} {y:.2}", if k == 0 { "M" } else { "L" });
                    }
                }
                let dash = if style == LineStyle::Dashed {
                    format!(r#" stroke-dasharray="{} {}""#, DASH.0, DASH.1)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    s,
                    r#"<path d="{d}" fill="none" stroke="{c}" stroke-width="1.5" stroke-linejoin="round"{dash}><title>{name}</title></path>"#
                );
            }
            let markers: Vec<(f64, f64)> = marker_points(style, runs).map(|pt| f.at(pt)).collect();
            if !markers.is_empty() {
                let _ = write!(s, r#"<g fill="{c}"><title>{name}</title>"#);
                for (x, y) in markers {
                    let _ = write!(s, r#"<circle cx="{x:.2}" cy="{y:.2}" r="{SVG_MARKER_R}"/>"#);
                }
                s.push_str("</g>\n");
            }
        }
    }

    /// The SVG legend swatch of series `i` at (x, y): a short line (dashed for a dashed series) and/or
    /// a marker, in the series' colour.
    fn svg_swatch(&self, i: usize, x: f64, y: f64) -> String {
        let style = self.series[i].style;
        let c = hex(series_color(i));
        let mut w = String::new();
        if style.has_line() {
            let dash = if style == LineStyle::Dashed { r#" stroke-dasharray="4 2""# } else { "" };
            let _ = write!(
                w,
                r#"<line x1="{x}" y1="{}" x2="{}" y2="{}" stroke="{c}" stroke-width="1.5"{dash}/>"#,
                y + 5.0,
                x + 14.0,
                y + 5.0
            );
        }
        if style.has_markers() {
            let _ = write!(w, r#"<circle cx="{}" cy="{}" r="{SVG_MARKER_R}" fill="{c}"/>"#, x + 7.0, y + 5.0);
        }
        w
    }

    /// Write the plot as `DIR/NAME.svg` and as a `width` x `height` `DIR/NAME.png` (both atomically);
    /// returns the SVG text.
    pub fn save(&self, dir: &std::path::Path, name: &str, width: u32, height: u32) -> Result<String> {
        let svg = self.to_svg()?;
        crate::save_svg(&svg, &dir.join(format!("{name}.svg")))?;
        crate::save_rgb_png(&self.to_png(width, height)?, &dir.join(format!("{name}.png")))?;
        Ok(svg)
    }

    /// The plot drawn into a `width` x `height` RGB image: the same elements as [`Self::to_svg`], text in
    /// the bitmap font (scaled up for images of 1280 x 960 and more), lines and markers in the series'
    /// exact colours (no anti-aliasing). Errors if the image is too small to leave a plot area of at
    /// least 16 x 16 pixels.
    pub fn to_png(&self, width: u32, height: u32) -> Result<RgbImage> {
        let p = self.prepare();
        let ts = plot::text_scale(width, height);
        let (f, xt, yt) = self.png_frame(width, height, ts, &p)?;
        let mut img = RgbImage::from_pixel(width, height, Rgb([255; 3]));
        let (l, r, t, b) = (f.left as i64, f.right as i64, f.top as i64, f.bottom as i64);
        let grid = Rgb([plot::PNG_GRID; 3]);
        for (c, _) in &xt.major {
            let x = f.px(*c).round() as i64;
            rect(&mut img, (x, t), (x + 1, b), |px| *px = grid);
        }
        for (c, _) in &yt.major {
            let y = f.py(*c).round() as i64;
            rect(&mut img, (l, y), (r, y + 1), |px| *px = grid);
        }
        let scaled = |(on, off): (f64, f64)| (on * f64::from(ts), off * f64::from(ts));
        for &(c, _) in &p.vlines {
            let x = f.px(c);
            png_polyline(&mut img, &[(x, f.top), (x, f.bottom)], VLINE_COLOR, ts, Some(scaled(VLINE_DASH)));
        }
        png_axes(&mut img, &f, &xt, &yt, ts);
        for (i, runs) in p.runs.iter().enumerate() {
            let (style, color) = (self.series[i].style, series_color(i));
            if style.has_line() {
                let dash = (style == LineStyle::Dashed).then(|| scaled(DASH));
                for run in runs {
                    let pts: Vec<(f64, f64)> = run.iter().map(|&pt| f.at(pt)).collect();
                    png_polyline(&mut img, &pts, color, ts, dash);
                }
            }
            for pt in marker_points(style, runs) {
                png_marker(&mut img, f.at(pt), color, ts);
            }
        }
        png_vline_labels(&mut img, &f, &p.vlines, ts);
        self.png_text(&mut img, &f, &p, ts);
        Ok(img)
    }

    /// Plot area of a `width` x `height` image at text scale `ts` (see [`plot::png_area`]), and the ticks
    /// of its x and y axes (as many as fit).
    fn png_frame(&self, width: u32, height: u32, ts: u32, p: &Prepared) -> Result<(Frame, Ticks, Ticks)> {
        let rows = self.series.len();
        let (top, bottom) = plot::png_top_bottom(height, ts, rows);
        let yt = p.y.ticks((bottom.saturating_sub(top) / (5 * LINE_HEIGHT * ts)).clamp(2, 6) as usize);
        let y_label_w = yt.major.iter().map(|(_, label)| font::text_width(label, ts)).max().unwrap_or(0);
        let (left, right, top, bottom) = plot::png_area(width, height, ts, rows, y_label_w)?;
        let xt = p.x.ticks((((right - left) / f64::from(10 * ADVANCE * ts)) as usize).max(2));
        Ok((Frame { left, right, top, bottom, x: p.x, y: p.y }, xt, yt))
    }

    /// Title, legend (a line and/or marker swatch and the legend text per series) and axis labels.
    fn png_text(&self, img: &mut RgbImage, f: &Frame, p: &Prepared, ts: u32) {
        plot::png_title(img, &self.title, ts);
        let w = i64::from(3 * ADVANCE * ts);
        let swatch = |img: &mut RgbImage, i: usize, (x, y): (i64, i64)| {
            let (style, color) = (self.series[i].style, series_color(i));
            let (x, y, w) = (x as f64, (y + i64::from(GLYPH_HEIGHT * ts / 2)) as f64, w as f64);
            if style.has_line() {
                let dash =
                    (style == LineStyle::Dashed).then(|| (DASH.0 * f64::from(ts), DASH.1 * f64::from(ts)));
                png_polyline(img, &[(x, y), (x + w - 1.0, y)], color, ts, dash);
            }
            if style.has_markers() {
                png_marker(img, (x + (w / 2.0).floor(), y), color, ts);
            }
        };
        plot::png_legend(img, f.left as i64, self.series.len(), ts, w, swatch, |i| self.legend_text(p, i));
        plot::png_axis_labels(img, f.bounds(), &self.x_label, &self.y_label, ts);
    }
}

/// The points of `runs` (axis coordinates) that get a marker in `style`: all of them in a style with
/// markers, else those of runs of a single point (which a line would not show).
fn marker_points(style: LineStyle, runs: &[Vec<(f64, f64)>]) -> impl Iterator<Item = (f64, f64)> + '_ {
    let all = style.has_markers();
    runs.iter().filter(move |run| all || run.len() == 1).flatten().copied()
}

/// SVG grid lines at the major ticks, ticks (minor ones shorter, unlabelled), tick labels and axis lines.
fn svg_axes(s: &mut String, f: &Frame, xt: &Ticks, yt: &Ticks) {
    for (c, _) in &xt.major {
        let x = f.px(*c);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.2}" y1="{:.2}" x2="{x:.2}" y2="{:.2}" stroke="{}"/>"#,
            f.top,
            f.bottom,
            plot::SVG_GRID
        );
    }
    for (c, label) in &yt.major {
        plot::svg_y_tick(s, f.left, f.right, f.py(*c), label);
    }
    for c in &xt.minor {
        let (x, y0, y1) = (f.px(*c), f.bottom, f.bottom + 3.0);
        let _ = writeln!(s, r#"<line x1="{x:.2}" y1="{y0:.2}" x2="{x:.2}" y2="{y1:.2}" stroke="black"/>"#);
    }
    for c in &yt.minor {
        let (y, x0, x1) = (f.py(*c), f.left - 3.0, f.left);
        let _ = writeln!(s, r#"<line x1="{x0:.2}" y1="{y:.2}" x2="{x1:.2}" y2="{y:.2}" stroke="black"/>"#);
    }
    for (c, label) in &xt.major {
        plot::svg_x_tick(s, f.bottom, f.px(*c), label);
    }
    plot::svg_axis_lines(s, f.bounds());
}

/// The reference lines, dashed across the plot area, each labelled near its top: right of the line, or
/// left of it in the right quarter of the plot; consecutive labels are staggered down.
fn svg_vlines(s: &mut String, f: &Frame, vlines: &[(f64, &str)]) {
    let c = hex(VLINE_COLOR);
    for (k, &(cx, label)) in vlines.iter().enumerate() {
        let x = f.px(cx);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.2}" y1="{:.2}" x2="{x:.2}" y2="{:.2}" stroke="{c}" stroke-dasharray="{} {}"/>"#,
            f.top, f.bottom, VLINE_DASH.0, VLINE_DASH.1
        );
        let (tx, anchor) =
            if x > f.left + 0.75 * (f.right - f.left) { (x - 4.0, "end") } else { (x + 4.0, "start") };
        let ty = f.top + 12.0 + 13.0 * (k % 4) as f64;
        let _ = writeln!(
            s,
            r#"<text x="{tx:.2}" y="{ty:.2}" font-size="11" fill="{c}" text-anchor="{anchor}">{}</text>"#,
            xml_escape(label)
        );
    }
}

/// PNG axis lines, ticks (minor ones shorter, unlabelled) and tick labels.
fn png_axes(img: &mut RgbImage, f: &Frame, xt: &Ticks, yt: &Ticks, ts: u32) {
    let black = Rgb([0; 3]);
    let (l, r, t, b) = (f.left as i64, f.right as i64, f.top as i64, f.bottom as i64);
    let minor = i64::from(2 * ts);
    plot::png_axis_lines(img, (l, r, t, b));
    for c in &xt.minor {
        let x = f.px(*c).round() as i64;
        rect(img, (x, b + 1), (x + 1, b + 1 + minor), |px| *px = black);
    }
    for c in &yt.minor {
        let y = f.py(*c).round() as i64;
        rect(img, (l - 1 - minor, y), (l - 1, y + 1), |px| *px = black);
    }
    for (c, label) in &yt.major {
        plot::png_y_tick(img, l, f.py(*c).round() as i64, label, ts);
    }
    for (c, label) in &xt.major {
        plot::png_x_tick(img, f.px(*c).round() as i64, b, label, ts);
    }
}

/// The reference lines' labels near the top of the plot area, placed as in [`svg_vlines`].
fn png_vline_labels(img: &mut RgbImage, f: &Frame, vlines: &[(f64, &str)], ts: u32) {
    for (k, &(cx, label)) in vlines.iter().enumerate() {
        let x = f.px(cx).round() as i64;
        let (gap, w) = (i64::from(3 * ts), i64::from(font::text_width(label, ts)));
        let tx = if x + gap + w > f.right as i64 { x - gap - w } else { x + gap };
        let ty = f.top as i64 + i64::from(2 * ts) + (k % 4) as i64 * i64::from(LINE_HEIGHT * ts + ts);
        font::draw_text_on(img, tx, ty, label, ts, Rgb(VLINE_COLOR));
    }
}

/// Draw the polyline through `pts` in `color`, `t` pixels thick (a t x t square stamped at least once a
/// pixel along it): solid, or dashed with `dash` = (on, off) lengths in pixels, the pattern running on
/// across corners.
fn png_polyline(img: &mut RgbImage, pts: &[(f64, f64)], color: [u8; 3], t: u32, dash: Option<(f64, f64)>) {
    let (t, mut walked) = (i64::from(t), 0.0);
    let half = (t - 1) / 2;
    for w in pts.windows(2) {
        let ((xa, ya), (xb, yb)) = (w[0], w[1]);
        let len = (xb - xa).hypot(yb - ya);
        let n = (len.ceil() as usize).clamp(1, 1 << 16);
        for k in 0..=n {
            let s = k as f64 / n as f64;
            if let Some((on, off)) = dash {
                if (walked + s * len) % (on + off) >= on {
                    continue;
                }
            }
            let (x, y) =
                ((xa + (xb - xa) * s).round() as i64 - half, (ya + (yb - ya) * s).round() as i64 - half);
            rect(img, (x, y), (x + t, y + t), |px| *px = Rgb(color));
        }
        walked += len;
    }
}

/// A filled disc of radius 2·ts + 1 pixels in `color` around pixel (x.round(), y.round()).
fn png_marker(img: &mut RgbImage, (x, y): (f64, f64), color: [u8; 3], ts: u32) {
    let r = i64::from(2 * ts + 1);
    let (cx, cy) = (x.round() as i64, y.round() as i64);
    for dy in -r..=r {
        let w = ((r * r + r - dy * dy) as f64).sqrt() as i64;
        rect(img, (cx - w, cy + dy), (cx + w + 1, cy + dy + 1), |px| *px = Rgb(color));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(t: &Ticks) -> Vec<&str> {
        t.major.iter().map(|(_, l)| l.as_str()).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn log_ticks_at_powers_of_ten() {
        let (lo, hi) = (3f64.log10(), 5000f64.log10());
        let t = log_ticks(lo, hi, 8);
        assert_eq!(labels(&t), ["10", "100", "1000"]);
        let at: Vec<f64> = t.major.iter().map(|m| m.0).collect();
        assert_eq!(at, [1.0, 2.0, 3.0]);
        // Minor ticks at 3..9, 20..90, 200..900, 2000..5000: 7 + 8 + 8 + 4.
        assert_eq!(t.minor.len(), 27);
        assert!(t.minor.iter().any(|&c| close(c, 20f64.log10())));
        assert!(t.minor.iter().all(|&c| c >= lo - 1e-9 && c <= hi + 1e-9 && c.fract() != 0.0));
        // Plain decimals down to 0.001, e-notation for all labels once one needs it; with many decades
        // every 5th labelled, the others minor.
        assert_eq!(labels(&log_ticks(-3.2, 0.3, 8)), ["0.001", "0.01", "0.1", "1"]);
        let t = log_ticks(-12.0, 12.0, 8);
        assert_eq!(labels(&t), ["1e-10", "1e-5", "1e0", "1e5", "1e10"]);
        assert_eq!(t.minor.len(), 20);
        assert_eq!(labels(&log_ticks(2.0, 5.0, 8)), ["100", "1000", "10000", "100000"]);
        assert_eq!(labels(&log_ticks(2.0, 7.0, 8)), ["1e2", "1e3", "1e4", "1e5", "1e6", "1e7"]);
        // Under two decades: 1, 2 and 5 times powers of ten; under that round values.
        let t = log_ticks(3f64.log10(), 40f64.log10(), 8);
        assert_eq!(labels(&t), ["5", "10", "20"]);
        assert_eq!(t.minor.len(), 8);
        assert_eq!(labels(&log_ticks(3.1f64.log10(), 4.9f64.log10(), 8)), ["3.5", "4.0", "4.5"]);
        assert_eq!(labels(&log_ticks(-1.9, -1.05, 8)), ["0.02", "0.05"]);
    }

    #[test]
    fn axes_fit_the_data_with_a_margin() {
        let a = Axis::fit(false, [0.0, 1.0].into_iter());
        assert!(close(a.lo, -0.05) && close(a.hi, 1.05));
        assert_eq!(labels(&a.ticks(6)), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert!(close(a.frac(0.5), 0.5));
        let a = Axis::fit(true, [1.0, 3.0].into_iter());
        assert!(close(a.lo, 0.9) && close(a.hi, 3.1));
        // A single value, no values, and ranges at the ends of f64.
        let a = Axis::fit(false, [5.0].into_iter());
        assert!(close(a.lo, 4.45) && close(a.hi, 5.55));
        let a = Axis::fit(true, [2.0].into_iter());
        assert!(close(a.lo, 1.45) && close(a.hi, 2.55));
        assert_eq!(labels(&a.ticks(6)), ["50", "100", "200"]);
        assert_eq!(Axis::fit(false, std::iter::empty()), Axis { lo: -0.05, hi: 1.05, log: false });
        assert_eq!(labels(&Axis::fit(true, std::iter::empty()).ticks(8)), ["1", "10"]);
        for cs in
            [vec![-f64::MAX, f64::MAX], vec![f64::MAX], vec![0.0, 5e-324], vec![0.0], vec![1.0, 1.0 + 1e-15]]
        {
            let a = Axis::fit(false, cs.iter().copied());
            assert!(a.lo.is_finite() && a.hi.is_finite() && a.lo < a.hi, "{cs:?}: {a:?}");
            for &c in &cs {
                let f = a.frac(c);
                assert!((0.0..=1.0).contains(&f), "{cs:?}: {c} at {f}");
            }
            let t = a.ticks(6);
            assert!(!t.major.is_empty(), "{cs:?}");
            assert!(t.major.iter().all(|(c, l)| c.is_finite() && !l.contains("NaN") && !l.contains("inf")));
        }
        let a = Axis::fit(true, [(5e-324f64).log10(), f64::MAX.log10()].into_iter());
        assert!(a.ticks(8).major.iter().all(|(c, _)| c.is_finite()));
    }

    const HALF: f64 = 31.622776601683793; // 10^1.5

    fn log_log<'a>(series: Vec<LineSeries<'a>>) -> LinePlot<'a> {
        LinePlot {
            title: "KL vs N".into(),
            x_label: "N".into(),
            y_label: "KL".into(),
            series,
            log_x: true,
            log_y: true,
            vlines: vec![(3072.0, "N = d <3072>".into())],
        }
    }

    /// The x attribute of the (first) x tick label `label` in `svg`.
    fn x_tick_label_x(svg: &str, label: &str) -> f64 {
        let end = svg.find(&format!(r#"text-anchor="middle">{label}</text>"#)).unwrap();
        let start = svg[..end].rfind("<text x=\"").unwrap() + 9;
        svg[start..].split('"').next().unwrap().parse().unwrap()
    }

    /// The points of the first `<path d="...">` after `from` in `svg`.
    fn path_points(svg: &str, from: usize) -> Vec<(f64, f64)> {
        let start = svg[from..].find("<path d=\"").unwrap() + from + 9;
        let d = svg[start..].split('"').next().unwrap();
        let nums: Vec<f64> =
            d.replace(['M', 'L'], " ").split_whitespace().map(|v| v.parse().unwrap()).collect();
        nums.chunks(2).map(|c| (c[0], c[1])).collect()
    }

    #[test]
    fn log_log_points_lie_between_decade_ticks() {
        let pts = [(10.0, 1.0), (HALF, 10.0), (100.0, 100.0), (1000.0, 50.0)];
        let p =
            log_log(vec![LineSeries { name: "a".into(), points: &pts, style: LineStyle::LineAndMarkers }]);
        let (x10, y1) = p.project(10.0, 1.0).unwrap();
        let (x100, y100) = p.project(100.0, 100.0).unwrap();
        let (xm, ym) = p.project(HALF, 10.0).unwrap();
        assert!(close(xm, (x10 + x100) / 2.0) && close(ym, (y1 + y100) / 2.0), "{xm} {ym}");
        assert!(x10 < xm && xm < x100 && y100 < ym && ym < y1);
        // The same in the document: the x tick labels of 10 and 100, and the path's second corner.
        let svg = p.to_svg().unwrap();
        let (t10, t100) = (x_tick_label_x(&svg, "10"), x_tick_label_x(&svg, "100"));
        assert!((t10 - x10).abs() < 0.006 && (t100 - x100).abs() < 0.006);
        let corners = path_points(&svg, 0);
        assert_eq!(corners.len(), 4);
        assert!((corners[1].0 - (t10 + t100) / 2.0).abs() < 0.01, "{corners:?}");
        assert!((corners[1].1 - ym).abs() < 0.006);
        // And in the image, where the marker of that point has the series' colour.
        let (w, h) = (640, 480);
        let (a10, _) = p.project_png(w, h, 10.0, 1.0).unwrap().unwrap();
        let (a100, _) = p.project_png(w, h, 100.0, 1.0).unwrap().unwrap();
        let (am, bm) = p.project_png(w, h, HALF, 10.0).unwrap().unwrap();
        assert!(close(am, (a10 + a100) / 2.0));
        let img = p.to_png(w, h).unwrap();
        assert_eq!(*img.get_pixel(am.round() as u32, bm.round() as u32), Rgb(series_color(0)));
        // Not drawable on log axes, or not finite.
        for (x, y) in [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0), (f64::NAN, 1.0), (1.0, f64::INFINITY)] {
            assert_eq!(p.project(x, y), None, "({x}, {y})");
        }
        assert_eq!(p.project(1e300, 1.0).map(|q| q.0.is_finite()), Some(true));
        assert!(p.project_png(40, 30, 10.0, 1.0).is_err());
    }

    #[test]
    fn log_x_with_a_linear_y() {
        let pts = [(1e-4, 0.5), (1e-3, 0.25), (1e-2, 0.125), (0.0, 0.3)];
        let p = LinePlot {
            title: "KL vs weight decay".into(),
            x_label: "weight decay".into(),
            y_label: "KL".into(),
            series: vec![LineSeries { name: "kl".into(), points: &pts, style: LineStyle::Line }],
            log_x: true,
            log_y: false,
            vlines: vec![],
        };
        assert_eq!(p.skipped_points(), [1]);
        let (xa, ya) = p.project(1e-4, 0.5).unwrap();
        let (xb, yb) = p.project(1e-3, 0.25).unwrap();
        let (xc, yc) = p.project(1e-2, 0.125).unwrap();
        assert!(close(xb - xa, xc - xb) && close(yb - ya, 2.0 * (yc - yb)));
        let svg = p.to_svg().unwrap();
        for label in [">1e-4<", ">1e-3<", ">1e-2<", ">0.15<", ">0.50<"] {
            assert!(svg.contains(label), "{label}");
        }
        assert!(svg.contains("kl (1 of 4 points not shown)"));
    }

    #[test]
    fn undrawable_points_are_skipped_without_nan() {
        let inf = f64::INFINITY;
        let a =
            [(1.0, 1.0), (0.0, 2.0), (-3.0, 1.0), (f64::NAN, 1.0), (10.0, inf), (10.0, 5.0), (100.0, 0.0)];
        let b = [(2.0, 2.0), (20.0, f64::NAN), (3.0, 3.0), (4.0, 4.0)];
        let p = log_log(vec![
            LineSeries { name: "a".into(), points: &a, style: LineStyle::Line },
            LineSeries { name: "b".into(), points: &b, style: LineStyle::Dashed },
        ]);
        assert_eq!(p.skipped_points(), [5, 1]);
        let svg = p.to_svg().unwrap();
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert!(svg.contains("a (5 of 7 points not shown)") && svg.contains("b (1 of 4 points not shown)"));
        // a: two lone points (subpaths of one point each, shown as markers); b: a lone point, then a line.
        let a_at = svg.find("<title>a</title>").unwrap();
        let path_a = svg[..a_at].rfind("<path").unwrap();
        assert_eq!(path_points(&svg, path_a).len(), 2);
        assert_eq!(svg[path_a..a_at].matches('M').count(), 2);
        assert_eq!(svg.matches("<circle").count(), 2 + 1);
        assert!(svg.contains(r#"stroke-dasharray="6 4""#));
        let img = p.to_png(640, 480).unwrap();
        assert!(img.pixels().any(|px| *px == Rgb(series_color(1))));
        // Linear axes skip only what is not finite.
        let q = LinePlot { log_x: false, log_y: false, ..p.clone() };
        assert_eq!(q.skipped_points(), [2, 1]);
        let svg = q.to_svg().unwrap();
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn svg_has_a_path_per_line_series_escaped_names_and_vline_labels() {
        let a: Vec<(f64, f64)> = (0..8).map(|i| (10f64.powi(i), 1.0 / (1.0 + i as f64))).collect();
        let b: Vec<(f64, f64)> = a.iter().map(|&(x, y)| (x, y * 2.0)).collect();
        let c: Vec<(f64, f64)> = a.iter().map(|&(x, y)| (x * 3.0, y * 0.5)).collect();
        let d: Vec<(f64, f64)> = a.iter().map(|&(x, y)| (x * 5.0, y * 0.25)).collect();
        let p = log_log(vec![
            LineSeries { name: "train <loss> & \"KL\"".into(), points: &a, style: LineStyle::Line },
            LineSeries { name: "test".into(), points: &b, style: LineStyle::LineAndMarkers },
            LineSeries { name: "ref".into(), points: &c, style: LineStyle::Dashed },
            LineSeries { name: "scatter".into(), points: &d, style: LineStyle::Markers },
        ]);
        let svg = p.to_svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<path").count(), 3);
        assert_eq!(svg.matches("</path>").count(), 3);
        assert!(svg.contains("train &lt;loss&gt; &amp; &quot;KL&quot;"));
        assert!(!svg.contains("<loss>") && !svg.contains("<3072>"));
        assert!(svg.contains(">N = d &lt;3072&gt;</text>"));
        assert_eq!(svg.matches("<circle").count(), 2 * 8 + 2);
        for i in 0..4 {
            let markers = format!(r#"<g fill="{}">"#, hex(series_color(i)));
            assert_eq!(svg.contains(&markers), i % 2 == 1, "markers of series {i}");
            assert!(svg.contains(&hex(series_color(i))), "colour {i}");
        }
        // x from 1 to 5e7: 8 decades labelled with e-notation.
        for label in [">1e0<", ">1e2<", ">1e4<", ">1e6<"] {
            assert!(svg.contains(label), "{label}");
        }
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn empty_plots_still_have_axes() {
        let nan = [(f64::NAN, 1.0), (1.0, f64::NEG_INFINITY)];
        for (log_x, log_y) in [(false, false), (true, true), (true, false)] {
            for series in
                [vec![], vec![LineSeries { name: "none".into(), points: &nan, style: LineStyle::Line }]]
            {
                let p = LinePlot {
                    title: "empty".into(),
                    x_label: "x".into(),
                    y_label: "y".into(),
                    series,
                    log_x,
                    log_y,
                    vlines: vec![(f64::NAN, "nan".into()), (-1.0, "neg".into())],
                };
                let svg = p.to_svg().unwrap();
                assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
                assert!(!svg.contains("NaN") && !svg.contains("inf"));
                assert_eq!(svg.matches("<path").count(), 0);
                assert_eq!(svg.matches("<polyline").count(), 1, "axes");
                assert!(svg.matches(r#"text-anchor="middle">"#).count() >= 2, "x tick labels");
                assert!(svg.matches(r#"text-anchor="end">"#).count() >= 2, "y tick labels");
                assert_eq!(svg.contains(">neg</text>"), !log_x);
                let img = p.to_png(320, 240).unwrap();
                assert!(img.pixels().any(|px| *px == Rgb([0; 3])));
            }
        }
    }

    #[test]
    fn png_has_the_size_and_series_colours() {
        let a: Vec<(f64, f64)> = (1..40).map(|i| (f64::from(i) * 100.0, 1.0 / f64::from(i))).collect();
        let b: Vec<(f64, f64)> = a.iter().map(|&(x, y)| (x, y * 3.0)).collect();
        let c: Vec<(f64, f64)> = a.iter().map(|&(x, y)| (x, y * 0.3)).collect();
        let styles = [LineStyle::Line, LineStyle::Dashed, LineStyle::Markers];
        let series = [&a, &b, &c]
            .iter()
            .zip(styles)
            .enumerate()
            .map(|(i, (pts, style))| LineSeries { name: format!("s{i}"), points: pts, style })
            .collect();
        let p = log_log(series);
        for (w, h) in [(640, 480), (300, 200), (1400, 1000)] {
            let img = p.to_png(w, h).unwrap();
            assert_eq!((img.width(), img.height()), (w, h));
            for i in 0..3 {
                let c = Rgb(series_color(i));
                assert!(img.pixels().any(|px| *px == c), "{w} x {h}: no pixel of series {i}'s colour");
            }
            assert!(img.pixels().any(|px| *px == Rgb(VLINE_COLOR)), "{w} x {h}: no reference line");
            assert!(img.pixels().any(|px| *px == Rgb([0; 3])));
        }
        assert!(p.to_png(60, 40).is_err());
        assert!(p.to_png(0, 0).is_err());
    }

    #[test]
    fn saves_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let pts = [(1.0, 2.0), (10.0, 3.0)];
        let p = log_log(vec![LineSeries { name: "a".into(), points: &pts, style: LineStyle::Line }]);
        let path = dir.path().join("l.svg");
        crate::save_svg(&p.to_svg().unwrap(), &path).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("<svg"));
        let path = dir.path().join("l.png");
        crate::save_rgb_png(&p.to_png(320, 240).unwrap(), &path).unwrap();
        assert_eq!(image::open(&path).unwrap().to_rgb8().dimensions(), (320, 240));
    }
}

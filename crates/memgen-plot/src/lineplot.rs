//! Line and scatter plots of (x, y) series, e.g. the KL divergence or the test loss against the
//! training-set size N (log-log) or against the weight decay λ (log x), with labelled vertical reference
//! lines (N = d), as hand-written SVG or as an RGB image with text in the embedded DejaVu Sans, in the
//! look of [`crate::histogram`] plots: the same layout ([`crate::plot`]: the legend in a box right of the
//! plot area or in rows above it, the reference lines' labels above the plot area), palette
//! ([`series_color`]) and text. Both outputs come from one drawing routine, so an SVG and a PNG of the
//! same size hold the same items at the same places.
//!
//! The axes fit the drawable points (and, on x, the reference lines) with a 5% margin on each side (in
//! decades on a log axis); with nothing to fit an axis shows [0, 1] (linear) or [1, 10] (log). A log axis
//! has ticks at the powers of ten (every 2nd, 5th, 10th, ... one when there are many) with minor ticks at
//! 2..9 times them; on a range of under two decades at 1, 2 and 5 times them, and on one too short even
//! for that at round values. A linear axis has round ticks (1, 2 or 5 times a power of ten apart).
//!
//! A point is drawn only if both its coordinates are finite and, on a log axis, positive; the others are
//! left out and counted ([`LinePlot::skipped_points`], and in the legend), and a line breaks there.

use crate::canvas::{render_png, render_svg, Canvas, Stroke};
use crate::histogram::series_color;
use crate::plot::{format_tick, nice_step, ticks, Layout, Rect, Spec, Style, SVG_HEIGHT, SVG_WIDTH};
use crate::Result;
use image::RgbImage;

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
/// Radius of a marker in px (times the style's scale).
const MARKER_R: f64 = 3.0;
/// Dash pattern (on, off) of dashed series, in px (times the style's scale).
const DASH: (f64, f64) = (6.0, 4.0);
/// Colour of the vertical reference lines (not one of the palette's).
#[cfg(test)]
const VLINE_COLOR: [u8; 3] = crate::plot::VLINE_COLOR;

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

    /// The layout of the plot in a `width` x `height` output, the plot area's frame, and the (position,
    /// label) of the major ticks and the positions of the minor ticks of the x and the y axis.
    fn layout(&self, width: f64, height: f64, p: &Prepared) -> Result<(Layout, Frame, AxisTicks)> {
        let legend = (0..self.series.len()).map(|i| self.legend_text(p, i)).collect();
        let spec = Spec {
            title: &self.title,
            x_label: &self.x_label,
            y_label: &self.y_label,
            legend,
            vlines: p.vlines.iter().map(|&(c, label)| (p.x.frac(c), label)).collect(),
        };
        let y_labels = |target| p.y.ticks(target).major.into_iter().map(|t| t.1).collect();
        let lay = Layout::new(width, height, &spec, y_labels)?;
        let f = Frame { left: lay.left, right: lay.right, top: lay.top, bottom: lay.bottom, x: p.x, y: p.y };
        let yt = p.y.ticks(lay.y_target);
        let mut xt = p.x.ticks(2);
        for target in (2..=lay.x_target()).rev() {
            let t = p.x.ticks(target);
            if lay.x_labels_fit(&t.major.iter().map(|(c, l)| (f.px(*c), l.clone())).collect::<Vec<_>>()) {
                xt = t;
                break;
            }
        }
        let major =
            |t: &Ticks, at: &dyn Fn(f64) -> f64| t.major.iter().map(|(c, l)| (at(*c), l.clone())).collect();
        let minor = |t: &Ticks, at: &dyn Fn(f64) -> f64| t.minor.iter().map(|c| at(*c)).collect();
        let (px, py) = (|c| f.px(c), |c| f.py(c));
        let ticks = AxisTicks {
            x_major: major(&xt, &px),
            x_minor: minor(&xt, &px),
            y_major: major(&yt, &py),
            y_minor: minor(&yt, &py),
        };
        Ok((lay, f, ticks))
    }

    /// Draw the plot onto `c`, a `width` x `height` output: grid, reference lines, series, axes, then
    /// the title, legend and labels. Returns the plot area's frame.
    fn draw(&self, c: &mut dyn Canvas, width: f64, height: f64) -> Result<Frame> {
        let p = self.prepare();
        let (lay, f, t) = self.layout(width, height, &p)?;
        let firsts = |v: &[(f64, String)]| v.iter().map(|m| m.0).collect::<Vec<f64>>();
        lay.draw_grid(c, &firsts(&t.x_major), &firsts(&t.y_major));
        lay.draw_vlines(c, &p.vlines.iter().map(|v| f.px(v.0)).collect::<Vec<_>>());
        let s = lay.style.s;
        for (i, runs) in p.runs.iter().enumerate() {
            if runs.is_empty() {
                continue;
            }
            let (style, name) = (self.series[i].style, self.series[i].name.as_str());
            if style.has_line() {
                let pts: Vec<Vec<(f64, f64)>> =
                    runs.iter().map(|r| r.iter().map(|&q| f.at(q)).collect()).collect();
                c.path(&pts, false, None, Some(self.stroke(i, lay.style)), name);
            }
            let markers: Vec<(f64, f64)> = marker_points(style, runs).map(|q| f.at(q)).collect();
            c.markers(&markers, MARKER_R * s, series_color(i), name);
        }
        lay.draw_axes(c, &t.x_major, &t.x_minor, &t.y_major, &t.y_minor);
        lay.draw_text(c, |c: &mut dyn Canvas, i: usize, ((x0, y0), (x1, y1)): Rect| {
            let style = self.series[i].style;
            let cy = (y0 + y1) / 2.0;
            if style.has_line() {
                c.line(&[(x0, cy), (x1, cy)], self.stroke(i, lay.style));
            }
            if style.has_markers() {
                c.markers(&[((x0 + x1) / 2.0, cy)], MARKER_R * s, series_color(i), "");
            }
        });
        Ok(f)
    }

    /// The line of series `i` in style `st`: solid or dashed in its colour.
    fn stroke(&self, i: usize, st: Style) -> Stroke {
        let s = st.s;
        let dash = (self.series[i].style == LineStyle::Dashed).then_some((DASH.0 * s, DASH.1 * s));
        Stroke { color: series_color(i), width: st.line_width(), dash }
    }

    /// Where the data point (x, y) lies in [`Self::to_svg`]'s document (px from its top-left corner, y
    /// downwards): `None` if it is not drawn (a coordinate not finite, or not positive on a log axis),
    /// or lies so far outside the axes that the position overflows.
    pub fn project(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let p = self.prepare();
        let (_, f, _) = self.layout(SVG_WIDTH, SVG_HEIGHT, &p).ok()?;
        f.project(x, y)
    }

    /// As [`Self::project`], in the image of `to_png(width, height)` (and the document of
    /// `to_svg_sized(width, height)`): the point is drawn around pixel (x.round(), y.round()). Errors as
    /// [`Self::to_png`].
    pub fn project_png(&self, width: u32, height: u32, x: f64, y: f64) -> Result<Option<(f64, f64)>> {
        let p = self.prepare();
        let (_, f, _) = self.layout(f64::from(width), f64::from(height), &p)?;
        Ok(f.project(x, y))
    }

    /// The plot as a standalone SVG 1.1 document, 720 x 480 px: see [`Self::to_svg_sized`]. Does not fail
    /// at present.
    pub fn to_svg(&self) -> Result<String> {
        self.to_svg_sized(SVG_WIDTH as u32, SVG_HEIGHT as u32)
    }

    /// The plot as a standalone SVG 1.1 document of `width` x `height` px, laid out and drawn as
    /// [`Self::to_png`] of the same size: title, legend (one entry per series, with the number of points
    /// not shown if any) in a box right of the plot area or in rows above it, axes with grid lines,
    /// ticks and tick labels, the reference lines dashed in grey with their labels above the plot area,
    /// one `<path>` per series drawn with a line that has a drawable point (its name as a `<title>`),
    /// `<circle>` markers, and the axis labels. Text is XML-escaped and asks for DejaVu Sans; all
    /// coordinates are finite. Errors if the document is too small to leave a plot area of at least
    /// 16 x 16 px.
    pub fn to_svg_sized(&self, width: u32, height: u32) -> Result<String> {
        render_svg(width, height, |c, w, h| self.draw(c, w, h).map(|_| ()))
    }

    /// Write the plot as a `width` x `height` `DIR/NAME.svg` and `DIR/NAME.png` (both atomically, from
    /// the same layout); returns the SVG text.
    pub fn save(&self, dir: &std::path::Path, name: &str, width: u32, height: u32) -> Result<String> {
        let svg = self.to_svg_sized(width, height)?;
        crate::save_svg(&svg, &dir.join(format!("{name}.svg")))?;
        crate::save_rgb_png(&self.to_png(width, height)?, &dir.join(format!("{name}.png")))?;
        Ok(svg)
    }

    /// The plot drawn into a `width` x `height` RGB image: the items of [`Self::to_svg_sized`], text in the
    /// embedded DejaVu Sans (anti-aliased; sizes grow with the image), lines and markers in the series'
    /// exact colours (not anti-aliased). Errors if the image is too small to leave a plot area of at
    /// least 16 x 16 pixels.
    pub fn to_png(&self, width: u32, height: u32) -> Result<RgbImage> {
        render_png(width, height, |c, w, h| self.draw(c, w, h).map(|_| ()))
    }
}

/// Ticks in output coordinates: (position, label) of the major ones and the positions of the minor ones.
struct AxisTicks {
    x_major: Vec<(f64, String)>,
    x_minor: Vec<f64>,
    y_major: Vec<(f64, String)>,
    y_minor: Vec<f64>,
}

/// The points of `runs` (axis coordinates) that get a marker in `style`: all of them in a style with
/// markers, else those of runs of a single point (which a line would not show).
fn marker_points(style: LineStyle, runs: &[Vec<(f64, f64)>]) -> impl Iterator<Item = (f64, f64)> + '_ {
    let all = style.has_markers();
    runs.iter().filter(move |run| all || run.len() == 1).flatten().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvas::hex;
    use image::Rgb;

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

    /// Seven series like the report's transition figure (log x, a reference line at N = d).
    fn transition(pts: &[Vec<(f64, f64)>], names: &[String], vline: &str) -> LinePlot<'static> {
        let styles = [LineStyle::LineAndMarkers, LineStyle::Dashed, LineStyle::Markers, LineStyle::Line];
        let series = pts
            .iter()
            .zip(names)
            .enumerate()
            .map(|(i, (p, n))| LineSeries {
                name: n.clone(),
                points: Vec::leak(p.clone()),
                style: styles[i % styles.len()],
            })
            .collect();
        LinePlot {
            title: "Memorization to generalization".into(),
            x_label: "training-set size N".into(),
            y_label: "median correlation σ ≥ 0".into(),
            series,
            log_x: true,
            log_y: false,
            vlines: vec![(256.0, vline.into())],
        }
    }

    fn seven() -> Vec<Vec<(f64, f64)>> {
        (0..7)
            .map(|k| {
                [1.0, 10.0, 100.0, 1000.0]
                    .iter()
                    .enumerate()
                    .map(|(j, &n)| (n, 1.0 - 0.3 * j as f64 / (1.0 + k as f64) - 0.05 * k as f64))
                    .collect()
            })
            .collect()
    }

    fn names(digit: usize) -> Vec<String> {
        (0..7).map(|i| format!("Series {i}: corr(x_A, x_B) at run {digit}")).collect()
    }

    /// The box (x0, y0, x1, y1) that the text `t` may ink.
    pub(crate) fn text_box(t: &crate::canvas::Text) -> (f64, f64, f64, f64) {
        use crate::canvas::Anchor;
        let w = f64::from(crate::text::text_width(&t.text, t.size as f32));
        let (up, down) =
            (f64::from(crate::text::ascent(t.size as f32)), f64::from(crate::text::descent(t.size as f32)));
        let before = match t.anchor {
            Anchor::Start => 0.0,
            Anchor::Middle => 0.5,
            Anchor::End => 1.0,
        };
        if t.vertical {
            (t.x - up, t.y - w * (1.0 - before), t.x + down, t.y + w * before)
        } else {
            (t.x - w * before, t.y - up, t.x + w * (1.0 - before), t.y + down)
        }
    }

    /// Pixels of `img` in the box `b` (grown by one pixel) darker than mid-gray in every channel.
    fn dark_in(img: &RgbImage, b: (f64, f64, f64, f64)) -> usize {
        let (x0, y0) = ((b.0 - 1.0).max(0.0) as u32, (b.1 - 1.0).max(0.0) as u32);
        let (x1, y1) =
            ((b.2 + 1.0).min(f64::from(img.width())) as u32, (b.3 + 1.0).min(f64::from(img.height())) as u32);
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 140))
            .count()
    }

    #[test]
    fn svg_and_png_draw_the_same_items() {
        use crate::canvas::{svg_texts, PngCanvas, Recorder, SvgCanvas};
        let pts = seven();
        let p = transition(&pts, &names(1), "N = d");
        for (w, h) in [(900, 560), (720, 480), (480, 400)] {
            let mut svg = Recorder::new(SvgCanvas::new(f64::from(w), f64::from(h)));
            let mut png = Recorder::new(PngCanvas::new(w, h));
            p.draw(&mut svg, f64::from(w), f64::from(h)).unwrap();
            p.draw(&mut png, f64::from(w), f64::from(h)).unwrap();
            assert_eq!(svg.items, png.items, "{w} x {h}");
            let texts: Vec<String> = png.texts().iter().map(|t| t.text.clone()).collect();
            for want in ["Memorization to generalization", "training-set size N", "N = d", "1", "1000"] {
                assert!(texts.iter().any(|t| t == want), "{w} x {h}: {want:?} not in {texts:?}");
            }
            assert!(texts.iter().any(|t| t.starts_with("median correlation σ")));
            assert!(texts.iter().any(|t| t.starts_with("Series 6")), "{texts:?}");
            // The SVG document has exactly these texts, and the PNG ink where each of them goes.
            let doc = svg.inner.finish();
            assert_eq!(svg_texts(&doc), texts);
            assert_eq!(doc, p.to_svg_sized(w, h).unwrap());
            assert_eq!(png.inner.img, p.to_png(w, h).unwrap());
            for t in png.texts() {
                assert!(dark_in(&png.inner.img, text_box(t)) > 0, "{w} x {h}: no ink for {t:?}");
            }
        }
    }

    #[test]
    fn legend_and_reference_labels_stay_outside_the_plot_area() {
        let pts = seven();
        let (w, h) = (800, 560);
        for (a, b) in [
            (names(1), names(2)),
            ((0..7).map(|i| format!("s{i}")).collect(), (0..7).map(|i| format!("s{}", i + 1)).collect()),
        ] {
            let (pa, pb) = (transition(&pts, &a, "N = d"), transition(&pts, &b, "N = d"));
            let (lay, ..) = pa.layout(f64::from(w), f64::from(h), &pa.prepare()).unwrap();
            let lg = lay.legend.clone().unwrap();
            let ((x0, y0), (x1, y1)) = lg.frame;
            assert!(x0 > lay.right || y1 < lay.top, "{lg:?} overlaps the plot area");
            assert_eq!(lg.entries.len(), 7);
            // The names differ in a character of equal width, so nothing else moves: the two images
            // differ only inside the legend box.
            let (ia, ib) = (pa.to_png(w, h).unwrap(), pb.to_png(w, h).unwrap());
            let mut changed = 0;
            for (x, y, px) in ia.enumerate_pixels() {
                if px != ib.get_pixel(x, y) {
                    changed += 1;
                    let (x, y) = (f64::from(x), f64::from(y));
                    assert!(x >= x0 - 1.0 && x <= x1 + 1.0 && y >= y0 - 1.0 && y <= y1 + 1.0, "({x}, {y})");
                    assert!(
                        !(x >= lay.left && x <= lay.right && y >= lay.top && y <= lay.bottom),
                        "({x}, {y})"
                    );
                }
            }
            assert!(changed > 0);
            // In the SVG the legend group's box lies right of the axes.
            let svg = pa.to_svg_sized(w, h).unwrap();
            let g = &svg[svg.find(r#"<g class="legend">"#).unwrap()..];
            let rx: f64 = g[g.find("<rect x=\"").unwrap() + 9..].split('"').next().unwrap().parse().unwrap();
            let axes = &svg[svg.find("<polyline points=\"").unwrap() + 18..];
            let corners: Vec<f64> =
                axes.split('"').next().unwrap().split([' ', ',']).map(|v| v.parse().unwrap()).collect();
            assert!(rx > corners[4], "legend at {rx}, plot area right edge {}", corners[4]);
        }
        // The label of the reference line: changing it changes only the strip above the plot area,
        // under the title and left of the legend; "N = d" and "N = D" differ.
        let p = transition(&pts, &names(1), "N = d");
        let (lay, ..) = p.layout(f64::from(w), f64::from(h), &p.prepare()).unwrap();
        let title = lay.title.clone().unwrap();
        let title_bottom = title.y + f64::from(crate::text::descent(title.size as f32));
        let ia = p.to_png(w, h).unwrap();
        let ib = transition(&pts, &names(1), "N = D").to_png(w, h).unwrap();
        let diff: Vec<(u32, u32)> = ia
            .enumerate_pixels()
            .filter(|(x, y, px)| *px != ib.get_pixel(*x, *y))
            .map(|(x, y, _)| (x, y))
            .collect();
        assert!(!diff.is_empty());
        let lg = lay.legend.unwrap().frame;
        for (x, y) in diff {
            let (x, y) = (f64::from(x), f64::from(y));
            assert!(y < lay.top && y > title_bottom && x < lg.0 .0, "({x}, {y})");
        }
    }

    #[test]
    #[ignore = "writes figures to /tmp/plotcheck for looking at"]
    fn writes_check_figures() {
        let dir = std::path::Path::new("/tmp/plotcheck");
        std::fs::create_dir_all(dir).unwrap();
        let pts = seven();
        let real = [
            "A: corr to nearest image of own set",
            "B: corr to nearest image of own set",
            "corr(x_A, x_B): the two models",
            "A: corr to nearest image of S_B",
            "oracle corr(x_A, x_B)",
            "linear pair corr(x_A, x_B)",
            "S_A vs nearest in S_B (no model)",
        ]
        .map(String::from);
        let p = transition(&pts, &real, "N = d");
        p.save(dir, "lineplot-900x560", 900, 560).unwrap();
        p.save(dir, "lineplot-480x400", 480, 400).unwrap();
        crate::save_svg(&p.to_svg().unwrap(), &dir.join("lineplot-default.svg")).unwrap();
        let mse: Vec<(f64, f64)> =
            [1.0, 10.0, 100.0, 1000.0].iter().map(|&n: &f64| (n, 0.02 / n.sqrt())).collect();
        let q = LinePlot {
            title: "Denoising error on training and held-out images".into(),
            y_label: "MSE per pixel ‖D(x + σz) − x‖²".into(),
            log_y: true,
            series: vec![LineSeries {
                name: "network, train (α = 0.1)".into(),
                points: Vec::leak(mse),
                style: LineStyle::LineAndMarkers,
            }],
            ..p.clone()
        };
        q.save(dir, "lineplot-logy-1400x1000", 1400, 1000).unwrap();
    }
}

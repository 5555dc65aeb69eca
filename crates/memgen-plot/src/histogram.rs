//! Histograms of values on a fixed range, and plots of several histograms overlaid (e.g. distances of a
//! model's samples to its own training set, to another set, and to another model's samples), as
//! hand-written SVG or as an RGB image labeled with the built-in bitmap font.
//!
//! The y axis of a plot is the fraction of each series' (non-NaN) values that fall in a bin, so series of
//! different sizes compare; values outside the plot's range pile up in its end bins (see [`Histogram`]).

use crate::font::{ADVANCE, GLYPH_HEIGHT};
use crate::plot::{self, format_tick, hex, nice_step, rect, ticks, xml_escape, SVG_LEFT, SVG_RIGHT};
use crate::{Error, Result};
use image::{Rgb, RgbImage};
use std::fmt::Write as _;
use std::path::Path;

/// Counts of values in `counts.len()` equal-width bins on [`lo`, `hi`].
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<usize>,
    /// Values below `lo` or above `hi` (±∞ included), counted in the first or last bin.
    pub clamped: usize,
    /// NaN values, not counted in any bin.
    pub skipped: usize,
}

impl Histogram {
    /// Count `values` into `bins` bins of width w = (hi − lo)/bins: bin i holds [lo + i·w, lo + (i+1)·w),
    /// the last bin also `hi` itself. Values outside [lo, hi] go to the nearest end bin (and `clamped`),
    /// NaN to `skipped`. Errors if `bins` is 0 or unless lo < hi with hi − lo finite.
    pub fn new(values: &[f64], lo: f64, hi: f64, bins: usize) -> Result<Histogram> {
        check_range(lo, hi, bins)?;
        let mut h = Histogram { lo, hi, counts: vec![0; bins], clamped: 0, skipped: 0 };
        for &v in values {
            if v.is_nan() {
                h.skipped += 1;
                continue;
            }
            if v < lo || v > hi {
                h.clamped += 1;
            }
            let i = h.bin_index(v);
            h.counts[i] += 1;
        }
        Ok(h)
    }

    /// The bin of a non-NaN value: ⌊(v − lo)/w⌋ limited to 0 ..= bins − 1.
    fn bin_index(&self, v: f64) -> usize {
        let bins = self.counts.len();
        let t = (v - self.lo) / (self.hi - self.lo) * bins as f64;
        (t.max(0.0) as usize).min(bins - 1)
    }

    /// Width of one bin, (hi − lo)/bins.
    pub fn bin_width(&self) -> f64 {
        (self.hi - self.lo) / self.counts.len() as f64
    }

    /// Number of values counted in bins (all but the NaN ones).
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// `counts[i] / total()` per bin; all zero when nothing was counted.
    pub fn fractions(&self) -> Vec<f64> {
        let n = self.total().max(1) as f64;
        self.counts.iter().map(|&c| c as f64 / n).collect()
    }
}

/// Errors unless `bins` ≥ 1 and lo < hi with hi − lo finite (so lo and hi are finite too).
fn check_range(lo: f64, hi: f64, bins: usize) -> Result<()> {
    if bins == 0 {
        return Err(Error::Invalid("a histogram needs at least one bin".into()));
    }
    if lo < hi && (hi - lo).is_finite() {
        Ok(())
    } else {
        Err(Error::Invalid(format!("histogram range [{lo}, {hi}] must be finite with lo < hi")))
    }
}

/// One histogram of a plot: a name for the legend and its values.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    pub name: String,
    pub values: &'a [f64],
}

/// Several histograms on the same bins, overlaid: one colour per series ([`series_color`]), each drawn
/// as a translucent filled step outline.
#[derive(Debug, Clone)]
pub struct HistogramPlot<'a> {
    pub title: String,
    pub x_label: String,
    pub series: Vec<Series<'a>>,
    pub lo: f64,
    pub hi: f64,
    pub bins: usize,
}

/// Series colours, in order (matplotlib's "tab10"); series `i` gets `PALETTE[i % 10]`.
pub const PALETTE: [[u8; 3]; 10] = [
    [0x1f, 0x77, 0xb4],
    [0xff, 0x7f, 0x0e],
    [0x2c, 0xa0, 0x2c],
    [0xd6, 0x27, 0x28],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x7f, 0x7f, 0x7f],
    [0xbc, 0xbd, 0x22],
    [0x17, 0xbe, 0xcf],
];

/// The colour of series `i`.
pub fn series_color(i: usize) -> [u8; 3] {
    PALETTE[i % PALETTE.len()]
}

/// Label of the y axis.
const Y_LABEL: &str = "fraction of values";
/// Opacity of the filled area under each series' steps.
const FILL_OPACITY: f64 = 0.25;

/// What both renderings need: the histograms, their fractions and the y axis.
struct Prepared {
    hists: Vec<Histogram>,
    fracs: Vec<Vec<f64>>,
    /// Top of the y axis: the largest fraction rounded up to a multiple of `y_step` (1 with no data).
    y_top: f64,
    y_step: f64,
}

/// Where the plot area lies in output coordinates (y grows downwards) and what it shows.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    lo: f64,
    hi: f64,
    y_top: f64,
}

impl Frame {
    /// x of the value `v`.
    fn x(&self, v: f64) -> f64 {
        self.left + (self.right - self.left) * (v - self.lo) / (self.hi - self.lo)
    }

    /// x of the left edge of bin `i` of `bins`.
    fn x_bin(&self, i: usize, bins: usize) -> f64 {
        self.left + (self.right - self.left) * i as f64 / bins as f64
    }

    /// y of the fraction `f` (limited to the top of the axis).
    fn y(&self, f: f64) -> f64 {
        self.bottom - (self.bottom - self.top) * (f / self.y_top).min(1.0)
    }

    /// Corners of the step outline of `fracs`, from the baseline at the left edge to the baseline at the
    /// right edge; consecutive corners differ in x or in y only.
    fn steps(&self, fracs: &[f64]) -> Vec<(f64, f64)> {
        let n = fracs.len();
        let mut pts = vec![(self.x_bin(0, n), self.bottom)];
        for (i, &f) in fracs.iter().enumerate() {
            pts.push((self.x_bin(i, n), self.y(f)));
            pts.push((self.x_bin(i + 1, n), self.y(f)));
        }
        pts.push((self.x_bin(n, n), self.bottom));
        pts
    }
}

impl HistogramPlot<'_> {
    /// Histograms of all series on the plot's bins, and the y axis that fits them all.
    fn prepare(&self) -> Result<Prepared> {
        check_range(self.lo, self.hi, self.bins)?;
        let hists: Vec<Histogram> = self
            .series
            .iter()
            .map(|s| Histogram::new(s.values, self.lo, self.hi, self.bins))
            .collect::<Result<_>>()?;
        let fracs: Vec<Vec<f64>> = hists.iter().map(Histogram::fractions).collect();
        let max = fracs.iter().flatten().fold(0.0, |a: f64, &b| a.max(b));
        let max = if max > 0.0 { max } else { 1.0 };
        let y_step = nice_step(max, 5);
        let y_top = (max / y_step - 1e-9).ceil().max(1.0) * y_step;
        Ok(Prepared { hists, fracs, y_top, y_step })
    }

    /// Legend text of series `i`: its name and how many values it counts.
    fn legend_text(&self, p: &Prepared, i: usize) -> String {
        format!("{} (n={})", self.series[i].name, p.hists[i].total())
    }

    /// The plot as a standalone SVG 1.1 document, 720 px wide: title, legend (one line per series with
    /// its count), axes with round ticks, each series as a `<path>` step outline filled translucently
    /// in its colour, and the axis labels. Text is XML-escaped. Errors as [`Histogram::new`].
    pub fn to_svg(&self) -> Result<String> {
        let p = self.prepare()?;
        let top = plot::svg_plot_top(self.series.len());
        let f = Frame {
            left: SVG_LEFT,
            right: SVG_RIGHT,
            top,
            bottom: top + plot::SVG_PLOT_HEIGHT,
            lo: self.lo,
            hi: self.hi,
            y_top: p.y_top,
        };
        let mut s = String::new();
        plot::svg_begin(&mut s, f.bottom + 60.0);
        self.svg_axes(&mut s, &f, &p);
        self.svg_series(&mut s, &f, &p);
        self.svg_text(&mut s, &f, &p);
        s.push_str("</svg>");
        Ok(s)
    }

    /// Grid lines, axes, ticks and tick labels.
    fn svg_axes(&self, s: &mut String, f: &Frame, p: &Prepared) {
        for v in ticks(0.0, p.y_top, p.y_step) {
            plot::svg_y_tick(s, f.left, f.right, f.y(v), &format_tick(v, p.y_step));
        }
        self.svg_x_ticks(s, f);
        plot::svg_axis_lines(s, (f.left, f.right, f.top, f.bottom));
    }

    /// Ticks and tick labels of the x axis, at round values in [lo, hi].
    fn svg_x_ticks(&self, s: &mut String, f: &Frame) {
        let step = nice_step(self.hi - self.lo, 8);
        for v in ticks(self.lo, self.hi, step) {
            plot::svg_x_tick(s, f.bottom, f.x(v), &format_tick(v, step));
        }
    }

    /// One `<path>` per series (its name as a `<title>`), in series order.
    fn svg_series(&self, s: &mut String, f: &Frame, p: &Prepared) {
        for (i, fracs) in p.fracs.iter().enumerate() {
            let c = hex(series_color(i));
            let mut d = String::new();
            for (k, (x, y)) in f.steps(fracs).into_iter().enumerate() {
                let _ = write!(d, "{}{x:.2} {y:.2}", if k == 0 { "M" } else { " L" });
            }
            let name = xml_escape(&self.series[i].name);
            let _ = writeln!(
                s,
                r#"<path d="{d} Z" fill="{c}" fill-opacity="{FILL_OPACITY}" stroke="{c}" stroke-width="1.5"><title>{name}</title></path>"#
            );
        }
    }

    /// Title, legend and axis labels.
    fn svg_text(&self, s: &mut String, f: &Frame, p: &Prepared) {
        plot::svg_title(s, &self.title);
        let swatch = |i, x, y| {
            let c = hex(series_color(i));
            format!(
                r#"<rect x="{x}" y="{y}" width="14" height="10" fill="{c}" fill-opacity="0.5" stroke="{c}"/>"#
            )
        };
        plot::svg_legend(s, f.left, self.series.len(), swatch, |i| self.legend_text(p, i));
        plot::svg_axis_labels(s, (f.left, f.right, f.top, f.bottom), &self.x_label, Y_LABEL);
    }

    /// The plot drawn into a `width` x `height` RGB image: the same elements as [`Self::to_svg`], text in
    /// the bitmap font (scaled up for images of 1280 x 960 and more). Errors as [`Histogram::new`], and if
    /// the image is too small to leave a plot area of at least 16 x 16 pixels.
    pub fn to_png(&self, width: u32, height: u32) -> Result<RgbImage> {
        let p = self.prepare()?;
        let ts = plot::text_scale(width, height);
        let f = self.png_frame(width, height, ts, &p)?;
        let mut img = RgbImage::from_pixel(width, height, Rgb([255; 3]));
        for v in ticks(0.0, p.y_top, p.y_step) {
            let y = f.y(v).round() as i64;
            rect(&mut img, (f.left as i64, y), (f.right as i64, y + 1), |px| *px = Rgb([plot::PNG_GRID; 3]));
        }
        for (i, fracs) in p.fracs.iter().enumerate() {
            png_fill(&mut img, &f, fracs, series_color(i));
        }
        self.png_axes(&mut img, &f, &p, ts);
        for (i, fracs) in p.fracs.iter().enumerate() {
            png_outline(&mut img, &f, fracs, series_color(i), ts);
        }
        self.png_text(&mut img, &f, &p, ts);
        Ok(img)
    }

    /// Plot area of a `width` x `height` image at text scale `ts` (see [`plot::png_area`]).
    fn png_frame(&self, width: u32, height: u32, ts: u32, p: &Prepared) -> Result<Frame> {
        let y_labels = ticks(0.0, p.y_top, p.y_step).into_iter().map(|v| format_tick(v, p.y_step));
        let y_label_w = y_labels.map(|l| crate::font::text_width(&l, ts)).max().unwrap_or(0);
        let (left, right, top, bottom) = plot::png_area(width, height, ts, self.series.len(), y_label_w)?;
        Ok(Frame { left, right, top, bottom, lo: self.lo, hi: self.hi, y_top: p.y_top })
    }

    /// Axis lines, ticks and tick labels.
    fn png_axes(&self, img: &mut RgbImage, f: &Frame, p: &Prepared, ts: u32) {
        let (l, r, t, b) = (f.left as i64, f.right as i64, f.top as i64, f.bottom as i64);
        plot::png_axis_lines(img, (l, r, t, b));
        for v in ticks(0.0, p.y_top, p.y_step) {
            plot::png_y_tick(img, l, f.y(v).round() as i64, &format_tick(v, p.y_step), ts);
        }
        let step = nice_step(self.hi - self.lo, ((f.right - f.left) / f64::from(10 * ADVANCE * ts)) as usize);
        for v in ticks(self.lo, self.hi, step) {
            plot::png_x_tick(img, f.x(v).round() as i64, b, &format_tick(v, step), ts);
        }
    }

    /// Title, legend (a colour swatch and the legend text per series) and axis labels.
    fn png_text(&self, img: &mut RgbImage, f: &Frame, p: &Prepared, ts: u32) {
        plot::png_title(img, &self.title, ts);
        let side = i64::from(GLYPH_HEIGHT * ts);
        let swatch = |img: &mut RgbImage, i, (x, y): (i64, i64)| {
            rect(img, (x, y), (x + side, y + side), |px| *px = Rgb(series_color(i)));
        };
        plot::png_legend(img, f.left as i64, self.series.len(), ts, side, swatch, |i| self.legend_text(p, i));
        plot::png_axis_labels(img, (f.left, f.right, f.top, f.bottom), &self.x_label, Y_LABEL, ts);
    }
}

/// Blend the area under the steps of `fracs` with `color` at [`FILL_OPACITY`].
fn png_fill(img: &mut RgbImage, f: &Frame, fracs: &[f64], color: [u8; 3]) {
    let n = fracs.len();
    for (i, &v) in fracs.iter().enumerate() {
        let (x0, x1) = (f.x_bin(i, n).round() as i64, f.x_bin(i + 1, n).round() as i64);
        let y = f.y(v).round() as i64;
        rect(img, (x0, y), (x1, f.bottom as i64), |px| {
            for (p, &c) in px.0.iter_mut().zip(&color) {
                *p = (f64::from(*p) * (1.0 - FILL_OPACITY) + f64::from(c) * FILL_OPACITY).round() as u8;
            }
        });
    }
}

/// Draw the step outline of `fracs` in `color`, `ts` pixels thick, leaving out the stretches along the
/// baseline (so the x axis keeps its colour).
fn png_outline(img: &mut RgbImage, f: &Frame, fracs: &[f64], color: [u8; 3], ts: u32) {
    let pts: Vec<(i64, i64)> =
        f.steps(fracs).iter().map(|&(x, y)| (x.round() as i64, y.round() as i64)).collect();
    let (t, base) = (i64::from(ts), f.bottom as i64);
    for w in pts.windows(2) {
        let ((xa, ya), (xb, yb)) = (w[0], w[1]);
        if ya == base && yb == base {
            continue;
        }
        rect(img, (xa.min(xb), ya.min(yb)), (xa.max(xb) + t, ya.max(yb) + t), |px| *px = Rgb(color));
    }
}

/// Write `svg` to `path` atomically (temporary file, then rename).
pub fn save_svg(svg: &str, path: &Path) -> Result<()> {
    crate::write_atomic(path, svg.as_bytes())
}

/// Encode `img` as PNG and write it atomically (temporary file, then rename).
pub fn save_rgb_png(img: &RgbImage, path: &Path) -> Result<()> {
    crate::write_png_atomic(img, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bins_by_hand() {
        let inf = f64::INFINITY;
        let values = [0.0, 0.1, 0.25, 0.5, 0.99, 1.0, -0.5, 2.0, f64::NAN, inf, -inf, 0.75];
        let h = Histogram::new(&values, 0.0, 1.0, 4).unwrap();
        // [0, .25): 0, .1, and clamped -0.5, -inf; [.25, .5): .25; [.5, .75): .5; [.75, 1]: .75, .99, 1 (= hi),
        // and clamped 2, +inf.
        assert_eq!(h.counts, vec![4, 1, 1, 5]);
        assert_eq!((h.clamped, h.skipped, h.total()), (4, 1, 11));
        assert_eq!(h.bin_width(), 0.25);
        assert_eq!(h.fractions()[3], 5.0 / 11.0);
        let h = Histogram::new(&[-3.0, -2.0, 5.0], -2.0, 5.0, 7).unwrap();
        assert_eq!(h.counts, vec![2, 0, 0, 0, 0, 0, 1]);
        assert_eq!(Histogram::new(&[f64::NAN], 0.0, 1.0, 3).unwrap().fractions(), vec![0.0; 3]);
    }

    #[test]
    fn bad_ranges_are_errors() {
        for (lo, hi, bins) in
            [(0.0, 1.0, 0), (1.0, 1.0, 3), (2.0, 1.0, 3), (f64::NAN, 1.0, 3), (0.0, f64::INFINITY, 3)]
        {
            assert!(Histogram::new(&[0.5], lo, hi, bins).is_err(), "[{lo}, {hi}] with {bins} bins");
        }
        assert!(Histogram::new(&[0.5], -f64::MAX, f64::MAX, 3).is_err());
    }

    #[test]
    fn ticks_are_round() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12 * b;
        assert!(close(nice_step(1.0, 5), 0.2));
        assert!(close(nice_step(0.3, 5), 0.05));
        assert!(close(nice_step(0.37, 5), 0.1));
        assert!(close(nice_step(700.0, 8), 100.0));
        let labels: Vec<String> = ticks(-0.3, 1.0, 0.2).iter().map(|&v| format_tick(v, 0.2)).collect();
        assert_eq!(labels, ["-0.2", "0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(format_tick(300.0, 100.0), "300");
        assert_eq!(format_tick(2e8, 1e8), "2e8");
        assert!(ticks(0.1, 0.15, 1.0).is_empty());
    }

    fn plot<'a>(series: Vec<Series<'a>>) -> HistogramPlot<'a> {
        HistogramPlot {
            title: "Distances".into(),
            x_label: "L2 distance".into(),
            series,
            lo: 0.0,
            hi: 2.0,
            bins: 20,
        }
    }

    fn three_series() -> [Vec<f64>; 3] {
        let a: Vec<f64> = (0..100).map(|i| 0.2 + 0.004 * i as f64).collect();
        let b: Vec<f64> = (0..50).map(|i| 0.9 + 0.01 * i as f64).collect();
        let c: Vec<f64> = (0..400).map(|i| 1.2 + 0.0015 * i as f64).collect();
        [a, b, c]
    }

    #[test]
    fn svg_has_a_path_per_series_and_escaped_legend() {
        let [a, b, c] = three_series();
        let p = plot(vec![
            Series { name: "A vs own training set".into(), values: &a },
            Series { name: "A vs <other> & \"set\"".into(), values: &b },
            Series { name: "A vs B".into(), values: &c },
        ]);
        let svg = p.to_svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<path").count(), 3);
        assert_eq!(svg.matches("</path>").count(), 3);
        assert!(svg.contains("A vs own training set (n=100)"));
        assert!(svg.contains("A vs &lt;other&gt; &amp; &quot;set&quot; (n=50)"));
        assert!(!svg.contains("<other>"));
        assert!(svg.contains("A vs B (n=400)"));
        for i in 0..3 {
            assert!(svg.contains(&format!(r#"stroke="{}""#, hex(series_color(i)))));
        }
        // Round x ticks on [0, 2].
        for label in [">0.0<", ">0.4<", ">1.0<", ">2.0<"] {
            assert!(svg.contains(label), "{label}");
        }
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert!(plot(vec![]).to_svg().unwrap().ends_with("</svg>"));
        let bad = HistogramPlot { bins: 0, ..plot(vec![]) };
        assert!(bad.to_svg().is_err() && bad.to_png(640, 480).is_err());
    }

    #[test]
    fn png_has_the_size_and_series_colours() {
        let [a, b, c] = three_series();
        let names = ["own", "other", "a vs b: 100%"];
        let series =
            [&a, &b, &c].iter().zip(names).map(|(v, n)| Series { name: n.into(), values: v }).collect();
        let p = plot(series);
        for (w, h) in [(640, 480), (300, 200), (1400, 1000)] {
            let img = p.to_png(w, h).unwrap();
            assert_eq!((img.width(), img.height()), (w, h));
            for i in 0..3 {
                let c = Rgb(series_color(i));
                assert!(img.pixels().any(|px| *px == c), "{w} x {h}: no pixel of series {i}'s colour");
            }
            assert!(img.pixels().any(|px| *px == Rgb([0; 3])));
        }
        assert!(p.to_png(60, 40).is_err());
        assert!(p.to_png(0, 0).is_err());
    }

    #[test]
    fn saves_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let [a, ..] = three_series();
        let p = plot(vec![Series { name: "a".into(), values: &a }]);
        let svg_path = dir.path().join("h.svg");
        save_svg(&p.to_svg().unwrap(), &svg_path).unwrap();
        assert!(std::fs::read_to_string(&svg_path).unwrap().starts_with("<svg"));
        let png_path = dir.path().join("h.png");
        save_rgb_png(&p.to_png(320, 240).unwrap(), &png_path).unwrap();
        let back = image::open(&png_path).unwrap().to_rgb8();
        assert_eq!((back.width(), back.height()), (320, 240));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(save_svg("<svg/>", &dir.path().join("missing").join("x.svg")).is_err());
    }
}

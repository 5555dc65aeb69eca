//! Histograms of values on a fixed range, and plots of several histograms overlaid (e.g. distances of a
//! model's samples to its own training set, to another set, and to another model's samples), as
//! hand-written SVG or as an RGB image labeled with the built-in bitmap font.
//!
//! The y axis of a plot is the fraction of each series' (non-NaN) values that fall in a bin, so series of
//! different sizes compare; values outside the plot's range pile up in its end bins (see [`Histogram`]).

use crate::font::{self, ADVANCE, GLYPH_HEIGHT, LINE_HEIGHT};
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

/// A round tick spacing for `range` in about `target` steps: 1, 2 or 5 times a power of ten.
fn nice_step(range: f64, target: usize) -> f64 {
    let raw = range / target.max(1) as f64;
    let mag = 10f64.powi(raw.log10().floor() as i32);
    let nice = match raw / mag {
        r if r < 1.5 => 1.0,
        r if r < 3.0 => 2.0,
        r if r < 7.0 => 5.0,
        _ => 10.0,
    };
    nice * mag
}

/// The multiples of `step` in [lo, hi] (at most 101 of them).
fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let (k0, k1) = ((lo / step - 1e-9).ceil(), (hi / step + 1e-9).floor());
    if k1 < k0 {
        return Vec::new();
    }
    let n = (k1 - k0).min(100.0) as usize;
    (0..=n).map(|i| (k0 + i as f64) * step + 0.0).collect()
}

/// Tick label of `v` on an axis with spacing `step`: as many decimals as the step needs, or
/// exponent notation for very large values and very small steps.
fn format_tick(v: f64, step: f64) -> String {
    let v = v + 0.0; // no "-0"
    if v.abs() >= 1e7 || step < 1e-6 {
        return format!("{v:e}");
    }
    let decimals = (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// `s` with `& < > " '` escaped and characters XML 1.0 does not allow replaced by U+FFFD.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `#rrggbb` of a colour.
fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// SVG width in px.
const SVG_WIDTH: f64 = 720.0;
/// SVG plot-area height in px.
const SVG_PLOT_HEIGHT: f64 = 300.0;
/// SVG legend line height in px.
const SVG_LEGEND_LINE: f64 = 18.0;

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
        let top = 48.0 + SVG_LEGEND_LINE * self.series.len() as f64 + 8.0;
        let f = Frame {
            left: 80.0,
            right: SVG_WIDTH - 24.0,
            top,
            bottom: top + SVG_PLOT_HEIGHT,
            lo: self.lo,
            hi: self.hi,
            y_top: p.y_top,
        };
        let height = f.bottom + 60.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{SVG_WIDTH}" height="{height}" viewBox="0 0 {SVG_WIDTH} {height}" font-family="sans-serif">"#
        );
        let _ = writeln!(s, r#"<rect x="0" y="0" width="{SVG_WIDTH}" height="{height}" fill="white"/>"#);
        self.svg_axes(&mut s, &f, &p);
        self.svg_series(&mut s, &f, &p);
        self.svg_text(&mut s, &f, &p);
        s.push_str("</svg>");
        Ok(s)
    }

    /// Grid lines, axes, ticks and tick labels.
    fn svg_axes(&self, s: &mut String, f: &Frame, p: &Prepared) {
        for v in ticks(0.0, p.y_top, p.y_step) {
            let y = f.y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{:.2}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="#e0e0e0"/>"##,
                f.left, f.right
            );
            let _ = writeln!(
                s,
                r#"<line x1="{:.2}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="black"/>"#,
                f.left - 5.0,
                f.left
            );
            let label = format_tick(v, p.y_step);
            let (x, ty) = (f.left - 8.0, y + 4.0);
            let _ = writeln!(
                s,
                r#"<text x="{x:.2}" y="{ty:.2}" font-size="12" text-anchor="end">{label}</text>"#
            );
        }
        self.svg_x_ticks(s, f);
        let (l, r, t, b) = (f.left, f.right, f.top, f.bottom);
        let _ = writeln!(
            s,
            r#"<polyline points="{l:.2},{t:.2} {l:.2},{b:.2} {r:.2},{b:.2}" fill="none" stroke="black"/>"#
        );
    }

    /// Ticks and tick labels of the x axis, at round values in [lo, hi].
    fn svg_x_ticks(&self, s: &mut String, f: &Frame) {
        let step = nice_step(self.hi - self.lo, 8);
        for v in ticks(self.lo, self.hi, step) {
            let x = f.x(v);
            let (y0, y1, ty) = (f.bottom, f.bottom + 5.0, f.bottom + 20.0);
            let _ =
                writeln!(s, r#"<line x1="{x:.2}" y1="{y0:.2}" x2="{x:.2}" y2="{y1:.2}" stroke="black"/>"#);
            let label = format_tick(v, step);
            let _ = writeln!(
                s,
                r#"<text x="{x:.2}" y="{ty:.2}" font-size="12" text-anchor="middle">{label}</text>"#
            );
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
        let title = xml_escape(&self.title);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="28" font-size="16" text-anchor="middle">{title}</text>"#,
            SVG_WIDTH / 2.0
        );
        let _ = writeln!(s, r#"<g class="legend" font-size="12">"#);
        for i in 0..self.series.len() {
            let (c, y) = (hex(series_color(i)), 48.0 + SVG_LEGEND_LINE * i as f64);
            let text = xml_escape(&self.legend_text(p, i));
            let _ = writeln!(
                s,
                r#"<rect x="{}" y="{y}" width="14" height="10" fill="{c}" fill-opacity="0.5" stroke="{c}"/><text x="{}" y="{}">{text}</text>"#,
                f.left,
                f.left + 20.0,
                y + 10.0
            );
        }
        s.push_str("</g>\n");
        let (cx, cy) = ((f.left + f.right) / 2.0, (f.top + f.bottom) / 2.0);
        let x_label = xml_escape(&self.x_label);
        let _ = writeln!(
            s,
            r#"<text x="{cx:.2}" y="{:.2}" font-size="13" text-anchor="middle">{x_label}</text>"#,
            f.bottom + 46.0
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(24 {cy:.2}) rotate(-90)" font-size="13" text-anchor="middle">{Y_LABEL}</text>"#
        );
    }

    /// The plot drawn into a `width` x `height` RGB image: the same elements as [`Self::to_svg`], text in
    /// the bitmap font (scaled up for images of 1280 x 960 and more). Errors as [`Histogram::new`], and if
    /// the image is too small to leave a plot area of at least 16 x 16 pixels.
    pub fn to_png(&self, width: u32, height: u32) -> Result<RgbImage> {
        let p = self.prepare()?;
        let ts = (width.min(height.saturating_mul(4) / 3) / 640).max(1);
        let f = self.png_frame(width, height, ts, &p)?;
        let mut img = RgbImage::from_pixel(width, height, Rgb([255; 3]));
        for v in ticks(0.0, p.y_top, p.y_step) {
            let y = f.y(v).round() as i64;
            rect(&mut img, (f.left as i64, y), (f.right as i64, y + 1), |px| *px = Rgb([225; 3]));
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

    /// Plot area of a `width` x `height` image at text scale `ts`: room on the left for the y label and
    /// tick labels, above for the title and legend, below for the x tick labels and the x label.
    fn png_frame(&self, width: u32, height: u32, ts: u32, p: &Prepared) -> Result<Frame> {
        let (m, line, tick) = (4 * ts, LINE_HEIGHT * ts, 3 * ts);
        let y_labels = ticks(0.0, p.y_top, p.y_step).into_iter().map(|v| format_tick(v, p.y_step));
        let y_label_w = y_labels.map(|l| font::text_width(&l, ts)).max().unwrap_or(0);
        let left = m + GLYPH_HEIGHT * ts + m + y_label_w + 2 * ts + tick;
        let right = width.saturating_sub(m + 3 * ADVANCE * ts);
        let top = m + line + m + self.series.len() as u32 * (line + 2 * ts) + m;
        let bottom = height.saturating_sub(m + line + m + line + tick + 2 * ts);
        if right < left + 16 || bottom < top + 16 {
            return Err(Error::Invalid(format!(
                "a {width} x {height} image is too small for this plot ({} series)",
                self.series.len()
            )));
        }
        let [left, right, top, bottom] = [left, right, top, bottom].map(f64::from);
        Ok(Frame { left, right, top, bottom, lo: self.lo, hi: self.hi, y_top: p.y_top })
    }

    /// Axis lines, ticks and tick labels.
    fn png_axes(&self, img: &mut RgbImage, f: &Frame, p: &Prepared, ts: u32) {
        let black = Rgb([0; 3]);
        let (l, r, t, b) = (f.left as i64, f.right as i64, f.top as i64, f.bottom as i64);
        let tick = i64::from(3 * ts);
        rect(img, (l - 1, b), (r + 1, b + 1), |px| *px = black);
        rect(img, (l - 1, t), (l, b + 1), |px| *px = black);
        for v in ticks(0.0, p.y_top, p.y_step) {
            let y = f.y(v).round() as i64;
            rect(img, (l - 1 - tick, y), (l - 1, y + 1), |px| *px = black);
            let label = format_tick(v, p.y_step);
            let x = l - 1 - tick - i64::from(2 * ts + font::text_width(&label, ts));
            font::draw_text_on(img, x, y - i64::from(3 * ts), &label, ts, black);
        }
        let step = nice_step(self.hi - self.lo, ((f.right - f.left) / f64::from(10 * ADVANCE * ts)) as usize);
        for v in ticks(self.lo, self.hi, step) {
            let x = f.x(v).round() as i64;
            rect(img, (x, b + 1), (x + 1, b + 1 + tick), |px| *px = black);
            let label = format_tick(v, step);
            let lx = x - i64::from(font::text_width(&label, ts) / 2);
            font::draw_text_on(img, lx, b + 1 + tick + i64::from(2 * ts), &label, ts, black);
        }
    }

    /// Title, legend (a colour swatch and the legend text per series) and axis labels.
    fn png_text(&self, img: &mut RgbImage, f: &Frame, p: &Prepared, ts: u32) {
        let black = Rgb([0; 3]);
        let (m, line) = (i64::from(4 * ts), i64::from(LINE_HEIGHT * ts));
        let centred = |s: &str, c: f64| c as i64 - i64::from(font::text_width(s, ts) / 2);
        font::draw_text_on(
            img,
            centred(&self.title, f64::from(img.width()) / 2.0),
            m,
            &self.title,
            ts,
            black,
        );
        for i in 0..self.series.len() {
            let (x, y) = (f.left as i64, 2 * m + line + i as i64 * (line + 2 * i64::from(ts)));
            let side = i64::from(GLYPH_HEIGHT * ts);
            rect(img, (x, y), (x + side, y + side), |px| *px = Rgb(series_color(i)));
            font::draw_text_on(img, x + side + 3 * i64::from(ts), y, &self.legend_text(p, i), ts, black);
        }
        let x_label_y = i64::from(img.height()) - m - line;
        font::draw_text_on(
            img,
            centred(&self.x_label, (f.left + f.right) / 2.0),
            x_label_y,
            &self.x_label,
            ts,
            black,
        );
        let y_mid = ((f.top + f.bottom) / 2.0) as i64 + i64::from(font::text_width(Y_LABEL, ts) / 2);
        font::draw_text_vertical(img, m, y_mid, Y_LABEL, ts, black);
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

/// Apply `op` to each pixel of `img` in the rectangle [x0, x1) x [y0, y1) (clipped to the image).
fn rect(img: &mut RgbImage, (x0, y0): (i64, i64), (x1, y1): (i64, i64), mut op: impl FnMut(&mut Rgb<u8>)) {
    let clip = |a: i64, limit: u32| a.clamp(0, i64::from(limit)) as u32;
    let (w, h) = (img.width(), img.height());
    for y in clip(y0, h)..clip(y1, h) {
        for x in clip(x0, w)..clip(x1, w) {
            op(img.get_pixel_mut(x, y));
        }
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

//! Histograms of values on a fixed range, and plots of several histograms overlaid (e.g. distances of a
//! model's samples to its own training set, to another set, and to another model's samples), as
//! hand-written SVG or as an RGB image with text in the embedded DejaVu Sans, both drawn by one routine
//! with the layout of [`crate::plot`] (the legend in a box right of the plot area, or in rows above it).
//!
//! The y axis of a plot is the fraction of each series' (non-NaN) values that fall in a bin, so series of
//! different sizes compare; values outside the plot's range pile up in its end bins (see [`Histogram`]).

use crate::canvas::{render_png, render_svg, Canvas, Fill, Stroke};
use crate::plot::{format_tick, nice_step, ticks, Layout, Rect, Spec, SVG_HEIGHT, SVG_WIDTH};
use crate::{Error, Result};
use image::RgbImage;
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

    /// The layout of the plot in a `width` x `height` output, its frame, the y ticks (position, label)
    /// and the x ticks (as many as fit).
    fn layout(&self, width: f64, height: f64, p: &Prepared) -> Result<(Layout, Frame, Labelled, Labelled)> {
        let spec = Spec {
            title: &self.title,
            x_label: &self.x_label,
            y_label: Y_LABEL,
            legend: (0..self.series.len()).map(|i| self.legend_text(p, i)).collect(),
            vlines: Vec::new(),
        };
        let y_values = ticks(0.0, p.y_top, p.y_step);
        let lay = Layout::new(width, height, &spec, |_| {
            y_values.iter().map(|&v| format_tick(v, p.y_step)).collect()
        })?;
        let f = Frame {
            left: lay.left,
            right: lay.right,
            top: lay.top,
            bottom: lay.bottom,
            lo: self.lo,
            hi: self.hi,
            y_top: p.y_top,
        };
        let yt = y_values.iter().map(|&v| (f.y(v), format_tick(v, p.y_step))).collect();
        let x_ticks = |target| {
            let step = nice_step(self.hi - self.lo, target);
            ticks(self.lo, self.hi, step)
                .into_iter()
                .map(|v| (f.x(v), format_tick(v, step)))
                .collect::<Vec<_>>()
        };
        let xt = (2..=lay.x_target())
            .rev()
            .map(x_ticks)
            .find(|t| lay.x_labels_fit(t))
            .unwrap_or_else(|| x_ticks(2));
        Ok((lay, f, yt, xt))
    }

    /// Draw the plot onto `c`, a `width` x `height` output: grid, series, axes, then the title, legend
    /// and labels.
    fn draw(&self, c: &mut dyn Canvas, width: f64, height: f64) -> Result<()> {
        let p = self.prepare()?;
        let (lay, f, yt, xt) = self.layout(width, height, &p)?;
        lay.draw_grid(c, &[], &yt.iter().map(|t| t.0).collect::<Vec<_>>());
        let s = lay.style.s;
        for (i, fracs) in p.fracs.iter().enumerate() {
            let color = series_color(i);
            let fill = Fill { color, opacity: FILL_OPACITY };
            c.path(
                &[f.steps(fracs)],
                true,
                Some(fill),
                Some(Stroke::solid(color, lay.style.line_width())),
                &self.series[i].name,
            );
        }
        lay.draw_axes(c, &xt, &[], &yt, &[]);
        lay.draw_text(c, |c: &mut dyn Canvas, i: usize, ((x0, y0), (x1, y1)): Rect| {
            let color = series_color(i);
            let (cx, cy, hw, hh) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0, 7.0 * s, 5.0 * s);
            let fill = Fill { color, opacity: 0.5 };
            c.rect((cx - hw, cy - hh), (cx + hw, cy + hh), Some(fill), Some(Stroke::solid(color, s)));
        });
        Ok(())
    }

    /// The plot as a standalone SVG 1.1 document, 720 x 480 px: see [`Self::to_svg_sized`].
    pub fn to_svg(&self) -> Result<String> {
        self.to_svg_sized(SVG_WIDTH as u32, SVG_HEIGHT as u32)
    }

    /// The plot as a standalone SVG 1.1 document of `width` x `height` px, laid out and drawn as
    /// [`Self::to_png`] of the same size: title, legend (one entry per series with its count) in a box
    /// right of the plot area or in rows above it, axes with round ticks, each series as a `<path>` step
    /// outline filled translucently in its colour (its name as a `<title>`), and the axis labels. Text
    /// is XML-escaped and asks for DejaVu Sans. Errors as [`Histogram::new`], and if the document is too
    /// small to leave a plot area of at least 16 x 16 px.
    pub fn to_svg_sized(&self, width: u32, height: u32) -> Result<String> {
        render_svg(width, height, |c, w, h| self.draw(c, w, h))
    }

    /// The plot drawn into a `width` x `height` RGB image: the items of [`Self::to_svg_sized`], text in
    /// the embedded DejaVu Sans (anti-aliased; sizes grow with the image), outlines in the series' exact
    /// colours. Errors as [`Histogram::new`], and if the image is too small to leave a plot area of at
    /// least 16 x 16 pixels.
    pub fn to_png(&self, width: u32, height: u32) -> Result<RgbImage> {
        render_png(width, height, |c, w, h| self.draw(c, w, h))
    }
}

/// Ticks in output coordinates: the position and label of each.
type Labelled = Vec<(f64, String)>;

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
    use crate::canvas::hex;
    use image::Rgb;

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

    #[test]
    fn svg_and_png_draw_the_same_items_and_the_legend_stays_outside() {
        use crate::canvas::{svg_texts, PngCanvas, Recorder, SvgCanvas};
        let [a, b, c] = three_series();
        let named = |k: usize| {
            plot(vec![
                Series { name: format!("A vs own training set {k}"), values: &a },
                Series { name: format!("A vs S_B {k}"), values: &b },
                Series { name: format!("corr(x_A, x_B) {k}"), values: &c },
            ])
        };
        let p = named(1);
        for (w, h) in [(800, 500), (720, 480), (360, 300)] {
            let (wf, hf) = (f64::from(w), f64::from(h));
            let mut svg = Recorder::new(SvgCanvas::new(wf, hf));
            let mut png = Recorder::new(PngCanvas::new(w, h));
            p.draw(&mut svg, wf, hf).unwrap();
            p.draw(&mut png, wf, hf).unwrap();
            assert_eq!(svg.items, png.items, "{w} x {h}");
            let texts: Vec<String> = png.texts().iter().map(|t| t.text.clone()).collect();
            assert_eq!(svg_texts(&svg.inner.finish()), texts);
            for want in ["Distances", "L2 distance", Y_LABEL, "A vs S_B 1 (n=50)", "corr(x_A, x_B) 1 (n=400)"]
            {
                assert!(texts.iter().any(|t| t == want), "{w} x {h}: {want:?} not in {texts:?}");
            }
            // Names that differ in one digit change only pixels in the legend box, none in the plot area.
            let pre = p.prepare().unwrap();
            let (lay, ..) = p.layout(wf, hf, &pre).unwrap();
            let ((x0, y0), (x1, y1)) = lay.legend.clone().unwrap().frame;
            assert!(x0 > lay.right || y1 < lay.top, "{w} x {h}");
            let (ia, ib) = (p.to_png(w, h).unwrap(), named(2).to_png(w, h).unwrap());
            let mut changed = 0;
            for (x, y, px) in ia.enumerate_pixels() {
                if px != ib.get_pixel(x, y) {
                    changed += 1;
                    let (x, y) = (f64::from(x), f64::from(y));
                    assert!(x >= x0 - 1.0 && x <= x1 + 1.0 && y >= y0 - 1.0 && y <= y1 + 1.0, "({x}, {y})");
                    assert!(!(x >= lay.left && x <= lay.right && y >= lay.top && y <= lay.bottom));
                }
            }
            assert!(changed > 0);
        }
    }

    #[test]
    #[ignore = "writes figures to /tmp/plotcheck for looking at"]
    fn writes_check_figures() {
        let dir = std::path::Path::new("/tmp/plotcheck");
        std::fs::create_dir_all(dir).unwrap();
        let [a, b, c] = three_series();
        let p = HistogramPlot {
            title: "Correlation of each sample with its nearest neighbour".into(),
            x_label: "Pearson correlation ρ".into(),
            series: vec![
                Series { name: "A vs own training set S_A".into(), values: &a },
                Series { name: "A vs other set S_B".into(), values: &b },
                Series { name: "corr(x_A, x_B)".into(), values: &c },
            ],
            lo: 0.0,
            hi: 2.0,
            bins: 50,
        };
        save_svg(&p.to_svg_sized(800, 500).unwrap(), &dir.join("histogram-800x500.svg")).unwrap();
        save_rgb_png(&p.to_png(800, 500).unwrap(), &dir.join("histogram-800x500.png")).unwrap();
        save_rgb_png(&p.to_png(400, 300).unwrap(), &dir.join("histogram-400x300.png")).unwrap();
        // A labeled table as `memgen compare` draws it.
        let im: Vec<Vec<f32>> = (0..4)
            .map(|k| (0..256).map(|i| ((i % 16 + i / 16 + 4 * k) % 17) as f32 / 16.0).collect())
            .collect();
        let header = ["sample A", "NN in S_A", "sample B", "NN in S_B"].map(String::from).to_vec();
        let labels = ["#0", "0.963", "AB −0.052 σ", "a label far too long for its column"];
        let rows = (0..3)
            .map(|_| (0..4).map(|c| crate::Cell { image: &im[c], label: labels[c].into() }).collect())
            .collect();
        let table = crate::LabeledTable { header, rows, height: 16, width: 16 };
        let cfg = crate::TableConfig { scale: 4, ..Default::default() };
        crate::save_png(&table.render(&cfg).unwrap(), &dir.join("table.png")).unwrap();
    }
}

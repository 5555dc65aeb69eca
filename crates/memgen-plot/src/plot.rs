//! What the plots ([`crate::histogram`], [`crate::lineplot`]) share: round ticks and their labels, XML
//! escaping, and the layout and drawing of their frame: title, legend, axes with ticks and tick labels,
//! axis labels and the labels of vertical reference lines.
//!
//! [`Layout::new`] places everything once for an output of a given size, measuring text with the
//! embedded font ([`crate::text`]), and the plots draw it through a [`Canvas`], so the SVG and the PNG
//! of a plot hold the same items at the same places. From the top: the title, the legend if it goes
//! above the plot (see below), a strip for the reference-line labels, the plot area, the x tick labels
//! and the x label; from the left: the y label (turned), the y tick labels, the plot area, and the
//! legend in its own box. The legend sits right of the plot area when its box takes at most
//! [`LEGEND_RIGHT_SHARE`] of the width, else in rows above the plot area; it never overlaps the plot
//! area, and entries that do not fit are summed up in a last line ("… and 3 more"). Text sizes and
//! spacing scale with the output ([`Style`]).

use crate::canvas::{Anchor, Canvas, Color, Fill, Stroke, Text};
use crate::text;
use crate::{Error, Result};

/// Width of the SVG documents of `to_svg()`, in px.
pub(crate) const SVG_WIDTH: f64 = 720.0;
/// Height of the SVG documents of `to_svg()`, in px.
pub(crate) const SVG_HEIGHT: f64 = 480.0;
/// Colour of the grid lines.
pub(crate) const GRID: Color = [0xe0; 3];
/// Colour of the legend box's border.
const LEGEND_BORDER: Color = [0xcc; 3];
/// Largest share of the width the legend box (and its gap) may take right of the plot area.
pub(crate) const LEGEND_RIGHT_SHARE: f64 = 0.38;
/// Most rows of reference-line labels (labels that would need more are left out).
const MAX_VLINE_ROWS: usize = 4;

/// A round tick spacing for `range` in about `target` steps: 1, 2 or 5 times a power of ten.
pub(crate) fn nice_step(range: f64, target: usize) -> f64 {
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
pub(crate) fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let (k0, k1) = ((lo / step - 1e-9).ceil(), (hi / step + 1e-9).floor());
    if k1 < k0 {
        return Vec::new();
    }
    let n = (k1 - k0).min(100.0) as usize;
    (0..=n).map(|i| (k0 + i as f64) * step + 0.0).collect()
}

/// Tick label of `v` on an axis with spacing `step`: as many decimals as the step needs, or
/// exponent notation for very large values and very small steps.
pub(crate) fn format_tick(v: f64, step: f64) -> String {
    let v = v + 0.0; // no "-0"
    if v.abs() >= 1e7 || step < 1e-6 {
        return format!("{v:e}");
    }
    let decimals = (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// `s` with `& < > " '` escaped and characters XML 1.0 does not allow replaced by U+FFFD.
pub(crate) fn xml_escape(s: &str) -> String {
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

/// Text sizes and spacing of a plot: all in px, proportional to `s`, which is 1 for a 640 x 480 plot (and
/// the 720 x 480 SVG), larger for larger outputs and at least 0.75.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Style {
    pub s: f64,
}

impl Style {
    /// The style of a `width` x `height` output.
    pub fn for_size(width: f64, height: f64) -> Style {
        let s = (width.min(height * 4.0 / 3.0) / 640.0).clamp(0.75, 4.0);
        Style { s: if s.is_finite() { s } else { 1.0 } }
    }

    pub fn title_size(&self) -> f64 {
        15.0 * self.s
    }

    pub fn label_size(&self) -> f64 {
        13.0 * self.s
    }

    pub fn tick_size(&self) -> f64 {
        12.0 * self.s
    }

    pub fn legend_size(&self) -> f64 {
        12.0 * self.s
    }

    pub fn note_size(&self) -> f64 {
        11.0 * self.s
    }

    /// Width of data lines.
    pub fn line_width(&self) -> f64 {
        1.5 * self.s
    }

    /// Width of axes, ticks and grid lines.
    pub fn thin(&self) -> f64 {
        self.s
    }

    /// Length of major ticks (minor ones are 3/5 of it).
    pub fn tick_len(&self) -> f64 {
        5.0 * self.s
    }
}

fn text_w(s: &str, size: f64) -> f64 {
    f64::from(text::text_width(s, size as f32))
}

fn ascent(size: f64) -> f64 {
    f64::from(text::ascent(size as f32))
}

fn descent(size: f64) -> f64 {
    f64::from(text::descent(size as f32))
}

fn line(size: f64) -> f64 {
    f64::from(text::line_height(size as f32))
}

fn truncate(s: &str, size: f64, max: f64) -> String {
    text::truncate(s, size as f32, max as f32)
}

/// A text item in black.
fn label(s: String, (x, y): (f64, f64), size: f64, anchor: Anchor, vertical: bool) -> Text {
    Text { text: s, x, y, size, anchor, vertical, color: [0; 3] }
}

/// What the frame of a plot shows: title, axis labels, legend entries and reference lines (their x as
/// a fraction of the x axis, 0 at its left end, and their labels).
pub(crate) struct Spec<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub legend: Vec<String>,
    pub vlines: Vec<(f64, &'a str)>,
}

/// A rectangle (x0, y0) .. (x1, y1).
pub(crate) type Rect = ((f64, f64), (f64, f64));

/// One legend entry: the series it stands for, the box of its swatch and its text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LegendEntry {
    pub series: usize,
    pub swatch: Rect,
    pub text: Text,
}

/// The legend: its box, the entries shown, and the line that counts those left out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Legend {
    pub frame: Rect,
    pub entries: Vec<LegendEntry>,
    pub more: Option<Text>,
    /// Whether the legend is right of the plot area (else above it).
    pub right: bool,
}

/// Where everything of a plot goes in an output `width` x `height` px (y downwards).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    pub width: f64,
    pub height: f64,
    pub style: Style,
    /// The plot area.
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    /// About how many y ticks to label (the tick labels measured for the left margin).
    pub y_target: usize,
    pub title: Option<Text>,
    pub x_label: Option<Text>,
    pub y_label: Option<Text>,
    pub legend: Option<Legend>,
    /// The labels of the reference lines, above the plot area.
    pub vline_labels: Vec<Text>,
}

impl Layout {
    /// Lay out a plot of `spec` in `width` x `height` px, with room on the left for the y tick labels
    /// `y_labels(target)` returns for about `target` ticks. Errors if that leaves a plot area under
    /// 16 x 16 px.
    pub fn new(
        width: f64,
        height: f64,
        spec: &Spec,
        y_labels: impl Fn(usize) -> Vec<String>,
    ) -> Result<Layout> {
        let too_small = || {
            Error::Invalid(format!(
                "a {width} x {height} image is too small for this plot ({} series)",
                spec.legend.len()
            ))
        };
        if !(width.is_finite() && height.is_finite() && width >= 16.0 && height >= 16.0) {
            return Err(too_small());
        }
        let st = Style::for_size(width, height);
        let s = st.s;
        let m = 8.0 * s;
        let (ts, ls, tick) = (st.title_size(), st.label_size(), st.tick_size());
        // Top: the title.
        let mut top = m;
        let title = (!spec.title.trim().is_empty()).then(|| {
            top = m + line(ts) + 6.0 * s;
            truncate(spec.title, ts, width - 2.0 * m)
        });
        // Bottom: tick marks and labels, the x label.
        let x_label = (!spec.x_label.trim().is_empty()).then(|| truncate(spec.x_label, ls, width - 2.0 * m));
        let bottom = height
            - m
            - x_label.as_ref().map_or(0.0, |_| line(ls) + 4.0 * s)
            - line(tick)
            - st.tick_len()
            - 3.0 * s;
        let bottom = bottom.floor();
        // Left: the y label.
        let left0 = if spec.y_label.trim().is_empty() { m } else { m + line(ls) + 6.0 * s };
        // The legend: right of the plot if it is narrow enough, else in rows above it.
        let lg = LegendMetrics::new(st);
        let widths: Vec<f64> = spec.legend.iter().map(|t| width_of_entry(t, &lg)).collect();
        let note_row = line(st.note_size()) + 2.0 * s;
        let strip_guess = if spec.vlines.is_empty() { 0.0 } else { note_row + 3.0 * s };
        let mut widest = widths.iter().fold(0.0f64, |a, &b| a.max(b));
        if (spec.legend.len() as f64) * lg.row + 2.0 * lg.pad > bottom - top - strip_guess {
            // Not all entries may fit beside the plot: leave room for the line that counts the others.
            widest = widest.max(text_w(&more_text(spec.legend.len()), st.legend_size()));
        }
        let right_box = lg.pad * 2.0 + widest;
        let legend_right = !spec.legend.is_empty() && right_box + lg.gap <= LEGEND_RIGHT_SHARE * width;
        let mut above_rows: Vec<Vec<(usize, f64)>> = Vec::new();
        if !spec.legend.is_empty() && !legend_right {
            above_rows = flow(&widths, width - 2.0 * m, lg.col_gap);
            let max_rows = ((height / 3.0 / lg.row) as usize).max(1);
            if above_rows.len() > max_rows {
                above_rows.truncate(max_rows);
            }
        }
        // (Below the rows, room for the top y tick label, which reaches above the plot area.)
        let above_h = if above_rows.is_empty() {
            0.0
        } else {
            above_rows.len() as f64 * lg.row + line(tick) / 2.0 + 3.0 * s
        };
        // The y tick labels, for a plot area about as high as it will be.
        let est_h = bottom - top - above_h - strip_guess;
        let y_target = ((est_h / (40.0 * s)).floor().max(0.0) as usize).clamp(2, 6);
        let y_w = y_labels(y_target).iter().fold(0.0f64, |a, l| a.max(text_w(l, tick)));
        let left = (left0 + y_w + 3.0 * s + st.tick_len()).ceil();
        let right = if legend_right { width - m - right_box - lg.gap } else { width - (20.0 * s).max(m) };
        let right = right.floor();
        if right < left + 16.0 {
            return Err(too_small());
        }
        // The reference-line labels, in rows above the plot area, centred on their lines where they fit.
        let limit_r = if legend_right { right } else { width - m };
        let mut rows: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut placed = Vec::new();
        for &(frac, text) in &spec.vlines {
            let ns = st.note_size();
            let t = truncate(text, ns, limit_r - left);
            let w = text_w(&t, ns);
            if t.is_empty() || !frac.is_finite() {
                continue;
            }
            let x = left + (right - left) * frac;
            let cx = x.clamp(left + w / 2.0, (limit_r - w / 2.0).max(left + w / 2.0));
            let span = (cx - w / 2.0 - 3.0 * s, cx + w / 2.0 + 3.0 * s);
            let free = |row: &Vec<(f64, f64)>| row.iter().all(|&(a, b)| span.1 <= a || b <= span.0);
            let r = match rows.iter().position(free) {
                Some(r) => r,
                None if rows.len() < MAX_VLINE_ROWS => {
                    rows.push(Vec::new());
                    rows.len() - 1
                }
                None => continue,
            };
            rows[r].push(span);
            placed.push((t, cx, r));
        }
        let strip_h = if rows.is_empty() { 0.0 } else { rows.len() as f64 * note_row + 3.0 * s };
        let legend_top = top;
        let top = (top + above_h + strip_h).ceil();
        if bottom < top + 16.0 {
            return Err(too_small());
        }
        let vline_labels = placed
            .into_iter()
            .map(|(t, cx, r)| {
                let y = top - 3.0 * s - descent(st.note_size()) - r as f64 * note_row;
                Text { color: VLINE_LABEL, ..label(t, (cx, y), st.note_size(), Anchor::Middle, false) }
            })
            .collect();
        let legend = if legend_right {
            Some(lg.right_box(spec, (right + lg.gap, top), widest, bottom))
        } else if above_rows.is_empty() {
            None
        } else {
            Some(lg.rows_above(spec, &above_rows, (m, legend_top), width - 2.0 * m))
        };
        // Title and x label centred on the plot area (kept in the image), the y label turned.
        let centre = |t: &str, size: f64| {
            let half = text_w(t, size) / 2.0;
            ((left + right) / 2.0).clamp(m + half, (width - m - half).max(m + half))
        };
        let title = title.map(|t| {
            let x = centre(&t, ts);
            label(t, (x, m + ascent(ts)), ts, Anchor::Middle, false)
        });
        let x_label = x_label.map(|t| {
            let x = centre(&t, ls);
            label(t, (x, height - m - descent(ls)), ls, Anchor::Middle, false)
        });
        let y_label = (!spec.y_label.trim().is_empty()).then(|| {
            let t = truncate(spec.y_label, ls, bottom - top + line(tick));
            label(t, (m + ascent(ls), (top + bottom) / 2.0), ls, Anchor::Middle, true)
        });
        Ok(Layout {
            width,
            height,
            style: st,
            left,
            right,
            top,
            bottom,
            y_target,
            title,
            x_label,
            y_label,
            legend,
            vline_labels,
        })
    }

    /// About how many x ticks fit at most (the plots take fewer if their labels would overlap).
    pub fn x_target(&self) -> usize {
        (((self.right - self.left) / (50.0 * self.style.s)) as usize).clamp(2, 10)
    }

    /// Whether the x tick labels `ticks` (x of each tick and its label) leave a gap between neighbours.
    pub fn x_labels_fit(&self, ticks: &[(f64, String)]) -> bool {
        let size = self.style.tick_size();
        ticks.windows(2).all(|w| {
            let need = (text_w(&w[0].1, size) + text_w(&w[1].1, size)) / 2.0 + 6.0 * self.style.s;
            (w[1].0 - w[0].0).abs() >= need
        })
    }

    /// Grid lines across the plot area at the x positions `xs` and the y positions `ys`.
    pub fn draw_grid(&self, c: &mut dyn Canvas, xs: &[f64], ys: &[f64]) {
        let st = Stroke::solid(GRID, self.style.thin());
        for &x in xs {
            c.line(&[(x, self.top), (x, self.bottom)], st);
        }
        for &y in ys {
            c.line(&[(self.left, y), (self.right, y)], st);
        }
    }

    /// Vertical reference lines, dashed across the plot area, at the x positions `xs`.
    pub fn draw_vlines(&self, c: &mut dyn Canvas, xs: &[f64]) {
        let s = self.style.s;
        let st = Stroke { color: VLINE_COLOR, width: self.style.thin(), dash: Some((4.0 * s, 3.0 * s)) };
        for &x in xs {
            c.line(&[(x, self.top), (x, self.bottom)], st);
        }
    }

    /// The axis lines (left and bottom), tick marks (minor ones shorter) and tick labels: `xt` and `yt`
    /// are the (position, label) of the major ticks, `x_minor` and `y_minor` the positions of the minor.
    pub fn draw_axes(
        &self,
        c: &mut dyn Canvas,
        xt: &[(f64, String)],
        x_minor: &[f64],
        yt: &[(f64, String)],
        y_minor: &[f64],
    ) {
        let st = self.style;
        let black = Stroke::solid([0; 3], st.thin());
        let (l, b, len) = (self.left, self.bottom, st.tick_len());
        for &x in x_minor {
            c.line(&[(x, b), (x, b + 0.6 * len)], black);
        }
        for &y in y_minor {
            c.line(&[(l - 0.6 * len, y), (l, y)], black);
        }
        for (x, _) in xt {
            c.line(&[(*x, b), (*x, b + len)], black);
        }
        for (y, _) in yt {
            c.line(&[(l - len, *y), (l, *y)], black);
        }
        c.line(&[(l, self.top), (l, b), (self.right, b)], black);
        let size = st.tick_size();
        for (y, t) in yt {
            let at = (l - len - 3.0 * st.s, y + 0.36 * size);
            c.text(&label(t.clone(), at, size, Anchor::End, false));
        }
        for (x, t) in xt {
            let at = (*x, b + len + 3.0 * st.s + ascent(size));
            c.text(&label(t.clone(), at, size, Anchor::Middle, false));
        }
    }

    /// The title, the legend (its box, a swatch per entry drawn by `swatch(canvas, series, box)`, and
    /// the entries' text), the axis labels and the reference-line labels.
    pub fn draw_text(&self, c: &mut dyn Canvas, mut swatch: impl FnMut(&mut dyn Canvas, usize, Rect)) {
        if let Some(t) = &self.title {
            c.text(t);
        }
        if let Some(lg) = &self.legend {
            c.begin_group("legend");
            let fill = Fill { color: [255; 3], opacity: 1.0 };
            c.rect(lg.frame.0, lg.frame.1, Some(fill), Some(Stroke::solid(LEGEND_BORDER, self.style.thin())));
            for e in &lg.entries {
                swatch(c, e.series, e.swatch);
                c.text(&e.text);
            }
            if let Some(t) = &lg.more {
                c.text(t);
            }
            c.end_group();
        }
        for t in self.x_label.iter().chain(&self.y_label).chain(&self.vline_labels) {
            c.text(t);
        }
    }
}

/// Colour of the vertical reference lines (not one of the palette's).
pub(crate) const VLINE_COLOR: Color = [0x44; 3];
/// Colour of their labels.
const VLINE_LABEL: Color = [0x33; 3];

/// The legend line that stands for `k` entries left out.
fn more_text(k: usize) -> String {
    format!("… and {k} more")
}

/// Sizes of the legend's parts.
struct LegendMetrics {
    style: Style,
    /// Height of a row.
    row: f64,
    /// Padding inside the box.
    pad: f64,
    /// Width of a swatch, and the gap between it and the text.
    swatch: f64,
    text_gap: f64,
    /// Gap between the plot area and the box, and between entries in a row above the plot.
    gap: f64,
    col_gap: f64,
}

/// The width of the legend entry `t`: swatch, gap and text.
fn width_of_entry(t: &str, lg: &LegendMetrics) -> f64 {
    lg.swatch + lg.text_gap + text_w(t, lg.style.legend_size())
}

/// Entries of `widths` in rows at most `avail` wide (`gap` between entries), in order: per row the
/// index and width of each entry (an entry wider than `avail` gets a row of its own, at width `avail`).
fn flow(widths: &[f64], avail: f64, gap: f64) -> Vec<Vec<(usize, f64)>> {
    let mut rows: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut used = f64::INFINITY;
    for (i, &w) in widths.iter().enumerate() {
        let w = w.min(avail);
        if used + gap + w > avail {
            rows.push(Vec::new());
            used = -gap;
        }
        used += gap + w;
        rows.last_mut().expect("a row was pushed").push((i, w));
    }
    rows
}

impl LegendMetrics {
    fn new(style: Style) -> LegendMetrics {
        let s = style.s;
        LegendMetrics {
            style,
            row: 18.0 * s,
            pad: 6.0 * s,
            swatch: 22.0 * s,
            text_gap: 6.0 * s,
            gap: 12.0 * s,
            col_gap: 16.0 * s,
        }
    }

    /// The entry of series `i` with its row's top-left corner at (x, y), its text cut to `max_w` px.
    fn entry(&self, spec: &Spec, i: usize, (x, y): (f64, f64), max_w: f64) -> LegendEntry {
        let size = self.style.legend_size();
        let cy = y + self.row / 2.0;
        let swatch = ((x, cy - 5.0 * self.style.s), (x + self.swatch, cy + 5.0 * self.style.s));
        let t = truncate(&spec.legend[i], size, max_w - self.swatch - self.text_gap);
        let at = (x + self.swatch + self.text_gap, cy + 0.36 * size);
        LegendEntry { series: i, swatch, text: label(t, at, size, Anchor::Start, false) }
    }

    /// The legend in a box with its top-left corner at `at`, `widest` px of entry wide, reaching down
    /// at most to `bottom`: as many entries as fit, the last row counting the rest if some do not.
    fn right_box(&self, spec: &Spec, (x0, y0): (f64, f64), widest: f64, bottom: f64) -> Legend {
        let n = spec.legend.len();
        let fit = (((bottom - y0 - 2.0 * self.pad) / self.row).floor().max(0.0) as usize).max(1);
        let shown = if n <= fit { n } else { fit - 1 };
        let rows = shown + usize::from(shown < n);
        let mut entries = Vec::new();
        for i in 0..shown {
            let y = y0 + self.pad + i as f64 * self.row;
            entries.push(self.entry(spec, i, (x0 + self.pad, y), widest));
        }
        let size = self.style.legend_size();
        let more = (shown < n).then(|| {
            let y = y0 + self.pad + shown as f64 * self.row + self.row / 2.0 + 0.36 * size;
            let t = truncate(&more_text(n - shown), size, widest);
            label(t, (x0 + self.pad, y), size, Anchor::Start, false)
        });
        let frame = ((x0, y0), (x0 + 2.0 * self.pad + widest, y0 + 2.0 * self.pad + rows as f64 * self.row));
        Legend { frame, entries, more, right: true }
    }

    /// The legend in `rows` above the plot area (as [`flow`] placed them), from `at`, `avail` px wide;
    /// the entries of rows left out are counted at the end of the last row.
    fn rows_above(
        &self,
        spec: &Spec,
        rows: &[Vec<(usize, f64)>],
        (x0, y0): (f64, f64),
        avail: f64,
    ) -> Legend {
        let mut entries = Vec::new();
        let mut x_end = x0;
        for (r, row) in rows.iter().enumerate() {
            let mut x = x0;
            let y = y0 + r as f64 * self.row;
            for &(i, w) in row {
                entries.push(self.entry(spec, i, (x, y), w));
                x += w + self.col_gap;
                x_end = x_end.max(x - self.col_gap);
            }
        }
        let n = spec.legend.len();
        let size = self.style.legend_size();
        let more = (entries.len() < n).then(|| {
            let t = more_text(n - entries.len());
            let y = y0 + (rows.len() as f64 - 1.0) * self.row + self.row / 2.0 + 0.36 * size;
            let used = rows.last().map_or(0.0, |r| r.iter().map(|e| e.1 + self.col_gap).sum::<f64>());
            let x = (x0 + used).min(x0 + avail - text_w(&t, size));
            label(t, (x.max(x0), y), size, Anchor::Start, false)
        });
        let frame = ((x0 - 0.5 * self.pad, y0), (x_end + 0.5 * self.pad, y0 + rows.len() as f64 * self.row));
        Legend { frame, entries, more, right: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_xml() {
        assert_eq!(xml_escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
        assert_eq!(xml_escape("x\u{1}y\u{FFFF}"), "x\u{FFFD}y\u{FFFD}");
        assert_eq!(crate::canvas::hex([0x1f, 0x77, 0xb4]), "#1f77b4");
    }

    fn spec<'a>(legend: Vec<String>, vlines: Vec<(f64, &'a str)>) -> Spec<'a> {
        Spec { title: "A title", x_label: "x", y_label: "y", legend, vlines }
    }

    fn overlap(a: Rect, b: Rect) -> bool {
        a.0 .0 < b.1 .0 && b.0 .0 < a.1 .0 && a.0 .1 < b.1 .1 && b.0 .1 < a.1 .1
    }

    #[test]
    fn layout_leaves_room_or_errors() {
        let labels = |_| vec!["0.0".to_string(), "100.5".to_string()];
        let l = Layout::new(640.0, 480.0, &spec(vec!["a".into(), "b".into()], vec![]), labels).unwrap();
        assert!(l.left > 30.0 && l.right < 640.0 && l.top > 0.0 && l.bottom < 480.0);
        assert!(l.left + 16.0 <= l.right && l.top + 16.0 <= l.bottom);
        assert_eq!(l.style, Style { s: 1.0 });
        assert!(Layout::new(40.0, 30.0, &spec(vec![], vec![]), labels).is_err());
        assert!(Layout::new(0.0, 0.0, &spec(vec![], vec![]), labels).is_err());
        assert!(Layout::new(f64::NAN, 480.0, &spec(vec![], vec![]), labels).is_err());
        let wide = |_| vec!["x".repeat(1000)];
        assert!(Layout::new(640.0, 480.0, &spec(vec![], vec![]), wide).is_err());
        assert_eq!(Style::for_size(1400.0, 1000.0).s, 1000.0 * 4.0 / 3.0 / 640.0);
        assert_eq!(Style::for_size(0.0, 0.0).s, 0.75);
    }

    #[test]
    fn legends_stay_out_of_the_plot_area() {
        let labels = |_| vec!["0.5".to_string()];
        let area = |l: &Layout| ((l.left, l.top), (l.right, l.bottom));
        // Short entries: a box on the right, below the labels of the reference lines.
        let names: Vec<String> = (0..7).map(|i| format!("series {i}")).collect();
        let l = Layout::new(800.0, 560.0, &spec(names.clone(), vec![(0.99, "N = d")]), labels).unwrap();
        let lg = l.legend.as_ref().unwrap();
        assert!(lg.right && lg.entries.len() == 7 && lg.more.is_none());
        assert!(!overlap(lg.frame, area(&l)) && lg.frame.0 .0 > l.right && lg.frame.1 .0 <= 800.0);
        for e in &lg.entries {
            assert!(e.swatch.0 .0 >= lg.frame.0 .0 && e.swatch.1 .1 <= lg.frame.1 .1);
            let end = e.text.x + text_w(&e.text.text, e.text.size);
            assert!(end <= lg.frame.1 .0 + 0.01, "{e:?}");
        }
        // The reference-line label is above the plot area, under the title, and left of the legend.
        let v = &l.vline_labels[0];
        let t = l.title.as_ref().unwrap();
        assert!(v.y <= l.top && v.y - ascent(v.size) >= t.y + descent(t.size));
        assert!(v.x + text_w(&v.text, v.size) / 2.0 <= l.right + 0.01);
        // Long entries: rows above the plot area.
        let long: Vec<String> =
            (0..3).map(|i| format!("a rather long legend entry number {i} of three")).collect();
        let l =
            Layout::new(640.0, 480.0, &spec(long, vec![(0.5, "N = d"), (0.52, "N = 2d")]), labels).unwrap();
        let lg = l.legend.as_ref().unwrap();
        assert!(!lg.right && lg.entries.len() == 3 && lg.frame.1 .1 <= l.top);
        assert!(!overlap(lg.frame, area(&l)));
        // The two reference-line labels are close: they are set in two rows, both below the legend.
        let (a, b) = (&l.vline_labels[0], &l.vline_labels[1]);
        assert!(a.y != b.y && a.y.min(b.y) - ascent(a.size) >= lg.frame.1 .1 - 0.01, "{a:?} {b:?}");
        // Too many entries: the box ends at the plot area's bottom and counts the rest.
        let many: Vec<String> = (0..60).map(|i| format!("s{i}")).collect();
        let l = Layout::new(640.0, 480.0, &spec(many, vec![]), labels).unwrap();
        let lg = l.legend.as_ref().unwrap();
        assert!(lg.frame.1 .1 <= l.bottom && lg.entries.len() < 59);
        assert_eq!(lg.more.as_ref().unwrap().text, format!("… and {} more", 60 - lg.entries.len()));
    }
}

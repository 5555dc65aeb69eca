//! What the plots ([`crate::histogram`], [`crate::lineplot`]) share: round ticks and their labels, XML
//! escaping, and the common frame of their SVG and PNG renderings (title, legend, axes, tick marks and
//! axis labels at the same places).
//!
//! An SVG plot is [`SVG_WIDTH`] px wide: the title, then one legend row per entry, then a plot area
//! [`SVG_PLOT_HEIGHT`] px high, then the x tick labels and the x label. A PNG plot has the same layout,
//! scaled to the image, its text in the bitmap font at scale [`text_scale`].

use crate::font::{self, ADVANCE, GLYPH_HEIGHT, LINE_HEIGHT};
use crate::{Error, Result};
use image::{Rgb, RgbImage};
use std::fmt::Write as _;

/// SVG width in px.
pub(crate) const SVG_WIDTH: f64 = 720.0;
/// SVG plot-area height in px.
pub(crate) const SVG_PLOT_HEIGHT: f64 = 300.0;
/// SVG legend line height in px.
pub(crate) const SVG_LEGEND_LINE: f64 = 18.0;
/// y of the first SVG legend row (the top of its swatch).
const SVG_LEGEND_TOP: f64 = 48.0;
/// Left edge of the SVG plot area.
pub(crate) const SVG_LEFT: f64 = 80.0;
/// Right edge of the SVG plot area.
pub(crate) const SVG_RIGHT: f64 = SVG_WIDTH - 24.0;
/// Colour of grid lines in SVG (and its grey level in PNG, [`PNG_GRID`]).
pub(crate) const SVG_GRID: &str = "#e0e0e0";
/// Grey level of grid lines in PNG.
pub(crate) const PNG_GRID: u8 = 225;

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

/// `#rrggbb` of a colour.
pub(crate) fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Top of the SVG plot area under a legend of `rows` rows.
pub(crate) fn svg_plot_top(rows: usize) -> f64 {
    SVG_LEGEND_TOP + SVG_LEGEND_LINE * rows as f64 + 8.0
}

/// The opening `<svg>` tag of a document [`SVG_WIDTH`] x `height` px, and its white background.
pub(crate) fn svg_begin(s: &mut String, height: f64) {
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{SVG_WIDTH}" height="{height}" viewBox="0 0 {SVG_WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect x="0" y="0" width="{SVG_WIDTH}" height="{height}" fill="white"/>"#);
}

/// A y tick at height `y`: a grid line across the plot area [`left`, `right`], a tick mark left of it
/// and `label` (already valid XML text) right-aligned before the tick.
pub(crate) fn svg_y_tick(s: &mut String, left: f64, right: f64, y: f64, label: &str) {
    let _ =
        writeln!(s, r#"<line x1="{left:.2}" y1="{y:.2}" x2="{right:.2}" y2="{y:.2}" stroke="{SVG_GRID}"/>"#);
    let _ = writeln!(
        s,
        r#"<line x1="{:.2}" y1="{y:.2}" x2="{left:.2}" y2="{y:.2}" stroke="black"/>"#,
        left - 5.0
    );
    let (x, ty) = (left - 8.0, y + 4.0);
    let _ = writeln!(s, r#"<text x="{x:.2}" y="{ty:.2}" font-size="12" text-anchor="end">{label}</text>"#);
}

/// An x tick at `x` below the plot area's `bottom` edge, with `label` (valid XML text) centred under it.
pub(crate) fn svg_x_tick(s: &mut String, bottom: f64, x: f64, label: &str) {
    let (y0, y1, ty) = (bottom, bottom + 5.0, bottom + 20.0);
    let _ = writeln!(s, r#"<line x1="{x:.2}" y1="{y0:.2}" x2="{x:.2}" y2="{y1:.2}" stroke="black"/>"#);
    let _ = writeln!(s, r#"<text x="{x:.2}" y="{ty:.2}" font-size="12" text-anchor="middle">{label}</text>"#);
}

/// The left and bottom axis lines of the plot area [l, r] x [t, b].
pub(crate) fn svg_axis_lines(s: &mut String, (l, r, t, b): (f64, f64, f64, f64)) {
    let _ = writeln!(
        s,
        r#"<polyline points="{l:.2},{t:.2} {l:.2},{b:.2} {r:.2},{b:.2}" fill="none" stroke="black"/>"#
    );
}

/// The title, centred at the top.
pub(crate) fn svg_title(s: &mut String, title: &str) {
    let title = xml_escape(title);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" font-size="16" text-anchor="middle">{title}</text>"#,
        SVG_WIDTH / 2.0
    );
}

/// A legend of `rows` rows starting at x = `left`: row `i` is the SVG `swatch(i, x, y)` returns for the
/// top-left corner (x, y) of a 14 x 10 px swatch, then `text(i)` (escaped here) after it.
pub(crate) fn svg_legend(
    s: &mut String,
    left: f64,
    rows: usize,
    mut swatch: impl FnMut(usize, f64, f64) -> String,
    mut text: impl FnMut(usize) -> String,
) {
    let _ = writeln!(s, r#"<g class="legend" font-size="12">"#);
    for i in 0..rows {
        let y = SVG_LEGEND_TOP + SVG_LEGEND_LINE * i as f64;
        let _ = writeln!(
            s,
            r#"{}<text x="{}" y="{}">{}</text>"#,
            swatch(i, left, y),
            left + 20.0,
            y + 10.0,
            xml_escape(&text(i))
        );
    }
    s.push_str("</g>\n");
}

/// The x label centred under the plot area [l, r] x [t, b] and the y label, turned, left of it.
pub(crate) fn svg_axis_labels(
    s: &mut String,
    (l, r, t, b): (f64, f64, f64, f64),
    x_label: &str,
    y_label: &str,
) {
    let (cx, cy) = ((l + r) / 2.0, (t + b) / 2.0);
    let (x_label, y_label) = (xml_escape(x_label), xml_escape(y_label));
    let _ = writeln!(
        s,
        r#"<text x="{cx:.2}" y="{:.2}" font-size="13" text-anchor="middle">{x_label}</text>"#,
        b + 46.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(24 {cy:.2}) rotate(-90)" font-size="13" text-anchor="middle">{y_label}</text>"#
    );
}

/// Text scale of a `width` x `height` image: 1, or more for images of 1280 x 960 and more.
pub(crate) fn text_scale(width: u32, height: u32) -> u32 {
    (width.min(height.saturating_mul(4) / 3) / 640).max(1)
}

/// Top and bottom of the PNG plot area of an image `height` high at text scale `ts` with `rows` legend
/// rows: room above for the title and legend, below for the x tick labels and the x label. The bottom
/// may lie above the top for images too small (see [`png_area`]).
pub(crate) fn png_top_bottom(height: u32, ts: u32, rows: usize) -> (u32, u32) {
    let (m, line, tick) = (4 * ts, LINE_HEIGHT * ts, 3 * ts);
    let rows = u32::try_from(rows).unwrap_or(u32::MAX);
    let top = (m + line + m).saturating_add(rows.saturating_mul(line + 2 * ts)).saturating_add(m);
    let bottom = height.saturating_sub(m + line + m + line + tick + 2 * ts);
    (top, bottom)
}

/// The PNG plot area (left, right, top, bottom) of a `width` x `height` image at text scale `ts`, with
/// `rows` legend rows and y tick labels up to `y_label_w` pixels wide: room on the left for the y label
/// and tick labels, on the right for half an x tick label, and as [`png_top_bottom`]. Errors if that
/// leaves less than 16 x 16 pixels.
pub(crate) fn png_area(
    width: u32,
    height: u32,
    ts: u32,
    rows: usize,
    y_label_w: u32,
) -> Result<(f64, f64, f64, f64)> {
    let (m, tick) = (4 * ts, 3 * ts);
    let left = (m + GLYPH_HEIGHT * ts + m + 2 * ts + tick).saturating_add(y_label_w);
    let right = width.saturating_sub(m + 3 * ADVANCE * ts);
    let (top, bottom) = png_top_bottom(height, ts, rows);
    if right < left.saturating_add(16) || bottom < top.saturating_add(16) {
        return Err(Error::Invalid(format!(
            "a {width} x {height} image is too small for this plot ({rows} series)"
        )));
    }
    Ok((f64::from(left), f64::from(right), f64::from(top), f64::from(bottom)))
}

/// The left and bottom axis lines of the plot area (l, r, t, b), one pixel outside it.
pub(crate) fn png_axis_lines(img: &mut RgbImage, (l, r, t, b): (i64, i64, i64, i64)) {
    let black = Rgb([0; 3]);
    rect(img, (l - 1, b), (r + 1, b + 1), |px| *px = black);
    rect(img, (l - 1, t), (l, b + 1), |px| *px = black);
}

/// A y tick mark at row `y` left of the y axis at column `l`, and `label` right-aligned before it.
pub(crate) fn png_y_tick(img: &mut RgbImage, l: i64, y: i64, label: &str, ts: u32) {
    let black = Rgb([0; 3]);
    let tick = i64::from(3 * ts);
    rect(img, (l - 1 - tick, y), (l - 1, y + 1), |px| *px = black);
    let x = l - 1 - tick - i64::from(2 * ts + font::text_width(label, ts));
    font::draw_text_on(img, x, y - i64::from(3 * ts), label, ts, black);
}

/// An x tick mark at column `x` below the x axis at row `b`, and `label` centred under it.
pub(crate) fn png_x_tick(img: &mut RgbImage, x: i64, b: i64, label: &str, ts: u32) {
    let black = Rgb([0; 3]);
    let tick = i64::from(3 * ts);
    rect(img, (x, b + 1), (x + 1, b + 1 + tick), |px| *px = black);
    let lx = x - i64::from(font::text_width(label, ts) / 2);
    font::draw_text_on(img, lx, b + 1 + tick + i64::from(2 * ts), label, ts, black);
}

/// Left edge of text `s` centred on column `c`.
fn centred(s: &str, c: f64, ts: u32) -> i64 {
    c as i64 - i64::from(font::text_width(s, ts) / 2)
}

/// The title, centred at the top.
pub(crate) fn png_title(img: &mut RgbImage, title: &str, ts: u32) {
    let m = i64::from(4 * ts);
    let x = centred(title, f64::from(img.width()) / 2.0, ts);
    font::draw_text_on(img, x, m, title, ts, Rgb([0; 3]));
}

/// A legend of `rows` rows starting at column `left`: row `i` is a swatch `swatch_w` pixels wide and
/// one glyph high, drawn by `swatch(img, i, (x, y))` with (x, y) its top-left corner, then `text(i)`.
pub(crate) fn png_legend(
    img: &mut RgbImage,
    left: i64,
    rows: usize,
    ts: u32,
    swatch_w: i64,
    mut swatch: impl FnMut(&mut RgbImage, usize, (i64, i64)),
    mut text: impl FnMut(usize) -> String,
) {
    let (m, line) = (i64::from(4 * ts), i64::from(LINE_HEIGHT * ts));
    for i in 0..rows {
        let y = 2 * m + line + i as i64 * (line + 2 * i64::from(ts));
        swatch(img, i, (left, y));
        font::draw_text_on(img, left + swatch_w + 3 * i64::from(ts), y, &text(i), ts, Rgb([0; 3]));
    }
}

/// The x label at the bottom, centred under the plot area (l, r, t, b), and the y label, turned, at the
/// left, centred on it.
pub(crate) fn png_axis_labels(
    img: &mut RgbImage,
    (l, r, t, b): (f64, f64, f64, f64),
    x_label: &str,
    y_label: &str,
    ts: u32,
) {
    let black = Rgb([0; 3]);
    let (m, line) = (i64::from(4 * ts), i64::from(LINE_HEIGHT * ts));
    let x_label_y = i64::from(img.height()) - m - line;
    font::draw_text_on(img, centred(x_label, (l + r) / 2.0, ts), x_label_y, x_label, ts, black);
    let y_mid = ((t + b) / 2.0) as i64 + i64::from(font::text_width(y_label, ts) / 2);
    font::draw_text_vertical(img, m, y_mid, y_label, ts, black);
}

/// Apply `op` to each pixel of `img` in the rectangle [x0, x1) x [y0, y1) (clipped to the image).
pub(crate) fn rect(
    img: &mut RgbImage,
    (x0, y0): (i64, i64),
    (x1, y1): (i64, i64),
    mut op: impl FnMut(&mut Rgb<u8>),
) {
    let clip = |a: i64, limit: u32| a.clamp(0, i64::from(limit)) as u32;
    let (w, h) = (img.width(), img.height());
    for y in clip(y0, h)..clip(y1, h) {
        for x in clip(x0, w)..clip(x1, w) {
            op(img.get_pixel_mut(x, y));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_xml_and_formats_colours() {
        assert_eq!(xml_escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
        assert_eq!(xml_escape("x\u{1}y\u{FFFF}"), "x\u{FFFD}y\u{FFFD}");
        assert_eq!(hex([0x1f, 0x77, 0xb4]), "#1f77b4");
    }

    #[test]
    fn png_area_leaves_room_or_errors() {
        let (l, r, t, b) = png_area(640, 480, 1, 2, 30).unwrap();
        assert!(l > 30.0 && r < 640.0 && t > 0.0 && b < 480.0 && l + 16.0 <= r && t + 16.0 <= b);
        assert!(png_area(40, 30, 1, 2, 30).is_err());
        assert!(png_area(640, 480, 1, usize::MAX, 30).is_err());
        assert!(png_area(640, 480, 1, 0, u32::MAX).is_err());
        assert_eq!(text_scale(1400, 1000), 2);
        assert_eq!(text_scale(0, 0), 1);
    }
}

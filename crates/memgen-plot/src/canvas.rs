//! One drawing routine, two outputs: the plots draw through the [`Canvas`] trait, which [`SvgCanvas`]
//! writes as SVG elements and [`PngCanvas`] rasterizes into an RGB image, so both renderings of a plot
//! hold the same items at the same places.
//!
//! Coordinates are in pixels from the top-left corner, y downwards (as in SVG). In the PNG, the pixel
//! (i, j) is the square [i, i+1) x [j, j+1); a line of width w at y covers the rows around `y.round()`,
//! without anti-aliasing (lines, fills and markers keep the exact colours of their series); text is
//! anti-aliased ([`crate::text`]).

use crate::plot::xml_escape;
use crate::text;
use crate::Result;
use image::{Rgb, RgbImage};
use std::fmt::Write as _;

/// An sRGB colour.
pub(crate) type Color = [u8; 3];

/// How a line is drawn: colour, width in px, and optionally a dash pattern (on, off) in px.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stroke {
    pub color: Color,
    pub width: f64,
    pub dash: Option<(f64, f64)>,
}

impl Stroke {
    /// A solid line.
    pub fn solid(color: Color, width: f64) -> Stroke {
        Stroke { color, width, dash: None }
    }
}

/// How an area is filled: colour and opacity in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fill {
    pub color: Color,
    pub opacity: f64,
}

/// Which point of a text its position gives: the start, middle or end of its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    /// The share of the text's width that lies before its anchor point.
    fn before(self) -> f64 {
        match self {
            Anchor::Start => 0.0,
            Anchor::Middle => 0.5,
            Anchor::End => 1.0,
        }
    }
}

/// One line of text: its baseline's anchor point (`x`, `y`), font size in px, and whether it is turned
/// 90° counter-clockwise (reading bottom to top, the baseline running up from the anchor).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Text {
    pub text: String,
    pub x: f64,
    pub y: f64,
    pub size: f64,
    pub anchor: Anchor,
    pub vertical: bool,
    pub color: Color,
}

/// Where the plots draw.
pub(crate) trait Canvas {
    /// Straight segments through `pts`, in order.
    fn line(&mut self, pts: &[(f64, f64)], stroke: Stroke);
    /// A path of one or more runs of points (each a polyline, closed back to its start if `closed`),
    /// filled (even-odd) and/or stroked, named `title` (a tooltip in SVG).
    fn path(
        &mut self,
        runs: &[Vec<(f64, f64)>],
        closed: bool,
        fill: Option<Fill>,
        stroke: Option<Stroke>,
        title: &str,
    );
    /// The rectangle with corners (x0, y0) and (x1, y1) (x0 ≤ x1, y0 ≤ y1), filled and/or outlined.
    fn rect(&mut self, p0: (f64, f64), p1: (f64, f64), fill: Option<Fill>, stroke: Option<Stroke>);
    /// Filled discs of radius `r` around `centres`, named `title`.
    fn markers(&mut self, centres: &[(f64, f64)], r: f64, color: Color, title: &str);
    /// A line of text.
    fn text(&mut self, t: &Text);
    /// Start a group of items (an SVG `<g class="...">`), ended by [`Canvas::end_group`].
    fn begin_group(&mut self, class: &str);
    fn end_group(&mut self);
}

/// `v` with at most two decimals and no trailing zeros ("6", "1.5", "14.04").
fn num(v: f64) -> String {
    let s = format!("{:.2}", v + 0.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// `#rrggbb` of a colour.
pub(crate) fn hex(c: Color) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// The font the SVG documents ask for: the embedded font of the PNGs first.
pub(crate) const SVG_FONT_FAMILY: &str = "DejaVu Sans, Verdana, sans-serif";

/// `draw` onto a fresh `width` x `height` SVG canvas: the document it makes. The one place the plots
/// turn a drawing routine into SVG text.
pub(crate) fn render_svg(
    width: u32,
    height: u32,
    draw: impl FnOnce(&mut dyn Canvas, f64, f64) -> Result<()>,
) -> Result<String> {
    let mut c = SvgCanvas::new(f64::from(width), f64::from(height));
    draw(&mut c, f64::from(width), f64::from(height))?;
    Ok(c.finish())
}

/// `draw` onto a fresh white `width` x `height` RGB image, as [`render_svg`] does onto SVG.
pub(crate) fn render_png(
    width: u32,
    height: u32,
    draw: impl FnOnce(&mut dyn Canvas, f64, f64) -> Result<()>,
) -> Result<RgbImage> {
    let mut c = PngCanvas::new(width, height);
    draw(&mut c, f64::from(width), f64::from(height))?;
    Ok(c.img)
}

/// An SVG 1.1 document being written.
pub(crate) struct SvgCanvas {
    s: String,
}

impl SvgCanvas {
    /// A `width` x `height` document with a white background.
    pub fn new(width: f64, height: f64) -> SvgCanvas {
        let (w, h) = (num(width), num(height));
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{SVG_FONT_FAMILY}">"#
        );
        let _ = writeln!(s, r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#);
        SvgCanvas { s }
    }

    /// The finished document.
    pub fn finish(mut self) -> String {
        self.s.push_str("</svg>");
        self.s
    }

    /// ` stroke="…" stroke-width="…"` and the dash array, or ` stroke="none"`.
    fn stroke_attrs(stroke: Option<Stroke>) -> String {
        let Some(st) = stroke else { return r#" stroke="none""#.into() };
        let mut a = format!(r#" stroke="{}" stroke-width="{}""#, hex(st.color), num(st.width));
        if let Some((on, off)) = st.dash {
            let _ = write!(a, r#" stroke-dasharray="{} {}""#, num(on), num(off));
        }
        a
    }

    /// ` fill="…"` and its opacity, or ` fill="none"`.
    fn fill_attrs(fill: Option<Fill>) -> String {
        match fill {
            None => r#" fill="none""#.into(),
            Some(f) if f.opacity >= 1.0 => format!(r#" fill="{}""#, hex(f.color)),
            Some(f) => format!(r#" fill="{}" fill-opacity="{}""#, hex(f.color), num(f.opacity)),
        }
    }
}

impl Canvas for SvgCanvas {
    fn line(&mut self, pts: &[(f64, f64)], stroke: Stroke) {
        let st = Self::stroke_attrs(Some(stroke));
        if let [(x1, y1), (x2, y2)] = pts {
            let _ = writeln!(self.s, r#"<line x1="{x1:.2}" y1="{y1:.2}" x2="{x2:.2}" y2="{y2:.2}"{st}/>"#);
        } else if pts.len() > 2 {
            let points: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.2},{y:.2}")).collect();
            let _ = writeln!(self.s, r#"<polyline points="{}" fill="none"{st}/>"#, points.join(" "));
        }
    }

    fn path(
        &mut self,
        runs: &[Vec<(f64, f64)>],
        closed: bool,
        fill: Option<Fill>,
        stroke: Option<Stroke>,
        title: &str,
    ) {
        let mut d = String::new();
        for run in runs.iter().filter(|r| !r.is_empty()) {
            for (k, (x, y)) in run.iter().enumerate() {
                let sep = if d.is_empty() { "" } else { " " };
                let _ = write!(d, "{sep}{}{x:.2} {y:.2}", if k == 0 { "M" } else { "L" });
            }
            if closed {
                d.push_str(" Z");
            }
        }
        let (f, st) = (Self::fill_attrs(fill), Self::stroke_attrs(stroke));
        let _ = writeln!(
            self.s,
            r#"<path d="{d}"{f}{st} stroke-linejoin="round"><title>{}</title></path>"#,
            xml_escape(title)
        );
    }

    fn rect(
        &mut self,
        (x0, y0): (f64, f64),
        (x1, y1): (f64, f64),
        fill: Option<Fill>,
        stroke: Option<Stroke>,
    ) {
        let (w, h) = (x1 - x0, y1 - y0);
        let (f, st) = (Self::fill_attrs(fill), Self::stroke_attrs(stroke));
        let _ = writeln!(self.s, r#"<rect x="{x0:.2}" y="{y0:.2}" width="{w:.2}" height="{h:.2}"{f}{st}/>"#);
    }

    fn markers(&mut self, centres: &[(f64, f64)], r: f64, color: Color, title: &str) {
        if centres.is_empty() {
            return;
        }
        let _ = write!(self.s, r#"<g fill="{}">"#, hex(color));
        if !title.is_empty() {
            let _ = write!(self.s, "<title>{}</title>", xml_escape(title));
        }
        for (x, y) in centres {
            let _ = write!(self.s, r#"<circle cx="{x:.2}" cy="{y:.2}" r="{}"/>"#, num(r));
        }
        self.s.push_str("</g>\n");
    }

    fn text(&mut self, t: &Text) {
        let anchor = match t.anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        let fill = if t.color == [0; 3] { String::new() } else { format!(r#" fill="{}""#, hex(t.color)) };
        let at = if t.vertical {
            format!(r#"transform="translate({:.2} {:.2}) rotate(-90)""#, t.x, t.y)
        } else {
            format!(r#"x="{:.2}" y="{:.2}""#, t.x, t.y)
        };
        let _ = writeln!(
            self.s,
            r#"<text {at} font-size="{}"{fill} text-anchor="{anchor}">{}</text>"#,
            num(t.size),
            xml_escape(&t.text)
        );
    }

    fn begin_group(&mut self, class: &str) {
        let _ = writeln!(self.s, r#"<g class="{}">"#, xml_escape(class));
    }

    fn end_group(&mut self) {
        self.s.push_str("</g>\n");
    }
}

/// An RGB image being drawn.
pub(crate) struct PngCanvas {
    pub img: RgbImage,
}

impl PngCanvas {
    /// A white `width` x `height` image.
    pub fn new(width: u32, height: u32) -> PngCanvas {
        PngCanvas { img: RgbImage::from_pixel(width, height, Rgb([255; 3])) }
    }

    /// Apply `op` to each pixel in [x0, x1) x [y0, y1), clipped to the image.
    fn span(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), mut op: impl FnMut(&mut Rgb<u8>)) {
        let clip = |a: i64, limit: u32| a.clamp(0, i64::from(limit)) as u32;
        let (w, h) = (self.img.width(), self.img.height());
        for y in clip(y0, h)..clip(y1, h) {
            for x in clip(x0, w)..clip(x1, w) {
                op(self.img.get_pixel_mut(x, y));
            }
        }
    }

    /// Stamp a t x t square of `color` along the segments through `pts` (at least once a pixel), solid
    /// or dashed, the dash pattern running on across corners.
    fn polyline(&mut self, pts: &[(f64, f64)], stroke: Stroke) {
        let t = (stroke.width.round() as i64).max(1);
        let half = (t - 1) / 2;
        let mut walked = 0.0;
        for w in pts.windows(2) {
            let ((xa, ya), (xb, yb)) = (w[0], w[1]);
            let len = (xb - xa).hypot(yb - ya);
            if !len.is_finite() {
                continue;
            }
            let n = (len.ceil() as usize).clamp(1, 1 << 16);
            for k in 0..=n {
                let s = k as f64 / n as f64;
                if let Some((on, off)) = stroke.dash {
                    if on + off > 0.0 && (walked + s * len) % (on + off) >= on {
                        continue;
                    }
                }
                let x = (xa + (xb - xa) * s).round() as i64 - half;
                let y = (ya + (yb - ya) * s).round() as i64 - half;
                self.span((x, y), (x + t, y + t), |px| *px = Rgb(stroke.color));
            }
            walked += len;
        }
    }

    /// Fill the polygon `pts` (even-odd) where pixel centres lie inside it, blending `fill`.
    fn polygon(&mut self, pts: &[(f64, f64)], fill: Fill) {
        if pts.len() < 3 || pts.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
            return;
        }
        let (ymin, ymax) =
            pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let h = f64::from(self.img.height());
        let (r0, r1) = ((ymin - 0.5).ceil().max(0.0), (ymax - 0.5).floor().min(h - 1.0));
        let mut xs = Vec::new();
        let mut row = r0;
        while row <= r1 {
            let yc = row + 0.5;
            xs.clear();
            for (k, &(xa, ya)) in pts.iter().enumerate() {
                let (xb, yb) = pts[(k + 1) % pts.len()];
                if (ya <= yc) != (yb <= yc) {
                    xs.push(xa + (yc - ya) * (xb - xa) / (yb - ya));
                }
            }
            xs.sort_by(f64::total_cmp);
            for pair in xs.chunks_exact(2) {
                let (c0, c1) = ((pair[0] - 0.5).ceil() as i64, (pair[1] - 0.5).ceil() as i64);
                self.span((c0, row as i64), (c1, row as i64 + 1), |px| blend(px, fill));
            }
            row += 1.0;
        }
    }
}

/// `px` blended with `fill`'s colour at its opacity.
fn blend(px: &mut Rgb<u8>, fill: Fill) {
    let o = fill.opacity.clamp(0.0, 1.0);
    for (p, &c) in px.0.iter_mut().zip(&fill.color) {
        *p = (f64::from(*p) * (1.0 - o) + f64::from(c) * o).round() as u8;
    }
}

impl Canvas for PngCanvas {
    fn line(&mut self, pts: &[(f64, f64)], stroke: Stroke) {
        self.polyline(pts, stroke);
    }

    fn path(
        &mut self,
        runs: &[Vec<(f64, f64)>],
        closed: bool,
        fill: Option<Fill>,
        stroke: Option<Stroke>,
        _title: &str,
    ) {
        for run in runs {
            if let Some(f) = fill {
                self.polygon(run, f);
            }
            if let Some(st) = stroke {
                if closed && run.len() > 2 {
                    let mut ring = run.clone();
                    ring.push(run[0]);
                    self.polyline(&ring, st);
                } else {
                    self.polyline(run, st);
                }
            }
        }
    }

    fn rect(
        &mut self,
        (x0, y0): (f64, f64),
        (x1, y1): (f64, f64),
        fill: Option<Fill>,
        stroke: Option<Stroke>,
    ) {
        if let Some(f) = fill {
            let (a, b) = ((x0.round() as i64, y0.round() as i64), (x1.round() as i64, y1.round() as i64));
            self.span(a, b, |px| blend(px, f));
        }
        if let Some(st) = stroke {
            self.polyline(&[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], st);
        }
    }

    fn markers(&mut self, centres: &[(f64, f64)], r: f64, color: Color, _title: &str) {
        let r = (r.round() as i64).clamp(1, 1 << 12);
        for &(x, y) in centres {
            let (cx, cy) = (x.round() as i64, y.round() as i64);
            for dy in -r..=r {
                let w = ((r * r + r - dy * dy) as f64).sqrt() as i64;
                self.span((cx - w, cy + dy), (cx + w + 1, cy + dy + 1), |px| *px = Rgb(color));
            }
        }
    }

    fn text(&mut self, t: &Text) {
        let (size, ink) = (t.size as f32, Rgb(t.color));
        let shift = f64::from(text::text_width(&t.text, size)) * t.anchor.before();
        if t.vertical {
            text::draw_text_vertical(&mut self.img, t.x as f32, (t.y + shift) as f32, &t.text, size, ink);
        } else {
            text::draw_text(&mut self.img, (t.x - shift) as f32, t.y as f32, &t.text, size, ink);
        }
    }

    fn begin_group(&mut self, _class: &str) {}

    fn end_group(&mut self) {}
}

/// What a [`Canvas`] was asked to draw, for tests: [`Recorder`] keeps the list.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    Line(Vec<(f64, f64)>, Stroke),
    Path(Vec<Vec<(f64, f64)>>, bool, Option<Fill>, Option<Stroke>, String),
    Rect((f64, f64), (f64, f64), Option<Fill>, Option<Stroke>),
    Markers(Vec<(f64, f64)>, f64, Color, String),
    Text(Text),
    Begin(String),
    End,
}

/// A canvas that records each item and passes it on to `inner`.
#[cfg(test)]
pub(crate) struct Recorder<C> {
    pub inner: C,
    pub items: Vec<Item>,
}

#[cfg(test)]
impl<C: Canvas> Recorder<C> {
    pub fn new(inner: C) -> Self {
        Recorder { inner, items: Vec::new() }
    }

    /// The texts drawn, in order.
    pub fn texts(&self) -> Vec<&Text> {
        self.items.iter().filter_map(|i| if let Item::Text(t) = i { Some(t) } else { None }).collect()
    }
}

#[cfg(test)]
impl<C: Canvas> Canvas for Recorder<C> {
    fn line(&mut self, pts: &[(f64, f64)], stroke: Stroke) {
        self.items.push(Item::Line(pts.to_vec(), stroke));
        self.inner.line(pts, stroke);
    }

    fn path(
        &mut self,
        runs: &[Vec<(f64, f64)>],
        closed: bool,
        fill: Option<Fill>,
        stroke: Option<Stroke>,
        title: &str,
    ) {
        self.items.push(Item::Path(runs.to_vec(), closed, fill, stroke, title.into()));
        self.inner.path(runs, closed, fill, stroke, title);
    }

    fn rect(&mut self, p0: (f64, f64), p1: (f64, f64), fill: Option<Fill>, stroke: Option<Stroke>) {
        self.items.push(Item::Rect(p0, p1, fill, stroke));
        self.inner.rect(p0, p1, fill, stroke);
    }

    fn markers(&mut self, centres: &[(f64, f64)], r: f64, color: Color, title: &str) {
        self.items.push(Item::Markers(centres.to_vec(), r, color, title.into()));
        self.inner.markers(centres, r, color, title);
    }

    fn text(&mut self, t: &Text) {
        self.items.push(Item::Text(t.clone()));
        self.inner.text(t);
    }

    fn begin_group(&mut self, class: &str) {
        self.items.push(Item::Begin(class.into()));
        self.inner.begin_group(class);
    }

    fn end_group(&mut self) {
        self.items.push(Item::End);
        self.inner.end_group();
    }
}

/// The texts of the `<text>` elements of an SVG document, unescaped (for tests).
#[cfg(test)]
pub(crate) fn svg_texts(svg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find("<text ") {
        rest = &rest[i..];
        let start = rest.find('>').unwrap() + 1;
        let end = rest.find("</text>").unwrap();
        let t = rest[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&");
        out.push(t);
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_elements_and_numbers() {
        assert_eq!(
            (num(6.0), num(1.5), num(14.0449), num(-0.001)),
            ("6".into(), "1.5".into(), "14.04".into(), "0".into())
        );
        let mut c = SvgCanvas::new(100.0, 50.0);
        c.line(&[(0.0, 1.0), (2.0, 3.0)], Stroke { color: [1, 2, 3], width: 1.5, dash: Some((6.0, 4.0)) });
        c.path(
            &[vec![(0.0, 0.0), (1.0, 1.0)]],
            true,
            Some(Fill { color: [255, 0, 0], opacity: 0.25 }),
            None,
            "a<b",
        );
        c.text(&Text {
            text: "N = d".into(),
            x: 5.0,
            y: 20.0,
            size: 12.0,
            anchor: Anchor::Middle,
            vertical: true,
            color: [0; 3],
        });
        let svg = c.finish();
        assert!(svg.contains(r#"font-family="DejaVu Sans, Verdana, sans-serif""#));
        assert!(svg.contains(r##"stroke="#010203" stroke-width="1.5" stroke-dasharray="6 4""##));
        assert!(svg.contains(
            r##"<path d="M0.00 0.00 L1.00 1.00 Z" fill="#ff0000" fill-opacity="0.25" stroke="none""##
        ));
        assert!(svg.contains("<title>a&lt;b</title>"));
        assert!(svg.contains(r#"<text transform="translate(5.00 20.00) rotate(-90)" font-size="12" text-anchor="middle">N = d</text>"#));
        assert_eq!(svg_texts(&svg), ["N = d"]);
    }

    #[test]
    fn png_fills_polygons_at_pixel_centres_and_anchors_text() {
        let mut c = PngCanvas::new(20, 20);
        let red = Fill { color: [255, 0, 0], opacity: 1.0 };
        c.path(&[vec![(2.0, 2.0), (10.0, 2.0), (10.0, 6.0), (2.0, 6.0)]], true, Some(red), None, "");
        for y in 0..20 {
            for x in 0..20 {
                let inside = (2..10).contains(&x) && (2..6).contains(&y);
                assert_eq!(c.img.get_pixel(x, y).0 == [255, 0, 0], inside, "({x}, {y})");
            }
        }
        c.rect((0.0, 10.0), (20.0, 12.0), Some(Fill { color: [0, 0, 255], opacity: 0.5 }), None);
        assert_eq!(c.img.get_pixel(3, 10).0, [128, 128, 255]);
        // End-anchored text ends at its anchor.
        let mut c = PngCanvas::new(100, 30);
        let t = Text {
            text: "Wow".into(),
            x: 80.0,
            y: 20.0,
            size: 14.0,
            anchor: Anchor::End,
            vertical: false,
            color: [0; 3],
        };
        c.text(&t);
        let cols: Vec<u32> =
            (0..100).filter(|&x| (0..30).any(|y| c.img.get_pixel(x, y).0[0] < 128)).collect();
        let w = text::text_width("Wow", 14.0);
        assert!(*cols.last().unwrap() <= 80 && *cols.last().unwrap() >= 77, "{cols:?}");
        assert!((cols[0] as f32 - (80.0 - w)).abs() <= 2.0, "{cols:?}");
    }
}

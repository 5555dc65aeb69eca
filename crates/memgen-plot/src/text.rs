//! Text in PNG figures, set in DejaVu Sans (embedded in the binary, so the output does not depend on
//! the fonts of the machine; its licence is `fonts/LICENSE-DejaVu.txt` in this crate).
//!
//! Sizes are font sizes in pixels as in CSS and SVG (`font-size`: the height of the em square), so an
//! SVG `<text font-size="12">` in DejaVu Sans and [`draw_text`] at 12 px set the same advance widths.
//! Glyphs are laid out on one line by their advances and the font's kerning pairs; their outlines are
//! rasterized by `ab_glyph` with anti-aliasing and the coverage of each pixel blended onto the image
//! (`p ← p + (ink − p)·coverage` per channel). Characters the font lacks are drawn as its box glyph; a
//! newline is not a line break. Any position, size and string is accepted: what falls outside the
//! image is clipped, and nothing here panics.

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale};
use image::{ImageBuffer, Pixel};
use std::sync::OnceLock;

/// The font file: DejaVu Sans 2.37 (Bitstream Vera licence with the DejaVu and Arev terms).
static DEJAVU_SANS: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// Largest font size [`draw_text`] and [`draw_text_vertical`] draw (larger sizes draw nothing).
pub const MAX_DRAW_SIZE_PX: f32 = 1024.0;

/// The embedded font, parsed on first use.
fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(DEJAVU_SANS).expect("the embedded DejaVu Sans parses"))
}

/// Pixels per font unit at font size `size_px` (the em square is `units_per_em` units).
fn px_per_unit(size_px: f64) -> f64 {
    let f = font();
    size_px / f64::from(f.units_per_em().unwrap_or(2048.0))
}

/// Height of the font above the baseline at `size_px` (DejaVu Sans: 0.928 em, a little more than its
/// capitals and ascenders).
pub fn ascent(size_px: f32) -> f32 {
    (f64::from(font().ascent_unscaled()) * px_per_unit(f64::from(size_px))) as f32
}

/// Depth of the font below the baseline at `size_px`, as a positive number (DejaVu Sans: 0.236 em).
pub fn descent(size_px: f32) -> f32 {
    (-f64::from(font().descent_unscaled()) * px_per_unit(f64::from(size_px))) as f32
}

/// Height of a line of text at `size_px`: [`ascent`] + [`descent`] (1.164 em).
pub fn line_height(size_px: f32) -> f32 {
    ascent(size_px) + descent(size_px)
}

/// Call `f(glyph, x)` for each character of `s` in order with the x of its origin in font units from
/// the start of the text (advances plus kerning), and return the x where the text ends.
fn layout_units(s: &str, mut f: impl FnMut(GlyphId, f64)) -> f64 {
    let font = font();
    let (mut x, mut prev) = (0.0f64, None);
    for c in s.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            x += f64::from(font.kern_unscaled(p, id));
        }
        f(id, x);
        x += f64::from(font.h_advance_unscaled(id));
        prev = Some(id);
    }
    x
}

/// Width of `s` at `size_px`: the sum of its advances and kerning, where the next text would start
/// (0 for an empty string or a size that is not positive and finite). Proportional: "iiii" is much
/// narrower than "WWWW". Within a pixel or so of the extent of the ink [`draw_text`] puts down (the
/// difference is the side bearings of the first and last glyph).
pub fn text_width(s: &str, size_px: f32) -> f32 {
    if !(size_px.is_finite() && size_px > 0.0) {
        return 0.0;
    }
    (layout_units(s, |_, _| ()) * px_per_unit(f64::from(size_px))) as f32
}

/// The longest prefix of `s` that, followed by "…" if it is shorter than `s`, is at most `max_width`
/// pixels wide at `size_px`: `s` itself if it fits, else the prefix and "…", or "" if not even "…" fits.
pub fn truncate(s: &str, size_px: f32, max_width: f32) -> String {
    if text_width(s, size_px) <= max_width {
        return s.to_string();
    }
    if !(size_px.is_finite() && size_px > 0.0) {
        return String::new();
    }
    // Measure prefixes as the text is laid out: the pen after each character, plus the kerning and
    // advance of "…" after it.
    let (font, k) = (font(), px_per_unit(f64::from(size_px)));
    let dots = font.glyph_id('…');
    let limit = f64::from(max_width) / k;
    let with_dots = |pen: f64, last: Option<GlyphId>| {
        pen + last.map_or(0.0, |p| f64::from(font.kern_unscaled(p, dots)))
            + f64::from(font.h_advance_unscaled(dots))
    };
    if with_dots(0.0, None) > limit {
        return String::new();
    }
    let (mut pen, mut prev, mut end) = (0.0f64, None, 0);
    for (i, c) in s.char_indices() {
        let id = font.glyph_id(c);
        let next = pen
            + prev.map_or(0.0, |p| f64::from(font.kern_unscaled(p, id)))
            + f64::from(font.h_advance_unscaled(id));
        if with_dots(next, Some(id)) > limit {
            break;
        }
        (pen, prev, end) = (next, Some(id), i + c.len_utf8());
    }
    format!("{}…", &s[..end])
}

/// Rasterize `s` at `size` px in a coordinate system (u along the text, v down from the baseline) whose
/// pixel grid is offset by (`fu`, `fv`) ∈ [0, 1)² from the text's origin: calls `put(a, b, coverage)`
/// for each covered grid cell [a, a+1) x [b, b+1) of a glyph that may reach u ∈ [`u_lo`, `u_hi`) (the
/// others are skipped before they are rasterized).
fn raster(
    s: &str,
    size: f64,
    (fu, fv): (f64, f64),
    (u_lo, u_hi): (f64, f64),
    mut put: impl FnMut(i64, i64, f32),
) {
    let font = font();
    let k = px_per_unit(size);
    let scale = PxScale::from((f64::from(font.height_unscaled()) * k) as f32);
    let reach = 2.0 * size + 2.0;
    let mut done = false;
    layout_units(s, |id, x_units| {
        let pen = fu + x_units * k;
        let adv = f64::from(font.h_advance_unscaled(id)) * k;
        if done || pen > u_hi + reach {
            done = true;
            return;
        }
        if pen + adv < u_lo - reach {
            return;
        }
        let ia = pen.floor();
        let glyph = id.with_scale_and_position(scale, point((pen - ia) as f32, fv as f32));
        if let Some(og) = font.outline_glyph(glyph) {
            let b = og.px_bounds();
            let (a0, b0) = (ia as i64 + b.min.x as i64, b.min.y as i64);
            og.draw(|gx, gy, c| put(a0 + i64::from(gx), b0 + i64::from(gy), c));
        }
    });
}

/// Whether `size_px` can be drawn and (`x`, `y`) is a finite position.
fn drawable(x: f32, y: f32, size_px: f32) -> bool {
    x.is_finite() && y.is_finite() && size_px.is_finite() && size_px > 0.0 && size_px <= MAX_DRAW_SIZE_PX
}

/// Blend `ink` into the pixel (`x`, `y`) of `img` with weight `coverage` (clipped to [0, 1]); pixels
/// outside the image are left out.
fn blend<P: Pixel<Subpixel = u8>>(img: &mut ImageBuffer<P, Vec<u8>>, x: i64, y: i64, coverage: f32, ink: P) {
    let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) else { return };
    if x >= img.width() || y >= img.height() {
        return;
    }
    let c = coverage.clamp(0.0, 1.0);
    if c <= 0.0 {
        return;
    }
    let px = img.get_pixel_mut(x, y);
    for (p, &i) in px.channels_mut().iter_mut().zip(ink.channels()) {
        *p = (f32::from(*p) + (f32::from(i) - f32::from(*p)) * c).round() as u8;
    }
}

/// Draw `s` at `size_px` in `ink`, its baseline starting at (`x`, `y`) (pixel corners at integers: the
/// pixel (i, j) is the square [i, i+1) x [j, j+1)) and running right. Anti-aliased; clipped to the
/// image; sizes that are not positive, or above [`MAX_DRAW_SIZE_PX`], draw nothing.
pub fn draw_text<P: Pixel<Subpixel = u8>>(
    img: &mut ImageBuffer<P, Vec<u8>>,
    x: f32,
    y: f32,
    s: &str,
    size_px: f32,
    ink: P,
) {
    if !drawable(x, y, size_px) {
        return;
    }
    let (x, y, size) = (f64::from(x), f64::from(y), f64::from(size_px));
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    if y < -2.0 * size - 2.0 || y > h + 2.0 * size + 2.0 || x > w + 2.0 * size + 2.0 {
        return;
    }
    let (ix, iy) = (x.floor(), y.floor());
    let (ox, oy) = (ix as i64, iy as i64);
    raster(s, size, (x - ix, y - iy), (-ix, w - ix), |a, b, c| blend(img, ox + a, oy + b, c, ink));
}

/// Draw `s` at `size_px` in `ink` turned 90° counter-clockwise, reading from bottom to top (as a y axis
/// label): its baseline starts at (`x`, `y`) and runs up, and the glyphs stand on it to its left (their
/// tops face left, their descenders reach right of column `x`). Otherwise as [`draw_text`].
pub fn draw_text_vertical<P: Pixel<Subpixel = u8>>(
    img: &mut ImageBuffer<P, Vec<u8>>,
    x: f32,
    y: f32,
    s: &str,
    size_px: f32,
    ink: P,
) {
    if !drawable(x, y, size_px) {
        return;
    }
    let (x, y, size) = (f64::from(x), f64::from(y), f64::from(size_px));
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    if x < -2.0 * size - 2.0 || x > w + 2.0 * size + 2.0 || y < -2.0 * size - 2.0 {
        return;
    }
    // Text coordinates (u along the text, v down from its baseline) map to the image as
    // (x + v, y − u); grid cell (a, b) of the text, offset by (y − Y, X − x) from it, is pixel
    // (X + b, Y − a − 1) with X = ⌊x⌋ and Y = ⌊y⌋.
    let (ix, iy) = (x.floor(), y.floor());
    let (ox, oy) = (ix as i64, iy as i64);
    let fu = -(y - iy);
    // The pen (u from the text's start) shows on rows y − u ∈ [0, h).
    raster(s, size, (fu.rem_euclid(1.0), x - ix), (y - h - 1.0, y + 1.0), |a, b, c| {
        // `raster` puts the pen at fu mod 1; shift back by the whole part of fu (0 or -1).
        let a = a + fu.floor() as i64;
        blend(img, ox + b, oy - a - 1, c, ink)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    /// Columns and rows (min, max inclusive) of the pixels of `img` darker than `below`.
    fn ink_box(img: &GrayImage, below: u8) -> Option<((u32, u32), (u32, u32))> {
        let mut b: Option<((u32, u32), (u32, u32))> = None;
        for (x, y, p) in img.enumerate_pixels() {
            if p[0] < below {
                let ((x0, x1), (y0, y1)) = b.unwrap_or(((x, x), (y, y)));
                b = Some(((x0.min(x), x1.max(x)), (y0.min(y), y1.max(y))));
            }
        }
        b
    }

    fn drawn(s: &str, size: f32, w: u32, h: u32, x: f32, y: f32) -> GrayImage {
        let mut img = GrayImage::from_pixel(w, h, Luma([255]));
        draw_text(&mut img, x, y, s, size, Luma([0]));
        img
    }

    #[test]
    fn lowercase_and_uppercase_differ_and_symbols_are_covered() {
        let (a, b) = (drawn("d", 16.0, 20, 24, 2.0, 18.0), drawn("D", 16.0, 20, 24, 2.0, 18.0));
        assert_ne!(a, b);
        // The lowercase has its bowl below the x-height: no ink on the left half of the top rows.
        let ((_, _), (top_d, _)) = ink_box(&a, 128).unwrap();
        let ((_, _), (top_cap, _)) = ink_box(&b, 128).unwrap();
        assert!(top_d <= top_cap + 1, "d has an ascender: {top_d} vs {top_cap}");
        assert_ne!(drawn("n", 16.0, 20, 24, 2.0, 18.0), drawn("N", 16.0, 20, 24, 2.0, 18.0));
        // Characters the figures use are in the font (not its box glyph .notdef = id 0).
        for c in "σαλβ₀₁²‖≥≤×−·…ÅéN=d%<>#_()[]".chars() {
            assert_ne!(font().glyph_id(c), GlyphId(0), "{c:?} is not in the font");
        }
        let box_glyph = drawn("\u{E000}", 16.0, 20, 24, 2.0, 18.0);
        assert!(ink_box(&box_glyph, 128).is_some(), "a missing character is drawn as a box");
    }

    #[test]
    fn widths_are_proportional_and_match_the_ink() {
        let (narrow, wide) = (text_width("iiii", 12.0), text_width("WWWW", 12.0));
        assert!(narrow > 0.0 && wide > 2.5 * narrow, "{narrow} vs {wide}");
        assert_eq!(text_width("", 12.0), 0.0);
        assert_eq!(text_width("abc", 0.0), 0.0);
        assert_eq!(text_width("abc", f32::NAN), 0.0);
        assert!((text_width("abc", 24.0) - 2.0 * text_width("abc", 12.0)).abs() < 1e-3);
        // W has almost no side bearings: the ink spans the advance width to within a pixel or two.
        for (s, size) in [("WWWW", 12.0), ("VAWAV", 20.0), ("WMW", 33.0)] {
            let w = text_width(s, size);
            let img = drawn(s, size, 400, 60, 10.3, 45.0);
            let ((x0, x1), _) = ink_box(&img, 200).unwrap();
            let ink = (x1 + 1 - x0) as f32;
            assert!((ink - w).abs() <= 2.0, "{s} at {size}: ink {ink} px, text_width {w}");
            assert!((x0 as f32 - 10.3).abs() <= 1.5, "{s}: starts at {x0}");
        }
        // Kerning is applied: "AV" is narrower than "A" plus "V".
        assert!(text_width("AV", 20.0) < text_width("A", 20.0) + text_width("V", 20.0));
    }

    #[test]
    fn text_sits_on_its_baseline_with_ascent_and_descent() {
        let img = drawn("Hg", 20.0, 60, 60, 5.0, 40.0);
        let (_, (y0, y1)) = ink_box(&img, 128).unwrap();
        // H's top is the cap height (0.73 em) above the baseline; g descends below it.
        assert!((f64::from(40 - y0) - 0.729 * 20.0).abs() <= 1.5, "top at {y0}");
        assert!(y1 >= 41 && (y1 as f32) < 40.0 + descent(20.0) + 1.0, "bottom at {y1}");
        assert!((line_height(20.0) - 20.0 * 2384.0 / 2048.0).abs() < 1e-3);
    }

    #[test]
    fn antialiased_ink_is_blended_onto_the_background() {
        let mut img = RgbImage::from_pixel(40, 30, Rgb([200, 220, 240]));
        draw_text(&mut img, 3.0, 22.0, "Os", 18.0, Rgb([0, 0, 100]));
        let mut partial = 0;
        for p in img.pixels() {
            let Rgb([r, g, b]) = *p;
            assert!(r <= 200 && g <= 220 && (100..=240).contains(&b), "{p:?}");
            // Blending moves every channel by the same coverage.
            let c = 1.0 - f32::from(r) / 200.0;
            assert!((f32::from(g) - 220.0 * (1.0 - c)).abs() <= 1.5, "{p:?}");
            partial += usize::from(r > 0 && r < 200);
        }
        assert!(partial > 5, "edges are anti-aliased");
        assert!(img.pixels().any(|p| *p == Rgb([0, 0, 100])), "stems are fully inked");
    }

    #[test]
    fn truncation_fits_the_width() {
        assert_eq!(truncate("short", 12.0, 100.0), "short");
        let t = truncate("a rather long label", 12.0, 50.0);
        assert!(t.ends_with('…') && text_width(&t, 12.0) <= 50.0 && t.len() > 3, "{t}");
        assert_eq!(truncate("label", 12.0, 1.0), "");
        assert_eq!(truncate("", 12.0, 0.0), "");
        // The longest prefix that fits, by measured width, and fast on long text.
        let long = "Wi".repeat(100_000);
        let t = truncate(&long, 12.0, 300.0);
        let longer = format!("{}…", &long[..t.len() - '…'.len_utf8() + 1]);
        assert!(text_width(&t, 12.0) <= 300.0 && text_width(&longer, 12.0) > 300.0, "{t}");
        assert_eq!(truncate("abc", f32::NAN, 100.0), "abc"); // measured 0 wide, as text_width says
    }

    #[test]
    fn clipping_never_panics() {
        let mut img = GrayImage::from_pixel(10, 10, Luma([255]));
        let long = "W".repeat(10_000);
        let xs =
            [f32::MIN, -1e12, -1e6, -7.5, -1.0, 0.0, 5.0, 9.9, 10.0, 1e9, f32::MAX, f32::NAN, f32::INFINITY];
        for &x in &xs {
            for &y in &xs {
                for size in [0.0, 1.0, 12.0, 300.0, 5000.0, f32::MAX, -3.0, f32::NAN] {
                    draw_text(&mut img, x, y, "0.5%#Wσ~\n\u{E000}", size, Luma([0]));
                    draw_text_vertical(&mut img, x, y, "0.5%#Wσ~\n", size, Luma([0]));
                }
                draw_text(&mut img, x, y, &long, 12.0, Luma([0]));
                draw_text_vertical(&mut img, x, y, &long, 12.0, Luma([0]));
            }
        }
        let mut empty = GrayImage::new(0, 0);
        draw_text(&mut empty, 0.0, 5.0, "abc", 12.0, Luma([0]));
        draw_text_vertical(&mut empty, 5.0, 0.0, "abc", 12.0, Luma([0]));
        // Text partly outside the image: the visible part is drawn.
        let img = drawn("WWW", 20.0, 10, 30, -12.0, 22.0);
        assert!(ink_box(&img, 128).is_some());
    }

    #[test]
    fn long_text_is_fast_to_clip() {
        let mut img = GrayImage::from_pixel(50, 20, Luma([255]));
        let long = "Wide label ".repeat(200_000);
        let t = std::time::Instant::now();
        draw_text(&mut img, 0.0, 15.0, &long, 12.0, Luma([0]));
        draw_text_vertical(&mut img, 10.0, 19.0, &long, 12.0, Luma([0]));
        assert!(t.elapsed().as_secs_f64() < 5.0);
    }

    #[test]
    fn vertical_text_reads_bottom_to_top() {
        let size = 20.0;
        let mut img = GrayImage::from_pixel(40, 80, Luma([255]));
        draw_text_vertical(&mut img, 30.0, 70.0, "L.", size, Luma([0]));
        let ((x0, x1), (y0, y1)) = ink_box(&img, 128).unwrap();
        // The glyphs stand left of the baseline column 30 and run up from row 70, as long as the text.
        assert!(x1 < 30 && x0 as f32 >= 30.0 - ascent(size) - 1.0, "columns {x0}..={x1}");
        assert!(y1 < 70 && (y1 as f32) > 70.0 - 4.0, "rows {y0}..={y1}");
        // (The advance width includes the side bearings of L and the period, about 2 px each.)
        let w = text_width("L.", size);
        assert!((f64::from(y1 - y0 + 1) - f64::from(w)).abs() <= 5.0, "rows {y0}..={y1} for width {w}");
        // The L comes first, at the bottom: its stem (turned, a row) reaches the cap height, far left
        // of the baseline; the period, last, at the top, stays next to the baseline.
        let far = (30.0 - 0.6 * size) as u32;
        let rows_far: Vec<u32> = (0..80).filter(|&y| img.get_pixel(far, y)[0] < 128).collect();
        assert!(!rows_far.is_empty() && rows_far.iter().all(|&y| y > 70 - 6), "{rows_far:?}");
        let near_top: Vec<u32> = (x0..=x1).filter(|&x| img.get_pixel(x, y0)[0] < 128).collect();
        assert!(near_top.iter().all(|&x| x > 30 - 6), "the period sits on the baseline: {near_top:?}");
        // A long text is drawn all along, however far from the image's top its start is.
        let long = "median correlation, a long label";
        let mut img = GrayImage::from_pixel(40, 400, Luma([255]));
        draw_text_vertical(&mut img, 30.0, 390.0, long, 14.0, Luma([0]));
        let (_, (y0, y1)) = ink_box(&img, 128).unwrap();
        let w = text_width(long, 14.0);
        assert!((f64::from(y1 - y0 + 1) - f64::from(w)).abs() <= 3.0, "rows {y0}..={y1} for width {w}");
        // Horizontal and vertical drawings of the same text are the same glyphs turned.
        let mut h = GrayImage::from_pixel(80, 40, Luma([255]));
        draw_text(&mut h, 10.0, 30.0, "Ag", size, Luma([0]));
        let mut v = GrayImage::from_pixel(40, 80, Luma([255]));
        draw_text_vertical(&mut v, 30.0, 70.0, "Ag", size, Luma([0]));
        for y in 0..40 {
            for x in 0..80 {
                // (x, y) in h ↦ (30 + (y − 30), 70 − (x − 10) − 1) in v.
                let (vx, vy) = (30 + y as i64 - 30, 70 - (x as i64 - 10) - 1);
                let hv = h.get_pixel(x, y)[0];
                let vv = if (0..40).contains(&vx) && (0..80).contains(&vy) {
                    v.get_pixel(vx as u32, vy as u32)[0]
                } else {
                    255
                };
                assert!((i32::from(hv) - i32::from(vv)).abs() <= 1, "({x}, {y}): {hv} vs {vv}");
            }
        }
    }
}

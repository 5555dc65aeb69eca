//! A built-in 5x7 bitmap font for labels in PNG figures.
//!
//! Each glyph is 7 rows of 5 pixels (`[u8; 7]`, low 5 bits, bit 4 = leftmost column). Characters are
//! set 1 pixel apart ([`ADVANCE`] = 6) and lines 1 pixel apart ([`LINE_HEIGHT`] = 8), all multiplied by
//! an integer `scale`. Covered: `0-9`, `A-Z`, space and `. - + # = : / _ ( ) < > %`; lowercase letters
//! are drawn as their uppercase forms. Every other character (including `\n`: text is one line) is
//! drawn as a hollow box ([`UNKNOWN`]); nothing here panics.

use image::{GrayImage, ImageBuffer, Luma, Pixel};

/// Glyph width in font pixels.
pub const GLYPH_WIDTH: u32 = 5;
/// Glyph height in font pixels.
pub const GLYPH_HEIGHT: u32 = 7;
/// Horizontal distance from one character to the next, in font pixels (glyph plus 1 of spacing).
pub const ADVANCE: u32 = 6;
/// Vertical distance from one line to the next, in font pixels (glyph plus 1 of spacing).
pub const LINE_HEIGHT: u32 = 8;

/// The glyph drawn for characters the font does not cover: a hollow 5x5 box.
pub const UNKNOWN: [u8; 7] = [0x00, 0x1F, 0x11, 0x11, 0x11, 0x1F, 0x00];

/// The glyph of `c` (lowercase letters fold to uppercase), or `None` if the font does not cover it.
pub fn glyph(c: char) -> Option<[u8; 7]> {
    let g = match c.to_ascii_uppercase() {
        ' ' => [0x00; 7],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        _ => return None,
    };
    Some(g)
}

/// Width in pixels of the ink of `s` set at `scale`: `(6·n − 1)·scale` for `n ≥ 1` characters (the
/// trailing spacing is not counted), 0 for the empty string. Saturates instead of overflowing.
pub fn text_width(s: &str, scale: u32) -> u32 {
    let n = u32::try_from(s.chars().count()).unwrap_or(u32::MAX);
    if n == 0 {
        return 0;
    }
    n.saturating_mul(ADVANCE).saturating_sub(1).saturating_mul(scale)
}

/// Draw `s` with its top-left corner at (`x`, `y`), each font pixel a `scale` x `scale` block of `ink`.
/// Pixels outside the image are clipped; any `x`, `y` (and `scale` 0, which draws nothing) is fine.
pub fn draw_text(img: &mut GrayImage, x: i64, y: i64, s: &str, scale: u32, ink: u8) {
    draw_text_on(img, x, y, s, scale, Luma([ink]));
}

/// [`draw_text`] on an image of any pixel type (e.g. `RgbImage` with an `Rgb` ink).
pub fn draw_text_on<P: Pixel>(
    img: &mut ImageBuffer<P, Vec<P::Subpixel>>,
    x: i64,
    y: i64,
    s: &str,
    scale: u32,
    ink: P,
) {
    let w = i64::from(img.width());
    for_each_block(s, scale, w.saturating_sub(x), |u, v, size| {
        fill_rect(img, x.saturating_add(u), y.saturating_add(v), size, size, ink);
    });
}

/// Draw `s` turned 90° counter-clockwise (reading bottom to top), the bottom-left corner of the first
/// character at (`x`, `y`): the text occupies columns `x .. x + 7·scale` and rows up to and including `y`.
pub fn draw_text_vertical<P: Pixel>(
    img: &mut ImageBuffer<P, Vec<P::Subpixel>>,
    x: i64,
    y: i64,
    s: &str,
    scale: u32,
    ink: P,
) {
    let h = y.saturating_add(1);
    for_each_block(s, scale, h, |u, v, size| {
        let top = y.saturating_sub(u).saturating_sub(i64::from(size)).saturating_add(1);
        fill_rect(img, x.saturating_add(v), top, size, size, ink);
    });
}

/// Call `f(u, v, scale)` for every inked `scale` x `scale` block of `s`, (u, v) its offset from the
/// text's top-left corner; characters starting at or beyond `u_limit` are skipped (they would be clipped).
fn for_each_block(s: &str, scale: u32, u_limit: i64, mut f: impl FnMut(i64, i64, u32)) {
    if scale == 0 {
        return;
    }
    let step = i64::from(ADVANCE) * i64::from(scale);
    for (i, c) in s.chars().enumerate() {
        let u0 = (i as i64).saturating_mul(step);
        if u0 >= u_limit {
            break;
        }
        for (row, bits) in glyph(c).unwrap_or(UNKNOWN).iter().enumerate() {
            for col in 0..GLYPH_WIDTH {
                if (bits >> (GLYPH_WIDTH - 1 - col)) & 1 == 1 {
                    let (du, dv) = (i64::from(col) * i64::from(scale), row as i64 * i64::from(scale));
                    f(u0.saturating_add(du), dv, scale);
                }
            }
        }
    }
}

/// Set the pixels of the `w` x `h` rectangle at (`x`, `y`) that lie inside `img` to `ink`.
fn fill_rect<P: Pixel>(img: &mut ImageBuffer<P, Vec<P::Subpixel>>, x: i64, y: i64, w: u32, h: u32, ink: P) {
    let (x0, x1) = clip(x, w, img.width());
    let (y0, y1) = clip(y, h, img.height());
    for yy in y0..y1 {
        for xx in x0..x1 {
            img.put_pixel(xx, yy, ink);
        }
    }
}

/// The part of the span `start .. start + len` that lies in `0 .. limit`, as a (possibly empty) range.
fn clip(start: i64, len: u32, limit: u32) -> (u32, u32) {
    let end = start.saturating_add(i64::from(len)).clamp(0, i64::from(limit));
    let start = start.clamp(0, end);
    (start as u32, end as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COVERED: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ .,-+#=:/_()<>%";

    #[test]
    fn covered_glyphs_are_non_empty_and_lowercase_folds() {
        for c in COVERED.chars() {
            let g = glyph(c).unwrap_or_else(|| panic!("{c:?} has no glyph"));
            assert!(g.iter().all(|r| r & !0x1F == 0), "{c:?} uses more than 5 columns");
            assert_eq!(g.iter().all(|&r| r == 0), c == ' ', "{c:?}");
        }
        assert_eq!(glyph('q'), glyph('Q'));
        assert_eq!(glyph('~'), None);
        assert_eq!(glyph('é'), None);
    }

    #[test]
    fn glyphs_are_distinct() {
        let digits: Vec<_> = ('0'..='9').map(|c| glyph(c).unwrap()).collect();
        for i in 0..10 {
            for j in 0..i {
                assert_ne!(digits[i], digits[j], "digits {j} and {i} look the same");
            }
        }
        for c in COVERED.chars() {
            assert_ne!(glyph(c), Some(UNKNOWN), "{c:?} looks like the unknown box");
        }
    }

    #[test]
    fn text_width_counts_characters() {
        assert_eq!(text_width("", 3), 0);
        assert_eq!(text_width("0", 1), 5);
        assert_eq!(text_width("0.5", 1), 17);
        assert_eq!(text_width("0.5", 2), 34);
        assert_eq!(text_width("é", 1), 5);
        assert_eq!(text_width("abc", u32::MAX), u32::MAX);
    }

    #[test]
    fn draws_the_dot_of_0_5_where_expected() {
        for scale in [1u32, 2] {
            let mut img = GrayImage::from_pixel(40, 20, Luma([255]));
            draw_text(&mut img, 3, 2, "0.5", scale, 0);
            // '.' is character 1: its cell starts at x = 3 + 6·scale; ink in columns 1..3, rows 5..7.
            let (cx, cy) = (3 + 6 * scale, 2);
            for v in 0..7 * scale {
                for u in 0..5 * scale {
                    let ink = (scale..3 * scale).contains(&u) && (5 * scale..7 * scale).contains(&v);
                    let p = img.get_pixel(cx + u, cy + v)[0];
                    assert_eq!(p, if ink { 0 } else { 255 }, "scale {scale}, ({u}, {v}) of '.'");
                }
            }
            // Top-left of '0' (row 0 = 01110) is blank, (1, 0) is ink; '5' starts with a full row.
            assert_eq!(img.get_pixel(3, 2)[0], 255);
            assert_eq!(img.get_pixel(3 + scale, 2)[0], 0);
            assert_eq!(img.get_pixel(3 + 12 * scale, 2)[0], 0);
        }
    }

    #[test]
    fn unknown_characters_draw_a_box() {
        let mut img = GrayImage::from_pixel(8, 8, Luma([255]));
        draw_text(&mut img, 0, 0, "~", 1, 0);
        assert_eq!(img.get_pixel(0, 1)[0], 0);
        assert_eq!(img.get_pixel(2, 3)[0], 255);
        assert_eq!(img.get_pixel(0, 0)[0], 255);
    }

    #[test]
    fn clipping_never_panics() {
        let mut img = GrayImage::from_pixel(10, 10, Luma([255]));
        let long = "W".repeat(10_000);
        for &x in &[i64::MIN, -1_000_000, -7, -1, 0, 5, 9, 10, 1 << 40, i64::MAX] {
            for &y in &[i64::MIN, -3, 0, 8, 9, 10, i64::MAX] {
                for scale in [0, 1, 3, u32::MAX] {
                    draw_text(&mut img, x, y, "0.5%#W~", scale, 0);
                    draw_text_vertical(&mut img, x, y, "0.5%#W~", scale, Luma([0]));
                }
                draw_text(&mut img, x, y, &long, 1, 0);
            }
        }
        // "W" at (-2, -3): its column 2 lands at x = 0 and rows 3..7 at y = 0..4 (row 3 of W is 10101).
        let mut img = GrayImage::from_pixel(10, 10, Luma([255]));
        draw_text(&mut img, -2, -3, "W", 1, 0);
        assert_eq!(img.get_pixel(0, 0)[0], 0);
        assert_eq!(img.get_pixel(1, 0)[0], 255);
        assert_eq!(img.get_pixel(2, 0)[0], 0);
    }

    #[test]
    fn vertical_text_reads_bottom_to_top() {
        let mut img = GrayImage::from_pixel(10, 20, Luma([255]));
        // '-' is row 3 of the glyph, columns 0..5: turned, column x = 3 + 3, rows y − 4 ..= y.
        draw_text_vertical(&mut img, 3, 15, "-", 1, Luma([0]));
        for y in 0..20 {
            for x in 0..10 {
                let ink = x == 6 && (11..=15).contains(&y);
                assert_eq!(img.get_pixel(x, y)[0], if ink { 0 } else { 255 }, "({x}, {y})");
            }
        }
    }
}

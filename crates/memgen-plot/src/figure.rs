//! Labeled image tables, like the figures of Kadkhodaie et al. (2024): a header line of column titles,
//! then rows of grayscale images side by side, each with a text label centred below it.
//!
//! Layout (all in output pixels, `t` = `text_scale`, `line` = 8·t the height of a text line including its
//! 1-font-pixel spacing, each image `height·scale` x `width·scale`):
//!
//! * column `c` starts at x = `pad + c·(width·scale + pad)`; the output is `cols·(width·scale + pad) + pad`
//!   wide;
//! * the header line starts at y = `pad`; image row `r` starts at
//!   y = `pad + line + pad + r·(height·scale + t + line + pad)`, and its labels at `t` below the images;
//!   the output ends `pad` below the last label line;
//! * titles and labels are centred on their column and truncated to the characters that fit in
//!   `width·scale + pad` pixels (so neighbouring labels never overlap).

use crate::font::{self, ADVANCE, LINE_HEIGHT};
use crate::{Error, Result};
use image::{GrayImage, Luma};

/// One entry of a table: an image of `height` x `width` f32 values (row-major) and its label.
#[derive(Debug, Clone)]
pub struct Cell<'a> {
    pub image: &'a [f32],
    pub label: String,
}

/// A table of labeled images: `header[c]` is the title of column `c`, and every row has one cell per
/// column.
#[derive(Debug, Clone)]
pub struct LabeledTable<'a> {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell<'a>>>,
    pub height: usize,
    pub width: usize,
}

/// Appearance of a [`LabeledTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableConfig {
    /// Integer upscaling factor per image pixel (nearest neighbour).
    pub scale: usize,
    /// Pixels of padding between and around images and text lines.
    pub pad: usize,
    /// Gray level of the background (0..255).
    pub background: u8,
    /// Gray level of the text.
    pub ink: u8,
    /// Integer scale of the 5x7 bitmap font (0 draws no text and leaves no room for it).
    pub text_scale: u32,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig { scale: 2, pad: 4, background: 255, ink: 0, text_scale: 1 }
    }
}

impl LabeledTable<'_> {
    /// Render to an 8-bit gray image laid out as in the module docs, image values mapped
    /// v ↦ round(255 · clamp(v, 0, 1)) as in [`crate::Grid::render`].
    pub fn render(&self, cfg: &TableConfig) -> Result<GrayImage> {
        self.check(cfg)?;
        let (out_w, out_h) = self.size(cfg);
        let too_big = || Error::Invalid(format!("a table of {out_w} x {out_h} pixels is too large"));
        let (w32, h32) =
            (u32::try_from(out_w).map_err(|_| too_big())?, u32::try_from(out_h).map_err(|_| too_big())?);
        let mut out = GrayImage::from_pixel(w32, h32, Luma([cfg.background]));
        for (c, title) in self.header.iter().enumerate() {
            self.draw_label(&mut out, cfg, c, cfg.pad, title);
        }
        let label_dy = self.height * cfg.scale + cfg.text_scale as usize;
        for (r, row) in self.rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let (x0, y0) = self.cell_origin(cfg, r, c);
                self.blit(&mut out, cfg.scale, x0, y0, cell.image);
                self.draw_label(&mut out, cfg, c, y0 + label_dy, &cell.label);
            }
        }
        Ok(out)
    }

    /// Top-left pixel (x, y) of the image of cell (`row`, `col`) in the output of [`Self::render`].
    pub fn cell_origin(&self, cfg: &TableConfig, row: usize, col: usize) -> (usize, usize) {
        let line = Self::line(cfg);
        let x = cfg.pad + col * (self.width * cfg.scale + cfg.pad);
        let y = 2 * cfg.pad + line + row * self.row_stride(cfg);
        (x, y)
    }

    /// Output width and height in pixels.
    fn size(&self, cfg: &TableConfig) -> (usize, usize) {
        let w = self.header.len() * (self.width * cfg.scale + cfg.pad) + cfg.pad;
        let h = 2 * cfg.pad + Self::line(cfg) + self.rows.len() * self.row_stride(cfg);
        (w, h)
    }

    /// Height of one text line in output pixels.
    fn line(cfg: &TableConfig) -> usize {
        (LINE_HEIGHT * cfg.text_scale) as usize
    }

    /// Vertical distance from one image row to the next: image, gap of `t`, label line, padding.
    fn row_stride(&self, cfg: &TableConfig) -> usize {
        self.height * cfg.scale + cfg.text_scale as usize + Self::line(cfg) + cfg.pad
    }

    /// Errors for an empty table, zero scale, rows of the wrong length and images of the wrong size.
    fn check(&self, cfg: &TableConfig) -> Result<()> {
        if self.header.is_empty() || cfg.scale == 0 || self.height * self.width == 0 {
            return Err(Error::Invalid(
                "a table needs at least one column, non-empty images and scale >= 1".into(),
            ));
        }
        let cols = self.header.len();
        for (r, row) in self.rows.iter().enumerate() {
            if row.len() != cols {
                return Err(Error::Invalid(format!(
                    "row {r} has {} cells, the header has {cols} columns",
                    row.len()
                )));
            }
            if let Some(c) = row.iter().position(|cell| cell.image.len() != self.height * self.width) {
                return Err(Error::Invalid(format!(
                    "row {r}, column {c}: the image has {} values, expected {} x {} = {}",
                    row[c].image.len(),
                    self.height,
                    self.width,
                    self.height * self.width
                )));
            }
        }
        Ok(())
    }

    /// Copy `image`, scaled up `scale` times, to the output with its top-left corner at (`x0`, `y0`).
    fn blit(&self, out: &mut GrayImage, scale: usize, x0: usize, y0: usize, image: &[f32]) {
        for y in 0..self.height * scale {
            for x in 0..self.width * scale {
                let v = image[(y / scale) * self.width + x / scale];
                let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                out.put_pixel((x0 + x) as u32, (y0 + y) as u32, Luma([g]));
            }
        }
    }

    /// Draw `text` centred on column `col` with its top at `y`, truncated to what fits in the column.
    fn draw_label(&self, out: &mut GrayImage, cfg: &TableConfig, col: usize, y: usize, text: &str) {
        let t = cfg.text_scale;
        if t == 0 {
            return;
        }
        let cw = self.width * cfg.scale;
        let fits = (cw + cfg.pad + t as usize) / (ADVANCE * t) as usize;
        let text: String = text.chars().take(fits).collect();
        let x0 = self.cell_origin(cfg, 0, col).0 as i64;
        let x = x0 + (cw as i64 - i64::from(font::text_width(&text, t))) / 2;
        font::draw_text(out, x, y as i64, &text, t, cfg.ink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell<'a>(image: &'a [f32], label: &str) -> Cell<'a> {
        Cell { image, label: label.into() }
    }

    #[test]
    fn places_image_cells() {
        let a = [0.0, 1.0, 0.5, 2.0];
        let b = [0.25, 0.0, 0.0, -1.0];
        let table = LabeledTable {
            header: vec!["A".into(), "B".into()],
            rows: vec![vec![cell(&a, "x"), cell(&b, "y")], vec![cell(&b, "z"), cell(&a, "w")]],
            height: 2,
            width: 2,
        };
        let cfg = TableConfig { scale: 3, pad: 2, background: 200, ink: 0, text_scale: 1 };
        let out = table.render(&cfg).unwrap();
        // Column stride 2·3 + 2 = 8: width 2·8 + 2 = 18. Rows start at 2 + 8 + 2 = 12, stride 6 + 1 + 8 + 2 = 17.
        assert_eq!((out.width(), out.height()), (18, 12 + 2 * 17));
        assert_eq!(table.cell_origin(&cfg, 1, 1), (10, 29));
        // Cell (0, 0) pixel (0, 1) = 1.0 covers x 5..8, y 12..15.
        assert_eq!(out.get_pixel(5, 12)[0], 255);
        assert_eq!(out.get_pixel(7, 14)[0], 255);
        assert_eq!(out.get_pixel(4, 12)[0], 0);
        // Cell (1, 1) = a starts at (10, 29): pixel (1, 0) = 0.5 -> 128 at y 32..35; (1, 1) = 2.0 clamps.
        assert_eq!(out.get_pixel(10, 32)[0], 128);
        assert_eq!(out.get_pixel(15, 34)[0], 255);
        // Cell (1, 0) = b at (2, 29): 0.25 -> 64; padding keeps the background.
        assert_eq!(out.get_pixel(2, 29)[0], 64);
        assert_eq!(out.get_pixel(1, 29)[0], 200);
        assert_eq!(out.get_pixel(8, 30)[0], 200);
    }

    #[test]
    fn labels_go_below_images_and_header_above() {
        let im = [0.5f32; 16 * 16];
        let table = LabeledTable {
            header: vec!["COL".into()],
            rows: vec![vec![cell(&im, "0.5")]],
            height: 16,
            width: 16,
        };
        let cfg = TableConfig::default();
        let out = table.render(&cfg).unwrap();
        let (x0, y0) = table.cell_origin(&cfg, 0, 0);
        assert_eq!((x0, y0), (4, 16));
        let ink_rows = |ys: std::ops::Range<u32>| {
            ys.filter(|&y| (0..out.width()).any(|x| out.get_pixel(x, y)[0] == 0)).collect::<Vec<_>>()
        };
        // The image is untouched gray 128 everywhere.
        for y in 16..48 {
            for x in 4..36 {
                assert_eq!(out.get_pixel(x, y)[0], 128, "({x}, {y})");
            }
        }
        // Header ink on rows 4..11, label ink on rows 49..56 (image ends at 48, 1-pixel gap), none elsewhere.
        assert_eq!(ink_rows(0..16), (4..11).collect::<Vec<_>>());
        assert_eq!(ink_rows(16..out.height()), (49..56).collect::<Vec<_>>());
        // "0.5" is 17 px wide, centred on the 32-px image: it starts at x = 4 + 7 = 11 (top row of '0': .###.).
        assert_eq!(out.get_pixel(11, 49)[0], 255);
        assert_eq!(out.get_pixel(12, 49)[0], 0);
        assert_eq!(out.height() as usize, 16 + 32 + 1 + 8 + 4);
    }

    #[test]
    fn long_labels_are_truncated_without_panicking() {
        let im = [1.0f32; 4];
        let long = "A VERY LONG LABEL THAT DOES NOT FIT".to_string();
        let table = LabeledTable {
            header: vec![long.clone(), long.clone()],
            rows: vec![vec![cell(&im, &long), cell(&im, "é~\n")]],
            height: 2,
            width: 2,
        };
        for text_scale in [0, 1, 5] {
            let cfg = TableConfig { text_scale, pad: 0, ..TableConfig::default() };
            table.render(&cfg).unwrap();
        }
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let good = [0.0f32; 4];
        let short = [0.0f32; 3];
        let table = |rows| LabeledTable { header: vec!["A".into(), "B".into()], rows, height: 2, width: 2 };
        let err = |t: LabeledTable| t.render(&TableConfig::default()).unwrap_err().to_string();
        let e = err(table(vec![vec![cell(&good, ""), cell(&good, "")], vec![cell(&good, "")]]));
        assert!(e.contains("row 1") && e.contains("1 cells") && e.contains("2 columns"), "{e}");
        let e =
            err(table(vec![vec![cell(&good, ""), cell(&good, "")], vec![cell(&good, ""), cell(&short, "")]]));
        assert!(e.contains("row 1, column 1") && e.contains("3 values"), "{e}");
        assert!(LabeledTable { header: vec![], rows: vec![], height: 2, width: 2 }
            .render(&TableConfig::default())
            .is_err());
        let cfg = TableConfig { scale: 0, ..TableConfig::default() };
        assert!(table(vec![]).render(&cfg).is_err());
        // No rows: just the header line.
        let out = table(vec![]).render(&TableConfig::default()).unwrap();
        assert_eq!((out.width(), out.height()), (2 * 8 + 4, 16));
    }
}

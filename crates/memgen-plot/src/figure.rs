//! Labeled image tables, like the figures of Kadkhodaie et al. (2024): a header line of column titles,
//! then rows of grayscale images side by side, each with a text label centred below it.
//!
//! Layout (all in output pixels; `line` = ⌈[`text::line_height`]⌉ of the font size `font_px` and
//! `gap` = ⌈font_px / 12⌉, both 0 without text; each image `height·scale` x `width·scale`):
//!
//! * column `c` starts at x = `pad + c·(width·scale + pad)`; the output is `cols·(width·scale + pad) + pad`
//!   wide;
//! * the header line starts at y = `pad`; image row `r` starts at
//!   y = `pad + line + pad + r·(height·scale + gap + line + pad)`, and its labels `gap` below the images;
//!   the output ends `pad` below the last label line;
//! * titles and labels are set in DejaVu Sans ([`crate::text`]), centred on their column, and cut (with
//!   "…") to what fits in `width·scale + pad` pixels by their measured width, so neighbouring labels
//!   never overlap.

use crate::text;
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableConfig {
    /// Integer upscaling factor per image pixel (nearest neighbour).
    pub scale: usize,
    /// Pixels of padding between and around images and text lines.
    pub pad: usize,
    /// Gray level of the background (0..255).
    pub background: u8,
    /// Gray level of the text.
    pub ink: u8,
    /// Font size of the titles and labels in px, at most [`text::MAX_DRAW_SIZE_PX`] (0 draws no text and
    /// leaves no room for it).
    pub font_px: f32,
}

/// Default font size of table titles and labels, in px.
pub const DEFAULT_FONT_PX: f32 = 12.0;

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig { scale: 2, pad: 4, background: 255, ink: 0, font_px: DEFAULT_FONT_PX }
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
        let label_dy = self.height * cfg.scale + Self::gap(cfg);
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

    /// Height of one text line in output pixels (0 without text).
    fn line(cfg: &TableConfig) -> usize {
        if cfg.font_px > 0.0 {
            text::line_height(cfg.font_px).ceil() as usize
        } else {
            0
        }
    }

    /// Gap between an image and its label in output pixels (0 without text).
    fn gap(cfg: &TableConfig) -> usize {
        if cfg.font_px > 0.0 {
            (cfg.font_px / 12.0).ceil() as usize
        } else {
            0
        }
    }

    /// Vertical distance from one image row to the next: image, gap, label line, padding.
    fn row_stride(&self, cfg: &TableConfig) -> usize {
        self.height * cfg.scale + Self::gap(cfg) + Self::line(cfg) + cfg.pad
    }

    /// Errors for an empty table, zero scale, a font size that is not in [0, [`text::MAX_DRAW_SIZE_PX`]],
    /// rows of the wrong length and images of the wrong size.
    fn check(&self, cfg: &TableConfig) -> Result<()> {
        if !(0.0..=text::MAX_DRAW_SIZE_PX).contains(&cfg.font_px) {
            return Err(Error::Invalid(format!(
                "a table's font size must be in [0, {}] px, not {}",
                text::MAX_DRAW_SIZE_PX,
                cfg.font_px
            )));
        }
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

    /// Draw `label` centred on column `col` with the top of its line at `y`, cut to what fits in the
    /// column and half the padding on either side.
    fn draw_label(&self, out: &mut GrayImage, cfg: &TableConfig, col: usize, y: usize, label: &str) {
        let size = cfg.font_px;
        if size <= 0.0 {
            return;
        }
        let cw = (self.width * cfg.scale) as f32;
        let label = text::truncate(label, size, cw + cfg.pad as f32);
        let x0 = self.cell_origin(cfg, 0, col).0 as f32;
        let x = x0 + (cw - text::text_width(&label, size)) / 2.0;
        text::draw_text(out, x, y as f32 + text::ascent(size), &label, size, Luma([cfg.ink]));
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
        let cfg = TableConfig { scale: 3, pad: 2, background: 200, ink: 0, font_px: 12.0 };
        let out = table.render(&cfg).unwrap();
        // Text lines are ⌈1.164·12⌉ = 14 px, the label gap 1. Column stride 2·3 + 2 = 8: width
        // 2·8 + 2 = 18. Rows start at 2 + 14 + 2 = 18, stride 6 + 1 + 14 + 2 = 23.
        assert_eq!((out.width(), out.height()), (18, 18 + 2 * 23));
        assert_eq!(table.cell_origin(&cfg, 1, 1), (10, 41));
        // Cell (0, 0) pixel (0, 1) = 1.0 covers x 5..8, y 18..21.
        assert_eq!(out.get_pixel(5, 18)[0], 255);
        assert_eq!(out.get_pixel(7, 20)[0], 255);
        assert_eq!(out.get_pixel(4, 18)[0], 0);
        // Cell (1, 1) = a starts at (10, 41): pixel (1, 0) = 0.5 -> 128 at y 44..47; (1, 1) = 2.0 clamps.
        assert_eq!(out.get_pixel(10, 44)[0], 128);
        assert_eq!(out.get_pixel(15, 46)[0], 255);
        // Cell (1, 0) = b at (2, 41): 0.25 -> 64; padding keeps the background.
        assert_eq!(out.get_pixel(2, 41)[0], 64);
        assert_eq!(out.get_pixel(1, 41)[0], 200);
        assert_eq!(out.get_pixel(8, 42)[0], 200);
        // Without text there is no room for it.
        let cfg = TableConfig { font_px: 0.0, ..cfg };
        assert_eq!(table.render(&cfg).unwrap().height(), 4 + 2 * (6 + 2));
        assert_eq!(table.cell_origin(&cfg, 1, 0), (2, 4 + 8));
    }

    /// Rows of `out` in `ys` with a pixel darker than 128.
    fn ink_rows(out: &GrayImage, ys: std::ops::Range<u32>) -> Vec<u32> {
        ys.filter(|&y| (0..out.width()).any(|x| out.get_pixel(x, y)[0] < 128)).collect()
    }

    #[test]
    fn labels_go_below_images_and_header_above() {
        let im = [0.5f32; 16 * 16];
        let table = |title: &str, label: &str| LabeledTable {
            header: vec![title.into()],
            rows: vec![vec![cell(&im, label)]],
            height: 16,
            width: 16,
        };
        let cfg = TableConfig::default();
        let out = table("Col", "0.5").render(&cfg).unwrap();
        let (x0, y0) = table("Col", "0.5").cell_origin(&cfg, 0, 0);
        assert_eq!((x0, y0), (4, 22));
        assert_eq!(out.height() as usize, 22 + 32 + 1 + 14 + 4);
        // The image is untouched gray 128 everywhere.
        for y in 22..54 {
            for x in 4..36 {
                assert_eq!(out.get_pixel(x, y)[0], 128, "({x}, {y})");
            }
        }
        // Header ink within its line (rows 4..18), label ink within the label line (rows 55..69).
        let head = ink_rows(&out, 0..22);
        assert!(!head.is_empty() && head[0] >= 4 && *head.last().unwrap() < 18, "{head:?}");
        let below = ink_rows(&out, 54..out.height());
        assert!(!below.is_empty() && below[0] >= 55 && *below.last().unwrap() < 69, "{below:?}");
        // "0.5" is centred on the 32-px image (columns 4..36).
        let cols: Vec<u32> =
            (0..out.width()).filter(|&x| (55..69).any(|y| out.get_pixel(x, y)[0] < 128)).collect();
        let mid = (cols[0] + cols.last().unwrap()) as f32 / 2.0;
        assert!((mid - 19.5).abs() <= 1.5, "{cols:?}");
        // Mixed case: "Col" and "COL" are drawn differently.
        assert_ne!(out, table("COL", "0.5").render(&cfg).unwrap());
    }

    #[test]
    fn long_labels_are_truncated_without_panicking() {
        let im = [1.0f32; 4];
        let long = "A very long label that does not fit".to_string();
        let table = LabeledTable {
            header: vec![long.clone(), long.clone()],
            rows: vec![vec![cell(&im, &long), cell(&im, "é~\n")]],
            height: 2,
            width: 2,
        };
        for font_px in [0.0, 1.0, 12.0, 60.0] {
            let cfg = TableConfig { font_px, pad: 0, ..TableConfig::default() };
            table.render(&cfg).unwrap();
        }
        // A label cut to its column: its ink stays within the column and half the padding either side,
        // and it ends with "…".
        let im = [1.0f32; 16 * 16];
        let table = LabeledTable {
            header: vec![String::new(), String::new()],
            rows: vec![vec![cell(&im, &long), cell(&im, "")]],
            height: 16,
            width: 16,
        };
        let cfg = TableConfig { background: 255, ..TableConfig::default() };
        let out = table.render(&cfg).unwrap();
        let (x0, y0) = table.cell_origin(&cfg, 0, 0);
        let rows = (y0 + 33) as u32..out.height();
        let cols: Vec<u32> =
            (0..out.width()).filter(|&x| rows.clone().any(|y| out.get_pixel(x, y)[0] < 200)).collect();
        assert!(!cols.is_empty(), "the label is drawn");
        assert!(cols[0] as usize >= x0 - 2 && *cols.last().unwrap() as usize <= x0 + 32 + 2, "{cols:?}");
        let cut = text::truncate(&long, 12.0, 36.0);
        assert!(cut.ends_with('…') && cut.len() < long.len(), "{cut}");
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
        assert_eq!((out.width(), out.height()), (2 * 8 + 4, 2 * 4 + 14));
        for font_px in [-1.0, f32::NAN, 2000.0] {
            let cfg = TableConfig { font_px, ..TableConfig::default() };
            assert!(table(vec![]).render(&cfg).is_err(), "{font_px}");
        }
    }
}

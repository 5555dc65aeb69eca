//! Image grids: tile n grayscale images of h x w into rows of `cols`, with a padding border,
//! each pixel scaled up `scale` times (nearest neighbour), values clamped to [0,1] and mapped to 0..255.

use crate::{Error, Result};
use image::GrayImage;
use std::path::Path;

/// Layout of a grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridConfig {
    /// Images per row.
    pub cols: usize,
    /// Pixels of padding between and around images.
    pub pad: usize,
    /// Integer upscaling factor per pixel.
    pub scale: usize,
    /// Gray level of the padding (0..255).
    pub background: u8,
}

impl Default for GridConfig {
    fn default() -> Self {
        GridConfig { cols: 8, pad: 2, scale: 2, background: 255 }
    }
}

/// A grid of single-channel images, each `height` x `width` f32 values, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Grid<'a> {
    pub images: &'a [&'a [f32]],
    pub height: usize,
    pub width: usize,
}

impl Grid<'_> {
    /// Render to an 8-bit gray image: v ↦ round(255 · clamp(v, 0, 1)).
    pub fn render(&self, cfg: &GridConfig) -> Result<GrayImage> {
        let n = self.images.len();
        if n == 0 || cfg.cols == 0 || cfg.scale == 0 {
            return Err(Error::Invalid("a grid needs at least one image, one column and scale >= 1".into()));
        }
        if let Some(bad) = self.images.iter().position(|im| im.len() != self.height * self.width) {
            return Err(Error::Invalid(format!(
                "image {bad} has {} values, expected {}",
                self.images[bad].len(),
                self.height * self.width
            )));
        }
        let cols = cfg.cols.min(n);
        let rows = n.div_ceil(cols);
        let (ch, cw) = (self.height * cfg.scale, self.width * cfg.scale);
        let out_w = cols * (cw + cfg.pad) + cfg.pad;
        let out_h = rows * (ch + cfg.pad) + cfg.pad;
        let mut out = GrayImage::from_pixel(out_w as u32, out_h as u32, image::Luma([cfg.background]));
        for (k, im) in self.images.iter().enumerate() {
            let (x0, y0) = (cfg.pad + (k % cols) * (cw + cfg.pad), cfg.pad + (k / cols) * (ch + cfg.pad));
            for y in 0..ch {
                for x in 0..cw {
                    let v = im[(y / cfg.scale) * self.width + x / cfg.scale];
                    let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                    out.put_pixel((x0 + x) as u32, (y0 + y) as u32, image::Luma([g]));
                }
            }
        }
        Ok(out)
    }
}

/// Encode `img` as PNG and write it atomically (temporary file, then rename).
pub fn save_png(img: &GrayImage, path: &Path) -> Result<()> {
    crate::write_png_atomic(img, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_and_scales_pixels() {
        let a = [0.0, 1.0, 0.5, 2.0];
        let b = [-1.0, 0.25, 0.75, 1.0];
        let imgs: [&[f32]; 2] = [&a, &b];
        let g = Grid { images: &imgs, height: 2, width: 2 };
        let cfg = GridConfig { cols: 2, pad: 1, scale: 2, background: 7 };
        let out = g.render(&cfg).unwrap();
        assert_eq!((out.width(), out.height()), (11, 6));
        assert_eq!(out.get_pixel(0, 0)[0], 7);
        // Image a: pixel (0,1) = 1.0 covers x 3..5, y 1..3.
        assert_eq!(out.get_pixel(3, 1)[0], 255);
        assert_eq!(out.get_pixel(2, 2)[0], 0);
        assert_eq!(out.get_pixel(1, 3)[0], 128); // 0.5 -> 127.5 rounds to 128
        assert_eq!(out.get_pixel(4, 4)[0], 255); // 2.0 clamps
                                                 // Image b starts at x = 1 + 4 + 1 = 6; -1 clamps to 0, 0.25 -> 64.
        assert_eq!(out.get_pixel(6, 1)[0], 0);
        assert_eq!(out.get_pixel(8, 1)[0], 64);
        assert!(Grid { images: &[&a[..3]], height: 2, width: 2 }.render(&cfg).is_err());
    }
}

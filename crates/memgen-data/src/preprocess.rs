//! Preprocessing: crop, grayscale, resize to the experiment's side, all in f32.
//!
//! Order: crop (rows `top..top+height`, cols `left..left+width`) → grayscale (mean of R, G, B) →
//! resize to `side` x `side` (exact area averaging, or bicubic / Catmull-Rom clamped to [0,1]).

use crate::{invalid, Image, Result};
use serde::{Deserialize, Serialize};

/// A crop window in source pixels: rows `top..top+height`, columns `left..left+width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// How to resample to the target side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Output pixel = area-weighted mean of the source pixels it covers (exact for any ratio).
    #[default]
    Area,
    /// Catmull-Rom bicubic interpolation, clamped to [0,1].
    Bicubic,
}

/// What to do to every source image before it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessConfig {
    /// Optional crop applied first.
    pub crop: Option<Crop>,
    /// Convert colour images to gray as the mean of R, G and B.
    pub grayscale: bool,
    /// Target side length (images become side x side); None keeps the size.
    pub side: Option<usize>,
    /// Resampling method for the resize.
    pub resize: Resize,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig { crop: None, grayscale: true, side: None, resize: Resize::Area }
    }
}

impl PreprocessConfig {
    /// Apply crop → grayscale → resize to one image.
    pub fn apply(&self, img: &Image) -> Result<Image> {
        let img = match &self.crop {
            Some(c) => crop(img, c)?,
            None => img.clone(),
        };
        let img = if self.grayscale { to_gray(&img) } else { img };
        match self.side {
            Some(side) if side != img.height || side != img.width => {
                if img.height != img.width {
                    return Err(invalid!(
                        "images are {}x{} (height x width) after cropping; resizing to {side}x{side} would distort them: add a square crop",
                        img.height,
                        img.width
                    ));
                }
                Ok(match self.resize {
                    Resize::Area => resize_area(&img, side, side),
                    Resize::Bicubic => resize_bicubic(&img, side, side),
                })
            }
            _ => Ok(img),
        }
    }
}

/// Cut `c` out of `img`; the window must lie inside the image.
pub fn crop(img: &Image, c: &Crop) -> Result<Image> {
    if c.height == 0 || c.width == 0 || c.top + c.height > img.height || c.left + c.width > img.width {
        return Err(invalid!(
            "crop rows {}..{}, cols {}..{} does not fit in a {}x{} image",
            c.top,
            c.top + c.height,
            c.left,
            c.left + c.width,
            img.height,
            img.width
        ));
    }
    let ch = img.channels;
    let mut pixels = Vec::with_capacity(c.height * c.width * ch);
    for r in c.top..c.top + c.height {
        let start = (r * img.width + c.left) * ch;
        pixels.extend_from_slice(&img.pixels[start..start + c.width * ch]);
    }
    Ok(Image { width: c.width, height: c.height, channels: ch, pixels })
}

/// Grayscale as the mean of the colour channels: g = (R + G + B) / 3. Gray images pass through.
pub fn to_gray(img: &Image) -> Image {
    if img.channels == 1 {
        return img.clone();
    }
    let ch = img.channels as f32;
    let pixels = img.pixels.chunks_exact(img.channels).map(|p| p.iter().sum::<f32>() / ch).collect();
    Image { width: img.width, height: img.height, channels: 1, pixels }
}

/// 1-D area weights: output cell `i` covers source interval [i·n/m, (i+1)·n/m); each source pixel
/// contributes the length of its overlap, normalised so the weights of a cell sum to 1.
fn area_weights(n: usize, m: usize) -> Vec<Vec<(usize, f64)>> {
    let scale = n as f64 / m as f64;
    (0..m)
        .map(|i| {
            let (lo, hi) = (i as f64 * scale, (i + 1) as f64 * scale);
            let first = lo.floor() as usize;
            let last = (hi.ceil() as usize).min(n);
            (first..last)
                .map(|s| (s, (hi.min(s as f64 + 1.0) - lo.max(s as f64)) / scale))
                .filter(|&(_, w)| w > 0.0)
                .collect()
        })
        .collect()
}

/// Exact area resampling (separable box integration), per channel, computed in f64.
pub fn resize_area(img: &Image, height: usize, width: usize) -> Image {
    let (rw, cw) = (area_weights(img.height, height), area_weights(img.width, width));
    let ch = img.channels;
    // Columns first: (H, w, ch), then rows: (h, w, ch).
    let mut tmp = vec![0f64; img.height * width * ch];
    for r in 0..img.height {
        for (j, ws) in cw.iter().enumerate() {
            for k in 0..ch {
                tmp[(r * width + j) * ch + k] =
                    ws.iter().map(|&(s, w)| w * img.pixels[(r * img.width + s) * ch + k] as f64).sum();
            }
        }
    }
    let mut pixels = vec![0f32; height * width * ch];
    for (i, ws) in rw.iter().enumerate() {
        for j in 0..width * ch {
            pixels[i * width * ch + j] =
                ws.iter().map(|&(s, w)| w * tmp[s * width * ch + j]).sum::<f64>() as f32;
        }
    }
    Image { width, height, channels: ch, pixels }
}

/// Catmull-Rom bicubic resampling (the `image` crate's filter), clamped to [0,1].
pub fn resize_bicubic(img: &Image, height: usize, width: usize) -> Image {
    use ::image::{imageops, ImageBuffer, Luma};
    let channels: Vec<Vec<f32>> = (0..img.channels)
        .map(|k| {
            let plane: Vec<f32> = img.pixels.iter().skip(k).step_by(img.channels).copied().collect();
            let buf: ImageBuffer<Luma<f32>, Vec<f32>> =
                ImageBuffer::from_raw(img.width as u32, img.height as u32, plane)
                    .expect("plane size matches");
            imageops::resize(&buf, width as u32, height as u32, imageops::FilterType::CatmullRom).into_raw()
        })
        .collect();
    let mut pixels = vec![0f32; height * width * img.channels];
    for (k, plane) in channels.iter().enumerate() {
        for (p, v) in plane.iter().enumerate() {
            pixels[p * img.channels + k] = v.clamp(0.0, 1.0);
        }
    }
    Image { width, height, channels: img.channels, pixels }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> Image {
        Image::gray(h, w, (0..h * w).map(|i| i as f32 / (h * w) as f32).collect())
    }

    #[test]
    fn area_integer_factor_is_block_mean() {
        let img = ramp(6, 6);
        let out = resize_area(&img, 3, 3);
        for i in 0..3 {
            for j in 0..3 {
                let m: f32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .iter()
                    .map(|(a, b)| img.pixels[(2 * i + a) * 6 + 2 * j + b])
                    .sum::<f32>()
                    / 4.0;
                assert!((out.pixels[i * 3 + j] - m).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn area_keeps_constants_and_the_mean_for_any_ratio() {
        let img = ramp(64, 64);
        for side in [5, 20, 28, 32, 63] {
            let out = resize_area(&img, side, side);
            let mean_in: f64 = img.pixels.iter().map(|&v| v as f64).sum::<f64>() / img.area() as f64;
            let mean_out: f64 = out.pixels.iter().map(|&v| v as f64).sum::<f64>() / out.area() as f64;
            assert!((mean_in - mean_out).abs() < 1e-6, "side {side}: {mean_in} vs {mean_out}");
        }
        let flat = Image::gray(7, 7, vec![0.3; 49]);
        assert!(resize_area(&flat, 3, 3).pixels.iter().all(|&v| (v - 0.3).abs() < 1e-6));
    }

    #[test]
    fn crop_and_gray() {
        let rgb = Image { width: 3, height: 2, channels: 3, pixels: (0..18).map(|v| v as f32).collect() };
        let c = crop(&rgb, &Crop { top: 1, left: 1, height: 1, width: 2 }).unwrap();
        assert_eq!(c.pixels, vec![12., 13., 14., 15., 16., 17.]);
        assert_eq!(to_gray(&c).pixels, vec![13., 16.]);
        assert!(crop(&rgb, &Crop { top: 1, left: 1, height: 2, width: 1 }).is_err());
    }

    #[test]
    fn non_square_resize_is_refused() {
        let cfg = PreprocessConfig { side: Some(4), ..Default::default() };
        assert!(cfg.apply(&ramp(6, 8)).is_err());
        assert_eq!(cfg.apply(&ramp(8, 8)).unwrap().width, 4);
    }
}

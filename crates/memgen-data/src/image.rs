//! The in-memory image every source yields: f32 samples, row-major, channels interleaved.

/// An image of `height` x `width` pixels with `channels` (1 or 3) interleaved f32 samples per pixel,
/// row-major: sample (r, c, k) is at `(r * width + c) * channels + k`. 8-bit sources map v to v / 255.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub pixels: Vec<f32>,
}

impl Image {
    /// A grayscale image from row-major samples; `pixels.len()` must be `height * width`.
    pub fn gray(height: usize, width: usize, pixels: Vec<f32>) -> Self {
        debug_assert_eq!(pixels.len(), height * width);
        Image { width, height, channels: 1, pixels }
    }

    /// Decode 8-bit samples as v / 255.
    pub fn from_u8(height: usize, width: usize, channels: usize, bytes: &[u8]) -> Self {
        let pixels = bytes.iter().map(|&b| b as f32 / 255.0).collect();
        Image { width, height, channels, pixels }
    }

    /// Decode an encoded PNG/JPEG (any colour type, any bit depth) into f32 samples in [0,1],
    /// keeping 1 channel for gray images and 3 for colour ones (alpha dropped).
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        let img = ::image::load_from_memory(bytes).map_err(|e| format!("cannot decode image: {e}"))?;
        Ok(Self::from_dynamic(img))
    }

    /// Convert an [`image::DynamicImage`] without losing 8-bit exactness.
    pub fn from_dynamic(img: ::image::DynamicImage) -> Self {
        use ::image::ColorType;
        let (w, h) = (img.width() as usize, img.height() as usize);
        match img.color() {
            ColorType::L8 | ColorType::La8 => Self::from_u8(h, w, 1, img.to_luma8().as_raw()),
            ColorType::Rgb8 | ColorType::Rgba8 => Self::from_u8(h, w, 3, img.to_rgb8().as_raw()),
            ColorType::L16 | ColorType::La16 => {
                let px = img.to_luma16().as_raw().iter().map(|&v| v as f32 / 65535.0).collect();
                Image { width: w, height: h, channels: 1, pixels: px }
            }
            _ => {
                let px = img.to_rgb32f().as_raw().iter().map(|&v| v.clamp(0.0, 1.0)).collect();
                Image { width: w, height: h, channels: 3, pixels: px }
            }
        }
    }

    /// Number of pixels (height x width).
    pub fn area(&self) -> usize {
        self.width * self.height
    }
}

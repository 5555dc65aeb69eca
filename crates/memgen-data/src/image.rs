//! The in-memory image every source yields: f32 samples, row-major, channels interleaved.

/// The largest width or height [`Image::decode`] accepts (a 16384 x 16384 RGB image is 3 GiB as f32).
pub const MAX_IMAGE_SIDE: u32 = 16384;

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
    /// Images whose header declares a side above [`MAX_IMAGE_SIDE`] are refused before decoding.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        Self::decode_within(bytes, MAX_IMAGE_SIDE)
    }

    /// [`Image::decode`] refusing, from the header alone, images wider or taller than `max_side`;
    /// the decoder's own buffers are held to what an RGBA16 image of `max_side`² needs, so a corrupt
    /// file that declares a huge size cannot make it allocate more.
    pub fn decode_within(bytes: &[u8], max_side: u32) -> std::result::Result<Self, String> {
        let mut reader = ::image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| format!("cannot read image: {e}"))?;
        let mut limits = ::image::Limits::default();
        limits.max_image_width = Some(max_side);
        limits.max_image_height = Some(max_side);
        limits.max_alloc = Some(8 * u64::from(max_side) * u64::from(max_side) + (1 << 20));
        reader.limits(limits);
        let img = reader.decode().map_err(|e| match e {
            ::image::ImageError::Limits(_) => {
                format!("image larger than {max_side} x {max_side} pixels (or its decoder's buffers): refused ({e})")
            }
            e => format!("cannot decode image: {e}"),
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16 x 16 JPEG and the offset of its SOF0 height field (the width follows it).
    fn jpeg() -> (Vec<u8>, usize) {
        let img = ::image::GrayImage::from_fn(16, 16, |x, y| ::image::Luma([(x * 16 + y) as u8]));
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), ::image::ImageFormat::Jpeg).unwrap();
        let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline JPEG has SOF0");
        (bytes, sof + 5)
    }

    #[test]
    fn a_header_declaring_a_huge_image_is_refused_before_decoding() {
        let (mut bytes, at) = jpeg();
        assert_eq!(Image::decode(&bytes).unwrap().area(), 256);
        bytes[at..at + 4].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]); // 60000 x 60000
        let err = Image::decode(&bytes).unwrap_err();
        assert!(err.contains("larger than 16384 x 16384"), "{err}");
        let (mut bytes, at) = jpeg();
        bytes[at..at + 4].copy_from_slice(&[0x00, 0x20, 0x00, 0x20]); // 32 x 32, above a limit of 16
        assert!(Image::decode_within(&bytes, 16).unwrap_err().contains("larger than 16 x 16"));
    }
}

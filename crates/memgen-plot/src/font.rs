//! The names of the former bitmap font, kept for callers that measured labels with it. Text is now set
//! in the embedded DejaVu Sans by [`crate::text`]; use that for new code.

use crate::figure::DEFAULT_FONT_PX;
use crate::text;

/// Width in whole pixels (rounded up) of `s` set at `scale` times the default size of table labels
/// ([`DEFAULT_FONT_PX`], the size of `TableConfig::default()`), as [`text::text_width`] measures it;
/// 0 for an empty string or `scale` 0. Saturates instead of overflowing.
pub fn text_width(s: &str, scale: u32) -> u32 {
    let w = text::text_width(s, scale as f32 * DEFAULT_FONT_PX).ceil();
    if w >= u32::MAX as f32 {
        u32::MAX
    } else {
        w as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_at_the_table_font_size() {
        assert_eq!(text_width("", 1), 0);
        assert_eq!(text_width("abc", 0), 0);
        assert_eq!(text_width("NN in S_A", 1), text::text_width("NN in S_A", 12.0).ceil() as u32);
        assert!(text_width("NN in S_A", 2) >= 2 * text_width("NN in S_A", 1) - 1);
        assert_eq!(text_width(&"W".repeat(1000), u32::MAX), u32::MAX);
    }
}

//! A self-contained HTML report: one file that opens offline in any browser, with no network access and
//! no external CSS, JavaScript or fonts. PNG images are inlined as `data:image/png;base64,...` URIs and
//! SVG figures are inlined as `<svg>` elements.
//!
//! A [`Page`] is a title, an optional subtitle and a list of [`Block`]s rendered in order:
//!
//! ```
//! use memgen_plot::html::{Block, Page};
//!
//! let page = Page {
//!     title: "olivetti, N = 100".to_string(),
//!     subtitle: Some("unet-tiny, 20 000 steps".to_string()),
//!     blocks: vec![
//!         Block::Heading("Memorization".to_string()),
//!         Block::Table {
//!             caption: None,
//!             header: vec!["N".to_string(), "memorized".to_string()],
//!             rows: vec![vec!["100".to_string(), "0.93".to_string()]],
//!         },
//!         Block::Pre("seed = 1\n".to_string()),
//!     ],
//! };
//! let html = page.render();
//! assert!(html.starts_with("<!DOCTYPE html>"));
//! assert!(html.contains(r#"<td class="num">0.93</td>"#));
//! ```
//!
//! All text (title, headings, paragraphs, table cells, captions, preformatted text) is escaped (`&`, `<`,
//! `>`, `"`, `'`). SVG documents are the exception: they are inserted verbatim (less a leading XML
//! declaration), so they must come from a trusted generator such as this crate's plots.

use crate::plot::xml_escape;
use crate::Result;
use std::fmt::Write as _;
use std::path::Path;

/// One piece of the page, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A section heading, rendered as `<h2>`.
    Heading(String),
    /// A paragraph of plain text, rendered as `<p>` with the text escaped.
    Paragraph(String),
    /// A table with an optional caption, a header row (omitted when empty) and body rows. Cells are
    /// escaped; cells that look like numbers (see [`Page::render`]) are right-aligned.
    Table {
        /// Caption shown above the table.
        caption: Option<String>,
        /// Column titles; an empty vector gives a table without a header row.
        header: Vec<String>,
        /// Body rows; rows may have different lengths.
        rows: Vec<Vec<String>>,
    },
    /// A PNG image inlined as a base64 data URI in a `<figure>` with a `<figcaption>`. It is drawn with
    /// `image-rendering: pixelated`, so image grids stay sharp when the browser scales them.
    Png {
        /// Caption under the image, also used as its `alt` text.
        caption: String,
        /// The encoded PNG file.
        bytes: Vec<u8>,
    },
    /// An SVG document inlined in a `<figure>` with a `<figcaption>`. A leading `<?xml ...?>` declaration
    /// (and a `<!DOCTYPE ...>` without an internal subset) is removed; the rest is inserted verbatim.
    Svg {
        /// Caption under the figure.
        caption: String,
        /// The SVG document.
        svg: String,
    },
    /// Preformatted text (e.g. the experiment's TOML), rendered as `<pre>` with the text escaped.
    Pre(String),
}

/// A complete report page: rendered as `<h1>title</h1>`, the subtitle under it, then the blocks in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Page title, used for both `<title>` and the `<h1>` heading.
    pub title: String,
    /// Optional line of text under the title.
    pub subtitle: Option<String>,
    /// The content of the page, in order.
    pub blocks: Vec<Block>,
}

/// The embedded style sheet: system fonts only, a centred column of limited width (1140 px: a
/// 1200-px window shows all of it), bordered tables in a smaller font whose headers wrap, figures that
/// shrink to the column width.
const STYLE: &str = "\
body { font-family: system-ui, sans-serif; max-width: 1140px; margin: 2em auto; padding: 0 1em;
  line-height: 1.45; color: #222; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
p.subtitle { color: #555; margin-top: 0; }
h2 { font-size: 1.3em; margin-top: 1.8em; padding-bottom: 0.2em; border-bottom: 1px solid #ddd; }
div.table { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 0.8em; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.4em; text-align: left; vertical-align: top; }
td.num { white-space: nowrap; }
th { background: #f2f2f2; }
th.num, td.num { text-align: right; }
figure { margin: 1.2em 0; }
img { max-width: 100%; height: auto; }
figure img, figure svg { display: block; max-width: 100%; height: auto; }
figure.png img { image-rendering: pixelated; }
figcaption { color: #444; font-size: 0.9em; margin-top: 0.4em; }
pre { font-family: ui-monospace, monospace; font-size: 0.85em; background: #f6f6f6;
  border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; }
";

impl Page {
    /// The full HTML document: `<!DOCTYPE html>`, `<meta charset="utf-8">`, `<title>`, an embedded
    /// `<style>`, then the title, subtitle and blocks.
    ///
    /// Table cells are right-aligned (`class="num"`) when they look like numbers: after trimming, an
    /// optional trailing `%`, the text parses as an `f64` (so `12`, `-0.5`, `1e-3`, `NaN`, `inf`), or it is
    /// two such numbers joined by `±` (`0.93 ± 0.02`). A header cell is right-aligned when every
    /// non-empty body cell of its column is numeric. The output references no external resource.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096 + self.blocks.iter().map(block_size_hint).sum::<usize>());
        s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        let _ = writeln!(s, "<title>{}</title>", xml_escape(&self.title));
        let _ = write!(s, "<style>\n{STYLE}</style>\n</head>\n<body>\n");
        let _ = writeln!(s, "<h1>{}</h1>", xml_escape(&self.title));
        if let Some(sub) = &self.subtitle {
            let _ = writeln!(s, "<p class=\"subtitle\">{}</p>", xml_escape(sub));
        }
        for block in &self.blocks {
            render_block(&mut s, block);
        }
        s.push_str("</body>\n</html>\n");
        s
    }

    /// Render the page and write it to `path` atomically (temporary file next to it, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::write_atomic(path, self.render().as_bytes())
    }
}

/// Roughly how many bytes `block` adds to the page (to size the output buffer once).
fn block_size_hint(block: &Block) -> usize {
    match block {
        Block::Png { bytes, .. } => bytes.len() * 4 / 3 + 256,
        Block::Svg { svg, .. } => svg.len() + 256,
        Block::Pre(t) | Block::Paragraph(t) | Block::Heading(t) => t.len() + 32,
        Block::Table { rows, .. } => rows.iter().flatten().map(|c| c.len() + 24).sum::<usize>() + 256,
    }
}

fn render_block(s: &mut String, block: &Block) {
    match block {
        Block::Heading(t) => {
            let _ = writeln!(s, "<h2>{}</h2>", xml_escape(t));
        }
        Block::Paragraph(t) => {
            let _ = writeln!(s, "<p>{}</p>", xml_escape(t));
        }
        Block::Table { caption, header, rows } => render_table(s, caption.as_deref(), header, rows),
        Block::Png { caption, bytes } => {
            let caption = xml_escape(caption);
            let size = match png_size(bytes) {
                Some((w, h)) => format!(" width=\"{w}\" height=\"{h}\""),
                None => String::new(),
            };
            let _ = write!(
                s,
                "<figure class=\"png\">\n<img src=\"data:image/png;base64,{}\"{size} alt=\"{caption}\">\n\
                 <figcaption>{caption}</figcaption>\n</figure>\n",
                base64(bytes)
            );
        }
        Block::Svg { caption, svg } => {
            let _ = write!(
                s,
                "<figure class=\"svg\">\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
                strip_xml_prolog(svg).trim_end(),
                xml_escape(caption)
            );
        }
        Block::Pre(t) => {
            let _ = writeln!(s, "<pre>{}</pre>", xml_escape(t));
        }
    }
}

fn render_table(s: &mut String, caption: Option<&str>, header: &[String], rows: &[Vec<String>]) {
    s.push_str("<div class=\"table\">\n<table>\n");
    if let Some(c) = caption {
        let _ = writeln!(s, "<caption>{}</caption>", xml_escape(c));
    }
    if !header.is_empty() {
        s.push_str("<thead>\n<tr>");
        for (j, h) in header.iter().enumerate() {
            let mut column = rows.iter().filter_map(|r| r.get(j)).filter(|c| !c.trim().is_empty()).peekable();
            let numeric = column.peek().is_some() && column.all(|c| is_numeric(c));
            let _ = write!(s, "<th{}>{}</th>", if numeric { " class=\"num\"" } else { "" }, xml_escape(h));
        }
        s.push_str("</tr>\n</thead>\n");
    }
    s.push_str("<tbody>\n");
    for row in rows {
        s.push_str("<tr>");
        for cell in row {
            let class = if is_numeric(cell) { " class=\"num\"" } else { "" };
            let _ = write!(s, "<td{class}>{}</td>", xml_escape(cell));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n</div>\n");
}

/// Whether a table cell looks like a number: an `f64` literal with an optional trailing `%`, or two of
/// them joined by `±`.
fn is_numeric(cell: &str) -> bool {
    fn number(t: &str) -> bool {
        let t = t.trim();
        let t = t.strip_suffix('%').unwrap_or(t).trim_end();
        !t.is_empty() && t.parse::<f64>().is_ok()
    }
    match cell.split_once('±') {
        Some((a, b)) => number(a) && number(b),
        None => number(cell),
    }
}

/// Width and height from a PNG's IHDR chunk, if `bytes` starts like a PNG file.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Some((be(16), be(20)))
}

/// `svg` without a leading byte-order mark, `<?xml ...?>` declaration or simple `<!DOCTYPE ...>` (one
/// without an internal `[...]` subset), none of which belongs inside an HTML document.
fn strip_xml_prolog(svg: &str) -> &str {
    let mut rest = svg.trim_start_matches('\u{feff}').trim_start();
    if rest.starts_with("<?xml") {
        if let Some(end) = rest.find("?>") {
            rest = rest[end + 2..].trim_start();
        }
    }
    if rest.len() >= 9 && rest[..9].eq_ignore_ascii_case("<!DOCTYPE") {
        if let Some(end) = rest.find('>') {
            if !rest[..end].contains('[') {
                rest = rest[end + 1..].trim_start();
            }
        }
    }
    rest
}

/// Base64 encoding of `bytes` with the standard alphabet (`A-Z a-z 0-9 + /`) and `=` padding
/// (RFC 4648, section 4), as used in `data:` URIs.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward base64 decoder (standard alphabet, `=` padding required); `None` on bad input.
    fn decode(s: &str) -> Option<Vec<u8>> {
        fn value(c: u8) -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            } as u32)
        }
        let s = s.as_bytes();
        if s.len() % 4 != 0 {
            return None;
        }
        let mut out = Vec::new();
        for (k, quad) in s.chunks(4).enumerate() {
            let last = k + 1 == s.len() / 4;
            let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
            if pad > 2 || (pad > 0 && !last) {
                return None;
            }
            let mut n = 0u32;
            for &c in &quad[..4 - pad] {
                n = (n << 6) | value(c)?;
            }
            n <<= 6 * pad as u32;
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&bytes[..3 - pad]);
        }
        Some(out)
    }

    /// The bytes of the first `data:image/png;base64,` URI in `html`.
    fn first_png_data_uri(html: &str) -> Vec<u8> {
        const PREFIX: &str = "data:image/png;base64,";
        let start = html.find(PREFIX).expect("no PNG data URI") + PREFIX.len();
        let len = html[start..].find('"').expect("unterminated data URI");
        decode(&html[start..start + len]).expect("invalid base64 in data URI")
    }

    #[test]
    fn base64_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded, "base64({plain:?})");
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes());
        }
        // High bit patterns use the last two alphabet characters.
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn base64_round_trips() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..50usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    // xorshift64
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            let encoded = base64(&bytes);
            assert_eq!(encoded.len(), len.div_ceil(3) * 4);
            assert_eq!(decode(&encoded).unwrap(), bytes, "length {len}");
        }
    }

    #[test]
    fn escapes_all_text() {
        let page = Page {
            title: "A & B <i>".to_string(),
            subtitle: Some("it's \"quoted\"".to_string()),
            blocks: vec![
                Block::Heading("<h1>".to_string()),
                Block::Paragraph("x < y && y > z".to_string()),
                Block::Table {
                    caption: Some("<b>cap</b>".to_string()),
                    header: vec!["<th>".to_string()],
                    rows: vec![vec!["<script>alert('x')</script>".to_string()]],
                },
                Block::Png { caption: "\"><script>".to_string(), bytes: vec![1, 2, 3] },
                Block::Pre("[run]\nname = \"<a>\"".to_string()),
            ],
        };
        let html = page.render();
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<i>") && !html.contains("<b>") && !html.contains("<a>"));
        assert!(html.contains("&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt;"));
        assert!(html.contains("<title>A &amp; B &lt;i&gt;</title>"));
        assert!(html.contains("it&apos;s &quot;quoted&quot;"));
        assert!(html.contains("<p>x &lt; y &amp;&amp; y &gt; z</p>"));
        assert!(html.contains("<pre>[run]\nname = &quot;&lt;a&gt;&quot;</pre>"));
        assert!(html.contains("alt=\"&quot;&gt;&lt;script&gt;\""));
    }

    #[test]
    fn page_structure_is_self_contained() {
        let page = Page { title: "t".to_string(), ..Default::default() };
        let html = page.render();
        assert!(html.starts_with("<!DOCTYPE html>\n"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("<style>") && html.contains("max-width"));
        assert!(html.contains("image-rendering: pixelated"));
        assert!(!html.contains("<p class=\"subtitle\">"));
        for external in ["<link", "<script", "@import", "url(", "src=\"http", "href="] {
            assert!(!html.contains(external), "{external}");
        }
        assert!(html.trim_end().ends_with("</html>"));
    }

    #[test]
    fn numeric_cells_are_right_aligned() {
        for yes in ["12", "-0.5", " 1e-3 ", "+3", "12.5%", "0.93 ± 0.02", "NaN", "inf"] {
            assert!(is_numeric(yes), "{yes:?}");
        }
        for no in ["", " ", "abc", "1.2.3", "12 s", "%", "± 1", "0x10", "1,000"] {
            assert!(!is_numeric(no), "{no:?}");
        }
        let page = Page {
            title: "t".to_string(),
            subtitle: None,
            blocks: vec![Block::Table {
                caption: None,
                header: vec!["name".to_string(), "value".to_string()],
                rows: vec![
                    vec!["a".to_string(), "1.5".to_string()],
                    vec!["b".to_string(), String::new()],
                    vec!["c".to_string()],
                ],
            }],
        };
        let html = page.render();
        assert!(html.contains("<tr><th>name</th><th class=\"num\">value</th></tr>"), "{html}");
        assert!(html.contains("<tr><td>a</td><td class=\"num\">1.5</td></tr>"));
        assert!(html.contains("<tr><td>b</td><td></td></tr>"));
    }

    #[test]
    fn png_is_inlined_as_data_uri() {
        let img = image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 50, y as u8 * 80, 7]));
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let page = Page {
            title: "png".to_string(),
            subtitle: None,
            blocks: vec![Block::Png { caption: "samples".to_string(), bytes: png.clone() }],
        };
        let html = page.render();
        assert_eq!(first_png_data_uri(&html), png);
        assert!(html.contains("width=\"5\" height=\"3\""));
        assert!(html.contains("<figcaption>samples</figcaption>"));
        let back = image::load_from_memory(&first_png_data_uri(&html)).unwrap().to_rgb8();
        assert_eq!(back, img);
    }

    #[test]
    fn svg_is_inlined_without_xml_declaration() {
        let svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
                   width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\"/></svg>\n";
        let page = Page {
            title: "svg".to_string(),
            subtitle: None,
            blocks: vec![Block::Svg { caption: "a < b".to_string(), svg: svg.to_string() }],
        };
        let html = page.render();
        assert!(!html.contains("<?xml"), "{html}");
        assert!(html.contains("<figure class=\"svg\">\n<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(html.contains("<rect width=\"10\" height=\"10\"/></svg>\n<figcaption>a &lt; b</figcaption>"));

        let doctype = "\u{feff}<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \
                       \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">\n<svg/>";
        assert_eq!(strip_xml_prolog(doctype), "<svg/>");
        assert_eq!(strip_xml_prolog("<svg/>"), "<svg/>");
        let subset = "<!DOCTYPE svg [ <!ENTITY a \"b\"> ]><svg/>";
        assert_eq!(strip_xml_prolog(subset), subset);
    }

    #[test]
    fn save_writes_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        let page = Page {
            title: "saved".to_string(),
            subtitle: Some("sub".to_string()),
            blocks: vec![Block::Paragraph("hello".to_string())],
        };
        page.save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), page.render());
        // Saving again replaces the file.
        page.save(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("report.html")]);
        // A missing directory is an I/O error naming the path.
        let err = page.save(&dir.path().join("missing/report.html")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    /// Writes a demo page built from this crate's own grid and histogram to `$MEMGEN_HTML_DEMO` (default
    /// `<temp dir>/memgen-plot-demo.html`), for looking at in a browser or checking with
    /// `scripts/check-report.sh`: `cargo test --release -p memgen-plot demo_page -- --ignored`.
    #[test]
    #[ignore = "writes a file for manual inspection"]
    fn demo_page() {
        use crate::{Grid, GridConfig, HistogramPlot, Series};
        let path = std::env::var_os("MEMGEN_HTML_DEMO")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("memgen-plot-demo.html"));
        let (h, w) = (16, 16);
        let images: Vec<Vec<f32>> = (0..16)
            .map(|k| {
                (0..h * w)
                    .map(|i| {
                        let (y, x) = ((i / w) as f32, (i % w) as f32);
                        0.5 + 0.5 * ((x * (k + 1) as f32 * 0.2).sin() * (y * 0.4 + k as f32).cos())
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = images.iter().map(|v| v.as_slice()).collect();
        let grid = Grid { images: &refs, height: h, width: w }
            .render(&GridConfig { cols: 8, pad: 2, scale: 4, background: 255 })
            .unwrap();
        let mut png = Vec::new();
        grid.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let own: Vec<f64> = (0..200).map(|i| 0.2 + 0.003 * i as f64).collect();
        let other: Vec<f64> = (0..200).map(|i| 0.7 + 0.004 * i as f64).collect();
        let svg = HistogramPlot {
            title: "Nearest-neighbour distances".into(),
            x_label: "L2 distance".into(),
            series: vec![
                Series { name: "to own training set".into(), values: &own },
                Series { name: "to other training set".into(), values: &other },
            ],
            lo: 0.0,
            hi: 2.0,
            bins: 40,
        }
        .to_svg()
        .unwrap();
        let page = Page {
            title: "memgen report demo".to_string(),
            subtitle: Some("olivetti-32, unet-tiny, seeds 1 and 2".to_string()),
            blocks: vec![
                Block::Heading("Memorization vs N".to_string()),
                Block::Paragraph(
                    "Fraction of samples closer than the threshold to a training image <b>.".into(),
                ),
                Block::Table {
                    caption: Some("Scores per training-set size".to_string()),
                    header: vec!["N".into(), "memorized".into(), "agreement".into(), "note".into()],
                    rows: vec![
                        vec!["10".into(), "0.98".into(), "0.05 ± 0.01".into(), "<script>x</script>".into()],
                        vec!["100".into(), "0.61".into(), "0.32 ± 0.03".into(), "crossover".into()],
                        vec!["1000".into(), "0.02".into(), "0.91 ± 0.02".into(), "generalizes".into()],
                    ],
                },
                Block::Heading("Samples".to_string()),
                Block::Png { caption: "16 samples, 4x nearest-neighbour upscaled".to_string(), bytes: png },
                Block::Svg {
                    caption: "Distance histograms".to_string(),
                    svg: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{svg}"),
                },
                Block::Heading("Experiment".to_string()),
                Block::Pre("[experiment]\nname = \"olivetti-sweep\"\nsizes = [10, 100, 1000]\n".to_string()),
            ],
        };
        page.save(&path).unwrap();
        println!("wrote {}", path.display());
    }
}

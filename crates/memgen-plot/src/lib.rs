//! memgen-plot: the figures of memgen results: image grids, labeled image tables, line plots and histograms
//! (SVG and PNG, text in the embedded DejaVu Sans), and the HTML page that holds them.

mod canvas;
pub mod figure;
pub mod grid;
pub mod histogram;
pub mod html;
pub mod lineplot;
mod plot;
pub mod text;

pub use figure::{Cell, LabeledTable, TableConfig};
pub use grid::{save_png, Grid, GridConfig};
pub use histogram::{save_rgb_png, save_svg, Histogram, HistogramPlot, Series};
pub use html::{Block, Page};
pub use lineplot::{LinePlot, LineSeries, LineStyle};

use std::path::Path;

/// Errors from building or writing figures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Encode `img` as PNG and write it to `path` atomically.
fn write_png_atomic<P>(img: &image::ImageBuffer<P, Vec<u8>>, path: &Path) -> Result<()>
where
    P: image::PixelWithColorType<Subpixel = u8>,
{
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| Error::Io { path: path.to_path_buf(), source: std::io::Error::other(e) })?;
    write_atomic(path, &bytes)
}

/// Write `bytes` to `path` atomically: to `<path>.<pid>.tmp` next to it, then rename that over `path`
/// (the temporary file is removed if the write or the rename fails).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut name =
        path.file_name().ok_or_else(|| io(std::io::Error::other("not a file name")))?.to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

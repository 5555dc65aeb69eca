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
    /// A figure file that cannot be encoded or written.
    #[error(transparent)]
    File(#[from] memgen_io::FileError),
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
        .map_err(|e| memgen_io::FileError::bad_file(path, format!("cannot encode PNG: {e}")))?;
    write_atomic(path, &bytes)
}

/// [`memgen_io::write_atomic`] with this crate's error.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(memgen_io::write_atomic(path, bytes)?)
}

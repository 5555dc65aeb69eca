//! Reader for the IDX format of MNIST and Fashion-MNIST (<http://yann.lecun.com/exdb/mnist/>).
//!
//! An IDX file holds one n-dimensional array:
//!
//! | bytes            | content                                                              |
//! |------------------|----------------------------------------------------------------------|
//! | 0, 1             | `0x00 0x00`                                                          |
//! | 2                | data type: `0x08` u8, `0x09` i8, `0x0B` i16, `0x0C` i32, `0x0D` f32, `0x0E` f64 |
//! | 3                | number of dimensions `ndims`                                         |
//! | 4 .. 4+4·ndims   | each dimension as a big-endian u32                                   |
//! | then             | the values, row-major (last dimension fastest), big-endian           |
//!
//! Only type `0x08` (unsigned byte) is read here, with 1 to 4 dimensions; the data must be exactly
//! as long as the product of the dimensions. Image files are 3-d (n x rows x cols, e.g.
//! `train-images-idx3-ubyte`); label files are 1-d (`train-labels-idx1-ubyte`).
//!
//! Files may be gzip-compressed (as distributed, `*.gz`); compression is recognised by the gzip
//! magic bytes `0x1f 0x8b`, not by the file name.
//!
//! [`IdxSource`] turns image files, or directories holding them, into an [`ImageSource`] of
//! 1-channel images with samples v / 255.

use crate::{invalid, Error, Image, ImageSource, Provenance, Result, SourceImage};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The only supported IDX data type code: unsigned byte.
const TYPE_U8: u8 = 0x08;
/// The most dimensions accepted in an IDX header.
const MAX_DIMS: u8 = 4;
/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (for images: n, rows, cols).
    pub dims: Vec<usize>,
    /// The values in row-major order; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Parse an uncompressed IDX file held in `bytes`; `path` only names the file in errors.
///
/// Fails with [`memgen_io::FileError::BadFile`] (never panics) when the header is short or has a wrong magic,
/// the type is not `0x08`, `ndims` is not 1 to 4, the dimensions overflow, or the data length
/// differs from the product of the dimensions.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let (dims, header_len) = parse_header(bytes, path)?;
    let data = bytes.get(header_len..).unwrap_or_default().to_vec();
    Ok(IdxArray { dims, data })
}

/// Read the IDX file at `path`, gunzipping it first if it starts with the gzip magic bytes.
///
/// Fails with [`memgen_io::FileError::Io`] when the file cannot be read, and with [`memgen_io::FileError::BadFile`] for a
/// corrupt gzip stream or any error of [`parse_idx`].
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = if raw.starts_with(&GZIP_MAGIC) { gunzip(&raw, path)? } else { raw };
    let (dims, header_len) = parse_header(&bytes, path)?;
    bytes.drain(..header_len);
    Ok(IdxArray { dims, data: bytes })
}

/// Decompress a (possibly multi-member) gzip stream.
fn gunzip(raw: &[u8], path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw)
        .read_to_end(&mut out)
        .map_err(|e| Error::bad_file(path, format!("corrupt gzip stream: {e}")))?;
    Ok(out)
}

/// Validate the header and the data length of an IDX file; returns the dimensions and the
/// header length in bytes (where the data starts).
fn parse_header(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, usize)> {
    let bad = |msg: String| Error::bad_file(path, msg);
    let (zero0, zero1, ty, ndims) = match bytes.get(..4) {
        Some(&[a, b, c, d]) => (a, b, c, d),
        _ => return Err(bad(format!("too short for an IDX header: {} bytes, need at least 4", bytes.len()))),
    };
    if zero0 != 0 || zero1 != 0 {
        return Err(bad(format!(
            "not an IDX file: magic bytes {zero0:02x} {zero1:02x} {ty:02x} {ndims:02x}, expected 00 00 <type> <ndims>"
        )));
    }
    if ty != TYPE_U8 {
        return Err(bad(format!(
            "unsupported IDX data type 0x{ty:02X} ({}); only 0x08 (unsigned byte) is supported",
            type_name(ty)
        )));
    }
    if ndims == 0 || ndims > MAX_DIMS {
        return Err(bad(format!("unsupported number of dimensions {ndims}; expected 1 to {MAX_DIMS}")));
    }
    let header_len = 4 + 4 * ndims as usize;
    let dim_bytes = bytes.get(4..header_len).ok_or_else(|| {
        bad(format!(
            "too short for an IDX header with {ndims} dimensions: {} bytes, need {header_len}",
            bytes.len()
        ))
    })?;
    let dims: Vec<usize> =
        dim_bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow: their product does not fit in memory")))?;
    check_data_len(bytes.len() - header_len, expected, &dims, path)?;
    Ok((dims, header_len))
}

/// The data after the header must be exactly `expected` bytes long.
fn check_data_len(found: usize, expected: usize, dims: &[usize], path: &Path) -> Result<()> {
    let what = if found < expected {
        "truncated data"
    } else if found > expected {
        "trailing bytes after the data"
    } else {
        return Ok(());
    };
    Err(Error::bad_file(
        path,
        format!("{what}: dimensions {dims:?} need {expected} data bytes, found {found}"),
    ))
}

/// A readable name for an IDX data type code.
fn type_name(ty: u8) -> &'static str {
    match ty {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "16-bit integer",
        0x0C => "32-bit integer",
        0x0D => "32-bit float",
        0x0E => "64-bit float",
        _ => "unknown type",
    }
}

/// Configuration of an [`IdxSource`], as written in a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdxConfig {
    /// IDX image files (3-d, n x rows x cols, optionally gzipped) or directories. A directory
    /// contributes every file whose name contains both `images` and `idx3`, in file-name order.
    pub paths: Vec<PathBuf>,
}

/// An [`ImageSource`] over IDX image files, read in order and concatenated.
///
/// Images are 1-channel, named `"{file_name}#{i}"` with `i` the index within that file, and have
/// no group. All files must hold images of the same size.
#[derive(Debug, Clone)]
pub struct IdxSource {
    cfg: IdxConfig,
    files: Vec<PathBuf>,
    /// Images held by each file, known once the file has been read.
    counts: Vec<Option<usize>>,
}

impl IdxSource {
    /// A source for `cfg`, with directories resolved to their image files now.
    ///
    /// Fails when `cfg.paths` is empty, a path does not exist, or a directory holds no IDX image file.
    pub fn new(cfg: IdxConfig) -> Result<Self> {
        if cfg.paths.is_empty() {
            return Err(invalid!("idx source: no paths given"));
        }
        let mut files = Vec::new();
        for path in &cfg.paths {
            files.extend(resolve(path)?);
        }
        let counts = vec![None; files.len()];
        Ok(IdxSource { cfg, files, counts })
    }

    /// The image files this source reads, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// A file stands for itself; a directory for its IDX image files.
fn resolve(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let files = image_files_in(path)?;
    if files.is_empty() {
        return Err(invalid!(
            "{}: no IDX image file (a name containing \"images\" and \"idx3\") in this directory",
            path.display()
        ));
    }
    Ok(files)
}

/// The files in `dir` whose names contain `images` and `idx3`, sorted by name.
fn image_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.contains("images") && name.contains("idx3") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The `(n, rows, cols)` of a 3-d image array with non-empty images.
fn image_dims(arr: &IdxArray, path: &Path) -> Result<(usize, usize, usize)> {
    match arr.dims[..] {
        [n, rows, cols] if rows > 0 && cols > 0 => Ok((n, rows, cols)),
        [_, rows, cols] => Err(Error::bad_file(path, format!("images are empty ({rows}x{cols} pixels)"))),
        _ => Err(Error::bad_file(
            path,
            format!("expected a 3-d image array (n x rows x cols), found dims {:?}", arr.dims),
        )),
    }
}

/// The file name of `path` as used in image names.
fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Append the first `take` images of a validated `n x rows x cols` array.
fn push_images(
    out: &mut Vec<SourceImage>,
    data: &[u8],
    path: &Path,
    (rows, cols): (usize, usize),
    take: usize,
) {
    let label = file_label(path);
    let images = data.chunks_exact(rows * cols).take(take).enumerate().map(|(i, px)| SourceImage {
        image: Image::from_u8(rows, cols, 1, px),
        name: format!("{label}#{i}"),
        group: None,
    });
    out.extend(images);
}

impl ImageSource for IdxSource {
    fn provenance(&self) -> Provenance {
        let location: Vec<String> = self.cfg.paths.iter().map(|p| p.display().to_string()).collect();
        let files: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        Provenance {
            kind: "idx".into(),
            location: location.join(", "),
            revision: None,
            params: serde_json::json!({ "files": files, "images_per_file": self.counts }),
        }
    }

    fn load(&mut self, count: Option<usize>) -> Result<Vec<SourceImage>> {
        let mut out = Vec::new();
        let mut first: Option<(&Path, usize, usize)> = None;
        for (k, path) in self.files.iter().enumerate() {
            if count.is_some_and(|c| out.len() >= c) {
                break;
            }
            let arr = read_idx(path)?;
            let (n, rows, cols) = image_dims(&arr, path)?;
            let &mut (first_path, r0, c0) = first.get_or_insert((path.as_path(), rows, cols));
            if (rows, cols) != (r0, c0) {
                return Err(invalid!(
                    "{}: images are {rows}x{cols}, but {} holds {r0}x{c0} images",
                    path.display(),
                    first_path.display()
                ));
            }
            self.counts[k] = Some(n);
            let take = count.map_or(n, |c| (c - out.len()).min(n));
            push_images(&mut out, &arr.data, path, (rows, cols), take);
        }
        match count {
            Some(c) if out.len() < c => Err(invalid!(
                "idx source: asked for {c} images, but {} holds only {} images",
                self.cfg.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                out.len()
            )),
            _ => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ty: u8, dims: &[u32]) -> Vec<u8> {
        let mut b = vec![0, 0, ty, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn parses_a_valid_array() {
        let mut b = header(0x08, &[2, 3]);
        b.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let arr = parse_idx(&b, Path::new("x")).expect("valid");
        assert_eq!(arr.dims, vec![2, 3]);
        assert_eq!(arr.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn zero_sized_dimension_is_empty_data() {
        let arr = parse_idx(&header(0x08, &[0, 28, 28]), Path::new("x")).expect("valid");
        assert_eq!(arr.dims, vec![0, 28, 28]);
        assert!(arr.data.is_empty());
    }

    #[test]
    fn short_dimension_list_is_an_error() {
        let b = header(0x08, &[5, 5]);
        let err = parse_idx(&b[..9], Path::new("short.idx")).unwrap_err().to_string();
        assert!(err.contains("short.idx") && err.contains("need 12"), "{err}");
    }

    #[test]
    fn four_dims_accepted_five_rejected() {
        assert!(parse_idx(
            &header(0x08, &[1, 1, 1, 1]).into_iter().chain([7]).collect::<Vec<_>>(),
            Path::new("a")
        )
        .is_ok());
        let err = parse_idx(&header(0x08, &[1, 1, 1, 1, 1]), Path::new("a")).unwrap_err().to_string();
        assert!(err.contains("dimensions 5"), "{err}");
    }

    #[test]
    fn type_names_are_reported() {
        let err = parse_idx(&header(0x0E, &[1]), Path::new("a")).unwrap_err().to_string();
        assert!(err.contains("0x0E") && err.contains("64-bit float"), "{err}");
    }
}

//! The prepared-dataset format: a directory written once and read by every later command.
//!
//! ```text
//! DIR/images.safetensors   tensor "images", shape (N, C, H, W), dtype U8 (v = byte / 255) or F32
//! DIR/manifest.json        Manifest: source, preprocessing, count, names, groups, content hash
//! ```
//! Both files are written to a temporary name and renamed, images first, so a directory with a
//! manifest always holds a complete dataset. `content_hash` is `sha256:` + the SHA-256 of the stored
//! tensor bytes (little-endian), checked on every read.

use crate::dedup::DedupReport;
use crate::preprocess::PreprocessConfig;
use crate::{invalid, Error, Provenance, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The manifest's format tag.
pub const FORMAT: &str = "memgen-dataset/1";
/// File names inside a prepared-dataset directory.
pub const IMAGES_FILE: &str = "images.safetensors";
pub const MANIFEST_FILE: &str = "manifest.json";
const TENSOR_NAME: &str = "images";

/// How pixel values are stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageDtype {
    /// One byte per sample, v = byte / 255: lossless for 8-bit sources that were not resampled.
    U8,
    /// f32 samples, stored as computed.
    F32,
}

/// Everything known about a prepared dataset, stored as `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Recipe name, if it came from one.
    pub recipe: Option<String>,
    pub source: Provenance,
    pub preprocess: PreprocessConfig,
    pub count: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub dtype: StorageDtype,
    /// Per-image names in storage order (source file, `shard#row`, `kind#index`).
    pub names: Vec<String>,
    /// Per-image group keys (e.g. person id), if the source has them.
    pub groups: Option<Vec<String>>,
    /// Near-duplicate removal, if it was run.
    pub dedup: Option<DedupReport>,
    /// `sha256:<hex>` of the stored tensor bytes.
    pub content_hash: String,
    /// Version of memgen that wrote it.
    pub memgen_version: String,
}

/// A dataset in memory: its manifest and all pixels as f32, laid out (N, C, H, W).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedDataset {
    pub manifest: Manifest,
    pub pixels: Vec<f32>,
}

impl PreparedDataset {
    /// Number of samples per image, C·H·W.
    pub fn image_len(&self) -> usize {
        self.manifest.channels * self.manifest.height * self.manifest.width
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// All images as a candle tensor of shape (N, C, H, W).
    pub fn to_tensor(&self, device: &candle::Device) -> Result<candle::Tensor> {
        let m = &self.manifest;
        Ok(candle::Tensor::from_slice(&self.pixels, (m.count, m.channels, m.height, m.width), device)?)
    }

    /// The images at `indices`, in that order, as a tensor (len, C, H, W).
    pub fn subset_tensor(&self, indices: &[usize], device: &candle::Device) -> Result<candle::Tensor> {
        let m = &self.manifest;
        let mut data = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            if i >= m.count {
                return Err(invalid!("index {i} out of range for a dataset of {} images", m.count));
            }
            data.extend_from_slice(self.image(i));
        }
        Ok(candle::Tensor::from_vec(data, (indices.len(), m.channels, m.height, m.width), device)?)
    }

    /// Write `DIR/images.safetensors` then `DIR/manifest.json`, each atomically.
    /// `manifest.content_hash` is recomputed from the stored bytes.
    pub fn write(&mut self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let bytes = encode(&self.pixels, self.manifest.dtype);
        self.manifest.content_hash = content_hash(&bytes);
        let m = &self.manifest;
        let shape = vec![m.count, m.channels, m.height, m.width];
        let view = TensorView::new(dtype_of(m.dtype), shape, &bytes)
            .map_err(|e| invalid!("cannot build the images tensor: {e}"))?;
        let st = safetensors::serialize([(TENSOR_NAME, view)], None)
            .map_err(|e| invalid!("cannot serialise the images tensor: {e}"))?;
        write_atomic(&dir.join(IMAGES_FILE), &st)?;
        Ok(memgen_io::write_json(&dir.join(MANIFEST_FILE), &self.manifest)?)
    }

    /// Read a prepared dataset, checking shape, dtype and content hash against the manifest.
    pub fn read(dir: &Path) -> Result<Self> {
        let manifest = read_manifest(dir)?;
        let path = dir.join(IMAGES_FILE);
        let raw = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let st = SafeTensors::deserialize(&raw)
            .map_err(|e| Error::bad_file(&path, format!("not a safetensors file: {e}")))?;
        let t = st
            .tensor(TENSOR_NAME)
            .map_err(|_| Error::bad_file(&path, format!("no tensor named {TENSOR_NAME:?}")))?;
        let m = &manifest;
        let want = [m.count, m.channels, m.height, m.width];
        if t.shape() != want || t.dtype() != dtype_of(m.dtype) {
            return Err(Error::bad_file(
                &path,
                format!(
                    "tensor is {:?} {:?}, the manifest says {want:?} {:?}",
                    t.dtype(),
                    t.shape(),
                    m.dtype
                ),
            ));
        }
        if content_hash(t.data()) != m.content_hash {
            return Err(Error::bad_file(
                &path,
                "content hash differs from manifest.json: the file was modified or is corrupt",
            ));
        }
        let pixels = decode(t.data(), m.dtype);
        Ok(PreparedDataset { manifest, pixels })
    }
}

/// Read and check `DIR/manifest.json` alone (fast: no pixels).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::bad_file(
            &path,
            "not found: is this a prepared dataset directory? (create one with `memgen data prepare`)",
        ),
        _ => Error::io(&path, e),
    })?;
    let m: Manifest = serde_json::from_slice(&text)
        .map_err(|e| Error::bad_file(&path, format!("invalid manifest: {e}")))?;
    if m.format != FORMAT {
        return Err(Error::bad_file(&path, format!("format {:?}, expected {FORMAT:?}", m.format)));
    }
    if m.names.len() != m.count || m.groups.as_ref().is_some_and(|g| g.len() != m.count) {
        return Err(Error::bad_file(&path, format!("names/groups lengths differ from count {}", m.count)));
    }
    Ok(m)
}

/// The storage dtype that loses nothing: U8 when every value is exactly byte/255, else F32.
pub fn lossless_dtype(pixels: &[f32]) -> StorageDtype {
    let exact =
        pixels.iter().all(|&v| (0.0..=1.0).contains(&v) && (v * 255.0).round() as u8 as f32 / 255.0 == v);
    if exact {
        StorageDtype::U8
    } else {
        StorageDtype::F32
    }
}

fn dtype_of(d: StorageDtype) -> Dtype {
    match d {
        StorageDtype::U8 => Dtype::U8,
        StorageDtype::F32 => Dtype::F32,
    }
}

/// Encode samples for storage; U8 rounds v·255 after clamping to [0,1].
fn encode(pixels: &[f32], dtype: StorageDtype) -> Vec<u8> {
    match dtype {
        StorageDtype::U8 => pixels.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect(),
        StorageDtype::F32 => pixels.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn decode(bytes: &[u8], dtype: StorageDtype) -> Vec<f32> {
    match dtype {
        StorageDtype::U8 => bytes.iter().map(|&b| b as f32 / 255.0).collect(),
        StorageDtype::F32 => {
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

pub use memgen_io::write_atomic;

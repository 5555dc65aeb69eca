//! The one trait every image source implements, and what a source tells about itself.

use crate::{Image, Result};
use serde::{Deserialize, Serialize};

/// One image as a source yields it, with a stable name and an optional group key
/// (e.g. the person in a face photo) that splits keep on one side.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceImage {
    pub image: Image,
    /// A name that identifies the image within its source (relative path, `file#row`, index).
    pub name: String,
    /// Images with the same group key are always placed on the same side of a split.
    pub group: Option<String>,
}

/// Where a dataset came from, recorded in its manifest: enough to fetch or regenerate it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Source kind: `folder`, `hub`, `idx`, `calpha`, `gaussian`.
    pub kind: String,
    /// Path, Hub repo id or generator name.
    pub location: String,
    /// Hub commit sha, or None.
    pub revision: Option<String>,
    /// Source-specific parameters (files read, seed, alpha, spectrum, ...).
    pub params: serde_json::Value,
}

/// A source of images. Finite sources yield all their images when `count` is None and the first
/// `count` otherwise; generators (C^alpha, Gaussian) need `count` and can yield any number.
pub trait ImageSource {
    /// What the manifest records about this source.
    fn provenance(&self) -> Provenance;
    /// Read or generate the images, in a stable order.
    fn load(&mut self, count: Option<usize>) -> Result<Vec<SourceImage>>;
}

/// Provenance of a generator: kind and location `kind`, params = `cfg`'s fields plus `side`.
pub(crate) fn synthetic_provenance<T: Serialize>(kind: &str, cfg: &T, side: usize) -> Provenance {
    let mut params = serde_json::to_value(cfg).unwrap_or_else(|_| serde_json::json!({}));
    if let serde_json::Value::Object(map) = &mut params {
        map.insert("side".into(), side.into());
    }
    Provenance { kind: kind.into(), location: kind.into(), revision: None, params }
}

/// Images 0..count of a generator, made in parallel by `make(k)`, named `{kind}#{k}`, no group.
/// Generators are infinite, so `count` is required.
pub(crate) fn generate_items(
    kind: &str,
    count: Option<usize>,
    make: impl Fn(u64) -> Image + Sync,
) -> Result<Vec<SourceImage>> {
    use rayon::prelude::*;
    let n =
        count.ok_or_else(|| crate::invalid!("{kind}: a count is required (the generator is infinite)"))?;
    Ok((0..n)
        .into_par_iter()
        .map(|k| SourceImage { image: make(k as u64), name: format!("{kind}#{k}"), group: None })
        .collect())
}

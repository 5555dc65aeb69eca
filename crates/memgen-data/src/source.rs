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

//! Dataset recipes (TOML): which source, which preprocessing. Unknown keys are errors.
//!
//! ```toml
//! name = "celeba"
//! description = "CelebA aligned faces, centre 160x160 crop (Kadkhodaie et al.)"
//! [source]
//! kind = "hub"                  # folder | hub | idx | calpha | gaussian
//! repo = "nielsr/CelebA-faces"
//! files = ["data/*.parquet"]
//! [preprocess]
//! crop = { top = 29, left = 9, height = 160, width = 160 }
//! side = 80
//! [dedup]                        # optional: near-duplicate removal
//! ```
//! Relative paths in a recipe are resolved against the current directory.

use crate::calpha::{CalphaConfig, CalphaSource};
use crate::dedup::DedupConfig;
use crate::folder::{FolderConfig, FolderSource};
use crate::gaussian::{GaussianConfig, GaussianSource};
use crate::hub::{HubConfig, HubEnv, HubSource};
use crate::idx::{IdxConfig, IdxSource};
use crate::preprocess::PreprocessConfig;
use crate::{invalid, Error, ImageSource, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A dataset recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub source: SourceSpec,
    #[serde(default)]
    pub preprocess: PreprocessConfig,
    /// Near-duplicate removal; absent = keep all images.
    #[serde(default)]
    pub dedup: Option<DedupConfig>,
    /// Number of images to read (required for the synthetic generators).
    #[serde(default)]
    pub count: Option<usize>,
}

/// Which source a recipe reads, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceSpec {
    Folder(FolderConfig),
    Hub(HubConfig),
    Idx(IdxConfig),
    Calpha(CalphaConfig),
    Gaussian(GaussianConfig),
}

impl SourceSpec {
    /// Open the source. Generators produce `side` x `side` images, so they need `side`.
    pub fn open(&self, side: Option<usize>, hub: HubEnv) -> Result<Box<dyn ImageSource>> {
        let need_side =
            || side.ok_or_else(|| invalid!("synthetic sources need a side (--side or preprocess.side)"));
        Ok(match self {
            SourceSpec::Folder(c) => Box::new(FolderSource::new(c.clone())?),
            SourceSpec::Hub(c) => Box::new(HubSource::new(c.clone(), hub)?),
            SourceSpec::Idx(c) => Box::new(IdxSource::new(c.clone())?),
            SourceSpec::Calpha(c) => Box::new(CalphaSource::new(c.clone(), need_side()?)?),
            SourceSpec::Gaussian(c) => Box::new(GaussianSource::new(c.clone(), need_side()?)?),
        })
    }
}

impl Recipe {
    /// Parse a recipe from TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Recipe { path: origin.to_path_buf(), msg: e.to_string() })
    }

    /// Read and parse a recipe file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }
}

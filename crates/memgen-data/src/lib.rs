//! memgen-data: everything that turns a source of images into the exact training sets an experiment needs.
//!
//! Data flows one way: an [`ImageSource`] (image folder, Hugging Face Hub parquet, IDX, C^alpha or Gaussian
//! synthetics) yields [`SourceImage`]s; [`preprocess`] crops, converts to grayscale and resizes them; the
//! result is written once as a [`PreparedDataset`] (safetensors + JSON manifest); [`split`] draws disjoint,
//! nested, group-respecting index sets S_A(N), S_B(N) from it; [`stage`] runs these steps as the
//! `memgen data` commands do, each returning its typed record.
//!
//! Images are f32 in [0,1] (the Gaussian source excepted), shape (n, 1, H, W).

pub mod calpha;
pub mod dataset;
pub mod dedup;
pub mod error;
pub mod folder;
pub mod gaussian;
pub mod hub;
pub mod idx;
pub mod image;
pub mod parquet;
pub mod prepare;
pub mod preprocess;
pub mod recipe;
pub mod rng;
pub mod source;
pub mod split;
pub mod stage;

pub use error::{Error, Result};
pub use image::Image;
pub use source::{ImageSource, Provenance, SourceImage};

//! The training sets and the population of a linear experiment (`memgen linear --data`): the nested
//! training sets of a prepared dataset with the moments of its held-out images as the population, or
//! a stream of Gaussian images with its exact N(μ, Σ).

use crate::experiment::{Truth, TruthKind};
use crate::{Error, Result};
use faer::Mat;
use memgen_data::dataset::PreparedDataset;
use memgen_data::gaussian::{GaussianConfig, Spectrum};
use memgen_data::split::NestedSplit;
use memgen_diffusion::run::Side;
use std::path::Path;

/// Where a linear experiment's data comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct DataConfig {
    /// A prepared dataset directory, or `gaussian[:SPECTRUM]` (SPECTRUM as [`Spectrum`]'s `FromStr`;
    /// default power:1:0.05).
    pub data: String,
    /// Gaussian data: image side (d = side²). Prepared data: checked against the dataset if given.
    pub side: Option<usize>,
    /// Prepared data: the side of the nested split the training sets come from, and its seed.
    pub split: Side,
    pub split_seed: u64,
    /// Gaussian data: seed of the training images (set N is images 0..N of the stream).
    pub seed: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig { data: "gaussian".into(), side: None, split: Side::A, split_seed: 0, seed: 0 }
    }
}

/// Training sets (nested: set N is a prefix of the largest) and the population.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The largest training set's rows; set N is its first N rows.
    pub rows: Vec<f32>,
    /// Pixels per image.
    pub d: usize,
    pub truth: Truth,
    /// One line: the data and where the population comes from.
    pub description: String,
}

impl Problem {
    /// The training sets up to `n_max` images and the population of `cfg`.
    pub fn load(cfg: &DataConfig, n_max: usize) -> Result<Problem> {
        if let Some(spec) = cfg.data.strip_prefix("gaussian") {
            let side =
                cfg.side.ok_or_else(|| Error::Invalid("gaussian data needs --side (d = side²)".into()))?;
            let gauss = gaussian_config(spec.strip_prefix(':').unwrap_or(spec), cfg.seed)?;
            let (rows, truth) = gaussian_data(&gauss, side, n_max)?;
            return Ok(Problem {
                rows,
                d: side * side,
                truth,
                description: gaussian_description(&gauss, side),
            });
        }
        dataset_problem(cfg, n_max)
    }

    /// The rows of training set N (its first N images).
    pub fn rows(&self, n: usize) -> &[f32] {
        &self.rows[..n * self.d]
    }
}

/// A prepared dataset: set N is S_side(N) of its nested split, the population the moments of the
/// images in neither side of the split at `n_max`.
fn dataset_problem(cfg: &DataConfig, n_max: usize) -> Result<Problem> {
    let dir = Path::new(&cfg.data);
    let ds = PreparedDataset::read(dir)
        .map_err(|e| Error::from(e).context(format!("--data {}", dir.display())))?;
    let m = &ds.manifest;
    if cfg.side.is_some_and(|s| s != m.height || s != m.width) {
        return Err(Error::Invalid(format!(
            "--side {} does not match {} ({}x{}); prepare the data at that side",
            cfg.side.unwrap_or(0),
            dir.display(),
            m.height,
            m.width
        )));
    }
    let split = NestedSplit::new(m.count, m.groups.as_deref(), cfg.split_seed);
    let (sa, sb) = split
        .subsets(n_max)
        .map_err(|e| Error::from(e).context(format!("--n {n_max} on {}", dir.display())))?;
    let train = if cfg.split == Side::A { sa } else { sb };
    let used: std::collections::HashSet<usize> = sa.iter().chain(sb).copied().collect();
    let held: Vec<usize> = (0..m.count).filter(|i| !used.contains(i)).collect();
    let d = ds.image_len();
    if held.len() < 2 {
        return Err(Error::Invalid(format!(
            "{}: no images are left outside both training sides at N = {n_max} to estimate the population",
            dir.display()
        )));
    }
    let rows: Vec<f32> = train.iter().flat_map(|&i| ds.image(i).to_vec()).collect();
    let held_rows: Vec<f32> = held.iter().flat_map(|&i| ds.image(i).to_vec()).collect();
    let truth = Truth::estimated(&held_rows, d)?;
    let description = format!(
        "{} ({} images of {}x{}): population = Gaussian with the moments of {} held-out images",
        dir.display(),
        m.count,
        m.height,
        m.width,
        held.len()
    );
    Ok(Problem { rows, d, truth, description })
}

/// The Gaussian source of `--data gaussian[:SPEC]` (SPEC without the `gaussian:` prefix; empty for the
/// default spectrum) whose training images come from `seed`.
pub fn gaussian_config(spec: &str, seed: u64) -> Result<GaussianConfig> {
    let mut cfg = GaussianConfig { seed, ..Default::default() };
    if !spec.is_empty() {
        cfg.spectrum =
            spec.parse::<Spectrum>().map_err(|e| Error::Invalid(format!("--data gaussian:{spec}: {e}")))?;
    }
    Ok(cfg)
}

/// "Gaussian SxS, λ_k = …, DCT basis, mean …".
pub fn gaussian_description(cfg: &GaussianConfig, side: usize) -> String {
    let spectrum = match cfg.spectrum {
        Spectrum::PowerLaw { exponent, scale } => format!("λ_k = {scale} k^-{exponent}"),
        Spectrum::Flat { variance } => format!("λ_k = {variance}"),
    };
    format!("Gaussian {side}x{side}, {spectrum}, DCT basis, mean {}", cfg.mean)
}

/// Images 0..n of the Gaussian stream `cfg` (rows of side² f32) and its exact N(μ, Σ).
pub fn gaussian_data(cfg: &GaussianConfig, side: usize, n: usize) -> Result<(Vec<f32>, Truth)> {
    use rayon::prelude::*;
    memgen_data::gaussian::GaussianSource::new(cfg.clone(), side)?;
    let d = side * side;
    let images: Vec<Vec<f32>> =
        (0..n as u64).into_par_iter().map(|k| memgen_data::gaussian::sample(cfg, side, k).pixels).collect();
    let cov = memgen_data::gaussian::covariance(cfg, side);
    let truth = Truth::new(vec![cfg.mean; d], Mat::from_fn(d, d, |i, j| cov[i * d + j]), TruthKind::Exact);
    Ok((images.concat(), truth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_problems_are_the_stream_and_its_exact_moments() {
        let cfg = DataConfig { data: "gaussian:flat:0.01".into(), side: Some(3), ..Default::default() };
        let p = Problem::load(&cfg, 5).unwrap();
        assert_eq!((p.d, p.rows.len(), p.rows(2).len()), (9, 45, 18));
        assert_eq!(p.truth.kind, TruthKind::Exact);
        assert!(p.description.starts_with("Gaussian 3x3, λ_k = 0.01"), "{}", p.description);
        let no_side = DataConfig { side: None, ..cfg.clone() };
        assert!(Problem::load(&no_side, 5).unwrap_err().to_string().contains("--side"));
        let bad = DataConfig { data: "gaussian:steep".into(), ..cfg };
        assert!(Problem::load(&bad, 5).unwrap_err().to_string().contains("power:EXPONENT"));
    }
}

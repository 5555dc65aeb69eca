//! Near-duplicate removal as in Kadkhodaie et al. (ICLR 2024): pool every image to 20x20, and of
//! each pair whose Pearson correlation satisfies |corr| > 0.95 keep only the first.
//!
//! corr(a, b) = <a - mean(a), b - mean(b)> / (||a - mean(a)|| ||b - mean(b)||), 0 for a constant image.
//! All pairwise correlations are computed as blocked matrix products of the normalised pooled images
//! (O(N² · 400) flops through candle's GEMM), then images are visited in order and an image is dropped
//! when it is a near-duplicate of an image already kept.

use crate::preprocess::resize_area;
use crate::{Image, Result};
use candle::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Parameters of near-duplicate removal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    /// Side the images are area-pooled to before comparing.
    pub pool_side: usize,
    /// Pairs with |corr| strictly above this are near-duplicates.
    pub threshold: f32,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig { pool_side: 20, threshold: 0.95 }
    }
}

/// What near-duplicate removal did, recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DedupReport {
    pub pool_side: usize,
    pub threshold: f32,
    /// Images before removal.
    pub before: usize,
    /// Number of images dropped.
    pub dropped: usize,
    /// Names of the dropped images.
    pub dropped_names: Vec<String>,
}

/// Rows of the pooled images, each centred and scaled to unit L2 norm (zero for a constant image),
/// so that corr(a, b) is a dot product.
pub fn normalised_pooled(images: &[&Image], pool_side: usize) -> Vec<f32> {
    let d = pool_side * pool_side;
    let mut out = vec![0f32; images.len() * d];
    for (row, img) in out.chunks_exact_mut(d).zip(images) {
        let pooled = resize_area(&crate::preprocess::to_gray(img), pool_side, pool_side);
        let mean = pooled.pixels.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let norm = pooled.pixels.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>().sqrt();
        if norm > 1e-12 {
            for (o, &v) in row.iter_mut().zip(&pooled.pixels) {
                *o = ((v as f64 - mean) / norm) as f32;
            }
        }
    }
    out
}

/// All pairs (i, j), i < j, with |row_i · row_j| > threshold, for unit rows of length `d`.
pub fn correlated_pairs(rows: &[f32], d: usize, threshold: f32) -> Result<Vec<(usize, usize)>> {
    const BLOCK: usize = 2048;
    let n = rows.len() / d;
    let dev = Device::Cpu;
    let blocks = n.div_ceil(BLOCK) as u64;
    let bar = crate::prepare::progress_bar(blocks * (blocks + 1) / 2, "near-duplicates");
    let mut pairs = Vec::new();
    for a in (0..n).step_by(BLOCK) {
        let na = BLOCK.min(n - a);
        let xa = Tensor::from_slice(&rows[a * d..(a + na) * d], (na, d), &dev)?;
        for b in (a..n).step_by(BLOCK) {
            let nb = BLOCK.min(n - b);
            let xb = Tensor::from_slice(&rows[b * d..(b + nb) * d], (nb, d), &dev)?;
            let c: Vec<f32> = xa.matmul(&xb.t()?)?.flatten_all()?.to_vec1()?;
            for i in 0..na {
                for j in 0..nb {
                    if a + i < b + j && c[i * nb + j].abs() > threshold {
                        pairs.push((a + i, b + j));
                    }
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(pairs)
}

/// Indices to keep, in order: image j is dropped when some kept i < j has |corr(i, j)| > threshold.
pub fn keep_first(n: usize, pairs: &[(usize, usize)]) -> Vec<usize> {
    let mut earlier: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(i, j) in pairs {
        earlier[j].push(i);
    }
    let mut kept = vec![false; n];
    for j in 0..n {
        kept[j] = !earlier[j].iter().any(|&i| kept[i]);
    }
    (0..n).filter(|&j| kept[j]).collect()
}

/// Near-duplicate removal: the indices of the images to keep.
pub fn dedup(images: &[&Image], cfg: &DedupConfig) -> Result<Vec<usize>> {
    let d = cfg.pool_side * cfg.pool_side;
    let rows = normalised_pooled(images, cfg.pool_side);
    let pairs = correlated_pairs(&rows, d, cfg.threshold)?;
    Ok(keep_first(images.len(), &pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn corr_f64(a: &[f32], b: &[f32]) -> f64 {
        let ma = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        let mb = b.iter().map(|&v| v as f64).sum::<f64>() / b.len() as f64;
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (x as f64 - ma, y as f64 - mb);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        if aa == 0.0 || bb == 0.0 {
            0.0
        } else {
            ab / (aa * bb).sqrt()
        }
    }

    /// Brute force: pool, correlate in f64, keep greedily.
    fn brute(images: &[Image], cfg: &DedupConfig) -> Vec<usize> {
        let pooled: Vec<Image> =
            images.iter().map(|im| resize_area(im, cfg.pool_side, cfg.pool_side)).collect();
        let mut kept: Vec<usize> = Vec::new();
        for j in 0..images.len() {
            if !kept
                .iter()
                .any(|&i| corr_f64(&pooled[i].pixels, &pooled[j].pixels).abs() > cfg.threshold as f64)
            {
                kept.push(j);
            }
        }
        kept
    }

    #[test]
    fn matches_brute_force_with_planted_duplicates() {
        let mut rng = crate::rng::seeded(7);
        let mut images: Vec<Image> =
            (0..2500).map(|_| Image::gray(24, 24, (0..576).map(|_| rng.random::<f32>()).collect())).collect();
        // Plant near-copies (small noise), negated copies (corr -1) and a constant image.
        for k in 0..40 {
            let src = images[rng.random_range(0..images.len())].clone();
            let noisy = src.pixels.iter().map(|&v| v + 0.02 * rng.random::<f32>()).collect();
            images.push(Image::gray(24, 24, noisy));
            if k % 10 == 0 {
                images.push(Image::gray(24, 24, src.pixels.iter().map(|&v| 1.0 - v).collect()));
            }
        }
        images.push(Image::gray(24, 24, vec![0.5; 576]));
        images.push(Image::gray(24, 24, vec![0.5; 576]));
        let cfg = DedupConfig::default();
        let refs: Vec<&Image> = images.iter().collect();
        let got = dedup(&refs, &cfg).unwrap();
        let want = brute(&images, &cfg);
        assert_eq!(got, want);
        let dropped = images.len() - got.len();
        assert!(dropped >= 44, "planted 44 duplicates, dropped {dropped}");
        // Constant images have corr 0 with everything, so both stay.
        assert!(got.contains(&(images.len() - 1)) && got.contains(&(images.len() - 2)));
    }
}

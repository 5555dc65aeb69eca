//! Disjoint nested splits (Kadkhodaie et al., ICLR 2024): two index sets S_A(N), S_B(N) that never
//! overlap, are nested in N (S_A(10) ⊂ S_A(100) ⊂ …) and keep every group (e.g. all photos of one
//! person) on one side.
//!
//! Construction, from one seed: the groups (each ungrouped image is its own group) are shuffled and
//! each is given to the side that holds fewer images so far (A on ties); each side's images are then
//! shuffled into a fixed order, and S_X(N) is the first N images of side X's order. Nesting follows
//! from taking prefixes; disjointness and group-respect from the side assignment.

use crate::{Error, Result};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The two fixed orders from which every S_A(N), S_B(N) is a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedSplit {
    pub seed: u64,
    /// Side A's images in order: S_A(N) = order_a[..N].
    pub order_a: Vec<usize>,
    /// Side B's images in order: S_B(N) = order_b[..N].
    pub order_b: Vec<usize>,
    /// Number of groups on each side.
    pub groups_a: usize,
    pub groups_b: usize,
}

impl NestedSplit {
    /// Build the split for `count` images with optional per-image group keys.
    pub fn new(count: usize, groups: Option<&[String]>, seed: u64) -> Self {
        let mut rng = crate::rng::seeded(seed);
        let mut members: Vec<Vec<usize>> = match groups {
            Some(keys) => {
                let mut map: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
                for (i, k) in keys.iter().enumerate().take(count) {
                    map.entry(k.as_str()).or_default().push(i);
                }
                map.into_values().collect()
            }
            None => (0..count).map(|i| vec![i]).collect(),
        };
        members.shuffle(&mut rng);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut groups_a, mut groups_b) = (0, 0);
        for g in members {
            if a.len() <= b.len() {
                a.extend(g);
                groups_a += 1;
            } else {
                b.extend(g);
                groups_b += 1;
            }
        }
        a.shuffle(&mut rng);
        b.shuffle(&mut rng);
        NestedSplit { seed, order_a: a, order_b: b, groups_a, groups_b }
    }

    /// The largest N for which both S_A(N) and S_B(N) exist.
    pub fn max_n(&self) -> usize {
        self.order_a.len().min(self.order_b.len())
    }

    /// (S_A(n), S_B(n)), or an error that says how many images each side holds.
    pub fn subsets(&self, n: usize) -> Result<(&[usize], &[usize])> {
        if n > self.max_n() {
            let total = self.order_a.len() + self.order_b.len();
            return Err(Error::NotEnough(format!(
                "asked for N = {n} images per side (2N = {}), but the dataset's {total} images in {} groups split into sides of {} and {} images: at most N = {} is available{}",
                2 * n,
                self.groups_a + self.groups_b,
                self.order_a.len(),
                self.order_b.len(),
                self.max_n(),
                if self.groups_a + self.groups_b < total { " (whole groups stay on one side)" } else { "" }
            )));
        }
        Ok((&self.order_a[..n], &self.order_b[..n]))
    }
}

/// The exact subsets used by a run, written to the run directory as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitFile {
    /// Prepared-dataset directory and content hash the indices refer to.
    pub dataset: String,
    pub content_hash: String,
    pub seed: u64,
    pub splits: Vec<SplitEntry>,
}

/// S_A(n) and S_B(n) as dataset indices, plus the image names for readability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitEntry {
    pub n: usize,
    pub a: Vec<usize>,
    pub b: Vec<usize>,
}

impl SplitFile {
    /// Subsets for every n in `ns`, all from one [`NestedSplit`].
    pub fn build(split: &NestedSplit, ns: &[usize], dataset: String, content_hash: String) -> Result<Self> {
        let splits = ns
            .iter()
            .map(|&n| {
                let (a, b) = split.subsets(n)?;
                Ok(SplitEntry { n, a: a.to_vec(), b: b.to_vec() })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SplitFile { dataset, content_hash, seed: split.seed, splits })
    }
}

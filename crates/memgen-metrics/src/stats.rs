//! Summaries of score distributions.

use serde::{Deserialize, Serialize};

/// Count, mean, quartiles and extremes of a set of values. Quantiles interpolate linearly between
/// order statistics: q(p) = x_(⌊h⌋) + (h − ⌊h⌋)(x_(⌊h⌋+1) − x_(⌊h⌋)) with h = p (n − 1) on the sorted
/// values (numpy's default). Every field but `count` is `None` for an empty set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub q1: Option<f64>,
    pub median: Option<f64>,
    pub q3: Option<f64>,
    pub max: Option<f64>,
}

impl Summary {
    /// Summary of `values` (NaN values are not expected: the scores never produce them).
    pub fn of(values: &[f64]) -> Summary {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| quantile_sorted(&v, p);
        let mean = (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        Summary {
            count: v.len(),
            mean,
            min: v.first().copied(),
            q1: q(0.25),
            median: q(0.5),
            q3: q(0.75),
            max: v.last().copied(),
        }
    }
}

/// The pixel range of a data-like sample: images are stored in [0, 1], and a sample is in range
/// when every pixel lies in [−0.25, 1.25] (a sampler whose scale drifts leaves it).
pub const IN_RANGE: std::ops::RangeInclusive<f32> = -0.25..=1.25;

/// Fraction of the `count` images of `pixels` (equal lengths, in order) whose every pixel lies in
/// [`IN_RANGE`]; 0 when `count` is 0.
pub fn in_range_fraction(pixels: &[f32], count: usize) -> f64 {
    if count == 0 || pixels.is_empty() {
        return 0.0;
    }
    let per = pixels.len() / count;
    pixels.chunks(per).filter(|im| in_range(im)).count() as f64 / count as f64
}

/// Whether every pixel of `image` lies in [`IN_RANGE`].
pub fn in_range(image: &[f32]) -> bool {
    image.iter().all(|v| IN_RANGE.contains(v))
}

/// Quantile `p` in [0, 1] of ascending `v` by linear interpolation; `None` when empty.
pub fn quantile_sorted(v: &[f64], p: f64) -> Option<f64> {
    let last = v.len().checked_sub(1)?;
    let h = p.clamp(0.0, 1.0) * last as f64;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(last);
    Some(v[lo] + (h - lo as f64) * (v[hi] - v[lo]))
}

/// Fraction of `values` for which `pred` holds (0 for an empty set).
pub fn fraction<T>(values: impl IntoIterator<Item = T>, pred: impl Fn(T) -> bool) -> f64 {
    let (mut hit, mut n) = (0usize, 0usize);
    for v in values {
        n += 1;
        hit += usize::from(pred(v));
    }
    if n == 0 {
        0.0
    } else {
        hit as f64 / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_match_numpy_linear_interpolation() {
        // numpy.percentile([3, 1, 4, 1, 5], [25, 50, 75]) = [1, 3, 4]; of [1, 2, 3, 4]: [1.75, 2.5, 3.25].
        let s = Summary::of(&[3.0, 1.0, 4.0, 1.0, 5.0]);
        assert_eq!((s.q1, s.median, s.q3), (Some(1.0), Some(3.0), Some(4.0)));
        assert_eq!((s.min, s.max, s.mean), (Some(1.0), Some(5.0), Some(2.8)));
        let s = Summary::of(&[4.0, 2.0, 1.0, 3.0]);
        assert_eq!((s.q1, s.median, s.q3), (Some(1.75), Some(2.5), Some(3.25)));
        let e = Summary::of(&[]);
        assert_eq!((e.count, e.median, e.mean), (0, None, None));
        assert_eq!(Summary::of(&[7.0]).q3, Some(7.0));
    }

    #[test]
    fn fraction_counts_hits() {
        assert_eq!(fraction([0.1, 0.5, 0.9, 0.99], |v| v > 0.8), 0.5);
        assert_eq!(fraction(std::iter::empty::<f64>(), |_| true), 0.0);
    }
}

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

/// A power law y ≈ C · x^slope, C = e^intercept, fitted by least squares of ln y on ln x.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerFit {
    /// b of ln y = a + b ln x.
    pub slope: f64,
    /// a of ln y = a + b ln x.
    pub intercept: f64,
    /// C = e^a, the power law's constant.
    pub constant: f64,
    /// Coefficient of determination in log-log: 1 − SS_res / SS_tot (1 when SS_tot = 0).
    pub r2: f64,
    /// Points used.
    pub points: usize,
}

impl PowerFit {
    /// The fitted y at x: e^a x^b.
    pub fn predict(&self, x: f64) -> f64 {
        (self.intercept + self.slope * x.ln()).exp()
    }
}

/// The one power-law fit of memgen: least squares of v = ln y on u = ln x over the points with x and
/// y finite and positive (the others are left out): b = Σ (u − ū)(v − v̄) / Σ (u − ū)², a = v̄ − b ū.
/// `None` when fewer than two such points remain or they all have the same x.
pub fn power_law_fit(points: impl IntoIterator<Item = (f64, f64)>) -> Option<PowerFit> {
    let uv: Vec<(f64, f64)> = points
        .into_iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite() && *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    let m = uv.len();
    if m < 2 {
        return None;
    }
    let (ub, vb) =
        (uv.iter().map(|p| p.0).sum::<f64>() / m as f64, uv.iter().map(|p| p.1).sum::<f64>() / m as f64);
    let suu: f64 = uv.iter().map(|(u, _)| (u - ub).powi(2)).sum();
    let suv: f64 = uv.iter().map(|(u, v)| (u - ub) * (v - vb)).sum();
    if !(suu > 0.0) {
        return None;
    }
    let slope = suv / suu;
    let intercept = vb - slope * ub;
    let ss_res: f64 = uv.iter().map(|(u, v)| (v - intercept - slope * u).powi(2)).sum();
    let ss_tot: f64 = uv.iter().map(|(_, v)| (v - vb).powi(2)).sum();
    let r2 = if ss_tot > 0.0 { 1.0 - ss_res / ss_tot } else { 1.0 };
    Some(PowerFit { slope, intercept, constant: intercept.exp(), r2, points: m })
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

    #[test]
    fn power_law_fit_recovers_a_power_law_and_leaves_out_bad_points() {
        let pts: Vec<(f64, f64)> =
            [0.01, 0.02, 0.05, 0.1, 0.3].iter().map(|&x: &f64| (x, 3.0 * x.powf(1.6))).collect();
        let fit = power_law_fit(pts.iter().copied()).unwrap();
        assert!((fit.slope - 1.6).abs() < 1e-12, "{fit:?}");
        assert!((fit.intercept - 3f64.ln()).abs() < 1e-12 && (fit.constant - 3.0).abs() < 1e-11, "{fit:?}");
        assert!((fit.r2 - 1.0).abs() < 1e-12 && fit.points == 5);
        assert!((fit.predict(0.5) - 3.0 * 0.5f64.powf(1.6)).abs() < 1e-12);
        // Non-positive and non-finite points are left out; too few or a single x give no fit.
        let mut with_bad = pts.clone();
        with_bad.extend([(0.2, 0.0), (-1.0, 1.0), (f64::INFINITY, 1.0), (0.4, f64::NAN)]);
        assert_eq!(power_law_fit(with_bad).unwrap().points, 5);
        assert!(power_law_fit(pts[..1].iter().copied()).is_none());
        assert!(power_law_fit([(0.1, 1.0), (0.1, 2.0)]).is_none());
        // Noisy points: r² below 1, slope from the closed form by hand.
        let noisy = [(1.0, 1.0), (10.0, 30.0), (100.0, 40.0)];
        let f = power_law_fit(noisy).unwrap();
        let (u, v): (Vec<f64>, Vec<f64>) = noisy.iter().map(|(x, y)| (x.ln(), y.ln())).unzip();
        let slope = ((u[0] - u[1]) * v[0] + (u[2] - u[1]) * v[2]) / 2.0 / (10f64.ln().powi(2));
        assert!((f.slope - slope).abs() < 1e-12 && f.r2 < 1.0, "{f:?} vs {slope}");
    }
}

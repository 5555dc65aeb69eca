//! Power-law fits y ≈ C x^slope by least squares on (ln x, ln y).

use crate::{invalid, Result};
use serde::{Deserialize, Serialize};

/// A log-log least-squares line: ln y = ln C + slope · ln x over `points` points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerFit {
    pub slope: f64,
    /// C = exp(intercept).
    pub constant: f64,
    pub points: usize,
}

/// Fit ln y = a + b ln x: b = Σ (ln x − mean)(ln y − mean) / Σ (ln x − mean)². Points with x or y not
/// positive and finite are left out; fewer than 2 distinct x left is an error.
pub fn loglog_fit(xs: &[f64], ys: &[f64]) -> Result<PowerFit> {
    let pts: Vec<(f64, f64)> = xs
        .iter()
        .zip(ys)
        .filter(|(x, y)| **x > 0.0 && **y > 0.0 && x.is_finite() && y.is_finite())
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    let n = pts.len() as f64;
    let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if pts.len() < 2 || !(sxx > 0.0) {
        return invalid("a log-log fit needs at least 2 points with distinct positive x and positive y");
    }
    let slope = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    Ok(PowerFit { slope, constant: (my - slope * mx).exp(), points: pts.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_power_law_and_skips_bad_points() {
        let xs = [10.0, 100.0, 1000.0, 5.0];
        let ys: Vec<f64> = xs.iter().map(|x: &f64| 3.0 * x.powf(-0.4)).collect();
        let f = loglog_fit(&xs, &ys).unwrap();
        assert!((f.slope + 0.4).abs() < 1e-12 && (f.constant - 3.0).abs() < 1e-10);
        let f = loglog_fit(&[1.0, 2.0, 4.0], &[1.0, -1.0, 0.25]).unwrap();
        assert_eq!(f.points, 2);
        assert!((f.slope + 1.0).abs() < 1e-12);
        assert!(loglog_fit(&[1.0, 1.0], &[1.0, 2.0]).is_err());
    }
}

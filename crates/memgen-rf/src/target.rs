//! Gaussian-mixture targets p0 = Σ_k π_k N(m_k, s_k² I) in d = 1 or 2 dimensions, and their forward
//! diffusions under the OU/VP process dx = −x dt + √2 dW:
//!
//! p_t = p0 * N(e^{−t}·, (1 − e^{−2t}) I) = Σ_k π_k N(e^{−t} m_k, v_k(t) I),  v_k(t) = e^{−2t} s_k² + 1 − e^{−2t}.
//!
//! Score: ∇ log p_t(x) = Σ_k r_k(x) s_k(x) with s_k(x) = −(x − e^{−t} m_k)/v_k and the responsibilities
//! r_k = π_k N_k(x) / p_t(x); divergence: ∇·s = Σ_k r_k (‖s_k‖² − d/v_k) − ‖s‖².
//!
//! Spec strings (Li et al.'s cases are two modes at ±mu, mu = 3 and mu = 15):
//! - `mixture:mu=MU[,sigma=S][,weights=W1/W2][,dim=D]`: two modes at ±MU·e₁ (default sigma 1, equal
//!   weights, d = 1); weights are positive and normalised to sum 1.
//! - `gaussian[:mean=M][,sigma=S][,dim=D]`: one Gaussian N(M·e₁, S² I) (default M = 0, S = 1, d = 1).

use crate::{invalid, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// One component π N(mean, std² I).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// Mixture weight π_k (the weights of a [`Mixture`] sum to 1).
    pub weight: f64,
    /// Mean m_k (length d).
    pub mean: Vec<f64>,
    /// Standard deviation s_k of every coordinate (isotropic).
    pub std: f64,
}

/// An isotropic Gaussian mixture in d dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixture {
    /// Dimension d (1 or 2 for the grid-based KL estimators; any d for densities and scores).
    pub dim: usize,
    /// Components; weights sum to 1.
    pub components: Vec<Component>,
}

/// log N(x; mean, var I) in d dimensions.
pub fn log_normal(x: &[f64], mean: &[f64], var: f64) -> f64 {
    let r2: f64 = x.iter().zip(mean).map(|(a, b)| (a - b) * (a - b)).sum();
    -0.5 * r2 / var - 0.5 * x.len() as f64 * (2.0 * std::f64::consts::PI * var).ln()
}

impl Mixture {
    /// Validated mixture: d ≥ 1, at least one component, every mean of length d, positive finite
    /// weights (normalised here to sum 1) and standard deviations.
    pub fn new(dim: usize, mut components: Vec<Component>) -> Result<Mixture> {
        if dim == 0 || components.is_empty() {
            return invalid("a mixture needs d >= 1 and at least one component");
        }
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if components.iter().any(|c| c.mean.len() != dim || !ok(c.weight) || !ok(c.std)) {
            return invalid(format!(
                "mixture components need means of length {dim} and positive finite weights and sigmas"
            ));
        }
        if components.iter().any(|c| c.mean.iter().any(|m| !m.is_finite())) {
            return invalid("mixture means must be finite");
        }
        let total: f64 = components.iter().map(|c| c.weight).sum();
        components.iter_mut().for_each(|c| c.weight /= total);
        Ok(Mixture { dim, components })
    }

    /// Li et al.'s target: two modes at ±mu·e₁ with standard deviation `sigma` and weights `weights`.
    pub fn two_modes(mu: f64, sigma: f64, weights: [f64; 2], dim: usize) -> Result<Mixture> {
        let mean = |s: f64| (0..dim).map(|i| if i == 0 { s * mu } else { 0.0 }).collect();
        Mixture::new(
            dim,
            vec![
                Component { weight: weights[0], mean: mean(-1.0), std: sigma },
                Component { weight: weights[1], mean: mean(1.0), std: sigma },
            ],
        )
    }

    /// One Gaussian N(mean, std² I).
    pub fn gaussian(mean: Vec<f64>, std: f64) -> Result<Mixture> {
        Mixture::new(mean.len(), vec![Component { weight: 1.0, mean, std }])
    }

    /// Parse a spec string (module docs). Errors name the offending key or value.
    pub fn parse(spec: &str) -> Result<Mixture> {
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let mut keys = parse_keys(spec, rest)?;
        let mut take = |k: &str| keys.iter().position(|(key, _)| key == k).map(|i| keys.remove(i).1);
        let dim = match take("dim") {
            Some(v) => parse_usize(spec, "dim", &v)?,
            None => 1,
        };
        if !(1..=8).contains(&dim) {
            return invalid(format!("target `{spec}`: dim must be between 1 and 8, not {dim}"));
        }
        let sigma = take("sigma").map(|v| parse_f64(spec, "sigma", &v)).transpose()?.unwrap_or(1.0);
        if !(sigma > 0.0 && sigma.is_finite()) {
            return invalid(format!("target `{spec}`: sigma must be positive"));
        }
        let mixture = match kind {
            "mixture" => {
                let mu = take("mu").map(|v| parse_f64(spec, "mu", &v)).transpose()?;
                let mu = mu.ok_or_else(|| {
                    crate::Error::Invalid(format!("target `{spec}`: mixture needs mu=MU (e.g. mixture:mu=3)"))
                })?;
                let weights = match take("weights") {
                    Some(v) => parse_weights(spec, &v)?,
                    None => [0.5, 0.5],
                };
                Mixture::two_modes(mu, sigma, weights, dim)?
            }
            "gaussian" => {
                let mean = take("mean").map(|v| parse_f64(spec, "mean", &v)).transpose()?.unwrap_or(0.0);
                Mixture::gaussian((0..dim).map(|i| if i == 0 { mean } else { 0.0 }).collect(), sigma)?
            }
            _ => {
                return invalid(format!(
                    "target `{spec}`: unknown kind `{kind}` (expected mixture:mu=MU,... or gaussian:...)"
                ))
            }
        };
        if let Some((k, _)) = keys.first() {
            return invalid(format!("target `{spec}`: unknown or repeated key `{k}` for {kind}"));
        }
        Ok(mixture)
    }

    /// The diffused mixture p_t: component k becomes N(e^{−t} m_k, (e^{−2t} s_k² + 1 − e^{−2t}) I).
    pub fn diffused(&self, t: f64) -> Mixture {
        let (a, a2) = ((-t).exp(), (-2.0 * t).exp());
        let components = self
            .components
            .iter()
            .map(|c| Component {
                weight: c.weight,
                mean: c.mean.iter().map(|m| a * m).collect(),
                std: (a2 * c.std * c.std + (1.0 - a2)).sqrt(),
            })
            .collect();
        Mixture { dim: self.dim, components }
    }

    /// The mixture convolved with N(0, h² I): every variance s_k² becomes s_k² + h².
    pub fn smoothed(&self, h: f64) -> Mixture {
        let mut out = self.clone();
        out.components.iter_mut().for_each(|c| c.std = (c.std * c.std + h * h).sqrt());
        out
    }

    /// log p(x) = logsumexp_k (ln π_k + log N(x; m_k, s_k² I)).
    pub fn log_density(&self, x: &[f64]) -> f64 {
        let logs: Vec<f64> =
            self.components.iter().map(|c| c.weight.ln() + log_normal(x, &c.mean, c.std * c.std)).collect();
        log_sum_exp(&logs)
    }

    /// p(x).
    pub fn density(&self, x: &[f64]) -> f64 {
        self.log_density(x).exp()
    }

    /// Writes ∇ log p(x) into `out` (length d) and returns ∇·∇ log p(x) = Σ_k r_k (‖s_k‖² − d/v_k) − ‖s‖².
    pub fn score_div(&self, x: &[f64], out: &mut [f64]) -> f64 {
        let logs: Vec<f64> =
            self.components.iter().map(|c| c.weight.ln() + log_normal(x, &c.mean, c.std * c.std)).collect();
        let lse = log_sum_exp(&logs);
        out.iter_mut().for_each(|o| *o = 0.0);
        let d = self.dim as f64;
        let mut div = 0.0;
        for (c, l) in self.components.iter().zip(&logs) {
            let r = (l - lse).exp();
            let v = c.std * c.std;
            let mut sk2 = 0.0;
            for ((o, xi), mi) in out.iter_mut().zip(x).zip(&c.mean) {
                let sk = -(xi - mi) / v;
                *o += r * sk;
                sk2 += sk * sk;
            }
            div += r * (sk2 - d / v);
        }
        div - out.iter().map(|o| o * o).sum::<f64>()
    }

    /// `n` samples (rows of d values) from the seeded stream `seed`: sample i uses ChaCha8 stream i, so
    /// the first n samples do not depend on how many are drawn.
    pub fn sample(&self, n: usize, seed: u64) -> Vec<f64> {
        let mut out = Vec::with_capacity(n * self.dim);
        for i in 0..n {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(i as u64);
            let u: f64 = rand::Rng::random(&mut rng);
            let c = self.pick(u);
            for m in &c.mean {
                let z: f64 = StandardNormal.sample(&mut rng);
                out.push(m + c.std * z);
            }
        }
        out
    }

    /// The component whose cumulative weight interval contains u ∈ [0, 1).
    fn pick(&self, u: f64) -> &Component {
        let mut acc = 0.0;
        for c in &self.components {
            acc += c.weight;
            if u < acc {
                return c;
            }
        }
        self.components.last().expect("a mixture has components")
    }

    /// A box [lo_i, hi_i] per coordinate holding every p_t, t ≥ 0: the component means ± `pad` times
    /// max(s_k, 1) (p_t's means lie between 0 and m_k, its standard deviations between s_k and 1).
    pub fn bounding_box(&self, pad: f64) -> Vec<(f64, f64)> {
        (0..self.dim)
            .map(|i| {
                let lo = self.components.iter().map(|c| c.mean[i].min(0.0) - pad * c.std.max(1.0));
                let hi = self.components.iter().map(|c| c.mean[i].max(0.0) + pad * c.std.max(1.0));
                (lo.fold(f64::INFINITY, f64::min), hi.fold(f64::NEG_INFINITY, f64::max))
            })
            .collect()
    }

    /// The smallest component standard deviation.
    pub fn min_std(&self) -> f64 {
        self.components.iter().map(|c| c.std).fold(f64::INFINITY, f64::min)
    }

    /// "2 modes at ±3 (sigma 1, weights 0.5/0.5), d = 1" and the like.
    pub fn describe(&self) -> String {
        let parts: Vec<String> =
            self.components.iter().map(|c| format!("{:.3}·N({:?}, {}²)", c.weight, c.mean, c.std)).collect();
        format!("d = {}: {}", self.dim, parts.join(" + "))
    }
}

/// ln Σ exp(l_i), stable.
pub fn log_sum_exp(ls: &[f64]) -> f64 {
    let max = ls.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + ls.iter().map(|l| (l - max).exp()).sum::<f64>().ln()
}

/// `key=value` pairs of a comma-separated list.
fn parse_keys(spec: &str, rest: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in rest.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return invalid(format!("target `{spec}`: `{part}` is not KEY=VALUE"));
        };
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

fn parse_f64(spec: &str, key: &str, v: &str) -> Result<f64> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => invalid(format!("target `{spec}`: {key}={v} is not a finite number")),
    }
}

fn parse_usize(spec: &str, key: &str, v: &str) -> Result<usize> {
    v.parse().or_else(|_| invalid(format!("target `{spec}`: {key}={v} is not a whole number")))
}

fn parse_weights(spec: &str, v: &str) -> Result<[f64; 2]> {
    let ws: Vec<&str> = v.split('/').collect();
    if ws.len() != 2 {
        return invalid(format!("target `{spec}`: weights={v} needs two values W1/W2"));
    }
    let w = [parse_f64(spec, "weights", ws[0])?, parse_f64(spec, "weights", ws[1])?];
    if w.iter().any(|&x| x <= 0.0) {
        return invalid(format!("target `{spec}`: weights={v} must be positive"));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_paper_cases_and_rejects_bad_specs() {
        let m = Mixture::parse("mixture:mu=3").unwrap();
        assert_eq!(m.dim, 1);
        assert_eq!(m.components[1].mean, vec![3.0]);
        let m = Mixture::parse("mixture:mu=15,sigma=0.5,weights=1/3,dim=2").unwrap();
        assert_eq!(m.components[0].mean, vec![-15.0, 0.0]);
        assert!((m.components[1].weight - 0.75).abs() < 1e-15 && m.components[0].std == 0.5);
        let g = Mixture::parse("gaussian:mean=2,sigma=0.5").unwrap();
        assert_eq!(g.components.len(), 1);
        for (bad, word) in [
            ("mixture", "mu=MU"),
            ("mixture:mu=x", "mu=x"),
            ("mixture:mu=3,sigma=-1", "sigma"),
            ("mixture:mu=3,weights=1", "weights"),
            ("mixture:mu=3,foo=2", "`foo`"),
            ("mixture:mu=3,mu=4", "`mu`"),
            ("mixture:mu=3,dim=0", "dim"),
            ("blob:mu=3", "unknown kind"),
            ("mixture:mu", "KEY=VALUE"),
        ] {
            let e = Mixture::parse(bad).unwrap_err().to_string();
            assert!(e.contains(word), "{bad}: {e}");
        }
    }

    #[test]
    fn density_integrates_to_one_and_diffuses_to_the_convolution() {
        let m = Mixture::parse("mixture:mu=3,sigma=0.7,weights=0.3/0.7").unwrap();
        let h = 1e-3;
        let grid = |f: &dyn Fn(f64) -> f64| (-20000..=20000).map(|i| f(i as f64 * h)).sum::<f64>() * h;
        assert!((grid(&|x| m.density(&[x])) - 1.0).abs() < 1e-10);
        // p_t(y) = ∫ p0(x) N(y; e^{-t} x, 1 − e^{−2t}) dx, by quadrature.
        let t = 0.4;
        let pt = m.diffused(t);
        for y in [-2.5, 0.0, 0.3, 2.0] {
            let conv = grid(&|x| {
                m.density(&[x]) * log_normal(&[y], &[(-t).exp() * x], 1.0 - (-2.0 * t).exp()).exp()
            });
            assert!((conv - pt.density(&[y])).abs() < 1e-9, "{y}: {conv} vs {}", pt.density(&[y]));
        }
    }

    #[test]
    fn score_and_divergence_match_finite_differences() {
        let m = Mixture::parse("mixture:mu=3,sigma=0.8,weights=0.4/0.6,dim=2").unwrap().diffused(0.3);
        let eps = 1e-5;
        for x in [[0.3, -0.2], [2.0, 1.0], [-3.1, 0.5]] {
            let mut s = [0.0; 2];
            let div = m.score_div(&x, &mut s);
            let mut fd_div = 0.0;
            for i in 0..2 {
                let (mut xp, mut xm) = (x, x);
                xp[i] += eps;
                xm[i] -= eps;
                let fd = (m.log_density(&xp) - m.log_density(&xm)) / (2.0 * eps);
                assert!((fd - s[i]).abs() < 1e-7 * (1.0 + s[i].abs()), "{x:?} {i}: {fd} vs {}", s[i]);
                let (mut sp, mut sm) = ([0.0; 2], [0.0; 2]);
                m.score_div(&xp, &mut sp);
                m.score_div(&xm, &mut sm);
                fd_div += (sp[i] - sm[i]) / (2.0 * eps);
            }
            assert!((fd_div - div).abs() < 1e-6 * (1.0 + div.abs()), "{x:?}: {fd_div} vs {div}");
        }
    }

    #[test]
    fn samples_have_the_mixture_moments_and_are_nested() {
        let m = Mixture::parse("mixture:mu=3,weights=0.25/0.75").unwrap();
        let xs = m.sample(40000, 7);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        // E x = 0.5·3 = 1.5; Var x = 1 + 9 − 1.5² = 7.75, so the standard error is 0.014.
        assert!((mean - 1.5).abs() < 0.06, "{mean}");
        assert_eq!(m.sample(10, 7), xs[..10].to_vec());
    }
}

//! AdamW (Loshchilov & Hutter 2019, arXiv:1711.05101) with state that can be saved and restored, so a
//! resumed run continues bit for bit. Update for step t (1-based), per parameter θ with gradient g:
//!   m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²,
//!   θ ← θ (1 − lr·λ) − lr · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + ε)        (PyTorch's AdamW).
//! Variables without a gradient (e.g. running statistics) are left untouched.

use candle::backprop::GradStore;
use candle::{Result, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay λ.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// The optimizer over named variables, in name order.
pub struct AdamW {
    cfg: AdamWConfig,
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Number of updates made so far.
    pub step: usize,
}

impl AdamW {
    /// An optimizer with zero moments for `vars` (sorted by name).
    pub fn new(mut vars: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars.iter().map(|(_, v)| v.zeros_like()).collect::<Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(AdamW { cfg, vars, m, v, step: 0 })
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step_with(|t| grads.get(t).cloned(), lr)
    }

    /// One update with learning rate `lr`, taking each variable's gradient from `grad` (called with
    /// the variable's tensor; `None`: no gradient, the variable is left untouched). The variables
    /// are updated in parallel, each on its own: the result does not depend on the thread count.
    pub fn step_with(&mut self, grad: impl Fn(&Tensor) -> Option<Tensor> + Sync, lr: f64) -> Result<()> {
        self.step += 1;
        let c = self.cfg;
        let t = self.step as i32;
        let step = memgen_kernels::AdamWStep {
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
            lr,
            bias_correction1: 1.0 - c.beta1.powi(t),
            bias_correction2: 1.0 - c.beta2.powi(t),
        };
        let stock = memgen_kernels::stock_kernels();
        self.vars.par_iter().zip(self.m.par_iter_mut()).zip(self.v.par_iter_mut()).try_for_each(
            |(((_, var), m), v)| match grad(var.as_tensor()) {
                // Detached: the optimizer's arithmetic must not join the autograd graph, or every
                // step's graph would stay alive through the moments.
                Some(g) => memgen_kernels::with_kernel_mode(stock, || update(var, m, v, &g.detach(), step)),
                None => Ok(()),
            },
        )
    }

    /// The moments as named tensors (`{name}.m`, `{name}.v`), for saving.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("{name}.m"), self.m[i].clone());
            out.insert(format!("{name}.v"), self.v[i].clone());
        }
        out
    }

    /// Restore moments saved by [`AdamW::state`] and the step count.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (suffix, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let t = state
                    .get(&format!("{name}.{suffix}"))
                    .ok_or_else(|| candle::Error::Msg(format!("optimizer state lacks {name}.{suffix}")))?;
                if t.shape() != var.shape() {
                    candle::bail!(
                        "optimizer state {name}.{suffix} has shape {:?}, expected {:?}",
                        t.shape(),
                        var.shape()
                    );
                }
                *slot = t.to_device(var.device())?.to_dtype(var.dtype())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// The AdamW update of one variable and its moments `m`, `v` (the module's formula): the one-pass
/// kernel where it applies, else Candle's ops.
fn update(var: &Var, m: &mut Tensor, v: &mut Tensor, g: &Tensor, s: memgen_kernels::AdamWStep) -> Result<()> {
    let theta = var.as_tensor().detach();
    if let Some((theta, m2, v2)) = memgen_kernels::adamw_update(&theta, m, v, g, s)? {
        var.set(&theta)?;
        (*m, *v) = (m2, v2);
        return Ok(());
    }
    let m2 = ((&*m * s.beta1)? + (g * (1.0 - s.beta1))?)?.detach();
    let v2 = ((&*v * s.beta2)? + (g.sqr()? * (1.0 - s.beta2))?)?.detach();
    let upd = ((&m2 / s.bias_correction1)? / ((&v2 / s.bias_correction2)?.sqrt()? + s.eps)?)?;
    var.set(&((theta * (1.0 - s.lr * s.weight_decay))? - (upd * s.lr)?)?)?;
    (*m, *v) = (m2, v2);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{Device, Var};

    /// Three AdamW steps on f(θ) = Σ (θ − c)², checked against the update rule computed by hand in f64.
    /// The one-pass kernel and Candle's ops give the same parameters and moments (f32 rounding
    /// apart) over several steps, with weight decay, on a tensor larger than one parallel chunk.
    #[test]
    fn fused_update_matches_candle_ops() {
        let dev = Device::Cpu;
        let n = 40_000;
        let theta0: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let target: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 997) as f32 / 300.0 - 1.5).collect();
        let target = Tensor::new(target.as_slice(), &dev).unwrap();
        let cfg = AdamWConfig { weight_decay: 0.05, ..Default::default() };
        let run = |stock: bool| {
            let go = || {
                let var = Var::new(theta0.as_slice(), &dev).unwrap();
                let mut opt = AdamW::new(vec![("w".into(), var.clone())], cfg).unwrap();
                for _ in 0..4 {
                    let loss = (var.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap();
                    opt.step(&loss.backward().unwrap(), 0.01).unwrap();
                }
                let v: Vec<f32> = opt.v[0].to_vec1().unwrap();
                (var.as_tensor().to_vec1::<f32>().unwrap(), v)
            };
            if stock {
                memgen_kernels::with_stock_kernels(go)
            } else {
                go()
            }
        };
        let ((t_fast, v_fast), (t_ref, v_ref)) = (run(false), run(true));
        let worst = |a: &[f32], b: &[f32]| {
            a.iter().zip(b).map(|(x, y)| ((x - y).abs() / y.abs().max(1e-3)) as f64).fold(0.0, f64::max)
        };
        assert!(worst(&t_fast, &t_ref) < 1e-5, "theta: {}", worst(&t_fast, &t_ref));
        assert!(worst(&v_fast, &v_ref) < 1e-5, "v: {}", worst(&v_fast, &v_ref));
        assert_ne!(t_fast, theta0, "the parameters moved");
    }

    #[test]
    fn matches_the_update_rule_in_f64() {
        let dev = Device::Cpu;
        let theta0 = [0.5f64, -1.0, 2.0];
        let c = [1.0f64, 0.0, -1.0];
        let var = Var::new(&theta0.map(|x| x as f32), &dev).unwrap();
        let cfg = AdamWConfig { weight_decay: 0.1, ..Default::default() };
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], cfg).unwrap();
        let target = Tensor::new(&c.map(|x| x as f32), &dev).unwrap();
        let (mut th, mut m, mut v) = (theta0, [0.0; 3], [0.0; 3]);
        let lr = 0.01;
        for step in 1..=3 {
            let loss = (var.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap(), lr).unwrap();
            for i in 0..3 {
                let g = 2.0 * (th[i] - c[i]);
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let upd =
                    (m[i] / (1.0 - 0.9f64.powi(step))) / ((v[i] / (1.0 - 0.999f64.powi(step))).sqrt() + 1e-8);
                th[i] = th[i] * (1.0 - lr * 0.1) - lr * upd;
            }
        }
        let got: Vec<f32> = var.as_tensor().to_vec1().unwrap();
        for i in 0..3 {
            assert!((got[i] as f64 - th[i]).abs() < 1e-6, "{i}: {} vs {}", got[i], th[i]);
        }
        // Saving and restoring the state continues identically.
        let state = opt.state();
        let var2 = Var::new(got.as_slice(), &dev).unwrap();
        let mut opt2 = AdamW::new(vec![("w".into(), var2.clone())], cfg).unwrap();
        opt2.load_state(&state, opt.step).unwrap();
        for (o, v) in [(&mut opt, &var), (&mut opt2, &var2)] {
            let loss = (v.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap();
            o.step(&loss.backward().unwrap(), lr).unwrap();
        }
        assert_eq!(var.as_tensor().to_vec1::<f32>().unwrap(), var2.as_tensor().to_vec1::<f32>().unwrap());
    }
}

//! Seeded weight initialisation. Candle's CPU RNG cannot be seeded, so every random initial weight is
//! drawn here instead: variable `name` gets its own ChaCha8 stream keyed by (seed, FNV-1a(name)), so
//! the weights depend on the seed and the variable's name only, not on construction order.
//! Distributions follow candle-nn's [`Init`]: constants as given, `Randn`, `Uniform`, and Kaiming
//! (std = gain / sqrt(fan); uniform bound sqrt(3)·std).

use crate::noise::keyed_rng;
use candle::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

const TAG_INIT: u64 = 0x6d65_6d67_656e_0003;

/// FNV-1a 64-bit hash of a variable name.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The initial values of a variable, drawn from its own seeded stream.
pub fn init_values(init: Init, shape: &Shape, name: &str, seed: u64) -> Vec<f32> {
    let n = shape.elem_count();
    let mut rng = keyed_rng([TAG_INIT, seed, fnv1a(name), 0]);
    let normal = |rng: &mut rand_chacha::ChaCha8Rng, mean: f64, std: f64| {
        (0..n).map(|_| (mean + std * Distribution::<f64>::sample(&StandardNormal, rng)) as f32).collect()
    };
    let uniform = |rng: &mut rand_chacha::ChaCha8Rng, lo: f64, up: f64| {
        (0..n).map(|_| rng.random_range(lo..up) as f32).collect()
    };
    match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
        Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
        Init::Kaiming { dist, fan, non_linearity } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                NormalOrUniform::Uniform => uniform(&mut rng, -(3f64.sqrt()) * std, 3f64.sqrt() * std),
            }
        }
    }
}

/// A [`VarMap`] whose missing variables are created with seeded values.
#[derive(Clone)]
pub struct SeededVarMap {
    pub varmap: VarMap,
    pub seed: u64,
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data =
            self.varmap.data().lock().map_err(|_| candle::Error::Msg("var map lock poisoned".into()))?;
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle::bail!("shape mismatch on {name}: {s:?} <> {:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let values = Tensor::from_vec(init_values(h, &s, name, self.seed), s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&values)?;
        let t = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        let data =
            self.varmap.data().lock().map_err(|_| candle::Error::Msg("var map lock poisoned".into()))?;
        match data.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle::bail!("no variable named {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().map(|d| d.contains_key(name)).unwrap_or(false)
    }
}

/// A training [`VarBuilder`] over `varmap` that initialises new variables from `seed`.
pub fn seeded_var_builder(varmap: &VarMap, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(SeededVarMap { varmap: varmap.clone(), seed }), dtype, device.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_whatever_the_order() {
        let build = |seed, names: &[&str]| {
            let vm = VarMap::new();
            let vb = seeded_var_builder(&vm, seed, DType::F32, &Device::Cpu);
            for n in names {
                vb.get_with_hints((8, 4, 3, 3), n, candle_nn::init::DEFAULT_KAIMING_NORMAL).unwrap();
            }
            let d = vm.data().lock().unwrap();
            let mut out: Vec<(String, Vec<f32>)> = d
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        };
        let a = build(1, &["x.weight", "y.weight"]);
        assert_eq!(a, build(1, &["y.weight", "x.weight"]));
        assert_ne!(a, build(2, &["x.weight", "y.weight"]));
        assert_ne!(a[0].1, a[1].1);
        // Kaiming normal, fan_in = 4·3·3 = 36, ReLU gain sqrt 2: std = sqrt(2/36).
        let v = &a[0].1;
        let std = (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((std - (2.0f64 / 36.0).sqrt()).abs() < 0.05, "std {std}");
    }
}

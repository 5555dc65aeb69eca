//! Explicit, reproducible noise. Sample k at step t draws its standard normals from a ChaCha8 stream
//! keyed by (seed, k, t) alone, so two models sampled with one seed see bit-identical noise, whatever
//! the batch size, the thread count or the order in which samples are produced.

use candle::{Device, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Domain tags that keep the streams of different uses apart.
const TAG_SAMPLING: u64 = 0x6d65_6d67_656e_0001;
const TAG_TRAINING: u64 = 0x6d65_6d67_656e_0002;

/// The ChaCha8 generator keyed by four words (the 256-bit key is their little-endian bytes).
pub fn keyed_rng(words: [u64; 4]) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, w) in key.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// `len` standard normal f32 values from `rng`.
pub fn normals(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| StandardNormal.sample(rng)).collect()
}

/// The noise of a sampling run: x_T and every per-step draw z_t of sample k come from (seed, k, t).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseSource {
    pub seed: u64,
}

impl NoiseSource {
    pub fn new(seed: u64) -> Self {
        NoiseSource { seed }
    }

    /// The generator for sample `k` at step `t` (by convention x_T uses t = T).
    pub fn rng(&self, k: u64, t: u64) -> ChaCha8Rng {
        keyed_rng([TAG_SAMPLING, self.seed, k, t])
    }

    /// `len` standard normals for sample `k` at step `t`.
    pub fn draw(&self, k: u64, t: u64, len: usize) -> Vec<f32> {
        normals(&mut self.rng(k, t), len)
    }

    /// The noise of samples `first .. first + n` at step `t`, as a tensor (n, dims...).
    pub fn batch(&self, first: u64, n: usize, t: u64, dims: &[usize], device: &Device) -> Result<Tensor> {
        let len: usize = dims.iter().product();
        let mut data = Vec::with_capacity(n * len);
        for k in first..first + n as u64 {
            data.extend(self.draw(k, t, len));
        }
        let mut shape = vec![n];
        shape.extend_from_slice(dims);
        Tensor::from_vec(data, shape, device)
    }
}

/// The generator of training step `step` of a run seeded `seed`: everything a step draws
/// (image indices, timesteps, noise) depends on (seed, step) only, so a resumed run repeats the
/// draws of an uninterrupted one.
pub fn training_rng(seed: u64, step: u64) -> ChaCha8Rng {
    keyed_rng([TAG_TRAINING, seed, step, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_depends_only_on_seed_sample_and_step() {
        let n = NoiseSource::new(7);
        let whole = n
            .batch(0, 6, 999, &[1, 4, 4], &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let part = n
            .batch(3, 2, 999, &[1, 4, 4], &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(&whole[3 * 16..5 * 16], &part[..], "a batch's noise does not depend on its neighbours");
        assert_ne!(n.draw(0, 1, 16), n.draw(0, 2, 16));
        assert_ne!(n.draw(0, 1, 16), n.draw(1, 1, 16));
        assert_ne!(n.draw(0, 1, 16), NoiseSource::new(8).draw(0, 1, 16));
        // Standard normal moments over many draws.
        let v = n.draw(42, 0, 200_000);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.01, "mean {mean}, var {var}");
    }
}

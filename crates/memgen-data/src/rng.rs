//! The project's seeded random number generators. Every random draw in memgen comes from here.
//!
//! ChaCha8 is used rather than `StdRng` because its output stream is fixed by its specification,
//! so a seed reproduces the same data across versions of `rand`.

use rand::SeedableRng;
pub use rand_chacha::ChaCha8Rng as Rng;

/// A generator for `seed`.
pub fn seeded(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// An independent generator for item `index` of a stream: image k of a synthetic dataset depends
/// only on (seed, k), so a prefix of a larger draw equals a smaller draw.
pub fn for_item(seed: u64, index: u64) -> Rng {
    let mut rng = Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

/// A seeded random permutation of 0..n.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(&mut seeded(seed));
    v
}

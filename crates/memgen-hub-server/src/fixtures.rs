//! Repos to serve: random gray images in parquet shards laid out as memgen-data writes them.

use crate::{sha256_hex, FakeRepo};
use memgen_data::parquet::encode_image_parquet;
use rand::RngCore;

/// A repo `id` of `n_images` random `side` x `side` 8-bit gray PNGs in `shards` parquet shards
/// `data/train-{k:05}-of-{shards:05}.parquet` (image i in shard floor(i * shards / n) order, contiguous),
/// written with [`memgen_data::parquet::write_image_parquet`]'s layout, path `img_{i:05}.png`, label
/// `i % 5`; plus a `README.md`. The commit is derived from (id, seed). Returns the repo and the raw
/// pixels of each image, in order. Image i depends only on (seed, i).
pub fn fake_image_repo(
    id: &str,
    n_images: usize,
    side: u32,
    shards: usize,
    seed: u64,
) -> (FakeRepo, Vec<Vec<u8>>) {
    let shards = shards.max(1);
    let pixels: Vec<Vec<u8>> = (0..n_images).map(|i| random_pixels(seed, i, side)).collect();
    let mut files = vec![(
        "README.md".to_string(),
        format!("# {id}\n\nRandom gray images (seed {seed}).\n").into_bytes(),
    )];
    for k in 0..shards {
        let rows: Vec<(Vec<u8>, String, Option<i64>)> = (k * n_images / shards..(k + 1) * n_images / shards)
            .map(|i| (gray_png(&pixels[i], side), format!("img_{i:05}.png"), Some((i % 5) as i64)))
            .collect();
        let bytes = encode_image_parquet(&rows).expect("encode a parquet shard in memory");
        files.push((format!("data/train-{k:05}-of-{shards:05}.parquet"), bytes));
    }
    let commit = sha256_hex(format!("{id}@{seed}").as_bytes())[..40].to_string();
    (FakeRepo { id: id.to_string(), commit, files }, pixels)
}

/// The side x side random bytes of image `i`.
fn random_pixels(seed: u64, i: usize, side: u32) -> Vec<u8> {
    let mut px = vec![0u8; (side * side) as usize];
    memgen_data::rng::for_item(seed, i as u64).fill_bytes(&mut px);
    px
}

/// Encode `side` x `side` 8-bit gray pixels as PNG.
pub fn gray_png(pixels: &[u8], side: u32) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(pixels, side, side, image::ExtendedColorType::L8)
        .expect("encode a gray PNG");
    out
}

//! Bounded-time fuzzing of every parser with seeded mutations of valid inputs (bit flips, byte
//! changes, truncations, insertions, length-field changes, digit runs in text): IDX (plain and
//! gzipped), the parquet image column, PNG/JPEG images, the TOML configs (model, recipe,
//! experiment), safetensors (checkpoints and prepared datasets). Each input must give a value or an
//! error: no panic, and no single allocation over [`MAX_ALLOC`] (a counting allocator watches).
//! The number of inputs per parser is printed.

mod common;

use common::Rng;
use memgen_data::dataset::PreparedDataset;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The largest single allocation any parser may make on these small inputs (all well under 1 MB).
const MAX_ALLOC: usize = 64 << 20;

struct Counting;

thread_local! {
    /// The largest allocation this thread made since the last reset (tests run in parallel).
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// One seeded mutation of `seed_input`: 1-4 edits, each a bit flip, a random byte, a 4-byte
/// little/big-endian length field set to an extreme, a truncation, an insertion or a deletion.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut m = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        if m.is_empty() {
            m.push(rng.next() as u8);
        }
        let at = rng.below(m.len());
        match rng.below(7) {
            0 => m[at] ^= 1 << rng.below(8),
            1 => m[at] = rng.next() as u8,
            2 | 3 => {
                let v: u32 = [0, 1, 0x7fff_ffff, u32::MAX, rng.next() as u32][rng.below(5)];
                let bytes = if rng.below(2) == 0 { v.to_le_bytes() } else { v.to_be_bytes() };
                for (k, b) in bytes.iter().enumerate() {
                    if let Some(x) = m.get_mut(at + k) {
                        *x = *b;
                    }
                }
            }
            4 => m.truncate(at),
            5 => m.insert(at, rng.next() as u8),
            _ => {
                m.remove(at);
            }
        }
    }
    m
}

/// Text mutations for TOML: the byte mutations above, plus replacing a number by a huge or
/// negative one, or duplicating/removing a line.
fn mutate_text(rng: &mut Rng, text: &str) -> Vec<u8> {
    let numbers =
        ["0", "-1", "4294967296", "18446744073709551615", "99999999999999999999", "1e308", "nan", "64"];
    match rng.below(3) {
        0 => mutate(rng, text.as_bytes()),
        1 => {
            let digits: Vec<usize> =
                text.char_indices().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
            if digits.is_empty() {
                return mutate(rng, text.as_bytes());
            }
            let i = digits[rng.below(digits.len())];
            let end = text[i..].find(|c: char| !c.is_ascii_digit() && c != '.').map_or(text.len(), |e| i + e);
            format!("{}{}{}", &text[..i], numbers[rng.below(numbers.len())], &text[end..]).into_bytes()
        }
        _ => {
            let mut lines: Vec<&str> = text.lines().collect();
            let at = rng.below(lines.len());
            if rng.below(2) == 0 {
                lines.insert(at, lines[at]);
            } else {
                lines.remove(at);
            }
            lines.join("\n").into_bytes()
        }
    }
}

/// Run `parse` on up to `count` mutations of `seed_inputs`, for at most 6 s per parser (the count
/// reached is printed); panics name the input, which is also written to the temp dir. Returns the
/// number of inputs tried.
fn fuzz(
    what: &str,
    seed_inputs: &[Vec<u8>],
    count: usize,
    text: bool,
    dir: &Path,
    mut parse: impl FnMut(&[u8]) -> bool,
) -> usize {
    let mut rng = Rng(what.bytes().fold(7, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    let started = Instant::now();
    let budget = Duration::from_secs(6);
    let (mut tried, mut accepted) = (0, 0);
    while tried < count && started.elapsed() < budget {
        let base = &seed_inputs[tried % seed_inputs.len()];
        let input = if tried < seed_inputs.len() {
            base.clone()
        } else if text {
            mutate_text(&mut rng, std::str::from_utf8(base).unwrap())
        } else {
            mutate(&mut rng, base)
        };
        if std::env::var_os("MEMGEN_FUZZ_TRACE").is_some() {
            let trace = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-current-{what}"));
            std::fs::write(trace, &input).unwrap();
        }
        LARGEST.with(|l| l.set(0));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&input)));
        let largest = LARGEST.with(|l| l.get());
        if outcome.is_err() || largest > MAX_ALLOC {
            let _ = dir;
            let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
            std::fs::create_dir_all(&keep).unwrap();
            let saved = keep.join(format!("{what}-{tried}.bin"));
            std::fs::write(&saved, &input).unwrap();
            let why =
                if outcome.is_err() { "panicked".to_string() } else { format!("allocated {largest} bytes") };
            panic!("{what}: input {tried} {why}; kept as {}", saved.display());
        }
        if tried < seed_inputs.len() {
            assert!(outcome.unwrap(), "{what}: the valid seed input {tried} was refused");
        } else if outcome.unwrap() {
            accepted += 1;
        }
        tried += 1;
    }
    eprintln!(
        "fuzz {what}: {tried} inputs in {:.1} s ({accepted} parsed, the rest refused with an error)",
        started.elapsed().as_secs_f64()
    );
    tried
}

fn png(side: u32, seed: u8) -> Vec<u8> {
    let img =
        image::GrayImage::from_fn(side, side, |x, y| image::Luma([(x * 17 + y * 3 + seed as u32) as u8]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

fn jpeg(side: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(side, side, |x, y| image::Rgb([(x * 9) as u8, (y * 5) as u8, 77]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
    out
}

fn idx_file(n: u32, side: u32) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [n, side, side] {
        v.extend(d.to_be_bytes());
    }
    v.extend((0..n * side * side).map(|i| (i * 7) as u8));
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn idx_and_gzipped_idx() {
    let tmp = tempfile::tempdir().unwrap();
    let seeds = vec![idx_file(3, 4), idx_file(1, 2), vec![0, 0, 8, 1, 0, 0, 0, 2, 9, 9]];
    fuzz("idx", &seeds, 1_000_000, false, tmp.path(), |b| {
        memgen_data::idx::parse_idx(b, Path::new("x")).is_ok()
    });
    let file = tmp.path().join("x.gz");
    let gz: Vec<Vec<u8>> = seeds.iter().map(|s| gzip(s)).collect();
    fuzz("idx.gz", &gz, 40000, false, tmp.path(), |b| {
        std::fs::write(&file, b).unwrap();
        memgen_data::idx::read_idx(&file).is_ok()
    });
}

#[test]
fn png_and_jpeg_images() {
    let tmp = tempfile::tempdir().unwrap();
    let decode = |b: &[u8]| {
        // Held to 1024 x 1024 so that no decode may stay within the allocation watch by luck: a
        // declared size above it must be refused from the header.
        memgen_data::Image::decode_within(b, 1024)
            .is_ok_and(|img| img.pixels.len() == img.area() * img.channels)
    };
    fuzz("png", &[png(8, 1), png(5, 9)], 1_000_000, false, tmp.path(), decode);
    fuzz("jpeg", &[jpeg(8), jpeg(16)], 1_000_000, false, tmp.path(), decode);
}

#[test]
fn parquet_image_column() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("x.parquet");
    let rows: Vec<_> = (0..3u8).map(|i| (png(4, i), format!("{i}.png"), Some(i as i64))).collect();
    memgen_data::parquet::write_image_parquet(&file, &rows).unwrap();
    let seed = std::fs::read(&file).unwrap();
    fuzz("parquet", &[seed], 40000, false, tmp.path(), |b| {
        std::fs::write(&file, b).unwrap();
        memgen_data::parquet::read_encoded_images(&file, "image", Some("label"), None).is_ok()
    });
}

#[test]
fn toml_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let models: Vec<Vec<u8>> = ["unet-tiny", "blind-tiny", "unet-s"]
        .iter()
        .map(|m| std::fs::read(root().join(format!("models/{m}.toml"))).unwrap())
        .collect();
    let file = tmp.path().join("model.toml");
    fuzz("model.toml", &models, 80000, true, tmp.path(), |b| {
        std::fs::write(&file, b).unwrap();
        let Ok(cfg) = memgen_diffusion::ModelConfig::load(&file) else { return false };
        // What `memgen train` and `memgen model info` do next with a parsed config.
        cfg.validate(16).is_ok() && cfg.parameter_count() > 0
    });
    let recipes: Vec<Vec<u8>> = std::fs::read_dir(root().join("datasets"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    fuzz("recipe.toml", &recipes, 1_000_000, true, tmp.path(), |b| {
        std::str::from_utf8(b)
            .is_ok_and(|t| memgen_data::recipe::Recipe::parse(t, Path::new("r.toml")).is_ok())
    });
    let experiments: Vec<Vec<u8>> = ["demo", "olivetti", "gaussian", "faces-80"]
        .iter()
        .map(|e| std::fs::read(root().join(format!("experiments/{e}.toml"))).unwrap())
        .collect();
    fuzz("experiment.toml", &experiments, 1_000_000, true, tmp.path(), |b| {
        std::str::from_utf8(b).is_ok_and(|t| {
            memgen_experiment::Experiment::parse(t).is_ok_and(|e| {
                // Planning is what follows parsing; it must not blow up on accepted values.
                let plan = memgen_experiment::Plan::new(&e, Path::new("/e"), Path::new("/r"));
                !plan.jobs.is_empty()
            })
        })
    });
}

#[test]
fn safetensors_checkpoints_and_datasets() {
    let tmp = tempfile::tempdir().unwrap();
    // A checkpoint-like file: two f32 tensors, as memgen writes them.
    let a: Vec<u8> = (0..24).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let b: Vec<u8> = (0..5).flat_map(|_| 1f32.to_le_bytes()).collect();
    let views = vec![
        (
            "a.weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 3, 4], &a).unwrap(),
        ),
        ("b.bias", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![5], &b).unwrap()),
    ];
    let ckpt = tmp.path().join("model.safetensors");
    let seed = safetensors::serialize(views, None).unwrap();
    fuzz("checkpoint.safetensors", &[seed], 80000, false, tmp.path(), |b| {
        std::fs::write(&ckpt, b).unwrap();
        memgen_diffusion::checkpoint::load_tensors(&ckpt, &candle::Device::Cpu).is_ok()
    });
    let ds = tmp.path().join("ds");
    common::prepare(&ds, "calpha", 6, 4);
    let images = ds.join("images.safetensors");
    let seed = std::fs::read(&images).unwrap();
    fuzz("images.safetensors", &[seed], 60000, false, tmp.path(), |b| {
        std::fs::write(&images, b).unwrap();
        PreparedDataset::read(&ds).is_ok()
    });
}

/// Found by the model.toml fuzzing: `num_res_blocks = 4294967296` was accepted and counting its
/// parameters exhausted memory.
#[test]
fn a_model_config_of_absurd_size_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("models/unet-tiny.toml")).unwrap();
    for (from, to, field) in [
        ("num_res_blocks = 1", "num_res_blocks = 4294967296", "num_res_blocks"),
        ("base_channels = 8", "base_channels = 1000000", "base_channels"),
        ("channel_mult = [1, 2]", "channel_mult = [1, 100000]", "channel_mult"),
    ] {
        let file = tmp.path().join("m.toml");
        std::fs::write(&file, text.replace(from, to)).unwrap();
        let err = memgen_diffusion::ModelConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains("exceeds") && err.contains("m.toml"), "{err}");
    }
}

//! Folder source, preprocessing pipeline, the prepared-dataset format, recipes and bad inputs.

use memgen_data::dataset::{read_manifest, PreparedDataset, StorageDtype, IMAGES_FILE, MANIFEST_FILE};
use memgen_data::dedup::DedupConfig;
use memgen_data::folder::{FolderConfig, FolderSource};
use memgen_data::prepare::{prepare, PrepareOptions};
use memgen_data::preprocess::{Crop, PreprocessConfig};
use memgen_data::recipe::{Recipe, SourceSpec};
use memgen_data::{Error, ImageSource};
use rand::Rng;
use std::path::{Path, PathBuf};

/// Write `n` random gray PNGs named sPP_KK.png (person PP = i / per, photo KK) under `dir/sub`.
fn write_pngs(dir: &Path, n: usize, per: usize, side: u32, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = memgen_data::rng::seeded(seed);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    (0..n)
        .map(|i| {
            let px: Vec<u8> = (0..side * side).map(|_| rng.random()).collect();
            let img = image::GrayImage::from_raw(side, side, px.clone()).unwrap();
            let name = format!("s{:02}_{:02}.png", i / per + 1, i % per + 1);
            // Half the files in a subdirectory: the walk is recursive and the order sorted by path.
            let path = if i % 2 == 0 { dir.join(&name) } else { dir.join("sub").join(&name) };
            img.save(path).unwrap();
            px
        })
        .collect()
}

fn folder(dir: &Path, regex: Option<&str>) -> FolderSource {
    FolderSource::new(FolderConfig { path: dir.to_path_buf(), group_regex: regex.map(String::from) }).unwrap()
}

#[test]
fn folder_round_trips_bit_exactly_through_the_dataset_format() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("imgs");
    let pixels = write_pngs(&src, 12, 3, 9, 1);
    let mut source = folder(&src, Some(r"s(\d+)_"));
    let mut ds = prepare(&mut source, &PrepareOptions::default()).unwrap();
    assert_eq!(ds.manifest.dtype, StorageDtype::U8, "8-bit images without resampling are stored losslessly");
    let out = tmp.path().join("ds");
    ds.write(&out).unwrap();
    let back = PreparedDataset::read(&out).unwrap();
    assert_eq!(back, ds);
    // Sorted relative paths: top-level files (even i) first, then sub/ (odd i).
    let order: Vec<usize> = (0..12).filter(|i| i % 2 == 0).chain((0..12).filter(|i| i % 2 == 1)).collect();
    for (k, &i) in order.iter().enumerate() {
        let bytes: Vec<u8> = back.image(k).iter().map(|&v| (v * 255.0).round() as u8).collect();
        assert_eq!(bytes, pixels[i], "image {k}");
        assert_eq!(back.manifest.groups.as_ref().unwrap()[k], format!("{:02}", i / 3 + 1));
    }
    assert!(back.manifest.names[6].starts_with("sub"));
    let t = back.to_tensor(&candle::Device::Cpu).unwrap();
    assert_eq!(t.dims(), &[12, 1, 9, 9]);
    // Nothing but the two files is left behind (atomic writes clean up).
    let mut files: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    files.sort();
    assert_eq!(files, [IMAGES_FILE, MANIFEST_FILE]);
}

#[test]
fn resized_data_is_f32_and_crop_then_resize_is_applied() {
    let tmp = tempfile::tempdir().unwrap();
    write_pngs(tmp.path(), 4, 4, 12, 2);
    let opts = PrepareOptions {
        preprocess: PreprocessConfig {
            crop: Some(Crop { top: 2, left: 2, height: 8, width: 8 }),
            side: Some(4),
            ..Default::default()
        },
        ..Default::default()
    };
    let ds = prepare(&mut folder(tmp.path(), None), &opts).unwrap();
    assert_eq!((ds.manifest.height, ds.manifest.width, ds.manifest.dtype), (4, 4, StorageDtype::F32));
    // Check one output pixel by hand: mean of the 2x2 block at rows 2..4, cols 2..4 of the source.
    let img = image::open(tmp.path().join("s01_01.png")).unwrap().to_luma8();
    let want: f32 = [(2, 2), (2, 3), (3, 2), (3, 3)]
        .iter()
        .map(|&(r, c)| img.get_pixel(c, r)[0] as f32 / 255.0)
        .sum::<f32>()
        / 4.0;
    assert!((ds.image(0)[0] - want).abs() < 1e-6);
}

#[test]
fn dedup_drops_planted_copies_and_reports_them() {
    let tmp = tempfile::tempdir().unwrap();
    write_pngs(tmp.path(), 20, 20, 24, 3);
    std::fs::copy(tmp.path().join("s01_01.png"), tmp.path().join("s01_99.png")).unwrap();
    let opts = PrepareOptions { dedup: Some(DedupConfig::default()), ..Default::default() };
    let ds = prepare(&mut folder(tmp.path(), None), &opts).unwrap();
    let d = ds.manifest.dedup.as_ref().unwrap();
    assert_eq!((d.before, d.dropped, ds.manifest.count), (21, 1, 20));
    assert_eq!(d.dropped_names, ["s01_99.png"]);
}

#[test]
fn modified_images_file_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    write_pngs(&tmp.path().join("i"), 3, 3, 5, 4);
    let mut ds = prepare(&mut folder(&tmp.path().join("i"), None), &PrepareOptions::default()).unwrap();
    let out = tmp.path().join("ds");
    ds.write(&out).unwrap();
    let path = out.join(IMAGES_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let msg = PreparedDataset::read(&out).unwrap_err().to_string();
    assert!(msg.contains("content hash") && msg.contains(IMAGES_FILE), "{msg}");
    std::fs::write(&path, &bytes[..100]).unwrap();
    assert!(PreparedDataset::read(&out).unwrap_err().to_string().contains(IMAGES_FILE));
    let msg = read_manifest(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains(MANIFEST_FILE) && msg.contains("memgen data prepare"), "{msg}");
}

fn err_of(r: Result<impl std::fmt::Debug, Error>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn bad_folders_give_errors_that_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    // Empty folder.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let msg = err_of(FolderSource::new(FolderConfig { path: empty.clone(), group_regex: None }));
    assert!(msg.contains("empty") && msg.contains("no PNG or JPEG"), "{msg}");
    // Missing folder.
    assert!(err_of(FolderSource::new(FolderConfig { path: tmp.path().join("nope"), group_regex: None }))
        .contains("nope"));
    // Corrupt and truncated images.
    let bad = tmp.path().join("bad");
    write_pngs(&bad, 2, 2, 6, 5);
    let good = std::fs::read(bad.join("s01_01.png")).unwrap();
    std::fs::write(bad.join("s09_01.png"), &good[..good.len() / 2]).unwrap();
    let msg = err_of(folder(&bad, None).load(None));
    assert!(msg.contains("s09_01.png"), "{msg}");
    std::fs::write(bad.join("s09_01.png"), b"not a png at all").unwrap();
    assert!(err_of(folder(&bad, None).load(None)).contains("s09_01.png"));
    // Mixed sizes.
    let mixed = tmp.path().join("mixed");
    write_pngs(&mixed, 2, 2, 6, 6);
    image::GrayImage::new(7, 6).save(mixed.join("s05_01.png")).unwrap();
    let msg = err_of(prepare(&mut folder(&mixed, None), &PrepareOptions::default()));
    assert!(msg.contains("mixed sizes") && msg.contains("s05_01.png") && msg.contains("6x7"), "{msg}");
    // A file name the group regex does not match; an invalid regex.
    std::fs::remove_file(mixed.join("s05_01.png")).unwrap();
    image::GrayImage::new(6, 6).save(mixed.join("other.png")).unwrap();
    assert!(err_of(folder(&mixed, Some(r"s(\d+)_")).load(None)).contains("other.png"));
    assert!(err_of(FolderSource::new(FolderConfig { path: mixed, group_regex: Some("(".into()) }))
        .contains("regex"));
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn shipped_recipes_parse_and_bad_recipes_are_refused() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo_root().join("datasets")).unwrap() {
        let path = entry.unwrap().path();
        let r = Recipe::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!r.description.is_empty(), "{}", path.display());
        n += 1;
    }
    assert!(n >= 5);
    let celeba = Recipe::load(&repo_root().join("datasets/celeba.toml")).unwrap();
    assert_eq!(celeba.preprocess.crop, Some(Crop { top: 29, left: 9, height: 160, width: 160 }));
    assert!(matches!(celeba.source, SourceSpec::Hub(ref h) if h.repo == "nielsr/CelebA-faces"));
    let p = Path::new("bad.toml");
    let unknown_top = "name = 'x'\ncolour = 1\n[source]\nkind = 'calpha'\n";
    assert!(err_of(Recipe::parse(unknown_top, p)).contains("colour"));
    let unknown_in_source = "name = 'x'\n[source]\nkind = 'calpha'\nalpah = 3\n";
    let msg = err_of(Recipe::parse(unknown_in_source, p));
    assert!(msg.contains("alpah") && msg.contains("bad.toml"), "{msg}");
    let unknown_kind = "name = 'x'\n[source]\nkind = 'ftp'\n";
    assert!(err_of(Recipe::parse(unknown_kind, p)).contains("ftp"));
    let unknown_pre = "name = 'x'\n[source]\nkind = 'calpha'\n[preprocess]\nsize = 3\n";
    assert!(err_of(Recipe::parse(unknown_pre, p)).contains("size"));
}

#[test]
fn olivetti_faces_if_present() {
    let dir = repo_root().join("../shared/data/olivetti-faces");
    if !dir.is_dir() {
        eprintln!("skipping: {} not present", dir.display());
        return;
    }
    let mut src = folder(&dir, Some(r"s(\d+)_"));
    let opts = PrepareOptions {
        preprocess: PreprocessConfig { side: Some(32), ..Default::default() },
        ..Default::default()
    };
    let ds = prepare(&mut src, &opts).unwrap();
    assert_eq!((ds.manifest.count, ds.manifest.height), (400, 32));
    let groups: std::collections::BTreeSet<_> = ds.manifest.groups.as_ref().unwrap().iter().collect();
    assert_eq!(groups.len(), 40);
}

/// Truncations and seeded random mutations of `valid` through `parse` (true = accepted): never a
/// panic, and every truncation to fewer than `complete` bytes rejected.
fn fuzz(valid: &[u8], complete: usize, seed: u64, parse: &dyn Fn(&[u8]) -> bool) {
    for len in 0..valid.len() {
        if len >= complete {
            parse(&valid[..len]);
            continue;
        }
        assert!(!parse(&valid[..len]), "truncation to {len} of {} bytes was accepted", valid.len());
    }
    let mut rng = memgen_data::rng::seeded(seed);
    for _ in 0..1500 {
        let mut bytes = valid.to_vec();
        for _ in 0..rng.random_range(1..5) {
            let i = rng.random_range(0..bytes.len());
            bytes[i] = rng.random();
        }
        parse(&bytes);
    }
}

#[test]
fn image_decoding_survives_truncation_and_mutation() {
    let mut rng = memgen_data::rng::seeded(11);
    let px: Vec<u8> = (0..16 * 16).map(|_| rng.random()).collect();
    let img = image::GrayImage::from_raw(16, 16, px).unwrap();
    for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), format).unwrap();
        assert!(memgen_data::Image::decode(&bytes).is_ok());
        // A PNG cut inside its final 12-byte IEND chunk still holds the whole image; a JPEG decoder
        // pads a stream cut inside the entropy-coded data, so only its headers must be complete.
        let complete = match format {
            image::ImageFormat::Png => bytes.len() - 12,
            _ => 100,
        };
        fuzz(&bytes, complete, 12, &|b| memgen_data::Image::decode(b).is_ok());
    }
}

#[test]
fn prepared_dataset_reading_survives_truncation_and_mutation() {
    let tmp = tempfile::tempdir().unwrap();
    write_pngs(&tmp.path().join("i"), 3, 3, 4, 14);
    let mut ds = prepare(&mut folder(&tmp.path().join("i"), None), &PrepareOptions::default()).unwrap();
    let out = tmp.path().join("ds");
    ds.write(&out).unwrap();
    let path = out.join(IMAGES_FILE);
    let valid = std::fs::read(&path).unwrap();
    fuzz(&valid, valid.len(), 15, &|b| {
        std::fs::write(&path, b).unwrap();
        match PreparedDataset::read(&out) {
            Ok(back) => back == ds,
            Err(e) => {
                assert!(e.to_string().contains(IMAGES_FILE), "{e}");
                false
            }
        }
    });
    std::fs::write(&path, &valid).unwrap();
    let manifest = out.join(MANIFEST_FILE);
    let valid = std::fs::read(&manifest).unwrap();
    // The JSON ends at its last non-blank byte: the final newline is not needed to read it.
    let complete = valid.trim_ascii_end().len();
    assert!(complete < valid.len(), "the manifest ends in a newline");
    fuzz(&valid, complete, 16, &|b| {
        std::fs::write(&manifest, b).unwrap();
        PreparedDataset::read(&out).is_ok()
    });
}

//! Integration tests of the IDX reader: round trips through `IdxSource`, every kind of bad input,
//! a fuzz-style robustness test, and (when installed) the Debian Fashion-MNIST package.

use flate2::{write::GzEncoder, Compression};
use memgen_data::idx::{parse_idx, read_idx, IdxArray, IdxConfig, IdxSource};
use memgen_data::{ImageSource, SourceImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An IDX file: magic `00 00 ty ndims`, big-endian dims, then `data` as is.
fn idx_bytes(ty: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, ty, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

fn random_bytes(rng: &mut ChaCha8Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.random::<u8>()).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

fn source(paths: &[&Path]) -> memgen_data::Result<IdxSource> {
    IdxSource::new(IdxConfig { paths: paths.iter().map(|p| p.to_path_buf()).collect() })
}

/// The error message of `result`, which must be an error.
fn err_msg<T: std::fmt::Debug>(result: memgen_data::Result<T>) -> String {
    result.expect_err("expected an error").to_string()
}

/// `msg` must name `name` and contain `needle`.
fn assert_msg(msg: &str, name: &str, needle: &str) {
    assert!(msg.contains(name), "message does not name {name}: {msg}");
    assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
}

/// Each image must be `rows x cols`, 1 channel, no group, named `{file}#{i}`, with samples * 255
/// rounding exactly to the bytes of image `i` in `data`.
fn assert_images(images: &[SourceImage], file: &str, rows: usize, cols: usize, data: &[u8]) {
    let area = rows * cols;
    for (i, img) in images.iter().enumerate() {
        assert_eq!(img.name, format!("{file}#{i}"));
        assert_eq!(img.group, None);
        assert_eq!((img.image.height, img.image.width, img.image.channels), (rows, cols, 1));
        let bytes: Vec<u8> = img.image.pixels.iter().map(|&v| (v * 255.0).round() as u8).collect();
        assert!(img.image.pixels.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert_eq!(bytes, &data[i * area..(i + 1) * area], "pixels of {file}#{i}");
    }
}

/// A directory with `a-images-idx3-ubyte` (2 images, plain) and `b-images-idx3-ubyte.gz`
/// (3 images, gzipped), both 3x4, plus files that must be ignored. Returns (dir, data_a, data_b).
fn two_file_dir(rng: &mut ChaCha8Rng) -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (random_bytes(rng, 2 * 12), random_bytes(rng, 3 * 12));
    // Written in reverse order so directory order is not accidentally sorted order.
    write(dir.path(), "b-images-idx3-ubyte.gz", &gz(&idx_bytes(0x08, &[3, 3, 4], &b)));
    write(dir.path(), "a-images-idx3-ubyte", &idx_bytes(0x08, &[2, 3, 4], &a));
    write(dir.path(), "a-labels-idx1-ubyte", &idx_bytes(0x08, &[2], &[0, 1]));
    write(dir.path(), "notes-images.txt", b"not idx");
    std::fs::create_dir(dir.path().join("sub-images-idx3")).expect("mkdir");
    (dir, a, b)
}

#[test]
fn round_trip_directory_plain_and_gzipped_in_sorted_order() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (dir, a, b) = two_file_dir(&mut rng);
    let mut src = source(&[dir.path()]).expect("source");
    let names: Vec<_> = src.files().iter().map(|p| p.file_name().unwrap().to_owned()).collect();
    assert_eq!(names, ["a-images-idx3-ubyte", "b-images-idx3-ubyte.gz"]);

    let before = src.provenance();
    assert_eq!(before.params["images_per_file"], serde_json::json!([null, null]));

    let images = src.load(None).expect("load");
    assert_eq!(images.len(), 5);
    assert_images(&images[..2], "a-images-idx3-ubyte", 3, 4, &a);
    assert_images(&images[2..], "b-images-idx3-ubyte.gz", 3, 4, &b);

    let prov = src.provenance();
    assert_eq!(prov.kind, "idx");
    assert_eq!(prov.location, dir.path().display().to_string());
    assert_eq!(prov.revision, None);
    assert_eq!(prov.params["images_per_file"], serde_json::json!([2, 3]));
    let files = prov.params["files"].as_array().expect("files list");
    assert_eq!(files.len(), 2);
    assert!(files[1].as_str().unwrap().ends_with("b-images-idx3-ubyte.gz"));
}

#[test]
fn directory_files_are_read_in_sorted_name_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Created in a shuffled order, so neither creation order nor its reverse is sorted.
    let stems = ["d", "a", "f", "c", "h", "b", "g", "e"];
    for (k, stem) in stems.iter().enumerate() {
        let name = format!("{stem}-images-idx3-ubyte");
        write(dir.path(), &name, &idx_bytes(0x08, &[1, 1, 1], &[k as u8]));
    }
    let images = source(&[dir.path()]).expect("source").load(None).expect("load");
    let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
    let mut sorted: Vec<String> = stems.iter().map(|s| format!("{s}-images-idx3-ubyte#0")).collect();
    sorted.sort();
    assert_eq!(names, sorted);
    // Pixels travel with their file: "a" was written with byte 1.
    assert_eq!((images[0].image.pixels[0] * 255.0).round(), 1.0);
}

#[test]
fn explicit_files_keep_config_order_and_location_joins_paths() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (dir, a, b) = two_file_dir(&mut rng);
    let pa = dir.path().join("a-images-idx3-ubyte");
    let pb = dir.path().join("b-images-idx3-ubyte.gz");
    let mut src = source(&[&pb, &pa]).expect("source");
    let images = src.load(None).expect("load");
    assert_images(&images[..3], "b-images-idx3-ubyte.gz", 3, 4, &b);
    assert_images(&images[3..], "a-images-idx3-ubyte", 3, 4, &a);
    assert_eq!(src.provenance().location, format!("{}, {}", pb.display(), pa.display()));
}

#[test]
fn non_square_images_are_row_major() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: Vec<u8> = (0..12).collect();
    let path = write(dir.path(), "x-images-idx3", &idx_bytes(0x08, &[1, 2, 6], &data));
    let images = source(&[&path]).unwrap().load(None).expect("load");
    assert_eq!((images[0].image.height, images[0].image.width), (2, 6));
    assert_images(&images, "x-images-idx3", 2, 6, &data);
}

#[test]
fn count_limit_stops_early_and_reports_shortage() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (dir, a, b) = two_file_dir(&mut rng);
    let mut src = source(&[dir.path()]).expect("source");

    let three = src.load(Some(3)).expect("load 3");
    assert_eq!(three.len(), 3);
    assert_images(&three[..2], "a-images-idx3-ubyte", 3, 4, &a);
    assert_images(&three[2..], "b-images-idx3-ubyte.gz", 3, 4, &b[..12]);

    assert_eq!(src.load(Some(1)).expect("load 1").len(), 1);
    assert!(src.load(Some(0)).expect("load 0").is_empty());
    assert_eq!(src.load(Some(5)).expect("load all").len(), 5);
    let msg = err_msg(src.load(Some(6)));
    assert!(msg.contains('6') && msg.contains("only 5"), "{msg}");
}

#[test]
fn count_limit_does_not_read_later_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a-images-idx3-ubyte", &idx_bytes(0x08, &[2, 2, 2], &[9; 8]));
    write(dir.path(), "b-images-idx3-ubyte", b"\x00\x00\x08\x03garbage");
    let mut src = source(&[dir.path()]).expect("source");
    assert_eq!(src.load(Some(2)).expect("first file suffices").len(), 2);
    assert_eq!(src.provenance().params["images_per_file"], serde_json::json!([2, null]));
    assert_msg(&err_msg(src.load(Some(3))), "b-images-idx3-ubyte", "too short");
    assert!(src.load(None).is_err());
}

/// Bad single files: each must fail in `parse_idx` (plain ones), in `read_idx` and in
/// `IdxSource::load`, with the file name and `needle` in the message.
#[test]
fn bad_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = idx_bytes(0x08, &[2, 2, 3], &[7; 12]);
    let mut wrong_magic = good.clone();
    wrong_magic[0] = 0x12;
    let mut corrupt_gz = gz(&good);
    let mid = corrupt_gz.len() / 2;
    corrupt_gz[mid..].iter_mut().for_each(|b| *b ^= 0x5a);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "too short"),
        (vec![0, 0, 8], "too short"),
        (good[..10].to_vec(), "too short"),
        (wrong_magic, "magic"),
        (idx_bytes(0x0D, &[2, 2, 3], &[0; 48]), "0x0D"),
        (idx_bytes(0x08, &[], &[1, 2, 3]), "dimensions 0"),
        (idx_bytes(0x08, &[1, 1, 1, 1, 1], &[1]), "dimensions 5"),
        (good[..good.len() - 1].to_vec(), "truncated"),
        ([&good[..], &[0]].concat(), "trailing"),
        (idx_bytes(0x08, &[u32::MAX; 3], &[1, 2]), "overflow"),
        (corrupt_gz, "corrupt gzip stream"),
        (gz(&good)[..15].to_vec(), "corrupt gzip stream"),
        (idx_bytes(0x08, &[3], &[0, 1, 2]), "expected a 3-d image array (n x rows x cols), found dims [3]"),
        (idx_bytes(0x08, &[2, 0, 3], &[]), "empty"),
    ];
    for (k, (bytes, needle)) in cases.into_iter().enumerate() {
        // Neutral names, so that a needle cannot be matched by the file name itself.
        let name = &format!("bad{k:02}-images-idx3");
        let path = write(dir.path(), name, &bytes);
        let is_gz = bytes.starts_with(&[0x1f, 0x8b]);
        let is_array = needle.starts_with("expected") || needle == "empty";
        if !is_gz && !is_array {
            assert_msg(&err_msg(parse_idx(&bytes, &path)), name, needle);
        }
        if !is_array {
            assert_msg(&err_msg(read_idx(&path)), name, needle);
        }
        let mut src = source(&[&path]).expect("existing file is accepted");
        assert_msg(&err_msg(src.load(None)), name, needle);
    }
}

#[test]
fn unsupported_type_error_names_the_type() {
    let msg = err_msg(parse_idx(&idx_bytes(0x0D, &[1], &[0; 4]), Path::new("f.idx")));
    assert_msg(&msg, "f.idx", "0x0D (32-bit float)");
}

#[test]
fn size_errors_say_expected_and_found_bytes() {
    let good = idx_bytes(0x08, &[2, 2, 3], &[7; 12]);
    let msg = err_msg(parse_idx(&good[..good.len() - 2], Path::new("t.idx")));
    assert_msg(&msg, "t.idx", "need 12 data bytes, found 10");
    let msg = err_msg(parse_idx(&[&good[..], &[0, 0, 0]].concat(), Path::new("t.idx")));
    assert_msg(&msg, "t.idx", "need 12 data bytes, found 15");
}

#[test]
fn mismatched_sizes_across_files_name_the_file_and_both_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a-images-idx3-ubyte", &idx_bytes(0x08, &[1, 4, 5], &[0; 20]));
    write(dir.path(), "b-images-idx3-ubyte", &idx_bytes(0x08, &[1, 5, 4], &[0; 20]));
    let msg = err_msg(source(&[dir.path()]).unwrap().load(None));
    assert_msg(&msg, "b-images-idx3-ubyte", "5x4");
    assert!(msg.contains("4x5") && msg.contains("a-images-idx3-ubyte"), "{msg}");
}

#[test]
fn directories_without_image_files_and_missing_paths_are_errors() {
    let empty = tempfile::tempdir().expect("tempdir");
    let msg = err_msg(source(&[empty.path()]));
    assert!(msg.contains(&empty.path().display().to_string()), "{msg}");

    let labels_only = tempfile::tempdir().expect("tempdir");
    write(labels_only.path(), "train-labels-idx1-ubyte", &idx_bytes(0x08, &[1], &[3]));
    write(labels_only.path(), "train-images.png", b"png");
    let msg = err_msg(source(&[labels_only.path()]));
    assert!(msg.contains(&labels_only.path().display().to_string()), "{msg}");

    let missing = empty.path().join("no-such-images-idx3");
    assert_msg(&err_msg(source(&[&missing])), "no-such-images-idx3", "");
    assert!(source(&[]).is_err());
}

#[test]
fn config_serde_round_trips_and_rejects_unknown_fields() {
    let cfg = IdxConfig { paths: vec![PathBuf::from("/data/mnist"), PathBuf::from("x.gz")] };
    let json = serde_json::to_string(&cfg).expect("serialize");
    assert_eq!(serde_json::from_str::<IdxConfig>(&json).expect("deserialize"), cfg);
    assert!(serde_json::from_str::<IdxConfig>(r#"{"paths": [], "pathz": []}"#).is_err());
}

/// Must not panic; when it succeeds the array must be consistent.
fn check_array(result: memgen_data::Result<IdxArray>) -> bool {
    match result {
        Ok(arr) => {
            assert!((1..=4).contains(&arr.dims.len()), "dims {:?}", arr.dims);
            assert_eq!(arr.dims.iter().product::<usize>(), arr.data.len());
            true
        }
        Err(e) => {
            assert!(e.to_string().contains("fuzz"), "error does not name the file: {e}");
            false
        }
    }
}

/// Run `bytes` through `parse_idx`, and through `read_idx` and `IdxSource::load` via a file.
fn fuzz_one(bytes: &[u8], file: &Path) -> bool {
    let parsed = check_array(parse_idx(bytes, file));
    std::fs::write(file, bytes).expect("write fuzz file");
    let read = check_array(read_idx(file));
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        assert_eq!(parsed, read, "parse_idx and read_idx disagree on a plain file");
    }
    let loaded = source(&[file]).expect("source").load(None);
    if let Ok(images) = loaded {
        assert!(read, "load succeeded on a file read_idx rejects");
        assert!(images.iter().all(|i| i.image.pixels.len() == i.image.area() && i.image.area() > 0));
    }
    read
}

#[test]
fn fuzz_truncations_mutations_and_random_bytes_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x1d8);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fuzz-images-idx3");
    let data = random_bytes(&mut rng, 3 * 4 * 5);
    let plain = idx_bytes(0x08, &[3, 4, 5], &data);
    let packed = gz(&plain);
    for full in [&plain, &packed] {
        assert!(fuzz_one(full, &file), "the unmutated file must be valid");
        for len in 0..full.len() {
            assert!(!fuzz_one(&full[..len], &file), "truncation to {len} of {} bytes accepted", full.len());
        }
    }

    let mut accepted = 0;
    for round in 0..3000 {
        let mut bytes = if round % 2 == 0 { plain.clone() } else { packed.clone() };
        for _ in 0..rng.random_range(1..=4) {
            let at = rng.random_range(0..bytes.len());
            bytes[at] = rng.random();
        }
        accepted += fuzz_one(&bytes, &file) as usize;
    }
    // Flips in pixel data keep the file valid, so some mutations must be accepted.
    assert!(accepted > 0);

    for round in 0..1500 {
        let len = rng.random_range(0..48);
        let mut bytes = random_bytes(&mut rng, len);
        // Give some strings a valid-looking prefix so the deeper checks run too.
        match round % 3 {
            0 if len >= 4 => bytes[..4].copy_from_slice(&[0, 0, 8, rng.random_range(0..6)]),
            1 if len >= 2 => bytes[..2].copy_from_slice(&[0x1f, 0x8b]),
            _ => {}
        }
        fuzz_one(&bytes, &file);
    }
}

#[test]
fn fashion_mnist_debian_package() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.is_dir() {
        eprintln!("skipping: {} absent (apt-get install dataset-fashion-mnist)", dir.display());
        return;
    }
    let mut src = source(&[dir]).expect("source");
    let images = src.load(None).expect("load fashion-mnist");
    assert_eq!(images.len(), 70_000);
    assert!(images.iter().all(|i| (i.image.height, i.image.width, i.image.channels) == (28, 28, 1)));
    assert_eq!(images[0].name, "t10k-images-idx3-ubyte.gz#0");
    assert_eq!(images[69_999].name, "train-images-idx3-ubyte.gz#59999");
    assert_eq!(src.provenance().params["images_per_file"], serde_json::json!([10_000, 60_000]));
    let mean: f64 = images[..1000].iter().flat_map(|i| &i.image.pixels).map(|&v| v as f64).sum::<f64>()
        / (1000.0 * 784.0);
    assert!(mean > 0.1 && mean < 0.6, "implausible mean intensity {mean}");
}

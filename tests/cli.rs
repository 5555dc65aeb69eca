//! End-to-end tests of the `memgen data` commands, run as a user would run them.

mod common;

use common::{fails, fails_with, memgen, memgen_env, ok, REFUSED, USAGE};
use memgen_data::dataset::{Manifest, StorageDtype};
use memgen_data::split::SplitFile;
use std::path::Path;

/// DIR/manifest.json, read through its typed record.
fn manifest(dir: &Path) -> Manifest {
    memgen_io::read_json(&dir.join("manifest.json")).unwrap()
}

fn write_faces(dir: &Path, people: usize, photos: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for p in 0..people {
        for k in 0..photos {
            let img = image::GrayImage::from_fn(16, 16, |x, y| {
                image::Luma([((x * 7 + y * 13 + p as u32 * 31 + k as u32 * 5) % 256) as u8])
            });
            img.save(dir.join(format!("s{:02}_{:02}.png", p + 1, k + 1))).unwrap();
        }
    }
}

#[test]
fn folder_prepare_info_show_split() {
    let tmp = tempfile::tempdir().unwrap();
    let faces = tmp.path().join("faces");
    write_faces(&faces, 6, 4);
    let ds = tmp.path().join("ds");
    let (faces_s, ds_s) = (faces.to_str().unwrap(), ds.to_str().unwrap());
    let out =
        ok(&memgen(&["data", "prepare", faces_s, "--side", "8", "--group-regex", r"s(\d+)_", "--out", ds_s]));
    assert!(out.contains("prepared 24 images of 8x8"), "{out}");
    let m = manifest(&ds);
    assert_eq!(m.count, 24);
    assert_eq!(m.source.kind, "folder");
    assert_eq!(m.preprocess.side, Some(8));
    // A second prepare into the same directory must not overwrite without --force.
    let err = fails_with(&memgen(&["data", "prepare", faces_s, "--out", ds_s]), REFUSED);
    assert!(err.contains("--force"), "{err}");

    let info = ok(&memgen(&["data", "info", ds_s]));
    assert!(info.contains("24 x 1 channel(s) x 8x8") && info.contains("groups:       6"), "{info}");

    let png = tmp.path().join("grid.png");
    ok(&memgen(&[
        "data",
        "show",
        ds_s,
        "--out",
        png.to_str().unwrap(),
        "--count",
        "10",
        "--cols",
        "5",
        "--scale",
        "3",
    ]));
    let grid = image::open(&png).unwrap();
    // 5 columns x 2 rows of 24x24 tiles with 2-pixel padding.
    assert_eq!((grid.width(), grid.height()), (5 * 26 + 2, 2 * 26 + 2));

    let run = tmp.path().join("run");
    ok(&memgen(&["data", "split", ds_s, "--n", "2,4,12", "--seed", "3", "--out", run.to_str().unwrap()]));
    let split: SplitFile = memgen_io::read_json(&run.join("split.json")).unwrap();
    assert_eq!(split.content_hash, m.content_hash);
    let (a, b) = (&split.splits[2].a, &split.splits[2].b);
    assert_eq!((a.len(), b.len()), (12, 12));
    let groups = m.groups.as_ref().unwrap();
    assert!(a.iter().all(|&i| b.iter().all(|&j| groups[i] != groups[j])), "a person is on both sides");
    assert_eq!(split.splits[0].a[..], a[..2], "nested");
    let err = fails(&memgen(&["data", "split", ds_s, "--n", "13", "--out", run.to_str().unwrap()]));
    assert!(err.contains("at most N = 12"), "{err}");
}

#[test]
fn synthetic_sources_and_flag_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("c");
    ok(&memgen(&[
        "data",
        "prepare",
        "calpha",
        "--count",
        "40",
        "--side",
        "12",
        "--alpha",
        "2",
        "--out",
        c.to_str().unwrap(),
    ]));
    let m = manifest(&c);
    assert_eq!((m.count, m.height, m.dtype), (40, 12, StorageDtype::F32));
    assert_eq!(m.source.kind, "calpha");
    let g = tmp.path().join("g");
    ok(&memgen(&[
        "data",
        "prepare",
        "gaussian",
        "--count",
        "30",
        "--side",
        "4",
        "--spectrum",
        "flat:0.01",
        "--basis",
        "pixel",
        "--out",
        g.to_str().unwrap(),
    ]));
    assert_eq!(manifest(&g).count, 30);
    // Flags that do not fit the source, unknown sources, bad values.
    let err =
        fails_with(&memgen(&["data", "prepare", "calpha", "--group-regex", "x", "--out", "unused"]), USAGE);
    assert!(err.contains("--group-regex applies to folder sources"), "{err}");
    let err = fails_with(&memgen(&["data", "prepare", "no-such-thing", "--out", "unused"]), USAGE);
    assert!(err.contains("unknown source") && err.contains("celeba"), "{err}");
    let err = fails_with(
        &memgen(&["data", "prepare", "gaussian", "--spectrum", "steep", "--out", "unused"]),
        USAGE,
    );
    assert!(err.contains("power:EXPONENT"), "{err}");
    let err = fails(&memgen(&["data", "info", tmp.path().to_str().unwrap()]));
    assert!(err.contains("manifest.json"), "{err}");
    let recipes = ok(&memgen(&["data", "recipes"]));
    assert!(recipes.contains("celeba") && recipes.contains("fashion-mnist-idx"), "{recipes}");
}

#[test]
fn idx_source_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 4, 0, 0, 0, 4];
    bytes.extend((0..80u8).map(|v| v * 3));
    std::fs::write(dir.join("train-images-idx3-ubyte"), &bytes).unwrap();
    let ds = tmp.path().join("ds");
    let spec = format!("idx:{}", dir.display());
    ok(&memgen(&["data", "prepare", &spec, "--out", ds.to_str().unwrap()]));
    let m = manifest(&ds);
    assert_eq!((m.count, m.dtype), (5, StorageDtype::U8));
    std::fs::write(dir.join("train-images-idx3-ubyte"), &bytes[..50]).unwrap();
    let err = fails(&memgen(&["data", "prepare", &spec, "--out", tmp.path().join("d2").to_str().unwrap()]));
    assert!(err.contains("train-images-idx3-ubyte"), "{err}");
}

#[test]
fn hub_source_downloads_then_works_offline_from_the_cache() {
    use memgen_hub_server::{fake_image_repo, LoopbackHub};
    let tmp = tempfile::tempdir().unwrap();
    let (repo, pixels) = fake_image_repo("memgen/cli-faces", 12, 8, 2, 9);
    let hub = LoopbackHub::start(vec![repo]);
    let cache = tmp.path().join("hf-cache");
    let endpoint = hub.endpoint();
    let env = [("HF_ENDPOINT", endpoint.as_str()), ("HF_HUB_CACHE", cache.to_str().unwrap())];
    let ds = tmp.path().join("ds");
    let args =
        ["data", "prepare", "hub:memgen/cli-faces", "--group-column", "label", "--out", ds.to_str().unwrap()];
    ok(&memgen_env(&args, &env));
    let m = manifest(&ds);
    assert_eq!((m.count, m.dtype), (12, StorageDtype::U8));
    assert_eq!(m.source.kind, "hub");
    assert_eq!(m.source.revision.as_ref().unwrap().len(), 40, "the commit sha is recorded");
    assert_eq!(m.groups.as_ref().unwrap()[7], "2");
    // Pixels are bit-exact: the safetensors payload ends with the u8 images in order.
    let st = std::fs::read(ds.join("images.safetensors")).unwrap();
    let flat: Vec<u8> = pixels.concat();
    assert_eq!(&st[st.len() - flat.len()..], &flat[..]);
    assert!(cache.join("datasets--memgen--cli-faces").join("refs").join("main").is_file());

    // Offline, from the cache alone: no request reaches the Hub.
    let before = hub.requests().len();
    let ds2 = tmp.path().join("ds2");
    let mut off = args;
    off[6] = ds2.to_str().unwrap();
    ok(&memgen_env(&off, &[env[0], env[1], ("HF_HUB_OFFLINE", "1")]));
    assert_eq!(hub.requests().len(), before);
    assert_eq!(manifest(&ds2).content_hash, m.content_hash);

    // Nothing cached and the Hub unreachable: a clear error naming the endpoint and the cache.
    drop(hub);
    let empty = tmp.path().join("empty-cache");
    let mut again = args;
    let ds3 = tmp.path().join("ds3");
    again[6] = ds3.to_str().unwrap();
    let err = fails(&memgen_env(
        &again,
        &[("HF_ENDPOINT", endpoint.as_str()), ("HF_HUB_CACHE", empty.to_str().unwrap())],
    ));
    assert!(err.contains(&endpoint) && err.contains("empty-cache"), "{err}");
}

fn safetensors_payload(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn train_resume_and_sample_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (ds, run) = (tmp.path().join("ds"), tmp.path().join("run"));
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    common::prepare(&ds, "calpha", 40, 8);
    let tiny = models.join("unet-tiny.toml");
    let base = [
        "train",
        "--data",
        ds.to_str().unwrap(),
        "--model",
        tiny.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ];
    let opts = [
        "--n",
        "6",
        "--split",
        "b",
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "2",
        "--log-every",
        "1",
        "--quiet",
    ];
    let out = ok(&memgen(&[&base[..], &opts[..]].concat()));
    assert!(out.contains("trained to step 4"), "{out}");
    for f in [
        "config.json",
        "split.json",
        "train.jsonl",
        "model.safetensors",
        "ema.safetensors",
        "checkpoints/latest",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let split: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("split.json")).unwrap()).unwrap();
    assert_eq!(split["indices"].as_array().unwrap().len(), 6);
    assert_eq!(split["selection"]["side"], "b");
    // A second start into the same directory is refused; --resume extends the run.
    let err = fails(&memgen(&[&base[..], &opts[..]].concat()));
    assert!(err.contains("--resume"), "{err}");
    ok(&memgen(&["train", "--resume", run.to_str().unwrap(), "--steps", "6", "--quiet"]));
    let log = std::fs::read_to_string(run.join("train.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 6, "{log}");
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap().trim(), "step-00000006");
    // A run recorded on a device this build cannot use: a usage error naming config.json, nothing
    // changed.
    if !cfg!(feature = "cuda") {
        let config = run.join("config.json");
        let original = std::fs::read_to_string(&config).unwrap();
        assert!(original.contains("\"device\": \"cpu\""), "{original}");
        std::fs::write(&config, original.replace("\"device\": \"cpu\"", "\"device\": \"cuda:0\"")).unwrap();
        let msg = fails_with(&memgen(&["train", "--resume", run.to_str().unwrap(), "--steps", "8"]), USAGE);
        assert!(
            msg.contains("config.json") && msg.contains("cuda:0") && msg.contains("--features cuda"),
            "{msg}"
        );
        assert_eq!(std::fs::read_to_string(run.join("train.jsonl")).unwrap().lines().count(), 6);
        std::fs::write(&config, original).unwrap();
    }

    // Sampling twice with one seed gives identical bytes; another seed differs.
    let s = |seed: &str, dir: &str| {
        let out = tmp.path().join(dir);
        ok(&memgen(&[
            "sample",
            run.to_str().unwrap(),
            "--sampler",
            "ddim",
            "--ddim-steps",
            "10",
            "--count",
            "3",
            "--noise-seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ]));
        out
    };
    let (a, b, c) = (s("4", "s1"), s("4", "s2"), s("5", "s3"));
    let bytes = |d: &Path| safetensors_payload(&d.join("samples.safetensors"));
    assert_eq!(bytes(&a), bytes(&b));
    assert_ne!(bytes(&a), bytes(&c));
    assert!(a.join("grid.png").is_file());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("samples.json")).unwrap()).unwrap();
    assert_eq!(meta["result"]["dims"], serde_json::json!([3, 1, 8, 8]));
    // Given initial noise: with deterministic DDIM the noise seed no longer matters.
    let given = a.join("samples.safetensors");
    let g = |seed: &str, dir: &str| {
        let out = tmp.path().join(dir);
        let args =
            ["sample", run.to_str().unwrap(), "--sampler", "ddim", "--ddim-steps", "10", "--count", "3"];
        ok(&memgen(
            &[
                &args[..],
                &["--noise-seed", seed, "--noise", given.to_str().unwrap(), "--out", out.to_str().unwrap()],
            ]
            .concat(),
        ));
        bytes(&out)
    };
    let (g1, g2) = (g("1", "g1"), g("2", "g2"));
    assert_eq!(g1, g2);
    assert_ne!(g1, bytes(&a));
    let err = fails(&memgen(&[
        "sample",
        run.to_str().unwrap(),
        "--count",
        "2",
        "--noise",
        given.to_str().unwrap(),
    ]));
    assert!(err.contains("[2, 1, 8, 8]"), "{err}");
    let info = ok(&memgen(&["model", "info", models.join("unet-s.toml").to_str().unwrap(), "--side", "32"]));
    assert!(info.contains("3541569"), "{info}");
}

#[test]
fn blind_models_train_and_sample_with_the_ascent_sampler() {
    let tmp = tempfile::tempdir().unwrap();
    let (ds, run) = (tmp.path().join("ds"), tmp.path().join("run"));
    let blind = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/blind-tiny.toml");
    common::prepare(&ds, "calpha", 20, 8);
    ok(&memgen(&[
        "train",
        "--data",
        ds.to_str().unwrap(),
        "--model",
        blind.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--quiet",
    ]));
    // The blind network's training defaults (Kadkhodaie et al.): Adam at 1e-3 halved every 25% of
    // the run, no warm-up, no EMA; the batch size given on the command line wins.
    let cfg = memgen_diffusion::run::RunConfig::load(&run).unwrap().train;
    assert_eq!((cfg.lr, cfg.warmup_steps, cfg.ema_decay, cfg.batch_size), (1e-3, 0, 0.0, 8));
    assert_eq!(cfg.lr_decay, memgen_diffusion::train::LrDecay::Halving { fraction: 0.25 });
    let out = tmp.path().join("s");
    ok(&memgen(&[
        "sample",
        run.to_str().unwrap(),
        "--count",
        "2",
        "--beta",
        "0.5",
        "--max-steps",
        "200",
        "--out",
        out.to_str().unwrap(),
    ]));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("samples.json")).unwrap()).unwrap();
    assert_eq!(meta["result"]["steps"].as_array().unwrap().len(), 2, "{meta}");
}

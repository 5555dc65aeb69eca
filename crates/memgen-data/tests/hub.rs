//! The Hub source against the loopback Hub, the parquet reader/writer, globbing and the Hub
//! environment. Every test builds its own `HubEnv` and temp cache (tests run in parallel).

use memgen_io::FileError;
use memgen_data::hub::{check_repo_path, glob_match, select_files, HubConfig, HubEnv, HubSource};
use memgen_data::parquet::{read_encoded_images, write_image_parquet, EncodedImage};
use memgen_data::{Error, ImageSource, SourceImage};
use memgen_hub_server::{fake_image_repo, gray_png, sha256_hex, FakeRepo, LoopbackHub};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;

const REPO: &str = "memgen/tiny-gray";

fn env(endpoint: &str, cache: &Path) -> HubEnv {
    // hf-hub's ureq 2 client sends even loopback requests through ALL_PROXY/HTTPS_PROXY/HTTP_PROXY
    // (it has no NO_PROXY support).
    let proxies = ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"];
    if endpoint.starts_with("http://127.0.0.1") {
        let set: Vec<_> = proxies.iter().filter(|v| std::env::var_os(v).is_some()).collect();
        assert!(set.is_empty(), "unset {set:?} to run the loopback Hub tests");
    }
    HubEnv { endpoint: endpoint.to_string(), cache_dir: cache.to_path_buf(), token: None, offline: false }
}

fn cfg(repo: &str) -> HubConfig {
    HubConfig { repo: repo.to_string(), group_column: Some("label".into()), ..HubConfig::default() }
}

fn load(cfg: HubConfig, env: HubEnv, count: Option<usize>) -> memgen_data::Result<Vec<SourceImage>> {
    HubSource::new(cfg, env)?.load(count)
}

/// Pixels must be exactly v / 255 of the PNG's bytes.
fn assert_pixels(img: &SourceImage, expected: &[u8], side: usize) {
    assert_eq!((img.image.height, img.image.width, img.image.channels), (side, side, 1), "{}", img.name);
    let back: Vec<u8> = img.image.pixels.iter().map(|&p| (p * 255.0).round() as u8).collect();
    assert_eq!(back, expected, "{}", img.name);
    assert!(img.image.pixels.iter().zip(expected).all(|(&p, &b)| p == b as f32 / 255.0));
}

fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("datasets--{}", repo.replace('/', "--")))
}

/// An endpoint nothing listens on (port 1, so no test's loopback Hub can take it over).
fn dead_endpoint() -> String {
    "http://127.0.0.1:1".to_string()
}

fn hub_message(err: Error) -> String {
    match err {
        Error::Hub(msg) => msg,
        other => panic!("expected Error::Hub, got {other:?}"),
    }
}

// ---------------------------------------------------------------- downloads

#[test]
fn download_decodes_pixels_exactly_in_shard_order_with_groups() {
    let (repo, pixels) = fake_image_repo(REPO, 13, 8, 3, 7);
    let hub = LoopbackHub::start(vec![repo.clone()]);
    let cache = TempDir::new().unwrap();
    let mut src = HubSource::new(cfg(REPO), env(&hub.endpoint(), cache.path())).unwrap();
    let images = src.load(None).unwrap();
    assert_eq!(images.len(), 13);
    let shard_of = |i: usize| (0..3).find(|&k| i < (k + 1) * 13 / 3).unwrap();
    for (i, img) in images.iter().enumerate() {
        assert_pixels(img, &pixels[i], 8);
        let k = shard_of(i);
        assert_eq!(img.name, format!("data/train-{k:05}-of-00003.parquet#{}", i - k * 13 / 3));
        assert_eq!(img.group.as_deref(), Some((i % 5).to_string().as_str()));
    }
    let prov = src.provenance();
    assert_eq!((prov.kind.as_str(), prov.location.as_str()), ("hub", REPO));
    assert_eq!(prov.revision.as_deref(), Some(repo.commit.as_str()));
    let files: Vec<String> = (0..3).map(|k| format!("data/train-{k:05}-of-00003.parquet")).collect();
    assert_eq!(prov.params, serde_json::json!({"files": files, "column": "image", "group_column": "label"}));
    // README.md is not a parquet file and was never fetched.
    assert!(!hub.requests().iter().any(|r| r.contains("README")));
}

#[test]
fn count_limits_and_not_enough_says_how_many() {
    let (repo, pixels) = fake_image_repo(REPO, 10, 6, 2, 1);
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    let e = env(&hub.endpoint(), cache.path());
    let first = load(cfg(REPO), e.clone(), Some(7)).unwrap();
    assert_eq!(first.len(), 7);
    first.iter().zip(&pixels).for_each(|(img, px)| assert_pixels(img, px, 6));
    assert_eq!(load(cfg(REPO), e.clone(), Some(0)).unwrap().len(), 0);
    match load(cfg(REPO), e, Some(11)) {
        Err(Error::NotEnough(msg)) => assert!(msg.contains("only 10 images") && msg.contains("11"), "{msg}"),
        other => panic!("expected NotEnough, got {other:?}"),
    }
}

#[test]
fn cache_layout_is_the_standard_hf_one() {
    let (repo, _) = fake_image_repo(REPO, 4, 4, 2, 3);
    let hub = LoopbackHub::start(vec![repo.clone()]);
    let cache = TempDir::new().unwrap();
    let (commit, paths) =
        HubSource::new(cfg(REPO), env(&hub.endpoint(), cache.path())).unwrap().resolve().unwrap();
    assert_eq!(commit, repo.commit);
    let dir = repo_dir(cache.path(), REPO);
    assert_eq!(std::fs::read_to_string(dir.join("refs/main")).unwrap(), repo.commit);
    for (k, path) in paths.iter().enumerate() {
        let name = format!("data/train-{k:05}-of-00002.parquet");
        let content = &repo.files.iter().find(|(n, _)| *n == name).unwrap().1;
        let blob = dir.join("blobs").join(sha256_hex(content));
        assert_eq!(path, &dir.join("snapshots").join(&commit).join(&name));
        assert_eq!(std::fs::read(&blob).unwrap(), *content);
        assert_eq!(std::fs::canonicalize(path).unwrap(), std::fs::canonicalize(&blob).unwrap());
        let link = std::fs::read_link(path).unwrap();
        assert!(link.is_relative(), "snapshot entries are relative links: {link:?}");
    }
    let blobs: Vec<_> =
        std::fs::read_dir(dir.join("blobs")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(blobs.iter().all(|b| !b.to_string_lossy().ends_with(".part")), "{blobs:?}");
}

#[test]
fn offline_reads_the_cache_without_any_request() {
    let (repo, pixels) = fake_image_repo(REPO, 6, 5, 2, 11);
    let hub = LoopbackHub::start(vec![repo.clone()]);
    let cache = TempDir::new().unwrap();
    load(cfg(REPO), env(&hub.endpoint(), cache.path()), None).unwrap();
    let before = hub.requests().len();
    let mut offline = env(&hub.endpoint(), cache.path());
    offline.offline = true;
    let mut src = HubSource::new(cfg(REPO), offline).unwrap();
    let images = src.load(None).unwrap();
    images.iter().zip(&pixels).for_each(|(img, px)| assert_pixels(img, px, 5));
    assert_eq!(hub.requests().len(), before, "offline mode made requests");
    assert_eq!(src.provenance().revision.as_deref(), Some(repo.commit.as_str()));
}

#[test]
fn stopped_server_falls_back_to_the_cache() {
    let (repo, pixels) = fake_image_repo(REPO, 5, 4, 1, 5);
    let cache = TempDir::new().unwrap();
    let endpoint = {
        let hub = LoopbackHub::start(vec![repo.clone()]);
        load(cfg(REPO), env(&hub.endpoint(), cache.path()), None).unwrap();
        hub.endpoint()
    };
    let mut src = HubSource::new(cfg(REPO), env(&endpoint, cache.path())).unwrap();
    let images = src.load(Some(5)).unwrap();
    images.iter().zip(&pixels).for_each(|(img, px)| assert_pixels(img, px, 4));
    assert_eq!(src.provenance().revision, Some(repo.commit));
}

#[test]
fn unreachable_hub_with_empty_cache_names_endpoint_and_cache() {
    let cache = TempDir::new().unwrap();
    let endpoint = dead_endpoint();
    let err = load(cfg(REPO), env(&endpoint, cache.path()), None).unwrap_err();
    let msg = hub_message(err);
    assert!(msg.contains(&format!("cannot reach {endpoint}")), "{msg}");
    assert!(msg.contains(&cache.path().display().to_string()), "{msg}");
    assert!(msg.contains(REPO) && msg.contains("main"), "{msg}");

    let mut offline = env(&endpoint, cache.path());
    offline.offline = true;
    let msg = hub_message(load(cfg(REPO), offline, None).unwrap_err());
    assert!(msg.contains("offline") && msg.contains(&cache.path().display().to_string()), "{msg}");
}

#[test]
fn losing_the_hub_mid_download_is_an_error_not_a_partial_dataset() {
    let (repo, pixels) = fake_image_repo(REPO, 6, 4, 3, 8);
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    hub.set_unavailable(&["data/train-00001-of-00003.parquet"]);
    let msg = hub_message(load(cfg(REPO), env(&hub.endpoint(), cache.path()), None).unwrap_err());
    assert!(
        msg.contains("lost") && msg.contains("data/train-00001-of-00003.parquet") && msg.contains("503"),
        "{msg}"
    );
    // The shard that did arrive is cached, but refs/main was put back, so offline finds nothing.
    assert!(!repo_dir(cache.path(), REPO).join("refs/main").exists());
    let offline = HubEnv { offline: true, ..env(&hub.endpoint(), cache.path()) };
    assert!(hub_message(load(cfg(REPO), offline.clone(), None).unwrap_err()).contains("nothing"));
    hub.set_unavailable(&[]);
    let n = hub.requests().len();
    let images = load(cfg(REPO), env(&hub.endpoint(), cache.path()), None).unwrap();
    images.iter().zip(&pixels).for_each(|(img, px)| assert_pixels(img, px, 4));
    let fetched: Vec<String> =
        hub.requests()[n..].iter().filter(|r| r.contains("/resolve/")).cloned().collect();
    assert!(fetched.iter().all(|r| !r.contains("train-00000")), "cached shard fetched again: {fetched:?}");
    assert_eq!(load(cfg(REPO), offline, None).unwrap().len(), 6);
}

#[test]
fn debug_output_hides_the_token() {
    let e = HubEnv { token: Some("hf_very_secret".into()), ..env("https://huggingface.co", Path::new("/c")) };
    let shown = format!("{e:?} {:?}", HubSource::new(cfg("a/b"), e.clone()).unwrap());
    assert!(!shown.contains("hf_very_secret") && shown.contains("redacted"), "{shown}");
}

#[test]
fn a_moved_branch_is_not_served_from_a_stale_snapshot() {
    let cache = TempDir::new().unwrap();
    let (old, _) = fake_image_repo(REPO, 3, 4, 1, 100);
    let (new, new_pixels) = fake_image_repo(REPO, 4, 4, 1, 200);
    let hub = LoopbackHub::start(vec![old]);
    load(cfg(REPO), env(&hub.endpoint(), cache.path()), None).unwrap();
    drop(hub);
    let hub = LoopbackHub::start(vec![new.clone()]);
    let mut src = HubSource::new(cfg(REPO), env(&hub.endpoint(), cache.path())).unwrap();
    let images = src.load(None).unwrap();
    assert_eq!(images.len(), 4);
    images.iter().zip(&new_pixels).for_each(|(img, px)| assert_pixels(img, px, 4));
    let refs = std::fs::read_to_string(repo_dir(cache.path(), REPO).join("refs/main")).unwrap();
    assert_eq!(refs, new.commit);
}

#[test]
fn a_commit_revision_works_online_and_offline() {
    let (repo, _) = fake_image_repo(REPO, 3, 4, 1, 9);
    let hub = LoopbackHub::start(vec![repo.clone()]);
    let cache = TempDir::new().unwrap();
    let pinned = HubConfig { revision: repo.commit.clone(), ..cfg(REPO) };
    assert_eq!(load(pinned.clone(), env(&hub.endpoint(), cache.path()), None).unwrap().len(), 3);
    let mut offline = env(&hub.endpoint(), cache.path());
    offline.offline = true;
    assert_eq!(load(pinned, offline, None).unwrap().len(), 3);
}

#[test]
fn exact_paths_and_patterns_select_files_in_pattern_order() {
    let (repo, pixels) = fake_image_repo(REPO, 6, 4, 3, 21);
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    let files = vec!["data/train-00002-of-00003.parquet".to_string(), "data/train-*.parquet".to_string()];
    let images = load(HubConfig { files, ..cfg(REPO) }, env(&hub.endpoint(), cache.path()), None).unwrap();
    let order = [4, 5, 0, 1, 2, 3];
    images.iter().zip(order).for_each(|(img, i)| assert_pixels(img, &pixels[i], 4));
}

// ---------------------------------------------------------------- refusals and HTTP errors

fn hostile_repo(names: &[&str]) -> FakeRepo {
    let (mut repo, _) = fake_image_repo("evil/repo", 2, 4, 1, 0);
    let content = repo.files[1].1.clone();
    repo.files.extend(names.iter().map(|n| (n.to_string(), content.clone())));
    repo
}

/// All files below `dir`, as paths relative to it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        out.push(path.strip_prefix(dir).unwrap().to_path_buf());
        if path.is_dir() && !path.is_symlink() {
            out.extend(tree(&path).into_iter().map(|p| path.strip_prefix(dir).unwrap().join(p)));
        }
    }
    out
}

#[test]
fn hostile_sibling_names_are_refused_before_any_download() {
    for name in ["../../evil.parquet", "/etc/passwd.parquet", "data/..\\..\\evil.parquet", "data//x.parquet"]
    {
        let hub = LoopbackHub::start(vec![hostile_repo(&[name])]);
        let root = TempDir::new().unwrap();
        let cache = root.path().join("a/b/cache");
        for files in [vec!["*.parquet".to_string()], vec![name.to_string()]] {
            let config = HubConfig { files, group_column: None, ..cfg("evil/repo") };
            let msg = hub_message(load(config, env(&hub.endpoint(), &cache), None).unwrap_err());
            assert!(msg.contains("refusing") && msg.contains(&format!("{name:?}")), "{msg}");
        }
        assert!(hub.requests().iter().all(|r| r.starts_with("GET /api/")), "{:?}", hub.requests());
        let written = tree(root.path());
        assert!(
            written.iter().all(|p| p.starts_with("a/b/cache") || Path::new("a/b/cache").starts_with(p)),
            "{written:?}"
        );
        assert!(!written.iter().any(|p| p.to_string_lossy().contains("evil")), "{written:?}");
    }
}

#[test]
fn unknown_repo_revision_and_unmatched_patterns_are_clear_errors() {
    let (repo, _) = fake_image_repo(REPO, 2, 4, 1, 0);
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    let e = env(&hub.endpoint(), cache.path());
    let msg = hub_message(load(cfg("memgen/nope"), e.clone(), None).unwrap_err());
    assert!(msg.contains("memgen/nope") && msg.contains("not found") && msg.contains("HF_TOKEN"), "{msg}");
    let msg =
        hub_message(load(HubConfig { revision: "v9".into(), ..cfg(REPO) }, e.clone(), None).unwrap_err());
    assert!(msg.contains("revision v9 not found"), "{msg}");
    let msg = hub_message(load(HubConfig { files: vec!["*.jpg".into()], ..cfg(REPO) }, e, None).unwrap_err());
    assert!(
        msg.contains("*.jpg")
            && msg.contains("README.md")
            && msg.contains("data/train-00000-of-00001.parquet"),
        "{msg}"
    );
}

#[test]
fn token_is_required_by_a_gated_repo_and_sent_when_set() {
    let (repo, pixels) = fake_image_repo(REPO, 3, 4, 1, 2);
    let hub = LoopbackHub::start_with_token(vec![repo], Some("hf_secret".into()));
    let cache = TempDir::new().unwrap();
    let msg = hub_message(load(cfg(REPO), env(&hub.endpoint(), cache.path()), None).unwrap_err());
    assert!(msg.contains("401") && msg.contains("HF_TOKEN") && msg.contains("no token was sent"), "{msg}");
    let wrong = HubEnv { token: Some("hf_wrong".into()), ..env(&hub.endpoint(), cache.path()) };
    let msg = hub_message(load(cfg(REPO), wrong, None).unwrap_err());
    assert!(msg.contains("401") && msg.contains("refused"), "{msg}");
    let right = HubEnv { token: Some("hf_secret".into()), ..env(&hub.endpoint(), cache.path()) };
    let images = load(cfg(REPO), right, None).unwrap();
    images.iter().zip(&pixels).for_each(|(img, px)| assert_pixels(img, px, 4));
}

#[test]
fn missing_and_mistyped_columns_are_reported_with_the_columns_that_exist() {
    let (repo, _) = fake_image_repo(REPO, 2, 4, 1, 0);
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    let e = env(&hub.endpoint(), cache.path());
    let bad_file_msg = |config: HubConfig| match load(config, e.clone(), None) {
        Err(Error::File(FileError::BadFile { path, msg })) => {
            assert!(path.ends_with("data/train-00000-of-00001.parquet"), "{path:?}");
            msg
        }
        other => panic!("expected BadFile, got {other:?}"),
    };
    let msg = bad_file_msg(HubConfig { column: "img".into(), ..cfg(REPO) });
    assert!(msg.contains("no column `img`") && msg.contains("image, label"), "{msg}");
    let msg = bad_file_msg(HubConfig { column: "label".into(), group_column: None, ..cfg(REPO) });
    assert!(msg.contains("not an image struct"), "{msg}");
    let msg = bad_file_msg(HubConfig { group_column: Some("person".into()), ..cfg(REPO) });
    assert!(msg.contains("no column `person`") && msg.contains("image, label"), "{msg}");
}

#[test]
fn a_corrupt_image_names_the_shard_and_row() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("x.parquet");
    let good = gray_png(&[7; 16], 4);
    let rows = vec![
        (good.clone(), "a.png".into(), None),
        (good.clone(), "b.png".into(), None),
        (b"not a png".to_vec(), "c.png".into(), None),
    ];
    write_image_parquet(&file, &rows).unwrap();
    let repo = FakeRepo {
        id: "x/corrupt".into(),
        commit: "c0ffee".into(),
        files: vec![("x.parquet".into(), std::fs::read(&file).unwrap())],
    };
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    match load(cfg("x/corrupt"), env(&hub.endpoint(), cache.path()), None) {
        Err(Error::File(FileError::BadFile { path, msg })) => {
            assert!(path.ends_with("x.parquet") && msg.starts_with("row 2:"), "{path:?}: {msg}");
        }
        other => panic!("expected BadFile, got {other:?}"),
    }
}

#[test]
fn a_long_non_ascii_file_name_downloads() {
    // hf-hub 0.4.3's `Progress for ProgressBar` slices long names at a byte offset:
    let long = "données/été-ééééééé-10.parquet"; // byte len - 30 falls inside an é
    let mut bar = indicatif::ProgressBar::hidden();
    let upstream = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        hf_hub::api::Progress::init(&mut bar, 10, long);
    }));
    assert!(upstream.is_err(), "hf-hub no longer panics on multi-byte names; the Bar wrapper can go");
    // ... which our wrapper avoids; the loopback Hub also checks %-decoding of the path.
    let (mut repo, pixels) = fake_image_repo("x/utf8", 2, 4, 1, 4);
    repo.files[1].0 = long.to_string();
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    let images = load(cfg("x/utf8"), env(&hub.endpoint(), cache.path()), None).unwrap();
    images.iter().zip(&pixels).for_each(|(img, px)| assert_pixels(img, px, 4));
    assert_eq!(images[1].name, format!("{long}#1"));
}

// ---------------------------------------------------------------- the loopback server itself

fn raw_request(endpoint: &str, request: &str) -> (String, Vec<u8>) {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (String::from_utf8(out[..split].to_vec()).unwrap(), out[split + 4..].to_vec())
}

#[test]
fn loopback_hub_speaks_ranges_head_and_redirects() {
    let repo = FakeRepo {
        id: "a/b".into(),
        commit: "abc123".into(),
        files: vec![
            ("notes.txt".into(), b"0123456789".to_vec()),
            ("d.parquet".into(), b"PAR1xxPAR1".to_vec()),
        ],
    };
    let hub = LoopbackHub::start(vec![repo]);
    let ep = hub.endpoint();
    let (head, body) =
        raw_request(&ep, "GET /datasets/a/b/resolve/main/notes.txt HTTP/1.1\r\nRange: bytes=2-5\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 206") && head.contains("Content-Range: bytes 2-5/10"), "{head}");
    assert!(
        head.contains("X-Repo-Commit: abc123")
            && head.contains(&format!("ETag: \"{}\"", sha256_hex(b"0123456789"))),
        "{head}"
    );
    assert_eq!(body, b"2345");
    let (head, body) = raw_request(&ep, "HEAD /datasets/a/b/resolve/abc123/notes.txt HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("Content-Length: 10") && body.is_empty(),
        "{head}"
    );
    let (head, _) =
        raw_request(&ep, "GET /datasets/a/b/resolve/main/notes.txt HTTP/1.1\r\nRange: bytes=10-\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 416") && head.contains("bytes */10"), "{head}");
    let (head, _) = raw_request(&ep, "GET /datasets/a/b/resolve/main/d.parquet HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 302")
            && head.contains("X-Linked-Etag")
            && head.contains("Location: http://x/cdn/"),
        "{head}"
    );
    let (head, _) = raw_request(&ep, "GET /datasets/a/b/resolve/main/missing HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 404") && head.contains("X-Error-Code: EntryNotFound"), "{head}");
    let (head, _) = raw_request(&ep, "GET /api/datasets/a/c/revision/main HTTP/1.1\r\n\r\n");
    assert!(head.contains("X-Error-Code: RepoNotFound"), "{head}");
    let (_, body) = raw_request(&ep, "GET /api/datasets/a/b/revision/main HTTP/1.1\r\n\r\n");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["sha"], "abc123");
    assert_eq!(json["siblings"][1]["rfilename"], "d.parquet");
    assert_eq!(hub.requests().len(), 7);
    assert_eq!(hub.requests()[0], "GET /datasets/a/b/resolve/main/notes.txt HTTP/1.1");
}

// ---------------------------------------------------------------- configuration

#[test]
fn glob_rules() {
    assert!(glob_match("*.parquet", "a.parquet"));
    assert!(glob_match("*.parquet", "data/deep/a.parquet"), "slash-free patterns match the last segment");
    assert!(!glob_match("*.parquet", "a.parquet.lock"));
    assert!(glob_match("data/train-*.parquet", "data/train-00000-of-00002.parquet"));
    assert!(!glob_match("data/train-*.parquet", "data/x/train-0.parquet"), "* does not cross /");
    assert!(!glob_match("data/*", "data/x/y"));
    assert!(glob_match("data/*/*.parquet", "data/x/y.parquet"));
    assert!(glob_match("d?ta/a?.parquet", "data/ab.parquet"));
    assert!(!glob_match("d?ta/a?.parquet", "data/a.parquet"));
    assert!(!glob_match("a?b", "a/b"));
    assert!(glob_match("*a*b*c", "xxaxxbxxbc"));
    assert!(!glob_match("*a*b*c", "xxaxxbxxb"));
    assert!(glob_match("**", "x"));
    assert!(glob_match("é*", "éèê"));
    assert!(glob_match("README.md", "README.md") && !glob_match("README.md", "README.mdx"));
    let names: Vec<String> =
        ["b.parquet", "a.parquet", "x/c.parquet", "README.md"].map(String::from).to_vec();
    let picked = select_files(&names, &["x/*".into(), "*.parquet".into()]);
    assert_eq!(picked, ["x/c.parquet", "a.parquet", "b.parquet"]);
}

#[test]
fn repo_path_checks() {
    for ok in ["a.parquet", "data/train-0.parquet", "données/x y.parquet", "..a/b..c"] {
        assert!(check_repo_path(ok).is_ok(), "{ok}");
    }
    for bad in ["", "/abs", "../x", "a/../../x", "a/./x", "a//x", "a\\x", "C:x", "a#b", "a?b", "a\nb", "a/.."]
    {
        assert!(matches!(check_repo_path(bad), Err(Error::Hub(_))), "{bad:?}");
    }
}

#[test]
fn config_defaults_and_validation() {
    let c: HubConfig = serde_json::from_str(r#"{"repo": "a/b"}"#).unwrap();
    assert_eq!(c, HubConfig { repo: "a/b".into(), ..HubConfig::default() });
    assert_eq!(
        (c.revision.as_str(), c.files.clone(), c.column.as_str(), c.group_column.clone()),
        ("main", vec!["*.parquet".to_string()], "image", None)
    );
    assert!(serde_json::from_str::<HubConfig>(r#"{"repo": "a/b", "split": "train"}"#).is_err());
    let e = env("https://huggingface.co/", Path::new("rel/cache"));
    let src = HubSource::new(cfg("a/b"), e.clone()).unwrap();
    assert!(src.env().cache_dir.is_absolute() && src.env().endpoint == "https://huggingface.co");
    assert!(src.cache_repo_dir().ends_with("rel/cache/datasets--a--b"));
    for bad in ["", "../x", "a/b/c", "a--b/c", ".a/b", "a/b-", "a b", "a/..", "/a"] {
        assert!(matches!(HubSource::new(cfg(bad), e.clone()), Err(Error::Invalid(_))), "{bad:?}");
    }
    for rev in ["", "../main", "a\\b", "refs//x"] {
        assert!(
            HubSource::new(HubConfig { revision: rev.into(), ..cfg("a/b") }, e.clone()).is_err(),
            "{rev:?}"
        );
    }
    assert!(HubSource::new(HubConfig { revision: "refs/pr/1".into(), ..cfg("a/b") }, e.clone()).is_ok());
    assert!(HubSource::new(HubConfig { files: vec![], ..cfg("a/b") }, e.clone()).is_err());
    assert!(HubSource::new(cfg("a/b"), env("ftp://x", Path::new("c"))).is_err());
}

#[test]
fn env_from_vars() {
    let home = TempDir::new().unwrap();
    let hf_home = home.path().join("hf");
    std::fs::create_dir_all(&hf_home).unwrap();
    std::fs::write(hf_home.join("token"), "  hf_from_file\n").unwrap();
    let vars = |pairs: &[(&str, String)]| {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        HubEnv::from_vars(move |name| map.get(name).cloned())
    };
    let h = home.path().display().to_string();
    let e = vars(&[("HOME", h.clone())]);
    assert_eq!(e.endpoint, "https://huggingface.co");
    assert_eq!(e.cache_dir, home.path().join(".cache/huggingface/hub"));
    assert_eq!((e.token, e.offline), (None, false));

    let hfh = hf_home.display().to_string();
    let e = vars(&[
        ("HOME", h.clone()),
        ("HF_HOME", hfh.clone()),
        ("HF_ENDPOINT", "http://mirror:8080/".into()),
        ("HF_HUB_OFFLINE", "True".into()),
    ]);
    assert_eq!(
        (e.endpoint.as_str(), e.cache_dir.clone(), e.token.as_deref(), e.offline),
        ("http://mirror:8080", hf_home.join("hub"), Some("hf_from_file"), true)
    );

    let e = vars(&[
        ("HF_HOME", hfh.clone()),
        ("HF_TOKEN", "hf_env".into()),
        ("HF_HUB_CACHE", "/data/hub".into()),
        ("HF_HUB_OFFLINE", "0".into()),
    ]);
    assert_eq!(
        (e.cache_dir, e.token.as_deref(), e.offline),
        (PathBuf::from("/data/hub"), Some("hf_env"), false)
    );

    std::fs::write(hf_home.join("token"), "\n").unwrap();
    let e = vars(&[("HF_HOME", hfh), ("HF_TOKEN", "".into()), ("HF_HUB_OFFLINE", "yes".into())]);
    assert_eq!((e.token, e.offline), (None, true));
}

// ---------------------------------------------------------------- parquet

#[test]
fn parquet_round_trip_with_paths_groups_and_limit() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("t.parquet");
    let rows: Vec<(Vec<u8>, String, Option<i64>)> = (0..40)
        .map(|i| (vec![i as u8; i % 7], format!("p{i}"), (i % 3 != 0).then_some(i as i64 - 20)))
        .collect();
    write_image_parquet(&file, &rows).unwrap();
    let all = read_encoded_images(&file, "image", Some("label"), None).unwrap();
    let expected: Vec<EncodedImage> = rows
        .iter()
        .map(|(b, p, l)| EncodedImage {
            bytes: b.clone(),
            path: Some(p.clone()),
            group: l.map(|l| l.to_string()),
        })
        .collect();
    assert_eq!(all, expected);
    let first = read_encoded_images(&file, "image", None, Some(17)).unwrap();
    assert_eq!(first.len(), 17);
    assert!(first.iter().zip(&expected).all(|(a, e)| a.bytes == e.bytes && a.group.is_none()));
    assert!(read_encoded_images(&file, "image", None, Some(0)).unwrap().is_empty());
    assert_eq!(write_then_count(&dir, &[]), 0);
}

fn write_then_count(dir: &TempDir, rows: &[(Vec<u8>, String, Option<i64>)]) -> usize {
    let file = dir.path().join("empty.parquet");
    write_image_parquet(&file, rows).unwrap();
    read_encoded_images(&file, "image", None, None).unwrap().len()
}

/// One column's values and definition levels, for hand-made files.
enum Col {
    Bytes(Vec<Vec<u8>>, Vec<i16>),
    I32(Vec<i32>, Vec<i16>),
    I64(Vec<i64>, Vec<i16>),
}

fn write_custom(file: &Path, schema: &str, cols: Vec<Col>) {
    let schema = Arc::new(parse_message_type(schema).unwrap());
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(std::fs::File::create(file).unwrap(), schema, props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    for col in cols {
        let mut w = group.next_column().unwrap().unwrap();
        let levels = |d: &Vec<i16>| (!d.is_empty()).then(|| d.clone());
        match col {
            Col::Bytes(v, d) => {
                let v: Vec<ByteArray> = v.into_iter().map(ByteArray::from).collect();
                w.typed::<ByteArrayType>().write_batch(&v, levels(&d).as_deref(), None).unwrap();
            }
            Col::I32(v, d) => {
                w.typed::<Int32Type>().write_batch(&v, levels(&d).as_deref(), None).unwrap();
            }
            Col::I64(v, d) => {
                w.typed::<Int64Type>().write_batch(&v, levels(&d).as_deref(), None).unwrap();
            }
        }
        w.close().unwrap();
    }
    group.close().unwrap();
    writer.close().unwrap();
}

fn bad_msg(file: &Path, column: &str, group: Option<&str>) -> String {
    match read_encoded_images(file, column, group, None) {
        Err(Error::File(FileError::BadFile { path, msg })) => {
            assert_eq!(path, file);
            msg
        }
        other => panic!("expected BadFile, got {other:?}"),
    }
}

#[test]
fn parquet_null_images_other_layouts_and_group_types() {
    let dir = TempDir::new().unwrap();
    let f = dir.path().join("n.parquet");
    let schema = "message m { optional group image { optional binary bytes; optional binary path (STRING); } optional binary who (STRING); required int32 n; }";
    // Row 0 fine, row 1 image struct null, row 2 bytes null.
    write_custom(
        &f,
        schema,
        vec![
            Col::Bytes(vec![b"x".to_vec()], vec![2, 0, 1]),
            Col::Bytes(vec![], vec![1, 0, 1]),
            Col::Bytes(vec![b"ann".to_vec(), b"bob".to_vec()], vec![1, 0, 1]),
            Col::I32(vec![5, 6, 7], vec![]),
        ],
    );
    let first = read_encoded_images(&f, "image", Some("who"), Some(1)).unwrap();
    assert_eq!(first, vec![EncodedImage { bytes: b"x".to_vec(), path: None, group: Some("ann".into()) }]);
    assert!(bad_msg(&f, "image", None).contains("row 1: image `image` is null"));
    assert_eq!(read_encoded_images(&f, "image", Some("n"), Some(1)).unwrap()[0].group.as_deref(), Some("5"));
    assert!(bad_msg(&f, "n", None).contains("not an image struct"));
    assert!(bad_msg(&f, "image", Some("image")).contains("is the image column"));

    let g = dir.path().join("g.parquet");
    write_custom(
        &g,
        "message m { optional group image { optional binary path (STRING); optional int64 bytes; } }",
        vec![Col::Bytes(vec![b"p".to_vec()], vec![2]), Col::I64(vec![1], vec![2])],
    );
    assert!(bad_msg(&g, "image", None).contains("`image.bytes` is a INT64 value, not binary"));
    let h = dir.path().join("h.parquet");
    write_custom(
        &h,
        "message m { optional group image { optional binary path (STRING); } }",
        vec![Col::Bytes(vec![b"p".to_vec()], vec![2])],
    );
    assert!(bad_msg(&h, "image", None).contains("without a `bytes` field"));

    let not = dir.path().join("not.parquet");
    std::fs::write(&not, b"this is not a parquet file at all").unwrap();
    assert!(bad_msg(&not, "image", None).contains("not a readable parquet file"));
    assert!(matches!(
        read_encoded_images(&dir.path().join("missing"), "image", None, None),
        Err(Error::File(FileError::Io { .. }))
    ));
}

/// A small valid shard: three 4x4 PNGs.
fn small_shard(dir: &Path) -> Vec<u8> {
    let file = dir.join("small.parquet");
    let rows: Vec<_> =
        (0..3u8).map(|i| (gray_png(&[i * 40; 16], 4), format!("{i}.png"), Some(i as i64))).collect();
    write_image_parquet(&file, &rows).unwrap();
    std::fs::read(&file).unwrap()
}

#[test]
fn every_truncation_of_a_shard_is_an_error() {
    let dir = TempDir::new().unwrap();
    let bytes = small_shard(dir.path());
    let file = dir.path().join("cut.parquet");
    for len in 0..bytes.len() {
        std::fs::write(&file, &bytes[..len]).unwrap();
        let r = read_encoded_images(&file, "image", Some("label"), None);
        assert!(matches!(r, Err(Error::File(FileError::BadFile { .. }))), "length {len} of {}: {r:?}", bytes.len());
    }
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(read_encoded_images(&file, "image", Some("label"), None).unwrap().len(), 3);
}

#[test]
fn random_mutations_of_a_shard_never_panic() {
    let dir = TempDir::new().unwrap();
    let bytes = small_shard(dir.path());
    let file = dir.path().join("mut.parquet");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let (mut ok, mut err, mut caught) = (0, 0, 0);
    for _ in 0..2000 {
        let mut m = bytes.clone();
        for _ in 0..rng.random_range(1..=8) {
            let at = rng.random_range(0..m.len());
            m[at] = rng.random();
        }
        if rng.random_bool(0.1) {
            let at = rng.random_range(0..m.len());
            m.insert(at, rng.random());
        }
        std::fs::write(&file, &m).unwrap();
        // read_encoded_images itself must not unwind, whatever the bytes.
        match std::panic::catch_unwind(|| read_encoded_images(&file, "image", Some("label"), None)) {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                err += 1;
                caught += usize::from(e.to_string().contains("panicked"));
            }
            Err(_) => panic!("read_encoded_images panicked on mutation (bytes in {file:?})"),
        }
    }
    eprintln!("mutations: {ok} read, {err} errors ({caught} of them panics inside the parquet crate)");
    assert_eq!(ok + err, 2000);
}

//! Hub faults against the loopback Hub: cut-short, corrupt, oversized and falsely listed downloads,
//! hostile blob ids and an unwritable cache. Each ends in a clear error (or a resumed download),
//! and nothing unverified is ever left where a later run would read it.

use memgen_io::FileError;
use memgen_data::hub::{HubConfig, HubEnv, HubSource, MAX_FILE_BYTES};
use memgen_data::{Error, ImageSource};
use memgen_hub_server::{fake_image_repo, Fault, LoopbackHub};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const REPO: &str = "memgen/faulty";
const SHARD: &str = "data/train-00000-of-00002.parquet";

fn env(endpoint: &str, cache: &Path) -> HubEnv {
    HubEnv { endpoint: endpoint.to_string(), cache_dir: cache.to_path_buf(), token: None, offline: false }
}

fn cfg() -> HubConfig {
    HubConfig { repo: REPO.to_string(), ..HubConfig::default() }
}

fn load(e: HubEnv) -> memgen_data::Result<usize> {
    Ok(HubSource::new(cfg(), e)?.load(None)?.len())
}

fn message(r: memgen_data::Result<usize>) -> String {
    match r {
        Err(Error::Hub(msg)) => msg,
        other => panic!("expected Error::Hub, got {other:?}"),
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The cache holds no snapshot entry and no blob for the shard (only, maybe, its `.part`).
fn nothing_trusted(cache: &Path) {
    let repo = cache.join("datasets--memgen--faulty");
    let snap: Vec<_> = files(&repo.join("snapshots")).into_iter().filter(|p| p.ends_with(SHARD)).collect();
    assert!(snap.is_empty(), "{snap:?}");
    let blobs: Vec<_> = files(&repo.join("blobs"))
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "part"))
        .collect();
    assert!(blobs.len() <= 1, "only the other shard may be complete: {blobs:?}");
    let offline = HubEnv { offline: true, ..env("http://127.0.0.1:1", cache) };
    assert!(message(load(offline)).contains("nothing"), "offline must not find a complete snapshot");
}

fn part_files(cache: &Path) -> Vec<PathBuf> {
    files(cache).into_iter().filter(|p| p.extension().is_some_and(|e| e == "part")).collect()
}

#[test]
fn a_cut_transfer_is_resumed_with_a_range_request() {
    let (repo, _) = fake_image_repo(REPO, 6, 8, 2, 1);
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    hub.set_fault(SHARD, Fault::Truncate { at: 100, times: 1 });
    assert_eq!(load(env(&hub.endpoint(), cache.path())).unwrap(), 6);
    let cdn: Vec<String> = hub.requests().into_iter().filter(|r| r.contains("/cdn/")).collect();
    assert_eq!(cdn.len(), 3, "{cdn:?}"); // shard 0 cut, shard 0 resumed, shard 1
    assert!(part_files(cache.path()).is_empty());
}

#[test]
fn a_transfer_that_keeps_breaking_fails_then_resumes_from_the_part_file() {
    let (repo, _) = fake_image_repo(REPO, 6, 8, 2, 2);
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    hub.set_fault(SHARD, Fault::Truncate { at: 0, times: 3 });
    // The first attempt writes nothing, later ones resume at 0 and are cut again.
    let msg = message(load(env(&hub.endpoint(), cache.path())));
    assert!(msg.contains("lost") && msg.contains(SHARD) && msg.contains("run again"), "{msg}");
    assert!(msg.contains("after 0 bytes"), "{msg}");
    nothing_trusted(cache.path());
    hub.set_fault(SHARD, Fault::Truncate { at: 150, times: 3 });
    let msg = message(load(env(&hub.endpoint(), cache.path())));
    assert!(msg.contains("lost") && msg.contains(".part"), "{msg}");
    let parts = part_files(cache.path());
    assert_eq!(parts.len(), 1, "{parts:?}");
    let kept = std::fs::metadata(&parts[0]).unwrap().len();
    assert!(kept >= 150, "{kept}");
    nothing_trusted(cache.path());
    hub.clear_faults();
    let before = hub.requests().len();
    assert_eq!(load(env(&hub.endpoint(), cache.path())).unwrap(), 6);
    assert!(part_files(cache.path()).is_empty());
    assert!(hub.requests().len() > before);
}

#[test]
fn a_corrupt_download_is_deleted_and_named() {
    let (repo, _) = fake_image_repo(REPO, 6, 8, 2, 3);
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    hub.set_fault(SHARD, Fault::Corrupt);
    let msg = message(load(env(&hub.endpoint(), cache.path())));
    assert!(msg.contains(SHARD) && msg.contains("corrupt") && msg.contains("sha256"), "{msg}");
    assert!(msg.contains(&hub.endpoint()), "names the URL: {msg}");
    assert!(part_files(cache.path()).is_empty());
    nothing_trusted(cache.path());
    hub.clear_faults();
    assert_eq!(load(env(&hub.endpoint(), cache.path())).unwrap(), 6);
}

#[test]
fn a_body_longer_than_listed_is_refused() {
    let (repo, _) = fake_image_repo(REPO, 6, 8, 2, 4);
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    hub.set_fault(SHARD, Fault::Extra(5000));
    let msg = message(load(env(&hub.endpoint(), cache.path())));
    assert!(msg.contains("more than") && msg.contains(SHARD), "{msg}");
    assert!(part_files(cache.path()).is_empty());
    nothing_trusted(cache.path());
}

#[test]
fn a_huge_listed_size_is_refused_before_any_transfer() {
    let (repo, _) = fake_image_repo(REPO, 6, 8, 2, 5);
    let hub = LoopbackHub::start(vec![repo]);
    let cache = TempDir::new().unwrap();
    hub.set_fault(SHARD, Fault::ListedSize(MAX_FILE_BYTES + 1));
    let msg = message(load(env(&hub.endpoint(), cache.path())));
    assert!(msg.contains("refusing") && msg.contains(SHARD) && msg.contains("declares"), "{msg}");
    assert!(!hub.requests().iter().any(|r| r.contains("train-00000")), "{:?}", hub.requests());
    // A listed size smaller than the file: the extra bytes are refused, nothing kept.
    hub.set_fault(SHARD, Fault::ListedSize(10));
    let msg = message(load(env(&hub.endpoint(), cache.path())));
    assert!(msg.contains("more than the 10 bytes"), "{msg}");
    nothing_trusted(cache.path());
}

#[test]
fn hostile_blob_ids_never_become_paths() {
    let (repo, _) = fake_image_repo(REPO, 6, 8, 2, 6);
    let hub = LoopbackHub::start(vec![repo]);
    let root = TempDir::new().unwrap();
    let cache = root.path().join("cache");
    for id in ["../../../../evil", "/tmp/evil", "abc"] {
        hub.set_fault(SHARD, Fault::ListedId(id.to_string()));
        let msg = message(load(env(&hub.endpoint(), &cache)));
        assert!(msg.contains("refusing") && msg.contains("sha256"), "{id}: {msg}");
    }
    let outside: Vec<_> = files(root.path()).into_iter().filter(|p| !p.starts_with(&cache)).collect();
    assert!(outside.is_empty(), "{outside:?}");
    assert!(!files(root.path()).iter().any(|p| p.to_string_lossy().contains("evil")));
}

#[test]
fn an_unwritable_cache_names_the_path() {
    let (repo, _) = fake_image_repo(REPO, 6, 8, 2, 7);
    let hub = LoopbackHub::start(vec![repo]);
    let root = TempDir::new().unwrap();
    // A cache below a regular file cannot be created, whoever runs the test (root ignores modes).
    let file = root.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let cache = file.join("hub");
    match load(env(&hub.endpoint(), &cache)) {
        Err(Error::File(FileError::Io { path, .. })) => assert!(path.starts_with(&cache), "{path:?}"),
        other => panic!("expected an I/O error naming the cache, got {other:?}"),
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

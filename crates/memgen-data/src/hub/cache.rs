//! The local Hub cache, laid out as hf-hub and the Python client lay it out:
//! `{cache_dir}/datasets--{owner}--{name}/` holding `blobs/{id}` (the verified contents),
//! `snapshots/{commit}/{repo path}` (relative links to the blobs) and `refs/{revision}` (the commit a
//! branch or tag pointed to when last resolved online).

use super::names::{check_repo_path, is_plain_sha, select_files};
use super::HubSource;
use crate::{Error, Result};
use hf_hub::Cache;
use std::path::{Path, PathBuf};

impl HubSource {
    /// The repo's directory in the cache: `{cache_dir}/datasets--{owner}--{name}`.
    pub fn cache_repo_dir(&self) -> PathBuf {
        self.env.cache_dir.join(self.hf_repo(&self.cfg.revision).folder_name())
    }

    /// `{cache_repo_dir}/blobs`.
    pub(super) fn blobs_dir(&self) -> PathBuf {
        self.cache_repo_dir().join("blobs")
    }

    /// `{cache_repo_dir}/snapshots/{commit}`.
    pub(super) fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.cache_repo_dir().join("snapshots").join(commit)
    }

    /// Record in `refs/{revision}` that the configured revision points to `commit`.
    pub(super) fn pin_ref(&self, commit: &str) -> Result<()> {
        let cache = Cache::new(self.env.cache_dir.clone()).repo(self.hf_repo(&self.cfg.revision));
        cache.create_ref(commit).map_err(|e| Error::io(self.cache_repo_dir().join("refs"), e))
    }

    /// Resolve from the cache alone: commit from `refs/{revision}` (or the revision itself when it
    /// is a cached commit), files matching the patterns under `snapshots/{commit}/`.
    pub(super) fn resolve_cached(&self, why: String) -> Result<(String, Vec<PathBuf>)> {
        let nothing = || {
            Error::Hub(format!(
                "{why} and nothing for {}@{} matching {:?} is cached under {}",
                self.cfg.repo,
                self.cfg.revision,
                self.cfg.files,
                self.env.cache_dir.display()
            ))
        };
        let commit = self.cached_commit().ok_or_else(nothing)?;
        let snapshot = self.snapshot_dir(&commit);
        let mut names = Vec::new();
        list_files(&snapshot, "", &mut names);
        let selected = select_files(&names, &self.cfg.files);
        if selected.is_empty() {
            return Err(nothing());
        }
        selected.iter().try_for_each(|n| check_repo_path(n))?;
        Ok((commit, selected.iter().map(|n| snapshot.join(n)).collect()))
    }

    /// The cached commit for the configured revision, if any.
    fn cached_commit(&self) -> Option<String> {
        let rev = &self.cfg.revision;
        if is_plain_sha(rev) && self.snapshot_dir(rev).is_dir() {
            return Some(rev.clone());
        }
        let text = std::fs::read_to_string(self.cache_repo_dir().join("refs").join(rev)).ok()?;
        let commit = text.trim().to_string();
        is_plain_sha(&commit).then_some(commit)
    }

    /// The repo path (`data/x.parquet`) of a resolved local file.
    pub(super) fn repo_path(&self, commit: &str, local: &Path) -> String {
        match local.strip_prefix(self.snapshot_dir(commit)) {
            Ok(rel) => {
                rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
            }
            Err(_) => local.display().to_string(),
        }
    }
}

/// Point `snapshots/{commit}/{name}` at `blobs/{blob}` with a relative link (as hf-hub does),
/// created under a temporary name and renamed into place.
pub(super) fn link_snapshot(blob: &Path, link: &Path, blob_name: &str) -> Result<()> {
    let dir = link.parent().ok_or_else(|| Error::Hub(format!("{} has no parent", link.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = link.with_file_name(format!(".{}.{}.link", blob_name, std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    #[cfg(unix)]
    {
        // snapshots/{commit}/a/b/name -> ../../../../blobs/{blob}: one `..` per directory level.
        let depth = link
            .strip_prefix(blob.parent().and_then(Path::parent).unwrap_or(Path::new("/")))
            .map_or(0, |rel| rel.components().count() - 1);
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(blob_name);
        std::os::unix::fs::symlink(&target, &tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    #[cfg(not(unix))]
    std::fs::copy(blob, &tmp).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, link).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(link, e)
    })
}

/// Collect the files under `dir` (following links, skipping dangling ones) as `/`-joined paths.
fn list_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let path = entry.path();
        if path.is_dir() {
            list_files(&path, &rel, out);
        } else if path.is_file() {
            out.push(rel);
        }
    }
}

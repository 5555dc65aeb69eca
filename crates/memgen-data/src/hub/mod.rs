//! The Hugging Face Hub source: image parquet shards of a dataset repo, downloaded into the
//! standard Hub cache (`blobs/`, `snapshots/{commit}/`, `refs/`), read with
//! [`crate::parquet::read_encoded_images`].
//!
//! Online, [`HubSource::resolve`] lists the repo at the configured revision (hf-hub's client,
//! `?blobs=true` for sizes and LFS hashes), pins the commit it points to, checks every selected file
//! name before anything is downloaded, and downloads the shards not yet in `snapshots/{commit}/`.
//! When the Hub cannot be reached (or offline mode is set) it falls back to what the cache holds
//! for `refs/{revision}`.
//!
//! A download goes to `blobs/{id}.part`, resumes with a `Range` request after a dropped connection,
//! never grows past the listed size, and becomes `blobs/{id}` (and a snapshot link) only once its
//! size and, for LFS files, its sha256 match the listing; a file failing a check is deleted. Only
//! the listing's hex ids name blobs, so no header of the server ever becomes a path. Files the
//! listing declares larger than [`MAX_FILE_BYTES`] are refused before any transfer.
//!
//! File patterns ([`glob_match`]): `*` matches any run of characters within one path segment and `?`
//! one character; neither matches `/`. A pattern without `/` is matched against the file's last
//! segment, at any depth (like `.gitignore`), so the default `*.parquet` selects every parquet file
//! of the repo; a pattern with `/` is matched against the whole repo path (`data/train-*.parquet`).

mod api;
mod cache;
mod config;
mod download;
mod names;

pub use config::{HubConfig, HubEnv};
pub use download::MAX_FILE_BYTES;
pub use names::{check_repo_path, glob_match, select_files};

use crate::parquet::{read_encoded_images, EncodedImage};
use crate::{Error, Image, ImageSource, Provenance, Result, SourceImage};
use api::Failure;
use hf_hub::{Repo, RepoType};
use names::{check_repo_id, check_revision, is_plain_sha};
use rayon::prelude::*;
use std::path::PathBuf;

/// How many of a repo's files an error message lists.
const LISTED_FILES: usize = 10;

/// Images from the parquet shards of a Hugging Face Hub dataset repo.
#[derive(Debug)]
pub struct HubSource {
    cfg: HubConfig,
    env: HubEnv,
    /// The commit and the local paths of the selected files, once resolved.
    resolved: Option<(String, Vec<PathBuf>)>,
}

impl HubSource {
    /// A source for `cfg`, reaching the Hub as `env` says; checks the repo id, revision, patterns,
    /// columns and endpoint, and makes the cache directory absolute. Touches neither disk nor network.
    pub fn new(cfg: HubConfig, mut env: HubEnv) -> Result<Self> {
        check_repo_id(&cfg.repo)?;
        check_revision(&cfg.revision)?;
        if cfg.files.is_empty() || cfg.files.iter().any(|f| f.is_empty()) {
            return Err(crate::invalid!(
                "hub source {}: `files` needs at least one non-empty pattern",
                cfg.repo
            ));
        }
        if cfg.column.is_empty() || cfg.group_column.as_deref() == Some("") {
            return Err(crate::invalid!("hub source {}: empty column name", cfg.repo));
        }
        if !(env.endpoint.starts_with("http://") || env.endpoint.starts_with("https://")) {
            return Err(crate::invalid!("Hub endpoint {:?} is not an http(s) URL", env.endpoint));
        }
        env.endpoint = env.endpoint.trim_end_matches('/').to_string();
        env.cache_dir = std::path::absolute(&env.cache_dir).map_err(|e| Error::io(&env.cache_dir, e))?;
        Ok(HubSource { cfg, env, resolved: None })
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    /// The Hub settings (with the cache directory made absolute).
    pub fn env(&self) -> &HubEnv {
        &self.env
    }

    /// Find the commit the revision points to and make the selected files local: online, download
    /// those not cached yet; unreachable Hub or offline mode, use the cache. Returns the commit sha
    /// and the local paths (`.../snapshots/{commit}/{repo path}`), in reading order.
    pub fn resolve(&mut self) -> Result<(String, Vec<PathBuf>)> {
        let resolved = if self.env.offline {
            self.resolve_cached("offline mode is set (HF_HUB_OFFLINE)".to_string())?
        } else {
            match self.resolve_online() {
                Ok(r) => r,
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Unreachable(reason)) => {
                    self.resolve_cached(format!("cannot reach {} ({reason})", self.env.endpoint))?
                }
            }
        };
        self.resolved = Some(resolved.clone());
        Ok(resolved)
    }

    /// An hf-hub repo handle description for `revision`.
    fn hf_repo(&self, revision: &str) -> Repo {
        Repo::with_revision(self.cfg.repo.clone(), RepoType::Dataset, revision.to_string())
    }

    /// List the repo, select and check the files, download what is missing, pin the ref.
    fn resolve_online(&self) -> std::result::Result<(String, Vec<PathBuf>), Failure> {
        let api = self.api()?;
        let repo = api.repo(self.hf_repo(&self.cfg.revision));
        let info = self.list(&repo)?;
        if !is_plain_sha(&info.sha) {
            return Err(Error::Hub(format!(
                "{} returned an invalid commit sha {:?}",
                self.env.endpoint, info.sha
            ))
            .into());
        }
        let names: Vec<String> = info.siblings.iter().map(|s| s.rfilename.clone()).collect();
        let selected = self.select(&names)?;
        let agent = self.agent();
        let paths = selected
            .iter()
            .map(|name| {
                let listed = info.siblings.iter().find(|s| &s.rfilename == name);
                self.fetch(&agent, &api, &info.sha, name, listed)
            })
            .collect::<Result<Vec<PathBuf>>>()?;
        if self.cfg.revision != info.sha {
            self.pin_ref(&info.sha)?;
        }
        Ok((info.sha, paths))
    }

    /// The files the patterns select, all checked safe; an error listing some repo files if none.
    fn select(&self, names: &[String]) -> Result<Vec<String>> {
        let selected = select_files(names, &self.cfg.files);
        if selected.is_empty() {
            let shown: Vec<&str> = names.iter().take(LISTED_FILES).map(String::as_str).collect();
            let more = names.len().saturating_sub(LISTED_FILES);
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            return Err(Error::Hub(format!(
                "no file of {}@{} matches {:?}; the repo has {}{more}",
                self.cfg.repo,
                self.cfg.revision,
                self.cfg.files,
                if shown.is_empty() { "no files".to_string() } else { shown.join(", ") }
            )));
        }
        selected.iter().try_for_each(|n| check_repo_path(n))?;
        Ok(selected)
    }

    /// Read encoded images shard by shard until `count` (all when None), naming each `{file}#{row}`.
    fn read_shards(
        &self,
        commit: &str,
        files: &[PathBuf],
        count: Option<usize>,
    ) -> Result<Vec<(usize, usize, EncodedImage)>> {
        let mut out = Vec::new();
        for (shard, file) in files.iter().enumerate() {
            let remaining = count.map(|c| c.saturating_sub(out.len()));
            if remaining == Some(0) {
                break;
            }
            let images =
                read_encoded_images(file, &self.cfg.column, self.cfg.group_column.as_deref(), remaining)?;
            out.extend(images.into_iter().enumerate().map(|(row, img)| (shard, row, img)));
        }
        if let Some(c) = count.filter(|&c| c > out.len()) {
            let names: Vec<String> = files.iter().map(|f| self.repo_path(commit, f)).collect();
            return Err(Error::NotEnough(format!(
                "dataset {}@{commit} has only {} images in column `{}` of {} ({c} requested)",
                self.cfg.repo,
                out.len(),
                self.cfg.column,
                names.join(", ")
            )));
        }
        Ok(out)
    }
}

impl ImageSource for HubSource {
    /// Kind `hub`, the repo id, the resolved commit (None before resolving), and params `files`
    /// (the repo paths read; the configured patterns before resolving), `column`, `group_column`.
    fn provenance(&self) -> Provenance {
        let (revision, files) = match &self.resolved {
            Some((commit, paths)) => {
                (Some(commit.clone()), paths.iter().map(|p| self.repo_path(commit, p)).collect())
            }
            None => (None, self.cfg.files.clone()),
        };
        Provenance {
            kind: "hub".to_string(),
            location: self.cfg.repo.clone(),
            revision,
            params: serde_json::json!({
                "files": files,
                "column": self.cfg.column,
                "group_column": self.cfg.group_column,
            }),
        }
    }

    /// Resolve (once), read the shards in order and decode the images in parallel.
    fn load(&mut self, count: Option<usize>) -> Result<Vec<SourceImage>> {
        let (commit, files) = match &self.resolved {
            Some(r) => r.clone(),
            None => self.resolve()?,
        };
        let encoded = self.read_shards(&commit, &files, count)?;
        let names: Vec<String> = files.iter().map(|f| self.repo_path(&commit, f)).collect();
        encoded
            .into_par_iter()
            .map(|(shard, row, img)| {
                let image = Image::decode(&img.bytes)
                    .map_err(|msg| Error::bad_file(&files[shard], format!("row {row}: {msg}")))?;
                Ok(SourceImage { image, name: format!("{}#{row}", names[shard]), group: img.group })
            })
            .collect()
    }
}

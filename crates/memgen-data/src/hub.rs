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

use crate::parquet::{read_encoded_images, EncodedImage};
use crate::{Error, Image, ImageSource, Provenance, Result, SourceImage};
use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Download attempts per file after the first one fails mid-transfer (each resumes).
const DOWNLOAD_RETRIES: u32 = 2;
/// The largest file memgen downloads (a listing that declares more is refused before any transfer).
pub const MAX_FILE_BYTES: u64 = 1 << 40;
/// The largest repo listing read.
const MAX_LISTING_BYTES: u64 = 64 << 20;
/// How many of a repo's files an error message lists.
const LISTED_FILES: usize = 10;

/// Which dataset repo, revision, shards and columns a [`HubSource`] reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Dataset repo id, `owner/name` or `name`.
    pub repo: String,
    /// Branch, tag or commit sha; default `main`.
    pub revision: String,
    /// Exact repo paths or `*`/`?` patterns (see the module docs); default `["*.parquet"]`.
    /// Files are read pattern by pattern, the matches of each pattern in sorted order.
    pub files: Vec<String>,
    /// The image struct column; default `image`.
    pub column: String,
    /// A primitive column used as group key (e.g. `label`), if any.
    pub group_column: Option<String>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            repo: String::new(),
            revision: "main".to_string(),
            files: vec!["*.parquet".to_string()],
            column: "image".to_string(),
            group_column: None,
        }
    }
}

/// Where and how to reach the Hub, normally from the environment ([`HubEnv::from_env`]).
/// Its `Debug` output hides the token.
#[derive(Clone, PartialEq)]
pub struct HubEnv {
    /// Base URL of the Hub, without trailing slash (`HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: String,
    /// The Hub cache directory, the one holding `datasets--owner--name/`.
    pub cache_dir: PathBuf,
    /// Access token sent as `Authorization: Bearer` (private and gated repos).
    pub token: Option<String>,
    /// Never touch the network; read only from the cache.
    pub offline: bool,
}

impl HubEnv {
    /// The settings from the process environment; see [`HubEnv::from_vars`].
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings from the variables `var` returns (empty values count as unset):
    /// endpoint `HF_ENDPOINT` or `https://huggingface.co`; cache `HF_HUB_CACHE`, else `$HF_HOME/hub`,
    /// else `~/.cache/huggingface/hub`; token `HF_TOKEN`, else the non-empty content of the file
    /// `HF_TOKEN_PATH`, else of `$HF_HOME/token` (`~/.cache/huggingface/token`); offline when
    /// `HF_HUB_OFFLINE` is `1`, `true` or `yes` (any case). The home directory is `HOME`
    /// (`USERPROFILE` on Windows), `.` if neither is set.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let home = var("HOME").or_else(|| var("USERPROFILE")).unwrap_or_else(|| ".".into());
            Path::new(&home).join(".cache").join("huggingface")
        });
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into());
        let cache_dir = var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| hf_home.join("hub"));
        let token_file = var("HF_TOKEN_PATH").map(PathBuf::from).unwrap_or_else(|| hf_home.join("token"));
        let token = var("HF_TOKEN").map(|t| t.trim().to_string()).or_else(|| read_token(&token_file));
        let offline = var("HF_HUB_OFFLINE")
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
        HubEnv { endpoint: endpoint.trim_end_matches('/').to_string(), cache_dir, token, offline }
    }
}

impl std::fmt::Debug for HubEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubEnv")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("offline", &self.offline)
            .finish()
    }
}

/// The trimmed content of a token file, None if it is missing or empty.
fn read_token(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Whether repo path `path` matches `pattern` (see the module docs for the rules).
pub fn glob_match(pattern: &str, path: &str) -> bool {
    if !pattern.contains('/') {
        let name = path.rsplit('/').next().unwrap_or(path);
        return segment_match(pattern, name);
    }
    let (pats, parts): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    pats.len() == parts.len() && pats.iter().zip(&parts).all(|(p, s)| segment_match(p, s))
}

/// `*`/`?` wildcard match of one path segment (greedy with backtracking to the last `*`).
fn segment_match(pattern: &str, text: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi + 1, si));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if let Some((after_star, from)) = star {
            star = Some((after_star, from + 1));
            pi = after_star;
            si = from + 1;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The files of `names` that `patterns` select: pattern by pattern, each one's matches sorted,
/// without repeats.
pub fn select_files(names: &[String], patterns: &[String]) -> Vec<String> {
    let mut selected: Vec<String> = Vec::new();
    for pattern in patterns {
        let mut matches: Vec<&String> = names.iter().filter(|n| glob_match(pattern, n)).collect();
        matches.sort();
        for name in matches {
            if !selected.contains(name) {
                selected.push(name.clone());
            }
        }
    }
    selected
}

/// Refuse a repo file name that could leave the cache directory or that hf-hub 0.4 would put into a
/// URL unescaped: empty, absolute, with an empty, `.` or `..` segment, a backslash, `:` (Windows
/// drive prefixes), `#`, `?` or a control character.
pub fn check_repo_path(name: &str) -> Result<()> {
    let refuse = |why: &str| Err(Error::Hub(format!("refusing repo file name {name:?}: {why}")));
    if name.is_empty() {
        return refuse("empty");
    }
    if name.starts_with('/') || Path::new(name).is_absolute() {
        return refuse("absolute path");
    }
    if name.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return refuse("empty, `.` or `..` path segment");
    }
    if name.contains(['\\', ':', '#', '?']) || name.chars().any(char::is_control) {
        return refuse("backslash, `:`, `#`, `?` or control character");
    }
    Ok(())
}

/// Check a repo id: `owner/name` or `name`, segments of ASCII letters, digits, `-`, `_`, `.`,
/// not starting or ending with `-` or `.`, without `--` or `..`, at most 96 characters.
fn check_repo_id(id: &str) -> Result<()> {
    let bad = |why: &str| Err(crate::invalid!("invalid Hub dataset id {id:?}: {why}"));
    let segments: Vec<&str> = id.split('/').collect();
    if id.is_empty() || id.len() > 96 || segments.len() > 2 {
        return bad("expected `owner/name` or `name` of at most 96 characters");
    }
    for seg in segments {
        let allowed = seg.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        let edges = seg.starts_with(['-', '.']) || seg.ends_with(['-', '.']);
        if seg.is_empty() || !allowed || edges || seg.contains("--") || seg.contains("..") {
            return bad("use letters, digits, `-`, `_` and `.`, no `--` or `..`, not at the ends");
        }
    }
    Ok(())
}

/// Check a revision (branch, tag or sha; may contain `/` as in `refs/pr/1`), which becomes a path
/// under `refs/` in the cache.
fn check_revision(rev: &str) -> Result<()> {
    let unsafe_segment = rev.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    if unsafe_segment || rev.contains(['\\', ':']) || rev.chars().any(char::is_control) {
        return Err(crate::invalid!("invalid Hub revision {rev:?}"));
    }
    Ok(())
}

/// Whether a commit sha is safe to use as a directory name (letters and digits only).
fn is_plain_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.len() <= 64 && sha.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Images from the parquet shards of a Hugging Face Hub dataset repo.
#[derive(Debug)]
pub struct HubSource {
    cfg: HubConfig,
    env: HubEnv,
    /// The commit and the local paths of the selected files, once resolved.
    resolved: Option<(String, Vec<PathBuf>)>,
}

/// Why an online resolve did not succeed: the Hub could not be reached (fall back to the cache)
/// or it answered with an error (report it).
enum Failure {
    Unreachable(String),
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
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

    /// The repo's directory in the cache: `{cache_dir}/datasets--{owner}--{name}`.
    pub fn cache_repo_dir(&self) -> PathBuf {
        self.env.cache_dir.join(self.hf_repo(&self.cfg.revision).folder_name())
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

    /// `{cache_repo_dir}/snapshots/{commit}`.
    fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.cache_repo_dir().join("snapshots").join(commit)
    }

    /// The hf-hub client for our endpoint, cache and token (never hf-hub's own env/token lookup).
    fn api(&self) -> std::result::Result<Api, Failure> {
        ApiBuilder::from_cache(Cache::new(self.env.cache_dir.clone()))
            .with_endpoint(self.env.endpoint.clone())
            .with_token(self.env.token.clone())
            .with_progress(false)
            .with_user_agent("memgen", env!("CARGO_PKG_VERSION"))
            .build()
            .map_err(|e| Failure::Fatal(Error::Hub(format!("cannot set up the Hub client: {e}"))))
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
            let cache = Cache::new(self.env.cache_dir.clone()).repo(self.hf_repo(&self.cfg.revision));
            cache.create_ref(&info.sha).map_err(|e| Error::io(self.cache_repo_dir().join("refs"), e))?;
        }
        Ok((info.sha, paths))
    }

    /// The repo listing at the configured revision, with each file's size and LFS sha256
    /// (`?blobs=true`).
    fn list(&self, repo: &ApiRepo) -> std::result::Result<Listing, Failure> {
        let resp = repo
            .info_request()
            .query("blobs", "true")
            .call()
            .map_err(|e| self.classify(ApiError::RequestError(Box::new(e)), None))?;
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_LISTING_BYTES)
            .read_to_end(&mut body)
            .map_err(|e| Failure::Unreachable(format!("reading the listing: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| {
            Failure::Fatal(Error::Hub(format!(
                "{} answered the listing of {}@{} with invalid JSON: {e}",
                self.env.endpoint, self.cfg.repo, self.cfg.revision
            )))
        })
    }

    /// The HTTP client for downloads: our token on the Hub's host only, the proxy from the
    /// environment (as hf-hub's), a read timeout.
    fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .try_proxy_from_env(true)
            .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
            .timeout_connect(std::time::Duration::from_secs(30))
            .timeout_read(std::time::Duration::from_secs(120))
            .user_agent(concat!("memgen/", env!("CARGO_PKG_VERSION")))
            .build()
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

    /// The local path of `name` at `commit`: from `snapshots/{commit}/` if there, else downloaded
    /// and verified. Losing the Hub here is fatal (no cache fallback): the cached snapshot may lack
    /// files.
    fn fetch(
        &self,
        agent: &ureq::Agent,
        api: &Api,
        commit: &str,
        name: &str,
        listed: Option<&Sibling>,
    ) -> Result<PathBuf> {
        let expected = self.snapshot_dir(commit).join(name);
        if expected.is_file() {
            return Ok(expected);
        }
        if expected.symlink_metadata().is_ok() {
            // A link whose blob is gone.
            std::fs::remove_file(&expected).map_err(|e| Error::io(&expected, e))?;
        }
        let url = api.repo(self.hf_repo(commit)).url(name);
        let want = Expected::of(name, &url, listed)?;
        let blobs = self.cache_repo_dir().join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
        let blob = blobs.join(&want.blob);
        if !blob.is_file() {
            self.download(agent, name, &url, &want, &blob)?;
        }
        link_snapshot(&blob, &expected, &want.blob)?;
        Ok(expected)
    }

    /// Download `url` into `blob`: into `blob.part` first (resumed with a `Range` request after a
    /// dropped connection, up to [`DOWNLOAD_RETRIES`] times), never past the listed size, then the
    /// size and the LFS sha256 are checked and only a verified file is renamed to `blob`. A file
    /// that fails the checks is deleted, so no later run can take it for the real one.
    fn download(
        &self,
        agent: &ureq::Agent,
        name: &str,
        url: &str,
        want: &Expected,
        blob: &Path,
    ) -> Result<()> {
        let part = blob.with_extension("part");
        let bar = ProgressBar::new(want.size);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta})",
        ) {
            bar.set_style(style);
        }
        bar.set_message(short_label(name, 30));
        let mut last_err = String::new();
        for attempt in 0..=DOWNLOAD_RETRIES {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(200 << attempt));
            }
            match self.transfer(agent, name, url, want, &part, &bar) {
                Ok(()) => {
                    last_err.clear();
                    break;
                }
                Err(Transfer::Retry(why)) => last_err = why,
                Err(Transfer::Fatal(e)) => {
                    bar.finish_and_clear();
                    return Err(e);
                }
            }
        }
        bar.finish_and_clear();
        if !last_err.is_empty() {
            return Err(Error::Hub(format!(
                "lost {} while downloading {name} ({last_err}; {} attempts); what was downloaded stays \
                 in {}: run again to resume",
                self.env.endpoint,
                DOWNLOAD_RETRIES + 1,
                part.display()
            )));
        }
        if let Some(sha) = &want.sha256 {
            let got = sha256_file(&part)?;
            if &got != sha {
                let _ = std::fs::remove_file(&part);
                return Err(Error::Hub(format!(
                    "{name} from {url} is corrupt: its sha256 is {got}, the Hub lists {sha}; the \
                     download was deleted, run again (if this repeats, the server or a proxy \
                     alters the file)"
                )));
            }
        }
        std::fs::File::open(&part).and_then(|f| f.sync_all()).map_err(|e| Error::io(&part, e))?;
        std::fs::rename(&part, blob).map_err(|e| Error::io(blob, e))
    }

    /// One request for the rest of `part`; `Ok` once `part` holds exactly `want.size` bytes.
    fn transfer(
        &self,
        agent: &ureq::Agent,
        name: &str,
        url: &str,
        want: &Expected,
        part: &Path,
        bar: &ProgressBar,
    ) -> std::result::Result<(), Transfer> {
        use std::io::Write;
        let fatal = |e: Error| Transfer::Fatal(e);
        let mut have = std::fs::metadata(part).map_or(0, |m| m.len());
        if have > want.size {
            // Not a prefix of this file: start again.
            std::fs::remove_file(part).map_err(|e| fatal(Error::io(part, e)))?;
            have = 0;
        }
        if have == want.size {
            return Ok(());
        }
        let mut req = agent.get(url);
        if let Some(token) = &self.env.token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        if have > 0 {
            req = req.set("Range", &format!("bytes={have}-"));
        }
        let resp = match req.call() {
            Ok(resp) => resp,
            Err(e) => {
                return Err(match self.classify(ApiError::RequestError(Box::new(e)), Some(name)) {
                    Failure::Unreachable(why) => Transfer::Retry(why),
                    Failure::Fatal(e) => Transfer::Fatal(e),
                })
            }
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .map_err(|e| fatal(Error::io(part, e)))?;
        if resp.status() != 206 && have > 0 {
            // The server ignored the range: take the whole body.
            file.set_len(0).map_err(|e| fatal(Error::io(part, e)))?;
            have = 0;
        }
        bar.set_position(have);
        let limit = want.size - have;
        let mut reader = resp.into_reader().take(limit + 1);
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = file.flush();
                    return Err(Transfer::Retry(format!("connection broke after {} bytes: {e}", have + got)));
                }
            };
            got += n as u64;
            if got > limit {
                drop(file);
                let _ = std::fs::remove_file(part);
                return Err(fatal(Error::Hub(format!(
                    "{url} sent more than the {} bytes the Hub lists for {name}; the download was deleted",
                    want.size
                ))));
            }
            file.write_all(&buf[..n]).map_err(|e| fatal(Error::io(part, e)))?;
            bar.inc(n as u64);
        }
        file.flush().map_err(|e| fatal(Error::io(part, e)))?;
        if got < limit {
            return Err(Transfer::Retry(format!(
                "the body ended after {} of {} bytes",
                have + got,
                want.size
            )));
        }
        Ok(())
    }

    /// Sort an hf-hub error into unreachable (network, 5xx, 429) or fatal (with a clear message).
    fn classify(&self, err: ApiError, file: Option<&str>) -> Failure {
        let endpoint = &self.env.endpoint;
        match err {
            ApiError::RequestError(boxed) => {
                let text = boxed.to_string();
                match (*boxed).into_response() {
                    Some(resp) => {
                        let code = resp.status();
                        let detail = ["X-Error-Code", "X-Error-Message"]
                            .iter()
                            .filter_map(|h| resp.header(h))
                            .collect::<Vec<_>>()
                            .join(": ");
                        self.http_failure(code, &detail, file)
                    }
                    None => Failure::Unreachable(text),
                }
            }
            ApiError::TooManyRetries(inner) => self.classify(*inner, file),
            ApiError::IoError(e) if file.is_none() || is_network_io(&e) => {
                Failure::Unreachable(format!("bad response: {e}"))
            }
            ApiError::InvalidResume => Failure::Fatal(Error::Hub(format!(
                "a partial download of {} in {} is larger than the file; delete the `.part` files there",
                file.unwrap_or("?"),
                self.cache_repo_dir().join("blobs").display()
            ))),
            #[allow(unreachable_patterns)]
            other => Failure::Fatal(Error::Hub(format!(
                "{} from {endpoint} failed: {other}",
                file.map_or_else(|| format!("listing {}", self.cfg.repo), |f| format!("downloading {f}"))
            ))),
        }
    }

    /// The failure for an HTTP error status.
    fn http_failure(&self, code: u16, detail: &str, file: Option<&str>) -> Failure {
        let (repo, rev, endpoint) = (&self.cfg.repo, &self.cfg.revision, &self.env.endpoint);
        let detail = if detail.is_empty() { String::new() } else { format!(", {detail}") };
        let token = if self.env.token.is_some() {
            "the token in use (HF_TOKEN) was refused or has no access"
        } else {
            "no token was sent: set HF_TOKEN (or log in with `huggingface-cli login`)"
        };
        let msg = match (code, file) {
            (429 | 500..=599, _) => return Failure::Unreachable(format!("HTTP {code}{detail}")),
            (401 | 403, _) => format!(
                "access to dataset {repo} at {endpoint} was refused (HTTP {code}{detail}); it may be private or gated (accept its terms on the Hub); {token}"
            ),
            (404, Some(f)) => format!("{f} not found in dataset {repo}@{rev} at {endpoint} (HTTP 404{detail})"),
            (404, None) if detail.contains("RevisionNotFound") => {
                format!("revision {rev} not found in dataset {repo} at {endpoint} (HTTP 404{detail})")
            }
            (404, None) => format!(
                "dataset {repo} not found at {endpoint} (HTTP 404{detail}): check the id; if it is private or gated, {token}"
            ),
            _ => format!("{endpoint} answered HTTP {code}{detail} for {}", file.unwrap_or(repo)),
        };
        Failure::Fatal(Error::Hub(msg))
    }

    /// Resolve from the cache alone: commit from `refs/{revision}` (or the revision itself when it
    /// is a cached commit), files matching the patterns under `snapshots/{commit}/`.
    fn resolve_cached(&self, why: String) -> Result<(String, Vec<PathBuf>)> {
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
    fn repo_path(&self, commit: &str, local: &Path) -> String {
        match local.strip_prefix(self.snapshot_dir(commit)) {
            Ok(rel) => {
                rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
            }
            Err(_) => local.display().to_string(),
        }
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

/// A repo file as the listing (`?blobs=true`) describes it.
#[derive(Debug, Clone, Deserialize)]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    #[serde(rename = "blobId")]
    blob_id: Option<String>,
    lfs: Option<LfsInfo>,
}

#[derive(Debug, Clone, Deserialize)]
struct LfsInfo {
    sha256: String,
    size: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Listing {
    sha: String,
    siblings: Vec<Sibling>,
}

/// What a downloaded file must be: its size, its sha256 (LFS files), its blob name in the cache.
#[derive(Debug)]
struct Expected {
    size: u64,
    sha256: Option<String>,
    /// The cache's blob name: the LFS sha256, else the git blob id (both checked to be plain hex).
    blob: String,
}

impl Expected {
    /// From the listing; refuses a file without a listed size or id, with an id that is not a
    /// plain hex digest, or larger than [`MAX_FILE_BYTES`].
    fn of(name: &str, url: &str, listed: Option<&Sibling>) -> Result<Expected> {
        let refuse = |why: String| Err(Error::Hub(format!("refusing to download {name} ({url}): {why}")));
        let Some(s) = listed else { return refuse("it is not in the repo listing".into()) };
        let sha256 = s.lfs.as_ref().map(|l| l.sha256.to_ascii_lowercase());
        let size = s.lfs.as_ref().and_then(|l| l.size).or(s.size);
        let Some(size) = size else { return refuse("the listing gives no size".into()) };
        if size > MAX_FILE_BYTES {
            return refuse(format!(
                "the listing declares {size} bytes, more than the {MAX_FILE_BYTES} bytes memgen accepts for one file"
            ));
        }
        if let Some(sha) = &sha256 {
            if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                return refuse(format!("invalid LFS sha256 {sha:?} in the listing"));
            }
        }
        let blob = match (&sha256, &s.blob_id) {
            (Some(sha), _) => sha.clone(),
            (None, Some(id))
                if (40..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                id.to_ascii_lowercase()
            }
            (None, id) => return refuse(format!("invalid or missing blob id {id:?} in the listing")),
        };
        Ok(Expected { size, sha256, blob })
    }
}

/// How one transfer attempt ended badly.
enum Transfer {
    /// The connection broke or the body was short: try again, resuming.
    Retry(String),
    Fatal(Error),
}

/// The sha256 of a file, lower-case hex.
fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Point `snapshots/{commit}/{name}` at `blobs/{blob}` with a relative link (as hf-hub does),
/// created under a temporary name and renamed into place.
fn link_snapshot(blob: &Path, link: &Path, blob_name: &str) -> Result<()> {
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

/// Whether an I/O error is a network failure rather than a local one.
fn is_network_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | ConnectionRefused | TimedOut | UnexpectedEof | BrokenPipe
    )
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

/// `name` if it has at most `max` bytes, else `..` and its longest tail that fits.
fn short_label(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let mut start = name.len() - (max - 2);
    while !name.is_char_boundary(start) {
        start += 1;
    }
    format!("..{}", &name[start..])
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

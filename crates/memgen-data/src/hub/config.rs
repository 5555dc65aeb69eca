//! What a Hub source reads ([`HubConfig`]) and where and how it reaches the Hub ([`HubEnv`]).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which dataset repo, revision, shards and columns a [`HubSource`](super::HubSource) reads.
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

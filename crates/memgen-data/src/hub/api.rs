//! The Hub's HTTP API: the hf-hub client, the repo listing (`?blobs=true`) and its JSON records,
//! and the sorting of Hub errors into "unreachable" (fall back to the cache) and fatal.

use super::HubSource;
use crate::Error;
use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::Cache;
use serde::Deserialize;
use std::io::Read;

/// The largest repo listing read.
const MAX_LISTING_BYTES: u64 = 64 << 20;

/// A repo file as the listing (`?blobs=true`) describes it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Sibling {
    pub(super) rfilename: String,
    pub(super) size: Option<u64>,
    #[serde(rename = "blobId")]
    pub(super) blob_id: Option<String>,
    pub(super) lfs: Option<LfsInfo>,
}

/// The LFS part of a [`Sibling`]: the content's sha256 and size.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct LfsInfo {
    pub(super) sha256: String,
    pub(super) size: Option<u64>,
}

/// The repo listing: the commit the revision points to and the repo's files.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Listing {
    pub(super) sha: String,
    pub(super) siblings: Vec<Sibling>,
}

/// Why an online resolve did not succeed: the Hub could not be reached (fall back to the cache)
/// or it answered with an error (report it).
pub(super) enum Failure {
    Unreachable(String),
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

impl HubSource {
    /// The hf-hub client for our endpoint, cache and token (never hf-hub's own env/token lookup).
    pub(super) fn api(&self) -> std::result::Result<Api, Failure> {
        ApiBuilder::from_cache(Cache::new(self.env.cache_dir.clone()))
            .with_endpoint(self.env.endpoint.clone())
            .with_token(self.env.token.clone())
            .with_progress(false)
            .with_user_agent("memgen", env!("CARGO_PKG_VERSION"))
            .build()
            .map_err(|e| Failure::Fatal(Error::Hub(format!("cannot set up the Hub client: {e}"))))
    }

    /// The repo listing at the configured revision, with each file's size and LFS sha256
    /// (`?blobs=true`).
    pub(super) fn list(&self, repo: &ApiRepo) -> std::result::Result<Listing, Failure> {
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

    /// Sort an hf-hub error into unreachable (network, 5xx, 429) or fatal (with a clear message).
    pub(super) fn classify(&self, err: ApiError, file: Option<&str>) -> Failure {
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
                self.blobs_dir().display()
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
}

/// Whether an I/O error is a network failure rather than a local one.
fn is_network_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | ConnectionRefused | TimedOut | UnexpectedEof | BrokenPipe
    )
}

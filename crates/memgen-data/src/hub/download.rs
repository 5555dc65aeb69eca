//! Verified, size-bounded downloads into the cache's `blobs/`: resumed with `Range` requests after
//! a dropped connection, never grown past the listed size, checked against the listed size and LFS
//! sha256 before they become a blob and a snapshot link.

use super::api::{Failure, Sibling};
use super::cache::link_snapshot;
use super::HubSource;
use crate::{Error, Result};
use hf_hub::api::sync::{Api, ApiError};
use indicatif::ProgressBar;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Download attempts per file after the first one fails mid-transfer (each resumes).
const DOWNLOAD_RETRIES: u32 = 2;
/// The largest file memgen downloads (a listing that declares more is refused before any transfer).
pub const MAX_FILE_BYTES: u64 = 1 << 40;

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

impl HubSource {
    /// The HTTP client for downloads: our token on the Hub's host only, the proxy from the
    /// environment (as hf-hub's), a read timeout.
    pub(super) fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .try_proxy_from_env(true)
            .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
            .timeout_connect(std::time::Duration::from_secs(30))
            .timeout_read(std::time::Duration::from_secs(120))
            .user_agent(concat!("memgen/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// The local path of `name` at `commit`: from `snapshots/{commit}/` if there, else downloaded
    /// and verified. Losing the Hub here is fatal (no cache fallback): the cached snapshot may lack
    /// files.
    pub(super) fn fetch(
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
        let blobs = self.blobs_dir();
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
        let bar = memgen_io::progress::bytes_bar(want.size, &short_label(name, 30));
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
}

/// The sha256 of a file, lower-case hex.
fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
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

//! A loopback Hugging Face Hub for tests: a tiny HTTP/1.1 server on 127.0.0.1 serving dataset repos
//! held in memory, speaking the part of the Hub protocol hf-hub uses.
//!
//! Routes (revision = `main` or the repo's commit; `%XX` in paths is decoded):
//! - `GET /api/datasets/{id}/revision/{rev}`: JSON `{"id", "sha", "siblings": [{"rfilename"}]}`.
//! - `GET`/`HEAD /datasets/{id}/resolve/{rev}/{file}`: the file, with `ETag` (quoted sha256 hex of the
//!   content), `X-Repo-Commit`, `Content-Length`, `Accept-Ranges`; `Range: bytes=a-b`, `a-`, `-n` get a
//!   206 with `Content-Range`. Files ending in `.parquet` are answered like the Hub's LFS files: a 302
//!   to `/cdn/{sha256}` with `X-Linked-Etag`, `X-Linked-Size` and `X-Repo-Commit`.
//! - `GET`/`HEAD /cdn/{sha256}`: the content with that hash (no token needed, like signed CDN URLs).
//!
//! Unknown repo, revision or file: 404 with `X-Error-Code` `RepoNotFound`, `RevisionNotFound` or
//! `EntryNotFound`. With a token ([`LoopbackHub::start_with_token`]) the API and resolve routes answer
//! 401 (`X-Error-Code: GatedRepo`) unless the request has `Authorization: Bearer <token>`.
//! [`LoopbackHub::set_unavailable`] makes chosen files answer 503, [`LoopbackHub::set_fault`] serves
//! them wrong ([`Fault`]: cut short, corrupted, too long, a false listed size). With `?blobs=true`
//! the listing adds each file's `size` and `blobId` and, for `.parquet` files, `lfs.sha256` and
//! `lfs.size`. Every response has `Connection: close`.
//!
//! The server only speaks HTTP; [`fake_image_repo`] builds a repo of image parquet shards in
//! memgen-data's layout to serve.

mod fixtures;
mod http;
mod server;

pub use fixtures::{fake_image_repo, gray_png};
pub use server::{FakeRepo, Fault, LoopbackHub};

/// Lower-case hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

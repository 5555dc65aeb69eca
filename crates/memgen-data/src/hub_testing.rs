//! A loopback Hugging Face Hub for tests (feature `loopback-hub`): a tiny HTTP/1.1 server on
//! 127.0.0.1 serving dataset repos held in memory, speaking the part of the Hub protocol hf-hub uses.
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

use crate::parquet::encode_image_parquet;
use crate::{Error, Result};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A dataset repo served by a [`LoopbackHub`].
#[derive(Debug, Clone, PartialEq)]
pub struct FakeRepo {
    /// Repo id, `owner/name` or `name`.
    pub id: String,
    /// The commit sha `main` points to.
    pub commit: String,
    /// Repo paths and contents; the sibling list is these paths in this order, unchecked (so tests
    /// can serve hostile names).
    pub files: Vec<(String, Vec<u8>)>,
}

/// A way to serve a file wrong, for fault tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Announce the full `Content-Length` but close the connection after `at` bytes of the body,
    /// for the next `times` requests of the file (then serve it whole).
    Truncate { at: usize, times: usize },
    /// Serve the file with one byte changed (same length).
    Corrupt,
    /// Append this many bytes to every body of the file.
    Extra(usize),
    /// List the file with this size (and LFS size) instead of its own.
    ListedSize(u64),
    /// List the file with this LFS sha256 / blob id instead of its own.
    ListedId(String),
}

/// What the server threads share.
struct State {
    repos: Vec<FakeRepo>,
    token: Option<String>,
    requests: Mutex<Vec<String>>,
    unavailable: Mutex<Vec<String>>,
    faults: Mutex<Vec<(String, Fault)>>,
}

/// A running loopback Hub; stops when dropped (later connections are refused).
pub struct LoopbackHub {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackHub {
    /// Serve `repos` on a free port of 127.0.0.1, without authentication.
    pub fn start(repos: Vec<FakeRepo>) -> LoopbackHub {
        Self::start_with_token(repos, None)
    }

    /// Serve `repos`, requiring `Authorization: Bearer {token}` on API and resolve routes when
    /// `token` is Some. Panics if no loopback port can be bound (a test environment failure).
    pub fn start_with_token(repos: Vec<FakeRepo>, token: Option<String>) -> LoopbackHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("loopback address");
        let state = Arc::new(State {
            repos,
            token,
            requests: Mutex::new(Vec::new()),
            unavailable: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || accept_loop(listener, state, stop))
        };
        LoopbackHub { addr, state, stop, thread: Some(thread) }
    }

    /// The base URL to use as Hub endpoint, `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer `503 Service Unavailable` for these repo paths on the resolve route from now on
    /// (replacing an earlier list; an empty list serves everything again).
    pub fn set_unavailable(&self, files: &[&str]) {
        if let Ok(mut list) = self.state.unavailable.lock() {
            *list = files.iter().map(|f| f.to_string()).collect();
        }
    }

    /// Serve repo path `file` wrong from now on (replacing an earlier fault of that file).
    pub fn set_fault(&self, file: &str, fault: Fault) {
        if let Ok(mut list) = self.state.faults.lock() {
            list.retain(|(f, _)| f != file);
            list.push((file.to_string(), fault));
        }
    }

    /// Serve every file right again.
    pub fn clear_faults(&self) {
        if let Ok(mut list) = self.state.faults.lock() {
            list.clear();
        }
    }

    /// The request lines received so far (`GET /api/... HTTP/1.1`), in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for LoopbackHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the loop sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accept connections until `stop`, one thread each.
fn accept_loop(listener: TcpListener, state: Arc<State>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if let Ok(stream) = stream {
            let state = state.clone();
            std::thread::spawn(move || {
                let _ = handle(stream, &state);
            });
        }
    }
}

/// A parsed request: method, decoded path, headers (lower-case names).
struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A response: status, headers, body (omitted for HEAD).
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Close the connection after this many body bytes (a truncated transfer).
    cut: Option<usize>,
}

impl Response {
    fn new(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Vec::new(), cut: None }
    }
    fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    fn error(status: u16, code: &str, message: &str) -> Self {
        Response::new(status).with("X-Error-Code", code).with("X-Error-Message", message)
    }
}

/// Serve one connection: one request, one response, close.
fn handle(stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let Some((line, req)) = read_request(&mut reader)? else { return Ok(()) };
    if let Ok(mut seen) = state.requests.lock() {
        seen.push(line);
    }
    let resp = route(state, &req);
    write_response(stream, &req, resp)
}

/// Read the request line and headers; None on a malformed or empty request.
fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<(String, Request)>> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    let mut parts = line.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else { return Ok(None) };
    let (method, path) = (method.to_string(), percent_decode(target.split('?').next().unwrap_or("")));
    let query = target.split_once('?').map_or(String::new(), |(_, q)| q.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim_end().is_empty() || headers.len() > 100 {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok(Some((line, Request { method, path, query, headers })))
}

/// Decode `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Dispatch a request to its route.
fn route(state: &State, req: &Request) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return Response::error(405, "MethodNotAllowed", "only GET and HEAD");
    }
    if let Some(rest) = req.path.strip_prefix("/api/datasets/") {
        return api_info(state, req, rest);
    }
    if let Some(rest) = req.path.strip_prefix("/datasets/") {
        return resolve(state, req, rest);
    }
    if let Some(hash) = req.path.strip_prefix("/cdn/") {
        let found = state.repos.iter().flat_map(|r| &r.files).find(|(_, data)| sha256_hex(data) == hash);
        return match found {
            Some((name, data)) => serve_file(state, req, name, data).with("ETag", format!("\"{hash}\"")),
            None => Response::error(404, "EntryNotFound", "no such object"),
        };
    }
    Response::error(404, "NotFound", "unknown route")
}

/// The repo `id` at `rev`, after the token check; or the error response.
fn find_repo<'a>(
    state: &'a State,
    req: &Request,
    id: &str,
    rev: &str,
) -> std::result::Result<&'a FakeRepo, Response> {
    let Some(repo) = state.repos.iter().find(|r| r.id == id) else {
        return Err(Response::error(404, "RepoNotFound", "Repository not found"));
    };
    if let Some(token) = &state.token {
        if req.header("authorization") != Some(format!("Bearer {token}").as_str()) {
            let msg =
                format!("Access to dataset {id} is restricted. You must be authenticated to access it.");
            return Err(Response::error(401, "GatedRepo", &msg));
        }
    }
    if rev != "main" && rev != repo.commit {
        return Err(Response::error(404, "RevisionNotFound", "Invalid rev id"));
    }
    Ok(repo)
}

/// `GET /api/datasets/{id}/revision/{rev}`.
fn api_info(state: &State, req: &Request, rest: &str) -> Response {
    let Some((id, rev)) = rest.rsplit_once("/revision/") else {
        return Response::error(404, "NotFound", "unknown route");
    };
    let repo = match find_repo(state, req, id, rev) {
        Ok(repo) => repo,
        Err(resp) => return resp,
    };
    let blobs = req.query.split('&').any(|kv| kv == "blobs=true");
    let faults = state.faults.lock().map(|f| f.clone()).unwrap_or_default();
    let siblings: Vec<_> = repo
        .files
        .iter()
        .map(|(name, data)| {
            if !blobs {
                return serde_json::json!({ "rfilename": name });
            }
            let fault = faults.iter().find(|(f, _)| f == name).map(|(_, x)| x);
            let size = match fault {
                Some(Fault::ListedSize(n)) => *n,
                _ => data.len() as u64,
            };
            let id = match fault {
                Some(Fault::ListedId(id)) => id.clone(),
                _ => sha256_hex(data),
            };
            let mut entry =
                serde_json::json!({ "rfilename": name, "size": size, "blobId": id[..40.min(id.len())] });
            if name.ends_with(".parquet") {
                entry["lfs"] = serde_json::json!({ "sha256": id, "size": size, "pointerSize": 134 });
            }
            entry
        })
        .collect();
    let body = serde_json::json!({ "id": repo.id, "sha": repo.commit, "siblings": siblings });
    let mut resp = Response::new(200).with("Content-Type", "application/json");
    resp.body = body.to_string().into_bytes();
    resp
}

/// `GET`/`HEAD /datasets/{id}/resolve/{rev}/{file}`.
fn resolve(state: &State, req: &Request, rest: &str) -> Response {
    let Some((id, tail)) = rest.split_once("/resolve/") else {
        return Response::error(404, "NotFound", "unknown route");
    };
    let (rev, file) = tail.split_once('/').unwrap_or((tail, ""));
    let repo = match find_repo(state, req, id, rev) {
        Ok(repo) => repo,
        Err(resp) => return resp,
    };
    let Some((name, data)) = repo.files.iter().find(|(name, _)| name == file) else {
        return Response::error(404, "EntryNotFound", &format!("{file} does not exist on \"{rev}\""));
    };
    if state.unavailable.lock().is_ok_and(|list| list.contains(name)) {
        return Response::error(503, "ServiceUnavailable", "try again later");
    }
    let hash = sha256_hex(data);
    if name.ends_with(".parquet") {
        let location = format!("http://{}/cdn/{hash}", req.header("host").unwrap_or("127.0.0.1"));
        return Response::new(302)
            .with("Location", location)
            .with("X-Linked-Etag", format!("\"{hash}\""))
            .with("X-Linked-Size", data.len().to_string())
            .with("X-Repo-Commit", repo.commit.clone());
    }
    serve_file(state, req, name, data)
        .with("ETag", format!("\"{hash}\""))
        .with("X-Repo-Commit", repo.commit.clone())
}

/// The fault set for `name`, if any (counting down a `Truncate`).
fn take_fault(state: &State, name: &str) -> Option<Fault> {
    let mut list = state.faults.lock().ok()?;
    let i = list.iter().position(|(f, _)| f == name)?;
    let fault = list[i].1.clone();
    if let Fault::Truncate { at, times } = fault {
        if times <= 1 {
            list.remove(i);
        } else {
            list[i].1 = Fault::Truncate { at, times: times - 1 };
        }
    }
    Some(fault)
}

/// [`serve_bytes`] of file `name`, with its fault applied.
fn serve_file(state: &State, req: &Request, name: &str, data: &[u8]) -> Response {
    let fault = if req.method == "GET" { take_fault(state, name) } else { None };
    match fault {
        Some(Fault::Corrupt) => {
            let mut bad = data.to_vec();
            if let Some(b) = bad.get_mut(data.len() / 2) {
                *b ^= 0x55;
            }
            serve_bytes(req, &bad)
        }
        Some(Fault::Extra(n)) => {
            let mut resp = serve_bytes(req, data);
            resp.body.extend(std::iter::repeat_n(0xAB, n));
            resp
        }
        Some(Fault::Truncate { at, .. }) => {
            let mut resp = serve_bytes(req, data);
            resp.cut = Some(at.min(resp.body.len()));
            resp
        }
        _ => serve_bytes(req, data),
    }
}

/// A 200 with `data`, or a 206 with the requested range, or a 416.
fn serve_bytes(req: &Request, data: &[u8]) -> Response {
    let size = data.len();
    let base = |status| {
        Response::new(status).with("Accept-Ranges", "bytes").with("Content-Type", "application/octet-stream")
    };
    match req.header("range").map(|r| parse_range(r, size)) {
        None | Some(RangeSpec::Ignored) => {
            let mut resp = base(200);
            resp.body = data.to_vec();
            resp
        }
        Some(RangeSpec::Unsatisfiable) => base(416).with("Content-Range", format!("bytes */{size}")),
        Some(RangeSpec::Span(a, b)) => {
            let mut resp = base(206).with("Content-Range", format!("bytes {a}-{b}/{size}"));
            resp.body = data[a..=b].to_vec();
            resp
        }
    }
}

/// A `Range` header's meaning for a body of `size` bytes.
enum RangeSpec {
    /// Serve the whole body (unparseable or multi-range header).
    Ignored,
    /// 416.
    Unsatisfiable,
    /// Bytes a..=b.
    Span(usize, usize),
}

/// Parse `bytes=a-b`, `bytes=a-` or `bytes=-n`.
fn parse_range(header: &str, size: usize) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return RangeSpec::Ignored };
    let Some((a, b)) = spec.split_once('-') else { return RangeSpec::Ignored };
    if spec.contains(',') {
        return RangeSpec::Ignored;
    }
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.parse::<usize>(), b.parse::<usize>()) {
        (Ok(a), Ok(b)) if a <= b => Some((a, b.min(size.saturating_sub(1)))),
        (Ok(a), Err(_)) if b.is_empty() => Some((a, size.saturating_sub(1))),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => Some((size.saturating_sub(n), size.saturating_sub(1))),
        _ => return RangeSpec::Ignored,
    };
    match parsed {
        Some((a, b)) if a < size && a <= b => RangeSpec::Span(a, b),
        _ => RangeSpec::Unsatisfiable,
    }
}

/// Write `resp` (headers, and the body unless HEAD) and close.
fn write_response(mut stream: TcpStream, req: &Request, resp: Response) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", resp.body.len()));
    stream.write_all(head.as_bytes())?;
    if req.method != "HEAD" {
        stream.write_all(&resp.body[..resp.cut.unwrap_or(resp.body.len())])?;
    }
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Write)
}

/// The reason phrase of the statuses this server sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Lower-case hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A repo `id` of `n_images` random `side` x `side` 8-bit gray PNGs in `shards` parquet shards
/// `data/train-{k:05}-of-{shards:05}.parquet` (image i in shard floor(i * shards / n) order, contiguous),
/// written with [`crate::parquet::write_image_parquet`]'s layout, path `img_{i:05}.png`, label
/// `i % 5`; plus a `README.md`. The commit is derived from (id, seed). Returns the repo and the raw
/// pixels of each image, in order. Image i depends only on (seed, i).
pub fn fake_image_repo(
    id: &str,
    n_images: usize,
    side: u32,
    shards: usize,
    seed: u64,
) -> (FakeRepo, Vec<Vec<u8>>) {
    let shards = shards.max(1);
    let pixels: Vec<Vec<u8>> = (0..n_images).map(|i| random_pixels(seed, i, side)).collect();
    let mut files = vec![(
        "README.md".to_string(),
        format!("# {id}\n\nRandom gray images (seed {seed}).\n").into_bytes(),
    )];
    for k in 0..shards {
        let rows: Vec<(Vec<u8>, String, Option<i64>)> = (k * n_images / shards..(k + 1) * n_images / shards)
            .map(|i| (gray_png(&pixels[i], side), format!("img_{i:05}.png"), Some((i % 5) as i64)))
            .collect();
        let bytes = encode_image_parquet(&rows).expect("encode a parquet shard in memory");
        files.push((format!("data/train-{k:05}-of-{shards:05}.parquet"), bytes));
    }
    let commit = sha256_hex(format!("{id}@{seed}").as_bytes())[..40].to_string();
    (FakeRepo { id: id.to_string(), commit, files }, pixels)
}

/// The side x side random bytes of image `i`.
fn random_pixels(seed: u64, i: usize, side: u32) -> Vec<u8> {
    let mut px = vec![0u8; (side * side) as usize];
    crate::rng::for_item(seed, i as u64).fill_bytes(&mut px);
    px
}

/// Encode 8-bit gray pixels as PNG.
pub fn gray_png(pixels: &[u8], side: u32) -> Vec<u8> {
    encode_png(pixels, side, side).expect("encode a gray PNG")
}

/// Encode `width` x `height` 8-bit gray pixels as PNG.
fn encode_png(pixels: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    use ::image::ImageEncoder;
    let mut out = Vec::new();
    ::image::codecs::png::PngEncoder::new(&mut out)
        .write_image(pixels, width, height, ::image::ExtendedColorType::L8)
        .map_err(|e| Error::Invalid(format!("cannot encode PNG: {e}")))?;
    Ok(out)
}

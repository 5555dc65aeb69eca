//! The server: repos held in memory, the accept loop, the Hub's routes and the injected faults.

use crate::http::{read_request, serve_bytes, write_response, Request, Response};
use crate::sha256_hex;
use std::io::BufReader;
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
fn find_repo<'a>(state: &'a State, req: &Request, id: &str, rev: &str) -> Result<&'a FakeRepo, Response> {
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

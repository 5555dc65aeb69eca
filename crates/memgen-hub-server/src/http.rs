//! Just enough HTTP/1.1: one request read per connection, one response written (with byte ranges),
//! then the connection is closed.

use std::io::{BufRead, Write};
use std::net::TcpStream;

/// A parsed request: method, decoded path, query, headers (lower-case names).
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Request {
    /// The value of header `name` (lower-case), if present.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A response: status, headers, body (omitted for HEAD).
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Close the connection after this many body bytes (a truncated transfer).
    pub(crate) cut: Option<usize>,
}

impl Response {
    pub(crate) fn new(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Vec::new(), cut: None }
    }
    pub(crate) fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    pub(crate) fn error(status: u16, code: &str, message: &str) -> Self {
        Response::new(status).with("X-Error-Code", code).with("X-Error-Message", message)
    }
}

/// Read the request line and headers; None on a malformed or empty request.
pub(crate) fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<(String, Request)>> {
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

/// A 200 with `data`, or a 206 with the requested range, or a 416.
pub(crate) fn serve_bytes(req: &Request, data: &[u8]) -> Response {
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
pub(crate) fn write_response(mut stream: TcpStream, req: &Request, resp: Response) -> std::io::Result<()> {
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

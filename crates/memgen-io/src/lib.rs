//! memgen-io: what every memgen stage shares on disk and on the terminal.
//!
//! * [`write_atomic`], [`write_json`], [`read_json`], [`append_json_line`], [`read_last_json_line`]:
//!   the one place where stage records are written and read. A write goes to `<name>.<pid>.tmp` next
//!   to the target, is synced, and is renamed over it, so a reader never sees half a file and an
//!   interrupted write leaves the old file as it was.
//! * [`FileError`]: the file failures every library crate reports the same way (each names its file).
//! * [`progress`]: the progress bars of long stages.

pub mod progress;

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A failure that concerns one named file or directory. The library crates' error enums hold it as
/// their `File` variant, so every crate words these failures alike.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// An I/O failure. Its message holds the OS error, so it reports no separate source (an error
    /// chain would print the OS error twice).
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    /// A file that exists but is not what its format requires (bad JSON or TOML, wrong magic,
    /// truncation, missing tensors, ...).
    #[error("{path}: {msg}")]
    BadFile { path: PathBuf, msg: String },
    /// Refused to protect data already on disk (a directory that holds another config or another
    /// command line, or one another memgen process is using); the command line exits with code 3.
    #[error("{path}: {msg}")]
    Refused { path: PathBuf, msg: String },
}

impl FileError {
    /// [`FileError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FileError::Io { path: path.into(), cause: source }
    }

    /// [`FileError::BadFile`] for `path`.
    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        FileError::BadFile { path: path.into(), msg: msg.into() }
    }

    /// [`FileError::Refused`] for `path`.
    pub fn refused(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        FileError::Refused { path: path.into(), msg: msg.into() }
    }

    /// The file or directory the failure concerns.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Io { path, .. }
            | FileError::BadFile { path, .. }
            | FileError::Refused { path, .. } => path,
        }
    }
}

/// `Result` with [`FileError`].
pub type Result<T> = std::result::Result<T, FileError>;

/// `<dir>/<name>.<pid>.tmp`: where [`write_atomic`] stages `path`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Write `bytes` to `path` atomically: to [`tmp_path`], synced, then renamed over `path`. On failure
/// (disk full, no permission) the temporary file is removed, `path` is left as it was, and the error
/// names `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.file_name().is_none() {
        return Err(FileError::io(path, std::io::Error::other("not a file name")));
    }
    let tmp = tmp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        FileError::io(path, e)
    })
}

/// Write `value` to `path` as pretty JSON with a final newline, atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| FileError::bad_file(path, format!("cannot encode JSON: {e}")))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Read the JSON record `T` from `path`; the error names the file and says what is wrong.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| FileError::bad_file(path, format!("invalid JSON: {e}")))
}

/// Append `value` as one JSON line to `path` (created if absent).
pub fn append_json_line<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string(value)
        .map_err(|e| FileError::bad_file(path, format!("cannot encode JSON: {e}")))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| FileError::io(path, e))?;
    writeln!(f, "{text}").map_err(|e| FileError::io(path, e))
}

/// The last non-blank line of a JSON-lines file as a `T` (`None` for a file with no such line),
/// without parsing the lines before it; a bad last line is an error naming the file.
pub fn read_last_json_line<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError::io(path, e))?;
    let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) else { return Ok(None) };
    serde_json::from_str(line)
        .map(Some)
        .map_err(|e| FileError::bad_file(path, format!("last line: invalid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        step: usize,
        loss: f64,
    }

    #[test]
    fn json_records_read_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        // A value the default (not round-trip) float parser reads one ulp off.
        let rec = Rec { step: 3, loss: f64::from_bits(0x3fcec1f380000000) };
        write_json(&path, &rec).unwrap();
        let back: Rec = read_json(&path).unwrap();
        assert_eq!(back.loss.to_bits(), rec.loss.to_bits());
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 1, "a temporary file was left: {names:?}");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_atomic(&path, b"old").unwrap();
        // The temporary file cannot be created: a directory stands in its place.
        std::fs::create_dir(tmp_path(&path)).unwrap();
        let err = write_atomic(&path, b"new").unwrap_err();
        assert_eq!(err.path(), path);
        assert!(err.to_string().contains("r.json"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn json_lines_append_and_the_last_line_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        for step in 1..=3 {
            append_json_line(&path, &Rec { step, loss: 0.5 / step as f64 }).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
        assert_eq!(read_last_json_line::<Rec>(&path).unwrap(), Some(Rec { step: 3, loss: 0.5 / 3.0 }));
        // Only the last line is read: a bad earlier line does not matter, a bad last line does.
        std::fs::write(&path, "not json\n{\"step\": 7, \"loss\": 0.5}\n\n").unwrap();
        assert_eq!(read_last_json_line::<Rec>(&path).unwrap().map(|r| r.step), Some(7));
        std::fs::write(&path, "\n  \n").unwrap();
        assert!(read_last_json_line::<Rec>(&path).unwrap().is_none());
        std::fs::write(&path, "{\"step\": 7, \"loss\": 0.5}\n{\"step\": 8\n").unwrap();
        let err = read_last_json_line::<Rec>(&path).unwrap_err().to_string();
        assert!(err.contains("log.jsonl") && err.contains("last line"), "{err}");
    }

    #[test]
    fn a_missing_or_bad_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.json");
        let err = read_json::<Rec>(&path).unwrap_err();
        assert!(matches!(err, FileError::Io { .. }));
        // The OS error is in the message once, and not again as a source.
        assert!(err.to_string().contains("none.json") && std::error::Error::source(&err).is_none(), "{err}");
        std::fs::write(&path, "{\"step\": 1}").unwrap();
        let err = read_json::<Rec>(&path).unwrap_err();
        assert!(matches!(err, FileError::BadFile { .. }));
        assert!(err.to_string().contains("none.json") && err.to_string().contains("loss"), "{err}");
    }
}

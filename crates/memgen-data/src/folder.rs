//! Image-folder source: every PNG/JPEG under a directory, recursively, in sorted relative-path order,
//! with an optional group key taken from each file name by a regular expression (its first capture
//! group, or the whole match), e.g. `s(\d+)_` for the person in `s07_03.png`.

use crate::source::{ImageSource, Provenance, SourceImage};
use crate::{invalid, Error, Image, Result};
use rayon::prelude::*;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Configuration of an image folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    /// Root directory, searched recursively.
    pub path: PathBuf,
    /// Regex applied to each file name; its first capture group (or whole match) is the group key.
    #[serde(default)]
    pub group_regex: Option<String>,
}

/// An image folder, its files listed once at construction.
#[derive(Debug)]
pub struct FolderSource {
    cfg: FolderConfig,
    files: Vec<PathBuf>,
    regex: Option<Regex>,
}

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

impl FolderSource {
    /// List the images under `cfg.path`; an error if there are none or the regex is invalid.
    pub fn new(cfg: FolderConfig) -> Result<Self> {
        let regex = match &cfg.group_regex {
            Some(r) => Some(Regex::new(r).map_err(|e| invalid!("invalid group regex {r:?}: {e}"))?),
            None => None,
        };
        let mut files = Vec::new();
        walk(&cfg.path, &mut files)?;
        files.sort();
        if files.is_empty() {
            return Err(Error::bad_file(&cfg.path, "no PNG or JPEG images found (searched recursively)"));
        }
        Ok(FolderSource { cfg, files, regex })
    }

    /// The image files, in the order they are loaded.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn relative_name(&self, file: &Path) -> String {
        file.strip_prefix(&self.cfg.path).unwrap_or(file).to_string_lossy().into_owned()
    }

    /// The group key of `file`, from its file name.
    fn group_of(&self, file: &Path) -> Result<Option<String>> {
        let Some(re) = &self.regex else { return Ok(None) };
        let name = file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let caps = re.captures(&name).ok_or_else(|| {
            Error::bad_file(file, format!("file name does not match the group regex {:?}", re.as_str()))
        })?;
        let m = caps.get(1).or_else(|| caps.get(0)).map(|m| m.as_str().to_string());
        Ok(m)
    }

    fn load_one(&self, file: &Path) -> Result<SourceImage> {
        let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
        let image = Image::decode(&bytes).map_err(|msg| Error::bad_file(file, msg))?;
        Ok(SourceImage { image, name: self.relative_name(file), group: self.group_of(file)? })
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

impl ImageSource for FolderSource {
    fn provenance(&self) -> Provenance {
        Provenance {
            kind: "folder".into(),
            location: self.cfg.path.display().to_string(),
            revision: None,
            params: serde_json::json!({ "group_regex": self.cfg.group_regex, "files": self.files.len() }),
        }
    }

    fn load(&mut self, count: Option<usize>) -> Result<Vec<SourceImage>> {
        let n = count.unwrap_or(self.files.len());
        if n > self.files.len() {
            return Err(invalid!(
                "asked for {n} images but {} holds only {}",
                self.cfg.path.display(),
                self.files.len()
            ));
        }
        let progress = crate::prepare::progress_bar(n as u64, "decoding images");
        let out = self.files[..n]
            .par_iter()
            .map(|f| {
                let r = self.load_one(f);
                progress.inc(1);
                r
            })
            .collect::<Result<Vec<_>>>();
        progress.finish_and_clear();
        out
    }
}

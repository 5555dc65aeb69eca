//! Names: file patterns ([`glob_match`], [`select_files`]) and the checks on repo ids, revisions,
//! commit shas and repo file names that keep every name the Hub sends inside the cache.

use crate::{Error, Result};
use std::path::Path;

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
pub(super) fn check_repo_id(id: &str) -> Result<()> {
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
pub(super) fn check_revision(rev: &str) -> Result<()> {
    let unsafe_segment = rev.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    if unsafe_segment || rev.contains(['\\', ':']) || rev.chars().any(char::is_control) {
        return Err(crate::invalid!("invalid Hub revision {rev:?}"));
    }
    Ok(())
}

/// Whether a commit sha is safe to use as a directory name (letters and digits only).
pub(super) fn is_plain_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.len() <= 64 && sha.chars().all(|c| c.is_ascii_alphanumeric())
}

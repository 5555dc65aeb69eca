//! Run-directory files: atomic writes, safetensors checkpoints and the `latest` pointer.
//!
//! ```text
//! RUN/checkpoints/step-00000500/{model,ema,optimizer}.safetensors, state.json
//! RUN/checkpoints/latest             the name of the newest complete checkpoint directory
//! RUN/model.safetensors, RUN/ema.safetensors   copies of the newest weights, for readers
//! ```
//! A checkpoint directory is complete before `latest` points to it, so an interrupted write never
//! replaces the last good checkpoint. Tensor names are the network's dotted module paths
//! (e.g. `down.0.res.1.conv1.weight`), readable with `safetensors.torch.load_file`.

use crate::error::{Error, Result};
use candle::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use memgen_io::write_atomic;

/// Save named tensors as safetensors, atomically: written to `NAME.safetensors.<pid>.tmp`, synced
/// and renamed. On failure (disk full, no permission) the temporary file is removed, the previous
/// `path` is left as it was, and the error names `path`.
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let tmp = path.with_extension(format!("safetensors.{}.tmp", std::process::id()));
    let written = candle::safetensors::save(tensors, &tmp)
        .map_err(|e| match e {
            candle::Error::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Load all tensors of a safetensors file onto `device`.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(Error::bad_file(path, "not found"));
    }
    candle::safetensors::load(path, device)
        .map_err(|e| Error::bad_file(path, format!("cannot read tensors: {e}")))
}

/// `RUN/checkpoints`.
pub fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// The directory of the checkpoint at `step`.
pub fn step_dir(run: &Path, step: usize) -> PathBuf {
    checkpoints_dir(run).join(format!("step-{step:08}"))
}

/// The newest complete checkpoint directory, if any.
pub fn latest(run: &Path) -> Result<Option<PathBuf>> {
    let ptr = checkpoints_dir(run).join("latest");
    match std::fs::read_to_string(&ptr) {
        Ok(name) => {
            let dir = checkpoints_dir(run).join(name.trim());
            if dir.is_dir() {
                Ok(Some(dir))
            } else {
                Err(Error::bad_file(&ptr, format!("points to {}, which does not exist", dir.display())))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(ptr, e)),
    }
}

/// Make `dir` the newest checkpoint and delete the older ones.
pub fn promote(run: &Path, dir: &Path) -> Result<()> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    write_atomic(&checkpoints_dir(run).join("latest"), name.as_bytes())?;
    let entries = std::fs::read_dir(checkpoints_dir(run)).map_err(|e| Error::io(checkpoints_dir(run), e))?;
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() && p != dir && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("step-")) {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
    Ok(())
}

//! Run directories: `config.json` (everything needed to reproduce the run) and `split.json` (the exact
//! training indices), and loading the training images they name.

use crate::error::{Error, Result};
use crate::train::TrainConfig;
use candle::{Device, Tensor};
use memgen_data::dataset::PreparedDataset;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which images a run trains on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRef {
    /// Prepared dataset directory.
    pub dir: PathBuf,
    /// Its content hash when the run started (checked on every load).
    pub content_hash: String,
    /// How the indices were chosen: `split` (side A/B of a nested split) or `file`.
    pub selection: Selection,
}

/// The training subset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Selection {
    /// S_side(n) of the nested split drawn with `seed` (memgen_data::split::NestedSplit).
    Split { side: Side, n: usize, seed: u64 },
    /// Indices read from a file.
    File { path: PathBuf },
    /// Every image of the dataset.
    All,
}

/// A side of a disjoint split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    A,
    B,
}

/// RUN/config.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub train: TrainConfig,
    pub data: DataRef,
    /// Worker threads the run was started with.
    pub threads: usize,
    /// `cpu` or `cuda:N`.
    pub device: String,
    pub memgen_version: String,
}

/// RUN/split.json: the exact indices trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRecord {
    pub dataset: PathBuf,
    pub content_hash: String,
    pub selection: Selection,
    pub indices: Vec<usize>,
}

impl RunConfig {
    /// Read RUN/config.json.
    pub fn load(run: &Path) -> Result<Self> {
        read_json(&run.join("config.json"))
    }

    /// Write RUN/config.json atomically.
    pub fn save(&self, run: &Path) -> Result<()> {
        write_json(&run.join("config.json"), self)
    }

    /// RUN/config.json for a resume by memgen `ours`: refused when another memgen version wrote it,
    /// unless `force`. Returns the config (its version set to `ours`) and, where forced, the version
    /// that wrote it.
    pub fn load_for_resume(run: &Path, ours: &str, force: bool) -> Result<(Self, Option<String>)> {
        let path = run.join("config.json");
        let raw: serde_json::Value = read_json(&path).map_err(|e| {
            Error::Invalid(format!("{} is not a run directory that can be resumed: {e}", run.display()))
        })?;
        let version = raw.get("memgen_version").and_then(|v| v.as_str()).unwrap_or("unknown").to_string();
        if version != ours && !force {
            return Err(Error::refused(
                &path,
                format!(
                    "written by memgen {version}, this is memgen {ours}: its config and checkpoints may \
                     not mean the same here; resume it with the memgen that started it, or pass --force \
                     to resume it anyway"
                ),
            ));
        }
        let mut cfg: RunConfig = serde_json::from_value(raw).map_err(|e| {
            Error::bad_file(&path, format!("not a run config this memgen ({ours}) understands (written by {version}): {e}"))
        })?;
        if version == ours {
            return Ok((cfg, None));
        }
        cfg.memgen_version = ours.to_string();
        Ok((cfg, Some(version)))
    }

    /// Make way for this new run in `out`, which already holds one: refused, saying what differs
    /// from the old config (or that it is the same run, to be continued with `--resume`); with
    /// `force` the old run is moved aside to `OUT.replaced-<unix time>`, which is returned.
    pub fn replace_existing(&self, out: &Path, force: bool) -> Result<PathBuf> {
        let path = out.join("config.json");
        let old: serde_json::Value = read_json(&path)?;
        let mut new = serde_json::to_value(self).map_err(|e| Error::Invalid(e.to_string()))?;
        // The thread count does not make another run.
        new["threads"] = old.get("threads").cloned().unwrap_or_default();
        if force {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let mut name = out.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".replaced-{t}"));
            let aside = out.with_file_name(name);
            std::fs::rename(out, &aside).map_err(|e| Error::io(out, e))?;
            return Ok(aside);
        }
        let diffs = json_diff("", &old, &new);
        let resume = format!("`memgen train --resume {}`", out.display());
        if diffs.is_empty() {
            return Err(Error::refused(out, format!("already holds this run (same config); continue it with {resume}")));
        }
        let shown: Vec<String> = diffs.iter().take(8).cloned().collect();
        let more = if diffs.len() > 8 { format!(" and {} more", diffs.len() - 8) } else { String::new() };
        Err(Error::refused(
            out,
            format!(
                "already holds a run with a different config ({}{more}); use another --out, {resume} to \
                 continue the old run, or --force to replace it (the old run is moved aside, not deleted)",
                shown.join("; ")
            ),
        ))
    }
}

/// The differences between two JSON values, as `key.path: OLD -> NEW`.
fn json_diff(prefix: &str, old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    json_diff(&p, a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null))
                })
                .collect()
        }
        _ if old == new => Vec::new(),
        _ => vec![format!("{prefix}: {old} -> {new}")],
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    Ok(memgen_io::read_json(path)?)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    Ok(memgen_io::write_json(path, value)?)
}

/// The indices `selection` picks from a dataset.
pub fn select(ds: &PreparedDataset, selection: &Selection) -> Result<Vec<usize>> {
    let m = &ds.manifest;
    let indices = match selection {
        Selection::All => (0..m.count).collect(),
        Selection::Split { side, n, seed } => {
            let split = memgen_data::split::NestedSplit::new(m.count, m.groups.as_deref(), *seed);
            let (a, b) = split.subsets(*n)?;
            match side {
                Side::A => a.to_vec(),
                Side::B => b.to_vec(),
            }
        }
        Selection::File { path } => read_indices(path)?,
    };
    if let Some(&bad) = indices.iter().find(|&&i| i >= m.count) {
        return Err(Error::Invalid(format!(
            "index {bad} is out of range for a dataset of {} images",
            m.count
        )));
    }
    if indices.is_empty() {
        return Err(Error::Invalid("the selection holds no images".into()));
    }
    Ok(indices)
}

/// Indices from a JSON file: a plain array, or an object with an `indices` array (a split.json).
fn read_indices(path: &Path) -> Result<Vec<usize>> {
    let v: serde_json::Value = read_json(path)?;
    let arr = v.as_array().or_else(|| v.get("indices").and_then(|x| x.as_array()));
    let arr = arr.ok_or_else(|| {
        Error::bad_file(path, "expected a JSON array of indices or an object with \"indices\"")
    })?;
    arr.iter()
        .map(|x| {
            x.as_u64()
                .map(|i| i as usize)
                .ok_or_else(|| Error::bad_file(path, format!("{x} is not an index")))
        })
        .collect()
}

/// Load the training images of `data` as (N, C, H, W) on `device`, checking the content hash, and
/// the record of which indices they are.
pub fn load_training_data(data: &DataRef, device: &Device) -> Result<(Tensor, SplitRecord)> {
    let ds = PreparedDataset::read(&data.dir)?;
    if !data.content_hash.is_empty() && ds.manifest.content_hash != data.content_hash {
        return Err(Error::bad_file(
            &data.dir,
            format!(
                "content hash {} differs from the run's {}: the dataset changed",
                ds.manifest.content_hash, data.content_hash
            ),
        ));
    }
    let indices = select(&ds, &data.selection)?;
    let images = ds.subset_tensor(&indices, device)?;
    let record = SplitRecord {
        dataset: data.dir.clone(),
        content_hash: ds.manifest.content_hash.clone(),
        selection: data.selection.clone(),
        indices,
    };
    Ok((images, record))
}

/// The device named `cpu` or `cuda:N` (the latter needs the `cuda` feature and a GPU); an error
/// names the device and says why it cannot be used ([`parse_device`] gives the reason alone).
pub fn device(name: &str) -> Result<Device> {
    parse_device(name).map_err(|why| Error::Invalid(format!("device {name:?}: {why}")))
}

/// A device name as `--device` and experiment files write it: `cpu` or `cuda:N`. Parsing checks the
/// form only (an experiment planned for a cluster names GPUs the planning machine need not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceName {
    Cpu,
    /// GPU N (`cuda:N`).
    Cuda(usize),
}

impl std::str::FromStr for DeviceName {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        if name == "cpu" {
            return Ok(DeviceName::Cpu);
        }
        let Some(index) = name.strip_prefix("cuda:") else {
            return Err("expected cpu or cuda:N (N a GPU index, e.g. cuda:0)".into());
        };
        let why = "expected cuda:N with N a GPU index, e.g. cuda:0";
        index.parse().map(DeviceName::Cuda).map_err(|_| why.into())
    }
}

/// The device named `cpu` or `cuda:N`, or why it cannot be used: not one of those forms
/// ([`DeviceName`]), a build without the `cuda` feature, or no GPU N. The one parser behind
/// [`device`] and the CLI's `--device` flags.
pub fn parse_device(name: &str) -> std::result::Result<Device, String> {
    let i = match name.parse::<DeviceName>()? {
        DeviceName::Cpu => return Ok(Device::Cpu),
        DeviceName::Cuda(i) => i,
    };
    if !cfg!(feature = "cuda") {
        return Err("this memgen was built without CUDA; rebuild it with `cargo build --release --features \
                    cuda` (needs the CUDA toolkit: source scripts/cuda-env.sh), or use cpu"
            .into());
    }
    Device::new_cuda(i).map_err(|e| {
        // The reason alone: a usage message has no use for Candle's backtrace (RUST_BACKTRACE set).
        let e = match e {
            candle::Error::WithBacktrace { inner, .. } => *inner,
            e => e,
        };
        format!("GPU {i} is unavailable ({e})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_by_form_only() {
        assert_eq!("cpu".parse(), Ok(DeviceName::Cpu));
        assert_eq!("cuda:0".parse(), Ok(DeviceName::Cuda(0)));
        assert_eq!("cuda:7".parse(), Ok(DeviceName::Cuda(7)));
        for bad in ["gpu", "CPU", "cuda", "cuda:", "cuda:x", "cuda:-1", ""] {
            assert!(bad.parse::<DeviceName>().is_err(), "{bad}");
        }
        assert!(matches!(device("cpu"), Ok(Device::Cpu)));
        let err = device("gpu").unwrap_err().to_string();
        assert!(err.contains("\"gpu\"") && err.contains("cpu or cuda:N"), "{err}");
        if !cfg!(feature = "cuda") {
            let err = parse_device("cuda:0").unwrap_err();
            assert!(err.contains("--features cuda") && err.contains("cuda-env.sh"), "{err}");
        }
    }
}

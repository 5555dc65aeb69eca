//! The `memgen data` stages as library calls: a SOURCE string and the command line's overrides
//! ([`PrepareConfig`]) prepared into a directory ([`prepare_dir`]), a dataset's summary
//! ([`InfoRecord`]), a grid's selection ([`show_indices`]), the nested split written as split.json
//! ([`split_dir`]) and the built-in recipes ([`recipes`]). Each returns the typed record the command
//! reports.
//!
//! SOURCE is one of: a built-in recipe name; a recipe file (`*.toml`); `hub:OWNER/NAME`; `idx:PATH`;
//! or an image directory (optionally written `folder:PATH`). The built-in recipes are passed in as
//! (name, TOML text) pairs, so the binary that ships them decides which there are.

use crate::dataset::{read_manifest, Manifest, StorageDtype, MANIFEST_FILE};
use crate::dedup::DedupReport;
use crate::folder::FolderConfig;
use crate::gaussian::{Basis, Spectrum};
use crate::hub::{HubConfig, HubEnv};
use crate::idx::IdxConfig;
use crate::prepare::{prepare, PrepareOptions};
use crate::preprocess::{Crop, Resize};
use crate::recipe::{Recipe, SourceSpec};
use crate::split::{NestedSplit, SplitFile};
use crate::{invalid, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Source-specific overrides of a recipe's values; one that does not fit the source's kind is an
/// [`Error::Usage`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceOverrides {
    /// Folder: regex whose first capture group in each file name is the group key.
    pub group_regex: Option<String>,
    /// Hub: revision (branch, tag or commit).
    pub revision: Option<String>,
    /// Hub: file patterns in the repo.
    pub files: Option<Vec<String>>,
    /// Hub: the image column.
    pub column: Option<String>,
    /// Hub: a column whose values are group keys.
    pub group_column: Option<String>,
    /// C^alpha and Gaussian: seed of the generator.
    pub seed: Option<u64>,
    /// C^alpha: regularity of the contour.
    pub alpha: Option<f64>,
    /// C^alpha: regularity of the backgrounds.
    pub beta: Option<f64>,
    /// C^alpha: constant backgrounds (`false` keeps the recipe's choice).
    pub constant_background: bool,
    /// Gaussian: mean of every pixel.
    pub mean: Option<f64>,
    /// Gaussian: covariance spectrum.
    pub spectrum: Option<Spectrum>,
    /// Gaussian: eigenbasis of the covariance.
    pub basis: Option<Basis>,
}

/// Everything [`prepare_dir`] needs: the source, where to write, and the overrides of the recipe.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PrepareConfig {
    /// Recipe name, recipe file, `hub:OWNER/NAME`, `idx:PATH` or an image directory.
    pub source: String,
    /// Output directory.
    pub out: PathBuf,
    /// Replace a prepared dataset already in `out` (else refused).
    pub force: bool,
    /// Side length of the stored square images.
    pub side: Option<usize>,
    /// Read only the first `count` images.
    pub count: Option<usize>,
    /// Crop window before resizing.
    pub crop: Option<Crop>,
    /// Resampling method of the resize.
    pub resize: Option<Resize>,
    /// Keep colour channels instead of converting to gray.
    pub color: bool,
    /// Near-duplicate removal: `Some(true)` on (the recipe's settings, else the defaults),
    /// `Some(false)` off, `None` as the recipe says.
    pub dedup: Option<bool>,
    /// Storage dtype; `None` picks u8 when that is lossless, else f32.
    pub dtype: Option<StorageDtype>,
    /// Hub sources: use only the local cache.
    pub offline: bool,
    pub overrides: SourceOverrides,
}

/// What `memgen data prepare` reports: the files written and the dataset's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareRecord {
    pub out: PathBuf,
    /// OUT/manifest.json.
    pub manifest: PathBuf,
    pub count: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub dtype: StorageDtype,
    pub content_hash: String,
    /// Seconds spent preparing and writing.
    pub seconds: f64,
}

/// A prepared dataset just written by [`prepare_dir`].
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub record: PrepareRecord,
    /// Near-duplicate removal, if it ran.
    pub dedup: Option<DedupReport>,
    /// Seconds spent reading and preprocessing, and writing.
    pub prepare_seconds: f64,
    pub write_seconds: f64,
}

/// Resolve `cfg.source` into a recipe, apply the overrides, prepare the images and write them to
/// `cfg.out`. A prepared dataset already in `cfg.out` is refused ([`memgen_io::FileError::Refused`])
/// unless `cfg.force`.
pub fn prepare_dir(cfg: &PrepareConfig, builtins: &[(&str, &str)]) -> Result<Prepared> {
    if cfg.out.join(MANIFEST_FILE).exists() && !cfg.force {
        return Err(memgen_io::FileError::refused(
            &cfg.out,
            "already holds a prepared dataset; use another --out, or pass --force to replace it",
        )
        .into());
    }
    let mut recipe = resolve_source(&cfg.source, builtins)?;
    override_source(&mut recipe.source, &cfg.overrides)?;
    let opts = prepare_options(&recipe, cfg);
    let mut hub = HubEnv::from_env();
    hub.offline |= cfg.offline;
    let start = Instant::now();
    let mut source = recipe
        .source
        .open(opts.preprocess.side, hub)
        .map_err(|e| e.context(format!("opening source {:?}", cfg.source)))?;
    let mut ds =
        prepare(source.as_mut(), &opts).map_err(|e| e.context(format!("preparing {:?}", cfg.source)))?;
    let prepare_seconds = start.elapsed().as_secs_f64();
    ds.write(&cfg.out).map_err(|e| e.context(format!("writing {}", cfg.out.display())))?;
    let seconds = start.elapsed().as_secs_f64();
    let m = ds.manifest;
    Ok(Prepared {
        record: PrepareRecord {
            out: cfg.out.clone(),
            manifest: cfg.out.join(MANIFEST_FILE),
            count: m.count,
            channels: m.channels,
            height: m.height,
            width: m.width,
            dtype: m.dtype,
            content_hash: m.content_hash,
            seconds,
        },
        dedup: m.dedup,
        prepare_seconds,
        write_seconds: seconds - prepare_seconds,
    })
}

/// Resolve SOURCE into a recipe: a built-in one, a recipe file, or one built from the source form.
pub fn resolve_source(source: &str, builtins: &[(&str, &str)]) -> Result<Recipe> {
    let simple = |name: &str, spec| Recipe {
        name: name.to_string(),
        description: String::new(),
        source: spec,
        preprocess: Default::default(),
        dedup: None,
        count: None,
    };
    if let Some((_, text)) = builtins.iter().find(|(n, _)| *n == source) {
        return Recipe::parse(text, Path::new(source));
    }
    if source.ends_with(".toml") {
        if !Path::new(source).exists() {
            return Err(Error::Usage(format!(
                "SOURCE {source}: no such file or directory (expected a recipe file such as datasets/calpha.toml)"
            )));
        }
        return Recipe::load(Path::new(source));
    }
    if let Some(repo) = source.strip_prefix("hub:") {
        return Ok(simple(repo, SourceSpec::Hub(HubConfig { repo: repo.to_string(), ..Default::default() })));
    }
    if let Some(p) = source.strip_prefix("idx:") {
        return Ok(simple(p, SourceSpec::Idx(IdxConfig { paths: vec![PathBuf::from(p)] })));
    }
    let dir = source.strip_prefix("folder:").unwrap_or(source);
    if Path::new(dir).is_dir() {
        return Ok(simple(dir, SourceSpec::Folder(FolderConfig { path: dir.into(), group_regex: None })));
    }
    let names: Vec<&str> = builtins.iter().map(|(n, _)| *n).collect();
    Err(Error::Usage(format!(
        "unknown source {source:?}: expected a recipe name ({}), a recipe file (*.toml), hub:OWNER/NAME, idx:PATH, or an image directory",
        names.join(", ")
    )))
}

/// Apply the overrides to `spec`; one that does not fit the source kind is an [`Error::Usage`].
pub fn override_source(spec: &mut SourceSpec, o: &SourceOverrides) -> Result<()> {
    let kind = match spec {
        SourceSpec::Folder(_) => "folder",
        SourceSpec::Hub(_) => "hub",
        SourceSpec::Idx(_) => "idx",
        SourceSpec::Calpha(_) => "calpha",
        SourceSpec::Gaussian(_) => "gaussian",
    };
    let given: [(&str, bool, &[&str]); 12] = [
        ("--group-regex", o.group_regex.is_some(), &["folder"]),
        ("--revision", o.revision.is_some(), &["hub"]),
        ("--files", o.files.is_some(), &["hub"]),
        ("--column", o.column.is_some(), &["hub"]),
        ("--group-column", o.group_column.is_some(), &["hub"]),
        ("--seed", o.seed.is_some(), &["calpha", "gaussian"]),
        ("--alpha", o.alpha.is_some(), &["calpha"]),
        ("--beta", o.beta.is_some(), &["calpha"]),
        ("--constant-background", o.constant_background, &["calpha"]),
        ("--mean", o.mean.is_some(), &["gaussian"]),
        ("--spectrum", o.spectrum.is_some(), &["gaussian"]),
        ("--basis", o.basis.is_some(), &["gaussian"]),
    ];
    if let Some((flag, _, kinds)) = given.iter().find(|(_, set, kinds)| *set && !kinds.contains(&kind)) {
        return Err(Error::Usage(format!(
            "{flag} applies to {} sources, but this source is {kind}",
            kinds.join("/")
        )));
    }
    match spec {
        SourceSpec::Folder(c) => set(&mut c.group_regex, o.group_regex.clone().map(Some)),
        SourceSpec::Hub(c) => {
            set(&mut c.revision, o.revision.clone());
            set(&mut c.files, o.files.clone());
            set(&mut c.column, o.column.clone());
            set(&mut c.group_column, o.group_column.clone().map(Some));
        }
        SourceSpec::Idx(_) => {}
        SourceSpec::Calpha(c) => {
            set(&mut c.seed, o.seed);
            set(&mut c.alpha, o.alpha);
            set(&mut c.beta, o.beta.map(Some));
            c.constant_background |= o.constant_background;
        }
        SourceSpec::Gaussian(c) => {
            set(&mut c.seed, o.seed);
            set(&mut c.mean, o.mean);
            set(&mut c.spectrum, o.spectrum.clone());
            set(&mut c.basis, o.basis);
        }
    }
    Ok(())
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// The recipe's preprocessing, dedup and count with `cfg`'s overrides.
fn prepare_options(recipe: &Recipe, cfg: &PrepareConfig) -> PrepareOptions {
    let mut pre = recipe.preprocess.clone();
    set(&mut pre.side, cfg.side.map(Some));
    set(&mut pre.crop, cfg.crop.map(Some));
    set(&mut pre.resize, cfg.resize);
    pre.grayscale &= !cfg.color;
    let dedup = match cfg.dedup {
        Some(true) => Some(recipe.dedup.unwrap_or_default()),
        Some(false) => None,
        None => recipe.dedup,
    };
    PrepareOptions {
        preprocess: pre,
        dedup,
        count: cfg.count.or(recipe.count),
        dtype: cfg.dtype,
        recipe: Some(recipe.name.clone()),
    }
}

/// What `memgen data info` reports: the dataset directory and its whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfoRecord {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl InfoRecord {
    /// The manifest of the prepared dataset in `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        Ok(InfoRecord { dir: dir.to_path_buf(), manifest: read_manifest(dir)? })
    }

    /// The summary `memgen data info` prints, one line per item.
    pub fn text(&self) -> String {
        let m = &self.manifest;
        let mut lines = vec![
            format!("dataset:      {}", self.dir.display()),
            format!("recipe:       {}", m.recipe.as_deref().unwrap_or("-")),
            format!(
                "source:       {} {}{}",
                m.source.kind,
                m.source.location,
                m.source.revision.as_ref().map(|r| format!(" @ {r}")).unwrap_or_default()
            ),
            format!(
                "images:       {} x {} channel(s) x {}x{} ({:?})",
                m.count, m.channels, m.height, m.width, m.dtype
            ),
        ];
        let groups = m.groups.as_ref().map(|g| g.iter().collect::<std::collections::BTreeSet<_>>().len());
        lines.push(format!(
            "groups:       {}",
            groups.map(|g| g.to_string()).unwrap_or_else(|| "none".into())
        ));
        if let Some(d) = &m.dedup {
            lines.push(format!(
                "dedup:        dropped {} of {} (|corr| > {})",
                d.dropped, d.before, d.threshold
            ));
        }
        let pre = serde_json::to_string(&m.preprocess).unwrap_or_default();
        lines.push(format!("preprocess:   {pre}"));
        lines.push(format!("content hash: {}", m.content_hash));
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// What `memgen data show` reports: the PNG written and the dataset indices it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShowRecord {
    pub out: PathBuf,
    pub images: Vec<usize>,
}

/// The images a grid of `count` shows out of `total`: the first ones, or with `seed` a random
/// selection.
pub fn show_indices(total: usize, count: usize, seed: Option<u64>) -> Vec<usize> {
    let count = count.min(total);
    match seed {
        Some(seed) => crate::rng::permutation(total, seed).into_iter().take(count).collect(),
        None => (0..count).collect(),
    }
}

/// What `memgen data split` reports: the split.json written and the sizes of its two sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitResult {
    /// OUT/split.json.
    pub split: PathBuf,
    pub n: Vec<usize>,
    pub seed: u64,
    pub side_a_images: usize,
    pub side_b_images: usize,
    pub groups_a: usize,
    pub groups_b: usize,
}

/// Draw the nested split of the prepared dataset in `dir` with `seed` and write the subsets for
/// every N of `ns` to `out`/split.json ([`SplitFile`]).
pub fn split_dir(dir: &Path, ns: &[usize], seed: u64, out: &Path) -> Result<SplitResult> {
    let m = read_manifest(dir)?;
    let split = NestedSplit::new(m.count, m.groups.as_deref(), seed);
    let file = SplitFile::build(&split, ns, dir.display().to_string(), m.content_hash.clone())
        .map_err(|e| e.context(format!("splitting {}", dir.display())))?;
    std::fs::create_dir_all(out)
        .map_err(|e| Error::io(out, e).context(format!("creating {}", out.display())))?;
    let path = out.join("split.json");
    memgen_io::write_json(&path, &file)?;
    Ok(SplitResult {
        split: path,
        n: ns.to_vec(),
        seed,
        side_a_images: split.order_a.len(),
        side_b_images: split.order_b.len(),
        groups_a: split.groups_a,
        groups_b: split.groups_b,
    })
}

/// What `memgen data recipes` reports: each built-in recipe's description, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipesRecord {
    pub recipes: BTreeMap<String, String>,
}

/// The built-in recipes (name, TOML text), parsed: (name, description) in the given order, and the
/// record.
pub fn recipes(builtins: &[(&str, &str)]) -> Result<(Vec<(String, String)>, RecipesRecord)> {
    let list = builtins
        .iter()
        .map(|(name, text)| Ok((name.to_string(), Recipe::parse(text, Path::new(name))?.description)))
        .collect::<Result<Vec<_>>>()?;
    let recipes = list.iter().cloned().collect();
    Ok((list, RecipesRecord { recipes }))
}

impl std::str::FromStr for Spectrum {
    type Err = Error;

    /// `power:EXPONENT[:SCALE]` (λ_k = SCALE k^-EXPONENT, SCALE 1 by default) or `flat:VARIANCE`.
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |p: &str| p.parse::<f64>().map_err(|_| invalid!("{p:?} is not a number"));
        match parts[..] {
            ["power", e] => Ok(Spectrum::PowerLaw { exponent: num(e)?, scale: 1.0 }),
            ["power", e, sc] => Ok(Spectrum::PowerLaw { exponent: num(e)?, scale: num(sc)? }),
            ["flat", v] => Ok(Spectrum::Flat { variance: num(v)? }),
            _ => Err(invalid!("expected power:EXPONENT[:SCALE] or flat:VARIANCE")),
        }
    }
}

impl std::str::FromStr for Crop {
    type Err = Error;

    /// `TOP,LEFT,HEIGHT,WIDTH` in source pixels.
    fn from_str(s: &str) -> Result<Self> {
        let v: Vec<usize> = s
            .split(',')
            .map(|p| p.trim().parse().map_err(|_| invalid!("{p:?} is not a non-negative integer")))
            .collect::<Result<_>>()?;
        match v[..] {
            [top, left, height, width] => Ok(Crop { top, left, height, width }),
            _ => Err(invalid!("expected TOP,LEFT,HEIGHT,WIDTH (four integers)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILTINS: [(&str, &str); 1] =
        [("tiny", "name = \"tiny\"\ndescription = \"a test\"\n[source]\nkind = \"calpha\"\nalpha = 2.0\n")];

    #[test]
    fn sources_resolve_and_overrides_must_fit_the_kind() {
        let mut r = resolve_source("tiny", &BUILTINS).unwrap();
        assert_eq!(r.name, "tiny");
        let o = SourceOverrides { seed: Some(7), beta: Some(1.5), ..Default::default() };
        override_source(&mut r.source, &o).unwrap();
        let SourceSpec::Calpha(c) = &r.source else { panic!("{:?}", r.source) };
        assert_eq!((c.seed, c.alpha, c.beta), (7, 2.0, Some(1.5)));
        let bad = SourceOverrides { group_regex: Some("x".into()), ..Default::default() };
        let err = override_source(&mut r.source, &bad).unwrap_err();
        assert!(matches!(&err, Error::Usage(m) if m.contains("--group-regex applies to folder")), "{err}");
        let err = resolve_source("no-such-thing", &BUILTINS).unwrap_err();
        assert!(
            matches!(&err, Error::Usage(m) if m.contains("unknown source") && m.contains("tiny")),
            "{err}"
        );
        assert!(matches!(resolve_source("missing.toml", &BUILTINS), Err(Error::Usage(_))));
        let hub = resolve_source("hub:me/faces", &BUILTINS).unwrap();
        assert!(matches!(hub.source, SourceSpec::Hub(ref h) if h.repo == "me/faces"));
    }

    #[test]
    fn spectra_and_crops_parse() {
        assert_eq!("power:2".parse::<Spectrum>().unwrap(), Spectrum::PowerLaw { exponent: 2.0, scale: 1.0 });
        assert_eq!("flat:0.5".parse::<Spectrum>().unwrap(), Spectrum::Flat { variance: 0.5 });
        assert!("steep".parse::<Spectrum>().unwrap_err().to_string().contains("power:EXPONENT"));
        assert_eq!("1, 2,3,4".parse::<Crop>().unwrap(), Crop { top: 1, left: 2, height: 3, width: 4 });
        assert!("1,2".parse::<Crop>().is_err());
    }

    #[test]
    fn prepare_then_split_write_what_their_records_say() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("ds");
        let cfg = PrepareConfig {
            source: "tiny".into(),
            out: out.clone(),
            side: Some(8),
            count: Some(10),
            ..Default::default()
        };
        let p = prepare_dir(&cfg, &BUILTINS).unwrap();
        let info = InfoRecord::read(&out).unwrap();
        assert_eq!((p.record.count, p.record.height), (10, 8));
        assert_eq!(p.record.content_hash, info.manifest.content_hash);
        assert!(info.text().contains("content hash: "));
        let again = prepare_dir(&cfg, &BUILTINS).unwrap_err();
        assert!(matches!(again, Error::File(memgen_io::FileError::Refused { .. })), "{again}");
        let s = split_dir(&out, &[2, 4], 1, &tmp.path().join("run")).unwrap();
        let file: SplitFile = memgen_io::read_json(&s.split).unwrap();
        assert_eq!((file.splits.len(), s.side_a_images + s.side_b_images), (2, 10));
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SplitResult>(&text).unwrap(), s);
        assert_eq!(show_indices(10, 3, None), [0, 1, 2]);
        assert_eq!(show_indices(2, 3, Some(1)).len(), 2);
    }
}

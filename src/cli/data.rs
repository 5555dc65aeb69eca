//! `memgen data …`: prepare, info, show, split, recipes.

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use memgen_data::dataset::{read_manifest, PreparedDataset, StorageDtype};
use memgen_data::gaussian::{Basis, Spectrum};
use memgen_data::hub::HubEnv;
use memgen_data::idx::IdxConfig;
use memgen_data::prepare::{prepare, PrepareOptions};
use memgen_data::preprocess::{Crop, Resize};
use memgen_data::recipe::{Recipe, SourceSpec};
use memgen_data::split::{NestedSplit, SplitFile};
use memgen_data::{folder::FolderConfig, hub::HubConfig};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Recipes shipped in `datasets/`, compiled into the binary.
const BUILTIN_RECIPES: [(&str, &str); 6] = [
    ("celeba", include_str!("../../datasets/celeba.toml")),
    ("fashion-mnist", include_str!("../../datasets/fashion-mnist.toml")),
    ("fashion-mnist-idx", include_str!("../../datasets/fashion-mnist-idx.toml")),
    ("olivetti", include_str!("../../datasets/olivetti.toml")),
    ("calpha", include_str!("../../datasets/calpha.toml")),
    ("gaussian", include_str!("../../datasets/gaussian.toml")),
];

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Turn a source of images into a prepared dataset directory (images.safetensors + manifest.json).
    ///
    /// SOURCE is one of: a built-in recipe name (see `memgen data recipes`); a recipe file (*.toml);
    /// `hub:OWNER/NAME` (a Hugging Face dataset of parquet shards); `idx:PATH` (IDX file or directory);
    /// `calpha` or `gaussian` (synthetic generators, through their built-in recipes: choose --count and --side); or a directory of PNG/JPEG images
    /// (optionally written `folder:PATH`). Flags override the recipe's values.
    #[command(
        after_help = "Examples:\n  memgen data prepare calpha --count 3000 --side 16 --alpha 4 --out runs/calpha-16\n  \
memgen data prepare gaussian --count 2000 --side 8 --spectrum power:1:0.05 --out runs/gauss-8\n  \
memgen data prepare fashion-mnist --out runs/fashion-mnist/data\n  \
memgen data prepare datasets/olivetti.toml --side 32 --out runs/olivetti-32 --force"
    )]
    Prepare(Box<PrepareArgs>),
    /// Print a prepared dataset's manifest summary (with the global --json: the whole manifest, as
    /// "result": {"dir": .., "manifest": {..}}).
    #[command(after_help = "Examples:\n  memgen data info runs/demo/data\n  \
memgen --json data info runs/demo/data   # the whole manifest as JSON")]
    Info {
        /// Prepared dataset directory.
        dir: PathBuf,
    },
    /// Write a PNG grid of images from a prepared dataset.
    #[command(after_help = "Examples:\n  memgen data show runs/demo/data --out demo-data.png\n  \
memgen data show runs/demo/data --out demo-random.png --count 32 --cols 8 --scale 4 --seed 1")]
    Show(ShowArgs),
    /// Draw disjoint nested splits S_A(N), S_B(N) and write their exact indices to OUT/split.json.
    #[command(
        after_help = "Examples:\n  memgen data split runs/demo/data --n 1,10,100,1000 --out runs/demo-split\n  \
memgen data split runs/demo/data --n 10,100 --seed 3 --out runs/demo-split-3"
    )]
    Split(SplitArgs),
    /// List the built-in dataset recipes.
    #[command(after_help = "Examples:\n  memgen data recipes\n  \
memgen --json data recipes")]
    Recipes,
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Recipe name, recipe file, hub:OWNER/NAME, idx:PATH, calpha, gaussian, or an image directory.
    pub source: String,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing prepared dataset in --out.
    #[arg(long)]
    pub force: bool,
    /// Side length of the stored square images (resized if needed).
    #[arg(long)]
    pub side: Option<usize>,
    /// Read only the first COUNT images (required for calpha/gaussian unless the recipe sets it).
    #[arg(long)]
    pub count: Option<usize>,
    /// Crop window before resizing: TOP,LEFT,HEIGHT,WIDTH in source pixels.
    #[arg(long, value_parser = parse_crop)]
    pub crop: Option<Crop>,
    /// Resampling method for the resize.
    #[arg(long, value_enum)]
    pub resize: Option<ResizeArg>,
    /// Keep colour channels instead of converting to gray (mean of R, G, B).
    #[arg(long)]
    pub color: bool,
    /// Remove near-duplicates (pool to 20x20, drop one of each pair with |corr| > 0.95).
    #[arg(long, conflicts_with = "no_dedup")]
    pub dedup: bool,
    /// Keep near-duplicates even if the recipe removes them.
    #[arg(long)]
    pub no_dedup: bool,
    /// Storage dtype (auto: u8 when lossless, else f32).
    #[arg(long, value_enum, default_value_t = DtypeArg::Auto)]
    pub dtype: DtypeArg,
    /// Folder source: regex whose first capture group in each file name is the group key, e.g. 's(\d+)_'.
    #[arg(long)]
    pub group_regex: Option<String>,
    /// Hub source: revision (branch, tag or commit).
    #[arg(long)]
    pub revision: Option<String>,
    /// Hub source: file patterns in the repo ('*' and '?' wildcards), e.g. 'data/train-*.parquet'.
    #[arg(long, num_args = 1..)]
    pub files: Option<Vec<String>>,
    /// Hub source: the image column (struct{bytes, path}).
    #[arg(long)]
    pub column: Option<String>,
    /// Hub source: a column whose values are group keys.
    #[arg(long)]
    pub group_column: Option<String>,
    /// Hub source: use only the local cache (as HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Synthetic sources: seed of the generator.
    #[arg(long)]
    pub seed: Option<u64>,
    /// C^alpha: regularity alpha of the contour.
    #[arg(long)]
    pub alpha: Option<f64>,
    /// C^alpha: regularity of the backgrounds (default: alpha).
    #[arg(long)]
    pub beta: Option<f64>,
    /// C^alpha: constant backgrounds instead of filtered noise.
    #[arg(long)]
    pub constant_background: bool,
    /// Gaussian: mean of every pixel.
    #[arg(long)]
    pub mean: Option<f64>,
    /// Gaussian: covariance spectrum, `power:EXPONENT[:SCALE]` (lambda_k = SCALE k^-EXPONENT) or `flat:VARIANCE`.
    #[arg(long, value_parser = parse_spectrum)]
    pub spectrum: Option<Spectrum>,
    /// Gaussian: eigenbasis of the covariance.
    #[arg(long, value_enum)]
    pub basis: Option<BasisArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ResizeArg {
    Area,
    Bicubic,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
pub enum DtypeArg {
    Auto,
    U8,
    F32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BasisArg {
    Dct,
    Pixel,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Prepared dataset directory.
    pub dir: PathBuf,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of images to show.
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// Images per row.
    #[arg(long, default_value_t = 8)]
    pub cols: usize,
    /// Pixel upscaling factor.
    #[arg(long, default_value_t = 2)]
    pub scale: usize,
    /// Show a random selection drawn with this seed instead of the first images.
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct SplitArgs {
    /// Prepared dataset directory.
    pub dir: PathBuf,
    /// Training-set sizes N, comma separated, e.g. 1,10,100,1000.
    #[arg(long, value_delimiter = ',', required = true)]
    pub n: Vec<usize>,
    /// Seed of the split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run directory; the split is written to OUT/split.json.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Prepare(a) => run_prepare(*a),
        DataCommand::Info { dir } => run_info(&dir),
        DataCommand::Show(a) => run_show(a),
        DataCommand::Split(a) => run_split(a),
        DataCommand::Recipes => {
            let mut list = serde_json::Map::new();
            for (name, text) in BUILTIN_RECIPES {
                let r = Recipe::parse(text, Path::new(name))?;
                say!("{name:<18} {}", r.description);
                list.insert(name.to_string(), serde_json::Value::String(r.description));
            }
            super::output::result(serde_json::json!({ "recipes": list }));
            Ok(())
        }
    }
}

fn parse_crop(s: &str) -> std::result::Result<Crop, String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse().map_err(|_| format!("{p:?} is not a non-negative integer")))
        .collect::<std::result::Result<_, _>>()?;
    match v[..] {
        [top, left, height, width] => Ok(Crop { top, left, height, width }),
        _ => Err("expected TOP,LEFT,HEIGHT,WIDTH (four integers)".into()),
    }
}

pub(super) fn parse_spectrum(s: &str) -> std::result::Result<Spectrum, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |p: &str| p.parse::<f64>().map_err(|_| format!("{p:?} is not a number"));
    match parts[..] {
        ["power", e] => Ok(Spectrum::PowerLaw { exponent: num(e)?, scale: 1.0 }),
        ["power", e, sc] => Ok(Spectrum::PowerLaw { exponent: num(e)?, scale: num(sc)? }),
        ["flat", v] => Ok(Spectrum::Flat { variance: num(v)? }),
        _ => Err("expected power:EXPONENT[:SCALE] or flat:VARIANCE".into()),
    }
}

/// Resolve SOURCE into a recipe (built-in, file, or one built from the source form).
fn resolve_source(source: &str) -> Result<Recipe> {
    let simple = |name: &str, spec| Recipe {
        name: name.to_string(),
        description: String::new(),
        source: spec,
        preprocess: Default::default(),
        dedup: None,
        count: None,
    };
    if let Some((_, text)) = BUILTIN_RECIPES.iter().find(|(n, _)| *n == source) {
        return Ok(Recipe::parse(text, Path::new(source))?);
    }
    if source.ends_with(".toml") {
        super::output::input("SOURCE", Path::new(source), "a recipe file such as datasets/calpha.toml")?;
        return Ok(Recipe::load(Path::new(source))?);
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
    let names: Vec<&str> = BUILTIN_RECIPES.iter().map(|(n, _)| *n).collect();
    usage_bail!(
        "unknown source {source:?}: expected a recipe name ({}), a recipe file (*.toml), hub:OWNER/NAME, idx:PATH, or an image directory",
        names.join(", ")
    )
}

/// Apply the source-specific flags to `spec`; a flag that does not fit the source kind is an error.
fn override_source(spec: &mut SourceSpec, a: &PrepareArgs) -> Result<()> {
    let kind = match spec {
        SourceSpec::Folder(_) => "folder",
        SourceSpec::Hub(_) => "hub",
        SourceSpec::Idx(_) => "idx",
        SourceSpec::Calpha(_) => "calpha",
        SourceSpec::Gaussian(_) => "gaussian",
    };
    let given: [(&str, bool, &[&str]); 12] = [
        ("--group-regex", a.group_regex.is_some(), &["folder"]),
        ("--revision", a.revision.is_some(), &["hub"]),
        ("--files", a.files.is_some(), &["hub"]),
        ("--column", a.column.is_some(), &["hub"]),
        ("--group-column", a.group_column.is_some(), &["hub"]),
        ("--seed", a.seed.is_some(), &["calpha", "gaussian"]),
        ("--alpha", a.alpha.is_some(), &["calpha"]),
        ("--beta", a.beta.is_some(), &["calpha"]),
        ("--constant-background", a.constant_background, &["calpha"]),
        ("--mean", a.mean.is_some(), &["gaussian"]),
        ("--spectrum", a.spectrum.is_some(), &["gaussian"]),
        ("--basis", a.basis.is_some(), &["gaussian"]),
    ];
    if let Some((flag, _, kinds)) = given.iter().find(|(_, set, kinds)| *set && !kinds.contains(&kind)) {
        usage_bail!("{flag} applies to {} sources, but this source is {kind}", kinds.join("/"));
    }
    match spec {
        SourceSpec::Folder(c) => set(&mut c.group_regex, a.group_regex.clone().map(Some)),
        SourceSpec::Hub(c) => {
            set(&mut c.revision, a.revision.clone());
            set(&mut c.files, a.files.clone());
            set(&mut c.column, a.column.clone());
            set(&mut c.group_column, a.group_column.clone().map(Some));
        }
        SourceSpec::Idx(_) => {}
        SourceSpec::Calpha(c) => {
            set(&mut c.seed, a.seed);
            set(&mut c.alpha, a.alpha);
            set(&mut c.beta, a.beta.map(Some));
            c.constant_background |= a.constant_background;
        }
        SourceSpec::Gaussian(c) => {
            set(&mut c.seed, a.seed);
            set(&mut c.mean, a.mean);
            set(&mut c.spectrum, a.spectrum.clone());
            set(
                &mut c.basis,
                a.basis.map(|b| match b {
                    BasisArg::Dct => Basis::Dct,
                    BasisArg::Pixel => Basis::Pixel,
                }),
            );
        }
    }
    Ok(())
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

fn prepare_options(recipe: &Recipe, a: &PrepareArgs) -> PrepareOptions {
    let mut pre = recipe.preprocess.clone();
    set(&mut pre.side, a.side.map(Some));
    set(&mut pre.crop, a.crop.map(Some));
    set(
        &mut pre.resize,
        a.resize.map(|r| match r {
            ResizeArg::Area => Resize::Area,
            ResizeArg::Bicubic => Resize::Bicubic,
        }),
    );
    pre.grayscale &= !a.color;
    let dedup = match (a.dedup, a.no_dedup) {
        (true, _) => Some(recipe.dedup.unwrap_or_default()),
        (_, true) => None,
        _ => recipe.dedup,
    };
    PrepareOptions {
        preprocess: pre,
        dedup,
        count: a.count.or(recipe.count),
        dtype: match a.dtype {
            DtypeArg::Auto => None,
            DtypeArg::U8 => Some(StorageDtype::U8),
            DtypeArg::F32 => Some(StorageDtype::F32),
        },
        recipe: Some(recipe.name.clone()),
    }
}

fn run_prepare(a: PrepareArgs) -> Result<()> {
    if a.out.join(memgen_data::dataset::MANIFEST_FILE).exists() && !a.force {
        return Err(super::output::Refused(format!(
            "{} already holds a prepared dataset; use another --out, or pass --force to replace it",
            a.out.display()
        ))
        .into());
    }
    let mut recipe = resolve_source(&a.source)?;
    override_source(&mut recipe.source, &a)?;
    let opts = prepare_options(&recipe, &a);
    let mut hub = HubEnv::from_env();
    hub.offline |= a.offline;
    let start = Instant::now();
    let mut source = recipe
        .source
        .open(opts.preprocess.side, hub)
        .with_context(|| format!("opening source {:?}", a.source))?;
    let mut ds = prepare(source.as_mut(), &opts).with_context(|| format!("preparing {:?}", a.source))?;
    let prepared = start.elapsed();
    ds.write(&a.out).with_context(|| format!("writing {}", a.out.display()))?;
    let m = &ds.manifest;
    if let Some(d) = &m.dedup {
        eprintln!(
            "near-duplicates: dropped {} of {} (|corr| > {} at {}x{})",
            d.dropped, d.before, d.threshold, d.pool_side, d.pool_side
        );
    }
    say!(
        "prepared {} images of {}x{} ({:?}) in {:.2} s with {} threads (written in {:.2} s) -> {}",
        m.count,
        m.height,
        m.width,
        m.dtype,
        prepared.as_secs_f64(),
        super::threads(),
        (start.elapsed() - prepared).as_secs_f64(),
        a.out.display()
    );
    super::output::result(serde_json::json!({
        "out": a.out,
        "manifest": a.out.join(memgen_data::dataset::MANIFEST_FILE),
        "count": m.count,
        "channels": m.channels,
        "height": m.height,
        "width": m.width,
        "dtype": m.dtype,
        "content_hash": m.content_hash,
        "seconds": start.elapsed().as_secs_f64(),
    }));
    Ok(())
}

fn run_info(dir: &Path) -> Result<()> {
    super::output::input("DIR", dir, "a prepared dataset directory from `memgen data prepare`")?;
    let m = read_manifest(dir)?;
    super::output::result(serde_json::json!({ "dir": dir, "manifest": m }));
    say!("dataset:      {}", dir.display());
    say!("recipe:       {}", m.recipe.as_deref().unwrap_or("-"));
    say!(
        "source:       {} {}{}",
        m.source.kind,
        m.source.location,
        m.source.revision.as_ref().map(|r| format!(" @ {r}")).unwrap_or_default()
    );
    say!("images:       {} x {} channel(s) x {}x{} ({:?})", m.count, m.channels, m.height, m.width, m.dtype);
    let groups = m.groups.as_ref().map(|g| g.iter().collect::<std::collections::BTreeSet<_>>().len());
    say!("groups:       {}", groups.map(|g| g.to_string()).unwrap_or_else(|| "none".into()));
    if let Some(d) = &m.dedup {
        say!("dedup:        dropped {} of {} (|corr| > {})", d.dropped, d.before, d.threshold);
    }
    say!("preprocess:   {}", serde_json::to_string(&m.preprocess)?);
    say!("content hash: {}", m.content_hash);
    Ok(())
}

fn run_show(a: ShowArgs) -> Result<()> {
    use memgen_plot::{save_png, Grid, GridConfig};
    if a.count == 0 {
        return Err(super::output::usage("--count 0: expected at least 1 image"));
    }
    super::output::input("DIR", &a.dir, "a prepared dataset directory from `memgen data prepare`")?;
    let ds = PreparedDataset::read(&a.dir)?;
    let m = &ds.manifest;
    let count = a.count.min(m.count);
    let indices: Vec<usize> = match a.seed {
        Some(seed) => memgen_data::rng::permutation(m.count, seed).into_iter().take(count).collect(),
        None => (0..count).collect(),
    };
    let plane = m.height * m.width;
    let images: Vec<&[f32]> = indices.iter().map(|&i| &ds.image(i)[..plane]).collect();
    let grid = Grid { images: &images, height: m.height, width: m.width };
    let img = grid.render(&GridConfig { cols: a.cols, scale: a.scale, ..Default::default() })?;
    save_png(&img, &a.out)?;
    say!("wrote {} images to {}", images.len(), a.out.display());
    super::output::result(serde_json::json!({ "out": a.out, "images": indices }));
    Ok(())
}

fn run_split(a: SplitArgs) -> Result<()> {
    super::output::input("DIR", &a.dir, "a prepared dataset directory from `memgen data prepare`")?;
    let m = read_manifest(&a.dir)?;
    let split = NestedSplit::new(m.count, m.groups.as_deref(), a.seed);
    let file = SplitFile::build(&split, &a.n, a.dir.display().to_string(), m.content_hash.clone())
        .with_context(|| format!("splitting {}", a.dir.display()))?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let path = a.out.join("split.json");
    memgen_io::write_atomic(&path, serde_json::to_string_pretty(&file)?.as_bytes())?;
    say!(
        "wrote {} (sides of {} and {} images, {} + {} groups; N = {:?})",
        path.display(),
        split.order_a.len(),
        split.order_b.len(),
        split.groups_a,
        split.groups_b,
        a.n
    );
    super::output::result(serde_json::json!({
        "split": path,
        "n": a.n,
        "seed": a.seed,
        "side_a_images": split.order_a.len(),
        "side_b_images": split.order_b.len(),
        "groups_a": split.groups_a,
        "groups_b": split.groups_b,
    }));
    Ok(())
}

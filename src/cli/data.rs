//! `memgen data …`: prepare, info, show, split, recipes.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use memgen_data::dataset::{PreparedDataset, StorageDtype};
use memgen_data::gaussian::{Basis, Spectrum};
use memgen_data::preprocess::{Crop, Resize};
use memgen_data::stage::{self, InfoRecord, PrepareConfig, ShowRecord, SourceOverrides};
use std::path::PathBuf;

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
    #[arg(long)]
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
    #[arg(long)]
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
        DataCommand::Info { dir } => {
            super::output::input("DIR", &dir, "a prepared dataset directory from `memgen data prepare`")?;
            let info = InfoRecord::read(&dir)?;
            super::output::result(serde_json::to_value(&info)?);
            say_text!("{}", info.text());
            Ok(())
        }
        DataCommand::Show(a) => run_show(a),
        DataCommand::Split(a) => {
            super::output::input("DIR", &a.dir, "a prepared dataset directory from `memgen data prepare`")?;
            let r = stage::split_dir(&a.dir, &a.n, a.seed, &a.out)?;
            say!(
                "wrote {} (sides of {} and {} images, {} + {} groups; N = {:?})",
                r.split.display(),
                r.side_a_images,
                r.side_b_images,
                r.groups_a,
                r.groups_b,
                r.n
            );
            super::output::result(serde_json::to_value(&r)?);
            Ok(())
        }
        DataCommand::Recipes => {
            let (list, record) = stage::recipes(&BUILTIN_RECIPES)?;
            for (name, description) in list {
                say!("{name:<18} {description}");
            }
            super::output::result(serde_json::to_value(&record)?);
            Ok(())
        }
    }
}

/// The library's config of `memgen data prepare`'s flags.
fn prepare_config(a: PrepareArgs) -> PrepareConfig {
    PrepareConfig {
        source: a.source,
        out: a.out,
        force: a.force,
        side: a.side,
        count: a.count,
        crop: a.crop,
        resize: a.resize.map(|r| match r {
            ResizeArg::Area => Resize::Area,
            ResizeArg::Bicubic => Resize::Bicubic,
        }),
        color: a.color,
        dedup: match (a.dedup, a.no_dedup) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        dtype: match a.dtype {
            DtypeArg::Auto => None,
            DtypeArg::U8 => Some(StorageDtype::U8),
            DtypeArg::F32 => Some(StorageDtype::F32),
        },
        offline: a.offline,
        overrides: SourceOverrides {
            group_regex: a.group_regex,
            revision: a.revision,
            files: a.files,
            column: a.column,
            group_column: a.group_column,
            seed: a.seed,
            alpha: a.alpha,
            beta: a.beta,
            constant_background: a.constant_background,
            mean: a.mean,
            spectrum: a.spectrum,
            basis: a.basis.map(|b| match b {
                BasisArg::Dct => Basis::Dct,
                BasisArg::Pixel => Basis::Pixel,
            }),
        },
    }
}

fn run_prepare(a: PrepareArgs) -> Result<()> {
    let p = stage::prepare_dir(&prepare_config(a), &BUILTIN_RECIPES).map_err(data_error)?;
    let r = &p.record;
    if let Some(d) = &p.dedup {
        eprintln!(
            "near-duplicates: dropped {} of {} (|corr| > {} at {}x{})",
            d.dropped, d.before, d.threshold, d.pool_side, d.pool_side
        );
    }
    say!(
        "prepared {} images of {}x{} ({:?}) in {:.2} s with {} threads (written in {:.2} s) -> {}",
        r.count,
        r.height,
        r.width,
        r.dtype,
        p.prepare_seconds,
        super::threads(),
        p.write_seconds,
        r.out.display()
    );
    super::output::result(serde_json::to_value(r)?);
    Ok(())
}

/// A data error as the command line reports it: a usage error (exit code 2), a refusal (3), or a
/// failure (1).
fn data_error(e: memgen_data::Error) -> anyhow::Error {
    match e {
        memgen_data::Error::Usage(msg) => super::output::usage(msg),
        memgen_data::Error::File(f) => f.into(),
        e => e.into(),
    }
}

fn run_show(a: ShowArgs) -> Result<()> {
    use memgen_plot::{save_png, Grid, GridConfig};
    if a.count == 0 {
        return Err(super::output::usage("--count 0: expected at least 1 image"));
    }
    super::output::input("DIR", &a.dir, "a prepared dataset directory from `memgen data prepare`")?;
    let ds = PreparedDataset::read(&a.dir)?;
    let m = &ds.manifest;
    let indices = stage::show_indices(m.count, a.count, a.seed);
    let plane = m.height * m.width;
    let images: Vec<&[f32]> = indices.iter().map(|&i| &ds.image(i)[..plane]).collect();
    let grid = Grid { images: &images, height: m.height, width: m.width };
    let img = grid.render(&GridConfig { cols: a.cols, scale: a.scale, ..Default::default() })?;
    save_png(&img, &a.out)?;
    say!("wrote {} images to {}", images.len(), a.out.display());
    super::output::result(serde_json::to_value(ShowRecord { out: a.out, images: indices })?);
    Ok(())
}

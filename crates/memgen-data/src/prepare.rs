//! `prepare`: source → checked, preprocessed, optionally de-duplicated [`PreparedDataset`].

use crate::dataset::{lossless_dtype, Manifest, PreparedDataset, StorageDtype, FORMAT};
use crate::dedup::{dedup, DedupConfig, DedupReport};
use crate::preprocess::PreprocessConfig;
use crate::source::{ImageSource, SourceImage};
use crate::{invalid, Image, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;

/// Everything `prepare` needs besides the source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PrepareOptions {
    pub preprocess: PreprocessConfig,
    /// Near-duplicate removal, or None to keep every image.
    pub dedup: Option<DedupConfig>,
    /// Read only the first `count` images (required for generators).
    pub count: Option<usize>,
    /// Storage dtype; None picks U8 when that is lossless, else F32.
    pub dtype: Option<StorageDtype>,
    /// Recipe name for the manifest.
    pub recipe: Option<String>,
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    memgen_io::progress::bar(len, what, "", false)
}

/// Load, check and preprocess the images of `source`, then remove near-duplicates if asked.
pub fn prepare(source: &mut dyn ImageSource, opts: &PrepareOptions) -> Result<PreparedDataset> {
    let items = source.load(opts.count)?;
    if items.is_empty() {
        return Err(invalid!("the source {} yielded no images", source.provenance().location));
    }
    check_same_size(&items)?;
    let bar = progress_bar(items.len() as u64, "preprocessing");
    let images: Vec<Image> = items
        .par_iter()
        .map(|it| {
            bar.inc(1);
            opts.preprocess.apply(&it.image).map_err(|e| invalid!("{}: {e}", it.name))
        })
        .collect::<Result<_>>()?;
    bar.finish_and_clear();
    let (keep, report) = match &opts.dedup {
        Some(cfg) => run_dedup(&images, &items, cfg)?,
        None => ((0..images.len()).collect(), None),
    };
    let groups = collect_groups(&items, &keep)?;
    let first = &images[0];
    let mut pixels = Vec::with_capacity(keep.len() * first.pixels.len());
    for &i in &keep {
        pixels.extend(planar(&images[i]));
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        recipe: opts.recipe.clone(),
        source: source.provenance(),
        preprocess: opts.preprocess.clone(),
        count: keep.len(),
        channels: first.channels,
        height: first.height,
        width: first.width,
        dtype: opts.dtype.unwrap_or_else(|| lossless_dtype(&pixels)),
        names: keep.iter().map(|&i| items[i].name.clone()).collect(),
        groups,
        dedup: report,
        content_hash: String::new(),
        memgen_version: env!("CARGO_PKG_VERSION").into(),
    };
    Ok(PreparedDataset { manifest, pixels })
}

/// All source images must share one size and channel count (the first differing one is named).
fn check_same_size(items: &[SourceImage]) -> Result<()> {
    let f = &items[0];
    let key = |im: &Image| (im.height, im.width, im.channels);
    match items.iter().find(|it| key(&it.image) != key(&f.image)) {
        Some(it) => Err(invalid!(
            "images of mixed sizes: {} is {}x{} with {} channel(s), but {} is {}x{} with {}",
            it.name,
            it.image.height,
            it.image.width,
            it.image.channels,
            f.name,
            f.image.height,
            f.image.width,
            f.image.channels
        )),
        None => Ok(()),
    }
}

fn run_dedup(
    images: &[Image],
    items: &[SourceImage],
    cfg: &DedupConfig,
) -> Result<(Vec<usize>, Option<DedupReport>)> {
    let refs: Vec<&Image> = images.iter().collect();
    let keep = dedup(&refs, cfg)?;
    let mut kept = vec![false; images.len()];
    keep.iter().for_each(|&i| kept[i] = true);
    let dropped_names: Vec<String> =
        (0..images.len()).filter(|&i| !kept[i]).map(|i| items[i].name.clone()).collect();
    let report = DedupReport {
        pool_side: cfg.pool_side,
        threshold: cfg.threshold,
        before: images.len(),
        dropped: dropped_names.len(),
        dropped_names,
    };
    Ok((keep, Some(report)))
}

fn collect_groups(items: &[SourceImage], keep: &[usize]) -> Result<Option<Vec<String>>> {
    let with = items.iter().filter(|it| it.group.is_some()).count();
    if with == 0 {
        return Ok(None);
    }
    if let Some(it) = items.iter().find(|it| it.group.is_none()) {
        return Err(invalid!("{} has no group key while {with} other images have one", it.name));
    }
    Ok(Some(keep.iter().filter_map(|&i| items[i].group.clone()).collect()))
}

/// Interleaved (H, W, C) samples → planar (C, H, W).
fn planar(img: &Image) -> Vec<f32> {
    if img.channels == 1 {
        return img.pixels.clone();
    }
    (0..img.channels).flat_map(|k| img.pixels.iter().skip(k).step_by(img.channels).copied()).collect()
}

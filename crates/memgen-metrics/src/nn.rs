//! Exact k-nearest-neighbour search of M query images among N base images (d pixels each).
//!
//! All three metrics reduce to one inner product per pair, computed as a blocked matrix product
//! S = Q̂ · B̂ᵀ over prepared rows:
//! - [`Metric::Pearson`]: rows centred and scaled to unit norm, so S_ij = corr(q_i, b_j);
//! - [`Metric::Cosine`]: rows scaled to unit norm, S_ij = ⟨q_i, b_j⟩ / (‖q_i‖ ‖b_j‖);
//! - [`Metric::L2`]: raw rows, ‖q − b‖² = ‖q‖² + ‖b‖² − 2⟨q, b⟩ (‖q‖² is the same for every j, so the
//!   ranking key is ‖b‖² − 2⟨q, b⟩).
//!
//! **Two passes.** The candidate pass splits the base set into blocks of `block_rows` images spread
//! over the rayon threads; each thread prepares its block, computes S for chunks of `query_rows`
//! queries in f32 with a single-threaded GEMM (`memgen-kernels`), and keeps the best `k + margin`
//! candidates of every query; the threads' lists are merged. The refinement pass recomputes each
//! candidate's value in f64 straight from the pixels and returns the best k, ordered best first, ties
//! broken by the smaller base index. The result equals f64 brute force unless more than `margin` base
//! images sit within the f32 rounding of the candidate pass (~1e-6 relative) of a true neighbour.
//!
//! **Memory.** Besides the inputs: the prepared queries (M·d f32), and per thread one prepared base
//! block (block_rows·d f32), one score block (query_rows·block_rows f32) and candidate lists
//! (M·(k + margin) entries). With the defaults and d = 1024: 4M bytes + 16 MiB + small per thread,
//! whatever N is.
//!
//! **Constant images** (all pixels equal) have no direction: their Pearson correlation with any image
//! is defined as 0, and so is the cosine of an all-zero image. Never NaN.

use crate::{Error, Result};
use memgen_kernels::gemm::{matmul, View};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The similarity or distance that ranks neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Pearson correlation over pixels (higher is nearer).
    Pearson,
    /// Plain cosine similarity (higher is nearer).
    Cosine,
    /// Euclidean distance ‖a − b‖ (lower is nearer).
    L2,
}

impl Metric {
    /// True when a larger value means a nearer neighbour.
    pub fn is_similarity(self) -> bool {
        !matches!(self, Metric::L2)
    }

    /// The metric's value for one pair, in f64 from the raw pixels.
    pub fn value(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Metric::Pearson => correlation(a, b),
            Metric::Cosine => cosine(a, b),
            Metric::L2 => l2_distance(a, b),
        }
    }
}

/// Pearson correlation over pixels: ⟨a − ā, b − b̄⟩ / (‖a − ā‖ ‖b − b̄‖), in f64; 0 when either image is
/// constant.
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    if is_constant(a) || is_constant(b) {
        return 0.0;
    }
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ratio(ab, aa, bb)
}

/// Cosine similarity ⟨a, b⟩ / (‖a‖ ‖b‖), in f64; 0 when either image is all zeros.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ratio(ab, aa, bb)
}

/// Euclidean distance ‖a − b‖, in f64.
pub fn l2_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>().sqrt()
}

/// ab / sqrt(aa · bb), clamped to [-1, 1]; 0 when a norm is zero.
fn ratio(ab: f64, aa: f64, bb: f64) -> f64 {
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    (ab / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0)
}

fn is_constant(a: &[f32]) -> bool {
    a.iter().all(|&v| v == a[0])
}

fn mean(a: &[f32]) -> f64 {
    a.iter().map(|&v| v as f64).sum::<f64>() / a.len().max(1) as f64
}

/// A set of images of `dim` pixels: all rows of `data`, or the rows listed in `rows`.
#[derive(Debug, Clone, Copy)]
pub struct Images<'a> {
    data: &'a [f32],
    dim: usize,
    rows: Option<&'a [usize]>,
}

impl<'a> Images<'a> {
    /// Every row of `data` (row-major, `dim` values each).
    pub fn new(data: &'a [f32], dim: usize) -> Result<Self> {
        if dim == 0 || data.len() % dim != 0 {
            return Err(Error::Invalid(format!(
                "{} values do not split into images of {dim} pixels",
                data.len()
            )));
        }
        Ok(Images { data, dim, rows: None })
    }

    /// The rows `rows` of `data` (positions in the set are positions in `rows`).
    pub fn subset(data: &'a [f32], dim: usize, rows: &'a [usize]) -> Result<Self> {
        let all = Images::new(data, dim)?;
        if let Some(&bad) = rows.iter().find(|&&r| r >= all.len()) {
            return Err(Error::Invalid(format!("row {bad} is out of range for {} images", all.len())));
        }
        Ok(Images { rows: Some(rows), ..all })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.rows.map_or(self.data.len() / self.dim, <[usize]>::len)
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pixels per image.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Image `i` of the set.
    pub fn get(&self, i: usize) -> &'a [f32] {
        let r = self.source_row(i);
        &self.data[r * self.dim..(r + 1) * self.dim]
    }

    /// The row of the underlying data that image `i` of the set is.
    pub fn source_row(&self, i: usize) -> usize {
        self.rows.map_or(i, |rows| rows[i])
    }
}

/// Parameters of [`search`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchConfig {
    /// Neighbours per query (capped at the base set's size).
    pub k: usize,
    pub metric: Metric,
    /// Base images per block of the candidate pass.
    pub block_rows: usize,
    /// Queries per score block of the candidate pass.
    pub query_rows: usize,
    /// Extra candidates kept per query for the f64 refinement.
    pub margin: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig { k: 1, metric: Metric::Pearson, block_rows: 2048, query_rows: 1024, margin: 8 }
    }
}

/// The k nearest base images of every query, best first: row i is `index[i*k..(i+1)*k]` (positions
/// in the base set) with `value[..]` the metric's f64 value (similarity or L2 distance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbours {
    pub k: usize,
    pub metric: Metric,
    pub index: Vec<usize>,
    pub value: Vec<f64>,
}

impl Neighbours {
    /// Neighbours of query `i`: (base positions, values).
    pub fn of(&self, i: usize) -> (&[usize], &[f64]) {
        (&self.index[i * self.k..(i + 1) * self.k], &self.value[i * self.k..(i + 1) * self.k])
    }
}

/// Exact top-k neighbours of every query among `base` (see the module docs for the method, the
/// memory bound and the tie rule). Uses the global rayon pool.
pub fn search(queries: &Images, base: &Images, cfg: &SearchConfig) -> Result<Neighbours> {
    check(queries, base, cfg)?;
    let k = cfg.k.min(base.len());
    let keep = (k + cfg.margin).min(base.len());
    let candidates = candidate_pass(queries, base, cfg, keep);
    let (index, value) = refine(queries, base, cfg.metric, k, candidates);
    Ok(Neighbours { k, metric: cfg.metric, index, value })
}

fn check(queries: &Images, base: &Images, cfg: &SearchConfig) -> Result<()> {
    if queries.dim() != base.dim() {
        return Err(Error::Invalid(format!(
            "queries have {} pixels per image but the base set has {}",
            queries.dim(),
            base.dim()
        )));
    }
    if base.is_empty() {
        return Err(Error::Invalid("the base set holds no image".into()));
    }
    if cfg.k == 0 || cfg.block_rows == 0 || cfg.query_rows == 0 {
        return Err(Error::Invalid("k, block_rows and query_rows must be at least 1".into()));
    }
    for (name, set) in [("query", queries), ("base", base)] {
        if let Some(i) = (0..set.len()).find(|&i| set.get(i).iter().any(|v| !v.is_finite())) {
            return Err(Error::Invalid(format!("{name} image {i} holds a NaN or infinite pixel")));
        }
    }
    Ok(())
}

/// Candidates of one query: (key, base position), ascending key (smaller = nearer).
type Candidates = Vec<(f32, usize)>;

/// The f32 pass: the best `keep` candidates of every query by the key of the blocked product. Base
/// blocks are spread over the rayon threads; each thread multiplies its blocks with a single-threaded
/// GEMM and keeps its own candidate lists, merged at the end. Candidates are ordered by (key, position),
/// a total order, so the kept set does not depend on how the blocks were spread.
fn candidate_pass(queries: &Images, base: &Images, cfg: &SearchConfig, keep: usize) -> Vec<Candidates> {
    let (q, _) = prepare(queries, 0..queries.len(), cfg.metric);
    let starts: Vec<usize> = (0..base.len()).step_by(cfg.block_rows).collect();
    starts
        .into_par_iter()
        .fold(
            || vec![Candidates::with_capacity(keep + 1); queries.len()],
            |mut lists, b0| {
                let b1 = (b0 + cfg.block_rows).min(base.len());
                scan_block(&q, queries.dim(), base, b0..b1, cfg, keep, &mut lists);
                lists
            },
        )
        .reduce(|| vec![Candidates::new(); queries.len()], |a, b| merge(a, b, keep))
}

/// Offer every image of base rows `range` to every query's list.
fn scan_block(
    q: &[f32],
    d: usize,
    base: &Images,
    range: std::ops::Range<usize>,
    cfg: &SearchConfig,
    keep: usize,
    lists: &mut [Candidates],
) {
    let b0 = range.start;
    let (rows, sq_norms) = prepare(base, range, cfg.metric);
    let nb = sq_norms.len();
    let mut scores = Vec::new();
    for q0 in (0..lists.len()).step_by(cfg.query_rows) {
        let q1 = (q0 + cfg.query_rows).min(lists.len());
        scores.resize((q1 - q0) * nb, 0.0f32);
        // Sᵀ = B̂ · Q̂ᵀ, stored as S (queries x base block) row-major.
        let rhs = View::transposed(&q[q0 * d..q1 * d], d);
        matmul(nb, q1 - q0, d, &mut scores, (1, nb), false, View::rows(&rows, d), rhs, 1);
        for (list, s) in lists[q0..q1].iter_mut().zip(scores.chunks(nb)) {
            for (j, &dot) in s.iter().enumerate() {
                let key = match cfg.metric {
                    Metric::L2 => sq_norms[j] - 2.0 * dot,
                    _ => -dot,
                };
                offer(list, keep, key, b0 + j);
            }
        }
    }
}

/// Merge two threads' candidate lists query by query.
fn merge(mut a: Vec<Candidates>, b: Vec<Candidates>, keep: usize) -> Vec<Candidates> {
    for (la, lb) in a.iter_mut().zip(b) {
        for (key, pos) in lb {
            offer(la, keep, key, pos);
        }
    }
    a
}

/// Insert (key, pos) into the list of at most `keep` entries, ascending in (key, position).
fn offer(list: &mut Candidates, keep: usize, key: f32, pos: usize) {
    let before = |&(k, p): &(f32, usize)| k < key || (k == key && p < pos);
    if list.len() == keep && list.last().is_some_and(before) {
        return;
    }
    let at = list.partition_point(before);
    list.insert(at, (key, pos));
    list.truncate(keep);
}

/// Rows `range` of `set` prepared for `metric` (centred and/or unit-norm, f32), with their squared
/// norms (used by L2).
fn prepare(set: &Images, range: std::ops::Range<usize>, metric: Metric) -> (Vec<f32>, Vec<f32>) {
    let d = set.dim();
    let mut out = vec![0.0f32; range.len() * d];
    let sq: Vec<f32> = out
        .par_chunks_mut(d)
        .zip(range.into_par_iter())
        .map(|(dst, i)| prepare_row(set.get(i), metric, dst))
        .collect();
    (out, sq)
}

/// One prepared row (f32: it only ranks candidates; the refinement recomputes in f64); returns ‖src‖²
/// for L2.
fn prepare_row(src: &[f32], metric: Metric, dst: &mut [f32]) -> f32 {
    let (shift, degenerate) = match metric {
        Metric::Pearson => (lane_sum(src, |v| v) / src.len() as f32, is_constant(src)),
        Metric::Cosine => (0.0, src.iter().all(|&v| v == 0.0)),
        Metric::L2 => {
            dst.copy_from_slice(src);
            return lane_sum(src, |v| v * v);
        }
    };
    let norm = lane_sum(src, |v| (v - shift) * (v - shift)).sqrt();
    if degenerate || norm == 0.0 {
        dst.fill(0.0);
        return 0.0;
    }
    let inv = 1.0 / norm;
    for (o, &v) in dst.iter_mut().zip(src) {
        *o = (v - shift) * inv;
    }
    0.0
}

/// Σ f(v) over `v` with 16 independent f32 accumulators (vectorises; the error is that of f32 sums of
/// d/16 terms, harmless for ranking candidates).
fn lane_sum(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The f64 pass: exact values of each query's candidates, best k first, ties by smaller position.
fn refine(
    queries: &Images,
    base: &Images,
    metric: Metric,
    k: usize,
    candidates: Vec<Candidates>,
) -> (Vec<usize>, Vec<f64>) {
    let rows: Vec<Vec<(f64, usize)>> = candidates
        .into_par_iter()
        .enumerate()
        .map(|(i, list)| {
            let q = queries.get(i);
            let mut exact: Vec<(f64, usize)> =
                list.into_iter().map(|(_, j)| (metric.value(q, base.get(j)), j)).collect();
            sort_best_first(&mut exact, metric);
            exact.truncate(k);
            exact
        })
        .collect();
    let index = rows.iter().flat_map(|r| r.iter().map(|&(_, j)| j)).collect();
    let value = rows.iter().flat_map(|r| r.iter().map(|&(v, _)| v)).collect();
    (index, value)
}

/// Best first under `metric` (descending similarity or ascending distance), ties by smaller position.
pub fn sort_best_first(v: &mut [(f64, usize)], metric: Metric) {
    v.sort_by(|a, b| {
        let by_value = if metric.is_similarity() { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) };
        by_value.then(a.1.cmp(&b.1))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// f64 brute force over every pair, same order rule.
    fn brute(q: &Images, b: &Images, metric: Metric, k: usize) -> Neighbours {
        let k = k.min(b.len());
        let (mut index, mut value) = (vec![], vec![]);
        for i in 0..q.len() {
            let mut all: Vec<(f64, usize)> =
                (0..b.len()).map(|j| (metric.value(q.get(i), b.get(j)), j)).collect();
            sort_best_first(&mut all, metric);
            index.extend(all[..k].iter().map(|x| x.1));
            value.extend(all[..k].iter().map(|x| x.0));
        }
        Neighbours { k, metric, index, value }
    }

    fn random(rng: &mut ChaCha8Rng, n: usize, d: usize) -> Vec<f32> {
        (0..n * d).map(|_| rng.random::<f32>()).collect()
    }

    const METRICS: [Metric; 3] = [Metric::Pearson, Metric::Cosine, Metric::L2];

    #[test]
    fn equals_brute_force_on_random_sets_with_small_blocks() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for &(m, n, d, k) in &[(1, 1, 1, 1), (7, 13, 5, 3), (20, 50, 17, 5), (33, 200, 64, 10), (5, 3, 9, 7)]
        {
            let (qd, bd) = (random(&mut rng, m, d), random(&mut rng, n, d));
            let (q, b) = (Images::new(&qd, d).unwrap(), Images::new(&bd, d).unwrap());
            for metric in METRICS {
                for (block_rows, query_rows) in [(4096, 1024), (7, 3), (1, 1)] {
                    let cfg = SearchConfig { k, metric, block_rows, query_rows, margin: 4 };
                    let got = search(&q, &b, &cfg).unwrap();
                    assert_eq!(got, brute(&q, &b, metric, k), "{m}x{n}x{d} k={k} {metric:?} {block_rows}");
                }
            }
        }
    }

    #[test]
    fn thread_count_does_not_change_the_result() {
        let (d, mut rng) = (33, ChaCha8Rng::seed_from_u64(5));
        let (qd, bd) = (random(&mut rng, 40, d), random(&mut rng, 500, d));
        let (q, b) = (Images::new(&qd, d).unwrap(), Images::new(&bd, d).unwrap());
        let cfg = SearchConfig { k: 5, block_rows: 16, query_rows: 7, margin: 2, metric: Metric::L2 };
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| search(&q, &b, &cfg).unwrap())
        };
        let one = run(1);
        assert_eq!(one, run(3));
        assert_eq!(one, brute(&q, &b, Metric::L2, 5));
    }

    #[test]
    fn ties_resolve_to_the_smaller_index() {
        // Base rows 2, 5 and 9 are the same image; a query equal to it must list them in that order.
        let d = 16;
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut bd = random(&mut rng, 12, d);
        let dup: Vec<f32> = bd[2 * d..3 * d].to_vec();
        for r in [5, 9] {
            bd[r * d..(r + 1) * d].copy_from_slice(&dup);
        }
        let b = Images::new(&bd, d).unwrap();
        let q = Images::new(&dup, d).unwrap();
        for metric in METRICS {
            let got =
                search(&q, &b, &SearchConfig { k: 4, metric, block_rows: 5, ..Default::default() }).unwrap();
            assert_eq!(&got.index[..3], &[2, 5, 9], "{metric:?}");
            assert_eq!(got, brute(&q, &b, metric, 4));
        }
    }

    #[test]
    fn constant_images_correlate_zero_without_nan() {
        let d = 10;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut bd = random(&mut rng, 6, d);
        bd[3 * d..4 * d].fill(0.7); // a constant base image
        bd[4 * d..5 * d].fill(0.0); // an all-zero base image
        let mut qd = random(&mut rng, 2, d);
        qd[d..].fill(0.25); // a constant query
        let (q, b) = (Images::new(&qd, d).unwrap(), Images::new(&bd, d).unwrap());
        for metric in [Metric::Pearson, Metric::Cosine] {
            let got = search(&q, &b, &SearchConfig { k: 6, metric, ..Default::default() }).unwrap();
            assert!(got.value.iter().all(|v| v.is_finite()));
            assert_eq!(got, brute(&q, &b, metric, 6));
        }
        assert_eq!(correlation(&qd[d..], &bd[..d]), 0.0);
        assert_eq!(correlation(&bd[3 * d..4 * d], &bd[..d]), 0.0);
        assert_eq!(cosine(&bd[4 * d..5 * d], &bd[..d]), 0.0);
        // The constant query correlates 0 with everything: neighbours are the first six, in order.
        let got = search(&q, &b, &SearchConfig { k: 6, ..Default::default() }).unwrap();
        assert_eq!(got.of(1).0, &[0, 1, 2, 3, 4, 5]);
        assert!(got.of(1).1.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn pearson_is_invariant_to_brightness_and_contrast() {
        let a = [0.1f32, 0.5, 0.2, 0.9, 0.3];
        let b: Vec<f32> = a.iter().map(|v| 0.2 + 0.5 * v).collect();
        let c: Vec<f32> = a.iter().map(|v| 1.0 - v).collect();
        assert!((correlation(&a, &b) - 1.0).abs() < 1e-6);
        assert!((correlation(&a, &c) + 1.0).abs() < 1e-6);
        assert!(cosine(&a, &c) < 0.9);
    }

    #[test]
    fn subsets_report_positions_and_source_rows() {
        let d = 4;
        let data: Vec<f32> = (0..5 * d).map(|i| ((i * 37) % 11) as f32).collect();
        let rows = [4, 1, 3];
        let b = Images::subset(&data, d, &rows).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b.get(0), &data[16..20]);
        assert_eq!(b.source_row(2), 3);
        let q = Images::new(&data[4..8], d).unwrap(); // row 1 itself
        let got = search(&q, &b, &SearchConfig { k: 1, metric: Metric::L2, ..Default::default() }).unwrap();
        assert_eq!((got.index[0], got.value[0]), (1, 0.0));
        assert!(Images::subset(&data, d, &[5]).is_err());
        assert!(Images::new(&data, 3).is_err());
        let other = Images::new(&data, 5).unwrap();
        assert!(search(&q, &other, &SearchConfig::default()).is_err());
    }

    #[test]
    fn matches_brute_force_when_many_images_are_near_ties() {
        // Base images are one image plus tiny perturbations: the f32 pass cannot order them, the f64
        // refinement must.
        let d = 256;
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let base0 = random(&mut rng, 1, d);
        let mut bd = Vec::new();
        for _ in 0..40 {
            bd.extend(base0.iter().map(|&v| v + 1e-3 * rng.random::<f32>()));
        }
        let (q, b) = (Images::new(&base0, d).unwrap(), Images::new(&bd, d).unwrap());
        for metric in METRICS {
            let got =
                search(&q, &b, &SearchConfig { k: 3, metric, margin: 40, ..Default::default() }).unwrap();
            assert_eq!(got, brute(&q, &b, metric, 3), "{metric:?}");
        }
    }
}

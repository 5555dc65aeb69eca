//! Memorization of a model's samples and generalization across two models (DESIGN.md, Metrics).
//!
//! - Memorization of a sample x against a training set S: the best correlation max_{y∈S} corr(x, y)
//!   (with the neighbour that attains it) and the L2 ratio ‖x − NN1‖ / ‖x − NN2‖ of its two nearest
//!   training images in Euclidean distance; memorized when the ratio is below 1/3 (Yoon et al. 2023,
//!   Gu et al. 2023) or, by the correlation criterion, when the best correlation exceeds a threshold.
//! - Generalization across models A and B trained on disjoint sets and driven by the same noise:
//!   corr(x_A, x_B) for each noise draw (Kadkhodaie et al.: the two models agree once N is large).
//! - Reference without any network: each training image of S_A against its nearest neighbour in S_B,
//!   what "as close as a novel image of this distribution gets" looks like for the data.

use crate::nn::{correlation, search, Images, Metric, SearchConfig};
use crate::stats::{fraction, in_range, Summary};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Memorization scores of one sample against one training set. Indices are rows of the data the
/// training set was taken from (dataset indices).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorizationScore {
    /// max_y corr(x, y).
    pub corr: f64,
    /// The training image attaining `corr`.
    pub corr_nn: usize,
    /// ‖x − NN1‖ for the nearest training image in L2.
    pub l2_nn1: f64,
    /// That nearest image.
    pub l2_nn: usize,
    /// ‖x − NN2‖, the second nearest (`None` for a one-image training set).
    pub l2_nn2: Option<f64>,
    /// ‖x − NN1‖ / ‖x − NN2‖; 0 when both are 0 (the sample is a duplicated training image); `None`
    /// for a one-image training set.
    pub l2_ratio: Option<f64>,
}

/// Thresholds of the summaries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompareConfig {
    /// A sample is memorized by correlation when its best correlation exceeds this; two samples of
    /// one noise draw agree when their correlation exceeds it.
    pub corr_threshold: f64,
    /// A sample is memorized by distance when its L2 ratio is below this.
    pub ratio_threshold: f64,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig { corr_threshold: 0.95, ratio_threshold: 1.0 / 3.0 }
    }
}

/// Scores of every sample against `train`: one Pearson search (k = 1) and one L2 search (k = 2).
pub fn memorization(samples: &Images, train: &Images) -> Result<Vec<MemorizationScore>> {
    let corr = search(samples, train, &SearchConfig { k: 1, metric: Metric::Pearson, ..Default::default() })?;
    let l2 = search(samples, train, &SearchConfig { k: 2, metric: Metric::L2, ..Default::default() })?;
    Ok((0..samples.len())
        .map(|i| {
            let ((ci, cv), (li, lv)) = (corr.of(i), l2.of(i));
            let l2_nn2 = lv.get(1).copied();
            MemorizationScore {
                corr: cv[0],
                corr_nn: train.source_row(ci[0]),
                l2_nn1: lv[0],
                l2_nn: train.source_row(li[0]),
                l2_nn2,
                l2_ratio: l2_nn2.map(|d2| if d2 == 0.0 { 0.0 } else { lv[0] / d2 }),
            }
        })
        .collect())
}

/// Distribution of the memorization scores of a set of samples against one training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorizationSummary {
    pub corr: Summary,
    pub l2_ratio: Summary,
    /// Fraction of samples with L2 ratio < `ratio_threshold` (0 when no ratio is defined).
    pub memorized_by_ratio: f64,
    /// Fraction of samples with best correlation > `corr_threshold`.
    pub memorized_by_corr: f64,
}

impl MemorizationSummary {
    /// Summary of `scores` under the thresholds of `cfg`.
    pub fn of(scores: &[MemorizationScore], cfg: &CompareConfig) -> Self {
        let corr: Vec<f64> = scores.iter().map(|s| s.corr).collect();
        let ratio: Vec<f64> = scores.iter().filter_map(|s| s.l2_ratio).collect();
        MemorizationSummary {
            corr: Summary::of(&corr),
            l2_ratio: Summary::of(&ratio),
            memorized_by_ratio: fraction(ratio.iter().copied(), |r| r < cfg.ratio_threshold),
            memorized_by_corr: fraction(corr.iter().copied(), |c| c > cfg.corr_threshold),
        }
    }
}

/// Everything measured for the sample pair of one noise draw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairScores {
    /// Sample A against its own training set S_A, and against S_B.
    pub a_own: MemorizationScore,
    pub a_other: MemorizationScore,
    /// Sample B against S_B, and against S_A.
    pub b_own: MemorizationScore,
    pub b_other: MemorizationScore,
    /// corr(x_A, x_B).
    pub corr_ab: f64,
}

/// One side's summaries: against its own training set and against the other model's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideSummary {
    pub own: MemorizationSummary,
    pub other: MemorizationSummary,
    /// Fraction of this side's samples whose every pixel lies in [−0.25, 1.25]
    /// ([`crate::stats::IN_RANGE`]; `None` in files written before it was recorded).
    #[serde(default)]
    pub in_range: Option<f64>,
}

/// Training images of S_A against their nearest neighbour (by correlation) in S_B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// corr(y, NN_{S_B}(y)) for each y in S_A, in the order of S_A.
    pub corr: Vec<f64>,
    /// The neighbours (dataset indices).
    pub nn: Vec<usize>,
    pub summary: Summary,
}

/// The full two-model comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub config: CompareConfig,
    /// One entry per noise draw k (sample k of A and sample k of B).
    pub pairs: Vec<PairScores>,
    pub a: SideSummary,
    pub b: SideSummary,
    /// Distribution of corr(x_A, x_B).
    pub corr_ab: Summary,
    /// Fraction of draws with corr(x_A, x_B) > `corr_threshold`.
    pub agree: f64,
    pub reference: Reference,
    /// The novelty reference: fresh images of the same data, held out from both training sets,
    /// against their best-correlated image in S_A ([`reference`]`(held_out, S_A)`): what a novel
    /// image scores, next to which the samples' correlation to their own set is read. `None` when no
    /// held-out image was given.
    #[serde(default)]
    pub novelty: Option<Reference>,
}

/// corr(a_k, b_k) for every k.
pub fn pair_correlations(a: &Images, b: &Images) -> Result<Vec<f64>> {
    if a.len() != b.len() || a.dim() != b.dim() {
        return Err(Error::Invalid(format!(
            "paired sets differ: {} images of {} pixels vs {} of {}",
            a.len(),
            a.dim(),
            b.len(),
            b.dim()
        )));
    }
    Ok((0..a.len()).map(|k| correlation(a.get(k), b.get(k))).collect())
}

/// Every image of `train_a` against its best-correlated image in `train_b`: the reference S_A vs
/// S_B of [`Comparison::reference`], and with held-out images as `train_a` and S_A as `train_b` the
/// novelty reference of [`Comparison::novelty`].
pub fn reference(train_a: &Images, train_b: &Images) -> Result<Reference> {
    let nn = search(train_a, train_b, &SearchConfig { k: 1, metric: Metric::Pearson, ..Default::default() })?;
    let summary = Summary::of(&nn.value);
    let rows = nn.index.iter().map(|&j| train_b.source_row(j)).collect();
    Ok(Reference { corr: nn.value, nn: rows, summary })
}

/// Compare models A and B from their samples of the same noise draws (sample k of each from draw k)
/// and their training sets.
pub fn compare(
    samples_a: &Images,
    samples_b: &Images,
    train_a: &Images,
    train_b: &Images,
    cfg: &CompareConfig,
) -> Result<Comparison> {
    let corr_ab = pair_correlations(samples_a, samples_b)?;
    let (a_own, a_other) = (memorization(samples_a, train_a)?, memorization(samples_a, train_b)?);
    let (b_own, b_other) = (memorization(samples_b, train_b)?, memorization(samples_b, train_a)?);
    let side = |own: &[MemorizationScore], other: &[MemorizationScore], samples: &Images| SideSummary {
        own: MemorizationSummary::of(own, cfg),
        other: MemorizationSummary::of(other, cfg),
        in_range: Some(fraction((0..samples.len()).map(|k| samples.get(k)), in_range)),
    };
    let (a, b) = (side(&a_own, &a_other, samples_a), side(&b_own, &b_other, samples_b));
    let pairs = (0..corr_ab.len())
        .map(|k| PairScores {
            a_own: a_own[k].clone(),
            a_other: a_other[k].clone(),
            b_own: b_own[k].clone(),
            b_other: b_other[k].clone(),
            corr_ab: corr_ab[k],
        })
        .collect();
    Ok(Comparison {
        config: *cfg,
        pairs,
        a,
        b,
        corr_ab: Summary::of(&corr_ab),
        agree: fraction(corr_ab.iter().copied(), |c| c > cfg.corr_threshold),
        reference: reference(train_a, train_b)?,
        novelty: None,
    })
}

/// Scores of the samples of two models (or two baselines) driven by the same noise, pooled over the
/// comparisons of several noise seeds ([`pool`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PooledScores {
    /// Noise draws (samples per model).
    pub draws: usize,
    /// Best correlation of each sample of A with its own training set S_A, and of B with S_B.
    pub a_own: Summary,
    pub b_own: Summary,
    /// Best correlation of each sample of A with the other set S_B (and of B with S_A).
    pub a_other: Summary,
    pub b_other: Summary,
    /// Fraction of samples (A and B together) whose best correlation with their own set exceeds the
    /// threshold, and whose L2 NN1/NN2 ratio is below the ratio threshold.
    pub memorized_by_corr: f64,
    pub memorized_by_ratio: f64,
    /// corr(x_A, x_B) per draw, and the fraction of draws above the threshold.
    pub corr_ab: Summary,
    pub agree: f64,
    /// Each image of S_A against its best-correlated image of S_B: how close the two sets are.
    pub sets: Summary,
    /// Fraction of the samples (A and B together) whose every pixel lies in [−0.25, 1.25]; `None`
    /// when a compare.json predates the record.
    #[serde(default)]
    pub in_range: Option<f64>,
    /// Held-out images (in neither training set) against their best-correlated image of S_A: what a
    /// fresh image scores (the first comparison's; `None` when it has none).
    #[serde(default)]
    pub novelty: Option<Summary>,
}

/// The one pooling of comparisons: every draw of every comparison in `cmps` (one per noise seed)
/// counts once. Memorized fractions take the samples of A and B together against their own sets,
/// at the thresholds of the first comparison; `sets` and `novelty` are the first comparison's (they
/// do not depend on the noise); `None` when `cmps` is empty.
pub fn pool(cmps: &[Comparison]) -> Option<PooledScores> {
    let first = cmps.first()?;
    let cfg = first.config;
    let pairs: Vec<&PairScores> = cmps.iter().flat_map(|c| c.pairs.iter()).collect();
    let col = |f: &dyn Fn(&PairScores) -> f64| -> Vec<f64> { pairs.iter().map(|p| f(p)).collect() };
    let own = pairs.iter().flat_map(|p| [p.a_own.corr, p.b_own.corr]);
    let ratios = pairs.iter().flat_map(|p| [p.a_own.l2_ratio, p.b_own.l2_ratio]).flatten();
    let ab = col(&|p| p.corr_ab);
    Some(PooledScores {
        draws: pairs.len(),
        a_own: Summary::of(&col(&|p| p.a_own.corr)),
        b_own: Summary::of(&col(&|p| p.b_own.corr)),
        a_other: Summary::of(&col(&|p| p.a_other.corr)),
        b_other: Summary::of(&col(&|p| p.b_other.corr)),
        memorized_by_corr: fraction(own, |c| c > cfg.corr_threshold),
        memorized_by_ratio: fraction(ratios, |r| r < cfg.ratio_threshold),
        agree: fraction(ab.iter().copied(), |c| c > cfg.corr_threshold),
        corr_ab: Summary::of(&ab),
        sets: first.reference.summary.clone(),
        in_range: pooled_in_range(cmps),
        novelty: first.novelty.as_ref().map(|r| r.summary.clone()),
    })
}

/// The in-range fraction of all samples of `cmps` (A and B of every comparison, each weighted by
/// its number of draws); `None` when one of them lacks it.
fn pooled_in_range(cmps: &[Comparison]) -> Option<f64> {
    let (mut inside, mut total) = (0.0, 0usize);
    for c in cmps {
        inside += (c.a.in_range? + c.b.in_range?) * c.pairs.len() as f64;
        total += 2 * c.pairs.len();
    }
    (total > 0).then(|| inside / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn gaussian(seed: u64, n: usize, d: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d).map(|_| StandardNormal.sample(&mut rng)).collect()
    }

    #[test]
    fn a_model_returning_training_images_is_fully_memorized() {
        let d = 64;
        let data = gaussian(1, 30, d);
        let (train_a, train_b): (Vec<usize>, Vec<usize>) = ((0..10).collect(), (10..20).collect());
        // Samples are training images of A in another order, some repeated.
        let picks = [3usize, 7, 7, 0, 9, 2];
        let samples: Vec<f32> = picks.iter().flat_map(|&i| data[i * d..(i + 1) * d].to_vec()).collect();
        let s = Images::new(&samples, d).unwrap();
        let (ta, tb) =
            (Images::subset(&data, d, &train_a).unwrap(), Images::subset(&data, d, &train_b).unwrap());
        let scores = memorization(&s, &ta).unwrap();
        for (sc, &p) in scores.iter().zip(&picks) {
            assert!((sc.corr - 1.0).abs() < 1e-12);
            assert_eq!((sc.corr_nn, sc.l2_nn, sc.l2_nn1, sc.l2_ratio), (p, p, 0.0, Some(0.0)));
        }
        let cfg = CompareConfig::default();
        let sum = MemorizationSummary::of(&scores, &cfg);
        assert_eq!((sum.memorized_by_corr, sum.memorized_by_ratio), (1.0, 1.0));
        // Against the other (independent) set the same samples are not memorized.
        let other = MemorizationSummary::of(&memorization(&s, &tb).unwrap(), &cfg);
        assert_eq!((other.memorized_by_corr, other.memorized_by_ratio), (0.0, 0.0));
        assert!(other.corr.max.unwrap() < 0.6);
    }

    #[test]
    fn identical_models_agree_and_independent_noise_does_not() {
        let d = 1024;
        let train = gaussian(2, 40, d);
        let (ia, ib): (Vec<usize>, Vec<usize>) = ((0..20).collect(), (20..40).collect());
        let (ta, tb) = (Images::subset(&train, d, &ia).unwrap(), Images::subset(&train, d, &ib).unwrap());
        let sa = gaussian(3, 200, d);
        let a = Images::new(&sa, d).unwrap();
        let cfg = CompareConfig::default();
        let same = compare(&a, &a, &ta, &tb, &cfg).unwrap();
        assert!(same.pairs.iter().all(|p| (p.corr_ab - 1.0).abs() < 1e-12));
        assert_eq!(same.agree, 1.0);
        let sb = gaussian(4, 200, d);
        let b = Images::new(&sb, d).unwrap();
        let indep = compare(&a, &b, &ta, &tb, &cfg).unwrap();
        // corr of independent Gaussian vectors: mean 0, sd 1/sqrt(d) ≈ 0.031; mean of 200 ≈ ±0.002.
        assert!(indep.corr_ab.mean.unwrap().abs() < 0.01, "{:?}", indep.corr_ab);
        assert!(indep.corr_ab.max.unwrap() < 0.15 && indep.corr_ab.min.unwrap() > -0.15);
        assert_eq!(indep.agree, 0.0);
        assert_eq!(indep.a.own.memorized_by_corr, 0.0);
        // The reference of two independent noise sets is near 0 too, and indexes S_B.
        assert_eq!(indep.reference.corr.len(), 20);
        assert!(indep.reference.nn.iter().all(|j| (20..40).contains(j)));
        assert!(indep.reference.summary.max.unwrap() < 0.2);
    }

    #[test]
    fn l2_ratio_is_nn1_over_nn2() {
        // 1-D "images" of two pixels: x = (0, 0); training points at distance 1, 3 and 5.
        let data = [1.0f32, 0.0, 0.0, 3.0, 5.0, 0.0];
        let t = Images::new(&data, 2).unwrap();
        let x = [0.0f32, 0.0];
        let s = memorization(&Images::new(&x, 2).unwrap(), &t).unwrap();
        assert_eq!((s[0].l2_nn1, s[0].l2_nn2, s[0].l2_ratio), (1.0, Some(3.0), Some(1.0 / 3.0)));
        assert_eq!(s[0].corr, 0.0); // x is constant
        let one = memorization(&Images::new(&x, 2).unwrap(), &Images::new(&data[..2], 2).unwrap()).unwrap();
        assert_eq!(one[0].l2_ratio, None);
        assert!(pair_correlations(&t, &Images::new(&x, 2).unwrap()).is_err());
    }

    #[test]
    fn pooling_counts_every_draw_of_every_seed_once() {
        let d = 64;
        let data = gaussian(5, 20, d);
        let (ia, ib): (Vec<usize>, Vec<usize>) = ((0..10).collect(), (10..20).collect());
        let (ta, tb) = (Images::subset(&data, d, &ia).unwrap(), Images::subset(&data, d, &ib).unwrap());
        let cfg = CompareConfig::default();
        // Seed 1: 3 draws where A copies its set (memorized) and B is noise; seed 2: 5 noise draws.
        let copies: Vec<f32> =
            [1usize, 4, 4].iter().flat_map(|&i| data[i * d..(i + 1) * d].to_vec()).collect();
        let noise1 = gaussian(6, 3, d);
        let c1 =
            compare(&Images::new(&copies, d).unwrap(), &Images::new(&noise1, d).unwrap(), &ta, &tb, &cfg)
                .unwrap();
        let (n2a, n2b) = (gaussian(7, 5, d), gaussian(8, 5, d));
        let c2 =
            compare(&Images::new(&n2a, d).unwrap(), &Images::new(&n2b, d).unwrap(), &ta, &tb, &cfg).unwrap();
        let p = pool(&[c1.clone(), c2.clone()]).unwrap();
        assert_eq!(p.draws, 8);
        // 3 memorized samples of A among the 16 samples of A and B.
        assert_eq!(p.memorized_by_corr, 3.0 / 16.0);
        assert_eq!(p.a_own.count, 8);
        let all_ab: Vec<f64> = c1.pairs.iter().chain(&c2.pairs).map(|x| x.corr_ab).collect();
        assert_eq!(p.corr_ab, Summary::of(&all_ab));
        assert_eq!(
            p.in_range.unwrap(),
            (c1.a.in_range.unwrap() * 3.0
                + c1.b.in_range.unwrap() * 3.0
                + c2.a.in_range.unwrap() * 5.0
                + c2.b.in_range.unwrap() * 5.0)
                / 16.0
        );
        assert_eq!(p.sets, c1.reference.summary);
        // One comparison pools to its own numbers.
        let one = pool(std::slice::from_ref(&c1)).unwrap();
        assert_eq!(one.agree, c1.agree);
        assert_eq!(one.memorized_by_corr, (c1.a.own.memorized_by_corr + c1.b.own.memorized_by_corr) / 2.0);
        assert!(pool(&[]).is_none());
    }
}

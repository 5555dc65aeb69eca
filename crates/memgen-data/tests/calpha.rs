//! Tests of the C^alpha generator (memgen_data::calpha).

use memgen_data::calpha::{contour, contour_rows, generate, generate_parts, CalphaConfig, CalphaSource};
use memgen_data::{Error, ImageSource};

fn cfg(alpha: f64, constant_background: bool, seed: u64) -> CalphaConfig {
    CalphaConfig { alpha, beta: None, constant_background, seed }
}

#[test]
fn pixels_lie_in_unit_interval() {
    for &side in &[4usize, 5, 16, 33] {
        for &alpha in &[1.0, 2.0, 4.0] {
            for &constant in &[false, true] {
                for k in 0..10 {
                    let img = generate(&cfg(alpha, constant, 7), side, k);
                    assert_eq!((img.height, img.width, img.channels), (side, side, 1));
                    assert_eq!(img.pixels.len(), side * side);
                    assert!(
                        img.pixels.iter().all(|v| (0.0..=1.0).contains(v)),
                        "side {side} alpha {alpha} k {k}"
                    );
                }
            }
        }
    }
}

#[test]
fn same_seed_and_index_give_same_bits() {
    let c = cfg(2.5, false, 11);
    let bits = |img: &memgen_data::Image| img.pixels.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&generate(&c, 24, 3)), bits(&generate(&c, 24, 3)));
    assert_ne!(generate(&c, 24, 3), generate(&c, 24, 4));
    assert_ne!(generate(&c, 24, 3), generate(&cfg(2.5, false, 12), 24, 3));
}

#[test]
fn a_prefix_of_a_larger_draw_equals_a_smaller_draw() {
    let mut small = CalphaSource::new(cfg(3.0, false, 5), 16).unwrap();
    let mut large = CalphaSource::new(cfg(3.0, false, 5), 16).unwrap();
    let a = small.load(Some(5)).unwrap();
    let b = large.load(Some(40)).unwrap();
    assert_eq!((a.len(), b.len()), (5, 40));
    assert_eq!(a[..], b[..5]);
    for (k, s) in b.iter().enumerate() {
        assert_eq!(s.name, format!("calpha#{k}"));
        assert_eq!(s.group, None);
        assert_eq!(s.image, generate(&cfg(3.0, false, 5), 16, k as u64));
    }
}

#[test]
fn image_k_draws_its_contour_first_from_the_item_stream() {
    let c = cfg(2.0, false, 31);
    for k in [0u64, 1, 57] {
        let mut rng = memgen_data::rng::for_item(31, k);
        assert_eq!(generate_parts(&c, 16, k).contour, contour(2.0, 16, &mut rng));
    }
}

#[test]
fn mask_boundary_is_the_rounded_contour() {
    for k in 0..50 {
        let side = 20;
        let p = generate_parts(&cfg(1.5, false, 3), side, k);
        assert_eq!(p.rows, contour_rows(&p.contour, side));
        for c in 0..side {
            let first_one = (0..side).find(|&r| p.mask[r * side + c] == 1.0).unwrap_or(side);
            assert_eq!(first_one, p.rows[c], "image {k} column {c}");
            assert!((0..side).all(|r| p.mask[r * side + c] == if r < p.rows[c] { 0.0 } else { 1.0 }));
        }
    }
}

#[test]
fn blurred_mask_and_image_follow_the_formulas() {
    let side = 12;
    let c = cfg(1.0, false, 9);
    for k in 0..20 {
        let p = generate_parts(&c, side, k);
        let img = generate(&c, side, k);
        let m = |r: usize, col: usize| p.mask[r.min(side - 1) * side + col.min(side - 1)];
        for r in 0..side {
            for col in 0..side {
                let i = r * side + col;
                let want = (m(r, col) + m(r + 1, col) + m(r, col + 1) + m(r + 1, col + 1)) / 4.0;
                assert_eq!(p.blurred_mask[i], want);
                let px = p.b1[i] * want + p.b2[i] * (1.0 - want);
                assert!((img.pixels[i] as f64 - px).abs() < 1e-6);
            }
        }
    }
}

#[test]
fn contour_rows_round_half_to_even_and_clamp() {
    // side 8: r = round(8 c) + 4.
    let c = [0.0, 0.0625, 0.1875, -0.0625, 0.3, -1.0, 1.0, -0.49, f64::NAN];
    assert_eq!(contour_rows(&c, 8), vec![4, 4, 6, 4, 6, 0, 8, 0, 0]);
    // odd side: floor(side / 2) = 2.
    assert_eq!(contour_rows(&[0.0, 0.2], 5), vec![2, 3]);
}

/// Mean power spectrum E|DFT(c)_k|^2, k = 0..=side/2, over `draws` contours (a direct DFT, independent
/// of the FFT used by the generator).
fn mean_power(alpha: f64, side: usize, draws: u64, seed: u64) -> Vec<f64> {
    let mut power = vec![0.0; side / 2 + 1];
    for k in 0..draws {
        let mut rng = memgen_data::rng::for_item(seed, k);
        let c = contour(alpha, side, &mut rng);
        assert_eq!(c.len(), side);
        for (f, p) in power.iter_mut().enumerate() {
            let (mut re, mut im) = (0.0, 0.0);
            for (i, &v) in c.iter().enumerate() {
                let ph = -2.0 * std::f64::consts::PI * (f * i) as f64 / side as f64;
                re += v * ph.cos();
                im += v * ph.sin();
            }
            *p += (re * re + im * im) / draws as f64;
        }
    }
    power
}

/// Least-squares (slope, intercept) of log p_k against log k for k in `ks`.
fn loglog_fit(power: &[f64], ks: std::ops::RangeInclusive<usize>) -> (f64, f64) {
    let pts: Vec<(f64, f64)> = ks.map(|k| ((k as f64).ln(), power[k].ln())).collect();
    let n = pts.len() as f64;
    let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let slope = sxy / sxx;
    (slope, my - slope * mx)
}

/// The contour's spectrum decays as k^(-2 alpha): E|DFT(c)_k|^2 = (S/3) k^(-2 alpha) exactly for k >= 1
/// (u is white with variance 1/3, the filter is k^-alpha, ifft divides by S). Fit over k = 1..24 at S = 64
/// (k = 0 and the top quarter of frequencies left out), mean power over 2000 draws. Measured over 20 seeds x
/// alpha in {1, 2, 4} (and at S = 128, k = 1..48): |slope + 2 alpha| <= 0.012, level within 3.3% of S/3.
/// Tolerances 0.05 and 10%: a wrong exponent (alpha instead of 2 alpha, a filter on the wrong bins, a
/// missing 1/S) is off by far more.
#[test]
fn contour_power_spectrum_decays_as_k_to_minus_two_alpha() {
    let side = 64;
    for &alpha in &[1.0, 2.0, 4.0] {
        let power = mean_power(alpha, side, 2000, 17);
        let (slope, intercept) = loglog_fit(&power, 1..=24);
        eprintln!(
            "alpha {alpha}: slope {slope:.4} (want {}), power at k=1 {:.3} (want {:.3})",
            -2.0 * alpha,
            intercept.exp(),
            side as f64 / 3.0
        );
        assert!((slope + 2.0 * alpha).abs() < 0.05, "alpha {alpha}: slope {slope}");
        // The level, too: (S/3) at k = 1, within 10%.
        assert!(
            (intercept.exp() / (side as f64 / 3.0) - 1.0).abs() < 0.1,
            "alpha {alpha}: intercept {intercept}"
        );
    }
}

/// Mean |r_{i+1} - r_i| over the contour rows of `n` generated images (recovered from their masks).
fn roughness(alpha: f64, side: usize, n: u64) -> f64 {
    let mut total = 0.0;
    for k in 0..n {
        let p = generate_parts(&cfg(alpha, false, 21), side, k);
        let rows: Vec<usize> =
            (0..side).map(|c| (0..side).find(|&r| p.mask[r * side + c] == 1.0).unwrap_or(side)).collect();
        total += rows.windows(2).map(|w| w[0].abs_diff(w[1]) as f64).sum::<f64>() / (side - 1) as f64;
    }
    total / n as f64
}

#[test]
fn rough_contours_for_small_alpha_smooth_for_large() {
    let (r1, r2, r4) = (roughness(1.0, 64, 200), roughness(2.0, 64, 200), roughness(4.0, 64, 200));
    eprintln!("mean |r_(i+1) - r_i| at S = 64: alpha 1 {r1:.3}, alpha 2 {r2:.3}, alpha 4 {r4:.3}");
    assert!(r1 > 2.0 * r4, "alpha 1 {r1} vs alpha 4 {r4}");
    assert!(r1 > r2 && r2 > r4);
}

#[test]
fn background_ranges_are_one_to_u_and_zero_to_u_prime() {
    let side = 16;
    let mut region1_bright = 0;
    for k in 0..200 {
        let p = generate_parts(&cfg(2.0, false, 4), side, k);
        let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let (bright, dark) = if p.region1_bright { (&p.b1, &p.b2) } else { (&p.b2, &p.b1) };
        assert_eq!(max(bright), 1.0, "image {k}");
        assert_eq!(min(dark), 0.0, "image {k}");
        assert!(min(bright) >= 0.0 && min(bright) < 1.0 && max(dark) <= 1.0 && max(dark) > 0.0);
        region1_bright += p.region1_bright as usize;
    }
    // The coin is fair: 200 flips, 5 standard deviations = 35.
    assert!((65..=135).contains(&region1_bright), "{region1_bright}");
}

#[test]
fn constant_backgrounds_are_constant_and_cover_the_unit_interval() {
    let side = 8;
    let (mut lo, mut hi, mut b1_above_b2) = (1.0f64, 0.0f64, 0);
    for k in 0..400 {
        let p = generate_parts(&cfg(3.0, true, 2), side, k);
        assert!(p.b1.iter().all(|&v| v == p.b1[0]) && p.b2.iter().all(|&v| v == p.b2[0]));
        let (a, b) = (p.b1[0], p.b2[0]);
        assert!((0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b));
        lo = lo.min(a.min(b));
        hi = hi.max(a.max(b));
        b1_above_b2 += (a > b) as usize;
    }
    // Two independent U[0,1]: region 1 is the brighter one half of the time.
    assert!(lo < 0.05 && hi > 0.95 && (150..=250).contains(&b1_above_b2), "{lo} {hi} {b1_above_b2}");
}

#[test]
fn beta_changes_only_the_backgrounds() {
    let a = CalphaConfig { alpha: 2.0, beta: None, constant_background: false, seed: 8 };
    let b = CalphaConfig { beta: Some(1.0), ..a.clone() };
    let same = CalphaConfig { beta: Some(2.0), ..a.clone() };
    let (pa, pb) = (generate_parts(&a, 16, 0), generate_parts(&b, 16, 0));
    assert_eq!(pa.contour, pb.contour);
    assert_ne!(pa.b1, pb.b1);
    assert_eq!(generate(&a, 16, 0), generate(&same, 16, 0));
}

fn invalid_message(cfg: CalphaConfig, side: usize) -> String {
    match CalphaSource::new(cfg, side) {
        Err(Error::Invalid(msg)) => msg,
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn config_validation_names_the_parameter_and_value() {
    let ok = CalphaConfig::default();
    assert!(CalphaSource::new(ok.clone(), 4).is_ok());
    let msg = invalid_message(ok.clone(), 3);
    assert!(msg.contains("side") && msg.contains('3'), "{msg}");
    for alpha in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let msg = invalid_message(CalphaConfig { alpha, ..ok.clone() }, 16);
        assert!(msg.contains("alpha") && msg.contains(&alpha.to_string()), "{msg}");
    }
    for beta in [0.0, -2.0, f64::NAN] {
        let msg = invalid_message(CalphaConfig { beta: Some(beta), ..ok.clone() }, 16);
        assert!(msg.contains("beta") && msg.contains(&beta.to_string()), "{msg}");
    }
}

#[test]
fn provenance_and_count() {
    let c = CalphaConfig { alpha: 3.0, beta: Some(1.5), constant_background: true, seed: 42 };
    let mut src = CalphaSource::new(c.clone(), 32).unwrap();
    let prov = src.provenance();
    assert_eq!((prov.kind.as_str(), prov.location.as_str(), prov.revision), ("calpha", "calpha", None));
    let mut params = prov.params.as_object().unwrap().clone();
    assert_eq!(params.remove("side"), Some(serde_json::json!(32)));
    let back: CalphaConfig = serde_json::from_value(serde_json::Value::Object(params)).unwrap();
    assert_eq!(back, c);
    match src.load(None) {
        Err(Error::Invalid(msg)) => assert!(msg.contains("count"), "{msg}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(src.load(Some(0)).unwrap().is_empty());
}

#[test]
fn config_serde_defaults_and_unknown_fields() {
    let d = CalphaConfig::default();
    assert_eq!(d, CalphaConfig { alpha: 4.0, beta: None, constant_background: false, seed: 0 });
    let c: CalphaConfig = serde_json::from_str(r#"{"alpha": 2}"#).unwrap();
    assert_eq!(c, CalphaConfig { alpha: 2.0, ..d.clone() });
    let t: CalphaConfig = toml::from_str("alpha = 1.5\nbeta = 3\nseed = 9").unwrap();
    assert_eq!(t, CalphaConfig { alpha: 1.5, beta: Some(3.0), constant_background: false, seed: 9 });
    assert!(serde_json::from_str::<CalphaConfig>(r#"{"alpha": 2, "gamma": 1}"#).is_err());
    assert!(serde_json::from_str::<CalphaConfig>(r#"{"seed": 2}"#).is_err(), "alpha is required");
}

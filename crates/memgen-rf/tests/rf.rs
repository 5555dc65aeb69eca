//! Checks of memgen-rf against closed forms, finite differences and independent integrators.

use faer::Mat;
use memgen_rf::dsm::{self, DsmConfig, PopulationConfig};
use memgen_rf::flow::{gradient_descent, initial, row_major, GradientFlow};
use memgen_rf::kl::{self, Grid, OdeConfig, SdeConfig};
use memgen_rf::{FeatureConfig, Mixture, RandomFeatures, RfScore, ScoreField};

fn small_problem(m: usize, n: usize) -> (RandomFeatures, Vec<f64>, DsmConfig) {
    let feats = RandomFeatures::new(&FeatureConfig::default(), 1, m).unwrap();
    let xs = Mixture::parse("mixture:mu=3").unwrap().sample(n, 11);
    (feats, xs, DsmConfig { draws: 6, ..Default::default() })
}

#[test]
fn dsm_gradient_matches_central_differences_of_the_pointwise_loss() {
    for d in [1, 2] {
        let feats = RandomFeatures::new(&FeatureConfig::default(), d, 9).unwrap();
        let xs = Mixture::parse(&format!("mixture:mu=3,dim={d}")).unwrap().sample(7, 5);
        let cfg = DsmConfig { draws: 4, ..Default::default() };
        let q = &dsm::empirical(&feats, &xs, &[7], &cfg).unwrap()[0];
        let a = initial(d, 9, 2.0, 3);
        let grad = q.gradient(&a);
        let h = 1e-4;
        for i in 0..d {
            for j in 0..9 {
                let (mut ap, mut am) = (row_major(&a), row_major(&a));
                ap[i * 9 + j] += h;
                am[i * 9 + j] -= h;
                let fd = (dsm::loss_direct(&feats, &xs, &cfg, &ap)
                    - dsm::loss_direct(&feats, &xs, &cfg, &am))
                    / (2.0 * h);
                assert!(
                    (fd - grad[(i, j)]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "d {d} ({i},{j}): {fd} vs {}",
                    grad[(i, j)]
                );
            }
        }
    }
}

/// RK4 integration of dA/dτ = −∇L(A) with `steps` steps up to τ.
fn rk4_flow(q: &dsm::Quadratic, a0: &Mat<f64>, tau: f64, steps: usize) -> Mat<f64> {
    let h = tau / steps as f64;
    let f = |a: &Mat<f64>| -q.gradient(a);
    let mut a = a0.clone();
    for _ in 0..steps {
        let k1 = f(&a);
        let k2 = f(&(&a + faer::Scale(h / 2.0) * &k1));
        let k3 = f(&(&a + faer::Scale(h / 2.0) * &k2));
        let k4 = f(&(&a + faer::Scale(h) * &k3));
        a += faer::Scale(h / 6.0) * (k1 + faer::Scale(2.0) * k2 + faer::Scale(2.0) * k3 + k4);
    }
    a
}

#[test]
fn closed_form_gradient_flow_equals_rk4_and_small_step_gd() {
    // m = 40 features and nK = 18 points: G is singular, so null directions are exercised too.
    let (feats, xs, cfg) = small_problem(40, 3);
    let q = &dsm::empirical(&feats, &xs, &[3], &cfg).unwrap()[0];
    let a0 = initial(1, 40, 1.0, 9);
    let flow = GradientFlow::new(q, &a0).unwrap();
    assert!(flow.values.iter().filter(|v| **v == 0.0).count() >= 40 - 18);
    let lmax = flow.values.iter().copied().fold(0.0, f64::max);
    // Up to several time constants of the fastest direction.
    let tau = 8.0 * 1600.0 / (2.0 * lmax);
    let closed = flow.at(tau);
    let rk = rk4_flow(q, &a0, tau, 400);
    let scale = closed.norm_max();
    assert!((&closed - &rk).norm_max() < 1e-8 * scale, "RK4: {}", (&closed - &rk).norm_max());
    // GD with η = τ/s approximates the flow with an O(η) error: 10x smaller η, ~10x smaller error.
    let err = |s: usize| (&gradient_descent(q, &a0, tau / s as f64, s) - &closed).norm_max();
    let (e1, e2) = (err(200), err(2000));
    assert!(e2 < 1e-3 * scale && e2 < 0.2 * e1 && e2 > 0.05 * e1, "GD errors {e1}, {e2} (scale {scale})");
    // τ = 0 is A(0); the loss falls along the flow.
    assert!((&flow.at(0.0) - &a0).norm_max() < 1e-12 * a0.norm_max());
    assert!(q.loss(&closed) < q.loss(&flow.at(tau / 10.0)) && q.loss(&flow.at(tau / 10.0)) < q.loss(&a0));
}

/// 1/(T − t0) ∫ E_{p_t} ‖s − ∇ln p_t‖² dt by quadrature through the ScoreField trait (independent of
/// the Gram matrices): midpoint in ln t, grid in x.
fn score_error(model: &dyn ScoreField, target: &Mixture, cfg: &DsmConfig) -> f64 {
    let grid = Grid::covering(target, 300).unwrap();
    let xs = grid.all_points();
    let q = 40;
    let span = (cfg.t_max / cfg.t0).ln();
    let mut total = 0.0;
    for k in 0..q {
        let t = cfg.t0 * (span * (k as f64 + 0.5) / q as f64).exp();
        let (mut s, mut div) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        model.eval(&xs, t, &mut s, &mut div);
        let pt = target.diffused(t);
        for (i, x) in xs.iter().enumerate() {
            let mut true_s = [0.0];
            pt.score_div(&[*x], &mut true_s);
            total += cfg.weight(t) / q as f64
                * pt.density(&[*x])
                * grid.cell_volume()
                * (s[i] - true_s[0]).powi(2);
        }
    }
    total
}

#[test]
fn learned_score_approaches_the_true_score_as_n_and_m_grow() {
    let target = Mixture::parse("mixture:mu=3").unwrap();
    let cfg = DsmConfig { draws: 16, ..Default::default() };
    let xs = target.sample(3000, 4);
    let feats = RandomFeatures::new(&FeatureConfig::default(), 1, 512).unwrap();
    let ns = [30, 3000];
    let forms = dsm::empirical(&feats, &xs, &ns, &cfg).unwrap();
    let pop = dsm::population(&feats, &target, &cfg, &PopulationConfig { grid: 300, times: 40 }).unwrap();
    let taus = memgen_rf::experiment::log_grid(1e1, 1e9, 17);
    // Best score error over τ of the model with (n, m): direct quadrature, and the population form.
    let best = |n_idx: usize, m: usize| -> (f64, f64) {
        let f = feats.truncated(m);
        let flow = GradientFlow::new(&forms[n_idx].truncated(m), &Mat::zeros(1, m)).unwrap();
        let p = pop.truncated(m);
        let (i, form_err) =
            taus.iter().map(|&t| p.loss(&flow.at(t))).enumerate().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        (score_error(&RfScore::new(&f, row_major(&flow.at(taus[i]))), &target, &cfg), form_err)
    };
    let zero = score_error(&RfScore::new(&feats.truncated(8), vec![0.0; 8]), &target, &cfg);
    let (small, small_form) = best(0, 16);
    let (mid_n, _) = best(0, 512);
    let (large, large_form) = best(1, 512);
    // The population form and the direct quadrature agree (different t and x discretisations).
    assert!((small - small_form).abs() < 0.05 * small && (large - large_form).abs() < 0.05 * large + 1e-4);
    assert!(large < 0.02 * zero, "relative L2 score error {} at n = 3000, m = 512", large / zero);
    assert!(
        large < 0.5 * mid_n && large < 0.5 * small,
        "errors: {small} (30, 16), {mid_n} (30, 512), {large} (3000, 512)"
    );
}

#[test]
fn probability_flow_kl_is_exact_on_gaussians_in_1d_and_2d() {
    for (d, mean_q, std_q, mean_p, std_p) in
        [(1, vec![0.8], 1.3, vec![0.3], 1.0), (2, vec![0.8, -0.5], 0.7, vec![0.0, 0.2], 0.9)]
    {
        let score = Mixture::gaussian(mean_q.clone(), std_q).unwrap();
        let p0 = Mixture::gaussian(mean_p.clone(), std_p).unwrap();
        let cfg = OdeConfig { t0: 1e-3, t_max: 8.0, steps: 100 };
        let (mu, var) = kl::gaussian_flow_law(&mean_q, std_q, cfg.t0, cfg.t_max);
        let exact = kl::kl_gaussian(&mean_p, std_p * std_p, &mu, var);
        let grid = Grid::covering(&p0, if d == 1 { 400 } else { 90 }).unwrap();
        let est = kl::kl_ode(&score, &p0, &grid, &cfg).unwrap();
        assert!(exact > 0.05, "a non-trivial KL: {exact}");
        assert!((est.kl - exact).abs() < 1e-6, "d = {d}: {} vs {exact}", est.kl);
        // In 1-D p_θ is wider than p0, so a little of its mass lies outside p0's 6-sigma box.
        assert!((est.mass - 1.0).abs() < 1e-4, "d = {d}: mass {}", est.mass);
        // The pointwise log-density is the Gaussian's.
        let x = vec![0.4; d];
        let lq = kl::log_density_ode(&score, &x, &cfg).unwrap()[0];
        assert!((lq - memgen_rf::target::log_normal(&x, &mu, var)).abs() < 1e-7, "d = {d}");
    }
}

#[test]
fn sde_kl_matches_the_closed_form_within_its_error() {
    let (mean_q, std_q, mean_p, std_p) = (vec![0.8], 1.3, vec![0.3], 1.0);
    let score = Mixture::gaussian(mean_q.clone(), std_q).unwrap();
    let p0 = Mixture::gaussian(mean_p.clone(), std_p).unwrap();
    let cfg = SdeConfig { samples: 20000, ..Default::default() };
    let grid = Grid::covering(&p0, 300).unwrap();
    let (est, h) = kl::kl_sde(&score, &p0, &grid, &cfg).unwrap();
    // The reverse SDE with the exact score samples p_{t0} (up to e^{−T}): KL of the h-smoothed laws.
    let (mu, var) = kl::gaussian_flow_law(&mean_q, std_q, cfg.ode.t0, cfg.ode.t_max);
    let exact = kl::kl_gaussian(&mean_p, std_p * std_p + h * h, &mu, var + h * h);
    // Stated error: KDE noise ≈ |support| / (2 M h √(2π)) (support ~ 8 standard deviations) plus
    // the sampling standard deviation √(KL/M) and the Euler–Maruyama bias O(Δt).
    let noise = 8.0 * std_p / (2.0 * cfg.samples as f64 * h * (2.0 * std::f64::consts::PI).sqrt());
    let tol = 3.0 * (noise + (exact / cfg.samples as f64).sqrt()) + 5e-3;
    assert!((est.kl - exact).abs() < tol, "{} vs {exact} (tol {tol}, h {h})", est.kl);
    // And a wrong score is detected: the KL of a much farther Gaussian is far larger.
    let far = Mixture::gaussian(vec![2.5], 1.0).unwrap();
    assert!(kl::kl_sde(&far, &p0, &grid, &cfg).unwrap().0.kl > exact + 10.0 * tol);
}

#[test]
fn exact_mixture_score_gives_a_near_zero_kl_and_a_learned_one_does_not_beat_it() {
    let target = Mixture::parse("mixture:mu=3").unwrap();
    let grid = Grid::covering(&target, 400).unwrap();
    let cfg = OdeConfig::default();
    let exact = kl::kl_ode(&target, &target, &grid, &cfg).unwrap();
    // Floor: KL(p0 ‖ p_{t0}) with t0 = 1e-3 is ~1e-6; the prior mismatch ½ e^{−2T} μ² ~ 5e-7.
    assert!(exact.kl.abs() < 1e-4, "{exact:?}");
    let doubled = kl::kl_ode(&target, &target, &grid, &OdeConfig { steps: 200, ..cfg }).unwrap();
    assert!((doubled.kl - exact.kl).abs() < 1e-6);
    let (feats, xs, dcfg) = small_problem(64, 50);
    let q = &dsm::empirical(&feats, &xs, &[50], &dcfg).unwrap()[0];
    let a = GradientFlow::new(q, &Mat::zeros(1, 64)).unwrap().at(1e4);
    let learned = kl::kl_ode(&RfScore::new(&feats, row_major(&a)), &target, &grid, &cfg).unwrap();
    assert!(learned.kl > exact.kl + 1e-3, "{learned:?}");
}

#[test]
fn fokker_planck_kl_matches_the_closed_form() {
    let (mean_q, std_q, mean_p, std_p) = (vec![0.0], 1.3, vec![0.3], 1.0);
    let score = Mixture::gaussian(mean_q.clone(), std_q).unwrap();
    let p0 = Mixture::gaussian(mean_p.clone(), std_p).unwrap();
    let cfg = OdeConfig { t0: 1e-3, t_max: 8.0, steps: 200 };
    // A centred score: N(0, 1) at T is p_T up to e^{−2T}, so the reverse SDE's law at t0 is p_{t0},
    // the same Gaussian as the flow's (an off-centre one would keep an O(e^{−T}) memory of the prior).
    let (mu, var) = kl::gaussian_flow_law(&mean_q, std_q, cfg.t0, cfg.t_max);
    let exact = kl::kl_gaussian(&mean_p, std_p * std_p, &mu, var);
    let est = kl::kl_fp(&score, &p0, &Grid::covering(&p0, 401).unwrap(), &cfg).unwrap();
    assert!((est.kl - exact).abs() < 2e-5, "{} vs {exact}", est.kl);
    assert!((est.mass - 1.0).abs() < 1e-9, "mass {}", est.mass);
    // A mixture target with its own exact score: KL near 0.
    let mix = Mixture::parse("mixture:mu=3").unwrap();
    let floor = kl::kl_fp(&mix, &mix, &Grid::covering(&mix, 401).unwrap(), &cfg).unwrap();
    assert!(floor.kl.abs() < 1e-4, "{floor:?}");
    let p2 = Mixture::parse("gaussian:dim=2").unwrap();
    assert!(kl::kl_fp(&p2, &p2, &Grid::covering(&p2, 10).unwrap(), &cfg).is_err());
}

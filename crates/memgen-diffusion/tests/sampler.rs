//! Sampler tests driven by analytic denoisers (no network).
//!
//! For Gaussian data x0 ~ N(mu, s² I) the forward marginal is x_t ~ N(sqrt(ᾱ) mu, (ᾱ s² + 1 - ᾱ) I)
//! and the exact noise predictor is ε(x_t, t) = E[ε | x_t] = sqrt(1 - ᾱ) (x_t - sqrt(ᾱ) mu) / (ᾱ s² + 1 - ᾱ),
//! with E[x0 | x_t] = mu + sqrt(ᾱ) s² (x_t - sqrt(ᾱ) mu) / (ᾱ s² + 1 - ᾱ). s = 0 is a point mass
//! (one training image, the N = 1 memorization limit), where ε = (x_t - sqrt(ᾱ) x*) / sqrt(1 - ᾱ).

use std::cell::RefCell;

use candle::{DType, Device, Result, Tensor};
use memgen_diffusion::sampler::{
    epsilon_to_x0, to_epsilon, to_x0, x0_to_epsilon, DdimSampler, DdpmSampler, SampleRequest, Sampler,
    SamplerConfig, StepOutput, VarianceType,
};
use memgen_diffusion::{DdpmSchedule, Denoiser, NoiseSource, Prediction, ScheduleConfig};

const DEV: Device = Device::Cpu;

/// The request of the tests: images of shape [`DIMS`] on [`DEV`].
fn request<'a>(
    model: &'a dyn Denoiser,
    prediction: Prediction,
    schedule: &'a DdpmSchedule,
    sampler: &'a dyn Sampler,
    noise: &'a NoiseSource,
) -> SampleRequest<'a> {
    SampleRequest { model, prediction, schedule, sampler, noise, dims: &DIMS, device: &DEV }
}

fn schedule() -> DdpmSchedule {
    DdpmSchedule::new(&ScheduleConfig::default()).unwrap()
}

/// Per-sample (sqrt(ᾱ), ᾱ) as (B, 1, 1, 1) tensors for the (B,) u32 timesteps `t`.
fn abar_of(s: &DdpmSchedule, t: &Tensor) -> Result<(Tensor, Tensor)> {
    let t = t.to_vec1::<u32>()?;
    let a: Vec<f32> = t.iter().map(|&t| s.alphas_cumprod[t as usize] as f32).collect();
    let sa: Vec<f32> = t.iter().map(|&t| s.alphas_cumprod[t as usize].sqrt() as f32).collect();
    let n = t.len();
    Ok((Tensor::from_vec(sa, (n, 1, 1, 1), &DEV)?, Tensor::from_vec(a, (n, 1, 1, 1), &DEV)?))
}

/// The exact denoiser of N(mu, var) per pixel (mu, var: (1, C, H, W)) predicting `pred`.
fn gaussian_model<'a>(
    s: &'a DdpmSchedule,
    mu: &'a Tensor,
    var: &'a Tensor,
    pred: Prediction,
) -> impl Fn(&Tensor, &Tensor) -> Result<Tensor> + 'a {
    move |x: &Tensor, t: &Tensor| {
        let (sa, a) = abar_of(s, t)?;
        let one_minus_a = a.affine(-1.0, 1.0)?;
        let denom = var.broadcast_mul(&a)?.broadcast_add(&one_minus_a)?; // ᾱ s² + 1 - ᾱ
        let centred = x.broadcast_sub(&mu.broadcast_mul(&sa)?)?; // x_t - sqrt(ᾱ) mu
        match pred {
            Prediction::Epsilon => centred.broadcast_mul(&one_minus_a.sqrt()?)?.div(&denom),
            Prediction::X0 => {
                mu.broadcast_add(&centred.broadcast_mul(&var.broadcast_mul(&sa)?)?.div(&denom)?)
            }
        }
    }
}

/// The exact ε of a point mass at `xs` (1, C, H, W), written out on its own.
fn point_mass_eps<'a>(
    s: &'a DdpmSchedule,
    xs: &'a Tensor,
) -> impl Fn(&Tensor, &Tensor) -> Result<Tensor> + 'a {
    move |x: &Tensor, t: &Tensor| {
        let (sa, a) = abar_of(s, t)?;
        x.broadcast_sub(&xs.broadcast_mul(&sa)?)?.broadcast_div(&a.affine(-1.0, 1.0)?.sqrt()?)
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    a.broadcast_sub(b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

const DIMS: [usize; 3] = [1, 4, 4];

fn image() -> Tensor {
    let v: Vec<f32> = (0..16).map(|i| ((i * 7) % 16) as f32 / 15.0).collect();
    Tensor::from_vec(v, (1, 1, 4, 4), &DEV).unwrap()
}

fn samplers(s: &DdpmSchedule) -> Vec<(&'static str, Box<dyn Sampler>)> {
    vec![
        ("ddpm beta", Box::new(DdpmSampler::new(s, VarianceType::Beta))),
        ("ddpm posterior", Box::new(DdpmSampler::new(s, VarianceType::Posterior))),
        ("ddim 50 eta 0", Box::new(DdimSampler::new(s, 50, 0.0).unwrap())),
        ("ddim 100 eta 0", Box::new(DdimSampler::new(s, 100, 0.0).unwrap())),
        ("ddim 20 eta 1", Box::new(DdimSampler::new(s, 20, 1.0).unwrap())),
        ("ddim 7 eta 0.5", Box::new(DdimSampler::new(s, 7, 0.5).unwrap())),
    ]
}

// (a) ----------------------------------------------------------------------------------------------

#[test]
fn point_mass_is_reproduced_exactly_by_every_sampler() {
    let s = schedule();
    let xs = image();
    let model = point_mass_eps(&s, &xs);
    for (name, sampler) in samplers(&s) {
        for seed in [0, 1, 12345] {
            let out = request(&model, Prediction::Epsilon, &s, sampler.as_ref(), &NoiseSource::new(seed))
                .sample(0, 8)
                .unwrap();
            assert_eq!(out.dims(), &[8, 1, 4, 4]);
            let err = max_abs_diff(&out, &xs);
            if seed == 0 {
                println!("point mass, {name}: max |x - x*| = {err:.2e}");
            }
            assert!(err < 1e-5, "{name}, seed {seed}: max |x - x*| = {err}");
        }
    }
}

#[test]
fn point_mass_tweedie_estimate_is_the_image_at_every_step() {
    let s = schedule();
    let xs = image();
    let model = point_mass_eps(&s, &xs);
    let noise = NoiseSource::new(3);
    let sampler = DdpmSampler::new(&s, VarianceType::Beta);
    let mut x = noise.batch(0, 4, 1000, &DIMS, &DEV).unwrap();
    let mut worst = 0f32;
    for &t in sampler.timesteps() {
        let eps = model.forward(&x, &Tensor::full(t as u32, 4, &DEV).unwrap()).unwrap();
        let z = noise.batch(0, 4, t as u64, &DIMS, &DEV).unwrap();
        let StepOutput { prev_sample, pred_x0 } = sampler.step(&eps, t, &x, Some(&z)).unwrap();
        worst = worst.max(max_abs_diff(&pred_x0, &xs));
        x = prev_sample;
    }
    println!("point mass: worst |pred_x0 - x*| over all DDPM steps = {worst:.2e}");
    assert!(worst < 1e-3, "pred_x0 off by {worst}");
    // Far from the end x_t is mostly noise, not the image: the test above is not vacuous.
    let x_mid = {
        let mut x = noise.batch(0, 4, 1000, &DIMS, &DEV).unwrap();
        for &t in &sampler.timesteps()[..500] {
            let eps = model.forward(&x, &Tensor::full(t as u32, 4, &DEV).unwrap()).unwrap();
            let z = noise.batch(0, 4, t as u64, &DIMS, &DEV).unwrap();
            x = sampler.step(&eps, t, &x, Some(&z)).unwrap().prev_sample;
        }
        x
    };
    assert!(max_abs_diff(&x_mid, &xs) > 0.3);
}

// (b) ----------------------------------------------------------------------------------------------

/// Per-pixel parameters: 4 (mu, s) types, each on 4 of the 16 pixels.
const TYPES: [(f64, f64); 4] = [(0.5, 0.1), (-1.0, 1.0), (2.0, 0.5), (0.0, 2.0)];

fn type_of(pixel: usize) -> usize {
    pixel % 4
}

fn gaussian_params() -> (Tensor, Tensor) {
    let mu: Vec<f32> = (0..16).map(|p| TYPES[type_of(p)].0 as f32).collect();
    let var: Vec<f32> = (0..16).map(|p| TYPES[type_of(p)].1.powi(2) as f32).collect();
    (Tensor::from_vec(mu, (1, 1, 4, 4), &DEV).unwrap(), Tensor::from_vec(var, (1, 1, 4, 4), &DEV).unwrap())
}

/// The exact law of one pixel of the output of a sampler whose step is x' = c_x x + c_eps ε + σ z,
/// driven by the exact ε of N(mu, s²) from x_T ~ N(0, 1): every map is affine, so the output is
/// N(m, v) with (m, v) from this recursion in f64. The coefficients are written here from the
/// papers, independently of the library.
fn exact_output_law(s: &DdpmSchedule, steps: &[(usize, f64, f64, f64)], mu: f64, var: f64) -> (f64, f64) {
    exact_output_law_from(s, steps, mu, var, (0.0, 1.0))
}

/// The same, started from x ~ N(start.0, start.1) at the first timestep.
fn exact_output_law_from(
    s: &DdpmSchedule,
    steps: &[(usize, f64, f64, f64)],
    mu: f64,
    var: f64,
    start: (f64, f64),
) -> (f64, f64) {
    let (mut m, mut v) = start;
    for &(t, c_x, c_eps, sigma) in steps {
        let a = s.alphas_cumprod[t];
        let k = (1.0 - a).sqrt() / (a * var + 1.0 - a); // ε = k (x - sqrt(a) mu)
        let slope = c_x + c_eps * k;
        m = slope * m - c_eps * k * a.sqrt() * mu;
        v = slope * slope * v + sigma * sigma;
    }
    (m, v)
}

/// (t, c_x, c_eps, σ) of DDPM ancestral sampling, Algorithm 2 of Ho et al.
fn ddpm_steps(s: &DdpmSchedule, variance: VarianceType) -> Vec<(usize, f64, f64, f64)> {
    (0..s.len())
        .rev()
        .map(|t| {
            let (b, a) = (s.betas[t], s.alphas_cumprod[t]);
            let a_prev = if t == 0 { 1.0 } else { s.alphas_cumprod[t - 1] };
            let var = match variance {
                VarianceType::Beta => b,
                VarianceType::Posterior => (1.0 - a_prev) / (1.0 - a) * b,
            };
            let sigma = if t == 0 { 0.0 } else { var.sqrt() };
            (t, 1.0 / (1.0 - b).sqrt(), -b / (1.0 - a).sqrt() / (1.0 - b).sqrt(), sigma)
        })
        .collect()
}

/// (t, c_x, c_eps, 0) of DDIM with η = 0 over `n` leading-spaced steps (Song et al. eq. 12).
fn ddim0_steps(s: &DdpmSchedule, n: usize) -> Vec<(usize, f64, f64, f64)> {
    let r = s.len() / n;
    (0..n)
        .rev()
        .map(|i| {
            let a = s.alphas_cumprod[i * r];
            let ap = if i == 0 { 1.0 } else { s.alphas_cumprod[(i - 1) * r] };
            // x' = sqrt(ap) (x - sqrt(1-a) ε)/sqrt(a) + sqrt(1 - ap) ε
            (i * r, (ap / a).sqrt(), (1.0 - ap).sqrt() - (ap * (1.0 - a) / a).sqrt(), 0.0)
        })
        .collect()
}

#[test]
fn gaussian_data_is_sampled_with_the_right_mean_and_variance() {
    let s = schedule();
    let (mu, var) = gaussian_params();
    let model = gaussian_model(&s, &mu, &var, Prediction::Epsilon);
    let n = 4000; // 16 pixels each: 16_000 independent draws per (mu, s) type
    let per_type = (n * 4) as f64;
    // (name, sampler, its steps for the exact law, allowed bias of the exact law against the data
    // law: |m - mu| <= bm s, |v - s²| <= bv s² + cv). The bias budgets are the measured
    // discretisation errors (printed below) with a margin: DDPM's are ~1e-4..1e-3 in variance
    // (σ² = β adds a little, σ² = β̃ removes a little); DDIM's are first order in the step size.
    type Case = (&'static str, Box<dyn Sampler>, Vec<(usize, f64, f64, f64)>, f64, f64, f64);
    let cases: Vec<Case> = vec![
        (
            "ddpm beta",
            Box::new(DdpmSampler::new(&s, VarianceType::Beta)),
            ddpm_steps(&s, VarianceType::Beta),
            1e-3,
            2e-2,
            1e-3,
        ),
        (
            "ddpm posterior",
            Box::new(DdpmSampler::new(&s, VarianceType::Posterior)),
            ddpm_steps(&s, VarianceType::Posterior),
            1e-3,
            2e-2,
            1e-3,
        ),
        (
            "ddim 50 eta 0",
            Box::new(DdimSampler::new(&s, 50, 0.0).unwrap()),
            ddim0_steps(&s, 50),
            3e-2,
            0.15,
            5e-3,
        ),
        (
            "ddim 100 eta 0",
            Box::new(DdimSampler::new(&s, 100, 0.0).unwrap()),
            ddim0_steps(&s, 100),
            2e-2,
            0.08,
            3e-3,
        ),
    ];
    for (name, sampler, steps, bm, bv, cv) in cases {
        let out = request(&model, Prediction::Epsilon, &s, sampler.as_ref(), &NoiseSource::new(11))
            .sample(0, n)
            .unwrap();
        let v = flat(&out);
        for (ty, &(m_true, sd_true)) in TYPES.iter().enumerate() {
            let var_true = sd_true * sd_true;
            let xs: Vec<f64> =
                v.iter().enumerate().filter(|(i, _)| type_of(i % 16) == ty).map(|(_, &x)| x as f64).collect();
            assert_eq!(xs.len() as f64, per_type);
            let mean = xs.iter().sum::<f64>() / per_type;
            let var_hat = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (per_type - 1.0);
            let (m_exact, v_exact) = exact_output_law(&s, &steps, m_true, var_true);
            println!(
                "{name:>15}, mu {m_true:5.2} s {sd_true:4.2}: mean {mean:8.5} var {var_hat:8.5} (truth {var_true:.5}); \
                 exact law: m - mu = {:+.1e}, v - s^2 = {:+.1e} ({:+.1e} relative); z-scores {:+.2} {:+.2}",
                m_exact - m_true,
                v_exact - var_true,
                v_exact / var_true - 1.0,
                (mean - m_exact) / (v_exact / per_type).sqrt(),
                (var_hat - v_exact) / (v_exact * (2.0 / (per_type - 1.0)).sqrt()),
            );
            // 1. The samples follow the sampler's exact output law: 5 standard errors, with
            //    std(mean) = sqrt(v/M) and std(var_hat) = v sqrt(2/(M-1)) for M Gaussian draws.
            let se_m = (v_exact / per_type).sqrt();
            let se_v = v_exact * (2.0 / (per_type - 1.0)).sqrt();
            assert!((mean - m_exact).abs() < 5.0 * se_m, "{name}: mean {mean} vs {m_exact}");
            assert!((var_hat - v_exact).abs() < 5.0 * se_v, "{name}: var {var_hat} vs {v_exact}");
            // 2. That law is the data law up to the sampler's discretisation error.
            assert!((m_exact - m_true).abs() <= bm * sd_true, "{name}: exact-law mean {m_exact}");
            assert!((v_exact - var_true).abs() <= bv * var_true + cv, "{name}: exact-law var {v_exact}");
            // 3. Hence the samples against the truth, with both budgets.
            assert!((mean - m_true).abs() < 5.0 * se_m + bm * sd_true, "{name}: mean {mean}");
            assert!((var_hat - var_true).abs() < 5.0 * se_v + bv * var_true + cv, "{name}: var {var_hat}");
        }
    }
}

#[test]
fn ddim_discretisation_error_shrinks_with_the_step_count() {
    // Exact output law of deterministic DDIM on N(mu, s²) data: the variance deficit is first
    // order in the step size (for N(0, 1) data each step multiplies x by cos Δθ, ᾱ = cos² θ).
    let s = schedule();
    for &(m_true, sd) in &TYPES {
        let mut last = f64::INFINITY;
        for steps in [50, 100, 200, 500, 1000] {
            let (m, v) = exact_output_law(&s, &ddim0_steps(&s, steps), m_true, sd * sd);
            let err = (v / (sd * sd) - 1.0).abs();
            println!(
                "ddim {steps:4} steps, mu {m_true:5.2} s {sd:4.2}: (m - mu)/s {:+.1e}, v/s^2 - 1 {:+.1e}",
                (m - m_true) / sd,
                v / (sd * sd) - 1.0
            );
            assert!(err < 0.7 * last, "{steps} steps: {err} vs {last}");
            last = err;
            // The mean's bias does not shrink with the steps: it is x_T ~ N(0, 1) against the true
            // marginal N(sqrt(ᾱ) mu, ᾱ s² + 1 - ᾱ) at the top timestep. DDIM keeps an exact mean
            // (a step maps mean sqrt(ᾱ) mu to sqrt(ᾱ') mu), so started from sqrt(ᾱ_top) mu it ends at
            // mu, and since the map x_T -> x_0 is affine with slope sqrt(v) (v from var(x_T) = 1),
            // started from 0 it ends at mu - sqrt(v) sqrt(ᾱ_top) mu.
            let top = s.alphas_cumprod[s.len() / steps * (steps - 1)];
            let predicted = -v.sqrt() * top.sqrt() * m_true;
            assert!((m - m_true - predicted).abs() < 1e-9, "{steps}: {m}");
            let start = (top.sqrt() * m_true, top * sd * sd + 1.0 - top);
            let (m_exact_start, _) =
                exact_output_law_from(&s, &ddim0_steps(&s, steps), m_true, sd * sd, start);
            assert!((m_exact_start - m_true).abs() < 1e-9, "{steps}: {m_exact_start}");
        }
        assert!(last < 5e-2, "1000 steps: {last}");
    }
}

// (c) ----------------------------------------------------------------------------------------------

#[test]
fn x0_prediction_gives_the_same_samples_as_epsilon_prediction() {
    let s = schedule();
    let (mu, var) = gaussian_params();
    let eps_model = gaussian_model(&s, &mu, &var, Prediction::Epsilon);
    let x0_model = gaussian_model(&s, &mu, &var, Prediction::X0);
    let noise = NoiseSource::new(5);
    for (name, sampler) in samplers(&s) {
        let a = request(&eps_model, Prediction::Epsilon, &s, sampler.as_ref(), &noise).sample(0, 16).unwrap();
        let b = request(&x0_model, Prediction::X0, &s, sampler.as_ref(), &noise).sample(0, 16).unwrap();
        let err = max_abs_diff(&a, &b);
        println!("{name}: max |eps path - x0 path| = {err:.2e}");
        assert!(err < 1e-5, "{name}: {err}");
        // Not trivially equal: declaring the x0 model as an ε model gives other samples.
        let c = request(&x0_model, Prediction::Epsilon, &s, sampler.as_ref(), &noise).sample(0, 16).unwrap();
        assert!(max_abs_diff(&a, &c) > 0.1, "{name}");
    }
}

#[test]
fn tweedie_conversions_invert_each_other() {
    let s = schedule();
    let x = NoiseSource::new(1).batch(0, 3, 7, &DIMS, &DEV).unwrap();
    let e = NoiseSource::new(1).batch(0, 3, 8, &DIMS, &DEV).unwrap();
    for t in [0, 10, 500, 999] {
        let a = s.alphas_cumprod[t];
        let x0 = epsilon_to_x0(&e, &x, a).unwrap();
        // x0 by hand: (x - sqrt(1 - a) e) / sqrt(a).
        let want =
            x.sub(&e.affine((1.0 - a).sqrt(), 0.0).unwrap()).unwrap().affine(1.0 / a.sqrt(), 0.0).unwrap();
        assert!(max_abs_diff(&x0, &want) < 1e-3 * (1.0 / a.sqrt() as f32));
        assert!(max_abs_diff(&x0_to_epsilon(&x0, &x, a).unwrap(), &e) < 1e-3);
        assert!(max_abs_diff(&to_x0(Prediction::Epsilon, &e, &x, a).unwrap(), &x0) == 0.0);
        assert!(max_abs_diff(&to_x0(Prediction::X0, &x0, &x, a).unwrap(), &x0) == 0.0);
        assert!(max_abs_diff(&to_epsilon(Prediction::Epsilon, &e, &x, a).unwrap(), &e) == 0.0);
        assert!(max_abs_diff(&to_epsilon(Prediction::X0, &x0, &x, a).unwrap(), &e) < 1e-3);
    }
}

// (d) ----------------------------------------------------------------------------------------------

/// Wraps a sampler and records the noise each step receives.
struct Recording<'a> {
    inner: &'a dyn Sampler,
    seen: RefCell<Vec<(usize, Option<Tensor>)>>,
}

impl Sampler for Recording<'_> {
    fn timesteps(&self) -> &[usize] {
        self.inner.timesteps()
    }
    fn step(&self, eps: &Tensor, t: usize, x_t: &Tensor, noise: Option<&Tensor>) -> Result<StepOutput> {
        self.seen.borrow_mut().push((t, noise.cloned()));
        self.inner.step(eps, t, x_t, noise)
    }
    fn needs_noise(&self, t: usize) -> bool {
        self.inner.needs_noise(t)
    }
}

/// Runs `model` with recording: (first model input, every step's noise, output).
fn recorded_run(
    s: &DdpmSchedule,
    model: &dyn Denoiser,
    sampler: &dyn Sampler,
    seed: u64,
    first: u64,
    n: usize,
) -> (Tensor, Vec<(usize, Option<Tensor>)>, Tensor) {
    let inputs = RefCell::new(Vec::new());
    let spy = |x: &Tensor, t: &Tensor| {
        assert_eq!(t.dims(), &[x.dim(0)?]);
        assert_eq!(t.dtype(), DType::U32);
        inputs.borrow_mut().push(x.clone());
        model.forward(x, t)
    };
    let rec = Recording { inner: sampler, seen: RefCell::new(Vec::new()) };
    let out = request(&spy, Prediction::Epsilon, s, &rec, &NoiseSource::new(seed)).sample(first, n).unwrap();
    let inputs = inputs.into_inner();
    assert_eq!(inputs.len(), sampler.timesteps().len(), "one model call per timestep");
    (inputs[0].clone(), rec.seen.into_inner(), out)
}

#[test]
fn two_models_see_the_same_noise() {
    let s = schedule();
    let (mu, var) = gaussian_params();
    let mu2 = mu.affine(-1.0, 0.3).unwrap();
    let var2 = var.affine(0.5, 0.01).unwrap();
    let model_a = gaussian_model(&s, &mu, &var, Prediction::Epsilon);
    let model_b = gaussian_model(&s, &mu2, &var2, Prediction::Epsilon);
    let noise = NoiseSource::new(77);
    for sampler in [
        Box::new(DdpmSampler::new(&s, VarianceType::Beta)) as Box<dyn Sampler>,
        Box::new(DdimSampler::new(&s, 25, 0.7).unwrap()),
    ] {
        let (xa, za, out_a) = recorded_run(&s, &model_a, sampler.as_ref(), 77, 5, 3);
        let (xb, zb, out_b) = recorded_run(&s, &model_b, sampler.as_ref(), 77, 5, 3);
        // x_T of samples 5, 6, 7 is keyed (seed, k, T).
        assert_eq!(flat(&xa), flat(&noise.batch(5, 3, 1000, &DIMS, &DEV).unwrap()));
        assert_eq!(flat(&xa), flat(&xb));
        // Every step's z is keyed (seed, k, t); none at the last step (t = 0).
        assert_eq!(za.len(), sampler.timesteps().len());
        for ((ta, a), (tb, b)) in za.iter().zip(&zb) {
            assert_eq!(ta, tb);
            match (a, b) {
                (Some(a), Some(b)) => {
                    assert_eq!(flat(a), flat(b));
                    assert_eq!(flat(a), flat(&noise.batch(5, 3, *ta as u64, &DIMS, &DEV).unwrap()));
                }
                (None, None) => assert_eq!(*ta, 0, "only the last step is noise-free"),
                _ => panic!("noise given to one model only at t = {ta}"),
            }
        }
        assert!(za.last().unwrap().1.is_none());
        assert_ne!(flat(&out_a), flat(&out_b), "different models, different samples");
        // Another seed: another x_T, other z, other samples.
        let (xc, zc, out_c) = recorded_run(&s, &model_a, sampler.as_ref(), 78, 5, 3);
        assert_ne!(flat(&xa), flat(&xc));
        assert_ne!(flat(za[0].1.as_ref().unwrap()), flat(zc[0].1.as_ref().unwrap()));
        assert!(max_abs_diff(&out_a, &out_c) > 0.1);
    }
}

#[test]
fn batching_does_not_change_a_single_bit() {
    let s = schedule();
    let (mu, var) = gaussian_params();
    let model = gaussian_model(&s, &mu, &var, Prediction::Epsilon);
    let noise = NoiseSource::new(9);
    for sampler in [
        Box::new(DdpmSampler::new(&s, VarianceType::Posterior)) as Box<dyn Sampler>,
        Box::new(DdimSampler::new(&s, 40, 0.3).unwrap()),
    ] {
        let whole = request(&model, Prediction::Epsilon, &s, sampler.as_ref(), &noise).sample(0, 10).unwrap();
        for bs in [1, 3, 7, 10, 64] {
            let pb = indicatif::ProgressBar::hidden();
            let out = request(&model, Prediction::Epsilon, &s, sampler.as_ref(), &noise)
                .sample_batched(10, bs, Some(&pb))
                .unwrap();
            assert_eq!(out.dims(), &[10, 1, 4, 4]);
            assert_eq!(flat(&out), flat(&whole), "batch size {bs}");
            assert_eq!(pb.position(), 10);
        }
        // A sub-range run reproduces its rows of the whole run.
        let part = request(&model, Prediction::Epsilon, &s, sampler.as_ref(), &noise).sample(4, 3).unwrap();
        assert_eq!(flat(&part), flat(&whole.narrow(0, 4, 3).unwrap()));
    }
    let ddpm = DdpmSampler::new(&s, VarianceType::Beta);
    assert!(request(&model, Prediction::Epsilon, &s, &ddpm, &noise).sample_batched(10, 0, None).is_err());
    let empty = request(&model, Prediction::Epsilon, &s, &ddpm, &noise).sample_batched(0, 4, None).unwrap();
    assert_eq!(empty.dims(), &[0, 1, 4, 4]);
}

// (e) ----------------------------------------------------------------------------------------------

#[test]
fn ddim_timesteps_validation_and_determinism() {
    let s = schedule();
    let ddim = DdimSampler::new(&s, 50, 0.0).unwrap();
    let want: Vec<usize> = (0..50).rev().map(|i| i * 20).collect();
    assert_eq!(ddim.timesteps(), &want[..]);
    assert_eq!((ddim.timesteps()[0], ddim.timesteps()[49]), (980, 0));
    assert_eq!(
        DdimSampler::new(&s, 1000, 0.0).unwrap().timesteps(),
        &(0..1000).rev().collect::<Vec<_>>()[..]
    );
    assert_eq!(DdimSampler::new(&s, 1, 0.0).unwrap().timesteps(), &[0]);
    assert_eq!(DdimSampler::new(&s, 300, 0.0).unwrap().timesteps()[0], 897, "leading spacing, stride 3");
    for bad in [0, 1001] {
        assert!(DdimSampler::new(&s, bad, 0.0).is_err(), "steps {bad}");
        assert!(SamplerConfig::Ddim { steps: bad, eta: 0.0 }.build(&s).is_err());
    }
    for bad in [-0.1, 1.5, f64::NAN] {
        assert!(DdimSampler::new(&s, 50, bad).is_err(), "eta {bad}");
    }

    // η = 0: no step needs noise, and a given z is ignored.
    assert!(want.iter().all(|&t| !ddim.needs_noise(t)));
    let x = NoiseSource::new(2).batch(0, 2, 1, &DIMS, &DEV).unwrap();
    let e = NoiseSource::new(2).batch(0, 2, 2, &DIMS, &DEV).unwrap();
    let z = NoiseSource::new(2).batch(0, 2, 3, &DIMS, &DEV).unwrap();
    for &t in &want {
        let a = ddim.step(&e, t, &x, None).unwrap().prev_sample;
        let b = ddim.step(&e, t, &x, Some(&z)).unwrap().prev_sample;
        assert_eq!(flat(&a), flat(&b));
    }
    assert!(ddim.step(&e, 990, &x, None).is_err(), "990 is not one of the timesteps");

    // η > 0 needs noise except at the last step, and refuses to step without it.
    let noisy = DdimSampler::new(&s, 50, 0.5).unwrap();
    assert!(want[..49].iter().all(|&t| noisy.needs_noise(t)) && !noisy.needs_noise(0));
    assert!(noisy.step(&e, 20, &x, None).is_err());
    assert_eq!(noisy.sigma(0), Some(0.0));

    // Deterministic given x_T: same seed, same samples; and the result depends on x_T only.
    let (mu, var) = gaussian_params();
    let model = gaussian_model(&s, &mu, &var, Prediction::Epsilon);
    let run =
        |seed| request(&model, Prediction::Epsilon, &s, &ddim, &NoiseSource::new(seed)).sample(0, 4).unwrap();
    assert_eq!(flat(&run(4)), flat(&run(4)));
    assert_ne!(flat(&run(4)), flat(&run(5)));
}

#[test]
fn ddpm_timesteps_and_noise() {
    let s = schedule();
    let d = DdpmSampler::new(&s, VarianceType::Beta);
    assert_eq!(d.timesteps(), &(0..1000).rev().collect::<Vec<_>>()[..]);
    assert!(!d.needs_noise(0) && d.needs_noise(1) && d.needs_noise(999) && !d.needs_noise(1000));
    let x = Tensor::ones((1, 1, 2, 2), DType::F32, &DEV).unwrap();
    assert!(d.step(&x, 5, &x, None).is_err(), "t > 0 needs noise");
    assert!(d.step(&x, 1000, &x, Some(&x)).is_err());
    assert!(d.step(&x, 0, &x, None).is_ok());
}

#[test]
fn ddim_with_all_steps_and_eta_one_is_ddpm_with_the_posterior_variance() {
    // Song et al. §4.1: η = 1 over the full sequence is the DDPM ancestral sampler with σ² = β̃.
    let s = schedule();
    let (mu, var) = gaussian_params();
    let model = gaussian_model(&s, &mu, &var, Prediction::Epsilon);
    let noise = NoiseSource::new(21);
    let ddpm = DdpmSampler::new(&s, VarianceType::Posterior);
    let ddim = DdimSampler::new(&s, 1000, 1.0).unwrap();
    for t in [1, 2, 500, 999] {
        let (a, b) = (ddpm.sigma(t), ddim.sigma(t).unwrap());
        assert!((a - b).abs() < 1e-12 * a, "t = {t}: {a} vs {b}");
    }
    let a = request(&model, Prediction::Epsilon, &s, &ddpm, &noise).sample(0, 16).unwrap();
    let b = request(&model, Prediction::Epsilon, &s, &ddim, &noise).sample(0, 16).unwrap();
    let err = max_abs_diff(&a, &b);
    println!("ddim(1000, eta 1) vs ddpm posterior: max diff {err:.2e}");
    assert!(err < 1e-4, "{err}");
    // ... and not with σ² = β_t.
    let c = SampleRequest {
        model: &model,
        prediction: Prediction::Epsilon,
        schedule: &s,
        sampler: &DdpmSampler::new(&s, VarianceType::Beta),
        noise: &noise,
        dims: &DIMS,
        device: &DEV,
    }
    .sample(0, 16)
    .unwrap();
    assert!(max_abs_diff(&a, &c) > 1e-3);
}

#[test]
fn sampler_config_round_trips_and_builds() {
    let s = schedule();
    for cfg in [
        SamplerConfig::default(),
        SamplerConfig::Ddpm { variance: VarianceType::Posterior },
        SamplerConfig::Ddim { steps: 50, eta: 0.0 },
        SamplerConfig::Ddim { steps: 1000, eta: 1.0 },
    ] {
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<SamplerConfig>(&json).unwrap(), cfg, "{json}");
        cfg.build(&s).unwrap();
    }
    assert_eq!(SamplerConfig::default(), SamplerConfig::Ddpm { variance: VarianceType::Beta });
    assert_eq!(
        serde_json::to_string(&SamplerConfig::Ddim { steps: 50, eta: 0.0 }).unwrap(),
        r#"{"ddim":{"steps":50,"eta":0.0}}"#
    );
    let parsed: SamplerConfig = serde_json::from_str(r#"{"ddpm":{"variance":"fixed_small"}}"#).unwrap();
    assert_eq!(parsed, SamplerConfig::Ddpm { variance: VarianceType::Posterior });
    let parsed: SamplerConfig = serde_json::from_str(r#"{"ddim":{"steps":20}}"#).unwrap();
    assert_eq!(parsed, SamplerConfig::Ddim { steps: 20, eta: 0.0 });
    let built = SamplerConfig::Ddim { steps: 20, eta: 0.0 }.build(&s).unwrap();
    assert_eq!(built.timesteps().len(), 20);
    assert!(serde_json::from_str::<SamplerConfig>(r#"{"ddim":{"steps":20,"etta":1}}"#).is_err());
}

// (f) ----------------------------------------------------------------------------------------------

fn scalar(v: f64) -> Tensor {
    Tensor::from_vec(vec![v], (1, 1, 1, 1), &DEV).unwrap()
}

fn value(t: &Tensor) -> f64 {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()[0]
}

/// ᾱ_t of the default schedule recomputed from its definition.
fn abar_by_hand(t: usize) -> f64 {
    (0..=t).map(|i| 1.0 - (1e-4 + (0.02 - 1e-4) * i as f64 / 999.0)).product()
}

#[test]
fn one_ddpm_step_by_hand() {
    let s = schedule();
    let (x, e, z) = (0.7, -0.3, 1.2);
    for t in [500usize, 1, 999] {
        let beta = 1e-4 + (0.02 - 1e-4) * t as f64 / 999.0;
        let (abar, abar_prev) = (abar_by_hand(t), abar_by_hand(t - 1));
        // Algorithm 2: (x - β/sqrt(1-ᾱ) ε)/sqrt(1-β) + σ z.
        let mean = (x - beta / (1.0 - abar).sqrt() * e) / (1.0 - beta).sqrt();
        let x0 = (x - (1.0 - abar).sqrt() * e) / abar.sqrt();
        for (variance, sigma2) in
            [(VarianceType::Beta, beta), (VarianceType::Posterior, (1.0 - abar_prev) / (1.0 - abar) * beta)]
        {
            let out =
                DdpmSampler::new(&s, variance).step(&scalar(e), t, &scalar(x), Some(&scalar(z))).unwrap();
            let want = mean + sigma2.sqrt() * z;
            assert!(
                (value(&out.prev_sample) - want).abs() < 1e-12,
                "t {t} {variance:?}: {} vs {want}",
                value(&out.prev_sample)
            );
            assert!((value(&out.pred_x0) - x0).abs() < 1e-9 * x0.abs().max(1.0));
        }
    }
    // t = 500, σ² = β, worked out: a reference number for anyone changing the code.
    let out =
        DdpmSampler::new(&s, VarianceType::Beta).step(&scalar(e), 500, &scalar(x), Some(&scalar(z))).unwrap();
    println!("ddpm step t=500 (x 0.7, eps -0.3, z 1.2): {:.12}", value(&out.prev_sample));
    // t = 0: no noise, and the mean uses ᾱ_0 = 1 - β_0.
    let out =
        DdpmSampler::new(&s, VarianceType::Beta).step(&scalar(e), 0, &scalar(x), Some(&scalar(z))).unwrap();
    let want = (x - 1e-4 / (1e-4f64).sqrt() * e) / (1.0 - 1e-4f64).sqrt();
    assert!((value(&out.prev_sample) - want).abs() < 1e-12);
}

#[test]
fn one_ddim_step_by_hand() {
    let s = schedule();
    let (x, e, z) = (0.7, -0.3, 1.2);
    let ddim = DdimSampler::new(&s, 50, 0.5).unwrap();
    for (t, prev) in [(500usize, Some(480usize)), (0, None)] {
        let a = abar_by_hand(t);
        let ap = prev.map_or(1.0, abar_by_hand);
        let x0 = (x - (1.0 - a).sqrt() * e) / a.sqrt();
        let sigma = 0.5 * ((1.0 - ap) / (1.0 - a)).sqrt() * (1.0 - a / ap).sqrt(); // eq. 16
        let want = ap.sqrt() * x0 + (1.0 - ap - sigma * sigma).sqrt() * e + sigma * z; // eq. 12
        let out = ddim.step(&scalar(e), t, &scalar(x), Some(&scalar(z))).unwrap();
        assert!(
            (value(&out.prev_sample) - want).abs() < 1e-12,
            "t {t}: {} vs {want}",
            value(&out.prev_sample)
        );
        assert!((value(&out.pred_x0) - x0).abs() < 1e-12);
        if t == 0 {
            assert!((want - x0).abs() < 1e-12, "the last DDIM step returns x̂0");
        }
    }
}

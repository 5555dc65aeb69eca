//! The GEMM conv against Candle's own conv2d (forward and every gradient) on random shapes, and
//! against finite differences in f64.

mod common;

use candle::{DType, Module, Tensor, Var};
use candle_nn::Conv2dConfig;
use common::{check_fd, max_rel_diff, randn, var};
use memgen_kernels::Conv2d;

/// `(B, C, H, W, O, K, stride, pad)`: odd sizes, stride 2, 1x1, batch 1, batches of small maps
/// that are grouped into one GEMM (including a partial last group), and maps large enough to be
/// cut into bands of output rows (the 10th and 11th). The last five are same-size convs for the
/// direct forward: a kernel wider than the map, a one-row map, an odd number of 16-pixel runs with
/// O above 8, a 5x5 kernel, and a 1x1 conv of maps with a multiple of 16 pixels.
const SHAPES: &[(usize, usize, usize, usize, usize, usize, usize, usize)] = &[
    (2, 3, 7, 5, 4, 3, 1, 1),
    (1, 2, 9, 9, 3, 3, 2, 1),
    (3, 4, 6, 6, 5, 1, 1, 0),
    (1, 1, 5, 5, 2, 3, 1, 0),
    (20, 3, 4, 4, 6, 3, 1, 1),
    (19, 5, 3, 3, 2, 1, 1, 0),
    (17, 2, 5, 5, 3, 3, 2, 1),
    (2, 3, 8, 8, 4, 2, 2, 0),
    (4, 8, 16, 16, 8, 3, 1, 1),
    (2, 16, 40, 40, 4, 3, 1, 1),
    (1, 32, 66, 66, 2, 3, 2, 1),
    (3, 2, 2, 2, 3, 5, 1, 2),
    (5, 3, 1, 7, 2, 3, 1, 1),
    (3, 5, 4, 4, 11, 3, 1, 1),
    (2, 3, 8, 8, 9, 5, 1, 2),
    (4, 6, 4, 8, 7, 1, 1, 0),
];

/// Non-square inputs with stride 2, where Candle's own conv2d backward fails (it derives the
/// output padding of the input gradient from the height alone): checked by finite differences only.
const NON_SQUARE_STRIDED: &[(usize, usize, usize, usize, usize, usize, usize, usize)] =
    &[(3, 2, 6, 5, 3, 3, 2, 1), (2, 3, 7, 4, 2, 3, 2, 0)];

#[derive(Clone, Copy, Debug)]
enum BiasKind {
    None,
    Channel,
    Sample,
}

/// Candle's conv2d plus explicit broadcast biases: the reference.
fn reference(x: &Tensor, w: &Tensor, b: Option<&Tensor>, sb: Option<&Tensor>, s: usize, p: usize) -> Tensor {
    let mut y = x.conv2d(w, p, s, 1, 1).unwrap();
    let (nb, o) = (y.dim(0).unwrap(), y.dim(1).unwrap());
    if let Some(b) = b {
        y = y.broadcast_add(&b.reshape((1, o, 1, 1)).unwrap()).unwrap();
    }
    if let Some(sb) = sb {
        y = y.broadcast_add(&sb.reshape((nb, o, 1, 1)).unwrap()).unwrap();
    }
    y
}

struct Case {
    x: Var,
    w: Var,
    b: Option<Var>,
    sb: Option<Var>,
    r: Tensor,
    s: usize,
    p: usize,
}

fn case(
    seed: u64,
    shape: (usize, usize, usize, usize, usize, usize, usize, usize),
    kind: BiasKind,
    dt: DType,
) -> Case {
    let (b, c, h, w, o, k, s, p) = shape;
    let ho = (h + 2 * p - k) / s + 1;
    let wo = (w + 2 * p - k) / s + 1;
    Case {
        x: var(seed, &[b, c, h, w], dt),
        w: var(seed + 1, &[o, c, k, k], dt),
        b: matches!(kind, BiasKind::Channel).then(|| var(seed + 2, &[o], dt)),
        sb: matches!(kind, BiasKind::Sample).then(|| var(seed + 3, &[b, o], dt)),
        r: randn(seed + 4, &[b, o, ho, wo], dt),
        s,
        p,
    }
}

impl Case {
    fn layer(&self) -> Conv2d {
        let cfg = Conv2dConfig { padding: self.p, stride: self.s, ..Default::default() };
        Conv2d::new(self.w.as_tensor().clone(), self.b.as_ref().map(|b| b.as_tensor().clone()), cfg)
    }
    fn fast(&self) -> Tensor {
        self.layer()
            .forward_with_sample_bias(self.x.as_tensor(), self.sb.as_ref().map(|v| v.as_tensor()))
            .unwrap()
    }
    fn slow(&self) -> Tensor {
        let b = self.b.as_ref().map(|v| v.as_tensor());
        reference(
            self.x.as_tensor(),
            self.w.as_tensor(),
            b,
            self.sb.as_ref().map(|v| v.as_tensor()),
            self.s,
            self.p,
        )
    }
    /// `Σ y · r`: a loss whose gradient with respect to `y` is the random tensor `r`.
    fn loss(y: &Tensor, r: &Tensor) -> Tensor {
        (y * r).unwrap().sum_all().unwrap()
    }
    fn vars(&self) -> Vec<(&'static str, &Var)> {
        let mut v = vec![("x", &self.x), ("w", &self.w)];
        if let Some(b) = &self.b {
            v.push(("bias", b));
        }
        if let Some(sb) = &self.sb {
            v.push(("sample_bias", sb));
        }
        v
    }
}

fn compare_with_candle(dt: DType, tol: f64) {
    for (i, &shape) in SHAPES.iter().enumerate() {
        for kind in [BiasKind::None, BiasKind::Channel, BiasKind::Sample] {
            let c = case(10 * i as u64, shape, kind, dt);
            let (yf, ys) = (c.fast(), c.slow());
            let d = max_rel_diff(&yf, &ys);
            assert!(d < tol, "forward {shape:?} {kind:?}: {d:e}");
            let gf = Case::loss(&yf, &c.r).backward().unwrap();
            let gs = Case::loss(&ys, &c.r).backward().unwrap();
            for (name, v) in c.vars() {
                let d = max_rel_diff(gf.get(v).unwrap(), gs.get(v).unwrap());
                assert!(d < tol, "d{name} {shape:?} {kind:?}: {d:e}");
            }
        }
    }
}

#[test]
fn matches_candle_conv2d_in_f64() {
    compare_with_candle(DType::F64, 1e-11);
}

#[test]
fn matches_candle_conv2d_in_f32() {
    compare_with_candle(DType::F32, 2e-4);
}

#[test]
fn gradients_match_finite_differences() {
    let shapes = SHAPES.iter().step_by(2).chain(NON_SQUARE_STRIDED);
    for (i, &shape) in shapes.enumerate() {
        let c = case(
            100 + i as u64,
            shape,
            if i % 4 == 0 { BiasKind::Sample } else { BiasKind::Channel },
            DType::F64,
        );
        let grads = Case::loss(&c.fast(), &c.r).backward().unwrap();
        let loss = || Case::loss(&c.fast(), &c.r).to_scalar::<f64>().unwrap();
        for (name, v) in c.vars() {
            check_fd(v, grads.get(v).unwrap(), &loss, &[0, 7, 31, 1000, 12345], name);
        }
    }
}

#[test]
fn input_gradient_is_skipped_for_constants_only() {
    let c = case(7, SHAPES[0], BiasKind::Channel, DType::F64);
    let x = c.x.as_tensor().detach();
    let y = c.layer().forward(&x).unwrap();
    let grads = Case::loss(&y, &c.r).backward().unwrap();
    assert!(grads.get(&x).is_none());
    assert!(grads.get(c.w.as_tensor()).is_some());
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let c = case(3, SHAPES[4], BiasKind::Sample, DType::F32);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let y = c.fast();
            let g = Case::loss(&y, &c.r).backward().unwrap();
            (common::values(&y), common::values(g.get(&c.x).unwrap()))
        })
    };
    let (y1, dx1) = run(1);
    let (y3, dx3) = run(3);
    assert_eq!(y1, y3, "forward is computed per image group: no reduction across threads");
    assert_eq!(dx1, dx3, "the input gradient has no reduction across images");
}

#[test]
fn strided_input_gives_the_same_result() {
    let c = case(5, SHAPES[0], BiasKind::Channel, DType::F64);
    let xt = c.x.as_tensor().transpose(2, 3).unwrap().contiguous().unwrap().transpose(2, 3).unwrap();
    assert!(!xt.is_contiguous());
    let y = c.layer().forward(&xt).unwrap();
    assert!(max_rel_diff(&y, &c.slow()) < 1e-12);
}

#[test]
fn channel_mismatch_is_an_error() {
    let x = randn(1, &[1, 3, 5, 5], DType::F32);
    let w = randn(2, &[4, 2, 3, 3], DType::F32);
    let err = Conv2d::new(w, None, Default::default()).forward(&x).unwrap_err();
    assert!(err.to_string().contains("3 channels"), "{err}");
}

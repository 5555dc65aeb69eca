//! The 2x2 stride-2 transposed conv against Candle's `conv_transpose2d` (forward and gradients)
//! and finite differences in f64.

mod common;

use candle::DType;
use common::{check_fd, max_rel_diff, randn, var};
use memgen_kernels::conv_transpose2x2;

/// `(B, K, H, W, O)`.
const SHAPES: &[(usize, usize, usize, usize, usize)] =
    &[(2, 3, 4, 4, 5), (1, 1, 1, 1, 1), (3, 8, 3, 5, 2), (4, 16, 8, 8, 8)];

#[test]
fn matches_candle_and_finite_differences() {
    for (i, &(b, k, h, w, o)) in SHAPES.iter().enumerate() {
        for (dt, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
            let seed = 30 * i as u64;
            let x = var(seed, &[b, k, h, w], dt);
            let wt = var(seed + 1, &[k, o, 2, 2], dt);
            let r = randn(seed + 2, &[b, o, 2 * h, 2 * w], dt);
            let yf = conv_transpose2x2(&x, &wt).unwrap();
            let ys = x.conv_transpose2d(&wt, 0, 0, 2, 1).unwrap();
            assert!(max_rel_diff(&yf, &ys) < tol, "forward {:?}", SHAPES[i]);
            let gf = (&yf * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gs = (&ys * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("x", &x), ("w", &wt)] {
                let d = max_rel_diff(gf.get(v).unwrap(), gs.get(v).unwrap());
                assert!(d < tol, "d{name} {:?} {dt:?}: {d:e}", SHAPES[i]);
            }
            if dt == DType::F64 {
                let loss = || {
                    (conv_transpose2x2(&x, &wt).unwrap() * &r)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f64>()
                        .unwrap()
                };
                check_fd(&x, gf.get(&x).unwrap(), &loss, &[0, 3, 11], "x");
                check_fd(&wt, gf.get(&wt).unwrap(), &loss, &[0, 5, 9], "w");
            }
        }
    }
}

#[test]
fn kernel_other_than_2x2_is_an_error() {
    let x = randn(1, &[1, 2, 3, 3], DType::F32);
    let w = randn(2, &[2, 3, 3, 3], DType::F32);
    let err = conv_transpose2x2(&x, &w).unwrap_err();
    assert!(err.to_string().contains("(K, O, 2, 2)"), "{err}");
}

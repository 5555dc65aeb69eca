//! Nearest ×2 upsampling: values equal Candle's `upsample_nearest2d`, and the gradient of an input
//! that also feeds another branch is the sum of both (Candle's own op overwrites it).

mod common;

use candle::DType;
use common::{max_rel_diff, randn, values, var};
use memgen_kernels::upsample_nearest2x;

#[test]
fn values_equal_candle_upsample() {
    for dt in [DType::F32, DType::F64] {
        let x = randn(1, &[2, 3, 5, 4], dt);
        let d = max_rel_diff(&upsample_nearest2x(&x).unwrap(), &x.upsample_nearest2d(10, 8).unwrap());
        assert_eq!(d, 0.0);
    }
}

#[test]
fn gradient_sums_blocks_and_adds_to_other_branches() {
    let x = var(2, &[2, 3, 4, 3], DType::F64);
    let r = randn(3, &[2, 3, 8, 6], DType::F64);
    let s = randn(4, &[2, 3, 4, 3], DType::F64);
    let up = upsample_nearest2x(&x).unwrap();
    let loss =
        ((&up * &r).unwrap().sum_all().unwrap() + (x.as_tensor() * &s).unwrap().sum_all().unwrap()).unwrap();
    let g = values(loss.backward().unwrap().get(&x).unwrap());
    let (rv, sv) = (values(&r), values(&s));
    for (i, gi) in g.iter().enumerate() {
        let (plane, rest) = (i / 12, i % 12);
        let (row, col) = (rest / 3, rest % 3);
        let block: f64 = [(0, 0), (0, 1), (1, 0), (1, 1)]
            .iter()
            .map(|(a, b)| rv[plane * 48 + (2 * row + a) * 6 + 2 * col + b])
            .sum();
        assert!((gi - (block + sv[i])).abs() < 1e-12, "entry {i}: {gi} vs {}", block + sv[i]);
    }
}

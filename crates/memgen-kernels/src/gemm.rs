//! A checked wrapper around the `gemm` crate: `dst ← [dst +] lhs · rhs` on strided row-major views.

use crate::elem::Float;
use gemm::Parallelism;

/// A read-only strided `rows x cols` view: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub struct View<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> View<'a, T> {
    /// A contiguous row-major view with `cols` columns.
    pub fn rows(data: &'a [T], cols: usize) -> Self {
        View { data, rs: cols, cs: 1 }
    }

    /// The transpose of a contiguous row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [T], cols: usize) -> Self {
        View { data, rs: 1, cs: cols }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (m x n, element (i, j) at i·rs + j·cs) ← [dst +] lhs (m x k) · rhs (k x n)`:
/// accumulates when `accumulate`, overwrites otherwise. `threads > 1` splits the product itself.
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: View<'_, T>,
    rhs: View<'_, T>,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * dst_rs + (n - 1) * dst_cs < dst.len(), "gemm: dst too small");
    assert!(lhs.fits(m, k) && rhs.fits(k, n), "gemm: operand too small");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                (0..n).for_each(|j| dst[i * dst_rs + j * dst_cs] = T::zero());
            }
        }
        return;
    }
    let par = if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None };
    // SAFETY: the asserts above keep every index the product touches inside the three slices,
    // `dst` is borrowed mutably and cannot alias the shared operands, and T is f32 or f64.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        )
    }
}

/// Splits `0..n` into `parts` contiguous ranges of near-equal length (the first ones one longer).
pub(crate) fn partition(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (q, r) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = q + usize::from(i < r);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{matmul, partition, View};

    /// `dst[i·drs + j·dcs] (+)= Σ_l a[i·ars + l·acs] · b[l·brs + j·bcs]` by the triple loop.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        m: usize,
        n: usize,
        k: usize,
        dst: &mut [f64],
        d: (usize, usize),
        acc: bool,
        a: View<f64>,
        b: View<f64>,
    ) {
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|l| a.data[i * a.rs + l * a.cs] * b.data[l * b.rs + j * b.cs]).sum();
                let e = &mut dst[i * d.0 + j * d.1];
                *e = if acc { *e + s } else { s };
            }
        }
    }

    #[test]
    fn strided_products_match_the_triple_loop() {
        let val = |i: usize| ((i * 7919) % 23) as f64 - 11.0;
        for &(m, n, k) in &[(1, 1, 1), (5, 7, 3), (17, 9, 33), (64, 3, 130), (3, 70, 2)] {
            let a: Vec<f64> = (0..m * k).map(val).collect();
            let b: Vec<f64> = (0..k * n).map(|i| val(i + 5)).collect();
            for (a_t, b_t, d_t, acc) in [
                (false, false, false, false),
                (true, false, true, true),
                (false, true, true, false),
                (true, true, false, true),
            ] {
                let av = if a_t { View::transposed(&a, m) } else { View::rows(&a, k) };
                let bv = if b_t { View::transposed(&b, k) } else { View::rows(&b, n) };
                let d = if d_t { (1, m) } else { (n, 1) };
                let init: Vec<f64> = (0..m * n).map(|i| val(i + 3)).collect();
                let (mut got, mut want) = (init.clone(), init);
                matmul(m, n, k, &mut got, d, acc, av, bv, 2);
                naive(m, n, k, &mut want, d, acc, av, bv);
                assert_eq!(got, want, "{m}x{n}x{k} a_t={a_t} b_t={b_t} d_t={d_t} acc={acc}");
            }
        }
    }

    #[test]
    fn partition_covers_the_range_in_near_equal_parts() {
        for (n, parts) in [(10, 3), (2, 5), (0, 2), (64, 2), (7, 7)] {
            let p = partition(n, parts);
            assert_eq!(p.first().map(|r| r.start), Some(0));
            assert_eq!(p.last().map(|r| r.end), Some(n));
            assert!(p.windows(2).all(|w| w[0].end == w[1].start));
            let lens: Vec<usize> = p.iter().map(|r| r.len()).collect();
            assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1, "{lens:?}");
        }
    }
}

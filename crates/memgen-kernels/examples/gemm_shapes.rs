use std::time::Instant;
fn run(m: usize, n: usize, k: usize, threads: usize, trans_b: bool) -> f64 {
    let a = vec![1.0f32; m * k];
    let b = vec![1.0f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        let reps = (2e9 / (2.0 * (m * n * k) as f64)).ceil() as usize;
        for _ in 0..reps {
            unsafe {
                let (rcs, rrs) = if trans_b { (k as isize, 1) } else { (1, n as isize) };
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    rcs,
                    rrs,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
        best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}
/// general strides: dst (m x n) with (drs, dcs), lhs (m x k) with (lrs, lcs), rhs (k x n) with (rrs, rcs)
fn run_s(
    m: usize,
    n: usize,
    k: usize,
    threads: usize,
    d: (isize, isize),
    l: (isize, isize),
    r: (isize, isize),
) -> f64 {
    let a = vec![1.0f32; m * k];
    let b = vec![1.0f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        let reps = (2e9 / (2.0 * (m * n * k) as f64)).ceil() as usize;
        for _ in 0..reps {
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    d.1,
                    d.0,
                    true,
                    a.as_ptr(),
                    l.1,
                    l.0,
                    b.as_ptr(),
                    r.1,
                    r.0,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
        best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}
fn main() {
    // dW (32 x 288) = dY (32 x 1024, k-contig) . col^T (col 288 x 1024 row-major)
    let (m, n, k) = (32usize, 288usize, 1024usize);
    println!(
        "dW rowmajor dst, lhs k-contig, rhs k-contig: {:.0}",
        run_s(m, n, k, 1, (n as isize, 1), (k as isize, 1), (1, k as isize))
    );
    println!(
        "dW colmajor dst (dW^T), lhs k-contig, rhs k-contig: {:.0}",
        run_s(m, n, k, 1, (1, m as isize), (k as isize, 1), (1, k as isize))
    );
    println!(
        "dW rowmajor dst, lhs k-contig, rhs n-contig (im2row): {:.0}",
        run_s(m, n, k, 1, (n as isize, 1), (k as isize, 1), (n as isize, 1))
    );
    println!(
        "dW colmajor dst, lhs k-contig, rhs n-contig (im2row): {:.0}",
        run_s(m, n, k, 1, (1, m as isize), (k as isize, 1), (n as isize, 1))
    );
    println!(
        "dW colmajor dst, lhs m-contig, rhs k-contig: {:.0}",
        run_s(m, n, k, 1, (1, m as isize), (1, m as isize), (1, k as isize))
    );
    println!(
        "dW rowmajor dst, lhs m-contig, rhs n-contig: {:.0}",
        run_s(m, n, k, 1, (n as isize, 1), (1, m as isize), (n as isize, 1))
    );
    for (m, n, k) in [
        (128usize, 64usize, 1152usize),
        (128, 256, 1152),
        (128, 64, 2304),
        (128, 256, 2304),
        (64, 256, 576),
        (64, 1024, 576),
    ] {
        println!(
            "fwd {m}x{n}x{k}: {:.0}",
            run_s(m, n, k, 1, (n as isize, 1), (k as isize, 1), (n as isize, 1))
        );
        println!(
            "dx  {k}x{n}x{m}: {:.0}",
            run_s(k, n, m, 1, (n as isize, 1), (1, k as isize), (n as isize, 1))
        );
        println!(
            "dW  {m}x{k}x{n}: {:.0}",
            run_s(m, k, n, 1, (1, m as isize), (n as isize, 1), (1, n as isize))
        );
    }
    // level 3 dW: 128 x 1152 x 256
    let (m, n, k) = (128usize, 1152usize, 256usize);
    println!(
        "L3 dW rowmajor, k-contig both: {:.0}",
        run_s(m, n, k, 1, (n as isize, 1), (k as isize, 1), (1, k as isize))
    );
    println!(
        "L3 dW colmajor dst, k-contig both: {:.0}",
        run_s(m, n, k, 1, (1, m as isize), (k as isize, 1), (1, k as isize))
    );
    println!(
        "L3 dW rowmajor, rhs n-contig: {:.0}",
        run_s(m, n, k, 1, (n as isize, 1), (k as isize, 1), (n as isize, 1))
    );
    return;
    for (m, n, k, tb) in [
        (2048, 2048, 2048, false),
        (32, 1024, 288, false),
        (32, 2048, 288, false),
        (64, 256, 576, false),
        (128, 256, 1152, false),
        (32, 288, 1024, true),
        (288, 1024, 32, false),
        (1152, 256, 128, false),
        (1024, 32, 288, false),
    ] {
        println!(
            "{m} x {n} x {k} transB={tb}: 1 thread {:.0} GF/s, 2 threads {:.0}",
            run(m, n, k, 1, tb),
            run(m, n, k, 2, tb)
        );
    }
}

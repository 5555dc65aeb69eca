use std::time::Instant;
fn run_s(m: usize, n: usize, k: usize, d: (isize, isize), l: (isize, isize), r: (isize, isize)) -> f64 {
    let a = vec![1.0f32; m * k.max(1) * 4];
    let b = vec![1.0f32; k * n * 4];
    let mut c = vec![0.0f32; m * n * 4];
    let mut best = f64::MAX;
    for _ in 0..7 {
        let reps = (1e9 / (2.0 * (m * n * k) as f64)).ceil() as usize;
        let t0 = Instant::now();
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
                    gemm::Parallelism::None,
                );
            }
        }
        best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}
fn main() {
    if std::env::var_os("FWD").is_some() {
        fwd_variants();
        return;
    }
    for (m, n, k, lrs) in [
        (32usize, 288usize, 320usize, 1024usize),
        (32, 288, 1024, 1024),
        (32, 576, 320, 1024),
        (32, 576, 1024, 1024),
        (64, 576, 256, 256),
        (128, 1152, 256, 64),
        (128, 2304, 256, 64),
    ] {
        // dW (m x n) += dY (m x k, row stride lrs) * col^T (col: n x k row-major)
        let t = run_s(m, n, k, (1, m as isize), (lrs as isize, 1), (1, k as isize));
        let r = run_s(m, n, k, (n as isize, 1), (lrs as isize, 1), (1, k as isize));
        // alternative: col stored transposed (k x n row-major, "im2row")
        let t2 = run_s(m, n, k, (1, m as isize), (lrs as isize, 1), (n as isize, 1));
        println!("dW {m}x{n}x{k}: dstT {t:.0}  dst row {r:.0}  im2row+dstT {t2:.0}");
    }
}
#[allow(dead_code)]
pub fn fwd_variants() {
    for (m, n, k) in [
        (32usize, 320usize, 288usize),
        (32, 1024, 288),
        (32, 320, 576),
        (64, 256, 576),
        (128, 256, 1152),
        (64, 1024, 576),
    ] {
        let i = run_s(m, n, k, (n as isize, 1), (k as isize, 1), (n as isize, 1));
        let ii = run_s(m, n, k, (1, m as isize), (k as isize, 1), (n as isize, 1));
        let iii = run_s(m, n, k, (n as isize, 1), (k as isize, 1), (1, k as isize));
        let iv = run_s(m, n, k, (1, m as isize), (k as isize, 1), (1, k as isize));
        let v = run_s(m, n, k, (1, m as isize), (1, m as isize), (1, k as isize));
        println!("fwd {m}x{n}x{k}: cur {i:.0}  dstT {ii:.0}  im2row {iii:.0}  im2row+dstT {iv:.0}  im2row+dstT+WT {v:.0}");
    }
}

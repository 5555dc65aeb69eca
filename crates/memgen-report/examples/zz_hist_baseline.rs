// TEMPORARY: dump histogram outputs to compare before/after a refactor. Delete afterwards.
use memgen_report::histogram::{HistogramPlot, Series};
fn main() {
    let a: Vec<f64> = (0..100).map(|i| 0.2 + 0.004 * i as f64).collect();
    let b: Vec<f64> = (0..50).map(|i| 0.9 + 0.01 * i as f64).collect();
    let c: Vec<f64> = (0..400).map(|i| -1.2 + 0.015 * i as f64).collect();
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    std::fs::create_dir_all(&out).unwrap();
    let mk = |series: Vec<Series<'_>>, lo: f64, hi: f64, bins: usize| {
        let p = HistogramPlot { title: "Distances <&>".into(), x_label: "L2 distance".into(), series, lo, hi, bins };
        let mut v = vec![p.to_svg().unwrap().into_bytes()];
        for (w, h) in [(640, 480), (300, 200), (1400, 1000), (2600, 2000)] {
            v.push(p.to_png(w, h).unwrap().into_raw());
        }
        v
    };
    let sets = [
        mk(vec![Series { name: "a".into(), values: &a }, Series { name: "b <x>".into(), values: &b }, Series { name: "c".into(), values: &c }], 0.0, 2.0, 20),
        mk(vec![], -3.0, 1e-3, 7),
        mk(vec![Series { name: "c".into(), values: &c }], -1e8, 3e8, 50),
        mk(vec![Series { name: "b".into(), values: &b }], 0.9, 0.9000001, 5),
    ];
    for (i, s) in sets.iter().enumerate() {
        for (j, bytes) in s.iter().enumerate() {
            std::fs::write(out.join(format!("{i}_{j}.bin")), bytes).unwrap();
        }
    }
}

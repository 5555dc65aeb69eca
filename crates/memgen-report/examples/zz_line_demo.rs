// TEMPORARY demo; delete afterwards.
use memgen_report::{LinePlot, LineSeries, LineStyle};
fn main() {
    let ns = [16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0];
    let kl: Vec<(f64, f64)> = ns.iter().map(|&n: &f64| (n, 50.0 / n.sqrt() + 0.01)).collect();
    let kl2: Vec<(f64, f64)> = ns.iter().map(|&n: &f64| (n, 300.0 / n + 0.002)).collect();
    let th: Vec<(f64, f64)> = ns.iter().map(|&n: &f64| (n, 100.0 / n)).collect();
    let sc: Vec<(f64, f64)> = ns.iter().map(|&n: &f64| (n * 1.3, 20.0 / n.powf(0.7))).chain([(0.0, 1.0), (100.0, f64::NAN)]).collect();
    let p = LinePlot {
        title: "KL vs N (d = 3072)".into(),
        x_label: "training set size N".into(),
        y_label: "KL(model || data)".into(),
        series: vec![
            LineSeries { name: "lambda = 0".into(), points: &kl, style: LineStyle::LineAndMarkers },
            LineSeries { name: "lambda = 1e-3".into(), points: &kl2, style: LineStyle::Line },
            LineSeries { name: "theory".into(), points: &th, style: LineStyle::Dashed },
            LineSeries { name: "runs <seed>".into(), points: &sc, style: LineStyle::Markers },
        ],
        log_x: true,
        log_y: true,
        vlines: vec![(3072.0, "N = d".into())],
    };
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    std::fs::create_dir_all(&out).unwrap();
    memgen_report::save_svg(&p.to_svg().unwrap(), &out.join("kl.svg")).unwrap();
    memgen_report::save_rgb_png(&p.to_png(640, 480).unwrap(), &out.join("kl.png")).unwrap();
    memgen_report::save_rgb_png(&p.to_png(1400, 1000).unwrap(), &out.join("kl_big.png")).unwrap();
    let lam = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1];
    let k: Vec<(f64, f64)> = lam.iter().map(|&l: &f64| (l, 0.3 + (l.log10() + 3.0).powi(2) * 0.05)).collect();
    let q = LinePlot { title: "KL vs weight decay".into(), x_label: "weight decay".into(), y_label: "KL".into(),
        series: vec![LineSeries { name: "N = 1024".into(), points: &k, style: LineStyle::LineAndMarkers }], log_x: true, log_y: false, vlines: vec![] };
    memgen_report::save_rgb_png(&q.to_png(640, 480).unwrap(), &out.join("wd.png")).unwrap();
    memgen_report::save_svg(&q.to_svg().unwrap(), &out.join("wd.svg")).unwrap();
}

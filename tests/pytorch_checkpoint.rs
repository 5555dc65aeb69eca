//! Checkpoints read outside memgen: the tensor names and shapes the README documents, what the
//! safetensors PyPI package (numpy backend) reads from a trained run's files (names, dtypes, shapes,
//! values), and, when a Python with torch is given, scripts/load_in_torch.py's forward pass against
//! memgen's on the same input.
//!
//! Python: `MEMGEN_PYTHON` (else `python3`, skipped when it lacks safetensors or numpy; with
//! `MEMGEN_PYTHON` set they are required). Torch: `MEMGEN_TORCH_PYTHON` (skipped when unset).

mod common;

use candle::{DType, Device, Tensor};
use memgen_diffusion::unet::UNetConfig;
use memgen_diffusion::{Denoiser, Model, ModelConfig};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Tensor names and shapes of a UNet checkpoint, built from the naming scheme of the README's
/// "Checkpoints in PyTorch" table alone (not from memgen's model code).
fn documented_tensors(cfg: &UNetConfig) -> BTreeMap<String, Vec<usize>> {
    struct Names(BTreeMap<String, Vec<usize>>, usize);
    impl Names {
        fn put(&mut self, name: String, shape: Vec<usize>) {
            assert!(self.0.insert(name, shape).is_none());
        }
        fn conv(&mut self, p: &str, cin: usize, cout: usize, k: usize) {
            self.put(format!("{p}.weight"), vec![cout, cin, k, k]);
            self.put(format!("{p}.bias"), vec![cout]);
        }
        fn norm(&mut self, p: &str, c: usize) {
            self.put(format!("{p}.weight"), vec![c]);
            self.put(format!("{p}.bias"), vec![c]);
        }
        fn res(&mut self, p: &str, cin: usize, cout: usize) {
            self.norm(&format!("{p}.norm1"), cin);
            self.conv(&format!("{p}.conv1"), cin, cout, 3);
            self.put(format!("{p}.temb.weight"), vec![cout, self.1]);
            self.put(format!("{p}.temb.bias"), vec![cout]);
            self.norm(&format!("{p}.norm2"), cout);
            self.conv(&format!("{p}.conv2"), cout, cout, 3);
            if cin != cout {
                self.conv(&format!("{p}.skip"), cin, cout, 1);
            }
        }
    }
    let (t, base, levels) = (cfg.time_embed_dim, cfg.base_channels, cfg.channel_mult.len());
    let width = |i: usize| base * cfg.channel_mult[i];
    let mut n = Names(BTreeMap::new(), t);
    n.put("time_embed.0.weight".into(), vec![t, base]);
    n.put("time_embed.0.bias".into(), vec![t]);
    n.put("time_embed.2.weight".into(), vec![t, t]);
    n.put("time_embed.2.bias".into(), vec![t]);
    n.conv("conv_in", cfg.in_channels, base, 3);
    let (mut ch, mut skips) = (base, vec![base]);
    for i in 0..levels {
        for j in 0..cfg.num_res_blocks {
            n.res(&format!("down.{i}.res.{j}"), ch, width(i));
            ch = width(i);
            skips.push(ch);
        }
        if i + 1 < levels {
            n.conv(&format!("down.{i}.downsample"), ch, ch, 3);
            skips.push(ch);
        }
    }
    for j in 0..2 {
        n.res(&format!("mid.res.{j}"), ch, ch);
    }
    for i in (0..levels).rev() {
        for j in 0..cfg.num_res_blocks + 1 {
            let skip = skips.pop().unwrap();
            n.res(&format!("up.{i}.res.{j}"), ch + skip, width(i));
            ch = width(i);
        }
        if i > 0 {
            n.conv(&format!("up.{i}.upsample"), ch, ch, 3);
        }
    }
    n.norm("out.norm", ch);
    n.conv("out.conv", ch, cfg.out_channels, 3);
    n.0
}

#[test]
fn documented_names_cover_unet_s_and_unet_tiny() {
    for (cfg, params, tensors) in [(UNetConfig::default(), 3_541_569, 210), (UNetConfig::tiny(), 40_489, 104)]
    {
        let doc = documented_tensors(&cfg);
        let total: usize = doc.values().map(|s| s.iter().product::<usize>()).sum();
        assert_eq!(total, params, "{cfg:?}");
        assert_eq!(total, cfg.parameter_count());
        assert_eq!(doc.len(), tensors, "{cfg:?}");
    }
}

/// The Python named by the environment variable `var`, if set and not empty.
fn python(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|p| !p.is_empty())
}

/// Whether `py` can import `modules`; panics when it cannot and `required`.
fn can_import(py: &str, modules: &str, required: bool, why: &str) -> bool {
    let out = Command::new(py).args(["-c", &format!("import {modules}")]).output();
    let err = match out {
        Ok(o) if o.status.success() => return true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    assert!(!required, "{why}: `{py} -c \"import {modules}\"` failed: {err}");
    eprintln!(
        "skipped: `{py} -c \"import {modules}\"` failed ({}); {why}",
        err.trim().lines().last().unwrap_or("")
    );
    false
}

fn run_python(py: &str, args: &[&str]) -> String {
    let out = Command::new(py).args(args).output().unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{py} {args:?} failed\nstdout: {so}\nstderr: {se}");
    so.into_owned()
}

/// Flat indices 0, 1, n/3, n/2, n-1 (those that exist), as the Python dump picks them.
fn probe_indices(n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> =
        [0, 1, n / 3, n / 2, n.wrapping_sub(1)].into_iter().filter(|&i| i < n).collect();
    idx.sort_unstable();
    idx.dedup();
    idx
}

/// Compare what Python's safetensors read from `file` with the names and shapes of `doc` and with
/// the values memgen's reader (candle) gets from the same file.
fn check_file(py: &str, file: &Path, doc: &BTreeMap<String, Vec<usize>>) {
    let dump = repo("tests/python/safetensors_dump.py");
    let got: BTreeMap<String, Value> =
        serde_json::from_str(&run_python(py, &[dump.to_str().unwrap(), file.to_str().unwrap()]))
            .expect("the dump is JSON");
    let names: Vec<&String> = got.keys().collect();
    assert_eq!(names, doc.keys().collect::<Vec<_>>(), "{}: tensor names", file.display());
    let tensors: HashMap<String, Tensor> = candle::safetensors::load(file, &Device::Cpu).unwrap();
    let mut nonzero = 0;
    for (name, shape) in doc {
        let g = &got[name];
        assert_eq!(g["dtype"], "F32", "{name}");
        assert_eq!(g["numpy_dtype"], "float32", "{name}");
        let py_shape: Vec<usize> = serde_json::from_value(g["shape"].clone()).unwrap();
        assert_eq!(&py_shape, shape, "{name}");
        let t = &tensors[name];
        assert_eq!(t.dtype(), DType::F32);
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        let abs: f64 = v.iter().map(|&x| (x as f64).abs()).sum();
        let py_sum = g["sum"].as_f64().unwrap();
        assert!((py_sum - sum).abs() <= 1e-12 * abs.max(1.0), "{name}: sum {py_sum} (Python) vs {sum}");
        let elems = g["elements"].as_object().unwrap();
        let idx = probe_indices(v.len());
        assert_eq!(elems.len(), idx.len(), "{name}");
        for i in idx {
            let py_v = elems[&i.to_string()].as_f64().unwrap() as f32;
            assert_eq!(py_v.to_bits(), v[i].to_bits(), "{name}[{i}]: {py_v} (Python) vs {}", v[i]);
        }
        nonzero += usize::from(abs > 0.0);
    }
    assert!(nonzero > doc.len() / 2, "{}: most tensors are all zeros", file.display());
}

#[test]
fn safetensors_package_reads_names_shapes_and_values() {
    let named = python("MEMGEN_PYTHON");
    let required = named.is_some();
    let py = named.unwrap_or_else(|| "python3".into());
    let why = if required {
        "MEMGEN_PYTHON is set, so safetensors and numpy are required"
    } else {
        "set MEMGEN_PYTHON to a Python with `pip install safetensors numpy` to run this test"
    };
    if !can_import(&py, "safetensors, numpy", required, why) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (ds, run) = (tmp.path().join("ds"), tmp.path().join("run"));
    common::prepare(&ds, "calpha", 40, 8);
    common::train_model(&ds, &run, "unet-tiny", 8, "a", 5, 4);
    let doc = documented_tensors(&UNetConfig::tiny());
    for file in ["model.safetensors", "ema.safetensors", "checkpoints/step-00000005/model.safetensors"] {
        check_file(&py, &run.join(file), &doc);
    }
    // Trained weights, not the initial ones: the final EMA differs from the raw weights.
    let a = candle::safetensors::load(run.join("model.safetensors"), &Device::Cpu).unwrap();
    let b = candle::safetensors::load(run.join("ema.safetensors"), &Device::Cpu).unwrap();
    let w = "down.0.res.0.conv1.weight";
    let d: f32 = (&a[w] - &b[w]).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(d > 0.0, "{w}: model and EMA weights are identical after 5 steps");
}

/// A fixed input for the forward comparison: (B, C, side, side) values in about [-1.5, 1.5].
fn fixed_input(b: usize, c: usize, side: usize) -> Tensor {
    let n = b * c * side * side;
    let v: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 3.0).collect();
    Tensor::from_vec(v, (b, c, side, side), &Device::Cpu).unwrap()
}

/// memgen's forward and scripts/load_in_torch.py's on the same input; returns the max abs difference
/// and the max abs output.
fn compare_forward(py: &str, run: &Path, side: usize, tmp: &Path) -> (f32, f32) {
    let cfg = memgen_diffusion::run::RunConfig::load(run).unwrap().train.model;
    assert!(matches!(cfg, ModelConfig::Unet(_)));
    let model: Model = memgen_diffusion::train::load_model(&cfg, run, false, &Device::Cpu).unwrap();
    let x = fixed_input(3, cfg.in_channels(), side);
    let steps = [0u32, 137, 999];
    let t = Tensor::new(&steps, &Device::Cpu).unwrap();
    let ours = model.forward(&x, &t).unwrap();
    let (inp, out) = (tmp.join("in.safetensors"), tmp.join("out.safetensors"));
    let t_f32 = Tensor::new(&steps.map(|s| s as f32), &Device::Cpu).unwrap();
    candle::safetensors::save(&HashMap::from([("x".to_string(), x), ("t".to_string(), t_f32)]), &inp)
        .unwrap();
    let script = repo("scripts/load_in_torch.py");
    let args = [
        script.to_str().unwrap(),
        run.to_str().unwrap(),
        "--forward",
        inp.to_str().unwrap(),
        out.to_str().unwrap(),
    ];
    let said = run_python(py, &args);
    assert!(said.contains("strict=True"), "{said}");
    let theirs =
        candle::safetensors::load(&out, &Device::Cpu).unwrap().remove("eps").expect("eps in the output");
    assert_eq!(theirs.dims(), ours.dims());
    let max_abs = |t: &Tensor| -> f32 { t.abs().unwrap().max_all().unwrap().to_scalar().unwrap() };
    (max_abs(&(&ours - &theirs).unwrap()), max_abs(&ours))
}

#[test]
fn torch_forward_matches_memgen() {
    let Some(py) = python("MEMGEN_TORCH_PYTHON") else {
        eprintln!("skipped: set MEMGEN_TORCH_PYTHON to a Python with torch and safetensors to compare forward passes");
        return;
    };
    assert!(can_import(&py, "torch, safetensors", true, "MEMGEN_TORCH_PYTHON is set"));
    let tmp = tempfile::tempdir().unwrap();
    for (model, side, steps, batch) in [("unet-tiny", 8, 5, 4), ("unet-s", 32, 2, 2)] {
        let (ds, run) = (tmp.path().join(format!("ds-{side}")), tmp.path().join(format!("run-{side}")));
        common::prepare(&ds, "calpha", 40, side);
        common::train_model(&ds, &run, model, 8, "a", steps, batch);
        let (diff, scale) = compare_forward(&py, &run, side, tmp.path());
        eprintln!("{model}: max |memgen - torch| = {diff:.3e} (max |output| = {scale:.3})");
        assert!(scale > 0.1, "{model}: output too small to compare ({scale})");
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{model}: forward outputs differ by {diff} (max |output| {scale})"
        );
    }
}

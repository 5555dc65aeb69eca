#!/usr/bin/env python3
"""memgen vs PyTorch on the same machine, same threads, in one run.

Alternates `memgen bench --save FILE` and its PyTorch twin for each network, ROUNDS times, and prints
the median images/s of each with their ratio. Machines of one kind differ by 1.5x and a single
machine drifts over minutes, so only the interleaved ratio is meaningful.

Networks (`--nets NAME:SIDE:BATCH,...`; default unet-s at each of `--sizes`, and blind-tiny at 16x16,
batch 128): `unet-s` (shared/bench/torch_unet_s.py), `blind-tiny` (shared/bench/torch_blind_unet.py)
and any other shipped time-conditioned UNet such as `unet-demo` (scripts/torch_unet_config.py with
models/NAME.toml, i.e. scripts/load_in_torch.py's UNet). `--threads 1,2` repeats the table for each
thread count; `--before BINARY` adds a column for another memgen build (e.g. the previous commit's).

Usage: scripts/bench-vs-torch.py [--rounds 3] [--threads 2] [--torch-python PY] [--sizes 32:64,80:16]
       scripts/bench-vs-torch.py --nets blind-tiny:16:128,unet-demo:16:32 --threads 1,2 [--before OLD]
Needs: a release build (target/release/memgen) and a Python with torch
(python3 -m venv .venv-torch && .venv-torch/bin/pip install torch numpy; scripts/torch_unet_config.py
also needs safetensors).
"""
import argparse, json, os, re, statistics, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def memgen(binary, side, batch, steps, env, net="unet-s"):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([binary, "bench", "--only", "nets", "--net", f"{net}:{side}:{batch}", "--steps", str(steps),
                        "--save", f.name], check=True, env=env, stdout=subprocess.DEVNULL)
        r = json.load(open(f.name))["networks"][0]
    return r["train_images_per_s"], r["forward_images_per_s"]


def torch(python, script, args, env):
    out = subprocess.run([python, script, *map(str, args)], check=True, env=env,
                         capture_output=True, text=True).stdout
    train = float(re.search(r"train .*?([0-9.]+) img/s", out).group(1))
    fwd = float(re.search(r"forward .*?([0-9.]+) img/s", out).group(1))
    return train, fwd


def torch_case(a, net, side, batch, steps):
    """The PyTorch script and arguments of network NET."""
    bench = a.torch_bench
    if net == "unet-s":
        return os.path.join(bench, "torch_unet_s.py"), [side, batch, steps]
    if net == "blind-tiny":
        return os.path.join(bench, "torch_blind_unet.py"), [side, 16, 2, batch, steps]
    cfg = os.path.join(ROOT, "models", f"{net}.toml")
    return os.path.join(ROOT, "scripts", "torch_unet_config.py"), [cfg, side, batch, steps]


def steps_for(net, a):
    """Timed steps: more for the small networks, whose steps take milliseconds."""
    return a.steps if net == "unet-s" else 10 * a.steps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="2", help="thread counts, comma-separated (e.g. 1,2)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per measurement (x10 for small nets)")
    ap.add_argument("--sizes", default="32:64,80:16", help="SIDE:BATCH list for unet-s")
    ap.add_argument("--nets", help="NAME:SIDE:BATCH list; replaces --sizes and blind-tiny")
    ap.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON", os.path.join(ROOT, ".venv-torch/bin/python")))
    ap.add_argument("--torch-bench", default=os.path.join(ROOT, "..", "shared", "bench"),
                    help="directory of torch_unet_s.py and torch_blind_unet.py")
    ap.add_argument("--no-blind", action="store_true", help="skip blind-tiny")
    ap.add_argument("--memgen", default=os.path.join(ROOT, "target", "release", "memgen"))
    ap.add_argument("--before", help="another memgen binary to time in the same rounds (e.g. the last commit's)")
    a = ap.parse_args()
    if a.nets:
        cases = [(n, int(s), int(b)) for n, s, b in (v.split(":") for v in a.nets.split(","))]
    else:
        cases = [("unet-s", int(s), int(b)) for s, b in (v.split(":") for v in a.sizes.split(","))]
        if not a.no_blind:
            cases.append(("blind-tiny", 16, 128))
    needed = [(a.memgen, "memgen binary (cargo build --release)"), (a.torch_python, "Python with torch")]
    needed += [(torch_case(a, n, s, b, 1)[0], f"PyTorch twin of {n}") for n, s, b in cases]
    needed += [(a.before, "--before binary")] if a.before else []
    for path, what in needed:
        if not os.path.exists(path):
            sys.exit(f"error: {what} not found at {path}")
    for threads in [int(t) for t in a.threads.split(",")]:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        print(f"\n{threads} thread(s), median of {a.rounds} interleaved rounds (images/s)\n")
        before = "memgen before train | " if a.before else ""
        before_f = "memgen before forward | " if a.before else ""
        print(f"| network | side | batch | {before}memgen train | PyTorch train | ratio | "
              f"{before_f}memgen forward | PyTorch forward | ratio |")
        print("|---|---|---|" + "---|" * (8 if a.before else 6))
        for net, side, batch in cases:
            m, t, o = [], [], []
            steps = steps_for(net, a)
            for _ in range(a.rounds):
                m.append(memgen(a.memgen, side, batch, steps, env, net=net))
                script, args = torch_case(a, net, side, batch, steps)
                t.append(torch(a.torch_python, script, args, env))
                if a.before:
                    o.append(memgen(a.before, side, batch, steps, env, net=before_name(net)))
            med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
            (mt, mf), (tt, tf) = (med(m, 0), med(m, 1)), (med(t, 0), med(t, 1))
            bt = f"{med(o, 0):.1f} | " if a.before else ""
            bf = f"{med(o, 1):.1f} | " if a.before else ""
            print(f"| {net} | {side} | {batch} | {bt}{mt:.1f} | {tt:.1f} | {mt / tt:.2f} | "
                  f"{bf}{mf:.1f} | {tf:.1f} | {mf / tf:.2f} |", flush=True)


def before_name(net):
    """The --net argument for an older binary, which may know only `unet-s` by name."""
    return net if net == "unet-s" else os.path.join(ROOT, "models", f"{net}.toml")


if __name__ == "__main__":
    main()

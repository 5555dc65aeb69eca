#!/usr/bin/env python3
"""memgen vs PyTorch on the same machine, same threads, in one run.

Alternates `memgen bench --save FILE` and shared/bench/torch_unet_s.py for unet-s at each size (and
torch_blind_unet.py for blind-tiny at 16x16, batch 128), ROUNDS times, and prints the median
images/s of each with their ratio. Machines of one kind differ by
1.5x and a single machine drifts over minutes, so only the interleaved ratio is meaningful.

Usage: scripts/bench-vs-torch.py [--rounds 3] [--threads 2] [--torch-python PY] [--sizes 32:64,80:16]
Needs: a release build (target/release/memgen) and a Python with torch
(python3 -m venv .venv-torch && .venv-torch/bin/pip install torch numpy).
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    ap.add_argument("--sizes", default="32:64,80:16", help="SIDE:BATCH list")
    ap.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON", os.path.join(ROOT, ".venv-torch/bin/python")))
    ap.add_argument("--torch-bench", default=os.path.join(ROOT, "..", "shared", "bench"),
                    help="directory of torch_unet_s.py and torch_blind_unet.py")
    ap.add_argument("--no-blind", action="store_true", help="skip blind-tiny")
    ap.add_argument("--memgen", default=os.path.join(ROOT, "target", "release", "memgen"))
    a = ap.parse_args()
    unet_s = os.path.join(a.torch_bench, "torch_unet_s.py")
    blind = os.path.join(a.torch_bench, "torch_blind_unet.py")
    for path, what in [(a.memgen, "memgen binary (cargo build --release)"), (a.torch_python, "Python with torch"),
                       (unet_s, "torch_unet_s.py"), (blind, "torch_blind_unet.py")]:
        if not os.path.exists(path):
            sys.exit(f"error: {what} not found at {path}")
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    print(f"{a.threads} threads, median of {a.rounds} interleaved rounds (images/s)\n")
    print("| network | side | batch | memgen train | PyTorch train | ratio | memgen forward | PyTorch forward | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    cases = [("unet-s", int(s), int(b)) for s, b in (v.split(":") for v in a.sizes.split(","))]
    if not a.no_blind:
        cases.append(("blind-tiny", 16, 128))
    for net, side, batch in cases:
        m, t = [], []
        for _ in range(a.rounds):
            if net == "unet-s":
                m.append(memgen(a.memgen, side, batch, a.steps, env))
                t.append(torch(a.torch_python, unet_s, [side, batch, a.steps], env))
            else:
                cfg = os.path.join(ROOT, "models", "blind-tiny.toml")
                m.append(memgen(a.memgen, side, batch, 10 * a.steps, env, net=cfg))
                t.append(torch(a.torch_python, blind, [side, 16, 2, batch, 10 * a.steps], env))
        mt, mf = (statistics.median(x[i] for x in m) for i in (0, 1))
        tt, tf = (statistics.median(x[i] for x in t) for i in (0, 1))
        print(f"| {net} | {side} | {batch} | {mt:.1f} | {tt:.1f} | {mt / tt:.2f} | {mf:.1f} | {tf:.1f} | {mf / tf:.2f} |", flush=True)


if __name__ == "__main__":
    main()

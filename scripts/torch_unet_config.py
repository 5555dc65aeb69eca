#!/usr/bin/env python3
"""A memgen time-conditioned UNet config (models/*.toml, arch = "unet") in PyTorch, timed on CPU like
shared/bench/torch_unet_s.py: one AdamW training step (DDPM, epsilon-prediction MSE) and one forward.

The network is scripts/load_in_torch.py's UNet (memgen's architecture) built with the config's
hyperparameters, so `models/unet-demo.toml` gives the PyTorch twin of memgen's demo network.

Usage: python scripts/torch_unet_config.py CONFIG.toml [side=16] [batch=32] [steps=10]
Prints parameters, then "train ... img/s" and "forward ... img/s" lines (as torch_unet_s.py).
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_in_torch import UNet, read_model_config  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    side, batch, steps = [int(a) for a in sys.argv[2:]] + [16, 32, 10][len(sys.argv) - 2:]
    torch.manual_seed(0)
    net = UNet(**read_model_config(sys.argv[1]))
    print("params", sum(p.numel() for p in net.parameters()), "threads", torch.get_num_threads())
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4)
    betas = torch.linspace(1e-4, 0.02, 1000)
    ab = torch.cumprod(1 - betas, 0)
    x0 = torch.rand(batch, net.cin.in_channels, side, side)

    def step():
        t = torch.randint(0, 1000, (batch,))
        eps = torch.randn_like(x0)
        a = ab[t][:, None, None, None]
        loss = F.mse_loss(net(a.sqrt() * x0 + (1 - a).sqrt() * eps, t), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    print(f"train side={side} batch={batch}: {dt*1000:.2f} ms/step, {batch/dt:.1f} img/s")
    with torch.no_grad():
        x = torch.randn(batch, net.cin.in_channels, side, side)
        t = torch.full((batch,), 500)
        net(x, t)
        t0 = time.perf_counter()
        for _ in range(steps):
            net(x, t)
        dt = (time.perf_counter() - t0) / steps
    print(f"forward side={side} batch={batch}: {dt*1000:.2f} ms, {batch/dt:.1f} img/s (one sampler step)")


if __name__ == "__main__":
    main()

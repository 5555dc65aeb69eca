#!/usr/bin/env python3
"""Load a memgen UNet checkpoint (`model.safetensors` / `ema.safetensors`) into PyTorch.

Defines the time-conditioned UNet of memgen (`arch = "unet"`, DESIGN.md's `unet-s` with the config's
hyperparameters) with the module names of the PyTorch reference `shared/bench/torch_unet_s.py`, renames
memgen's tensor names onto them (`reference_name`), loads with `strict=True` and runs a forward pass.
With the default hyperparameters the state_dict keys and shapes are those of the reference `UNet()`.

Usage:
  python scripts/load_in_torch.py RUN                  # RUN/model.safetensors, config from RUN/config.json
  python scripts/load_in_torch.py RUN --ema            # RUN/ema.safetensors
  python scripts/load_in_torch.py FILE.safetensors [--config RUN/config.json | models/unet-s.toml]
  python scripts/load_in_torch.py RUN --forward IN.safetensors OUT.safetensors
      IN holds `x` (B, C, H, W) and `t` (B,) (timesteps 0..T-1, any numeric dtype); OUT gets `eps`,
      the network's output (B, out_channels, H, W) in float32.

Needs torch and safetensors (`pip install torch safetensors`). Attention levels and the blind
(`arch = "blind"`) network are not covered: the reference architecture has neither.
"""
import argparse
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

# memgen's UNetConfig fields this architecture reads, with unet-s's values (models/unet-s.toml).
UNET_S = dict(in_channels=1, out_channels=1, base_channels=32, channel_mult=[1, 2, 4], num_res_blocks=2,
              norm_groups=8, time_embed_dim=128, attention_levels=[])


class Res(nn.Module):
    """Residual block: c2(SiLU(n2(c1(SiLU(n1(x))) + t(e)))) + skip(x); skip is a 1x1 conv when cin != cout."""

    def __init__(self, cin, cout, temb, groups):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(temb, cout)
        self.n2, self.c2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, e):
        h = self.c1(F.silu(self.n1(x))) + self.t(e)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """memgen's time-conditioned UNet. Module names follow shared/bench/torch_unet_s.py: `temb` (time MLP),
    `cin`, `down` (all down residual blocks, flat), `ds` (downsampling convs), `mid`, `up` (all up
    residual blocks, flat, in execution order), `us` (upsampling convs, in execution order), `nout`, `cout`."""

    def __init__(self, in_channels=1, out_channels=1, base_channels=32, channel_mult=(1, 2, 4),
                 num_res_blocks=2, norm_groups=8, time_embed_dim=128):
        super().__init__()
        ch, temb, g = base_channels, time_embed_dim, norm_groups
        self.ch, self.mult, self.nres = ch, tuple(channel_mult), num_res_blocks
        self.temb = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.cin = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down, self.ds, chans, c = nn.ModuleList(), nn.ModuleList(), [ch], ch
        for i, m in enumerate(self.mult):
            for _ in range(num_res_blocks):
                self.down.append(Res(c, ch * m, temb, g))
                c = ch * m
                chans.append(c)
            if i < len(self.mult) - 1:
                self.ds.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                chans.append(c)
        self.mid = nn.ModuleList([Res(c, c, temb, g), Res(c, c, temb, g)])
        self.up, self.us = nn.ModuleList(), nn.ModuleList()
        for i, m in reversed(list(enumerate(self.mult))):
            for _ in range(num_res_blocks + 1):
                self.up.append(Res(c + chans.pop(), ch * m, temb, g))
                c = ch * m
            if i > 0:
                self.us.append(nn.Conv2d(c, c, 3, padding=1))
        self.nout, self.cout = nn.GroupNorm(g, c), nn.Conv2d(c, out_channels, 3, padding=1)

    def time_embedding(self, t):
        """Sinusoidal embedding (half sines, half cosines, frequencies exp(-ln(10000) k / half)), with the
        frequencies computed in float64 and rounded to float32, as memgen does."""
        half = self.ch // 2
        f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64) / half).float()
        a = t.float()[:, None] * f[None]
        return torch.cat([a.sin(), a.cos()], 1)

    def forward(self, x, t):
        e = self.temb(self.time_embedding(t))
        h = self.cin(x)
        hs, k = [h], 0
        for i in range(len(self.mult)):
            for _ in range(self.nres):
                h = self.down[k](h, e)
                k += 1
                hs.append(h)
            if i < len(self.mult) - 1:
                h = self.ds[i](h)
                hs.append(h)
        for block in self.mid:
            h = block(h, e)
        k = 0
        for j, i in enumerate(reversed(range(len(self.mult)))):
            for _ in range(self.nres + 1):
                h = self.up[k](torch.cat([h, hs.pop()], 1), e)
                k += 1
            if i > 0:
                h = self.us[j](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.cout(F.silu(self.nout(h)))


# memgen's residual-block layer names -> the reference's.
RES_LEAF = {"norm1": "n1", "conv1": "c1", "temb": "t", "norm2": "n2", "conv2": "c2", "skip": "skip"}


def reference_name(name, levels=3, nres=2):
    """memgen tensor name -> state_dict key of `UNet` (and of the reference). `levels` is
    len(channel_mult), `nres` is num_res_blocks. memgen numbers up levels like down levels (up.{L-1}
    runs first); the reference lists up blocks and upsampling convs in execution order."""
    p = name.split(".")
    if p[0] == "time_embed":  # time_embed.{0,2}.{weight,bias}
        return "temb." + ".".join(p[1:])
    if p[0] == "conv_in":
        return "cin." + p[1]
    if p[0] == "out":  # out.norm.*, out.conv.*
        return {"norm": "nout", "conv": "cout"}[p[1]] + "." + p[2]
    if p[0] == "mid":  # mid.res.{j}.{layer}.{weight,bias}
        return f"mid.{p[2]}.{RES_LEAF[p[3]]}.{p[4]}"
    i = int(p[1])
    if p[2] == "downsample":
        return f"ds.{i}.{p[3]}"
    if p[2] == "upsample":
        return f"us.{levels - 1 - i}.{p[3]}"
    if p[2] != "res":
        raise KeyError(f"{name}: not a layer of the UNet without attention")
    j = int(p[3])
    k = i * nres + j if p[0] == "down" else (levels - 1 - i) * (nres + 1) + j
    return f"{p[0]}.{k}.{RES_LEAF[p[4]]}.{p[5]}"


def read_model_config(path):
    """The UNet hyperparameters of a run's config.json (`train.model`) or of a models/*.toml file."""
    path = Path(path)
    try:
        if path.suffix == ".toml":
            import tomllib
            cfg = tomllib.loads(path.read_text())
        else:
            cfg = json.loads(path.read_text())["train"]["model"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"{path}: expected a run's config.json (with train.model) or a models/*.toml file: {e!r}")
    if cfg.get("arch", "unet") != "unet":
        sys.exit(f"{path}: arch = {cfg.get('arch')!r}; this loader covers arch = \"unet\" only")
    if cfg.get("attention_levels"):
        sys.exit(f"{path}: attention_levels = {cfg['attention_levels']}; the reference UNet has no attention "
                 "(expected an empty list)")
    return {k: cfg.get(k, v) for k, v in UNET_S.items() if k != "attention_levels"}


def find_config(weights):
    """config.json of the run a weights file belongs to (RUN/ or RUN/checkpoints/step-N/)."""
    for d in list(Path(weights).resolve().parents)[:3]:
        if (d / "config.json").is_file():
            return d / "config.json"
    sys.exit(f"{weights}: no config.json in its directory or the two above it; pass --config")


def load(weights, config=None):
    """The UNet of `config` (found next to `weights` if None) with the weights of `weights`, loaded
    with strict=True, in eval mode."""
    cfg = read_model_config(config or find_config(weights))
    net = UNet(**cfg)
    tensors = load_file(str(weights))
    levels, nres = len(cfg["channel_mult"]), cfg["num_res_blocks"]
    try:
        names = {reference_name(k, levels, nres): k for k in tensors}
    except (KeyError, IndexError, ValueError) as e:
        sys.exit(f"{weights}: a tensor name outside memgen's UNet naming scheme: {e}")
    if len(names) < len(tensors):
        sys.exit(f"{weights}: {len(tensors)} tensors but only {len(names)} distinct layers of the config "
                 f"(num_res_blocks = {nres}, {levels} levels): written for another config?")
    state = {k: tensors[name] for k, name in names.items()}
    expected = net.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        parts = ([f"{len(missing)} tensors missing (as reference keys: {missing[:5]})"] if missing else []) + \
                ([f"{len(extra)} tensors the config has no layer for ({[names[k] for k in extra[:5]]})"]
                 if extra else [])
        sys.exit(f"{weights}: does not fit the config: {'; '.join(parts)}")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            sys.exit(f"{weights}: tensor {names[k]} ({k}) has shape {list(v.shape)}, the config needs "
                     f"{list(expected[k].shape)}")
        if v.dtype != torch.float32:
            sys.exit(f"{weights}: tensor {names[k]} is {v.dtype}, expected float32")
    net.load_state_dict(state, strict=True)
    return net.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="run directory or .safetensors file")
    ap.add_argument("--ema", action="store_true", help="RUN/ema.safetensors instead of RUN/model.safetensors")
    ap.add_argument("--config", help="run config.json or models/*.toml (default: the run's config.json)")
    ap.add_argument("--forward", nargs=2, metavar=("IN", "OUT"),
                    help="apply the network to x, t of IN.safetensors and write eps to OUT.safetensors")
    args = ap.parse_args()
    weights = Path(args.checkpoint)
    if weights.is_dir():
        weights = weights / ("ema.safetensors" if args.ema else "model.safetensors")
    if not weights.is_file():
        sys.exit(f"{weights}: not found (expected a safetensors checkpoint)")
    net = load(weights, args.config)
    print(f"{weights}: {len(net.state_dict())} tensors, "
          f"{sum(p.numel() for p in net.parameters())} parameters, loaded with strict=True")
    with torch.no_grad():
        if args.forward:
            inp = load_file(args.forward[0])
            if "x" not in inp or "t" not in inp:
                sys.exit(f"{args.forward[0]}: expected tensors x (B, C, H, W) and t (B,), found {sorted(inp)}")
            eps = net(inp["x"].float(), inp["t"])
            save_file({"eps": eps.float().contiguous()}, args.forward[1])
            print(f"{args.forward[1]}: eps {list(eps.shape)}")
        else:
            side = 1 << (len(net.mult) - 1)
            side *= max(1, 32 // side)
            g = torch.Generator().manual_seed(0)
            x = torch.randn(2, net.cin.in_channels, side, side, generator=g)
            eps = net(x, torch.tensor([10, 500]))
            print(f"forward on 2 x {net.cin.in_channels} x {side} x {side} noise at t = 10, 500: "
                  f"output {list(eps.shape)}, rms {eps.pow(2).mean().sqrt().item():.4f}")


if __name__ == "__main__":
    main()

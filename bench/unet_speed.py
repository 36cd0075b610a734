"""Training steps per second of the unet family on random patches, at several widths, depths and
batch sizes (the 2-core CPU's numbers behind the unet defaults; BENCHMARKS.md, "Photo
denoising"). Median of 5 timed steps after 2 warm-up steps.

    python bench/unet_speed.py
"""

from __future__ import annotations

import statistics
import time

import torch

from aekit.models import Autoencoder
from aekit.models.config import ModelConfig

CONFIGS = [(16, 1, 16, 64), (16, 1, 64, 64), (24, 1, 32, 64), (32, 1, 64, 64), (32, 2, 16, 64)]


def main() -> None:
    torch.manual_seed(0)
    print("| width | depth | batch | patch | patches/s | Mpixel/s | parameters |")
    print("|---|---|---|---|---|---|---|")
    for width, depth, batch, patch in CONFIGS:
        cfg = ModelConfig(arch="unet", in_channels=3, image_size=patch, base_channels=width,
                          depth=depth)  # fmt: skip
        model = Autoencoder(cfg).to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        x = torch.rand(batch, 3, patch, patch) * 2 - 1
        times = []
        for i in range(7):
            t0 = time.perf_counter()
            out = model(x + 0.2 * torch.randn_like(x)).recon
            loss = (out - x).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 2:
                times.append(time.perf_counter() - t0)
        dt = statistics.median(times)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"| {width} | {depth} | {batch} | {patch} | {batch / dt:.1f} | "
              f"{batch * patch * patch / dt / 1e6:.3f} | {params:.2f}M |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

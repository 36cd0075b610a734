"""How far can training the seed's model go on this CPU? FLOPs per image against measured peak.

Usage: ``python bench/roofline.py [--results bench/results/train_speed.json]``

- **FLOPs per training image**: ``torch.utils.flop_counter.FlopCounterMode`` over one forward
  and backward step of the seed's CIFAR model (conv, base 64, latent 256, 32x32) at batch 64,
  divided by 64 (convolutions and matrix products; element-wise ops are not counted).
- **Peak**: the best of the median rates of a 2048^3 matrix product and of a 3x3 convolution
  (batch 64, 128 -> 128 channels, 16x16) in float32, and in bf16 where the CPU runs it natively.
- **bf16 check**: a 512^3 matrix product in float32 and in bf16, also where bf16 is not native
  (there torch emulates it).
- **Ceiling**: peak / FLOPs per image, the images/s no implementation of this model can beat here;
  with the seed loop's images/s from ``--results`` (same machine, same session) it gives the
  largest speed-up over the seed that is possible at that precision.

Writes ``bench/results/roofline.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from aekit.config import ModelConfig
from aekit.devices import bf16_native
from aekit.models import Autoencoder
from train_speed import machine  # same folder: the same machine description

HERE = Path(__file__).resolve().parent


def train_flops_per_image(batch: int = 64) -> float:
    model = Autoencoder(
        ModelConfig(arch="conv", in_channels=3, image_size=32, latent_dim=256, base_channels=64)
    )
    x = torch.rand(batch, 3, 32, 32) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        out = model(x).recon
        torch.nn.functional.mse_loss(out, x).backward()
    return counter.get_total_flops() / batch


def median_rate(fn, flops: float, repeats: int = 15) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return flops / statistics.median(times)


def peak(dtype: torch.dtype) -> dict[str, float]:
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(dtype)
    x = torch.randn(64, 128, 16, 16, dtype=dtype)
    with torch.no_grad():
        mm = median_rate(lambda: a @ b, 2 * 2048**3)
        cv = median_rate(lambda: conv(x), 2 * 64 * 128 * 128 * 9 * 16 * 16)
    return {"matmul_gflops": mm / 1e9, "conv_gflops": cv / 1e9, "peak_gflops": max(mm, cv) / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results" / "train_speed.json")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "roofline.json")
    args = parser.parse_args()
    flops = train_flops_per_image()
    dtypes = [torch.float32] + ([torch.bfloat16] if bf16_native(torch.device("cpu")) else [])
    seed = None
    if args.results.is_file():
        seed = json.loads(args.results.read_text())["median"]["seed"]["train_images_per_s"]
    rows: dict[str, dict] = {}
    # Is bf16 worth it here? A 512^3 product in each dtype (bf16 is emulated where not native).
    small = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(512, 512, dtype=dtype), torch.randn(512, 512, dtype=dtype)
        small[str(dtype).removeprefix("torch.")] = (
            median_rate(lambda a=a, b=b: a @ b, 2 * 512**3, 5) / 1e9
        )
    for dtype in dtypes:
        p = peak(dtype)
        ceiling = p["peak_gflops"] * 1e9 / flops
        rows[str(dtype).removeprefix("torch.")] = {
            **p,
            "ceiling_images_per_s": ceiling,
            "max_speedup_over_seed": ceiling / seed if seed else None,
        }
    report = {
        "machine": machine(),
        "command": " ".join(["python", "bench/roofline.py", *sys.argv[1:]]),
        "train_mflops_per_image": flops / 1e6,
        "seed_images_per_s": seed,
        "seed_gflops": seed * flops / 1e9 if seed else None,
        "peak": rows,
        "matmul_512_gflops": small,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

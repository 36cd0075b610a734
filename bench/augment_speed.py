"""Speed of batched augmentation vs the per-image loop torchvision would run, on CPU.

Usage: ``python bench/augment_speed.py [--batch 64] [--size 32] [--repeats 200]``

The per-image loop is the torchvision-equivalent pipeline written with plain torch: for each
image, draw RandomResizedCrop parameters with scalar ops (as ``get_params`` does), crop, resize
with ``F.interpolate(..., antialias=True)``, then two coin flips.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from aekit.data.augment import augment_batch

OPS = ("crop", "hflip", "vflip")


def per_image_reference(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """torchvision's RandomResizedCrop + RandomHorizontalFlip + RandomVerticalFlip, per image."""
    height, width = x.shape[-2:]
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    out = []
    for image in x:
        top, left, h, w = 0, 0, height, width  # fallback for a square image: the whole image
        for _ in range(10):
            area = height * width * torch.empty(1).uniform_(0.08, 1.0, generator=generator).item()
            aspect = math.exp(torch.empty(1).uniform_(*log_ratio, generator=generator).item())
            cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < cw <= width and 0 < ch <= height:
                top = int(torch.randint(0, height - ch + 1, (1,), generator=generator))
                left = int(torch.randint(0, width - cw + 1, (1,), generator=generator))
                h, w = ch, cw
                break
        crop = image[None, :, top : top + h, left : left + w]
        image = F.interpolate(
            crop, (height, width), mode="bilinear", antialias=True, align_corners=False
        )[0]
        if torch.rand(1, generator=generator).item() < 0.5:
            image = image.flip(-1)
        if torch.rand(1, generator=generator).item() < 0.5:
            image = image.flip(-2)
        out.append(image)
    return torch.stack(out)


def median_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each function, with calls interleaved so that machine load drifting
    during the run (shared CPUs) affects all of them alike."""
    for fn in fns.values():
        for _ in range(5):  # warm-up
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=generator)
    medians = median_seconds(
        {
            "batched": lambda: augment_batch(x, OPS, generator),
            "looped": lambda: per_image_reference(x, generator),
        },
        args.repeats,
    )
    batched, looped = medians["batched"], medians["looped"]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {tuple(x.shape)}")
    print(f"augment_batch      {batched * 1e3:8.3f} ms  {args.batch / batched:12,.0f} images/s")
    print(f"per-image loop     {looped * 1e3:8.3f} ms  {args.batch / looped:12,.0f} images/s")
    print(f"speed-up           {looped / batched:8.1f}x")


if __name__ == "__main__":
    main()

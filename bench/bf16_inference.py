"""bf16 against float32 in ``aekit eval``, ``embed`` and ``denoise``: the numbers and the speed.

Usage: ``python bench/bf16_inference.py RUN [RUN...] [--images 1000] [--photos DIR --crop 160]
[--force]``

For each trained run (e.g. the two of ``make demo``: ``aekit-demo/plain``,
``aekit-demo/denoising``; the photo denoiser of BENCHMARKS.md "Photo denoising"):

- **eval** (not for a run trained on photo patches, whose job is the next point):
  ``aekit.evaluate(run, limit=N, amp=False)`` against ``amp=True`` (bf16 autocast):
  MSE on [0, 1] pixels and its relative difference; images/s of each.
- **embed**: ``aekit.search.encoding.encode`` of the run's held-out images in float32 and under bf16
  autocast: relative difference of each code vector (median, max) and how many of each query's
  10 exact nearest neighbours (the first 100 images as queries) stay the same; images/s.
  aekit's embed stays float32; this says why.
- **denoise** (families that take any size, with ``--photos``): ``aekit.denoise`` of the
  photos' top-left ``--crop`` squares with ``gaussian:25`` noise: mean and max absolute pixel
  difference on [0, 1], uint8 values that differ, PSNR of each; photos/s.

Where the device does not run bf16 natively, bf16 is only measured with ``--force`` (emulated:
its speed says nothing about a bf16 CPU, the numbers are what native bf16 gives up to the
order of its sums). Writes ``bench/results/bf16_inference.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import aekit
from aekit.data.images import read_image_file
from aekit.devices import bf16_native, pick_device
from aekit.models import get_family
from aekit.search.embed import encode
from aekit.search.knn import exact_search
from aekit.training import runs
from aekit.training.splits import load_splits
from train_speed import machine  # same folder: the same machine description

HERE = Path(__file__).resolve().parent


def timed(fn: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def codes(model: aekit.Autoencoder, images: torch.Tensor, bf16: bool) -> np.ndarray:
    device = next(model.parameters()).device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        return encode(model, images, progress=False)


def eval_rows(run: Path, n: int) -> dict[str, Any]:
    f32, t32 = timed(lambda: aekit.evaluate(run, limit=n, amp=False))
    b16, t16 = timed(lambda: aekit.evaluate(run, limit=n, amp=True))
    count = f32["count"]
    return {
        "images": count,
        "mse_float32": f32["mse"],
        "mse_bf16": b16["mse"],
        "mse_relative_difference": abs(b16["mse"] - f32["mse"]) / f32["mse"],
        "images_per_s_float32": count / t32,
        "images_per_s_bf16": count / t16,
    }


def embed_rows(run: Path, n: int) -> dict[str, Any]:
    model = runs.load(run, pick_device("auto"))
    images = load_splits(runs.load_config(run).data)[1].images[:n]
    encode(model, images[:64], progress=False)  # warm
    c32, t32 = timed(lambda: codes(model, images, False))
    original = model.encode  # encode() writes float32: the bf16 codes cast up on the way out
    model.encode = lambda x: original(x).float()  # type: ignore[method-assign]
    c16, t16 = timed(lambda: codes(model, images, True))
    rel = np.linalg.norm(c32 - c16, axis=1) / np.maximum(np.linalg.norm(c32, axis=1), 1e-12)
    q = min(100, len(images))
    near32 = exact_search(c32[:q], c32, k=10)[1]
    near16 = exact_search(c16[:q], c16, k=10)[1]
    same = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(near32, near16, strict=True)])
    return {
        "images": len(images),
        "code_relative_difference_median": float(np.median(rel)),
        "code_relative_difference_max": float(rel.max()),
        "top10_same": float(same),
        "images_per_s_float32": len(images) / t32,
        "images_per_s_bf16": len(images) / t16,
    }


def denoise_rows(run: Path, photos: Path, crop: int) -> dict[str, Any] | None:
    model = runs.load(run, pick_device("auto"))
    if not get_family(model.config.arch).any_size:
        return None
    files = sorted(p for p in photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp"))
    clean = [read_image_file(p, model.config.in_channels)[0][:, :crop, :crop] for p in files]
    (_, den32), t32 = timed(lambda: aekit.denoise(model, clean, "gaussian:25", amp=False))
    (_, den16), t16 = timed(lambda: aekit.denoise(model, clean, "gaussian:25", amp=True))
    diff = torch.cat([(a - b).abs().flatten() for a, b in zip(den32, den16, strict=True)])
    levels = torch.cat([((a * 255).round() != (b * 255).round()).flatten()
                        for a, b in zip(den32, den16, strict=True)])  # fmt: skip

    def psnr(den: list[torch.Tensor]) -> float:
        mse = [((d * 255).round() / 255 - c.float() / 255).square().mean() for d, c in zip(
            den, clean, strict=True)]  # fmt: skip
        return float(np.mean([-10 * np.log10(float(m)) for m in mse]))

    return {
        "photos": len(clean),
        "crop": crop,
        "pixel_mean_abs_difference": float(diff.mean()),
        "pixel_max_abs_difference": float(diff.max()),
        "uint8_values_differing": float(levels.float().mean()),
        "psnr_float32": psnr(den32),
        "psnr_bf16": psnr(den16),
        "photos_per_s_float32": len(clean) / t32,
        "photos_per_s_bf16": len(clean) / t16,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--photos", type=Path, default=None)
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--force", action="store_true", help="bf16 where it is not native")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bf16_inference.json")
    args = parser.parse_args()
    device = pick_device("auto")
    native = bf16_native(device)
    if not native and not args.force:
        parser.error(f"{device} does not run bf16 natively: add --force to measure it emulated")
    if not native:  # what aekit does on a bf16 CPU, here
        importlib.import_module("aekit.devices").bf16_native = lambda d: True
    report: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(["python", "bench/bf16_inference.py", *sys.argv[1:]]),
        "bf16": "native" if native else "emulated (--force): its speed is not a bf16 CPU's",
        "runs": {},
    }
    for run in args.runs:
        row: dict[str, Any] = {}
        if not runs.load_config(run).data.patch_size:  # a photo denoiser: its job is denoising
            row = {"eval": eval_rows(run, args.images), "embed": embed_rows(run, args.images)}
        if args.photos is not None:
            row["denoise"] = denoise_rows(run, args.photos, args.crop)
        report["runs"][str(run)] = row
        print(json.dumps({str(run): row}, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

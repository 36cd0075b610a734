"""The seed's model in its first steps, before and after its start was fixed: ``python
bench/first_steps.py [--skip-cifar] [--out bench/results/first_steps.json]``.

Runs, each once with aekit as it is (``now``) and once started as torch's defaults start the
seed's model (``seed start``: torch's default weights, the decoder's output where they put it;
aekit before He weights and the mean start):

- ``mnist``: ``aekit train --data mnist --train-split test --epochs 3 --limit 3000`` (the real
  MNIST test set in ``$AEKIT_DATA``/``../shared/data``), for conv, and resnet and keras (now);
- ``shapes``: 1,200 shapes, 3 epochs, batch 64, latent 32, width 16 (57 steps), against the
  PSNR of the training images' mean image;
- ``cifar``: the tutorial's CIFAR recipe (base 64, latent 256, Adam 1e-3, batch 64, crop and
  flips, 10 epochs) on the 5,085 real CIFAR-10 photos of ``../shared/data/cifar10-sample.npz``
  (10% held out), float32 (``--no-amp``: the same numbers on every CPU).

Each run is an ``aekit train`` subprocess (the default device and autocast, but where it says
float32); held-out PSNR per epoch from its metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"

# what ``seed start`` undoes, in the subprocess: He weights and the decoder's mean start
SEED_START = (
    "import sys, aekit.models.conv as c, aekit.models.base as b; "
    "c.he_init = lambda m: m; b.Autoencoder.start_at_mean = lambda self, mean: None; "
    "from aekit.cli import run; sys.argv[0] = 'aekit'; run()"
)

RUNS: dict[str, str] = {
    "mnist": "--data mnist --train-split test --epochs 3 --limit 3000",
    "shapes": "--data shapes --limit 1200 --epochs 3 --batch-size 64 --latent-dim 32 "
    "--base-channels 16",
    "cifar": f"--data npz:{SHARED / 'cifar10-sample.npz'} --base-channels 64 --latent-dim 256 "
    "--lr 1e-3 --batch-size 64 --augment crop,hflip,vflip --epochs 10 --no-amp",
}


def train(args: list[str], seed_start: bool, out: Path) -> list[float]:
    """Held-out PSNR after each epoch of ``aekit train ARGS --out OUT``."""
    code = SEED_START if seed_start else "from aekit.cli import run; run()"
    cmd = [sys.executable, "-c", code, "train", *args, "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [round(r["test_psnr"], 2) for r in rows]


def mean_image_psnr(source: str, limit: int, train_split: str = "train") -> float:
    """PSNR on the held-out images of the training images' mean image (what a model that
    gives every image the same output can reach at best)."""
    from aekit.data.config import DataConfig
    from aekit.training.splits import training_split

    full, rows, held = training_split(DataConfig(source=source, limit=limit,
                                                 train_split=train_split))  # fmt: skip
    images = full.images if rows is None else full.images[rows]
    mean = images.float().mean(0) / 255
    mse = float(((held.images.float() / 255 - mean) ** 2).mean())
    return round(10 * math.log10(1 / mse), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-cifar", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "first_steps.json"))
    ns = ap.parse_args()
    os.environ.setdefault("AEKIT_DATA", str(SHARED))
    result: dict[str, Any] = {"mean_image_psnr": {
        "mnist": mean_image_psnr("mnist", 3000, "test"), "shapes": mean_image_psnr("shapes", 1200),
    }}  # fmt: skip
    plan = [("mnist", "conv", True), ("mnist", "conv", False), ("mnist", "resnet", False),
            ("mnist", "keras", False), ("shapes", "conv", True),
            ("shapes", "conv", False)]  # fmt: skip
    if not ns.skip_cifar:
        plan += [("cifar", "conv", True), ("cifar", "conv", False)]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, arch, seed_start) in enumerate(plan):
            key = f"{name} {arch} {'seed start' if seed_start else 'now'}"
            psnrs = train([*RUNS[name].split(), "--arch", arch], seed_start, Path(tmp) / str(i))
            result[key] = psnrs
            print(f"{key}: held-out PSNR by epoch {psnrs}", flush=True)
    Path(ns.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"mean image: {result['mean_image_psnr']}; wrote {ns.out}")


if __name__ == "__main__":
    main()

"""Model families side by side on real photos: ``python bench/models.py [--epochs 10]
[--archs conv,resnet,resnet:lr=0.002] [--data npz:../shared/data/cifar10-sample.npz]``.

Each family trains with aekit's defaults for it (width, loss), latent 256, batch 64, Adam 1e-3
(``arch:key=value`` overrides an option, e.g. ``resnet:lr=0.002:depth=2``),
seed 0, float32 (``amp=False``: the same numbers on every CPU), on the training split of
``--data`` with 10% held out (the sample has no test split: aekit carves the held-out images
with a fixed seed, the same for every family). Reported per family: held-out PSNR and SSIM
(aekit eval), seconds per epoch (median of the epochs' training seconds in metrics.jsonl),
parameters, and retrieval precision@10 of its code against pixels and PCA (aekit search-eval
on the held-out images). Families run one after another in this process; the table gives each
one's time as a ratio to the first family's, measured in the same run.
For a vae also its KL and negative ELBO per image (nats); pictures in ``bench/results/``: 64
samples of each vae's prior and, for every family whose code decodes, the path between two
held-out images. Writes ``bench/results/models.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import aekit
from aekit.search.retrieval import search_eval
from aekit.training.runs import read_metrics
from aekit.training.splits import load_splits
from train_speed import machine  # same folder: the same machine description

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent.parent / "shared" / "data" / "cifar10-sample.npz"


def parse_variant(text: str) -> tuple[str, dict[str, float | int | str]]:
    """``resnet:lr=0.002:depth=2`` -> ("resnet", {"lr": 0.002, "depth": 2}); a value that is no
    number stays a string (``vae:body=resnet``)."""
    arch, *pairs = text.split(":")
    options: dict[str, float | int | str] = {}
    for pair in pairs:
        key, value = pair.split("=")
        for cast in (int, float, str):
            try:
                options[key] = cast(value)
                break
            except ValueError:
                pass
    return arch, options


def run_family(variant: str, data: str, epochs: int, work: Path) -> dict:
    arch, options = parse_variant(variant)
    opts = {"latent_dim": 256, "batch_size": 64, "lr": 1e-3, **options}
    t0 = time.perf_counter()
    run = aekit.train(work / variant.replace(":", "_"), data, arch=arch, epochs=epochs, seed=0,
                      amp=False, progress=False, **opts)  # fmt: skip
    wall = time.perf_counter() - t0
    cfg = aekit.training.runs.load_config(run)
    rows = read_metrics(run)
    model = aekit.load(run)
    _, held = load_splits(cfg.data)
    scores = aekit.evaluate(run)
    store = aekit.embed(model, held)
    ret = search_eval(np.asarray(store.vectors), held.images, store.labels(), k=10)
    pictures(model, held, variant)
    return {
        "arch": variant,
        "lr": cfg.train.lr,
        "base_channels": cfg.model.base_channels,
        "depth": cfg.model.depth,
        "params": sum(p.numel() for p in model.parameters()),
        "heldout_images": len(held),
        "psnr": scores["psnr"],
        "ssim": scores["ssim"],
        "psnr_by_epoch": [r["test_psnr"] for r in rows],
        "seconds_per_epoch": statistics.median(r["seconds"] for r in rows),
        "wall_s": wall,
        "precision_at_10": {k: v["precision"] for k, v in ret["results"].items()},
        **{k: scores[k] for k in ("kl", "nelbo") if k in scores},
    }


def pictures(model: aekit.Autoencoder, held: aekit.ImageSet, variant: str) -> None:
    """What a reader looks at: samples of a vae's prior and the path between two held-out
    images (any family whose code decodes), in bench/results/."""
    from aekit.models import get_family
    from aekit.viz import image_grid, interpolation_strip

    name = variant.replace(":", "_").replace("=", "-")
    if get_family(model.config.arch).generative:
        image_grid(aekit.generate(model, n=64, seed=0), HERE / "results" / f"{name}_samples.png",
                   title=f"{variant}: 64 samples of the prior")  # fmt: skip
    if get_family(model.config.arch).decodable:
        a, b = held.images[0], held.images[1]
        path = aekit.interpolate(model, a, b, steps=8)
        interpolation_strip(a, b, path, HERE / "results" / f"{name}_interpolation.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=f"npz:{SAMPLE}")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--archs", default="conv,resnet")
    ap.add_argument("--out", default=str(HERE / "results" / "models.json"))
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_family(a, ns.data, ns.epochs, Path(tmp)) for a in ns.archs.split(",")]
    base = results[0]
    print(f"{'arch':24s} {'params':>9s} {'PSNR':>7s} {'SSIM':>6s} {'s/epoch':>8s} {'x first':>7s} "
          f"{'P@10 code/pixels/pca':>22s} {'-ELBO':>8s}")  # fmt: skip
    for r in results:
        p, sec = r["precision_at_10"], r["seconds_per_epoch"]
        codes = "/".join(f"{p.get(k, 0):.3f}" for k in ("autoencoder", "pixels", "pca"))
        elbo = f"{r['nelbo']:8.1f}" if "nelbo" in r else ""
        print(f"{r['arch']:24s} {r['params']:9d} {r['psnr']:7.2f} {r['ssim']:6.3f} {sec:8.1f} "
              f"{sec / base['seconds_per_epoch']:7.2f} {codes:>22s} {elbo}")  # fmt: skip
    out = {"machine": machine(), "data": ns.data, "epochs": ns.epochs, "results": results}
    Path(ns.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {ns.out}")


if __name__ == "__main__":
    main()

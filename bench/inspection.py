"""Anomaly detection on real inspection photos with defect masks: the Magnetic Tile Defects set
in MVTec AD's layout (``../shared/data/anomaly/magnetic-tile``; see ``../shared/datasets.md``).

Each recipe is trained and scored by the ordinary commands, printed as they run:

    aekit train --data folder:ROOT --heldout-split train --time-limit T --image-size S ...
    aekit train --data folder:ROOT --heldout-split train --time-limit T --patch-size P ...
    aekit score RUN --data folder:ROOT --method M --json

(``--heldout-split train`` holds 10% of ``train/good`` out to calibrate; the test split is seen
only when scored.) Reported per recipe and method: image AUROC (good against every defect, and
per kind), pixel AUROC and PRO (each map at its image's own size against its mask), training
minutes and images per second at scoring (the run's held-out scores made first, untimed).
Baselines with no network at the same size: the distance to the nearest training image in
pixels, the reconstruction error of a PCA keeping 90% of the variance, the distance to the mean
image (image AUROC only).

    python bench/inspection.py --recipes draem-patch --time-limit 30
    python bench/inspection.py --recipes draem-textures --time-limit 30   # textures: CBSD432
    python bench/inspection.py --recipes conv,draem --image-size 128 --time-limit 10
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import aekit
from aekit.anomaly.detector import load_detector
from aekit.cli import main as aekit_main

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "anomaly" / "magnetic-tile"
TEXTURES = HERE.parents[1] / "shared" / "data" / "photos" / "CBSD432"  # 432 colour photos
RECIPES = {  # tag -> aekit train options beyond the data, split and time limit
    "conv": ["--image-size", "{size}"],  # the README's recipe: the default family, resized
    "draem": ["--arch", "draem", "--image-size", "{size}"],
    # patches of the photos at their own sizes; each image scored whole at its own size
    "draem-patch": ["--arch", "draem", "--patch-size", "{patch}"],
    # the same, its anomalies' textures from a folder of photos (DRAEM used the DTD set)
    "draem-textures": ["--arch", "draem", "--patch-size", "{patch}", "--anomaly-source", "{t}"],
}
METHODS = {"conv": ("recon", "ssim", "latent-knn", "combined"), "draem": ("draem", "recon"),
           "draem-patch": ("draem", "recon"), "draem-textures": ("draem", "recon")}  # fmt: skip


def run_cli(args: list[str]) -> None:
    print("$ aekit " + shlex.join(args), flush=True)
    code = aekit_main(args)
    if code:
        sys.exit(f"aekit {args[0]} failed ({code})")


def baselines(root: Path, size: int) -> dict[str, float]:
    """Image AUROC (%) of the three pixel baselines at ``size`` x ``size``, gray."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score

    train = aekit.load_dataset(f"folder:{root}", "train", image_size=size)
    test = aekit.load_dataset(f"folder:{root}", "test", image_size=size)
    xtr = train.images.float().flatten(1).numpy() / 255
    xte = test.images.float().flatten(1).numpy() / 255
    bad = np.array([test.classes[i] != "good" for i in test.labels.tolist()])
    d2 = (xte**2).sum(1)[:, None] - 2 * xte @ xtr.T + (xtr**2).sum(1)[None]
    nearest = np.sqrt(np.maximum(d2.min(1), 0))
    pca = PCA(0.9).fit(xtr)
    pca_err = ((pca.inverse_transform(pca.transform(xte)) - xte) ** 2).mean(1)
    mean = ((xte - xtr.mean(0)) ** 2).mean(1)
    named = (("nearest image", nearest), ("PCA", pca_err), ("mean image", mean))
    return {name: 100 * float(roc_auc_score(bad, s)) for name, s in named}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--recipes", default="conv,draem")
    p.add_argument("--image-size", type=int, default=128, help="the resized recipes' size")
    p.add_argument("--patch-size", type=int, default=96, help="draem-patch's patches (the "
                   "smallest magnetic-tile photo is 103 pixels wide)")  # fmt: skip
    p.add_argument("--time-limit", type=float, default=30.0, help="training minutes per recipe")
    p.add_argument("--runs", type=Path, default=HERE / "runs" / "inspection")
    p.add_argument("--train", default="", help="more aekit train options for every recipe")
    p.add_argument("--rescore", action="store_true", help="score the runs already trained")
    p.add_argument("--textures", type=Path, default=TEXTURES, help="draem-textures' folder")
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    ns = p.parse_args()
    if not ns.data.is_dir():
        sys.exit(f"{ns.data} is not here: see ../shared/datasets.md")
    source = f"folder:{ns.data}"
    results: dict = {"data": str(ns.data), "image_size": ns.image_size,
                     "time_limit": ns.time_limit, "recipes": {}}  # fmt: skip
    for tag in ns.recipes.split(","):
        recipe = [a.format(size=ns.image_size, patch=ns.patch_size, t=ns.textures)
                  for a in RECIPES[tag]]  # fmt: skip
        run = ns.runs / f"{tag}-{ns.patch_size if '--patch-size' in recipe else ns.image_size}"
        t0 = time.perf_counter()
        if not ns.rescore:
            run_cli(["train", "--data", source, "--heldout-split", "train",
                     "--time-limit", f"{ns.time_limit:g}", *recipe, *shlex.split(ns.train),
                     "--out", str(run)])  # fmt: skip
        minutes = (time.perf_counter() - t0) / 60
        load_detector(run, progress=False)  # the held-out scores, once: not in the timings
        rows = {}
        for method in METHODS[tag]:
            print(f"$ aekit score {run} --data {source} --method {method} --json", flush=True)
            t1 = time.perf_counter()
            r = aekit.score(run, data=source, method=method)
            seconds = time.perf_counter() - t1
            rows[method] = {
                "image_auroc": 100 * r["auroc"],
                "per_kind": {k: 100 * v["auroc"] for k, v in r.get("per_kind", {}).items()},
                "pixel_auroc": 100 * r["pixel_auroc"] if "pixel_auroc" in r else None,
                "pro": 100 * r["pro"] if "pro" in r else None,
                "images_per_second": r["count"] / seconds,
            }
        results["recipes"][tag] = {"train": [*recipe, *shlex.split(ns.train)],
                                   "minutes": None if ns.rescore else minutes,
                                   "methods": rows}  # fmt: skip
    results["baselines"] = baselines(ns.data, ns.image_size)
    print(f"\n{ns.data.name} at {ns.image_size}x{ns.image_size}, {ns.time_limit:g} min each")
    print("| recipe | method | image AUROC | per kind | pixel AUROC | PRO | images/s |")
    print("|---|---|---|---|---|---|---|")
    for tag, rec in results["recipes"].items():
        for method, r in rec["methods"].items():
            kinds = ", ".join(f"{k} {v:.1f}" for k, v in r["per_kind"].items())
            px = "" if r["pixel_auroc"] is None else f"{r['pixel_auroc']:.1f}"
            pro = "" if r["pro"] is None else f"{r['pro']:.1f}"
            print(f"| {tag} | {method} | {r['image_auroc']:.1f} | {kinds} | {px} | {pro} | "
                  f"{r['images_per_second']:.0f} |")  # fmt: skip
    for name, auroc in results["baselines"].items():
        print(f"| {name} (no network) | | {auroc:.1f} | | | | |")
    if ns.out:
        ns.out.parent.mkdir(parents=True, exist_ok=True)
        ns.out.write_text(json.dumps(results, indent=1))
        print(f"wrote {ns.out}")


if __name__ == "__main__":
    main()

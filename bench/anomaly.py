"""The one-class anomaly benchmark (Ruff et al., Deep SVDD, ICML 2018): each class in turn is
normal, a model trains on it alone, and the test set's other classes are the anomalies.

    python bench/anomaly.py --dataset mnist                     # the real MNIST test set
    python bench/anomaly.py --dataset cifar10 --classes 1,3,5   # the CIFAR-10 sample, 3 classes
    python bench/anomaly.py --dataset mnist --train "--arch vae --epochs 40" --tag vae
    python bench/anomaly.py --dataset mnist --rescore ...   # the same runs, scored again

Data (from ../shared/data, never downloaded): MNIST is the official 10,000-image test set,
trained on the normal class of its first 5,000 images and tested on its last 5,000; CIFAR-10
is the 5,085-image sample, each class split 80/20 in file order into train and test. Both are
written once as an ``npz:`` source with those splits, so each model is trained and scored by
the ordinary commands, printed as they run:

    aekit train --data npz:BENCH/mnist-oneclass.npz --classes 3 --heldout-split train ...
    aekit score RUN --data npz:BENCH/mnist-oneclass.npz --split test --method M --json

(``--heldout-split train`` holds 10% of the normal training images out for calibration: no test
image is seen before scoring.) Baselines with no network, on the same splits: the distance to
the nearest normal training image in pixels, the reconstruction error of a PCA keeping 90% of
the normal images' variance, and the distance to their mean image. AUROC in percent.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

import aekit
from aekit.anomaly.detector import load_detector
from aekit.anomaly.methods import METHODS, PARTS, check_arch_method
from aekit.cli import main as aekit_main
from aekit.errors import AekitError
from aekit.search.knn import exact_search
from aekit.training.runs import load_config

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
BASELINES = ("pixel-knn", "pca", "mean")
PUBLISHED = {"mnist": 94.8, "cifar10": 64.8}  # Deep SVDD, one-class, mean AUROC (%)


def mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder = SHARED / "mnist"
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x[:5000], y[:5000], x[5000:], y[5000:]


def cifar10() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    z = np.load(SHARED / "cifar10-sample.npz")
    x, y = z["x_train"], z["y_train"]
    train, test = [], []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        cut = round(len(idx) * 0.8)
        train += idx[:cut].tolist()
        test += idx[cut:].tolist()
    train, test = sorted(train), sorted(test)
    return x[train], y[train], x[test], y[test]


def write_source(dataset: str, out: Path) -> tuple[str, np.ndarray, np.ndarray, tuple]:
    """The protocol's splits written as an npz source: (source, train images, train labels,
    (test images, test labels)), images uint8 (N, H, W[, C]) as the file holds them."""
    xtr, ytr, xte, yte = mnist() if dataset == "mnist" else cifar10()
    path = out / f"{dataset}-oneclass.npz"
    if not path.exists():  # written whole, then moved: several benches may start at once
        tmp = path.with_suffix(f".{os.getpid()}.npz")
        np.savez(tmp, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
        os.replace(tmp, path)
    return f"npz:{path}", xtr, ytr, (xte, yte)


def baselines(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, c: int) -> dict:
    normal = xtr[ytr == c].reshape((ytr == c).sum(), -1).astype(np.float32) / 255
    test = xte.reshape(len(xte), -1).astype(np.float32) / 255
    anomalous = yte != c
    knn, _ = exact_search(test, normal, 1)
    pca = PCA(n_components=0.9, random_state=0).fit(normal)
    recon = pca.inverse_transform(pca.transform(test))
    return {
        "pixel-knn": roc_auc_score(anomalous, knn[:, 0]),
        "pca": roc_auc_score(anomalous, ((recon - test) ** 2).sum(1)),
        "mean": roc_auc_score(anomalous, ((test - normal.mean(0)) ** 2).sum(1)),
    }


def run_cli(args: list[str]) -> None:
    print("$ aekit " + shlex.join(args), flush=True)
    code = aekit_main(args)
    if code != 0:
        sys.exit(f"aekit {args[0]} failed ({code})")


def score(run: Path, source: str, method: str) -> dict:
    """``aekit score RUN --data SOURCE --split test --method METHOD --json``, as a function."""
    print(f"$ aekit score {run} --data {source} --split test --method {method} --json")
    return aekit.score(run, data=source, split="test", method=method)


def methods_for(run: Path) -> list[str]:
    """The methods that score this run's family (draem's only a draem run)."""
    arch = load_config(run).model.arch
    ok = []
    for method in METHODS:
        try:
            check_arch_method(arch, method)
        except AekitError:
            continue
        ok.append(method)
    return ok


def save_parts(run: Path, xte: np.ndarray, yte: np.ndarray, path: Path) -> None:
    """Each part's scores of the test images and of the held-out normal ones, for analysis."""
    det = load_detector(run, progress=False)
    images = torch.from_numpy(xte[:, None] if xte.ndim == 3 else xte.transpose(0, 3, 1, 2))
    parts = det.parts(images.contiguous())
    np.savez(path, labels=yte, **{k: parts[k] for k in PARTS},
             **{f"heldout_{k}": det.heldout[k] for k in PARTS})  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", choices=("mnist", "cifar10"), required=True)
    p.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    p.add_argument("--train", default="", help="aekit train options (the recipe)")
    p.add_argument("--tag", default="default", help="names the runs and the result file")
    p.add_argument("--out", default=str(HERE / "results" / "anomaly"), help="runs and results")
    p.add_argument(
        "--rescore",
        action="store_true",
        help="score the runs an earlier call trained (after a change to the scoring), keeping "
        "their training times from its result file",
    )
    ns = p.parse_args()
    torch.manual_seed(0)
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    source, xtr, ytr, (xte, yte) = write_source(ns.dataset, out)
    classes = [int(c) for c in ns.classes.split(",")]
    rows = []
    result_file = out / f"{ns.dataset}-{ns.tag}.json"
    trained = {}
    if ns.rescore:
        earlier = json.loads(result_file.read_text())
        if earlier["train"] != ns.train:
            sys.exit(f"{result_file} was trained with --train {earlier['train']!r}")
        trained = {r["class"]: r["train_seconds"] for r in earlier["rows"]}
    for c in classes:
        run = out / "runs" / f"{ns.dataset}-{ns.tag}-{c}"
        if ns.rescore:
            seconds = trained[c]
        else:
            t0 = time.perf_counter()
            run_cli(["train", "--data", source, "--classes", str(c), "--heldout-split", "train",
                     *shlex.split(ns.train), "--out", str(run)])  # fmt: skip
            seconds = time.perf_counter() - t0
        row = {"class": c, "train_seconds": round(seconds, 1)}
        methods = methods_for(run)
        for method in methods:
            row[method] = round(100 * score(run, source, method)["auroc"], 1)
        save_parts(run, xte, yte, out / f"parts-{ns.dataset}-{ns.tag}-{c}.npz")
        row.update({k: round(100 * v, 1) for k, v in baselines(xtr, ytr, xte, yte, c).items()})
        print(json.dumps(row), flush=True)
        rows.append(row)
    cols = [*methods, *BASELINES]
    mean = {k: round(statistics.mean(r[k] for r in rows), 1) for k in cols}
    result = {"dataset": ns.dataset, "train": ns.train, "tag": ns.tag, "rows": rows,
              "mean": mean, "median_train_seconds": statistics.median(
                  r["train_seconds"] for r in rows)}  # fmt: skip
    result_file.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"\n{ns.dataset}, aekit train {ns.train}: AUROC % (Deep SVDD mean {PUBLISHED[ns.dataset]})"
    )
    print("| class | " + " | ".join(cols) + " | train s |")
    print("|---" * (len(cols) + 2) + "|")
    for r in rows:
        print(f"| {r['class']} | " + " | ".join(f"{r[k]:.1f}" for k in cols)
              + f" | {r['train_seconds']:.0f} |")  # fmt: skip
    print("| **mean** | " + " | ".join(f"**{mean[k]:.1f}**" for k in cols)
          + f" | {result['median_train_seconds']:.0f} (median) |")  # fmt: skip


if __name__ == "__main__":
    main()

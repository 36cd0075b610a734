"""``aekit score``: anomaly scores, verdicts and detection metrics of a run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..anomaly.detector import DEFAULT_FPR
from ..anomaly.methods import DEFAULT_METHOD, METHODS
from ..anomaly.overlays import DEFAULT_OVERLAYS
from ..errors import AekitError
from .args import data_flags, out_dir, out_path, positive_int


def fpr_value(text: str) -> float:
    """--fpr: a false positive rate strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"a false positive rate is between 0 and 1 (e.g. 0.01), got {text}"
        )
    return value


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "score",
        help="anomaly scores of images under a run trained on normal ones (--classes)",
        description="Score images (higher: more anomalous) under a run trained on normal "
        "images: a verdict against the run's threshold for each, and AUROC, AUPR and the "
        "best F1 when the images are labelled.",
    )
    p.add_argument("run")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files to score")
    p.add_argument("--data", dest="source", default=None, metavar="SOURCE",
                   help="score a dataset split (e.g. mnist, folder:DIR); without --data or "
                   "images: only calibrate (--fpr) and print the threshold")  # fmt: skip
    data_flags(p, source_flag=False)
    p.add_argument("--split", default=None, help="split of --data (default: test, else the first)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images")
    p.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help=f"how an image is scored (default {DEFAULT_METHOD}, draem for a run of --arch "
        "draem; see docs/guides/anomaly.md)",
    )
    p.add_argument(
        "--normal",
        default=None,
        metavar="CLASSES",
        help="the normal classes of --data, by number or name (default: the run's --classes)",
    )
    p.add_argument(
        "--fpr",
        type=fpr_value,
        default=None,
        help="calibrate the verdict threshold so that this fraction of the run's held-out "
        f"normal images is flagged, and save it in the run (first use: {DEFAULT_FPR})",
    )
    p.add_argument("--out", type=out_path, default=None,
                   help="folder for scores.csv, roc.png, histogram.png and heatmaps")  # fmt: skip
    p.add_argument("--overlays", type=overlay_count, default=DEFAULT_OVERLAYS, metavar="N|all",
                   help="with --out: pictures of the N most anomalous images at their own size, "
                   f"heatmap and mask beside each, in OUT/overlays/ (default {DEFAULT_OVERLAYS}; "
                   "0: none)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_score)


def overlay_count(text: str) -> int | None:
    """``--overlays``: a whole number of pictures, 0 or more, or ``all`` (None)."""
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number of pictures or all, got {text!r}")
    return n


def cmd_score(ns: argparse.Namespace) -> None:
    from ..anomaly.scoring import score

    source = ns.source
    if ns.images and source is not None:
        raise AekitError("score either image files or --data SOURCE, not both")
    if ns.out is not None:
        out_dir(ns.out)
        if not ns.images and source is None:
            raise AekitError("--out writes a report of scored images: give image files or "
                             "--data SOURCE")  # fmt: skip
    result = score(ns.run, images=ns.images or None, data=source, split=ns.split,
                   method=ns.method, normal=ns.normal, limit=ns.limit, fpr=ns.fpr, out=ns.out,
                   data_dir=ns.data_dir, image_size=ns.image_size,
                   overlays=ns.overlays)  # fmt: skip
    items = result.get("items", [])
    if ns.json:
        shown = result if ns.images else {k: v for k, v in result.items() if k != "items"}
        print(json.dumps(shown))
        return
    cal = result["calibration"]
    print(f"threshold {result['verdict_threshold']:.6g} ({result['method']}): "
          f"{result['heldout_above']:.1%} of {cal['count']} held-out normal images of "
          f"{cal['source']} [{cal['split']}] lie above it (--fpr {result['fpr']:g})")  # fmt: skip
    if ns.images:
        for row in items:
            print(f"{row['item']}: {row['score']:.6g} {row['verdict']}")
    if "count" in result:
        what = f"{result['source']} [{result['split']}], " if "source" in result else ""
        print(f"{what}{result['count']} images: {result['flagged']} flagged anomalous")
    if "auroc" in result:
        print(f"normal: {', '.join(result['normal'])} ({result['count'] - result['anomalous']}),"
              f" anomalous: {result['anomalous']}: AUROC {result['auroc']:.4f}, "
              f"AUPR {result['aupr']:.4f}, best F1 {result['f1']:.4f} at threshold "
              f"{result['threshold']:.6g}")  # fmt: skip
    if "per_kind" in result:
        print(
            "AUROC by defect kind (each against the normal images): "
            + ", ".join(
                f"{kind} {v['auroc']:.4f} ({v['count']})" for kind, v in result["per_kind"].items()
            )
        )
    if "pixel_images" in result:
        shown = {k: "undefined" if result[k] is None else f"{result[k]:.4f}"
                 for k in ("pixel_auroc", "pro")}  # fmt: skip
        print(
            f"where the defects are, over {result['pixel_images']} images with masks "
            f"({result['defect_images']} with a defect): pixel AUROC {shown['pixel_auroc']}, "
            f"PRO (to 30% FPR) {shown['pro']}"
        )
    if ns.out is not None:
        n = result.get("overlays", 0)
        pictures = f", overlays/ (the {n} most anomalous at their own size)" if n else ""
        print(f"wrote {Path(ns.out)}/: scores.csv, histogram.png"
              f"{', roc.png' if 'auroc' in result else ''}, anomalous.png, normal.png{pictures}",
              file=sys.stderr)  # fmt: skip

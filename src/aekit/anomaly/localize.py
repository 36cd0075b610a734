"""Where the defects are, measured: for a scored folder split in MVTec AD's layout (defect
masks in ``ground_truth/``), each image's anomaly map at the image's own size against its mask,
as pixel AUROC and PRO (:mod:`aekit.anomaly.pixel`); and the image AUROC of each defect kind
on its own against the normal images."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.images import peek
from ..data.masks import find_masks, read_mask, soft_edged
from ..models import Autoencoder
from .methods import anomaly_maps, map_kind
from .native import maps_each
from .pixel import pixel_auroc, pro_auc

CHUNK = 64  # images through the model at once


def per_kind_auroc(
    scores: np.ndarray, labels: list[str | None], anomalous: np.ndarray
) -> dict[str, dict[str, Any]]:
    """{defect kind: its AUROC against every normal image, its count}, for a split with more
    than one kind of anomaly (with one, it is the AUROC itself)."""
    from sklearn.metrics import roc_auc_score

    kinds = sorted({str(lab) for lab, bad in zip(labels, anomalous, strict=True) if bad})
    if len(kinds) < 2:
        return {}
    normal = ~anomalous
    out = {}
    for kind in kinds:
        rows = normal | np.array([lab == kind for lab in labels])
        out[kind] = {"auroc": float(roc_auc_score(anomalous[rows], scores[rows])),
                     "count": int((rows & anomalous).sum())}  # fmt: skip
    return out


def folder_root(source: str | None) -> Path | None:
    """The folder of a ``folder:ROOT`` source, else None."""
    if source is None or not source.startswith("folder:"):
        return None
    return Path(source.removeprefix("folder:")).expanduser()


def pixel_measures(
    model: Autoencoder,
    images: torch.Tensor | list[torch.Tensor],
    paths: list[str],
    root: Path,
    method: str,
) -> dict[str, Any] | None:
    """Pixel AUROC and PRO of ``method``'s anomaly maps over the scored images of ``root``'s
    test split (None when the folder has no masks). Each map, made at the model's input size,
    is resized to its image's own size (bilinear) and compared there with the mask."""
    masks = find_masks(root, [Path(p) for p in paths])
    if masks is None:
        return None
    if soft_edged(masks.paths):
        print(f"note: the masks in {root / 'ground_truth'} have soft edges: a pixel above 127 "
              "counts as defect", file=sys.stderr)  # fmt: skip
    rows = masks.scored
    heat = map_kind(method)
    maps, truths = [], []
    for start in range(0, len(rows), CHUNK):
        part = rows[start : start + CHUNK]
        if isinstance(images, list):  # each at its own size already
            small = maps_each(model, [images[r] for r in part], heat)[1]
        else:
            _, small = anomaly_maps(model, images[part], heat)  # (B, h, w) at the model's size
        for row, amap in zip(part, small, strict=True):
            w, h = peek(Path(paths[row]))[1]
            full = F.interpolate(amap[None, None].float(), size=(h, w), mode="bilinear",
                                 align_corners=False)[0, 0]  # fmt: skip
            maps.append(full.numpy())
            truths.append(read_mask(masks.paths[row], (h, w)))
    return {
        "pixel_auroc": pixel_auroc(maps, truths),
        "pro": pro_auc(maps, truths),
        "pixel_images": len(rows),
        "defect_images": int(sum(m.any() for m in truths)),
    }

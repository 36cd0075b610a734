"""One picture per scored image, at the image's own size: the image, its heatmap over it, and
its defect mask where the folder has one (MVTec AD's ``ground_truth/``), side by side; for the
most anomalous images first (``aekit score --out DIR --overlays N``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.images import read_image_file
from ..data.masks import find_masks, read_mask
from .localize import folder_root
from .methods import anomaly_maps, map_kind
from .native import maps_each
from .plots import overlay

DEFAULT_OVERLAYS = 32  # pictures written by default: the most anomalous images
GAP = 4  # white pixels between the panels
CHUNK = 32  # images through the model at once


def write_overlays(
    folder: Path, det: Any, batch: Any, scores: np.ndarray, method: str, count: int | None
) -> list[Path]:
    """``folder/RANK_NAME.png`` for the ``count`` (None: all) most anomalous of a scored
    ``batch`` (image, heatmap over it[, mask]); an image file of the batch is shown at its own
    size with its map resized to it, else at the model's size."""
    if batch.images is None:  # a split scored as it was read: its images are not kept
        return []
    kind = map_kind(method)
    scale = det.map_scale[kind]
    order = np.argsort(-scores, kind="stable")[: len(scores) if count is None else count]
    root = folder_root(batch.source)
    files = [Path(p) for p in batch.items] if root is not None or batch.source is None else None
    masks = None if root is None or files is None else find_masks(root, files)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for start in range(0, len(order), CHUNK):
        rows = order[start : start + CHUNK]
        if isinstance(batch.images, list):  # each at its own size
            maps = maps_each(det.model, [batch.images[int(r)] for r in rows], kind)[1]
        else:
            _, maps = anomaly_maps(det.model, batch.images[torch.as_tensor(rows.copy())], kind)
        for rank, row, amap in zip(range(start, start + len(rows)), rows, maps, strict=True):
            image = _own_image(files, int(row), batch.images[int(row)], det)
            h, w = image.shape[:2]
            heat = F.interpolate(amap[None, None].float(), size=(h, w), mode="bilinear",
                                 align_corners=False)[0, 0].numpy() / scale  # fmt: skip
            panels = [image, overlay(image, heat)]
            if masks is not None:  # a good image's mask is empty
                mask = read_mask(masks.paths[int(row)], (h, w)).astype(np.float64)
                panels.append(np.repeat(mask[..., None], 3, axis=-1))
            name = Path(batch.items[int(row)]).stem if files else f"item{int(row)}"
            path = folder / f"{rank + 1:04d}_{name}.png"
            Image.fromarray(_side_by_side(panels)).save(path)
            written.append(path)
    return written


def _own_image(files: list[Path] | None, row: int, scored: torch.Tensor, det: Any) -> np.ndarray:
    """(H, W, 3) [0, 1]: the image file at its own size, else the scored (resized) image."""
    if files is not None:
        u8, _ = read_image_file(files[row], det.model.config.in_channels)
    else:
        u8 = scored
    a = u8.permute(1, 2, 0).float().numpy() / 255.0
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def _side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    h = panels[0].shape[0]
    gap = np.ones((h, GAP, 3))
    parts = [p for panel in panels for p in (panel, gap)][:-1]
    return (np.clip(np.concatenate(parts, axis=1), 0, 1) * 255).round().astype(np.uint8)

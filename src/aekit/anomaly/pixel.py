"""Pixel-level measures of anomaly maps against defect masks, as MVTec AD's benchmark defines
them (Bergmann et al., IJCV 2021) and anomalib reports them: pixel AUROC over every pixel of
every test image, and PRO, the area under the per-region-overlap curve up to a false-positive
rate of 30%, divided by 0.3 (so 1.0 is perfect).

Maps and masks are per image, each at that image's own size: nothing is resized to a square."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)  # a region: 8-connected, as MVTec's own code
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed it


def _checked(
    maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} anomaly maps for {len(masks)} masks")
    pairs = []
    for i, (amap, mask) in enumerate(zip(maps, masks, strict=True)):
        amap, mask = np.asarray(amap, dtype=np.float32), np.asarray(mask, dtype=bool)
        if amap.shape != mask.shape or amap.ndim != 2:
            raise ValueError(f"image {i}: anomaly map {amap.shape} and mask {mask.shape} differ")
        pairs.append((amap, mask))
    return pairs


def pixel_auroc(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float | None:
    """AUROC of every pixel's score against its mask (None when no pixel, or every pixel, is
    a defect: the measure is undefined)."""
    from sklearn.metrics import roc_auc_score

    pairs = _checked(maps, masks)
    truth = np.concatenate([m.ravel() for _, m in pairs])
    if truth.all() or not truth.any():
        return None
    scores = np.concatenate([a.ravel() for a, _ in pairs])
    return float(roc_auc_score(truth, scores))


def pro_curve(
    maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray] | None:
    """The PRO curve: for every threshold (each distinct score, high to low) the false-positive
    rate over defect-free pixels and the mean, over every defect region of every image, of the
    fraction of the region above the threshold. Both start at 0. None without a region.

    One sort of all pixels serves every threshold: a defect-free pixel adds 1/(defect-free
    pixels) to the FPR once the threshold passes it, a pixel of region r adds
    1/(|r| x regions) to the overlap."""
    from scipy import ndimage

    pairs = _checked(maps, masks)
    labelled = [ndimage.label(mask, structure=EIGHT_NEIGHBOURS) for _, mask in pairs]
    regions = sum(n for _, n in labelled)
    ok = sum(int((~mask).sum()) for _, mask in pairs)
    if regions == 0 or ok == 0:
        return None
    scores, fpr_w, pro_w = [], [], []
    for (amap, _), (labels, n) in zip(pairs, labelled, strict=True):
        sizes = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64)
        flat = labels.ravel()
        scores.append(amap.ravel())
        fpr_w.append(np.where(flat == 0, 1.0 / ok, 0.0))
        region_w = np.zeros(n + 1)
        region_w[1:] = 1.0 / (sizes[1:] * regions)
        pro_w.append(region_w[flat])
    s = np.concatenate(scores)
    order = np.argsort(-s, kind="stable")
    s = s[order]
    fpr = np.cumsum(np.concatenate(fpr_w)[order])
    pro = np.cumsum(np.concatenate(pro_w)[order])
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # a threshold takes every pixel of its score
    return np.r_[0.0, fpr[last_of_tie]], np.r_[0.0, pro[last_of_tie]]


def pro_auc(
    maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], max_fpr: float = 0.3
) -> float | None:
    """The area under the PRO curve from FPR 0 to ``max_fpr``, divided by ``max_fpr`` (None
    without a defect region)."""
    curve = pro_curve(maps, masks)
    if curve is None:
        return None
    fpr, pro = curve
    fpr, pro = np.minimum(fpr, 1.0), np.minimum(pro, 1.0)  # sums of many 1/n drift above 1
    end = int(np.searchsorted(fpr, max_fpr, side="right"))
    x, y = fpr[:end], pro[:end]
    if end < len(fpr) and x[-1] < max_fpr:  # the curve's value at max_fpr, interpolated
        y_end = np.interp(max_fpr, fpr[end - 1 : end + 1], pro[end - 1 : end + 1])
        x, y = np.r_[x, max_fpr], np.r_[y, y_end]
    return float(_trapezoid(y, x) / max_fpr)

"""The pixel-level anomaly measures (aekit.anomaly.pixel) against their definitions, computed
threshold by threshold on small cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from aekit.anomaly.pixel import pixel_auroc, pro_auc, pro_curve


def brute_pro(maps, masks, max_fpr):
    """PRO by its definition: at every threshold, each region's overlap and the FPR; the area
    by the trapezoid rule over those points, cut at max_fpr."""
    regions = []
    for m in masks:
        labels, n = ndimage.label(m, structure=np.ones((3, 3)))
        regions += [(len(regions), labels == k) for k in range(1, n + 1)]
    thresholds = np.unique(np.concatenate([a.ravel() for a in maps]))[::-1]
    points = [(0.0, 0.0)]
    ok = sum((~m).sum() for m in masks)
    for t in thresholds:
        fp = sum(((a >= t) & ~m).sum() for a, m in zip(maps, masks, strict=True))
        overlaps = []
        for a, m in zip(maps, masks, strict=True):
            labels, n = ndimage.label(m, structure=np.ones((3, 3)))
            overlaps += [((a >= t) & (labels == k)).sum() / (labels == k).sum()
                         for k in range(1, n + 1)]  # fmt: skip
        points.append((fp / ok, float(np.mean(overlaps))))
    x, y = map(np.array, zip(*points, strict=True))
    keep = x <= max_fpr
    xs, ys = list(x[keep]), list(y[keep])
    if not keep.all():
        i = int(np.argmax(~keep))
        xs.append(max_fpr)
        ys.append(y[i - 1] + (y[i] - y[i - 1]) * (max_fpr - x[i - 1]) / (x[i] - x[i - 1]))
    area = sum((xs[j + 1] - xs[j]) * (ys[j + 1] + ys[j]) / 2 for j in range(len(xs) - 1))
    return area / max_fpr


def case(seed: int, sizes=((12, 9), (7, 11), (10, 10))):
    rng = np.random.default_rng(seed)
    maps, masks = [], []
    for h, w in sizes:  # images of their own sizes
        mask = np.zeros((h, w), bool)
        mask[rng.integers(0, h - 3) :][:2, rng.integers(0, w - 3) :][:, :3] = True
        mask[0, 0] = rng.random() < 0.5  # a one-pixel region, sometimes
        amap = rng.random((h, w)).round(1) + mask * rng.random()  # ties, and some signal
        maps.append(amap.astype(np.float32))
        masks.append(mask)
    return maps, masks


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_fpr", [0.3, 1.0, 0.05])
def test_pro_is_its_definition(seed: int, max_fpr: float) -> None:
    maps, masks = case(seed)
    assert pro_auc(maps, masks, max_fpr) == pytest.approx(brute_pro(maps, masks, max_fpr), abs=1e-9)


def test_perfect_and_inverted_maps() -> None:
    _, masks = case(0)
    perfect = [m.astype(np.float32) for m in masks]
    assert pro_auc(perfect, masks) == pytest.approx(1.0)
    assert pixel_auroc(perfect, masks) == pytest.approx(1.0)
    inverted = [1 - p for p in perfect]
    assert pro_auc(inverted, masks) == pytest.approx(0.0)
    assert pixel_auroc(inverted, masks) == pytest.approx(0.0)
    fpr, pro = pro_curve(perfect, masks)
    assert fpr[0] == pro[0] == 0 and fpr[-1] == pytest.approx(1) and pro[-1] == pytest.approx(1)


def test_a_region_counts_as_much_as_any_other_whatever_its_size() -> None:
    """PRO weighs regions, not pixels: a map that finds a large region and misses a small one
    scores 0.5 up to FPR 1; pixel AUROC rewards the large region's pixels."""
    mask = np.zeros((20, 20), bool)
    mask[2:12, 2:12] = True  # 100 pixels
    mask[17, 17] = True  # 1 pixel
    amap = np.where(mask, 1.0, np.linspace(0.1, 0.5, 400).reshape(20, 20)).astype(np.float32)
    amap[17, 17] = 0.0  # under every defect-free pixel: found only at FPR 1
    assert pro_auc([amap], [mask]) == pytest.approx(0.5)
    assert pixel_auroc([amap], [mask]) > 0.99


def test_pixel_auroc_is_sklearn_s_over_every_pixel() -> None:
    maps, masks = case(5)
    want = roc_auc_score(np.concatenate([m.ravel() for m in masks]),
                         np.concatenate([a.ravel() for a in maps]))  # fmt: skip
    assert pixel_auroc(maps, masks) == pytest.approx(want)


def test_undefined_and_mismatched_inputs() -> None:
    good = [np.zeros((4, 5), bool)]
    assert pixel_auroc([np.ones((4, 5))], good) is None
    assert pro_auc([np.ones((4, 5))], good) is None
    with pytest.raises(ValueError, match=r"image 0: anomaly map \(4, 5\) and mask \(5, 4\)"):
        pro_auc([np.ones((4, 5))], [np.zeros((5, 4), bool)])
    with pytest.raises(ValueError, match="2 anomaly maps for 1 masks"):
        pixel_auroc([np.ones((4, 5))] * 2, good)

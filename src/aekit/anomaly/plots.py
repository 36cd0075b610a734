"""Pictures of anomaly scores: the ROC curve, score histograms and heatmap overlays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..viz import save_figure, to_numpy_images


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(H, W, C) [0, 1] image and (H, W) heat in [0, 1] -> (H, W, 3) [0, 1]: the image in gray
    under the heat in the ``inferno`` colours."""
    gray = image.mean(axis=-1, keepdims=True).repeat(3, axis=-1)
    colours = plt.get_cmap("inferno")(np.clip(heat, 0, 1))[..., :3]
    return (1 - alpha) * gray + alpha * colours


def heatmap_grid(
    images: torch.Tensor,
    recons: torch.Tensor,
    maps: torch.Tensor,
    captions: Sequence[str],
    path: str | Path,
    title: str,
    vmax: float,
) -> Path:
    """Columns of (image, reconstruction, heatmap over the image), each captioned: uint8 or
    [0, 1] (B, C, H, W) images and reconstructions, (B, H, W) maps scaled by ``vmax``."""
    imgs, recs = to_numpy_images(images), to_numpy_images(recons)
    heat = maps.detach().cpu().float().numpy() / vmax
    n = len(imgs)
    fig, axes = plt.subplots(3, n, squeeze=False, figsize=(1.25 * n + 0.9, 4.3))
    for i in range(n):
        for row, picture in enumerate((imgs[i], recs[i], overlay(imgs[i], heat[i]))):
            ax = axes[row, i]
            gray = picture.shape[-1] == 1
            ax.imshow(picture[..., 0] if gray else picture, cmap="gray" if gray else None,
                      vmin=0, vmax=1, interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
        axes[2, i].set_xlabel(captions[i], fontsize=7)
    for row, name in enumerate(("image", "reconstruction", "anomaly map")):
        axes[row, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def roc_plot(fpr: np.ndarray, tpr: np.ndarray, auroc: float, path: str | Path, title: str) -> Path:
    """The ROC curve (anomalous = positive) with its AUROC, against chance."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot(fpr, tpr, color="tab:red", label=f"AUROC {auroc:.3f}")
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance")
    ax.set_xlabel("false positive rate (normal flagged)")
    ax.set_ylabel("true positive rate (anomalies found)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def score_histogram(
    scores: np.ndarray,
    anomalous: np.ndarray | None,
    threshold: float,
    path: str | Path,
    title: str,
) -> Path:
    """Histograms of the scores of normal and anomalous images (one, unlabelled), and the
    verdict threshold."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bins = np.histogram_bin_edges(scores, bins=40)
    if anomalous is None:
        ax.hist(scores, bins=bins, color="tab:blue", alpha=0.8, label="images")
    else:
        ax.hist(scores[~anomalous], bins=bins, color="tab:blue", alpha=0.6, density=True,
                label=f"normal ({int((~anomalous).sum())})")  # fmt: skip
        ax.hist(scores[anomalous], bins=bins, color="tab:red", alpha=0.6, density=True,
                label=f"anomalous ({int(anomalous.sum())})")  # fmt: skip
        ax.set_ylabel("density")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_xlabel("anomaly score (higher: more unusual)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)

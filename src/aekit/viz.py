"""Pictures: rows of images (originals over reconstructions), labelled grids and loss curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt
import numpy as np
import torch

from .files import atomic_write


def to_numpy_images(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) uint8 or [0, 1] floats -> (B, H, W, C) float [0, 1] for imshow."""
    x = images.detach().cpu()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float().clamp(0, 1)
    return x.permute(0, 2, 3, 1).numpy()


def _strip(images: Sequence[np.ndarray], pad: int = 2) -> np.ndarray:
    """(H, W, C) images, (B, H, W, C) or of mixed sizes -> one strip with white gaps, as high as
    the tallest (the others top-aligned)."""
    h, c = max(im.shape[0] for im in images), images[0].shape[-1]
    out = np.ones((h, sum(im.shape[1] for im in images) + pad * (len(images) - 1), c), np.float32)
    x = 0
    for im in images:
        out[: im.shape[0], x : x + im.shape[1]] = im
        x += im.shape[1] + pad
    return out


def _row_arrays(images: torch.Tensor | Sequence[torch.Tensor]) -> Sequence[np.ndarray]:
    """A (B, C, H, W) batch, or a list of (C, H, W) images of any sizes, as (H, W, C) arrays."""
    if isinstance(images, torch.Tensor):
        return to_numpy_images(images)
    return [to_numpy_images(im[None])[0] for im in images]


def _show(ax: Any, img: np.ndarray) -> None:
    gray = img.shape[-1] == 1
    ax.imshow(
        img[..., 0] if gray else img,
        cmap="gray" if gray else None,
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )


def save_figure(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path


def image_rows(
    rows: Sequence[tuple[str, torch.Tensor | Sequence[torch.Tensor]]],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """One labelled row per (name, images) pair, the images a (B, C, H, W) batch or a list of
    (C, H, W) images of any sizes: originals over reconstructions."""
    strips = [(name, _strip(_row_arrays(x))) for name, x in rows]
    width = max(s.shape[1] for _, s in strips)
    size = (max(4.0, width / 28), sum(max(1.3, s.shape[0] / 28) for _, s in strips) + 0.4)
    shrink = min(1.0, 60 / max(size))  # photos: a picture of at most 6,000 pixels a side
    fig, axes = plt.subplots(
        len(strips), 1, squeeze=False, figsize=(size[0] * shrink, size[1] * shrink)
    )
    for ax, (name, strip) in zip(axes[:, 0], strips, strict=True):
        _show(ax, strip)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def image_grid(
    images: torch.Tensor, path: str | Path, cols: int = 8, title: str | None = None
) -> Path:
    """(B, C, H, W) images tiled ``cols`` to a row with white gaps, as one picture."""
    imgs = to_numpy_images(images)
    cols = max(1, min(cols, len(imgs)))
    rows = [_strip(imgs[i : i + cols]) for i in range(0, len(imgs), cols)]
    width, gap = rows[0].shape[1], np.ones((2, rows[0].shape[1], imgs.shape[-1]), np.float32)
    rows[-1] = np.pad(rows[-1], ((0, 0), (0, width - rows[-1].shape[1]), (0, 0)),
                      constant_values=1.0)  # fmt: skip
    tiled = np.concatenate([x for row in rows for x in (row, gap)][:-1])
    fig, ax = plt.subplots(figsize=(max(3.0, tiled.shape[1] / 40), max(3.0, tiled.shape[0] / 40)))
    _show(ax, tiled)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def interpolation_strip(
    image_a: torch.Tensor, image_b: torch.Tensor, path: torch.Tensor, out: str | Path
) -> Path:
    """One row: uint8 (C, H, W) ``image_a``, the decoded ``path`` (T, C, H, W) of [0, 1] floats
    captioned by its fractions, then ``image_b``."""
    steps = len(path)
    captions = ["A", *(f"{i / max(steps - 1, 1):.2f}" for i in range(steps)), "B"]
    strip = torch.cat(
        [image_a[None].float() / 255, path.float().cpu(), image_b[None].float() / 255]
    )
    return labelled_grid(strip, captions, out, cols=len(strip))


def labelled_grid(
    images: torch.Tensor,
    captions: Sequence[str],
    path: str | Path,
    cols: int = 8,
    title: str | None = None,
) -> Path:
    """A grid of images, each with its caption (a class name, a distance) underneath."""
    imgs = to_numpy_images(images)
    n = len(imgs)
    cols = max(1, min(cols, n))
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, squeeze=False, figsize=(1.3 * cols, 1.5 * nrows + 0.3))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            _show(ax, imgs[i])
            ax.set_title(captions[i], fontsize=7, y=-0.22)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def loss_plot(metrics: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Train and held-out loss per epoch, and held-out PSNR on a second axis."""
    epochs = [m["epoch"] for m in metrics]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [m["train_loss"] for m in metrics], "o-", label="train loss")
    ax.plot(epochs, [m["test_loss"] for m in metrics], "s-", label="held-out loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(
        epochs, [m["test_psnr"] for m in metrics], "^--", color="tab:green", label="held-out PSNR"
    )
    ax2.set_ylabel("PSNR (dB)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="center right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write one (C, H, W) image ([0, 1] floats or uint8) as a PNG (gray or RGB)."""
    from PIL import Image

    arr = (to_numpy_images(image[None])[0] * 255.0 + 0.5).astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    atomic_write(Path(path), lambda tmp: img.save(tmp, format="PNG"))
    return Path(path)


def search_grid(
    query: torch.Tensor,
    query_caption: str,
    rows: Sequence[tuple[str, torch.Tensor, Sequence[str]]],
    path: str | Path,
) -> Path:
    """The seed's search picture: the query, then one row of results per direction (nearest,
    farthest), each image with its label and distance underneath."""
    k = max(len(images) for _, images, _ in rows)
    fig, axes = plt.subplots(len(rows), k + 1, squeeze=False,
                             figsize=(1.3 * (k + 1), 1.7 * len(rows) + 0.2))  # fmt: skip
    q = to_numpy_images(query[None])[0]
    for r, (title, images, captions) in enumerate(rows):
        imgs = to_numpy_images(images)
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c == 0:
                _show(ax, q)
                ax.set_title(f"query\n{query_caption}", fontsize=7, y=-0.32)
                ax.text(-0.15, 0.5, title, transform=ax.transAxes, rotation=90, ha="right",
                        va="center", fontsize=9)  # fmt: skip
            elif c - 1 < len(imgs):
                _show(ax, imgs[c - 1])
                ax.set_title(captions[c - 1], fontsize=7, y=-0.32)
    return save_figure(fig, path)


def latent_map(
    points: np.ndarray,
    labels: np.ndarray | None,
    names: Mapping[int, str],
    path: str | Path,
    title: str,
    thumbs: Sequence[tuple[int, torch.Tensor]] = (),
) -> Path:
    """A scatter of (N, 2) ``points`` coloured by ``labels`` with a legend of their class
    ``names`` (a label without one shows as its number; one plain colour without labels or with
    one label only), with small images ``thumbs`` ((row, uint8 (C, H, W))) drawn at their
    points. Points are rasterised, so a million stay a picture; the fewer, the larger."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    n = len(points)
    size = 12.0 if n < 2_000 else 3.0 if n < 50_000 else 0.5
    alpha = 0.9 if n < 2_000 else 0.6 if n < 50_000 else 0.3
    fig, ax = plt.subplots(figsize=(9, 8))
    kinds = [] if labels is None else np.unique(labels)
    if len(kinds) > 1:
        cmap = plt.get_cmap("tab10" if len(kinds) <= 10 else "tab20")
        slot = np.searchsorted(kinds, labels)
        # one scatter in a random order: no class is painted over by the classes drawn after it
        order = np.random.default_rng(0).permutation(n)
        colours = np.asarray([cmap(j % cmap.N) for j in range(len(kinds))])[slot[order]]
        ax.scatter(points[order, 0], points[order, 1], s=size, alpha=alpha, linewidths=0,
                   c=colours, rasterized=True)  # fmt: skip
        handles = [
            plt.Line2D([], [], linestyle="", marker="o", markersize=5, color=cmap(j % cmap.N),
                       label=names.get(int(k), str(k)))
            for j, k in enumerate(kinds)
        ]  # fmt: skip
        ax.legend(handles=handles, fontsize=8, loc="best", ncol=1 if len(kinds) <= 12 else 2)
    else:
        ax.scatter(points[:, 0], points[:, 1], s=size, alpha=alpha, linewidths=0,
                   color="tab:blue", rasterized=True)  # fmt: skip
    for row, image in thumbs:
        img = to_numpy_images(image[None])[0]
        box = OffsetImage(img[..., 0] if img.shape[-1] == 1 else img, zoom=28 / img.shape[0],
                          cmap="gray" if img.shape[-1] == 1 else None)  # fmt: skip
        ax.add_artist(AnnotationBbox(box, tuple(points[row]), frameon=True, pad=0.1))
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(fig, path)

"""ImageSet: one split of one dataset as uint8 tensors, plus what the labels mean."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class ImageSet:
    """One split of a dataset.

    ``images`` is uint8 (N, C, H, W) with C in {1, 3}; for large MedMNIST sets it wraps a
    copy-on-write np.memmap, so it is read from disk on demand and writes stay in memory.
    ``labels`` is int64 (N,), or (N, L) of 0/1 for multi-label sets, or None if unlabelled.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    classes: list[str]
    source: str
    split: str
    paths: list[str] | None = None

    def __post_init__(self) -> None:
        # These are invariants of our own loaders, so a failure here is a bug, not a user error.
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.images.shape[1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels, got {self.images.shape[1]}")
        n = self.images.shape[0]
        if self.labels is not None and (
            self.labels.dtype != torch.int64
            or self.labels.ndim not in (1, 2)
            or self.labels.shape[0] != n
        ):
            raise ValueError(
                f"labels must be int64 ({n},) or ({n}, L), got {self.labels.dtype} "
                f"{tuple(self.labels.shape)}"
            )
        if self.paths is not None and len(self.paths) != n:
            raise ValueError(f"{len(self.paths)} paths for {n} images")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    @property
    def multi_label(self) -> bool:
        """True when each image has a 0/1 vector of labels (e.g. chestmnist)."""
        return self.labels is not None and self.labels.ndim == 2

    def subset(self, index: torch.Tensor | slice) -> ImageSet:
        """The images at ``index`` (a slice keeps a memmap-backed set on disk; a tensor of
        indices or a bool mask copies the selected images)."""
        if isinstance(index, torch.Tensor) and index.dtype == torch.bool:
            index = index.nonzero().flatten()
        labels = None if self.labels is None else self.labels[index]
        paths = None
        if self.paths is not None:
            picked = range(len(self))[index] if isinstance(index, slice) else index.tolist()
            paths = [self.paths[i] for i in picked]
        return replace(self, images=self.images[index], labels=labels, paths=paths)


def describe(ds: ImageSet) -> dict:
    """A JSON-ready summary: source, split, count, shape [C, H, W] and class names."""
    return {
        "source": ds.source,
        "split": ds.split,
        "count": len(ds),
        "shape": list(ds.shape),
        "classes": list(ds.classes),
    }

"""MedMNIST v3 2D sets: ``medmnist/<flag>`` (28 px) or ``medmnist/<flag>@64|@128|@224``.

Files are the official npz files, read directly (the medmnist package needs torchvision):
``<data_dir>/medmnist/<flag>.npz`` or ``<flag>_<size>.npz``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import AekitError
from .download import ensure_file
from .imageset import ImageSet
from .npzarrays import load_images, load_labels, npz_keys
from .registry import MEDMNIST_CLASSES, MEDMNIST_MD5, MEDMNIST_SIZES, medmnist_file, medmnist_url

SPLITS = ["train", "val", "test"]


def parse_medmnist(spec: str) -> tuple[str, int]:
    """'pathmnist@64' -> ('pathmnist', 64); no '@' means 28."""
    flag, _, size_text = spec.partition("@")
    flag = flag.strip().lower()
    if flag not in MEDMNIST_MD5:
        raise AekitError(
            f"unknown MedMNIST flag {flag!r}: use one of {', '.join(MEDMNIST_MD5)}, "
            f"e.g. medmnist/pathmnist or medmnist/pathmnist@64"
        )
    if not size_text:
        return flag, 28
    sizes = ", ".join(f"@{s}" for s in MEDMNIST_SIZES)
    if not size_text.isdigit() or int(size_text) not in MEDMNIST_SIZES:
        raise AekitError(f"unknown MedMNIST size @{size_text}: use one of {sizes}")
    return flag, int(size_text)


def load_medmnist(
    flag: str, size: int, split: str, data_dir: Path, source: str, download: bool
) -> ImageSet:
    """Load one split of a MedMNIST set, downloading and MD5-checking the npz as needed."""
    name = medmnist_file(flag, size)
    path = ensure_file(
        data_dir / "medmnist" / name, [medmnist_url(flag, size)], MEDMNIST_MD5[flag][size], download
    )
    keys = npz_keys(path)
    image_key, label_key = f"{split}_images", f"{split}_labels"
    if image_key not in keys:
        raise AekitError(
            f"{path} has no {image_key!r} (keys: {', '.join(keys)}); it is not a "
            f"MedMNIST file: delete it and download it again"
        )
    cache = path.parent / ".cache" / f"{path.stem}.{image_key}.npy"
    images = load_images(path, image_key, cache)
    labels = load_labels(path, label_key, len(images)) if label_key in keys else None
    return ImageSet(
        images=images,
        labels=labels,
        classes=_classes(flag, labels),
        source=source,
        split=split,
    )


def _classes(flag: str, labels: torch.Tensor | None) -> list[str]:
    """Official names when the labels fit them, else '0', '1', ... (e.g. a hand-made file)."""
    names = MEDMNIST_CLASSES[flag]
    if labels is None or len(labels) == 0:
        return list(names)
    count = labels.shape[1] if labels.ndim == 2 else int(labels.max()) + 1
    fits = count == len(names) if labels.ndim == 2 else count <= len(names)
    return list(names) if fits else [str(i) for i in range(count)]

"""``npz:<file>``: a user's own .npz, Keras style (x_train, y_train, x_test, y_test) or MedMNIST
style (train_images, train_labels, val_..., test_...). Labels are optional; pickle never allowed.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import AekitError
from .imageset import ImageSet
from .npzarrays import load_images, load_labels, member_header, npz_keys

SPLITS = ("train", "val", "test")
EXPECTED = (
    "x_train/y_train/x_test/y_test (Keras style) or train_images/train_labels/val_images/"
    "val_labels/test_images/test_labels (MedMNIST style); the y_/_labels arrays are optional"
)


def _split_keys(keys: list[str]) -> dict[str, tuple[str, str | None]]:
    """split -> (images key, labels key or None), for each split the file holds."""
    found: dict[str, tuple[str, str | None]] = {}
    for split in SPLITS:
        for image_key, label_key in (
            (f"x_{split}", f"y_{split}"),
            (f"{split}_images", f"{split}_labels"),
        ):
            if image_key in keys:
                found[split] = (image_key, label_key if label_key in keys else None)
                break
    return found


def _resolve(path: Path) -> tuple[Path, dict[str, tuple[str, str | None]]]:
    path = Path(path).expanduser()
    if path.is_dir():
        raise AekitError(
            f"{path} is a folder: 'npz:' takes an .npz file (for a folder of images use folder:)"
        )
    if not path.is_file():
        raise AekitError(f"npz file {path} does not exist: check the path after 'npz:'")
    keys = npz_keys(path)
    splits = _split_keys(keys)
    if not splits:
        shown = ", ".join(keys) if keys else "none"
        raise AekitError(f"{path} has keys {shown}; expected {EXPECTED}")
    return path, splits


def npz_splits(path: Path) -> list[str]:
    """The splits an npz file holds, in train/val/test order."""
    return list(_resolve(path)[1])


def load_npz(path: Path, split: str, source: str) -> ImageSet:
    """Load one split of a user's npz (memory-mapped via a ``.cache/`` beside it when huge)."""
    path, splits = _resolve(path)
    if split not in splits:
        raise AekitError(f"{path} has no {split!r} split: it has {', '.join(splits)}")
    image_key, label_key = splits[split]
    images = load_images(path, image_key, path.parent / ".cache" / f"{path.stem}.{image_key}.npy")
    labels = None if label_key is None else load_labels(path, label_key, len(images))
    return ImageSet(
        images=images,
        labels=labels,
        classes=_classes(path, splits) if labels is not None else [],
        source=source,
        split=split,
    )


def _classes(path: Path, splits: dict[str, tuple[str, str | None]]) -> list[str]:
    """'0', '1', ... up to the largest label over every split, so splits agree on the classes;
    for (N, L) multi-label arrays, one name per column."""
    count = 0
    for image_key, label_key in splits.values():
        if label_key is None:
            continue
        labels = load_labels(path, label_key, member_header(path, image_key)[0][0])
        if labels.ndim == 2:
            count = max(count, labels.shape[1])
        elif len(labels):
            count = max(count, int(labels.max()) + 1)
    return [str(i) for i in range(count)]

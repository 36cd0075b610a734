"""The ``--data SOURCE`` strings and the one entry point that loads any of them."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import AekitError
from ..options import check_side
from .cifar import load_cifar10
from .folder import folder_splits, load_folder
from .idx import load_idx_set
from .images import resize_images
from .imageset import ImageSet
from .medmnist import SPLITS as MEDMNIST_SPLITS
from .medmnist import load_medmnist, parse_medmnist
from .npz import load_npz, npz_splits
from .registry import IDX_SETS, MEDMNIST_MD5
from .shapes import COUNTS as SHAPES_COUNTS
from .shapes import load_shapes
from .wds import load_wds, wds_splits

SOURCE_FORMS = (
    "mnist, fashion-mnist, cifar10, shapes, medmnist/<flag> or medmnist/<flag>@64|@128|@224, "
    "folder:<dir>, npz:<file>, wds:<dir or shard pattern>"
)


@dataclass(frozen=True)
class Source:
    """A parsed SOURCE string: ``kind`` picks the loader, ``name`` is a set name, MedMNIST flag
    or path, ``size`` the MedMNIST image size."""

    kind: str  # "idx" | "cifar10" | "shapes" | "medmnist" | "folder" | "npz" | "wds"
    name: str
    size: int = 28


def default_data_dir() -> Path:
    """Where datasets live: $AEKIT_DATA, else ~/.cache/aekit."""
    env = os.environ.get("AEKIT_DATA", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "aekit"


def parse_source(source: str) -> Source:
    """Parse a SOURCE string; an unknown one is an AekitError listing the valid forms."""
    text = source.strip()
    lowered = text.lower()
    for prefix in ("folder:", "npz:", "wds:"):
        if lowered.startswith(prefix):
            path = text[len(prefix) :].strip()
            if not path:
                raise AekitError(f"{text!r} names no path: write {prefix}<path>")
            return Source(prefix[:-1], path)
    if lowered in IDX_SETS:
        return Source("idx", lowered)
    if lowered in ("cifar10", "shapes"):
        return Source(lowered, lowered)
    if lowered.startswith("medmnist/"):
        flag, size = parse_medmnist(lowered.removeprefix("medmnist/"))
        return Source("medmnist", flag, size)
    hint = ""
    if text and Path(text).expanduser().is_dir():
        hint = f" (for the image folder {text}, write folder:{text})"
    elif text.lower().endswith(".npz"):
        hint = f" (for the file {text}, write npz:{text})"
    elif lowered in MEDMNIST_MD5:
        hint = f" (did you mean medmnist/{lowered}?)"
    raise AekitError(f"unknown data source {source!r}{hint}: use one of {SOURCE_FORMS}")


def same_source(a: str, b: str) -> bool:
    """Whether two SOURCE strings name the same data, however they are spelled (case, a relative
    or absolute path, ``~``, a symlink)."""

    def key(source: str) -> tuple:
        try:
            src = parse_source(source)
        except AekitError:
            return ("?", source)
        if src.kind in ("folder", "npz", "wds"):
            return (src.kind, str(Path(src.name).expanduser().resolve()))
        return (src.kind, src.name, src.size)

    return key(a) == key(b)


def _data_dir(data_dir: str | Path | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def available_splits(source: str, data_dir: str | Path | None = None) -> list[str]:
    """The splits a source has: those it can download, or the ones its files/folders hold."""
    src = parse_source(source)
    if src.kind == "idx":
        return list(IDX_SETS[src.name].files)
    if src.kind == "cifar10":
        return ["train", "test"]
    if src.kind == "shapes":
        return list(SHAPES_COUNTS)
    if src.kind == "medmnist":
        return list(MEDMNIST_SPLITS)
    if src.kind == "folder":
        return folder_splits(Path(src.name))
    if src.kind == "wds":
        return wds_splits(src.name)
    return npz_splits(Path(src.name))


def _positive(name: str, value: int | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1
    ):
        raise AekitError(f"{name} must be a whole number of at least 1, got {value!r}")


def load_dataset(
    source: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    limit: int | None = None,
    download: bool = True,
) -> ImageSet:
    """Load one split of a SOURCE (see SOURCE_FORMS) as an ImageSet.

    ``image_size`` resizes images to a square (antialiased bicubic); folder sources default to
    their most common size, the others keep their native size. ``limit`` keeps the first N
    images. An empty split is an AekitError. Missing files are downloaded into ``data_dir``
    (default ``default_data_dir()``) and MD5-checked, unless ``download`` is False.
    """
    check_side(image_size, "image_size", low=1)
    _positive("limit", limit)
    src = parse_source(source)
    splits = available_splits(source, data_dir)
    if split not in splits:
        raise AekitError(f"{source} has no {split!r} split: use one of {', '.join(splits)}")
    root = _data_dir(data_dir)
    if src.kind == "idx":
        ds = load_idx_set(IDX_SETS[src.name], split, root, source, download)
    elif src.kind == "cifar10":
        ds = load_cifar10(split, root, source, download)
    elif src.kind == "shapes":
        ds = load_shapes(split, source)
    elif src.kind == "medmnist":
        ds = load_medmnist(src.name, src.size, split, root, source, download)
    elif src.kind == "folder":
        ds = load_folder(Path(src.name), split, source, image_size)
    elif src.kind == "wds":
        ds = load_wds(src.name, split, source, image_size)
    else:
        ds = load_npz(Path(src.name), split, source)
    if len(ds) == 0:  # nothing could train, be scored or be shown: say so here, not later
        raise AekitError(
            f"the {split!r} split of {source} has no images: add images to it, or choose "
            f"another split (one of {', '.join(splits)})"
        )
    if limit is not None and limit < len(ds):
        ds = ds.subset(slice(0, limit))
    if image_size is not None and ds.shape[1:] != (image_size, image_size):
        ds = replace(ds, images=resize_images(ds.images, (image_size, image_size)))
    return ds

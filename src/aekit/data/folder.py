"""``folder:<dir>``: a folder of image files.

Layout: class subfolders give labels (names sorted; the class list is shared by all splits), a
flat folder is unlabelled. ``train/``, ``val/``, ``test/`` subfolders, if any, are the splits;
otherwise the whole folder is the "train" split. Images are resized (antialiased bicubic) to
``image_size`` or else to the most common size among the files of all splits; all-gray folders
give C=1, any colour image (in any split) makes the whole set RGB, so splits always agree in
shape. Patch training (``--patch-size``) reads the files at their own sizes instead
(``read_folder(..., NATIVE)``, :mod:`aekit.data.photos`). Unreadable files (and files in
formats other than the raster ones) are skipped with one warning; a file over the pixel limit
(``--max-pixels``) is refused from its header, before it is decoded.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from ..errors import AekitError
from .images import (
    GRAY_MODES,
    IMAGE_EXTENSIONS,
    UNREADABLE,
    is_image_file,
    load,
    peek,
    unreadable_reason,
)
from .imageset import ImageSet
from .warn import warn, worth_saying

SPLIT_NAMES = ("train", "val", "test")
MAX_LISTED = 50  # file names shown in one warning
T = TypeVar("T")


def _hidden(path: Path, base: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(base).parts)


def _walk_images(folder: Path, recursive: bool) -> Iterator[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return (p for p in found if is_image_file(p) and not _hidden(p, folder) and p.is_file())


def _images_under(folder: Path, recursive: bool) -> list[Path]:
    """Image files in ``folder`` (or below it), skipping hidden files and folders, sorted."""
    return sorted(_walk_images(folder, recursive))


def _class_dirs(split_dir: Path) -> list[Path]:
    """Visible subfolders holding at least one image file (at any depth)."""
    return sorted(
        d
        for d in split_dir.iterdir()
        if d.is_dir() and not d.name.startswith(".") and next(_walk_images(d, True), None)
    )


def _root(root: Path) -> Path:
    root = Path(root).expanduser().absolute()
    if root.is_file():
        raise AekitError(f"{root} is a file: 'folder:' takes a folder of images")
    if not root.is_dir():
        raise AekitError(f"image folder {root} does not exist: check the path after 'folder:'")
    return root


def folder_splits(root: Path) -> list[str]:
    """The folder's splits: its train/val/test subfolders, else just "train"."""
    root = _root(root)
    return [s for s in SPLIT_NAMES if (root / s).is_dir()] or ["train"]


def _scan(
    root: Path, split: str, quiet: bool = False
) -> tuple[list[Path], list[int] | None, list[str]]:
    """(files, labels or None, class names) of one split, in a stable sorted order."""
    has_splits = any((root / s).is_dir() for s in SPLIT_NAMES)
    split_dirs = [root / s for s in SPLIT_NAMES if (root / s).is_dir()] if has_splits else [root]
    split_dir = root / split if has_splits else root
    classes = sorted({d.name for sd in split_dirs for d in _class_dirs(sd)})
    here = _class_dirs(split_dir)
    if not here:
        return _images_under(split_dir, False), None, []
    files, labels = [], []
    for class_dir in here:
        members = _images_under(class_dir, True)
        files += members
        labels += [classes.index(class_dir.name)] * len(members)
    loose = _images_under(split_dir, False)
    if loose and not quiet:
        warn(
            f"ignored {len(loose)} image file(s) directly in {split_dir} (not in a class "
            f"subfolder): {_listing(loose, split_dir)}"
        )
    return files, labels, classes


def _listing(paths: list[Path], base: Path) -> str:
    names = [str(p.relative_to(base)) for p in paths[:MAX_LISTED]]
    more = f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
    return ", ".join(names) + more


NATIVE = -1  # image_size for "keep every image's own size" (photos cut into patches)


def _decide(
    headers: list[tuple[str, tuple[int, int]]], image_size: int | None
) -> tuple[bool, tuple[int, int] | None]:
    """(gray?, (width, height), or None to keep each file's own size) for the whole set."""
    gray = all(mode in GRAY_MODES for mode, _ in headers)
    if image_size == NATIVE:
        return gray, None
    if image_size is not None:
        return gray, (image_size, image_size)
    return gray, Counter(size for _, size in headers).most_common(1)[0][0]


def _try(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``fn(*args, **kwargs)``, or None when Pillow cannot read the file."""
    try:
        return fn(*args, **kwargs)
    except UNREADABLE:
        return None


def _decode(
    files: list[Path], image_size: int | None, siblings: list[Path]
) -> tuple[list[int], list[np.ndarray], list[Path]]:
    """Decode every file (in threads: Pillow releases the GIL) at one common mode and size.

    The mode and size are chosen over ``files`` and ``siblings`` (the other splits' files, read
    only up to their headers), so every split of a folder comes out with the same shape.
    Returns the indices of the files kept, their (C, H, W) arrays, and the unreadable files.
    """
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        others = [h for h in pool.map(partial(_try, peek), siblings) if h is not None]
        headers = list(pool.map(partial(_try, peek), files))
        keep = [i for i, h in enumerate(headers) if h is not None]
        bad = [files[i] for i, h in enumerate(headers) if h is None]
        arrays: list[np.ndarray] = []
        while keep:
            gray, size = _decide([headers[i] for i in keep] + others, image_size)
            decoded = list(
                pool.map(partial(_try, load, gray=gray, size_wh=size), [files[i] for i in keep])
            )
            failed = {i for i, a in zip(keep, decoded, strict=True) if a is None}
            arrays = [a for a in decoded if a is not None]
            keep = [i for i in keep if i not in failed]
            bad += [files[i] for i in sorted(failed)]
            # a file that failed only on full decode may have swayed the gray/size choice
            if (
                not failed
                or not keep
                or _decide([headers[i] for i in keep] + others, image_size) == (gray, size)
            ):
                break
    return keep, arrays, bad


def load_folder(root: Path, split: str, source: str, image_size: int | None = None) -> ImageSet:
    """Load one split of an image folder (see the module docstring for the layout rules)."""
    files, arrays, labels, classes = read_folder(root, split, image_size)
    return ImageSet(
        images=torch.from_numpy(np.stack(arrays)),
        labels=None if labels is None else torch.tensor(labels, dtype=torch.int64),
        classes=classes,
        source=source,
        split=split,
        paths=[str(f) for f in files],
    )


def read_folder(
    root: Path, split: str, image_size: int | None = None
) -> tuple[list[Path], list[np.ndarray], list[int] | None, list[str]]:
    """(files, their (C, H, W) uint8 arrays, labels or None, class names) of one split, each
    image resized to ``image_size`` (default: the most common size; ``NATIVE``: its own)."""
    root = _root(root)
    splits = folder_splits(root)
    if split not in splits:
        raise AekitError(
            f"{root} has no {split!r} split: it has {', '.join(splits)} (make "
            f"train/, val/, test/ subfolders to have more)"
        )
    files, labels, classes = _scan(root, split)
    where = root / split if (root / split).is_dir() else root
    if not files:
        raise AekitError(
            f"no image files in {where} (looked for "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}): put images there, or class "
            f"subfolders of images"
        )
    siblings = [f for other in splits if other != split for f in _scan(root, other, True)[0]]
    keep, arrays, bad = _decode(files, image_size, siblings)
    listing = _listing(sorted(bad), where)
    if not keep:
        raise AekitError(
            f"no readable image in {where}: all {len(files)} image files failed to "
            f"open ({listing}); check that they are valid images"
        )
    if bad:
        warn(f"skipped {len(bad)} unreadable image file(s) in {where}: {listing}")
    kept_labels = None if labels is None else [labels[i] for i in keep]
    return [files[i] for i in keep], arrays, kept_labels, classes


@dataclass
class FolderScan:
    """One split of a folder known from its files' headers alone (nothing decoded)."""

    files: list[Path]  # the readable ones
    labels: list[int] | None
    classes: list[str]
    gray: bool
    size_wh: tuple[int, int]
    bad: list[Path]  # files whose header cannot be read
    where: Path

    def decoded_bytes(self) -> int:
        """Bytes of uint8 pixels the split would take decoded."""
        w, h = self.size_wh
        return len(self.files) * (1 if self.gray else 3) * w * h

    def warn_skipped(self) -> None:
        if self.bad:
            warn(
                f"skipped {len(self.bad)} unreadable image file(s) in {self.where}: "
                f"{_listing(self.bad, self.where)}"
            )


def scan_folder(root: Path, split: str, image_size: int | None = None) -> FolderScan:
    """One split's files, labels, classes, and the mode and size they are decoded at, from the
    headers alone: what streaming a folder needs."""
    root = _root(root)
    splits = folder_splits(root)
    if split not in splits:
        raise AekitError(f"{root} has no {split!r} split: it has {', '.join(splits)}")
    files, labels, classes = _scan(root, split, quiet=True)
    where = root / split if (root / split).is_dir() else root
    siblings = [f for other in splits if other != split for f in _scan(root, other, True)[0]]
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        others = [h for h in pool.map(partial(_try, peek), siblings) if h is not None]
        headers = list(pool.map(partial(_try, peek), files))
    keep = [i for i, h in enumerate(headers) if h is not None]
    if not keep:
        raise AekitError(f"no readable image in {where}: check that the files are valid images")
    gray, size = _decide([headers[i] for i in keep] + others, image_size)
    return FolderScan(
        files=[files[i] for i in keep],
        labels=None if labels is None else [labels[i] for i in keep],
        classes=classes,
        gray=gray,
        size_wh=size or (0, 0),
        bad=[files[i] for i, h in enumerate(headers) if h is None],
        where=where,
    )


class FolderFiles(torch.utils.data.Dataset):
    """A folder's image files decoded one by one (by DataLoader workers) to uint8 (C, H, W) at
    one mode and size; a file that fails to decode gives None (skipped, with a warning)."""

    def __init__(self, files: list[Path], gray: bool, size_wh: tuple[int, int]) -> None:
        self.files, self.gray, self.size_wh = files, gray, size_wh
        self.skipped = 0  # in this process (each DataLoader worker counts its own)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor | None:
        try:
            return torch.from_numpy(load(self.files[i], self.gray, self.size_wh).copy())
        except UNREADABLE as exc:
            self.skipped += 1
            if worth_saying(self.skipped):
                warn(f"skipped {self.files[i]} ({self.skipped} so far): "
                     f"{unreadable_reason(exc)}")  # fmt: skip
            return None

    def decode(self, rows: list[int]) -> torch.Tensor:
        """The images at ``rows`` decoded here (the held-out images, kept in memory)."""
        images = [self[i] for i in rows]
        return torch.stack([im for im in images if im is not None])


def stack_present(images: list[torch.Tensor | None]) -> torch.Tensor:
    """A batch of the images that decoded (the DataLoader's collate function)."""
    return torch.stack([im for im in images if im is not None])

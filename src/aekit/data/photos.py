"""Photos of their own sizes for patch training (``--patch-size``): a ``PhotoSet`` holds every
photo as uint8 in one flat buffer (no resizing, no padding to a common size), and each batch of
random square patches is cut from it by one gather, on whatever device the buffer lives.

An epoch is as many patches as cover the photos' pixels once on average; a patch's photo is drawn
in proportion to the number of patch positions it has, so every position of every photo is
equally likely.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import AekitError
from .folder import NATIVE, read_folder
from .imageset import ImageSet
from .sources import load_dataset, parse_source

HELD_SIDE = 256  # held-out photos are scored on their centre crop of at most this side


@dataclass
class PhotoSet:
    """``N`` photos of ``channels`` channels and their own sizes, packed: photo ``i`` is
    ``flat[offsets[i] : offsets[i] + C * heights[i] * widths[i]]`` in (C, H, W) order."""

    flat: torch.Tensor  # uint8 (total,)
    offsets: torch.Tensor  # int64 (N,)
    heights: torch.Tensor  # int64 (N,)
    widths: torch.Tensor  # int64 (N,)
    channels: int
    source: str
    split: str
    paths: list[str]

    @classmethod
    def from_arrays(
        cls, arrays: list[np.ndarray] | list[torch.Tensor], source: str, split: str,
        paths: list[str],
    ) -> PhotoSet:  # fmt: skip
        """Pack uint8 (C, H, W) arrays of one channel count."""
        tensors = [torch.as_tensor(np.array(a)) if isinstance(a, np.ndarray) else a for a in arrays]
        sizes = torch.tensor([t.numel() for t in tensors], dtype=torch.int64)
        return cls(
            flat=torch.cat([t.reshape(-1) for t in tensors]),
            offsets=torch.cumsum(sizes, 0) - sizes,
            heights=torch.tensor([t.shape[1] for t in tensors], dtype=torch.int64),
            widths=torch.tensor([t.shape[2] for t in tensors], dtype=torch.int64),
            channels=int(tensors[0].shape[0]),
            source=source,
            split=split,
            paths=paths,
        )

    @classmethod
    def from_imageset(cls, ds: ImageSet) -> PhotoSet:
        paths = ds.paths or [f"{ds.source} [{ds.split}] #{i}" for i in range(len(ds))]
        return cls.from_arrays(list(ds.images), ds.source, ds.split, paths)

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def pixels(self) -> int:
        """Pixels over all photos (one channel)."""
        return int((self.heights * self.widths).sum())

    def photo(self, i: int) -> torch.Tensor:
        """Photo ``i`` as uint8 (C, H, W) (a view of the buffer)."""
        c, h, w = self.channels, int(self.heights[i]), int(self.widths[i])
        start = int(self.offsets[i])
        return self.flat[start : start + c * h * w].view(c, h, w)

    def subset(self, index: list[int]) -> PhotoSet:
        return PhotoSet.from_arrays([self.photo(i) for i in index], self.source, self.split,
                                    [self.paths[i] for i in index])  # fmt: skip

    def to(self, device: torch.device) -> PhotoSet:
        """The buffer moved to ``device`` (the index tensors go along)."""
        return PhotoSet(self.flat.to(device), self.offsets.to(device), self.heights.to(device),
                        self.widths.to(device), self.channels, self.source, self.split,
                        self.paths)  # fmt: skip

    def smallest(self) -> tuple[int, str]:
        """(the smallest side of any photo, a description of that photo)."""
        sides = torch.minimum(self.heights, self.widths)
        i = int(sides.argmin())
        return int(sides[i]), f"{self.paths[i]} ({int(self.widths[i])}x{int(self.heights[i])})"

    def centre_crops(self, side: int) -> ImageSet:
        """The centre ``side`` x ``side`` of every photo, as an ImageSet (held-out scoring)."""
        crops = []
        for i in range(len(self)):
            img = self.photo(i)
            top, left = (img.shape[1] - side) // 2, (img.shape[2] - side) // 2
            crops.append(img[:, top : top + side, left : left + side])
        return ImageSet(torch.stack(crops).cpu(), None, [], self.source, self.split,
                        list(self.paths))  # fmt: skip


def cut_patches(
    photos: PhotoSet, idx: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int
) -> torch.Tensor:
    """uint8 (B, C, size, size): the patch of photo ``idx[b]`` whose top-left corner is
    (``top[b]``, ``left[b]``), gathered from the flat buffer at once."""
    dev = photos.flat.device
    idx, top, left = idx.to(dev), top.to(dev), left.to(dev)
    h, w = photos.heights[idx], photos.widths[idx]
    r = torch.arange(size, device=dev)
    c = torch.arange(photos.channels, device=dev)

    def col(t: torch.Tensor) -> torch.Tensor:
        return t[:, None, None, None]

    index = (
        col(photos.offsets[idx])
        + c[None, :, None, None] * col(h * w)
        + (col(top) + r[None, None, :, None]) * col(w)
        + col(left)
        + r[None, None, None, :]
    )
    return photos.flat[index]


def sample_patches(
    photos: PhotoSet, count: int, size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(photo, top, left) of ``count`` random patches (CPU tensors): each of the photos'
    patch positions equally likely."""
    rows = photos.heights.cpu() - size + 1
    cols = photos.widths.cpu() - size + 1
    idx = torch.multinomial((rows * cols).double(), count, replacement=True, generator=generator)
    u = torch.rand((2, count), generator=generator, dtype=torch.float64)
    top = torch.minimum((u[0] * rows[idx]).long(), rows[idx] - 1)
    left = torch.minimum((u[1] * cols[idx]).long(), cols[idx] - 1)
    return idx, top, left


def patches_per_epoch(photos: PhotoSet, size: int, batch_size: int) -> int:
    """As many patches as cover the photos' pixels once on average (at least one batch)."""
    return max(batch_size, round(photos.pixels / size**2))


def patch_batches(
    photos: PhotoSet,
    size: int,
    batch_size: int,
    generator: torch.Generator,
    part: Callable[[int], slice] | None = None,
) -> Iterator[torch.Tensor]:
    """One epoch of uint8 (B, C, size, size) batches of random patches; ``part(B)`` picks the
    patches of each batch this process cuts (a rank's share), default all."""
    n = patches_per_epoch(photos, size, batch_size)
    idx, top, left = sample_patches(photos, n, size, generator)
    for s in range(0, n, batch_size):
        b = min(batch_size, n - s)
        take = slice(s, s + b) if part is None else _offset(part(b), s)
        yield cut_patches(photos, idx[take], top[take], left[take], size)


def _offset(part: slice, by: int) -> slice:
    return slice(part.start + by, part.stop + by)


def load_photos(
    source: str, split: str, data_dir: str | Path | None = None, limit: int | None = None
) -> PhotoSet:
    """One split of ``source`` as photos of their own sizes (a ``folder:``), or as they come
    (the array sources, whose images share one size)."""
    src = parse_source(source)
    if src.kind == "folder":
        files, arrays, _, _ = read_folder(Path(src.name), split, NATIVE)
        files, arrays = files[:limit], arrays[:limit]
        return PhotoSet.from_arrays(arrays, source, split, [str(f) for f in files])
    return PhotoSet.from_imageset(load_dataset(source, split, data_dir=data_dir, limit=limit))


def check_patch_size(photos: PhotoSet, size: int) -> None:
    """Refuse a patch size larger than the smallest photo, naming that photo."""
    side, which = photos.smallest()
    if size > side:
        raise AekitError(
            f"--patch-size {size} is larger than the smallest {photos.split} photo, {which}: "
            f"choose --patch-size {side} or less, or remove that photo"
        )

"""A ``folder:`` or ``wds:`` split too large to decode into memory, read in chunks in its order.

Training decides the same way (:func:`open_stream` answers None where it would decode the split
whole): a folder whose decoded pixels exceed :func:`memmap_threshold`, shards whose images
would. ``eval``, ``embed`` and ``score`` then read such a split one chunk at a time, in the
order :func:`aekit.data.load_dataset` gives it, so they compute what they would from memory:
a thread decodes the next chunks (Pillow decodes in threads, the GIL released) while the
model takes the current one, and memory holds :data:`AHEAD` chunks, never the split.

An image that cannot be decoded is skipped with a warning, as from memory; what a pass found
(each image's label and path, the class names) is its :class:`Listing`.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from ..errors import AekitError
from ..options import check_side
from .folder import FolderFiles, FolderScan, scan_folder
from .images import UNREADABLE
from .npzarrays import memmap_threshold
from .sources import available_splits, parse_source
from .wds import (
    Shards,
    Skipped,
    check_shards,
    classes_of,
    decode,
    label_of,
    open_shards,
    read_samples,
    shape_of,
)

AHEAD = 2  # chunks decoded ahead of the one the model takes
DECODERS = min(8, os.cpu_count() or 1)  # threads decoding one chunk
T = TypeVar("T")


@dataclass
class Chunk:
    """Consecutive images of a split: those that decoded, with their labels and files."""

    images: torch.Tensor  # uint8 (b, C, H, W)
    labels: list[int | None]
    paths: list[str] | None
    skipped: int = 0  # images of this stretch of the split that could not be decoded


@dataclass
class Listing:
    """A split as a pass over it found it: what an ImageSet holds, but the pixels (what the
    items of a store, class names and detection metrics need)."""

    source: str
    split: str
    shape: tuple[int, int, int]
    classes: list[str]
    labels: torch.Tensor | None  # int64 (N,), None when unlabelled
    paths: list[str] | None
    count: int

    def __len__(self) -> int:
        return self.count

    @property
    def multi_label(self) -> bool:
        return False  # folders and shards give one class an image


@dataclass
class SplitStream:
    """One split read in chunks (:meth:`chunks`), in the split's order; ``expected`` images
    by the headers (fewer if some fail to decode)."""

    source: str
    split: str
    shape: tuple[int, int, int]  # (C, H, W)
    expected: int
    read: Callable[[int, int | None], Iterator[Chunk]] = field(repr=False)
    classes: Callable[[list[int | None]], list[str]] = field(repr=False)
    cut: Callable[[int, int], SplitStream] = field(repr=False)  # see :meth:`part`
    offset: int = 0  # the split's position of this stream's first image, by the headers
    known: Listing | None = None  # what the headers tell before a pass (a folder's); shards: None
    # the labels and files of the last pass's chunks (not their pixels)
    found: list[tuple[list[int | None], list[str] | None]] = field(default_factory=list,
                                                                   repr=False)  # fmt: skip

    def __len__(self) -> int:
        return self.expected

    def chunks(self, size: int, limit: int | None = None) -> Iterator[Chunk]:
        """The split's images, ``size`` at a time (the last chunk fewer; fewer too where an
        image failed to decode), decoded ahead in a thread; at most ``limit`` images."""
        self.found = []
        for chunk in ahead(self.read(size, limit)):
            self.found.append((chunk.labels, chunk.paths))
            yield chunk

    def part(self, rank: int, world: int) -> SplitStream:
        """Process ``rank``'s contiguous part of ``world`` (of a folder's files, or of whole
        shards): the parts in rank order are the split in its order."""
        return self.cut(rank, world)

    def listing(self) -> Listing:
        """What the last (whole) pass of :meth:`chunks` found."""
        labels = [x for chunk_labels, _ in self.found for x in chunk_labels]
        paths = None if not self.found or self.found[0][1] is None else [
            p for _, chunk_paths in self.found for p in chunk_paths or []]  # fmt: skip
        labelled = bool(labels) and all(x is not None for x in labels)
        tensor = torch.tensor(labels, dtype=torch.int64) if labelled else None
        classes = self.classes(labels)
        return Listing(self.source, self.split, self.shape, classes, tensor, paths, len(labels))


def open_stream(
    source: str, split: str, data_dir: str | Path | None = None, image_size: int | None = None
) -> SplitStream | None:
    """``split`` of ``source`` as a stream when it is a folder or shards too large to decode
    into memory (above :func:`memmap_threshold` bytes of pixels), else None: then
    :func:`aekit.data.load_dataset` reads it (and says what is wrong with it, if anything)."""
    check_side(image_size, "image_size", low=1)
    src = parse_source(source)
    if src.kind not in ("folder", "wds") or split not in available_splits(source, data_dir):
        return None
    if src.kind == "folder":
        try:
            scanned = scan_folder(Path(src.name), split, image_size)
        except AekitError:  # load_dataset says what is wrong in its own words
            return None
        return folder_stream(scanned, source, split) if _too_big(scanned.decoded_bytes()) else None
    shards = open_shards(src.name, split, source)
    check_shards(shards)
    expected = sum(len(shards.image_keys(u)) for u in shards.urls)
    shape = shape_of(shards, image_size) if expected else (1, 1, 1)
    return shard_stream(shards, shape) if _too_big(expected * math.prod(shape)) else None


def _too_big(decoded_bytes: int) -> bool:
    return decoded_bytes > memmap_threshold()


def share(n: int, rank: int, world: int) -> slice:
    """Process ``rank``'s contiguous part of ``n`` items (as :meth:`Group.shard` cuts them)."""
    per, extra = divmod(n, world)
    start = rank * per + min(rank, extra)
    return slice(start, start + per + (rank < extra))


def folder_stream(scanned: FolderScan, source: str, split: str, offset: int = 0) -> SplitStream:
    """A folder's split (scanned from its headers) decoded chunk by chunk."""
    w, h = scanned.size_wh
    # the files by name: a Path of a million holds several times its string's memory
    paths = [str(f) for f in scanned.files]
    scanned = replace(scanned, files=[])
    files = FolderFiles(paths, scanned.gray, scanned.size_wh)  # type: ignore[arg-type]
    labels = scanned.labels

    def read(size: int, limit: int | None) -> Iterator[Chunk]:
        scanned.warn_skipped()  # the files whose header cannot be read
        taken = 0
        with ThreadPoolExecutor(DECODERS) as pool:
            for s in range(0, len(files), size):
                rows = range(s, min(s + size, len(files)))
                decoded = list(pool.map(files.__getitem__, rows))
                kept = [r for r, im in zip(rows, decoded, strict=True) if im is not None]
                kept = kept[: None if limit is None else limit - taken]
                if not kept:
                    continue
                taken += len(kept)
                yield Chunk(torch.stack([decoded[r - s] for r in kept]),  # type: ignore[misc]
                            [None if labels is None else labels[r] for r in kept],
                            [paths[r] for r in kept],
                            len(rows) - sum(im is not None for im in decoded))  # fmt: skip
                if limit is not None and taken >= limit:
                    return

    def classes(_: list[int | None]) -> list[str]:
        return scanned.classes if labels is not None else []

    def cut(rank: int, world: int) -> SplitStream:
        rows = share(len(files), rank, world)
        mine = replace(scanned, files=paths[rows],
                       labels=None if labels is None else labels[rows])  # fmt: skip
        return folder_stream(mine, source, split, offset + rows.start)

    shape = (1 if scanned.gray else 3, h, w)
    # what --normal needs before a pass: the labels and classes (not the files)
    known = Listing(source, split, shape, classes([]),
                    None if labels is None else torch.tensor(labels, dtype=torch.int64),
                    None, len(files))  # fmt: skip
    return SplitStream(source, split, shape, len(files), read, classes, cut, offset, known)


def shard_stream(shards: Shards, shape: tuple[int, int, int], offset: int = 0) -> SplitStream:
    """A ``wds:`` split read in order from its shards, its chunks decoded in threads."""
    c, h, w = shape
    counts = [len(shards.image_keys(u)) for u in shards.urls]

    def one(sample: dict[str, Any]) -> np.ndarray | BaseException:
        try:
            return decode(sample, c, (w, h)).copy()  # Pillow's arrays are read-only
        except UNREADABLE as exc:
            return exc

    def read(size: int, limit: int | None) -> Iterator[Chunk]:
        skipped = Skipped(f"{shards.source} [{shards.split}]")
        taken = 0
        with ThreadPoolExecutor(DECODERS) as pool:
            for group in _groups(read_samples(shards.urls, skipped, workers=False), size):
                images, labels, bad = [], [], 0
                for sample, out in zip(group, pool.map(one, group), strict=True):
                    if isinstance(out, BaseException):
                        skipped(out, f"{sample['__key__']}")
                        bad += 1
                    elif limit is None or taken + len(images) < limit:
                        images.append(torch.from_numpy(out))
                        labels.append(label_of(sample))
                if images:
                    taken += len(images)
                    yield Chunk(torch.stack(images), labels, None, bad)
                if limit is not None and taken >= limit:
                    return

    def cut(rank: int, world: int) -> SplitStream:
        mine = share(len(shards.urls), rank, world)
        part = replace(shards, urls=shards.urls[mine], counts=None)
        return shard_stream(part, shape, offset + sum(counts[: mine.start]))

    return SplitStream(shards.source, shards.split, shape, sum(counts), read,
                       lambda labels: classes_of(shards, labels), cut, offset)  # fmt: skip


def _groups(items: Iterator[T], size: int) -> Iterator[list[T]]:
    group: list[T] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


_DONE = object()


def ahead(items: Iterator[T], depth: int = AHEAD) -> Iterator[T]:
    """``items``, produced by a thread up to ``depth`` ahead of the consumer; an error there
    is raised here, and a consumer that stops early stops the thread."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                out.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # raised again in the consumer
            put(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator's own cleanup, in the thread that ran it
                close()

    thread = threading.Thread(target=produce, name="aekit-decode", daemon=True)
    thread.start()
    try:
        while (item := out.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class InOrder:
    """A streamed split as a sequence read front to back: ``len`` and consecutive slices, what
    :func:`aekit.training.step.evaluate` takes of its images; each image is decoded once. Its length
    is known before reading (what means are divided by), so every image must decode."""

    def __init__(self, stream: SplitStream, limit: int | None = None, chunk: int = 256) -> None:
        self.stream = stream
        self.count = stream.expected if limit is None else min(limit, stream.expected)
        self._chunks = stream.chunks(chunk, self.count)
        self._held: list[torch.Tensor] = []  # decoded, not yet taken
        self._next = 0  # the position the next slice starts at

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: slice) -> torch.Tensor:
        start, stop, _ = index.indices(self.count)
        if start != self._next:
            raise ValueError(f"InOrder is read front to back: asked {start}, at {self._next}")
        want = stop - start
        while sum(len(t) for t in self._held) < want:
            chunk = next(self._chunks, None)
            if chunk is None or chunk.skipped:
                self._chunks.close()
                raise AekitError(
                    f"{self.stream.source} [{self.stream.split}] has an image that cannot be "
                    f"decoded (the warning above names it): a split this large is scored as it "
                    "is read, counting its images first; remove that image and run it again"
                )
            self._held.append(chunk.images)
        held = torch.cat(self._held) if len(self._held) > 1 else self._held[0]
        self._held, self._next = [held[want:]] if len(held) > want else [], stop
        return held[:want]

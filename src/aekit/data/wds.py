"""``wds:<folder or pattern>``: WebDataset tar shards, read with the ``webdataset`` package.

A shard is a plain tar whose members ``KEY.png|jpg|jpeg|webp`` are the images and ``KEY.cls``
(optional) their class numbers — what timm, clip-retrieval and the Hugging Face hub use.

- ``wds:DIR``: a folder written by ``aekit data pack`` (``{split}-000000.tar`` ... and
  ``info.json``: the shards, their image counts, the class names and the image shape), or any
  folder of ``{split}-*.tar`` shards;
- ``wds:PATTERN``: the shards of one split, ``train``, as a brace pattern
  (``shards/part-{000000..000099}.tar``) or a glob (``shards/*.tar``).

Training streams a split (:mod:`aekit.data.wds_stream`): each epoch every process reads its own
shards (shard ``i`` goes to rank ``i % ranks``), and memory never holds the set. ``eval``,
``embed`` and ``score`` read a split whose images would exceed ``AEKIT_MEMMAP_BYTES`` in order, a
chunk at a time (:mod:`aekit.data.streamed`); other commands (describe, ...) and smaller splits
are read whole into memory. A split with no held-out split beside it gives one: the images whose
key hashes to 0 mod 10 (at most HELD_MAX of them), never trained on. A member that cannot be
decoded is skipped with a warning.
"""

from __future__ import annotations

import glob
import io
import json
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import AekitError
from .images import (
    GRAY_MODES,
    UNREADABLE,
    convert,
    fit,
    open_image,
    to_chw,
    unreadable_reason,
    upright,
)
from .imageset import ImageSet
from .warn import warn, worth_saying

IMAGE_KEYS = ("png", "jpg", "jpeg", "webp")
INFO = "info.json"
SPLITS = ("train", "val", "test")
HELD_EVERY = 10  # one image in ten is held out of a split with no held-out split beside it
HELD_MAX = 2048  # ... at most this many (read into memory, scored at every epoch's end)
SHUFFLE_BUFFER = 2000  # samples a worker shuffles among (the usual WebDataset size)


@dataclass(frozen=True)
class Shards:
    """The shards of one split of a ``wds:`` source."""

    source: str
    split: str
    urls: list[str]
    counts: list[int] | None  # images per shard, when info.json says (else counted on demand)
    classes: list[str]
    size: tuple[int, int, int] | None  # (C, H, W) every image is brought to
    carve: bool = False  # hold out 1 in 10 by key (no held-out split beside this one)
    keys: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def image_keys(self, url: str) -> list[str]:
        """The keys of the images in one shard (read from the tar headers, once)."""
        if url not in self.keys:
            self.keys[url] = _image_keys(Path(url))
        return self.keys[url]

    def train_count(self, url: str) -> int:
        """Images of a shard that train (all, or those not held out)."""
        keys = self.image_keys(url)
        return sum(not held_out(k) for k in keys) if self.carve else len(keys)


def held_out(key: str) -> bool:
    """Whether the image of ``key`` is held out of a carved split (the same on every machine)."""
    return zlib.crc32(key.encode()) % HELD_EVERY == 0


def _expand(pattern: str) -> list[str]:
    import braceexpand

    return [p for part in braceexpand.braceexpand(pattern) for p in _glob(part)]


def _glob(part: str) -> list[str]:
    if any(c in part for c in "*?["):
        return sorted(glob.glob(os.path.expanduser(part)))
    return [os.path.expanduser(part)]


def _read_info(folder: Path) -> dict[str, Any] | None:
    path = folder / INFO
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
        _check_info(info)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AekitError(
            f"{path} is damaged ({exc}); pack the data again with aekit data pack"
        ) from exc
    return info


def _check_info(info: Any) -> None:
    """Raise ValueError unless ``info`` has the shape ``aekit data pack`` writes."""
    if not isinstance(info, dict) or not isinstance(info.get("splits"), dict):
        raise ValueError("no 'splits' object")
    classes, shape = info.get("classes"), info.get("shape")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError("'classes' is not a list of names")
    if shape is not None and not (
        isinstance(shape, list) and len(shape) == 3 and shape[0] in (1, 3)
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
    ):  # fmt: skip
        raise ValueError(f"'shape' {shape!r} is not [channels 1 or 3, height, width]")
    for split, part in info["splits"].items():
        shards = part.get("shards") if isinstance(part, dict) else None
        counts = part.get("counts") if isinstance(part, dict) else None
        if not (isinstance(shards, list) and isinstance(counts, list)
                and len(shards) == len(counts)
                and all(isinstance(c, int) and c >= 0 for c in counts)):  # fmt: skip
            raise ValueError(f"split {split!r} has no 'shards' and 'counts' lists of one length")
        for name in shards:  # file names inside the folder, nothing else
            if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
                raise ValueError(f"shard {name!r} is not a file name in the folder")


def wds_splits(spec: str) -> list[str]:
    """The splits of a ``wds:`` source."""
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        return ["train"]
    info = _read_info(folder)
    if info is not None:
        return [s for s in SPLITS if s in info["splits"]] + sorted(
            s for s in info["splits"] if s not in SPLITS
        )
    found = sorted({p.name.rsplit("-", 1)[0] for p in folder.glob("*-*.tar")})
    if not found:
        raise AekitError(
            f"no shards in {folder}: a wds: folder holds train-000000.tar, test-000000.tar, ... "
            f"(as aekit data pack writes), or give a pattern such as "
            f"wds:{folder}/shard-{{000000..000009}}.tar"
        )
    return [s for s in SPLITS if s in found] + [s for s in found if s not in SPLITS]


def open_shards(spec: str, split: str, source: str, carve: bool = False) -> Shards:
    """The shards of ``split``; every one must exist (a missing shard is named)."""
    folder = Path(spec).expanduser()
    info = _read_info(folder) if folder.is_dir() else None
    counts, classes, size = None, [], None
    if info is not None:
        part = info["splits"].get(split)
        if part is None:
            raise AekitError(f"{source} has no {split!r} split: it has {', '.join(info['splits'])}")
        urls = [str(folder / name) for name in part["shards"]]
        counts, classes = list(part["counts"]), list(info["classes"])
        size = tuple(info["shape"]) if info.get("shape") else None
    elif folder.is_dir():
        urls = [str(p) for p in sorted(folder.glob(f"{split}-*.tar"))]
        if not urls:
            have = ", ".join(wds_splits(spec))
            raise AekitError(f"{source} has no {split!r} split: it has {have}")
    else:
        if not any(c in spec for c in "*?[{") and not spec.endswith(".tar"):
            raise AekitError(
                f"{source}: the folder {folder} does not exist; check the path after wds:"
            )
        if split != "train":
            raise AekitError(f"{source} is one split, train; it has no {split!r} split")
        urls = _expand(spec)
        if not urls:
            raise AekitError(
                f"{source} matches no file: check the pattern (a glob such as shards/*.tar or "
                "braces such as shards/part-{000000..000009}.tar)"
            )
        # shards of a packed folder: its info.json still names the classes and the shape
        parents = {Path(u).parent for u in urls}
        info = _read_info(parents.pop()) if len(parents) == 1 else None
        if info is not None:
            classes = list(info["classes"])
            size = tuple(info["shape"]) if info.get("shape") else None
    missing = [u for u in urls if not Path(u).is_file()]
    if missing:
        what = (f"shards {missing[0]} and {len(missing) - 1} more are" if len(missing) > 1
                else f"shard {missing[0]} is")  # fmt: skip
        raise AekitError(
            f"{source}: {what} missing ({len(urls) - len(missing)} of {len(urls)} found); "
            "copy them back or fix the pattern"
        )
    return Shards(source, split, urls, counts, classes, size, carve)  # type: ignore[arg-type]


def _image_keys(path: Path) -> list[str]:
    """Keys of the image members of a tar, from its headers (no image is decoded)."""
    try:
        size = path.stat().st_size
        if size == 0:
            raise tarfile.ReadError("empty file")
        with tarfile.open(path) as tar:
            every = list(tar)
        # a whole tar ends its last member's 512-byte blocks with two zero blocks; tarfile
        # stops quietly at a cut-short header, so look
        end = every[-1].offset_data + -(-every[-1].size // 512) * 512 if every else 0
        with path.open("rb") as fp:
            fp.seek(end)
            tail = fp.read(1024)
        if end > size or len(tail) < 1024 or any(tail):
            raise tarfile.ReadError("cut short or damaged after its last whole member")
        names = [m.name for m in every if m.isfile()]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AekitError(
            f"{path} is not a readable tar shard ({exc}); copy it again or pack the data again"
        ) from exc
    return [n.rsplit(".", 1)[0] for n in names if n.rsplit(".", 1)[-1].lower() in IMAGE_KEYS]


def decode(sample: dict[str, Any], channels: int, size_wh: tuple[int, int] | None) -> np.ndarray:
    """A WebDataset sample's image as uint8 (C, H, W), converted and resized; raises one of
    UNREADABLE or KeyError (no image member)."""
    ext = next(k for k in IMAGE_KEYS if k in sample)
    name = f"{sample['__key__']}.{ext}"
    with open_image(io.BytesIO(sample[ext]), name) as img:
        img = convert(upright(img), channels == 1)
        return to_chw(img if size_wh is None else fit(img, size_wh))


def label_of(sample: dict[str, Any]) -> int | None:
    raw = sample.get("cls")
    try:
        return None if raw is None else int(bytes(raw).decode().strip())
    except ValueError:
        return None


class Skipped:
    """Counts members skipped as unreadable and says so: each of the first few, then at 10,
    100, 1000, ... (a damaged set would otherwise print a line per image)."""

    SHOWN = 5

    def __init__(self, where: str, quiet: bool = False) -> None:
        self.where, self.count, self.quiet = where, 0, quiet

    def __call__(self, exc: BaseException, what: str) -> None:
        self.count += 1
        n = self.count
        if not self.quiet and worth_saying(n, self.SHOWN):
            # webdataset's own errors carry (message, file object, ...) as their arguments
            args = exc.args
            reason = args[0] if len(args) > 1 and isinstance(args[0], str) else None
            warn(f"skipped {what} of {self.where} ({n} so far): "
                 f"{reason or unreadable_reason(exc)}")  # fmt: skip

    def handler(self, exc: BaseException) -> bool:
        """For webdataset's pipeline stages: warn and continue."""
        self(exc, "an unreadable member")
        return True


def read_samples(urls: list[str], skipped: Skipped, workers: bool) -> Iterator[dict[str, Any]]:
    import webdataset as wds

    pipeline = wds.WebDataset(
        urls,
        shardshuffle=False,
        nodesplitter=lambda src: src,  # the ranks' shards are chosen before
        workersplitter=wds.split_by_worker if workers else (lambda src: src),
        handler=skipped.handler,
        empty_check=False,
    )
    for sample in pipeline:
        if any(k in sample for k in IMAGE_KEYS):
            yield sample


def first_shape(shards: Shards, image_size: int | None) -> tuple[int, int, int]:
    """(C, H, W) of a split without info.json: gray or colour and the size of its first
    readable image (``image_size`` square when given)."""
    skipped = Skipped(shards.source, quiet=True)  # reading the split says what it skips
    for sample in read_samples(shards.urls, skipped, workers=False):
        ext = next(k for k in IMAGE_KEYS if k in sample)
        try:
            with open_image(io.BytesIO(sample[ext]), sample["__key__"]) as img:
                c, (w, h) = (1 if img.mode in GRAY_MODES else 3), img.size
        except UNREADABLE as exc:
            skipped(exc, sample["__key__"])
            continue
        return (c, image_size, image_size) if image_size else (c, h, w)
    raise AekitError(
        f"{shards.source} [{shards.split}] has no readable image: its shards must hold members "
        "named KEY.png, KEY.jpg, KEY.jpeg or KEY.webp (aekit data pack writes them)"
    )


def shape_of(shards: Shards, image_size: int | None) -> tuple[int, int, int]:
    if shards.size is not None:
        c, h, w = shards.size
        return (c, image_size, image_size) if image_size else (c, h, w)
    return first_shape(shards, image_size)


def check_shards(shards: Shards) -> None:
    """Read every shard's tar headers: a cut-short or empty shard is an AekitError here, before
    any image is read, whichever command reads it."""
    for url in shards.urls:
        shards.image_keys(url)


def load_wds(spec: str, split: str, source: str, image_size: int | None) -> ImageSet:
    """One split read whole into memory (for eval, embed, describe, ...)."""
    shards = open_shards(spec, split, source)
    check_shards(shards)
    return _read(shards, image_size)


def carved_heldout(shards: Shards, image_size: int | None) -> ImageSet:
    """The held-out images of a carved split (key hash 0 mod 10), up to HELD_MAX, in memory."""
    held = _read(shards, image_size, held_out, HELD_MAX)
    if not len(held):
        raise AekitError(
            f"{shards.source} has too few images to hold 1 in {HELD_EVERY} out for evaluation: "
            "add images, or pack a test split beside it"
        )
    return held


def _read(
    shards: Shards,
    image_size: int | None,
    keep: Callable[[str], bool] | None = None,
    limit: int | None = None,
) -> ImageSet:
    """The images of a split (those whose key ``keep`` takes, at most ``limit``) in memory."""
    c, h, w = shape_of(shards, image_size)
    skipped = Skipped(f"{shards.source} [{shards.split}]")
    images, labels = [], []
    for sample in read_samples(shards.urls, skipped, workers=False):
        if keep is not None and not keep(sample["__key__"]):
            continue
        try:
            images.append(decode(sample, c, (w, h)))
        except UNREADABLE as exc:
            skipped(exc, f"{sample['__key__']}")
            continue
        labels.append(label_of(sample))
        if limit is not None and len(images) >= limit:
            break
    labelled = bool(images) and all(x is not None for x in labels)
    classes = classes_of(shards, labels)
    return ImageSet(
        images=torch.from_numpy(np.stack(images)) if images
        else torch.zeros((0, c, h, w), dtype=torch.uint8),
        labels=torch.tensor(labels, dtype=torch.int64) if labelled else None,
        classes=classes,  # type: ignore[arg-type]
        source=shards.source,
        split=shards.split,
    )  # fmt: skip


def classes_of(shards: Shards, labels: list[int | None]) -> list[str]:
    """The class names of a split whose images have ``labels``: info.json's, else "0", "1", ...
    up to the largest label; none (unlabelled) unless every image has a label."""
    if not labels or any(x is None for x in labels):
        return []
    return shards.classes or [str(i) for i in range(max(labels) + 1)]  # type: ignore[type-var]

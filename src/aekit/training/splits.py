"""Which images a run trains on and which it holds out for evaluation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch

from ..data import ImageSet, available_splits, load_dataset, pairs
from ..data.classes import class_mask, class_names, keep_classes
from ..data.config import DataConfig
from ..data.folder import FolderFiles, FolderScan, scan_folder
from ..data.masks import is_mvtec_layout
from ..data.npzarrays import memmap_threshold
from ..data.photos import PhotoSet, load_photos
from ..data.sources import parse_source
from ..data.streamed import SplitStream, folder_stream, open_stream
from ..data.wds import carved_heldout, check_shards, open_shards
from ..data.wds_stream import Stream
from ..errors import AekitError
from ..models import Autoencoder, check_input
from .runs import RunConfig

HOLDOUT_FRACTION = 0.1
# DataLoader workers decoding a streamed split (per process; torchrun's processes share the cores)
STREAM_WORKERS = min(4, max(1, (os.cpu_count() or 2) // 2))
HOLDOUT_MAX = 10_000  # images held out of a large split: enough to measure, cheap to score


def carve_holdout(ds: ImageSet, fraction: float = HOLDOUT_FRACTION) -> tuple[ImageSet, ImageSet]:
    """Split a set into (train, held-out) by a fixed random permutation (the same every run)."""
    check_two(len(ds), ds.source)
    keep, held = holdout_indices(len(ds), fraction)
    return ds.subset(torch.tensor(keep)), ds.subset(torch.tensor(held))


def check_two(n: int, source: str) -> None:
    """Refuse a split too small to hold one image out for evaluation."""
    if n < 2:
        raise AekitError(
            f"{source} has {n} image(s): at least 2 are needed to hold one out for evaluation"
        )


def holdout_indices(n: int, fraction: float = HOLDOUT_FRACTION) -> tuple[list[int], list[int]]:
    """(kept, held out) indices of ``n`` items, by a fixed random permutation, each sorted;
    at most HOLDOUT_MAX held out (every epoch scores them, from memory)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    cut = min(max(1, round(n * fraction)), HOLDOUT_MAX)
    return sorted(perm[cut:].tolist()), sorted(perm[:cut].tolist())


def heldout_name(cfg: DataConfig) -> str | None:
    """The split held out for evaluation: ``heldout_split``, else test, else val; None when
    it is the training split or there is none (then 10% of the training split is held out)."""
    name = cfg.heldout_split
    if name is None:
        splits = available_splits(cfg.source, cfg.data_dir)
        name = next((s for s in ("test", "val") if s in splits and s != cfg.train_split), None)
    return None if name == cfg.train_split else name


def load_splits(cfg: DataConfig) -> tuple[ImageSet, ImageSet]:
    """(train, held-out): the held-out split is ``heldout_split``, else test, else val, else 10%
    of the training split. ``classes`` keeps the images of those classes in both; ``limit``
    then keeps the first N images of each."""
    full, rows, held = training_split(cfg)
    return (full if rows is None else full.subset(rows)), held


def training_split(cfg: DataConfig) -> tuple[ImageSet, torch.Tensor | None, ImageSet]:
    """As :func:`load_splits`, but the training images as the split loaded and the rows of it
    that train (None: all of them): a memory-mapped split larger than memory stays on disk,
    whatever is carved out of it (the held-out images, other classes, ``limit``)."""

    def load(split: str) -> ImageSet:
        return load_dataset(cfg.source, split, data_dir=cfg.data_dir, image_size=cfg.image_size)

    full = load(cfg.train_split)
    held_name = heldout_name(cfg)
    rows = None
    if held_name is None:
        check_two(len(full), full.source)
        keep, out = holdout_indices(len(full))
        rows, held = torch.tensor(keep), full.subset(torch.tensor(out))
    else:
        held = load(held_name)
    if held.shape != full.shape:
        fix = (
            "pass --image-size to bring them to one size"
            if held.shape[0] == full.shape[0]
            else "the splits must have as many channels (all gray or all color); fix the data, "
            "or pass --heldout-split to choose another held-out split"
        )
        raise AekitError(
            f"the {held.split} images are {'x'.join(map(str, held.shape))}, the {full.split} "
            f"images {'x'.join(map(str, full.shape))}: {fix}"
        )
    if cfg.classes is not None:
        wanted = class_names(full, cfg.classes)
        mask = class_mask(full, wanted)
        rows = mask.nonzero().flatten() if rows is None else rows[mask[rows]]
        if not len(rows):  # those classes only among the held-out images
            raise AekitError(
                f"the {full.split} split of {full.source} has no images of class "
                f"{', '.join(wanted)} left to train on: choose classes it has in --classes"
            )
        held = keep_classes(held, wanted)
    if cfg.limit:
        held = held.subset(slice(0, cfg.limit))
        if rows is None:
            full = full.subset(slice(0, cfg.limit))
        else:
            rows = rows[: cfg.limit]
    return full, rows, held


def heldout_images(cfg: DataConfig) -> ImageSet:
    """The images a run held out while training, read as its training read them (see
    ``aekit.train``): a ``wds:`` split, or a folder too large to decode into memory, is not read
    whole to carve them out, and a ``wds:`` one holds out the images training held out."""
    src = parse_source(cfg.source)
    if cfg.patch_size is None and src.kind == "wds":
        return stream_split(cfg)[0]
    if cfg.patch_size is None and src.kind == "folder":
        scanned = scan_folder(Path(src.name), cfg.train_split, cfg.image_size)
        if scanned.decoded_bytes() > memmap_threshold():
            return folder_stream_split(cfg, scanned)[0]
    return load_splits(cfg)[1]


def training_batches(
    cfg: DataConfig, batch_size: int = 256
) -> tuple[Iterator[torch.Tensor], int, ImageSet]:
    """(the training images in uint8 batches, how many there are, the held-out images), read as
    training reads them: a ``wds:`` split streamed from its shards (in an order of its own), a
    folder too large to decode into memory file by file, in its order; others from memory."""
    src = parse_source(cfg.source)
    if cfg.patch_size is None and src.kind == "wds":
        held, stream = stream_split(cfg)
        n = stream.count(0, 1)  # before --classes: a bound, for a progress bar
        return stream.batches(batch_size, torch.Generator().manual_seed(0)), n, held
    if cfg.patch_size is None and src.kind == "folder":
        scanned = scan_folder(Path(src.name), cfg.train_split, cfg.image_size)
        if scanned.decoded_bytes() > memmap_threshold():
            held, _, rows = folder_stream_split(cfg, scanned)
            kept = replace(scanned, files=[scanned.files[r] for r in rows.tolist()], bad=[],
                           labels=None)  # fmt: skip
            stream = folder_stream(kept, cfg.source, cfg.train_split)
            return (c.images for c in stream.chunks(batch_size)), len(rows), held
    full, rows, held = training_split(cfg)
    rows = torch.arange(len(full)) if rows is None else rows
    # gathered a batch at a time: a memory-mapped split stays on disk
    batches = (full.images[rows[s : s + batch_size]] for s in range(0, len(rows), batch_size))
    return batches, len(rows), held


def load_photo_splits(cfg: DataConfig, clean: str | None = None) -> tuple[PhotoSet, PhotoSet]:
    """(train, held-out) photos at their own sizes, for patch training: the held-out split as
    ``load_splits`` chooses it, else the same fixed 10% of the training photos. With ``clean``
    (a folder of references, :mod:`aekit.data.pairs`) the held-out photos are those that have
    a reference: of the held-out split, else as many of the training photos as 10% would be."""
    train = load_photos(cfg.source, cfg.train_split, cfg.data_dir, cfg.limit)
    held_name = heldout_name(cfg)
    if cfg.heldout_split is None and mvtec_folder(cfg.source):
        held_name = None  # its test split has the defects: hold out normal photos instead
    index = None if clean is None else pairs.clean_index(clean)
    if held_name is not None:
        held = load_photos(cfg.source, held_name, cfg.data_dir, cfg.limit)
        if index is not None:
            held = held.subset(pairs.paired(held.paths, index) or _none(held.paths, clean))
    else:
        if len(train) < 2:
            raise AekitError(
                f"{cfg.source} has {len(train)} photo: at least 2 are needed to hold one out "
                "for evaluation"
            )
        keep, out = holdout_indices(len(train))
        if index is not None:  # the paired photos, in the same fixed random order
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
            have = set(pairs.paired(train.paths, index)) or _none(train.paths, clean)
            out = sorted([i for i in order.tolist() if i in have][: len(out)])
            keep = sorted(set(range(len(train))) - set(out))
        train, held = train.subset(keep), train.subset(out)
    if held.channels != train.channels:
        raise AekitError(
            f"the {held.split} photos have {held.channels} channel(s), the {train.split} photos "
            f"{train.channels}: the splits must be all gray or all colour; fix the data, or "
            "pass --heldout-split to choose another held-out split"
        )
    return train, held


def _none(paths: list[str], clean: str | None) -> list[int]:
    raise pairs.no_pairs(paths, clean or "")


def mvtec_folder(source: str) -> bool:
    """Whether ``source`` is a folder in MVTec AD's layout (``train/good``, ``test/<kind>``)."""
    src = parse_source(source)
    return src.kind == "folder" and is_mvtec_layout(Path(src.name).expanduser())


def stream_split(cfg: DataConfig) -> tuple[ImageSet, Stream]:
    """(held-out images in memory, the training split streamed from its shards) of a ``wds:``
    source: the held-out split as :func:`load_splits` chooses it, else 1 in 10 images by key."""
    src = parse_source(cfg.source)
    shards = open_shards(src.name, cfg.train_split, cfg.source)
    check_shards(shards)  # every shard whole, and the counts of images that train
    held_name = heldout_name(cfg)
    if held_name is None:
        shards = replace(shards, carve=True)
        held = carved_heldout(shards, cfg.image_size)
    else:
        held = load_dataset(cfg.source, held_name, data_dir=cfg.data_dir,
                            image_size=cfg.image_size)  # fmt: skip
    c, h, w = held.shape
    if shards.size is not None and cfg.image_size is None and shards.size[1:] != (h, w):
        raise AekitError(
            f"the {held.split} images are {h}x{w}, the {shards.split} images "
            f"{shards.size[1]}x{shards.size[2]}: pass --image-size to bring them to one size"
        )
    wanted = None
    if cfg.classes is not None:
        names = class_names(held, cfg.classes)
        held = keep_classes(held, names)
        numbers = {i for i, name in enumerate(held.classes) if name in names}
        wanted = numbers.__contains__
    if cfg.limit:
        held = held.subset(slice(0, cfg.limit))
    return held, Stream(shards, (c, h, w), workers=STREAM_WORKERS, wanted=wanted, limit=cfg.limit)


def folder_stream_split(
    cfg: DataConfig, scanned: FolderScan
) -> tuple[ImageSet, FolderFiles, torch.Tensor]:
    """(held-out images in memory, the training files decoded as batches need them, the rows
    of those files that train) of a ``folder:`` too large to decode into memory; ``scanned``
    is :func:`aekit.data.folder.scan_folder`'s answer for the training split."""
    scanned.warn_skipped()
    files, labels, classes = scanned.files, scanned.labels, scanned.classes
    data = FolderFiles(files, scanned.gray, scanned.size_wh)
    label_t = None if labels is None else torch.tensor(labels, dtype=torch.int64)
    rows = torch.arange(len(files))
    held_name = heldout_name(cfg)
    if held_name is None:
        check_two(len(files), cfg.source)
        keep, out = holdout_indices(len(files))
        rows = torch.tensor(keep)
        held = ImageSet(data.decode(out), None if label_t is None else label_t[out],
                        classes if labels is not None else [], cfg.source, cfg.train_split,
                        [str(files[i]) for i in out])  # fmt: skip
    else:
        held = load_dataset(cfg.source, held_name, data_dir=cfg.data_dir,
                            image_size=cfg.image_size)  # fmt: skip
    if cfg.classes is not None:
        names = class_names(held, cfg.classes)
        held = keep_classes(held, names)
        numbers = [i for i, name in enumerate(classes) if name in names]
        rows = rows[torch.isin(label_t[rows], torch.tensor(numbers))]  # type: ignore[index]
        if not len(rows):
            raise AekitError(
                f"the {cfg.train_split} split of {cfg.source} has no images of class "
                f"{', '.join(names)} left to train on: choose classes it has in --classes"
            )
    if cfg.limit:
        held, rows = held.subset(slice(0, cfg.limit)), rows[: cfg.limit]
    return held, data, rows


def load_split_images(
    run: str | Path,
    cfg: RunConfig,
    model: Autoencoder,
    data: str | None = None,
    split: str | None = None,
    data_dir: str | None = None,
    image_size: int | None = None,
    stream: bool = False,
) -> ImageSet | SplitStream:
    """The images a command scores a run on: those it held out while training, or ``data``
    [``split``, default test] at its size; refused when the model cannot take them. With
    ``stream``, a split too large to decode into memory comes as a :class:`SplitStream`."""
    if data is None and split is None and image_size is None:
        ds = heldout_images(replace(cfg.data, limit=None, data_dir=data_dir or cfg.data.data_dir))
    else:
        where = (data or cfg.data.source, split or "test", data_dir or cfg.data.data_dir,
                 image_size or cfg.data.image_size)  # fmt: skip
        ds = open_stream(*where) if stream else None
        if ds is None:
            ds = load_dataset(where[0], where[1], data_dir=where[2], image_size=where[3])
    check_input(model, ds.shape, f"{ds.source} [{ds.split}]", run)
    return ds

"""Which images a run trains on and which it holds out for evaluation."""

from __future__ import annotations

import torch

from .config import DataConfig
from .data import ImageSet, available_splits, load_dataset
from .data.classes import class_names, keep_classes
from .data.photos import PhotoSet, load_photos
from .errors import AekitError

HOLDOUT_FRACTION = 0.1


def carve_holdout(ds: ImageSet, fraction: float = HOLDOUT_FRACTION) -> tuple[ImageSet, ImageSet]:
    """Split a set into (train, held-out) by a fixed random permutation (the same every run)."""
    if len(ds) < 2:
        raise AekitError(
            f"{ds.source} has {len(ds)} image(s): at least 2 are needed to hold "
            "one out for evaluation"
        )
    keep, held = holdout_indices(len(ds), fraction)
    return ds.subset(torch.tensor(keep)), ds.subset(torch.tensor(held))


def holdout_indices(n: int, fraction: float = HOLDOUT_FRACTION) -> tuple[list[int], list[int]]:
    """(kept, held out) indices of ``n`` items, by a fixed random permutation, each sorted."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    cut = max(1, round(n * fraction))
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

    def load(split: str) -> ImageSet:
        return load_dataset(cfg.source, split, data_dir=cfg.data_dir, image_size=cfg.image_size)

    train = load(cfg.train_split)
    held_name = heldout_name(cfg)
    if held_name is None:
        train, held = carve_holdout(train)
    else:
        held = load(held_name)
    if held.shape != train.shape:
        fix = (
            "pass --image-size to bring them to one size"
            if held.shape[0] == train.shape[0]
            else "the splits must have as many channels (all gray or all color); fix the data, "
            "or pass --heldout-split to choose another held-out split"
        )
        raise AekitError(
            f"the {held.split} images are {'x'.join(map(str, held.shape))}, the {train.split} "
            f"images {'x'.join(map(str, train.shape))}: {fix}"
        )
    if cfg.classes is not None:
        wanted = class_names(train, cfg.classes)
        train, held = keep_classes(train, wanted), keep_classes(held, wanted)
    if cfg.limit:
        train, held = train.subset(slice(0, cfg.limit)), held.subset(slice(0, cfg.limit))
    return train, held


def load_photo_splits(cfg: DataConfig) -> tuple[PhotoSet, PhotoSet]:
    """(train, held-out) photos at their own sizes, for patch training: the held-out split as
    ``load_splits`` chooses it, else the same fixed 10% of the training photos."""
    train = load_photos(cfg.source, cfg.train_split, cfg.data_dir, cfg.limit)
    held_name = heldout_name(cfg)
    if held_name is not None:
        held = load_photos(cfg.source, held_name, cfg.data_dir, cfg.limit)
    else:
        if len(train) < 2:
            raise AekitError(
                f"{cfg.source} has {len(train)} photo: at least 2 are needed to hold one out "
                "for evaluation"
            )
        keep, out = holdout_indices(len(train))
        train, held = train.subset(keep), train.subset(out)
    if held.channels != train.channels:
        raise AekitError(
            f"the {held.split} photos have {held.channels} channel(s), the {train.split} photos "
            f"{train.channels}: the splits must be all gray or all colour; fix the data, or "
            "pass --heldout-split to choose another held-out split"
        )
    return train, held

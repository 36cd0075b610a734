"""What a run trains on (``TrainingData``): whole images in memory, a folder read per batch, a
``wds:`` split streamed from its shards, or random patches of photos; the held-out images scored
at each epoch's end; and the model config fitted to them."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..data import ImageSet
from ..data.classes import class_names
from ..data.folder import FolderFiles, scan_folder
from ..data.masks import NORMAL, is_mvtec_layout
from ..data.npzarrays import memmap_threshold
from ..data.pairs import clean_index, read_references
from ..data.photos import HELD_SIDE, PhotoSet, check_patch_size, patch_batches, patches_per_epoch
from ..data.sources import parse_source
from ..data.warn import warn
from ..data.wds_stream import Stream
from ..errors import AekitError
from ..models import get_family, to_model_scale
from .distributed import SINGLE, Group
from .objectives import parse_sparsity
from .runs import RunConfig
from .selfsup import noise_sigma
from .splits import (
    STREAM_WORKERS,
    folder_stream_split,
    load_photo_splits,
    stream_split,
    training_split,
)

DEVICE_RESIDENT_BYTES = 8 * 2**30  # larger (memory-mapped) sets stay on the host, streamed


@dataclass
class TrainingData:
    """What a run trains on: whole images, or random patches of photos (``--patch-size``); and
    the held-out images scored at each epoch's end."""

    held: ImageSet
    images: torch.Tensor | None = None  # uint8 (N, C, H, W), whole-image training
    rows: torch.Tensor | None = None  # the rows of ``images`` that train (None: all of them)
    photos: PhotoSet | None = None  # patch training
    stream: Stream | None = None  # a wds: split, streamed from its shards
    files: FolderFiles | None = None  # a folder too large to decode whole: read per batch
    patch_size: int = 0
    normal: list[str] | None = None  # the class names --classes kept
    references: torch.Tensor | None = None  # uint8 clean references of ``held`` (--clean)

    def per_epoch(self, batch_size: int, group: Group = SINGLE) -> int:
        """Images (or patches) per epoch, over all ranks."""
        if self.stream is not None:
            return group.world * min(self.stream.count(r, group.world) for r in range(group.world))
        if self.photos is not None:
            return patches_per_epoch(self.photos, self.patch_size, batch_size * group.world)
        if self.rows is not None:
            return len(self.rows)
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of what the model trains on."""
        if self.photos is not None:
            return self.photos.channels, self.patch_size, self.patch_size
        if self.stream is not None:
            return self.stream.shape
        if self.files is not None:
            w, h = self.files.size_wh
            return (1 if self.files.gray else 3), h, w
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    def channel_mean(self, arch: str, most: int = 4096) -> torch.Tensor:
        """(C,) the per-channel mean of (the first ``most``) held-out images on ``arch``'s
        scale: what the decoder starts at. The held-out images are in memory however the
        training split is read (whole, per batch from files, streamed from shards), so every
        way of reading one dataset starts the same run."""
        return to_model_scale(self.held.images[:most].float().mean(dim=(0, 2, 3)), arch)

    def steps(self, batch_size: int, group: Group = SINGLE) -> int:
        """Optimizer steps per epoch: batches of ``batch_size`` x ranks, less a last one too
        small to give every rank an image."""
        per_step = batch_size * group.world
        n = self.per_epoch(batch_size, group)
        return n // per_step + (n % per_step >= group.world)

    def to_device(self, device: torch.device) -> None:
        """Keep the uint8 training data on an accelerator when it fits."""
        if device.type == "cpu":
            return
        if self.photos is not None and self.photos.flat.numel() <= DEVICE_RESIDENT_BYTES:
            self.photos = self.photos.to(device)
        elif self.images is not None and self.images.numel() <= DEVICE_RESIDENT_BYTES:
            self.images = self.images.to(device)
            self.rows = None if self.rows is None else self.rows.to(device)

    def batches(
        self, batch_size: int, gen: torch.Generator, group: Group = SINGLE
    ) -> Iterator[torch.Tensor]:
        """One epoch of uint8 batches, in an order drawn from ``gen``: this rank's part of each
        batch of ``batch_size`` x ranks (the order is the same on every rank, the parts differ;
        a last batch with fewer images than ranks is left out)."""
        per_step = batch_size * group.world
        if self.stream is not None:  # the ranks' shards hold unequal counts: stop together
            it = self.stream.batches(batch_size, gen, group.rank, group.world)
            for _ in range(self.steps(batch_size, group)):
                batch = next(it, None)
                if group.any(batch is None):
                    return
                yield batch
            return
        if self.photos is not None:
            cut = patch_batches(self.photos, self.patch_size, per_step, gen, group.shard)
            yield from itertools.islice(cut, self.steps(batch_size, group))
            return
        n = self.per_epoch(batch_size, group)
        device = self.images.device if self.images is not None else torch.device("cpu")
        perm = torch.randperm(n, generator=gen).to(device)
        if self.rows is not None:
            perm = self.rows.to(perm.device)[perm]
        parts = (perm[s : s + per_step] for s in range(0, n - group.world + 1, per_step))
        parts = (chunk[group.shard(len(chunk))] for chunk in parts)
        if self.files is None:
            yield from (self.images[part] for part in parts)
            return
        from torch.utils.data import DataLoader

        from ..data.folder import stack_present

        # decoded by DataLoader workers, two batches ahead of the model
        yield from DataLoader(self.files, batch_sampler=[p.tolist() for p in parts],
                              num_workers=STREAM_WORKERS, prefetch_factor=2,
                              collate_fn=stack_present)  # fmt: skip


def mvtec_classes(cfg: RunConfig) -> RunConfig:
    """A folder in MVTec AD's layout (only ``train/good`` to train on) trains on its normal
    images: ``--classes good`` is implied, so the held-out images are ``test/good`` and the
    anomaly threshold is set on normal images only."""
    src = parse_source(cfg.data.source)
    if cfg.data.classes is not None or src.kind != "folder":
        return cfg
    if not is_mvtec_layout(Path(src.name).expanduser()):
        return cfg
    if cfg.data.patch_size is not None:  # photos, unlabelled: train/ is all good already
        if cfg.data.heldout_split is None:
            print(f"note: {src.name} is laid out as MVTec AD (train/good): training on patches "
                  "of its normal photos, 10% of them held out (its test split has the defects)",
                  file=sys.stderr)  # fmt: skip
        return cfg
    print(f"note: {src.name} is laid out as MVTec AD (train/good): training on its normal "
          "images, as --classes good", file=sys.stderr)  # fmt: skip
    return replace(cfg, data=replace(cfg.data, classes=NORMAL))


def load_training_data(cfg: RunConfig) -> TrainingData:
    data = _load(cfg)
    # (no size check for the methods: --patch-size and --image-size are 8 or more, room for
    # two blind-spot cells or 4x4 sub-images a side)
    if cfg.train.self_supervised:
        check_noisy(data, cfg)
    return data


def _load(cfg: RunConfig) -> TrainingData:
    cfg = mvtec_classes(cfg)
    if cfg.train.clean is not None and cfg.data.patch_size is None:
        raise AekitError("--clean pairs photos at their own size: add --patch-size (e.g. 64)")
    if cfg.data.patch_size is None and parse_source(cfg.data.source).kind == "wds":
        held, stream = stream_split(cfg.data)
        normal = None if cfg.data.classes is None else class_names(held, cfg.data.classes)
        return TrainingData(held, stream=stream, normal=normal)
    src = parse_source(cfg.data.source)
    if cfg.data.patch_size is None and src.kind == "folder":
        scanned = scan_folder(Path(src.name), cfg.data.train_split, cfg.data.image_size)
        if scanned.decoded_bytes() > memmap_threshold():  # too big to decode into memory
            held, data, rows = folder_stream_split(cfg.data, scanned)
            normal = None if cfg.data.classes is None else class_names(held, cfg.data.classes)
            return TrainingData(held, files=data, rows=rows, normal=normal)
    if cfg.data.patch_size is None:
        train_set, rows, held = training_split(cfg.data)
        normal = None if cfg.data.classes is None else class_names(train_set, cfg.data.classes)
        return TrainingData(held, images=train_set.images, rows=rows, normal=normal)
    photos, held = load_photo_splits(cfg.data, cfg.train.clean)
    size = cfg.data.patch_size
    check_patch_size(photos, size)
    # held-out photos are scored on their centres: the patch size for a fixed-size family,
    # else as much as all of them have (up to HELD_SIDE)
    side = min(HELD_SIDE, held.smallest()[0]) if get_family(cfg.model.arch).any_size else size
    check_patch_size(held, side)
    refs = None
    if cfg.train.clean is not None:
        sizes = [(int(h), int(w)) for h, w in zip(held.heights, held.widths, strict=True)]
        arrays = read_references(held.paths, clean_index(cfg.train.clean), held.channels, sizes)
        refs = PhotoSet.from_arrays(arrays, cfg.train.clean, held.split, held.paths)
        refs = refs.centre_crops(side).images
        print(f"note: {len(held)} noisy photos with clean references in {cfg.train.clean} are "
              "held out and scored against them", file=sys.stderr)  # fmt: skip
    return TrainingData(held.centre_crops(side), photos=photos, patch_size=size, references=refs)


# a noise sigma (0-255) below which images look clean: the median of CBSD432's, Train400's and
# Kodak24's clean photos is 2.2-2.6, of the same with sigma-25 noise 25.2, with poisson:30 30.8
CLEAN_SIGMA = 4.0
SIGMA_SAMPLE = 64  # images (photos) whose noise is estimated


def check_noisy(data: TrainingData, cfg: RunConfig) -> None:
    """Say so when a self-supervised run's images look clean: it learns to remove the noise
    they have, and there is next to none."""
    if data.photos is not None:
        step = max(1, len(data.photos) // SIGMA_SAMPLE)
        photos = [data.photos.photo(i)[None] for i in range(0, len(data.photos), step)]
        sigmas = torch.cat([noise_sigma(p) for p in photos])
    else:
        sigmas = noise_sigma(data.held.images[:SIGMA_SAMPLE])
    sigma = float(sigmas.median())
    if sigma < CLEAN_SIGMA:
        warn(f"the images of {cfg.data.source} look clean (their noise sigma is about "
             f"{sigma:.1f} of 255, estimated from their finest details; sigma-25 noise gives "
             "25): --self-supervised learns to remove the noise the images have; point --data "
             "at the noisy images, or train on clean ones with --noise")  # fmt: skip


def fit_model_config(cfg: RunConfig, data: TrainingData) -> RunConfig:
    """Take channels and size from the data (and k from topk sparsity); ``--classes`` is
    saved by class name (a folder's splits number their classes each on its own)."""
    c, h, w = data.shape
    if h != w:
        raise AekitError(
            f"{cfg.data.source} has {h}x{w} images; the models need square ones: "
            "pass --image-size to resize them"
        )
    sp = parse_sparsity(cfg.train.sparsity)
    topk = sp.k if sp and sp.kind == "topk" else None
    data_cfg = cfg.data
    if data.normal and not any("," in name for name in data.normal):
        data_cfg = replace(cfg.data, classes=",".join(data.normal))
    model = replace(cfg.model, in_channels=c, image_size=h, topk=topk)
    return replace(cfg, data=data_cfg, model=model)


def check_ranks(data: TrainingData, cfg: RunConfig, group: Group) -> None:
    """Refuse more processes than there are images to share out (each needs one per step),
    or than a streamed split has shards (each process reads whole shards)."""
    shards = None if data.stream is None else len(data.stream.shards.urls)
    if group.on and shards is not None and shards < group.world:
        raise AekitError(
            f"{cfg.data.source} has {shards} shard(s) for {group.world} processes: each process "
            f"reads whole shards; start at most {shards}, or pack the data into more shards "
            "(aekit data pack --shard-size)"
        )
    n = data.per_epoch(cfg.train.batch_size, group)
    if group.on and n < group.world:
        what = "patches" if data.photos is not None else "training images"
        raise AekitError(
            f"{group.world} processes share {n} {what} of {cfg.data.source}: every process "
            f"needs at least one; start at most {n} (torchrun --nproc_per_node), or use more data"
        )


def load_textures(cfg: RunConfig, device: torch.device) -> torch.Tensor | None:
    """The images of ``--anomaly-source`` (any folder, searched recursively) at the training
    size, uint8 (N, C, S, S) on ``device``: the textures a draem run pastes; None without it."""
    from ..data.images import IMAGE_EXTENSIONS, read_image_files

    source = cfg.train.anomaly_source
    if source is None:
        return None
    if not get_family(cfg.model.arch).segments:
        raise AekitError(f"--anomaly-source gives the textures of synthetic anomalies: it is for "
                         f"--arch draem, not {cfg.model.arch}")  # fmt: skip
    folder = Path(source)
    if not folder.is_dir():
        raise AekitError(f"--anomaly-source {folder} is not a folder: name a folder of images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise AekitError(f"--anomaly-source {folder} holds no images "
                         f"({', '.join(sorted(IMAGE_EXTENSIONS))})")  # fmt: skip
    side = cfg.model.image_size
    assert side is not None and cfg.model.in_channels is not None  # set from the data
    textures, _ = read_image_files(paths, cfg.model.in_channels, (side, side))
    print(f"note: {len(paths)} images of {folder} as anomaly textures, at {side}x{side}",
          file=sys.stderr)  # fmt: skip
    return textures.to(device)

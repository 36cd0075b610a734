"""Anomaly scores at each image's own size, for a fully convolutional run trained on patches of
photos (``aekit train --arch draem --patch-size 128``): the held-out normal photos and the
images scored go through the model whole, one at a time, so a defect a pixel wide on a
600-pixel photo stays a pixel wide, and each map is the image's own size.

A list of (C, H, W) uint8 images stands where the other runs take one (N, C, H, W) batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.folder import NATIVE, read_folder
from ..data.sources import parse_source
from ..data.streamed import Listing
from ..errors import AekitError
from ..models import Autoencoder, get_family
from ..training.runs import RunConfig
from .methods import anomaly_maps, reconstruct_scores

PER_IMAGE = ("reconstructions", "maps")  # what is kept per image, at its own size


def is_native(cfg: RunConfig) -> bool:
    """Whether a run scores images at their own sizes: trained on patches, fully convolutional."""
    return cfg.data.patch_size is not None and get_family(cfg.model.arch).any_size


def parts_each(
    model: Autoencoder, images: list[torch.Tensor], ssim: bool = True, maps: str | None = None
) -> dict[str, Any]:
    """:func:`reconstruct_scores` of each image alone, joined: (N,) scores and (N, D) codes;
    with ``maps``, lists of each image's reconstruction and map at its own size."""
    outs = [reconstruct_scores(model, image[None], ssim=ssim, maps=maps) for image in images]
    joined: dict[str, Any] = {}
    for key in outs[0]:
        if key in PER_IMAGE:
            joined[key] = [out[key][0] for out in outs]
        else:
            joined[key] = np.concatenate([out[key] for out in outs])
    return joined


def maps_each(
    model: Autoencoder, images: list[torch.Tensor], kind: str
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """:func:`anomaly_maps` of each image alone: its reconstruction and its map, own size."""
    pairs = [anomaly_maps(model, image[None], kind) for image in images]
    return [r[0] for r, _ in pairs], [m[0] for _, m in pairs]


def folder_images(
    source: str, split: str, channels: int, limit: int | None
) -> tuple[Listing, list[torch.Tensor]]:
    """A ``folder:`` split at its images' own sizes: what was found (labels, classes, files)
    and the images, uint8 (C, H, W) each."""
    src = parse_source(source)
    if src.kind != "folder":
        raise AekitError(f"this run scores images at their own sizes (it was trained on "
                         f"patches): score a folder: or image files, not {source}")  # fmt: skip
    files, arrays, labels, classes = read_folder(Path(src.name), split, NATIVE)
    files, arrays = files[:limit], arrays[:limit]
    images = [torch.as_tensor(np.array(a)) for a in arrays]
    if images and images[0].shape[0] != channels:
        raise AekitError(f"{source} [{split}] has {images[0].shape[0]}-channel images; the run "
                         f"was trained on {channels}-channel ones")  # fmt: skip
    found = Listing(source, split, tuple(images[0].shape) if images else (channels, 0, 0),
                    classes, None if labels is None else torch.tensor(labels[: len(files)]),
                    [str(f) for f in files], len(files))  # fmt: skip
    return found, images

"""What the commands that use a run read: the run itself, and image files checked from their
headers and converted as the run's training data was (and said so)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..errors import AekitError
from ..models import Autoencoder


def load_run(run: str) -> tuple[Autoencoder, object]:
    from ..devices import pick_device
    from ..training.runs import load, load_config

    cfg = load_config(run)
    return load(run, device=pick_device("auto")), cfg


def read_images(model: Autoencoder, paths: list[str]) -> torch.Tensor:
    """Image files as uint8 (B, C, H, W), converted as the training data was (and said so)."""
    from ..data import read_image_files

    size = model.config.image_size
    u8, notes = read_image_files(paths, model.config.in_channels, (size, size))
    for note in notes:
        print(f"note: {note} (as the model's training data)", file=sys.stderr)
    return u8


def check_headers(model: Autoencoder, paths: list[str]) -> None:
    """Refuse, before any work, a missing or unreadable file, one over the pixel limit, and
    one smaller than the model's stride (read from the headers only)."""
    from ..data.images import image_size

    least = getattr(model, "stride", 1)
    for path in map(Path, paths):
        w, h = image_size(path)
        if min(w, h) < least:
            raise AekitError(
                f"{path} is {w}x{h} pixels: this model needs images of at least {least}x{least}"
            )

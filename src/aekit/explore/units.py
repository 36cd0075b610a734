"""``aekit units``: what each unit of a code stands for — the images that activate it most, and
the decoder's picture of that unit alone — with how often each unit fires and how many never do.

A unit fires on an image when its activation (``objectives.activations``: the sigmoid for a
KL-sparse code, else the magnitude) is above ``ACTIVE_THRESHOLD``, as training's
``active_fraction`` and ``dead_units`` count it. The most used units are those that fire on the
most images (ties: the larger mean activation). A unit alone is the zero code with that unit set
to its typical active value (the median of its values where it fires), decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import AekitError
from ..models import Autoencoder, get_family, to_unit_scale
from ..search.embed import encode
from ..training.objectives import ACTIVE_THRESHOLD, Sparsity, activations

MAX_TOP = 64


@dataclass
class Units:
    """The most used units of a code over a set of images."""

    units: list[int]  # the most used units, most used first
    fires: np.ndarray  # (D,) fraction of the images on which each unit fires
    value: np.ndarray  # (len(units),) each unit's typical active value (its median where it fires)
    top: np.ndarray  # (len(units), per_unit) indices of the images that activate it most
    alone: torch.Tensor | None  # (len(units), C, H, W) [0, 1]: each unit decoded alone
    count: int  # images

    @property
    def dead(self) -> int:
        return int((self.fires == 0).sum())


def unit_report(
    model: Autoencoder,
    images: torch.Tensor,
    sparsity: Sparsity | None,
    top: int = 8,
    per_unit: int = 8,
) -> Units:
    """The ``top`` most used units of ``model``'s code over uint8 ``images`` (N, C, H, W)."""
    d = model.config.latent_dim
    if not 1 <= top <= min(d, MAX_TOP):
        raise AekitError(f"--top {top}: show between 1 and {min(d, MAX_TOP)} units of this code")
    if not 1 <= per_unit <= len(images):
        raise AekitError(f"--images {per_unit}: between 1 and the {len(images)} images scored")
    codes = torch.from_numpy(encode(model, images, progress=False))
    act = activations(codes, sparsity)
    firing = act > ACTIVE_THRESHOLD
    fires = firing.float().mean(dim=0).numpy()
    order = np.lexsort((-act.mean(dim=0).numpy(), -fires))[:top]  # by fires, then activation
    units = [int(u) for u in order]
    value = np.array([float(codes[firing[:, u], u].median()) if firing[:, u].any() else 0.0
                      for u in units], dtype=np.float32)  # fmt: skip
    best = torch.topk(act[:, units].T, per_unit, dim=1).indices.numpy()
    alone = None
    if get_family(model.config.arch).decodable:
        z = torch.zeros(len(units), d)
        z[torch.arange(len(units)), torch.tensor(units)] = torch.from_numpy(value)
        device = next(model.parameters()).device
        with torch.no_grad():
            alone = to_unit_scale(model.eval().decode(z.to(device)), model.config.arch).cpu()
    return Units(units, fires, value, best, alone, len(images))

"""A run scored on a split (``aekit eval``): the images it held out while training, or another
split at its size, read in chunks when too large for memory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..data.streamed import InOrder, SplitStream
from ..models import Autoencoder
from . import fastpath
from .runs import RunConfig
from .splits import load_split_images
from .step import Objective, evaluate

KEYS = ("mse", "psnr", "ssim", "count", "noisy_psnr", "denoised_psnr", "kl", "nelbo")


def evaluate_run(
    run: str | Path,
    cfg: RunConfig,
    model: Autoencoder,
    data: str | None = None,
    split: str | None = None,
    data_dir: str | None = None,
    image_size: int | None = None,
    limit: int | None = None,
    amp: bool = True,
) -> dict[str, Any]:
    """The numbers of :func:`aekit.evaluate` (without ``full_size``) for ``run``'s loaded
    ``model`` and config (its noise already replaced where asked)."""
    ds = load_split_images(run, cfg, model, data, split, data_dir, image_size, stream=True)
    if isinstance(ds, SplitStream):  # too large for memory: read in order as it is scored
        images = InOrder(ds, limit)
    else:
        images = ds.images[:limit] if limit else ds.images
    bf16 = fastpath.bf16_inference(next(model.parameters()).device, amp)
    result = evaluate(model, images, replace(Objective.from_config(cfg), amp=bf16), with_ssim=True)
    return {"source": ds.source, "split": ds.split, **{k: result[k] for k in KEYS if k in result}}

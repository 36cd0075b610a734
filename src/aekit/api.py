"""The flat Python API, mirroring the CLI (re-exported by ``aekit``)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from .config import DataConfig, ModelConfig, TrainConfig
from .errors import AekitError
from .models import Autoencoder, to_model_scale, to_unit_scale
from .runs import RunConfig, load, load_config
from .train import Objective
from .train import evaluate as _evaluate
from .train import train as _train


def make_config(data: str = "shapes", **options: Any) -> RunConfig:
    """A ``RunConfig`` from CLI-style options, each routed to the config that has it:
    ``make_config("mnist", arch="keras", epochs=5, noise="gaussian:0.2")``."""
    parts: dict[type, dict[str, Any]] = {
        DataConfig: {"source": data},
        ModelConfig: {},
        TrainConfig: {},
    }
    for key, value in options.items():
        owner = next((c for c in parts if key in {f.name for f in fields(c)}), None)
        if owner is None:
            raise AekitError(f"unknown training option {key!r}")
        parts[owner][key] = value
    return RunConfig(*(cls(**kw) for cls, kw in parts.items()))


def train(
    out: str | Path,
    data: str = "shapes",
    *,
    resume: bool = False,
    progress: bool | None = None,
    **options: Any,
) -> Path:
    """Train an autoencoder into the run folder ``out``, as ``aekit train`` does.

    ``options`` are the CLI flags with underscores: ``arch``, ``latent_dim``, ``base_channels``,
    ``epochs``, ``batch_size``, ``lr``, ``loss``, ``noise``, ``sparsity``, ``augment``,
    ``device``, ``seed``, ``limit``, ``data_dir``, ``image_size``, ``train_split``...
    With ``resume=True`` the run continues from its last finished epoch with its saved config.
    """
    cfg = load_config(out) if resume else make_config(data, **options)
    if resume and "epochs" in options:
        cfg.train.epochs = options["epochs"]
    return _train(cfg, out, resume=resume, progress=progress)


def evaluate(
    run: str | Path,
    data: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """``{"mse", "psnr", "ssim", "count"}`` of a run on a dataset split (default: its own)."""
    from .data import load_dataset

    cfg = load_config(run)
    model = load(run)
    ds = load_dataset(
        data or cfg.data.source,
        split,
        data_dir=data_dir or cfg.data.data_dir,
        image_size=cfg.data.image_size,
    )
    images = ds.images[:limit] if limit else ds.images
    return _evaluate(model, images, Objective.from_config(cfg), with_ssim=True)


@torch.no_grad()
def reconstruct(model: Autoencoder, images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) images -> reconstructions as [0, 1] floats."""
    device = next(model.parameters()).device
    _, y = model.eval()(to_model_scale(images.to(device), model.config.arch))
    return to_unit_scale(y, model.config.arch)

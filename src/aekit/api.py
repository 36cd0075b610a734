"""The flat Python API, mirroring the CLI (re-exported by ``aekit``)."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from .config import DataConfig, ModelConfig, TrainConfig
from .devices import pick_device
from .errors import AekitError
from .models import Autoencoder, check_input, to_model_scale, to_unit_scale
from .objectives import corrupt, parse_noise
from .runs import RunConfig, load, load_config, resume_config
from .train import Objective
from .train import evaluate as _evaluate
from .train import train as _train


def make_config(data: str = "shapes", **options: Any) -> RunConfig:
    """A ``RunConfig`` from CLI-style options, each routed to the config that has it:
    ``make_config("mnist", arch="keras", epochs=5, noise="gaussian:25")``."""
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
    cfg = resume_config(out, options) if resume else make_config(data, **options)
    return _train(cfg, out, resume=resume, progress=progress)


def evaluate(
    run: str | Path,
    data: str | None = None,
    split: str | None = None,
    data_dir: str | None = None,
    image_size: int | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Reconstruction quality of a run: ``{"mse", "psnr", "ssim", "count", "source", "split"}``
    (plus ``noisy_psnr``/``denoised_psnr`` for a denoising run, ``kl``/``nelbo`` in nats per
    image for a vae), MSE and PSNR on [0, 1] pixels.

    By default on the images the run held out while training; ``data``/``split`` pick others.
    """
    from .data import load_dataset
    from .splits import load_splits

    if limit is not None and limit < 1:
        raise AekitError(f"limit must be a positive number of images, got {limit}")
    cfg = load_config(run)
    model = load(run, device=pick_device("auto"))
    if data is None and split is None and image_size is None:
        ds = load_splits(replace(cfg.data, limit=None, data_dir=data_dir or cfg.data.data_dir))[1]
    else:
        ds = load_dataset(data or cfg.data.source, split or "test",
                          data_dir=data_dir or cfg.data.data_dir,
                          image_size=image_size or cfg.data.image_size)  # fmt: skip
    check_input(model, ds.shape, f"{ds.source} [{ds.split}]", run)
    images = ds.images[:limit] if limit else ds.images
    result = _evaluate(model, images, Objective.from_config(cfg), with_ssim=True)
    keys = ("mse", "psnr", "ssim", "count", "noisy_psnr", "denoised_psnr", "kl", "nelbo")
    return {"source": ds.source, "split": ds.split, **{k: result[k] for k in keys if k in result}}


@torch.no_grad()
def denoise(
    model: Autoencoder, images: torch.Tensor, noise: str | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (B, C, H, W) images -> (model input, denoised output), both [0, 1] floats.

    With ``noise`` (e.g. ``"gaussian:25"``) the images are corrupted first, as ``aekit
    denoise --add-noise`` does; without it they are taken to be noisy already.
    """
    device = next(model.parameters()).device
    x = to_model_scale(images.to(device), model.config.arch)
    spec = parse_noise(noise, "noise")
    if spec:
        x = corrupt(x, spec, model.value_range, torch.Generator(device).manual_seed(seed))
    y = model.eval()(x).recon
    return to_unit_scale(x, model.config.arch), to_unit_scale(y, model.config.arch)


@torch.no_grad()
def reconstruct(model: Autoencoder, images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) images -> reconstructions as [0, 1] floats."""
    device = next(model.parameters()).device
    y = model.eval()(to_model_scale(images.to(device), model.config.arch)).recon
    return to_unit_scale(y, model.config.arch)

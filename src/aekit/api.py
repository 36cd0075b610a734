"""The flat Python API, mirroring the CLI (re-exported by ``aekit``): ``train``, ``make_config``,
``evaluate`` (which picks training's evaluation or denoising's full-size one), ``reconstruct``;
``denoise`` and ``score`` are re-exported from their jobs."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from .anomaly.scoring import score
from .data.config import DataConfig
from .denoising.apply import denoise, denoise_photo, evaluate_full_size
from .denoising.fullsize import DEFAULT_TILE
from .devices import pick_device
from .errors import AekitError
from .models import Autoencoder, to_model_scale, to_unit_scale
from .models.config import ModelConfig
from .training.config import TrainConfig
from .training.evaluation import evaluate_run
from .training.init import init_model_config
from .training.loop import train as _train
from .training.objectives import parse_noise
from .training.runs import RunConfig, load, load_config, resume_config
from .training.splits import load_split_images

# what aekit.api offers (aekit re-exports most of it): its own functions and its jobs' ones
__all__ = [
    "denoise",
    "denoise_photo",
    "evaluate",
    "load_split_images",
    "make_config",
    "reconstruct",
    "score",
    "train",
]


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
    init = parts[TrainConfig].get("init")
    if init:  # the model is the one the weights belong to
        model = init_model_config(TrainConfig(init=init).init, parts.pop(ModelConfig))
        return RunConfig(DataConfig(**parts[DataConfig]), model, TrainConfig(**parts[TrainConfig]))
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
    noise: str | None = None,
    full_size: bool = False,
    per_image: bool = False,
    seed: int = 0,
    tile: int | None = DEFAULT_TILE,
    amp: bool = True,
    tta: bool = False,
    clean: str | None = None,
) -> dict[str, Any]:
    """Reconstruction quality of a run: ``{"mse", "psnr", "ssim", "count", "source", "split"}``
    (plus ``noisy_psnr``/``denoised_psnr`` for a denoising run, ``kl``/``nelbo`` in nats per
    image for a vae), MSE and PSNR on [0, 1] pixels. ``noise`` replaces the run's own.

    By default on the images the run held out while training; ``data``/``split`` pick others.
    ``full_size=True`` (a fully convolutional run) denoises each photo at its own size instead:
    see ``aekit.denoising.fullsize.score_photos`` for what it returns. ``amp``: bf16 autocast where
    the device runs it natively (False: float32 everywhere); ``tta`` (with ``full_size``): each
    photo denoised as the mean over its 8 rotations and reflections. ``clean`` (with
    ``full_size``): a folder of clean references; the photos are scored as they are (noisy
    files, no noise added) against the reference of the same name.
    """

    if limit is not None and limit < 1:
        raise AekitError(f"limit must be a positive number of images, got {limit}")
    cfg = load_config(run)
    if str(run).startswith("builtin:") and data is None:  # its training photos are not here
        raise AekitError(f"{run} was trained on photos that are not on this machine: pass "
                         "--data SOURCE (e.g. folder:PHOTOS) to score it")  # fmt: skip
    if clean is not None and (noise is not None or not full_size):
        raise AekitError("--clean scores noisy photos as they are against their references: "
                         "use it with --full-size, without --noise")  # fmt: skip
    if noise is not None:  # scored as a denoiser of that noise, whatever the run learnt from
        parse_noise(noise)
        train = replace(cfg.train, self_supervised=None, clean=None, noise=noise)
        cfg = replace(cfg, train=train)
    model = load(run, device=pick_device("auto"))
    if full_size:
        return evaluate_full_size(run, cfg, model, data, split, data_dir, limit, per_image,
                                   seed, tile, amp, tta, clean)  # fmt: skip
    if per_image:
        raise AekitError("per-image numbers come with a full-size evaluation: add --full-size")
    if tta:
        raise AekitError("--tta (each photo turned 8 ways) comes with a full-size evaluation: "
                         "add --full-size")  # fmt: skip
    return evaluate_run(run, cfg, model, data, split, data_dir, image_size, limit, amp)


@torch.no_grad()
def reconstruct(model: Autoencoder, images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) images -> reconstructions as [0, 1] floats."""
    device = next(model.parameters()).device
    y = model.eval()(to_model_scale(images.to(device), model.config.arch)).recon
    return to_unit_scale(y, model.config.arch)

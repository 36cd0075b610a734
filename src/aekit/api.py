"""The flat Python API, mirroring the CLI (re-exported by ``aekit``)."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from . import fastpath
from .config import DataConfig, ModelConfig, TrainConfig
from .data import ImageSet
from .data.streamed import InOrder, SplitStream
from .devices import pick_device
from .errors import AekitError
from .fullsize import DEFAULT_TILE, add_noise, denoise_image, denoise_images
from .models import Autoencoder, check_input, to_model_scale, to_unit_scale
from .objectives import parse_noise
from .runs import RunConfig, load, load_config, resume_config
from .scoring import score  # noqa: F401  (aekit.api.score, re-exported as aekit.score)
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
    noise: str | None = None,
    full_size: bool = False,
    per_image: bool = False,
    seed: int = 0,
    tile: int | None = DEFAULT_TILE,
    amp: bool = True,
) -> dict[str, Any]:
    """Reconstruction quality of a run: ``{"mse", "psnr", "ssim", "count", "source", "split"}``
    (plus ``noisy_psnr``/``denoised_psnr`` for a denoising run, ``kl``/``nelbo`` in nats per
    image for a vae), MSE and PSNR on [0, 1] pixels. ``noise`` replaces the run's own.

    By default on the images the run held out while training; ``data``/``split`` pick others.
    ``full_size=True`` (a fully convolutional run) denoises each photo at its own size instead:
    see :func:`aekit.fullsize.score_photos` for what it returns. ``amp``: bf16 autocast where
    the device runs it natively (False: float32 everywhere).
    """

    if limit is not None and limit < 1:
        raise AekitError(f"limit must be a positive number of images, got {limit}")
    cfg = load_config(run)
    if noise is not None:
        parse_noise(noise)
        cfg = replace(cfg, train=replace(cfg.train, noise=noise))
    model = load(run, device=pick_device("auto"))
    if full_size:
        return _evaluate_full_size(run, cfg, model, data, split, data_dir, limit, per_image,
                                   seed, tile, amp)  # fmt: skip
    if per_image:
        raise AekitError("per-image numbers come with a full-size evaluation: add --full-size")
    ds = load_split_images(run, cfg, model, data, split, data_dir, image_size, stream=True)
    if isinstance(ds, SplitStream):  # too large for memory: read in order as it is scored
        images = InOrder(ds, limit)
    else:
        images = ds.images[:limit] if limit else ds.images
    bf16 = fastpath.bf16_inference(next(model.parameters()).device, amp)
    result = _evaluate(model, images, replace(Objective.from_config(cfg), amp=bf16), with_ssim=True)
    keys = ("mse", "psnr", "ssim", "count", "noisy_psnr", "denoised_psnr", "kl", "nelbo")
    return {"source": ds.source, "split": ds.split, **{k: result[k] for k in keys if k in result}}


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
    from .data import load_dataset
    from .data.streamed import open_stream
    from .splits import heldout_images

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


def _evaluate_full_size(
    run: str | Path,
    cfg: RunConfig,
    model: Autoencoder,
    data: str | None,
    split: str | None,
    data_dir: str | None,
    limit: int | None,
    per_image: bool,
    seed: int,
    tile: int | None,
    amp: bool,
) -> dict[str, Any]:
    from .data import available_splits
    from .data.photos import load_photos
    from .fullsize import check_full_size, score_photos
    from .splits import load_photo_splits

    check_full_size(model)
    spec = parse_noise(cfg.train.noise)
    if spec is None:
        raise AekitError(
            f"{run} was not trained with noise: pass --noise (e.g. gaussian:25) to score how it "
            "denoises"
        )
    data_dir = data_dir or cfg.data.data_dir
    if data is None and split is None:
        photos = load_photo_splits(replace(cfg.data, limit=None, data_dir=data_dir))[1]
    else:
        source = data or cfg.data.source
        if split is None:
            splits = available_splits(source, data_dir)
            split = "test" if "test" in splits else splits[0]
        photos = load_photos(source, split, data_dir)
    if limit:
        photos = photos.subset(list(range(min(limit, len(photos)))))
    result = score_photos(model, photos, spec, seed, tile, per_image, amp=amp)
    return {"source": photos.source, "split": photos.split, "noise": cfg.train.noise, **result}


@torch.no_grad()
def denoise(
    model: Autoencoder,
    images: torch.Tensor | list[torch.Tensor],
    noise: str | None = None,
    seed: int = 0,
    tile: int | None = DEFAULT_TILE,
    amp: bool = True,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[list[torch.Tensor], list[torch.Tensor]]:
    """uint8 images -> (model input, denoised output), both [0, 1] floats on the CPU.

    ``images``: a (B, C, H, W) batch of the model's size, or (a fully convolutional family,
    e.g. unet) a list of (C, H, W) photos of any sizes, each denoised at its own size (larger
    than ``tile`` pixels: in exact overlapping tiles); a list gives lists. With ``noise``
    (e.g. ``"gaussian:25"``) the images are corrupted first, image i from ``seed + i``, as
    ``aekit denoise --add-noise`` does (the noisy input is unclipped); without it they are
    taken to be noisy already. ``amp``: bf16 autocast where the device runs it natively.
    """
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        return _denoise_batch(model, images, noise, seed, tile, amp)
    shapes = {tuple(im.shape) for im in images if isinstance(im, torch.Tensor)}
    if len(images) > 1 and len(shapes) == 1 and len(next(iter(shapes))) == 3:  # one batch
        noisy, den = _denoise_batch(model, torch.stack(list(images)), noise, seed, tile, amp)
        return list(noisy), list(den)
    pairs = [denoise_photo(model, im, noise, seed + i, tile, amp) for i, im in enumerate(images)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _denoise_batch(
    model: Autoencoder, images: torch.Tensor, noise: str | None, seed: int, tile: int | None,
    amp: bool,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`denoise_photo` of each image of a uint8 (B, C, H, W) batch, the model run on the
    batch at once (the same numbers, to float rounding: kernels round with the batch size)."""
    if images.dtype != torch.uint8:
        raise AekitError(f"denoise takes uint8 images, got {images.dtype} {tuple(images.shape)}")
    check_input(model, tuple(images.shape[1:]), "the given")
    spec = parse_noise(noise, "noise")
    if spec:  # image i from seed + i, as one at a time
        noisy = torch.stack([add_noise(im, spec, seed + i) for i, im in enumerate(images)])
    else:
        noisy = images.float() / 255.0
    return noisy, denoise_images(model, noisy, tile, amp)


def denoise_photo(
    model: Autoencoder,
    image: torch.Tensor,
    noise: str | None = None,
    seed: int = 0,
    tile: int | None = DEFAULT_TILE,
    amp: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One uint8 (C, H, W) image -> (model input, denoised), [0, 1] floats (C, H, W)."""
    if image.dtype != torch.uint8 or image.dim() != 3:
        raise AekitError(
            f"denoise takes uint8 (C, H, W) images, got {image.dtype} {tuple(image.shape)}"
        )
    check_input(model, tuple(image.shape), "the given")
    spec = parse_noise(noise, "noise")
    noisy = add_noise(image, spec, seed) if spec else image.float() / 255.0
    return noisy, denoise_image(model, noisy, tile, amp)


@torch.no_grad()
def reconstruct(model: Autoencoder, images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) images -> reconstructions as [0, 1] floats."""
    device = next(model.parameters()).device
    y = model.eval()(to_model_scale(images.to(device), model.config.arch)).recon
    return to_unit_scale(y, model.config.arch)

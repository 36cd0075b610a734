"""A denoiser applied, as the API and the commands do it: a uint8 photo (or a batch, or photos
of any sizes) through a run's model, with seeded synthetic noise added first or not, and a split
of photos scored at full size (``aekit eval --full-size``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..errors import AekitError
from ..models import Autoencoder, check_input
from ..training.objectives import parse_noise
from ..training.runs import RunConfig
from .fullsize import DEFAULT_TILE, add_noise, denoise_image, denoise_images


@torch.no_grad()
def denoise(
    model: Autoencoder | str | Path | None,
    images: torch.Tensor | list[torch.Tensor],
    noise: str | None = None,
    seed: int = 0,
    tile: int | None = DEFAULT_TILE,
    amp: bool = True,
    tta: bool = False,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[list[torch.Tensor], list[torch.Tensor]]:
    """uint8 images -> (model input, denoised output), both [0, 1] floats on the CPU.

    ``images``: a (B, C, H, W) batch of the model's size, or (a fully convolutional family,
    e.g. unet) a list of (C, H, W) photos of any sizes, each denoised at its own size (larger
    than ``tile`` pixels: in exact overlapping tiles); a list gives lists. With ``noise``
    (e.g. ``"gaussian:25"``) the images are corrupted first, image i from ``seed + i``, as
    ``aekit denoise --add-noise`` does (the noisy input is unclipped); without it they are
    taken to be noisy already. ``amp``: bf16 autocast where the device runs it natively;
    ``tta``: the mean over the 8 rotations and reflections of each image (8x the time).

    ``model``: a loaded model, a run folder, ``"builtin:NAME"``, or None for the built-in
    denoiser of each image's mode (gray or colour; ``aekit denoise --list``).
    """
    if isinstance(images, torch.Tensor) and images.dim() == 3:
        raise AekitError(f"denoise takes a list of uint8 (C, H, W) images or a (B, C, H, W) "
                         f"batch, got one {tuple(images.shape)} image: pass [image]")  # fmt: skip
    if not isinstance(images, torch.Tensor | list | tuple):
        raise AekitError(f"denoise takes a list of uint8 (C, H, W) images or a (B, C, H, W) "
                         f"batch, got {type(images).__name__}")  # fmt: skip
    if model is None and not isinstance(images, torch.Tensor) and len(images) > 1:
        modes = {_channels(im): im for im in images}
        if len(modes) > 1:  # the built-in model of each photo's mode, as aekit denoise
            by_mode = {c: _model(None, [im]) for c, im in modes.items()}
            pairs = [denoise_photo(by_mode[_channels(im)], im, noise, seed + i, tile, amp, tta)
                     for i, im in enumerate(images)]  # fmt: skip
            return [p[0] for p in pairs], [p[1] for p in pairs]
    model = _model(model, images)
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        return _denoise_batch(model, images, noise, seed, tile, amp, tta)
    shapes = {tuple(im.shape) for im in images if isinstance(im, torch.Tensor)}
    if len(images) > 1 and len(shapes) == 1 and len(next(iter(shapes))) == 3:  # one batch
        batch = torch.stack(list(images))
        noisy, den = _denoise_batch(model, batch, noise, seed, tile, amp, tta)
        return list(noisy), list(den)
    pairs = [denoise_photo(model, im, noise, seed + i, tile, amp, tta)
             for i, im in enumerate(images)]  # fmt: skip
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _channels(image: Any) -> int:
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise AekitError("denoise takes uint8 (C, H, W) images or a (B, C, H, W) batch")
    return int(image.shape[0])


def _check_side(model: Autoencoder, shape: tuple[int, ...]) -> None:
    """Refuse an image smaller than a fully convolutional model's stride (as aekit denoise)."""
    least = getattr(model, "stride", 1)
    if min(shape[-2:]) < least:
        raise AekitError(f"the image is {shape[-1]}x{shape[-2]} pixels: this model needs images "
                         f"of at least {least}x{least}")  # fmt: skip


def _model(
    model: Autoencoder | str | Path | None, images: torch.Tensor | list[torch.Tensor]
) -> Autoencoder:
    """A loaded model: the one given, a run's or a built-in one, or the built-in denoiser of the
    images' channels."""
    if isinstance(model, Autoencoder):
        return model
    from ..devices import pick_device
    from ..training.runs import load

    if model is None:
        first = images if isinstance(images, torch.Tensor) else images[0] if len(images) else None
        if not isinstance(first, torch.Tensor) or first.dim() not in (3, 4):
            raise AekitError("denoise takes uint8 (C, H, W) images or a (B, C, H, W) batch")
        return builtin_for(int(first.shape[-3]))[0]
    return load(model, device=pick_device("auto"))


def builtin_for(channels: int, jpeg: bool = False) -> tuple[Autoencoder, str]:
    """The built-in denoiser of images with ``channels`` (1 gray, 3 colour; ``jpeg``: of JPEG
    files), loaded on the best device, and its name: what ``aekit denoise`` and
    ``aekit.denoise`` use without a run."""
    from ..devices import pick_device
    from ..models import pretrained
    from ..training.runs import load

    name = pretrained.default_for(channels, jpeg=jpeg).name
    return load(pretrained.PREFIX + name, device=pick_device("auto")), name


def _denoise_batch(
    model: Autoencoder, images: torch.Tensor, noise: str | None, seed: int, tile: int | None,
    amp: bool, tta: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`denoise_photo` of each image of a uint8 (B, C, H, W) batch, the model run on the
    batch at once (the same numbers, to float rounding: kernels round with the batch size)."""
    if images.dtype != torch.uint8:
        raise AekitError(f"denoise takes uint8 images, got {images.dtype} {tuple(images.shape)}")
    check_input(model, tuple(images.shape[1:]), "the given")
    _check_side(model, tuple(images.shape))
    spec = parse_noise(noise, "noise")
    if spec:  # image i from seed + i, as one at a time
        noisy = torch.stack([add_noise(im, spec, seed + i) for i, im in enumerate(images)])
    else:
        noisy = images.float() / 255.0
    return noisy, denoise_images(model, noisy, tile, amp, tta)


def denoise_photo(
    model: Autoencoder,
    image: torch.Tensor,
    noise: str | None = None,
    seed: int = 0,
    tile: int | None = DEFAULT_TILE,
    amp: bool = True,
    tta: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One uint8 (C, H, W) image -> (model input, denoised), [0, 1] floats (C, H, W)."""
    if image.dtype != torch.uint8 or image.dim() != 3:
        raise AekitError(
            f"denoise takes uint8 (C, H, W) images, got {image.dtype} {tuple(image.shape)}"
        )
    check_input(model, tuple(image.shape), "the given")
    _check_side(model, tuple(image.shape))
    spec = parse_noise(noise, "noise")
    noisy = add_noise(image, spec, seed) if spec else image.float() / 255.0
    return noisy, denoise_image(model, noisy, tile, amp, tta)


def evaluate_full_size(
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
    tta: bool = False,
    clean: str | None = None,
) -> dict[str, Any]:
    from ..data import available_splits
    from ..data.pairs import clean_index, read_references
    from ..data.photos import load_photos
    from ..training.splits import load_photo_splits
    from .fullsize import check_full_size, score_photos

    check_full_size(model)
    spec = parse_noise(cfg.train.noise)
    if spec is None and clean is None:
        raise AekitError(
            f"{run} was not trained with added noise: pass --noise (e.g. gaussian:25) to score "
            "how it denoises, or --clean DIR to score noisy photos against clean references"
        )
    data_dir = data_dir or cfg.data.data_dir
    if data is None and split is None:
        photos = load_photo_splits(replace(cfg.data, limit=None, data_dir=data_dir), clean)[1]
    else:
        source = data or cfg.data.source
        if split is None:
            splits = available_splits(source, data_dir)
            split = "test" if "test" in splits else splits[0]
        photos = load_photos(source, split, data_dir)
    if limit:
        photos = photos.subset(list(range(min(limit, len(photos)))))
    refs = None
    if clean is not None:  # noisy files as they are, each against its reference
        spec, index = None, clean_index(clean)
        sizes = [(int(h), int(w)) for h, w in zip(photos.heights, photos.widths, strict=True)]
        refs = read_references(photos.paths, index, photos.channels, sizes)
    result = score_photos(model, photos, spec, seed, tile, per_image, amp=amp, tta=tta,
                          references=refs)  # fmt: skip
    noise = cfg.train.noise if clean is None else f"as they are, against {clean}"
    return {"source": photos.source, "split": photos.split, "noise": noise, **result}

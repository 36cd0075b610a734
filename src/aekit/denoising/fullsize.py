"""Denoising whole photos at their own size: synthetic noise with a fixed seed per image, and a
fully convolutional model run over exact overlapping tiles (:mod:`aekit.models.tiles`)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..data.photos import PhotoSet
from ..errors import AekitError
from ..models import Autoencoder, get_family
from ..models.tiles import DEFAULT_TILE, check_tile, reach, tiled
from ..training import fastpath
from ..training.objectives import Noise, corrupt


def add_noise(clean: torch.Tensor, noise: Noise, seed: int) -> torch.Tensor:
    """A noisy copy of a uint8 (C, H, W) image on the [0, 1] scale, unclipped (as the published
    tables add it), drawn on the CPU from ``seed``: the same noisy image on every device and for
    every method compared."""
    unit = clean.float()[None] / 255.0
    return corrupt(unit, noise, (0.0, 1.0), torch.Generator().manual_seed(seed))[0]


def to_uint8(unit: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 pixels, rounded (the image as it is saved)."""
    return (unit * 255.0).round().clamp(0, 255).to(torch.uint8)


def check_full_size(model: Autoencoder, what: str = "") -> None:
    """Refuse a family that takes only its training size (a fixed-size bottleneck)."""
    if not get_family(model.config.arch).any_size:
        s = model.config.image_size
        raise AekitError(
            f"--arch {model.config.arch} takes {s}x{s} images only (its bottleneck is a "
            f"fixed-size vector){what}: resize the photos to {s}x{s}, or train a fully "
            "convolutional run (--arch unet) to denoise them at their own size"
        )


def denoise_image(
    model: Autoencoder,
    noisy: torch.Tensor,
    tile: int | None = DEFAULT_TILE,
    amp: bool = True,
    tta: bool = False,
) -> torch.Tensor:
    """The model's output for one (C, H, W) image on the [0, 1] scale (noisy, possibly outside
    [0, 1]), at its own size: (C, H, W) floats on [0, 1] on the CPU. Images larger than ``tile``
    pixels a side are processed in exact overlapping tiles (None: in one pass). ``amp``: bf16
    autocast where the device runs it natively (``fastpath.bf16_inference``). ``tta``: the mean
    of the outputs for the image's 8 rotations and reflections, each turned back (8x the
    time)."""
    return denoise_images(model, noisy[None], tile, amp, tta)[0]


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 rotations and reflections of (..., H, W) images (k = 0: as they are):
    a quarter turn k % 4 times, then a left-right flip for k >= 4."""
    y = torch.rot90(x, k % 4, dims=(-2, -1))
    return y.flip(-1) if k >= 4 else y


def undo_dihedral(y: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of :func:`dihedral` (``undo_dihedral(dihedral(x, k), k) == x``)."""
    y = y.flip(-1) if k >= 4 else y
    return torch.rot90(y, -(k % 4), dims=(-2, -1))


@torch.no_grad()
def denoise_images(
    model: Autoencoder,
    noisy: torch.Tensor,
    tile: int | None = DEFAULT_TILE,
    amp: bool = True,
    tta: bool = False,
) -> torch.Tensor:
    """:func:`denoise_image` of a (B, C, H, W) batch, (B, C, H, W) out: the images go through
    the model together, as many per pass as fit in one tile's pixels (``DEFAULT_TILE``'s with
    ``tile`` None), so memory stays what ``tile`` bounds. Float32, or float64 for a float64
    model."""
    if tta:  # a sum of the 8 turned-back outputs, one at a time: memory stays one pass's
        total = undo_dihedral(denoise_images(model, noisy, tile, amp), 0)
        for k in range(1, 8):
            total += undo_dihedral(denoise_images(model, dihedral(noisy, k), tile, amp), k)
        return total / 8
    model.eval()
    device = next(model.parameters()).device
    bf16 = fastpath.bf16_inference(device, amp)
    h, w = noisy.shape[-2:]
    side = tile or DEFAULT_TILE
    per_pass = max(1, side * side // (min(h, side) * min(w, side)))
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        return torch.cat([_denoise(model, noisy[i : i + per_pass], tile, device)
                          for i in range(0, len(noisy), per_pass)])  # fmt: skip


def _real_dtype(model: Autoencoder) -> torch.dtype:
    return torch.float64 if next(model.parameters()).dtype == torch.float64 else torch.float32


def _denoise(
    model: Autoencoder, noisy: torch.Tensor, tile: int | None, device: torch.device
) -> torch.Tensor:
    lo, hi = model.value_range
    dtype = _real_dtype(model)
    h, w = noisy.shape[-2:]
    x = noisy.to(device, dtype) * (hi - lo) + lo
    if tile is None or (h <= tile and w <= tile) or not get_family(model.config.arch).any_size:
        y = model(x).recon
        return ((y.to(dtype) - lo) / (hi - lo)).clamp(0, 1).cpu()
    check_tile(model, tile)

    def unit(part: torch.Tensor) -> list[torch.Tensor]:
        return [((model(part).recon.to(dtype) - lo) / (hi - lo)).clamp(0, 1).cpu()]

    return tiled(unit, x, tile, reach(model), model.stride, (1,))[0]


def score_photos(
    model: Autoencoder,
    photos: PhotoSet,
    noise: Noise | None,
    seed: int = 0,
    tile: int | None = DEFAULT_TILE,
    per_image: bool = False,
    progress: bool | None = None,
    amp: bool = True,
    tta: bool = False,
    references: list[torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Add ``noise`` to each photo (photo i from ``seed + i``), denoise it at its own size and
    score it: ``{"count", "noisy_psnr", "denoised_psnr", "noisy_ssim", "denoised_ssim",
    "seconds_per_image"}``, means over the photos, PSNR in dB and SSIM on the 0-255 scale
    (the denoised photo as saved, rounded to 8 bits; the noisy one unclipped, as the published
    tables), plus ``"images"``: the same per photo with its path, when ``per_image``. ``amp``
    and ``tta``: as :func:`denoise_image`. With ``references`` (uint8, one per photo) and no
    ``noise``, the photos are the noisy ones and the references the clean."""
    from tqdm import tqdm

    from ..metrics import psnr_per_image, ssim_per_image

    rows, seconds = [], 0.0
    for i in tqdm(range(len(photos)), unit="photo", desc="eval", leave=False,
                  disable=None if progress is None else not progress):  # fmt: skip
        clean8 = matching_channels(photos.photo(i).cpu(), model.config.in_channels)
        if noise is None and references is not None:
            noisy = clean8.float() / 255.0
            clean8 = matching_channels(references[i], model.config.in_channels)
        else:
            assert noise is not None
            noisy = add_noise(clean8, noise, seed + i)
        clean = clean8.float()[None] / 255.0
        t0 = time.perf_counter()
        den = to_uint8(denoise_image(model, noisy, tile, amp, tta)).float()[None] / 255.0
        seconds += time.perf_counter() - t0
        h, w = clean8.shape[1:]
        rows.append({
            "path": photos.paths[i], "width": w, "height": h,
            "noisy_psnr": float(psnr_per_image(noisy[None], clean)[0]),
            "denoised_psnr": float(psnr_per_image(den, clean)[0]),
            "noisy_ssim": float(ssim_per_image(noisy[None], clean)[0]),
            "denoised_ssim": float(ssim_per_image(den, clean)[0]),
        })  # fmt: skip
    keys = ("noisy_psnr", "denoised_psnr", "noisy_ssim", "denoised_ssim")
    result: dict[str, Any] = {"count": len(rows)}
    result.update({k: sum(r[k] for r in rows) / len(rows) for k in keys})
    result["seconds_per_image"] = seconds / len(rows)
    if per_image:
        result["images"] = rows
    return result


def matching_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """A uint8 (C, H, W) image with ``channels`` channels, converted as training data is
    (Pillow's RGB -> L weights for gray; gray repeated for colour)."""
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return image.expand(3, -1, -1).contiguous()
    from PIL import Image

    rgb = Image.fromarray(image.permute(1, 2, 0).numpy())
    return torch.from_numpy(np.asarray(rgb.convert("L")).copy())[None]

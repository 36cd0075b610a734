"""Batched training augmentation: random resized crop and random flips as pure tensor functions.

These reproduce the seed tutorial's torchvision pipeline
(``RandomResizedCrop(size, antialias=True)``, ``RandomHorizontalFlip(0.5)``,
``RandomVerticalFlip(0.5)``) for a whole ``(B, C, H, W)`` batch at once, on whatever device the
batch lives, with per-sample random parameters and no per-image Python loop (airbench-style).

All randomness comes from the ``generator`` argument, so the same generator state gives the same
output and a resumed run continues the same random stream. Every call draws the same number of
random values whatever the outcome (e.g. ``p=0``), which keeps the stream aligned across configs.

Resampling reproduces torchvision's ``interpolate(mode="bilinear", align_corners=False,
antialias=True)`` on each box, up to float rounding, by one of two batched paths:

* no axis downscaled (always so in ``augment_batch``, whose output is the image size and whose
  boxes are no larger) or ``antialias=False``: antialiasing changes nothing, and
  ``F.grid_sample`` with sample coordinates clamped to the box is exactly interpolate's two-tap
  bilinear, at O(pixels) cost;
* otherwise, since bilinear resizing is separable, each sample is ``Ry @ image @ Rx.T`` with
  per-sample weight matrices that hold interpolate's widened (antialiased) triangle filter and
  are zero outside the box.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aekit.errors import AekitError

AUGMENTATIONS: tuple[str, ...] = ("crop", "hflip", "vflip", "rot90")
"""Valid augmentation names, in the order ``augment_batch`` applies them (the seed's order, then
``rot90``: a random transpose of square images, which with both flips gives all 8 rotations and
reflections, DnCNN's patch augmentation)."""

_ATTEMPTS = 10  # torchvision's RandomResizedCrop.get_params tries 10 boxes before falling back


def parse_augment(spec: str) -> tuple[str, ...]:
    """Parse a comma-separated augmentation list such as ``"crop,hflip,vflip"``.

    ``"none"`` or ``""`` gives ``()``. Names are returned deduplicated and in application order
    (``crop``, ``hflip``, ``vflip``) so that equal pipelines have equal specs in saved configs.
    Raises ``AekitError`` for an unknown name.
    """
    names = [part.strip().lower() for part in spec.split(",")]
    names = [name for name in names if name]
    if names in ([], ["none"]):
        return ()
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise AekitError(
            f"unknown augmentation {', '.join(map(repr, unknown))} in {spec!r}; "
            f"use a comma-separated list of {', '.join(AUGMENTATIONS)}, or 'none'"
        )
    return tuple(name for name in AUGMENTATIONS if name in names)


def sample_crop_boxes(
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample one crop box per sample with torchvision's ``RandomResizedCrop.get_params`` rules.

    For each sample, 10 candidate boxes are drawn at once (area fraction uniform in ``scale``,
    log aspect ratio uniform in ``log(ratio)``, sides rounded to pixels); the first that fits in
    the image is used, placed uniformly at random. A sample with no fitting candidate gets
    torchvision's fallback: the largest centred box whose ratio is clamped into ``ratio``.

    Returns int64 tensors ``(top, left, h, w)``, each of shape ``(batch,)``, on the generator's
    device (or ``device``, default CPU, when no generator is given).
    """
    if not 0 < scale[0] <= scale[1]:
        raise AekitError(f"crop scale must satisfy 0 < min <= max, got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise AekitError(f"crop ratio must satisfy 0 < min <= max, got {ratio}")
    if generator is not None:
        device = generator.device
    shape = (batch, _ATTEMPTS)
    area = torch.rand(shape, generator=generator, device=device)
    area = (scale[0] + (scale[1] - scale[0]) * area) * (height * width)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(
        log_lo + (log_hi - log_lo) * torch.rand(shape, generator=generator, device=device)
    )
    # Position draws are made for every sample (not only accepted ones) to keep the stream fixed.
    position = torch.rand((batch, 2), generator=generator, device=device)

    # float32 like torchvision's draws (it only moves to Python floats for the products), and
    # torch.round rounds half to even like the Python round() it uses.
    cand_w = torch.round(torch.sqrt(area * aspect)).long()
    cand_h = torch.round(torch.sqrt(area / aspect)).long()
    valid = (cand_w > 0) & (cand_w <= width) & (cand_h > 0) & (cand_h <= height)
    first = valid.int().argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    found = valid.any(dim=1)
    fallback_h, fallback_w = _fallback_box(height, width, ratio)
    h = torch.where(found, cand_h.gather(1, first).squeeze(1), fallback_h)
    w = torch.where(found, cand_w.gather(1, first).squeeze(1), fallback_w)

    # floor(u * n) is uniform on 0..n-1; the clamp guards float rounding of u * n up to n.
    top = torch.minimum((position[:, 0] * (height - h + 1)).long(), height - h)
    left = torch.minimum((position[:, 1] * (width - w + 1)).long(), width - w)
    top = torch.where(found, top, (height - h) // 2)
    left = torch.where(found, left, (width - w) // 2)
    return top, left, h, w


def _fallback_box(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """torchvision's centre-crop fallback size: the whole image, with its ratio clamped."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        return round(width / min(ratio)), width
    if in_ratio > max(ratio):
        return height, round(height * max(ratio))
    return height, width


def resized_crop(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    h: torch.Tensor,
    w: torch.Tensor,
    size: tuple[int, int],
    antialias: bool = True,
    hflip: torch.Tensor | None = None,
    vflip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Crop box ``b`` of each sample and resize it to ``size``, bilinearly, in one batched op.

    Sample ``b`` of the result equals ``interpolate(x[b:b+1, :, top:top+h, left:left+w], size,
    mode="bilinear", align_corners=False, antialias=antialias)`` up to float rounding, then
    flipped left-right where the optional bool mask ``hflip[b]`` is set and upside down where
    ``vflip[b]`` is. Flips only reorder output pixels, so they cost nothing extra here.
    ``x`` is (B, C, H, W); ``top``, ``left``, ``h``, ``w``, ``hflip``, ``vflip`` have shape (B,);
    boxes must lie inside the image.
    """
    _check_batch(x)
    top, left, h, w = (t.to(x.device) for t in (top, left, h, w))
    hflip, vflip = (None if f is None else f.to(x.device) for f in (hflip, vflip))
    # Accumulate in float32 even for bfloat16 input: bf16 weights would be off by up to ~0.4%.
    dtype, compute = x.dtype, torch.promote_types(x.dtype, torch.float32)
    batch, channels, height, width = x.shape
    x = x.to(compute)
    out_h, out_w = size
    if antialias and (out_h < height or out_w < width):
        # Some box may be downscaled, where antialiasing widens the filter past two taps.
        rows = _antialias_weights(top, h, height, out_h, vflip)  # (B, out_h, H)
        cols = _antialias_weights(left, w, width, out_w, hflip)  # (B, out_w, W)
        # One bmm per sample over all its rows; a broadcast matmul would copy cols C times.
        y = torch.bmm(x.reshape(batch, channels * height, width), cols.to(compute).mT)
        y = rows.to(compute)[:, None] @ y.view(batch, channels, height, out_w)
    else:
        # Every box is upscaled or kept (boxes are no larger than the image), or antialiasing
        # is off: two-tap bilinear, which grid_sample does in one pass at O(pixels) cost.
        grid_x = _grid_coords(left, w, width, out_w, hflip)[:, None, :].expand(-1, out_h, -1)
        grid_y = _grid_coords(top, h, height, out_h, vflip)[:, :, None].expand(-1, -1, out_w)
        grid = torch.stack((grid_x, grid_y), dim=-1).to(compute)  # (B, out_h, out_w, 2)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return y.to(dtype)  # (B, C, out_h, out_w)


def _source_coords(
    length: torch.Tensor, out: int, flip: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """interpolate's source coordinate of each output pixel, in crop pixel units.

    Returns ``(coords, pixel_scale)``: (B, out) and (B, 1); where ``flip[b]`` is set the output
    pixels come in reverse order, which mirrors that axis.
    """
    pixel_scale = length.to(torch.float32)[:, None] / out  # input pixels per output pixel
    positions = torch.arange(out, device=length.device, dtype=torch.float32)[None, :]
    if flip is not None:
        positions = torch.where(flip[:, None], out - 1 - positions, positions)
    return pixel_scale * (positions + 0.5) - 0.5, pixel_scale


def _grid_coords(
    start: torch.Tensor, length: torch.Tensor, full: int, out: int, flip: torch.Tensor | None
) -> torch.Tensor:
    """grid_sample coordinates (B, out) along one axis for bilinear crop-and-resize."""
    coords, _ = _source_coords(length, out, flip)
    # Clamping to the crop's own pixels is interpolate's edge rule; without it grid_sample would
    # blend in the pixels just outside the box.
    coords = torch.minimum(coords.clamp(min=0), length[:, None] - 1) + start[:, None]
    return (2 * coords + 1) / full - 1  # pixel units -> [-1, 1] (align_corners=False)


def _antialias_weights(
    start: torch.Tensor, length: torch.Tensor, full: int, out: int, flip: torch.Tensor | None
) -> torch.Tensor:
    """Per-sample antialiased bilinear weights (B, out, full) along one axis.

    Row ``o`` of sample ``b`` holds the weights ``interpolate(..., antialias=True)`` gives the
    crop pixels ``start[b] : start[b] + length[b]``; pixels outside the crop get 0.
    """
    coords, pixel_scale = _source_coords(length, out, flip)
    # Downscaling widens the triangle by the scale so every covered input pixel contributes.
    invscale = pixel_scale.clamp(min=1).reciprocal()[:, :, None]  # (B, 1, 1)
    offset = torch.arange(full, device=start.device)[None, None, :] - start[:, None, None]
    inside = (offset >= 0) & (offset < length[:, None, None])
    # Pixels outside the crop sit infinitely far away, so the triangle gives them weight 0.
    offset = torch.where(inside, offset * invscale, torch.inf)  # (B, 1, full)
    weights = (1 - (offset - coords[:, :, None] * invscale).abs()).clamp(min=0)
    # Renormalising reproduces interpolate's edge handling (taps past the crop edge dropped).
    return weights / weights.sum(dim=-1, keepdim=True)


def random_resized_crop(
    x: torch.Tensor,
    size: tuple[int, int],
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """Batched ``RandomResizedCrop``: crop a random box per sample and resize it to ``size``.

    Boxes follow torchvision's rules (see ``sample_crop_boxes``); resampling is its
    antialiased bilinear resize (see ``resized_crop``).
    ``x`` is (B, C, H, W) -> (B, C, *size), same dtype and device.
    """
    _check_batch(x)
    top, left, h, w = sample_crop_boxes(
        x.shape[0], x.shape[-2], x.shape[-1], scale, ratio, generator, device=x.device
    )
    return resized_crop(x, top, left, h, w, size, antialias)


def random_hflip(
    x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Flip each sample left-right independently with probability ``p``. (B, C, H, W)."""
    flip = _flip_mask(x, p, generator)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_vflip(
    x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Flip each sample upside down independently with probability ``p``. (B, C, H, W)."""
    flip = _flip_mask(x, p, generator)
    return torch.where(flip[:, None, None, None], x.flip(-2), x)


def random_transpose(
    x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Swap height and width of each sample of a square batch with probability ``p`` (after
    the flips, a rotation by 90 or 270 degrees)."""
    if x.shape[-1] != x.shape[-2]:
        raise AekitError(
            f"rot90 turns square images only, got {x.shape[-2]}x{x.shape[-1]}: drop rot90 "
            "from --augment"
        )
    flip = _flip_mask(x, p, generator)
    return torch.where(flip[:, None, None, None], x.transpose(-1, -2), x)


def _flip_mask(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Per-sample Bernoulli(p) bool mask of shape (B,) on ``x.device``."""
    _check_batch(x)
    if not 0 <= p <= 1:
        raise AekitError(f"flip probability must be in [0, 1], got {p}")
    device = generator.device if generator is not None else x.device
    # rand is in [0, 1), so p=0 never flips and p=1 always does.
    return (torch.rand(x.shape[0], generator=generator, device=device) < p).to(x.device)


def augment_batch(
    x: torch.Tensor, ops: tuple[str, ...], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply the augmentations named in ``ops`` (see ``parse_augment``) to a (B, C, H, W) batch.

    Ops run in the seed's order (crop, hflip, vflip) whatever order they are listed in; the crop
    resizes back to the input size, so the output has the input's shape, dtype and device.
    The result equals calling ``random_resized_crop``, ``random_hflip``, ``random_vflip`` in turn
    with the same generator (same random draws, in the same order).
    """
    unknown = [op for op in ops if op not in AUGMENTATIONS]
    if unknown:
        raise AekitError(f"unknown augmentation {unknown}; valid names are {AUGMENTATIONS}")
    if "crop" not in ops:
        if "hflip" in ops:
            x = random_hflip(x, generator=generator)
        if "vflip" in ops:
            x = random_vflip(x, generator=generator)
        return random_transpose(x, generator=generator) if "rot90" in ops else x
    _check_batch(x)
    height, width = x.shape[-2:]
    top, left, h, w = sample_crop_boxes(
        x.shape[0], height, width, generator=generator, device=x.device
    )
    # A flip after the resize only reverses output rows or columns, so it is folded into the
    # resampling weights instead of costing two more passes over the batch.
    hflip = _flip_mask(x, 0.5, generator) if "hflip" in ops else None
    vflip = _flip_mask(x, 0.5, generator) if "vflip" in ops else None
    x = resized_crop(x, top, left, h, w, (height, width), hflip=hflip, vflip=vflip)
    return random_transpose(x, generator=generator) if "rot90" in ops else x


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4 or not x.is_floating_point():
        raise AekitError(
            f"augmentation expects a float (B, C, H, W) batch, got {x.dtype} of shape "
            f"{tuple(x.shape)}; convert images to float and add a batch dimension first"
        )

"""A fully convolutional model's outputs for an image of any size, in exact overlapping tiles, so
that memory stays what one tile needs whatever the image's size.

Tiles are exact, not blended approximations: each tile is read with a margin of the model's
reach (its receptive-field radius, rounded up to its stride) on every side and only its core is
kept, and tile origins fall on multiples of the stride, so every kept pixel (and every cell of
the bottleneck, one per stride-square) sees exactly what it sees in one pass over the whole
image. Tiled and untiled outputs agree to float rounding, and no seam can show."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from ..errors import AekitError
from .base import Autoencoder
from .registry import get_family

DEFAULT_TILE = 1024  # pixels a side; a 1024x1024 tile of the default unet needs ~1 GB


def reach(model: Autoencoder) -> int:
    """How far (in pixels, on each side) a tile must extend past the pixels kept from it."""
    radius = getattr(model, "receptive_radius", None)
    if radius is None:
        raise AekitError(
            f"--arch {model.config.arch} cannot be run in tiles: give images of its "
            f"{model.config.image_size}x{model.config.image_size} size"
        )
    stride = model.stride
    return -(-radius() // stride) * stride


def spans(length: int, core: int, margin: int) -> Iterator[tuple[int, int, int, int]]:
    """(read from, read to, keep from, keep to) along one axis, in image coordinates."""
    for a in range(0, length, core):
        b = min(a + core, length)
        yield max(0, a - margin), min(length, b + margin), a, b


def tiled(
    fn: Callable[[torch.Tensor], Sequence[torch.Tensor]],
    x: torch.Tensor,
    tile: int,
    margin: int,
    stride: int,
    scales: Sequence[int],
) -> list[torch.Tensor]:
    """``fn``'s outputs for a (B, C, H, W) batch, put together from tiles of at most ``tile``
    pixels a side read ``margin`` pixels past their cores. ``fn`` maps a (B, C, h, w) part to
    tensors (B, C_i, ceil(h / s_i), ceil(w / s_i)) of ``scales`` s_i (1: per pixel; the stride:
    per cell), each s_i dividing ``stride``, and ``margin`` and the cores multiples of it."""
    b, _, h, w = x.shape
    core = tile - 2 * margin
    core -= core % stride
    outs: list[torch.Tensor] = []
    for r0, r1, k0, k1 in spans(h, core, margin):
        for c0, c1, j0, j1 in spans(w, core, margin):
            parts = fn(x[:, :, r0:r1, c0:c1])
            if not outs:
                outs = [p.new_empty((b, p.shape[1], -(-h // s), -(-w // s)))
                        for p, s in zip(parts, scales, strict=True)]  # fmt: skip
            for out, p, s in zip(outs, parts, scales, strict=True):
                kept = p[..., (k0 - r0) // s : -(-(k1 - r0) // s),
                         (j0 - c0) // s : -(-(j1 - c0) // s)]  # fmt: skip
                out[..., k0 // s : -(-k1 // s), j0 // s : -(-j1 // s)] = kept
    return outs


def check_tile(model: Autoencoder, tile: int | None, largest: int | None = None) -> None:
    """Refuse a tile too small to keep half its side once its margins are taken off (a smaller
    core multiplies the work: a core of 8 pixels in a tile of 136 is 290 times a whole pass).
    ``largest``: the longest side of the images; none longer than ``tile`` needs no tiles."""
    if tile is None or not get_family(model.config.arch).any_size:
        return
    if largest is not None and largest <= tile:
        return
    margin = reach(model)
    least = 4 * margin  # the margins on both sides, and as much again kept
    if tile < least:
        raise AekitError(
            f"--tile {tile} is too small for this model, which sees {margin} pixels around "
            f"each pixel (its receptive field, to a multiple of its stride {model.stride}): "
            f"use --tile {least} or more"
        )


def outputs(
    model: Autoencoder, x: torch.Tensor, segment: bool = False, tile: int | None = DEFAULT_TILE
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(reconstruction, code, segmentation or None) of a batch on the model's scale: in one
    pass, or in tiles of ``tile`` pixels where the model is fully convolutional and the images
    are larger. ``segment``: also the (B, H, W) segmentation of a model that segments."""
    h, w = x.shape[-2:]
    if tile is None or (h <= tile and w <= tile) or not get_family(model.config.arch).any_size:
        out = model(x)
        seg = model.segment(x, out.recon) if segment else None  # type: ignore[operator]
        return out.recon, out.code, seg

    def one(part: torch.Tensor) -> list[torch.Tensor]:
        out, cells = model.forward_cells(part)  # type: ignore[operator]
        found = [out.recon, cells]
        if segment:
            found.append(model.segment(part, out.recon)[:, None])  # type: ignore[operator]
        return found

    check_tile(model, tile)
    stride = model.stride
    found = tiled(one, x, tile, reach(model), stride, (1, stride, 1)[: 2 + segment])
    seg = found[2][:, 0] if segment else None
    return found[0], found[1].mean(dim=(2, 3)), seg  # the code: the mean of every cell

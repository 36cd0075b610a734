"""Synthetic anomalies, as DRAEM makes them (Zavrtanik et al., ICCV 2021): a region shaped by
thresholded Perlin noise is filled with another image's texture, so a model can learn what
"not normal" looks like from normal images alone. Pure batched tensor functions, each drawing
from the ``torch.Generator`` it is given.

DRAEM takes its textures from the DTD texture set; here any images do (``--anomaly-source``),
by default the normal images themselves, shuffled and recoloured (``recolour``), so nothing
needs downloading."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _fade(t: torch.Tensor) -> torch.Tensor:
    return t * t * t * (t * (t * 6 - 15) + 10)  # Perlin's quintic: smooth to 2nd order


def perlin(
    height: int, width: int, cells: tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """2-D Perlin gradient noise of (height, width), about in [-1, 1], with ``cells`` (rows,
    columns) lattice cells across the image: a random unit gradient at each lattice corner,
    the dot products with the offsets blended by the quintic fade."""
    ry, rx = cells
    angles = 2 * math.pi * torch.rand(ry + 1, rx + 1, generator=generator)
    grads = torch.stack([angles.cos(), angles.sin()], dim=-1)  # (ry+1, rx+1, 2)
    y = torch.linspace(0, ry, height + 1)[:-1]  # lattice coordinates of each pixel
    x = torch.linspace(0, rx, width + 1)[:-1]
    gy, gx = torch.meshgrid(y, x, indexing="ij")
    iy, ix = gy.long(), gx.long()
    fy, fx = gy - iy, gx - ix

    def corner(dy: int, dx: int) -> torch.Tensor:
        g = grads[iy + dy, ix + dx]  # (H, W, 2)
        return g[..., 0] * (fx - dx) + g[..., 1] * (fy - dy)

    uy, ux = _fade(fy), _fade(fx)
    top = torch.lerp(corner(0, 0), corner(0, 1), ux)
    bottom = torch.lerp(corner(1, 0), corner(1, 1), ux)
    return torch.lerp(top, bottom, uy) * math.sqrt(2)


def perlin_masks(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator,
    threshold: float = 0.5,
    max_log2_cells: int = 6,
) -> torch.Tensor:
    """(n, 1, H, W) float masks of 0 and 1: Perlin noise of a random scale per image (2**k
    cells per axis, k from 0 to ``max_log2_cells``, each axis on its own), turned by a random
    angle in [-90, 90] degrees, above ``threshold``. A mask may come out empty."""
    masks = torch.empty(n, 1, height, width)
    for i in range(n):  # a scale per image: the lattice differs, so one image at a time
        k = torch.randint(0, max_log2_cells + 1, (2,), generator=generator)
        cells = (min(2 ** int(k[0]), height), min(2 ** int(k[1]), width))
        masks[i, 0] = perlin(height, width, cells, generator)
    angle = (torch.rand(n, generator=generator) - 0.5) * math.pi  # [-90, 90] degrees
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1),
                         torch.stack([sin, cos, torch.zeros(n)], 1)], 1)  # fmt: skip
    grid = F.affine_grid(theta, [n, 1, height, width], align_corners=False)
    turned = F.grid_sample(masks, grid, mode="bilinear", padding_mode="reflection",
                           align_corners=False)  # fmt: skip
    return (turned > threshold).float()


def recolour(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[0, 1] (N, C, H, W) images made into foreign textures: per image a random gain and
    offset, gamma, and (half the time) inverted; colour images also get their channels shuffled.
    The stand-in for DRAEM's random imgaug operations on DTD textures."""
    n, c = images.shape[:2]
    shape = (n, 1, 1, 1)
    gain = 0.5 + torch.rand(shape, generator=generator)  # [0.5, 1.5]
    offset = (torch.rand(shape, generator=generator) - 0.5) * 0.5  # [-0.25, 0.25]
    gamma = torch.exp((torch.rand(shape, generator=generator) - 0.5) * 2 * math.log(2.5))
    out = (images.clamp(0, 1) ** gamma * gain + offset).clamp(0, 1)
    invert = torch.rand(shape, generator=generator) < 0.5
    out = torch.where(invert, 1 - out, out)
    if c > 1:
        order = torch.stack([torch.randperm(c, generator=generator) for _ in range(n)])
        out = torch.gather(out, 1, order[:, :, None, None].expand_as(out))
    return out


def paste_anomalies(
    images: torch.Tensor,
    textures: torch.Tensor,
    masks: torch.Tensor,
    generator: torch.Generator,
    max_keep: float = 0.8,
    clean_fraction: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(anomalous images, their masks): inside each mask the texture blended with the image,
    ``b * image + (1 - b) * texture`` with ``b`` drawn from [0, ``max_keep``) per image (so the
    texture always shows); ``clean_fraction`` of the images are left unchanged, with empty
    masks, as DRAEM trains on both. All (N, C, H, W) in [0, 1]; masks (N, 1, H, W)."""
    n = images.shape[0]
    keep = torch.rand(n, 1, 1, 1, generator=generator) * max_keep
    clean = torch.rand(n, 1, 1, 1, generator=generator) < clean_fraction
    masks = torch.where(clean, torch.zeros_like(masks), masks)
    blended = keep * images + (1 - keep) * textures
    return masks * blended + (1 - masks) * images, masks


def finest_log2_cells(side: int) -> int:
    """The finest Perlin lattice of the synthetic anomalies on ``side``-pixel images: 2**k
    cells across, at most 64 and each at least 4 pixels wide."""
    return max(0, min(6, int(math.log2(max(side // 4, 1)))))


def smallest_anomaly(side: int) -> int:
    """The width in pixels of the smallest synthetic anomaly pasted on ``side``-pixel images:
    one cell of the finest Perlin lattice (4 to 7 pixels on 16- to 256-pixel images; wider
    beyond, where the lattice stops at 64 cells)."""
    return max(1, side // 2 ** finest_log2_cells(side))


def synthetic_anomalies(
    x: torch.Tensor,
    value_range: tuple[float, float],
    generator: torch.Generator | None,
    textures: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch ``x`` (N, C, H, W) on a model's scale -> (the batch with anomalies
    pasted into about half its images, their (N, 1, H, W) masks), on ``x``'s device. The
    textures, recoloured: images drawn from ``textures`` (uint8, resized to H x W where they
    differ), else the batch's own images shuffled. The Perlin cells are at least 4 pixels wide.
    Drawn on the CPU (the masks are made an image at a time), from ``generator`` when it is a
    CPU one, else from a CPU generator seeded by it."""
    n, _, h, w = x.shape
    lo, hi = value_range
    g = generator
    if g is None or g.device.type != "cpu":
        seed = torch.randint(0, 2**62, (1,), generator=g, device=None if g is None else g.device)
        g = torch.Generator().manual_seed(int(seed))
    unit = ((x.detach().float() - lo) / (hi - lo)).clamp(0, 1).cpu()
    if textures is None:
        source = unit[torch.randperm(n, generator=g)]
    else:
        picked = textures[torch.randint(len(textures), (n,), generator=g).to(textures.device)]
        source = picked.cpu().float() / 255
        if source.shape[-2:] != (h, w):
            source = F.interpolate(source, size=(h, w), mode="bilinear", align_corners=False)
    textures = recolour(source, g)
    masks = perlin_masks(n, h, w, g, max_log2_cells=finest_log2_cells(min(h, w)))
    pasted, masks = paste_anomalies(unit, textures, masks, g)
    return (pasted * (hi - lo) + lo).to(x.device, x.dtype), masks.to(x.device)

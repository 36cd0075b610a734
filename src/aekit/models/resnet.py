"""``resnet``: a bottleneck autoencoder of residual blocks with normalisation (GroupNorm + SiLU,
as in the encoders of latent-diffusion VAEs), with the ``conv`` family's interface: the same
resolutions (stride-2 steps down to at most 7x7), widths (``base_channels`` at the first
resolution, twice that below) and ``--latent-dim`` code. ``depth`` residual blocks per resolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import Autoencoder, bottleneck_check
from .config import ModelConfig
from .conv import DEFAULT_LATENT, downsample_sizes
from .registry import Family

# 48 keeps a training step within about 1.5x the conv family's (64) on a CPU: measured in
# bench/models.py (BENCHMARKS.md, "Model families")
DEFAULT_WIDTH = 48


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(c, 32), c)  # 32 groups where the width allows (LDM's choice)


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """x + conv(SiLU(norm(conv(SiLU(norm(x)))))); a 1x1 conv on the skip where widths differ."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), _conv(c_in, c_out)
        self.norm2, self.conv2 = _norm(c_out), _conv(c_out, c_out)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class Resize(nn.Module):
    """Nearest-neighbour upsampling to a fixed side, then a 3x3 conv (undoes a stride-2 step,
    odd sides included: 4 -> 7 -> 14 -> 28)."""

    def __init__(self, c_in: int, c_out: int, size: int) -> None:
        super().__init__()
        self.size, self.conv = size, _conv(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=(self.size, self.size), mode="nearest"))


def _widths(cfg: ModelConfig) -> list[int]:
    c = cfg.base_channels
    return [c] + [2 * c] * (len(downsample_sizes(cfg.image_size)) - 1)


class ResNetEncoder(nn.Module):
    """(B, C, S, S) -> (B, latent_dim)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        sizes, widths = downsample_sizes(cfg.image_size), _widths(cfg)
        layers: list[nn.Module] = [_conv(cfg.in_channels, widths[0], stride=2)]  # S -> sizes[0]
        for i, w in enumerate(widths):
            prev = widths[i - 1] if i else widths[0]
            layers += [ResBlock(prev if d == 0 else w, w) for d in range(cfg.depth)]
            if i < len(widths) - 1:
                layers.append(_conv(w, w, stride=2))  # sizes[i] -> sizes[i + 1]
        layers += [_norm(widths[-1]), nn.SiLU(), nn.Flatten()]
        layers.append(nn.Linear(widths[-1] * sizes[-1] ** 2, cfg.latent_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ResNetDecoder(nn.Module):
    """(B, latent_dim) -> (B, C, S, S) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        sizes, widths = downsample_sizes(cfg.image_size), _widths(cfg)
        self.shape = (widths[-1], sizes[-1], sizes[-1])
        self.linear = nn.Linear(cfg.latent_dim, widths[-1] * sizes[-1] ** 2)
        layers: list[nn.Module] = []
        for i in reversed(range(len(widths))):
            layers += [ResBlock(widths[i], widths[i]) for _ in range(cfg.depth)]
            if i:
                layers.append(Resize(widths[i], widths[i - 1], sizes[i - 1]))
        # the last step straight to the image's channels: a conv of full width at the image's
        # own resolution would cost more than all the rest of the decoder
        layers += [_norm(widths[0]), nn.SiLU(), Resize(widths[0], cfg.in_channels, cfg.image_size),
                   nn.Tanh()]  # fmt: skip
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.linear(z).reshape(z.shape[0], *self.shape))


class ResNetAutoencoder(Autoencoder):
    def __init__(self, config: ModelConfig | None = None, **kwargs: object) -> None:
        super().__init__(config, **kwargs)
        self.encoder = ResNetEncoder(self.config)
        self.decoder = ResNetDecoder(self.config)


FAMILY = Family(
    name="resnet",
    summary="residual blocks with GroupNorm + SiLU, the conv family's sizes and code",
    model=ResNetAutoencoder,
    check=bottleneck_check("resnet", DEFAULT_LATENT, DEFAULT_WIDTH, blocks=True),
    value_range=(-1.0, 1.0),
    default_loss="mse",
    body=(ResNetEncoder, ResNetDecoder),
)

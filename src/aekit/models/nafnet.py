"""``nafnet``: the ``unet`` layout with NAFNet's blocks (Chen et al., "Simple Baselines for Image
Restoration", ECCV 2022): per pixel, a LayerNorm over the channels, a 1x1 convolution widening
to 2c, a 3x3 depthwise convolution and a SimpleGate (one half of the channels times the other),
then a 1x1 back to c; and a gated 1x1 feed-forward part; each added to the input with a learned
scale that starts at 0. NAFNet's simplified channel attention is left out: it pools over the
whole image, and a pixel's output would depend on pixels past a tile's margin (the LayerNorm is
per pixel, so tiles stay exact).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import AekitError
from .config import ModelConfig
from .registry import Family
from .unet import UNetAutoencoder

DEFAULT_WIDTH = 16


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of a (B, C, H, W) tensor."""

    def __init__(self, c: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).square().mean(1, keepdim=True)
        x = (x - mean) / (var + self.eps).sqrt()
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class NAFBlock(nn.Module):
    """x + beta * mix(gate(dw(widen(norm(x))))), then y + gamma * ffn(norm(y))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = LayerNorm2d(c), LayerNorm2d(c)
        self.widen = nn.Conv2d(c, 2 * c, 1)
        self.dw = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.mix = nn.Conv2d(c, c, 1)
        self.ffn_in, self.ffn_out = nn.Conv2d(c, 2 * c, 1), nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    @staticmethod
    def gate(x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)  # (B, 2c, H, W) -> (B, c, H, W)
        return a * b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.beta * self.mix(self.gate(self.dw(self.widen(self.norm1(x)))))
        return y + self.gamma * self.ffn_out(self.gate(self.ffn_in(self.norm2(y))))


class NAFNetAutoencoder(UNetAutoencoder):
    """DRUNet's layout (see ``unet``) with ``depth`` NAF blocks per resolution on each side."""

    block = NAFBlock
    convs_per_block = 1  # one 3x3 (depthwise) convolution


def check(cfg: ModelConfig) -> None:
    if cfg.topk is not None:
        raise AekitError("--arch nafnet has no bottleneck vector to keep top-k of: drop topk:K")
    if cfg.base_channels is None:
        cfg.base_channels = DEFAULT_WIDTH
    if cfg.latent_dim is None:
        cfg.latent_dim = 8 * cfg.base_channels


FAMILY = Family(
    name="nafnet",
    summary="unet's layout with NAFNet's gated blocks: for denoising photos",
    model=NAFNetAutoencoder,
    check=check,
    value_range=(-1.0, 1.0),
    default_loss="mse",
    any_size=True,
    decodable=False,
    batch_size=16,
    lr=2e-3,
)

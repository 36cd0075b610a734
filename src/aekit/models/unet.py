"""``unet``: a skip-connected, fully convolutional encoder-decoder (after Ronneberger et al.'s
U-Net, with DRUNet's normalisation-free residual blocks: conv-ReLU-conv plus the input). It takes
any HxW: the input is padded (edge pixels repeated) to a multiple of its stride and the output
cropped back. No normalisation layer means no statistic over the whole image: each output pixel
depends only on its neighbourhood, so a large photo can be processed in tiles.

The decoder predicts a residual that is added to the input (residual learning, as in DnCNN),
so the body of a denoiser learns the noise, not the picture. The skips carry the picture past
the bottleneck, so ``unet`` is for denoising, not for compression: as a plain autoencoder it
learns to copy. Its code for search is the bottleneck's features averaged over space
(``latent_dim`` channels); that code cannot be decoded on its own (``decodable=False``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import AekitError
from .base import AEOutput, Autoencoder
from .registry import Family
from .resnet import _conv

LEVELS = 3  # stride-2 steps: the stride is 8
DEFAULT_LATENT = 256  # bottleneck channels, the pooled code's size
DEFAULT_WIDTH = 32


class Block(nn.Module):
    """x + conv(ReLU(conv(x))), a 1x1 conv on the skip where widths differ (DRUNet's block)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv(c_in, c_out), _conv(c_out, c_out)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.conv2(F.relu(self.conv1(x)))


class UNetAutoencoder(Autoencoder):
    """Widths c, 2c, 4c at the full, 1/2 and 1/4 resolutions, ``latent_dim`` at 1/8; ``depth``
    residual blocks per resolution on each side."""

    def __init__(self, config: ModelConfig | None = None, **kwargs: object) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        c, d = cfg.base_channels, cfg.depth
        widths = [c * 2**i for i in range(LEVELS)] + [cfg.latent_dim]
        self.stem = _conv(cfg.in_channels, widths[0])
        self.down = nn.ModuleList()
        for i in range(LEVELS):
            blocks = [Block(widths[i], widths[i]) for _ in range(d)]
            self.down.append(nn.ModuleDict({
                "blocks": nn.Sequential(*blocks),
                "step": _conv(widths[i], widths[i + 1], stride=2),
            }))  # fmt: skip
        self.middle = nn.Sequential(*[Block(widths[-1], widths[-1]) for _ in range(d)])
        self.up = nn.ModuleList()
        for i in reversed(range(LEVELS)):
            blocks = [Block(2 * widths[i] if j == 0 else widths[i], widths[i]) for j in range(d)]
            self.up.append(nn.ModuleDict({
                "step": _conv(widths[i + 1], widths[i]),  # after a nearest-neighbour 2x upsample
                "blocks": nn.Sequential(*blocks),
            }))  # fmt: skip
        self.head = _conv(widths[0], cfg.in_channels)
        nn.init.zeros_(self.head.weight)  # the residual starts at 0: the model starts as identity
        nn.init.zeros_(self.head.bias)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.stem(x)
        skips = []
        for level in self.down:
            h = level["blocks"](h)
            skips.append(h)
            h = level["step"](h)
        return self.middle(h), skips

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck's features averaged over space: (B, latent_dim)."""
        return self._features(_pad(x))[0].mean(dim=(2, 3))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise AekitError(
            "--arch unet has no code to decode on its own (its skips carry the picture): "
            "use a conv, resnet or vae run"
        )

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> AEOutput:
        h, skips = self._features(_pad(x))
        code = h.mean(dim=(2, 3))
        for level, skip in zip(self.up, reversed(skips), strict=True):
            h = level["step"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = level["blocks"](torch.cat([h, skip], dim=1))
        residual = self.head(F.relu(h))[..., : x.shape[2], : x.shape[3]]
        lo, hi = self.value_range
        return AEOutput((x + residual).clamp(lo, hi), code, {})


def _pad(x: torch.Tensor) -> torch.Tensor:
    """Pad the bottom and right edges to a multiple of the stride, repeating the edge pixels."""
    stride = 2**LEVELS
    ph, pw = -x.shape[2] % stride, -x.shape[3] % stride
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def check(cfg: ModelConfig) -> None:
    if cfg.topk is not None:
        raise AekitError("--arch unet has no bottleneck vector to keep top-k of: drop topk:K")
    if cfg.latent_dim is None:
        cfg.latent_dim = DEFAULT_LATENT
    if cfg.base_channels is None:
        cfg.base_channels = DEFAULT_WIDTH


FAMILY = Family(
    name="unet",
    summary="skip-connected and fully convolutional (any HxW), residual output: for denoising",
    model=UNetAutoencoder,
    check=check,
    value_range=(-1.0, 1.0),
    default_loss="mse",
    any_size=True,
    decodable=False,
)

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

from ..errors import AekitError
from .base import AEOutput, Autoencoder
from .config import ModelConfig
from .registry import Family
from .resnet import _conv

LEVELS = 3  # stride-2 steps: the stride is 8
# The defaults of the photo recipe of docs/guides/denoise.md (--patch-size 64 --time-limit 30 on 2
# CPU cores): in 4-5-minute runs on CBSD432 at sigma 25, width 16 at batch 16 and lr 2e-3 denoised
# the held-out photos best (BENCHMARKS.md, "Photo denoising": wider models see too few patches).
DEFAULT_WIDTH = 16  # the first level's channels; the bottleneck has 8x as many (the code)


class Block(nn.Module):
    """x + conv(ReLU(conv(x))): DRUNet's residual block."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv(c, c), _conv(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class UNetAutoencoder(Autoencoder):
    """DRUNet's layout: widths c, 2c, 4c at the full, 1/2 and 1/4 resolutions and
    ``latent_dim`` at 1/8; ``depth`` residual blocks per resolution on each side; 2x2 strided
    convolutions down, 2x2 transposed ones up, and each skip added (not concatenated): most of
    the work is in the residual blocks (measured 1.3x (width 16) and 1.5x (width 32) the
    training speed of 3x3 resampling convolutions and concatenated skips on the 2-core CPU;
    BENCHMARKS.md, "Photo denoising")."""

    block: type[nn.Module] = Block  # the residual block at every resolution
    convs_per_block = 2  # its 3x3 convolutions in a row: how far it reaches

    def __init__(self, config: ModelConfig | None = None, **kwargs: object) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        c, d, Block = cfg.base_channels, cfg.depth, self.block
        widths = [c * 2**i for i in range(LEVELS)] + [cfg.latent_dim]
        self.stem = _conv(cfg.in_channels, widths[0])
        self.down = nn.ModuleList(
            nn.Sequential(*[Block(widths[i]) for _ in range(d)],
                          nn.Conv2d(widths[i], widths[i + 1], 2, stride=2))
            for i in range(LEVELS)
        )  # fmt: skip
        self.middle = nn.Sequential(*[Block(widths[-1]) for _ in range(d)])
        self.up = nn.ModuleList(
            nn.ModuleDict({
                "step": nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2),
                "blocks": nn.Sequential(*[Block(widths[i]) for _ in range(d)]),
            })
            for i in reversed(range(LEVELS))
        )  # fmt: skip
        self.head = _conv(widths[0], cfg.in_channels)
        nn.init.zeros_(self.head.weight)  # the residual starts at 0: the model starts as identity
        nn.init.zeros_(self.head.bias)

    stride = 2**LEVELS  # images are padded to a multiple of this

    def receptive_radius(self) -> int:
        """How far, in pixels on each side, the inputs of one output pixel can lie (an upper
        bound): each 3x3 conv at scale s adds s, each 2x2 resampling step at scale s adds s,
        and the stem and head add 1 each. Tiles overlap by this much (aekit.denoise)."""
        k, s = self.config.depth * self.convs_per_block, 2**LEVELS
        return 2 + (2 * k + 2) * (s - 1) + k * s

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.stem(x)
        skips = []
        for level in self.down:
            skips.append(h)
            h = level(h)
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
        return self.forward_cells(x)[0]

    def forward_cells(self, x: torch.Tensor) -> tuple[AEOutput, torch.Tensor]:
        """``forward``'s output and the bottleneck's features before they are averaged into
        the code: (B, D, ceil(H / stride), ceil(W / stride)), a cell per stride-square (what a
        tiled pass puts together: aekit.models.tiles)."""
        cells, skips = self._features(_pad(x))
        h = cells
        for level, skip in zip(self.up, reversed(skips), strict=True):
            h = level["blocks"](level["step"](h) + skip)
        out = x + self.head(h)[..., : x.shape[2], : x.shape[3]]
        code = cells.mean(dim=(2, 3))
        if self.training:
            # unclamped: a clamp passes no gradient where it bites, and once a loss spike
            # pushed every output past it, a run stalled there for good (a gray run at epoch 16)
            return AEOutput(out, code, {}), cells
        lo, hi = self.value_range
        return AEOutput(out.clamp(lo, hi), code, {}), cells


def _pad(x: torch.Tensor) -> torch.Tensor:
    """Pad the bottom and right edges to a multiple of the stride, repeating the edge pixels."""
    stride = 2**LEVELS
    ph, pw = -x.shape[2] % stride, -x.shape[3] % stride
    # an exported graph (aekit export) pads whatever the size, so it holds for every size
    pad = torch.compiler.is_exporting() or ph or pw
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if pad else x


def check(cfg: ModelConfig) -> None:
    if cfg.topk is not None:
        raise AekitError("--arch unet has no bottleneck vector to keep top-k of: drop topk:K")
    if cfg.base_channels is None:
        cfg.base_channels = DEFAULT_WIDTH
    if cfg.latent_dim is None:
        cfg.latent_dim = 8 * cfg.base_channels  # widths c, 2c, 4c, 8c: DRUNet's doubling


FAMILY = Family(
    name="unet",
    summary="skip-connected and fully convolutional (any HxW), residual output: for denoising",
    model=UNetAutoencoder,
    check=check,
    value_range=(-1.0, 1.0),
    default_loss="mse",
    any_size=True,
    decodable=False,
    batch_size=16,
    lr=2e-3,
)

"""``draem``: a reconstructive and a discriminative network trained together on synthetic
anomalies (after Zavrtanik et al., "DRAEM", ICCV 2021), for finding where an image is anomalous.

Training pastes Perlin-shaped patches of foreign texture into normal images
(:func:`aekit.data.synthetic.synthetic_anomalies`); the reconstructive network (a ``unet``)
learns to give the normal image back, and the discriminative one (a smaller U-Net on the image
and its reconstruction side by side) learns the mask of what was pasted, with a focal loss.
What it finds on real defects is the segmentation map (:meth:`DraemAutoencoder.segment`).

Unlike DRAEM's networks (no skips in the reconstructive one, widths 128 and 64), both here are
DRUNet-style U-Nets of the ``unet`` family's width: what a 2-core CPU trains in 30 minutes. The
reconstructive one starts as the identity (its residual head is zero) and learns to take the
pasted texture out; its loss is the mean squared error (DRAEM adds an SSIM term).
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
from .unet import LEVELS, Block, UNetAutoencoder, _pad
from .unet import check as unet_check

FOCAL_GAMMA = 2.0  # DRAEM's focal loss


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = FOCAL_GAMMA
) -> torch.Tensor:
    """The mean focal loss (Lin et al. 2017) of per-pixel logits against a 0/1 mask: the binary
    cross-entropy weighted by (1 - p_t)^gamma, so the many easy normal pixels weigh little."""
    logits, target = logits.float(), target.float()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    return (ce * (1 - p_t).pow(gamma)).mean()


class SegmentationNet(nn.Module):
    """A U-Net from ``c_in`` channels to one logit per pixel: widths c, 2c, 4c, 8c, one
    residual block per resolution, added skips (the ``unet`` family's layout, its own head)."""

    def __init__(self, c_in: int, c: int) -> None:
        super().__init__()
        widths = [c * 2**i for i in range(LEVELS + 1)]
        self.stem = _conv(c_in, c)
        self.down = nn.ModuleList(
            nn.Sequential(Block(widths[i]), nn.Conv2d(widths[i], widths[i + 1], 2, stride=2))
            for i in range(LEVELS)
        )
        self.middle = Block(widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(LEVELS)))  # fmt: skip
        self.blocks = nn.ModuleList(Block(widths[i]) for i in reversed(range(LEVELS)))
        self.head = _conv(c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in, H, W) -> (B, 1, H, W)
        h = self.stem(_pad(x))
        skips = []
        for level in self.down:
            skips.append(h)
            h = level(h)
        h = self.middle(h)
        for up, block, skip in zip(self.up, self.blocks, reversed(skips), strict=True):
            h = block(up(h) + skip)
        return self.head(h)[..., : x.shape[2], : x.shape[3]]


class DraemAutoencoder(Autoencoder):
    """The reconstructive ``unet`` (``reconstructive``) and the segmentation net
    (``discriminative``) on (image, reconstruction). ``forward`` gives the reconstruction and,
    given the mask of pasted anomalies (training), the focal loss of the segmentation."""

    stride = 2**LEVELS

    def __init__(self, config: ModelConfig | None = None, **kwargs: object) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        inner = ModelConfig(arch="unet", in_channels=cfg.in_channels, image_size=cfg.image_size,
                            latent_dim=cfg.latent_dim, base_channels=cfg.base_channels,
                            depth=cfg.depth)  # fmt: skip
        self.reconstructive = UNetAutoencoder(inner)
        assert cfg.in_channels is not None and cfg.base_channels is not None  # check() set it
        self.discriminative = SegmentationNet(2 * cfg.in_channels, cfg.base_channels)

    def receptive_radius(self) -> int:
        """An upper bound of how far the inputs of one output pixel lie: the reconstruction's
        reach and the segmentation net's on top of it."""
        return 2 * self.reconstructive.receptive_radius()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstructive.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise AekitError("--arch draem has no code to decode on its own: use a conv, resnet or "
                         "vae run")  # fmt: skip

    def forward(
        self, x: torch.Tensor, eps: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> AEOutput:
        out = self.reconstructive(x)
        if mask is None:
            return out
        logits = self.discriminative(torch.cat([x, out.recon], 1))
        return AEOutput(out.recon, out.code, {"focal": focal_loss(logits, mask)})

    def forward_cells(self, x: torch.Tensor) -> tuple[AEOutput, torch.Tensor]:
        """The reconstruction and the bottleneck's cells (``UNetAutoencoder.forward_cells``)."""
        return self.reconstructive.forward_cells(x)

    def segment(self, x: torch.Tensor, recon: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) images on the model's scale -> (B, H, W) probabilities that each pixel
        is anomalous (``recon``: their reconstruction, when it is at hand)."""
        if recon is None:
            recon = self.reconstructive(x).recon
        return torch.sigmoid(self.discriminative(torch.cat([x, recon], 1)).float())[:, 0]


def check(cfg: ModelConfig) -> None:
    if cfg.topk is not None:
        raise AekitError("--arch draem has no bottleneck vector to keep top-k of: drop topk:K")
    unet_check(cfg)


FAMILY = Family(
    name="draem",
    summary="a unet and a segmentation net trained on synthetic anomalies: where images are "
    "anomalous (aekit score --method draem)",
    model=DraemAutoencoder,
    check=check,
    value_range=(-1.0, 1.0),
    default_loss="mse",
    any_size=True,
    decodable=False,
    segments=True,
    batch_size=16,
    lr=1e-3,
)

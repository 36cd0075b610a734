"""``keras``: the seed tutorial's Keras MNIST model (Conv 16/8/8 + MaxPooling, UpSampling
decoder, sigmoid output on [0, 1] data); its code is the 8x4x4 feature map, flattened to 128
values."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import AekitError
from .base import Autoencoder, refuse_depth
from .config import ModelConfig
from .registry import Family

LATENT = 128  # the seed's bottleneck: 8 channels x 4 x 4


class KerasEncoder(nn.Module):
    """(B, C, 28, 28) -> (B, 128): Conv16-pool-Conv8-pool-Conv8/2, ReLU, as the seed's Keras."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cfg.in_channels, 16, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),  # (16, 14, 14); ceil_mode = Keras padding="same"
            nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),  # (8, 7, 7)
            nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(),  # (8, 4, 4)
            nn.Flatten(),  # (B, 128)
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class KerasDecoder(nn.Module):
    """(B, 128) -> (B, C, 28, 28) in [0, 1]: Conv-UpSampling x3, sigmoid, as the seed's Keras."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Unflatten(1, (8, 4, 4)),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2),  # (8, 8, 8)
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2),  # (8, 16, 16)
            nn.Conv2d(8, 16, 3), nn.ReLU(),  # valid padding: (16, 14, 14)
            nn.Upsample(scale_factor=2),  # (16, 28, 28)
            nn.Conv2d(16, cfg.in_channels, 3, padding=1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class KerasAutoencoder(Autoencoder):
    def __init__(self, config: ModelConfig | None = None, **kwargs: object) -> None:
        super().__init__(config, **kwargs)
        self.encoder = KerasEncoder(self.config)
        self.decoder = KerasDecoder(self.config)


def check(cfg: ModelConfig) -> None:
    refuse_depth(cfg, "keras")
    if cfg.image_size not in (None, 28):
        raise AekitError(
            f"--arch keras is the seed's 28x28 model; the data is "
            f"{cfg.image_size}x{cfg.image_size}: use --arch conv"
        )
    if cfg.latent_dim not in (None, LATENT):
        raise AekitError(
            f"--arch keras has the seed's fixed 8x4x4 = {LATENT}-value code: drop --latent-dim"
        )
    cfg.latent_dim = LATENT
    if cfg.base_channels is None:  # not used: the seed's Keras widths are fixed (16, 8, 8)
        cfg.base_channels = 64


FAMILY = Family(
    name="keras",
    summary="the seed's Keras MNIST model (28x28): conv + max-pooling, a fixed 8x4x4 code",
    model=KerasAutoencoder,
    check=check,
    value_range=(0.0, 1.0),
    default_loss="bce",
)

"""``conv``: the seed tutorial's PyTorch encoder/decoder (stride-2 Conv2d + GELU, Linear
bottleneck, ConvTranspose2d decoder, Tanh output on [-1, 1] data). At 32x32 it is exactly the
seed's model (same layers, same parameter names); other sizes get the output paddings that undo
each stride-2 step (28 -> 14 -> 7 -> 4 -> 7 -> 14 -> 28) and, above 56 pixels, extra downsampling
stages until the code's feature map is at most 7x7.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Autoencoder, bottleneck_check
from .config import ModelConfig
from .registry import Family

DEFAULT_LATENT = 256  # the seed's bottleneck
DEFAULT_WIDTH = 64  # the seed's first conv


def downsample_sizes(size: int) -> list[int]:
    """Spatial sizes after each stride-2 conv: 32 -> [16, 8, 4], 28 -> [14, 7, 4], 64 -> [.., 4]."""
    sizes = [size]
    while len(sizes) < 4 or sizes[-1] > 7:
        sizes.append((sizes[-1] + 1) // 2)  # a 3x3, stride-2, padding-1 conv rounds up
    return sizes[1:]


def _gelu_conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, stride=stride), nn.GELU()]


def _gelu_up(c_in: int, c_out: int, out_padding: int) -> list[nn.Module]:
    up = nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=out_padding)
    return [up, nn.GELU()]


class ConvEncoder(nn.Module):
    """(B, C, S, S) -> (B, latent_dim), the seed's ``Encoder`` generalised in size."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, b = cfg.base_channels, cfg.in_channels
        sizes = downsample_sizes(cfg.image_size)
        extra = len(sizes) - 3
        layers = _gelu_conv(b, c, 2) + _gelu_conv(c, c)
        layers += _gelu_conv(c, 2 * c, 2) + _gelu_conv(2 * c, 2 * c)
        for _ in range(extra):
            layers += _gelu_conv(2 * c, 2 * c, 2) + _gelu_conv(2 * c, 2 * c)
        layers += _gelu_conv(2 * c, 2 * c, 2)
        layers += [nn.Flatten(), nn.Linear(2 * c * sizes[-1] ** 2, cfg.latent_dim)]
        self.net = he_init(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """(B, latent_dim) -> (B, C, S, S) in [-1, 1], the seed's ``Decoder`` generalised in size."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.base_channels
        sizes = [cfg.image_size, *downsample_sizes(cfg.image_size)]
        self.code_size = sizes[-1]
        # output_padding 1 where the encoder halved an even size, 0 where it rounded an odd one up
        pads = [sizes[i] - 2 * sizes[i + 1] + 1 for i in range(len(sizes) - 1)][::-1]
        self.linear = nn.Sequential(nn.Linear(cfg.latent_dim, 2 * c * self.code_size**2), nn.GELU())
        layers: list[nn.Module] = []
        for pad in pads[:-2]:
            layers += _gelu_up(2 * c, 2 * c, pad) + _gelu_conv(2 * c, 2 * c)
        layers += _gelu_up(2 * c, c, pads[-2]) + _gelu_conv(c, c)
        layers += [
            nn.ConvTranspose2d(c, cfg.in_channels, 3, stride=2, padding=1, output_padding=pads[-1]),
            nn.Tanh(),
        ]
        self.net = nn.Sequential(*layers)
        he_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.linear(z)
        x = x.reshape(x.shape[0], -1, self.code_size, self.code_size)  # (B, 2c, s, s)
        return self.net(x)


def he_init(module: nn.Module) -> nn.Module:
    """He (Kaiming) normal weights and zero biases for every conv and linear layer of
    ``module``, in place; returns it.

    Why: torch's default (uniform, a = sqrt(5)) shrinks the signal about 2.4x per GELU layer,
    so the seed's untrained model reduces every image to a code of spread 0.014 and its decoder
    to a flat picture; Adam then spends its first ~200 steps growing all layers at once before
    the images' structure comes through (MNIST: 15.8 dB after 3 epochs of 3,000 images with
    the output started at the mean, 19.8 with this). He's scale keeps the spread through the
    GELUs (their gain is close to ReLU's sqrt(2)). The layers are the seed's; only where they
    start differs.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return module


class ConvAutoencoder(Autoencoder):
    def __init__(self, config: ModelConfig | None = None, **kwargs: object) -> None:
        super().__init__(config, **kwargs)
        self.encoder = ConvEncoder(self.config)
        self.decoder = ConvDecoder(self.config)


FAMILY = Family(
    name="conv",
    summary="the seed's PyTorch model: stride-2 convs + GELU, a linear bottleneck",
    model=ConvAutoencoder,
    check=bottleneck_check("conv", DEFAULT_LATENT, DEFAULT_WIDTH),
    value_range=(-1.0, 1.0),
    default_loss="mse",
    body=(ConvEncoder, ConvDecoder),
)

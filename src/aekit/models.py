"""The two autoencoders of the seed tutorial, as one ``Autoencoder`` built from a ``ModelConfig``.

- ``conv``: the seed's PyTorch encoder/decoder (stride-2 Conv2d + GELU, Linear bottleneck,
  ConvTranspose2d decoder, Tanh output on [-1, 1] data). At 32x32 it is exactly the seed's model
  (same layers, same parameter names); other sizes get the output paddings that undo each
  stride-2 step (28 -> 14 -> 7 -> 4 -> 7 -> 14 -> 28) and, above 56 pixels, extra downsampling
  stages until the code's feature map is at most 7x7.
- ``keras``: the seed's Keras MNIST model (Conv 16/8/8 + MaxPooling, UpSampling decoder, sigmoid
  output on [0, 1] data); its code is the 8x4x4 feature map, flattened to 128 values.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .errors import AekitError


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
        self.net = nn.Sequential(*layers)

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

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.linear(z)
        x = x.reshape(x.shape[0], -1, self.code_size, self.code_size)  # (B, 2c, s, s)
        return self.net(x)


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


def topk_mask(z: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest activations of each row of (B, D) ``z`` and zero the rest."""
    idx = z.topk(k, dim=1).indices
    return torch.zeros_like(z).scatter(1, idx, z.gather(1, idx))


class Autoencoder(nn.Module):
    """An image autoencoder: ``encode`` (B, C, S, S) -> (B, D), ``decode`` back.

    Inputs are float images in the model's value range (``value_range``): [-1, 1] for ``conv``,
    [0, 1] for ``keras``. ``forward`` returns ``(latent, reconstruction)`` like the seed's model.
    """

    def __init__(self, config: ModelConfig | None = None, **kwargs: object) -> None:
        super().__init__()
        self.config = config or ModelConfig(**kwargs)  # type: ignore[arg-type]
        if self.config.in_channels is None or self.config.image_size is None:
            raise AekitError(
                "an Autoencoder needs in_channels and image_size (training takes "
                "them from the data)"
            )
        conv = self.config.arch == "conv"
        self.encoder = (ConvEncoder if conv else KerasEncoder)(self.config)
        self.decoder = (ConvDecoder if conv else KerasDecoder)(self.config)

    @property
    def value_range(self) -> tuple[float, float]:
        """The data scale the model reads and writes."""
        return value_range(self.config.arch)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        return topk_mask(z, self.config.topk) if self.config.topk else z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decode(z)


def check_input(
    model: Autoencoder, shape: tuple[int, ...], what: str, run: object | None = None
) -> None:
    """Refuse images of ``shape`` (C, H, W) that ``model`` was not trained on, naming ``what``
    they are: one clear error instead of a convolution's shape mismatch."""
    want = (model.config.in_channels, model.config.image_size, model.config.image_size)
    if tuple(shape) != want:
        fix = f"--image-size {want[1]}" if shape[0] == want[0] else "images with as many channels"
        raise AekitError(
            f"{what} images are {'x'.join(map(str, shape))} but {run or 'the model'} was "
            f"trained on {'x'.join(map(str, want))}: use {fix}"
        )


def value_range(arch: str) -> tuple[float, float]:
    """[-1, 1] for the tanh ``conv`` model (the seed's Normalize(0.5, 0.5)), [0, 1] for keras."""
    return (-1.0, 1.0) if arch == "conv" else (0.0, 1.0)


def to_model_scale(
    images: torch.Tensor, arch: str, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """uint8 pixels -> floats in the model's value range."""
    lo, hi = value_range(arch)
    return images.to(dtype) * ((hi - lo) / 255.0) + lo


def to_unit_scale(x: torch.Tensor, arch: str) -> torch.Tensor:
    """Model-range floats -> [0, 1] floats (clamped), the scale metrics and pictures use."""
    lo, hi = value_range(arch)
    return ((x.float() - lo) / (hi - lo)).clamp(0.0, 1.0)

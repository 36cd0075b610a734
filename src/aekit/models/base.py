"""What every model family shares: the output type of ``forward``, the ``Autoencoder`` base
class, and the conversions between uint8 pixels and a family's value range."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn

from ..errors import AekitError
from .config import ModelConfig
from .registry import check_config, get_family


class AEOutput(NamedTuple):
    """What a family's ``forward`` returns (a NamedTuple: torch.compile and CUDA graphs take it).

    ``recon``: (B, C, H, W) in the family's value range. ``code``: (B, D), the vector search
    uses. ``terms``: named extra loss terms (KL, ...), scalars that the one ``step`` adds up.
    """

    recon: torch.Tensor
    code: torch.Tensor
    terms: dict[str, torch.Tensor]


class Autoencoder(nn.Module):
    """An image autoencoder: ``encode`` (B, C, S, S) -> (B, D), ``decode`` back, ``forward`` ->
    ``AEOutput``. ``Autoencoder(config)`` builds the family ``config.arch`` names (its registered
    subclass), so ``isinstance(model, Autoencoder)`` holds for every family.

    Inputs are float images in the family's value range (``value_range``); use
    ``to_model_scale`` on uint8 pixels.
    """

    def __new__(cls, config: ModelConfig | None = None, **kwargs: Any) -> Autoencoder:
        if cls is Autoencoder:  # dispatch to the family's class, as pathlib.Path does
            arch = (config or ModelConfig(**kwargs)).arch
            cls = get_family(arch).model
        return super().__new__(cls)

    def __init__(self, config: ModelConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        config = config or ModelConfig(**kwargs)
        check_config(config)
        if config.in_channels is None or config.image_size is None:
            raise AekitError(
                "an Autoencoder needs in_channels and image_size (training takes "
                "them from the data)"
            )
        self.config = config

    @property
    def generative(self) -> bool:
        """Whether the family samples its code (``forward`` takes ``eps``) and has a prior."""
        return get_family(self.config.arch).generative

    @property
    def value_range(self) -> tuple[float, float]:
        """The data scale the model reads and writes."""
        return value_range(self.config.arch)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)  # (B, C, S, S) -> (B, D)
        return topk_mask(z, self.config.topk) if self.config.topk else z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, D) -> (B, C, S, S)

    @torch.no_grad()
    def start_at_mean(self, mean: torch.Tensor) -> nn.Module | None:
        """Set the bias of the decoder's last layer so that its output starts at ``mean``, the
        training data's (C,) per-channel mean on the model's scale (the squashing activation's
        inverse of it); returns that layer, or None where the decoder ends in no Tanh or Sigmoid
        (it is left alone).

        Why: the seed's Tanh decoder starts near 0, far from MNIST's mean of -0.74 on [-1, 1].
        Adam's first steps move every weight at once toward that level, overshoot it within 7
        steps into saturation (pre-activations of -50 by step 8, -40,000 by step 60 on the
        momentum), where the Tanh's gradient is exactly 0 in float32: the model stays an
        all-black picture for good (9.44 dB). A warm-up of 300 steps or a 10x lower rate only
        delayed it; started at the mean, the first steps learn the images' structure instead
        (Karpathy's "init the final layer's bias" rule). The weights keep their initialisation.
        """
        decoder = getattr(self, "decoder", None)  # a unet has none: it starts as the identity
        if not isinstance(decoder, nn.Module):
            return None
        squash = [m for m in decoder.modules() if isinstance(m, nn.Tanh | nn.Sigmoid)]
        if not squash:
            return None
        channels = len(mean)
        biased = [
            m for m in decoder.modules()
            if isinstance(getattr(m, "bias", None), nn.Parameter) and m.bias.numel() == channels
        ]  # fmt: skip
        if not biased:
            return None
        lo, hi = self.value_range
        unit = ((mean.float() - lo) / (hi - lo)).clamp(0.01, 0.99)  # away from +-infinity
        target = (
            torch.logit(unit) if isinstance(squash[-1], nn.Sigmoid) else torch.atanh(2 * unit - 1)
        )
        layer = biased[-1]
        layer.bias.copy_(target.to(layer.bias))
        return layer

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> AEOutput:
        """``eps``: standard normal noise of shape (B, latent_dim) for a family that samples
        its code (``Family.generative``); None takes the posterior mean. Others ignore it."""
        z = self.encode(x)
        return AEOutput(self.decode(z), z, {})


def bottleneck_check(
    arch: str, latent: int, width: int, min_side: int = 16, blocks: bool = False
) -> Callable[[ModelConfig], None]:
    """The config check of a family with a linear bottleneck: images of at least ``min_side``
    pixels; latent size and width default to ``latent`` and ``width``; ``--depth`` only where
    the family has residual ``blocks``."""

    def check(cfg: ModelConfig) -> None:
        if not blocks:
            refuse_depth(cfg, arch)
        if cfg.image_size is not None and cfg.image_size < min_side:
            raise AekitError(
                f"--arch {cfg.arch} needs images of at least {min_side}x{min_side}, "
                f"got {cfg.image_size}"
            )
        if cfg.latent_dim is None:
            cfg.latent_dim = latent
        if cfg.base_channels is None:
            cfg.base_channels = width

    return check


def refuse_depth(cfg: ModelConfig, arch: str) -> None:
    """Refuse ``--depth`` for a family (or a vae's body) ``arch`` without residual blocks."""
    if cfg.depth != 1:
        flag = "--arch" if cfg.arch == arch else "--body"  # a vae's body
        raise AekitError(
            f"{flag} {arch} has no residual blocks to repeat: drop --depth "
            "(it sets the blocks of resnet and unet)"
        )


def topk_mask(z: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest activations of each row of (B, D) ``z`` and zero the rest."""
    idx = z.topk(k, dim=1).indices
    return torch.zeros_like(z).scatter(1, idx, z.gather(1, idx))


def check_input(
    model: Autoencoder, shape: tuple[int, ...], what: str, run: object | None = None
) -> None:
    """Refuse images of ``shape`` (C, H, W) that ``model`` was not trained on, naming ``what``
    they are: one clear error instead of a convolution's shape mismatch."""
    want = (model.config.in_channels, model.config.image_size, model.config.image_size)
    if get_family(model.config.arch).any_size:
        want = (want[0], *shape[1:])
    if tuple(shape) != want:
        fix = f"--image-size {want[1]}" if shape[0] == want[0] else "images with as many channels"
        raise AekitError(
            f"{what} images are {'x'.join(map(str, shape))} but {run or 'the model'} was "
            f"trained on {'x'.join(map(str, want))}: use {fix}"
        )


def value_range(arch: str) -> tuple[float, float]:
    """The value range of the family ``arch`` (conv: [-1, 1], the seed's Normalize(0.5, 0.5);
    keras: [0, 1])."""
    return get_family(arch).value_range


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

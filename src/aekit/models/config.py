"""The model's config: everything needed to rebuild an autoencoder (saved as JSON beside its
weights). Each family's own rules are in its registry entry (:func:`aekit.models.check_config`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AekitError
from ..options import check_range, check_side
from ..options import option as _opt

# Upper bounds far beyond any use of these models, low enough that a typo (an extra few zeros)
# is one line rather than an allocator error minutes later.
MAX_LATENT = 65_536
MAX_BASE_CHANNELS = 1024
MAX_DEPTH = 16
MODEL_CLI_SKIP = ("in_channels", "image_size", "topk")  # set from the data and --sparsity


@dataclass
class ModelConfig:
    """Everything needed to rebuild an autoencoder (saved as JSON beside its weights)."""

    arch: str = _opt("model family (default: conv, the seed's)", default="conv")
    in_channels: int | None = _opt("image channels (1 or 3); taken from the data", default=None)
    image_size: int | None = _opt("image side in pixels; taken from the data", default=None)
    latent_dim: int | None = _opt(
        "latent vector size (default: the family's; conv 256, keras a fixed 8x4x4 = 128)",
        default=None,
    )
    base_channels: int | None = _opt(
        "width of the first conv layer (default: the family's; conv 64, resnet 48)", default=None
    )
    depth: int = _opt("residual blocks per resolution (resnet, unet; vae on resnet)", default=1)
    body: str | None = _opt("the family a vae is built on (default: resnet)", default=None)
    topk: int | None = _opt("keep only the k largest latent activations (k-sparse)", default=None)

    def __post_init__(self) -> None:
        # what holds for every family; each family's own rules are in its registry entry
        # (aekit.models.check_config), checked wherever a run or a model is made
        if not isinstance(self.arch, str):
            raise AekitError(f"--arch must be a family name, got {self.arch!r}")
        if self.in_channels not in (None, 1, 3):
            raise AekitError(f"images must have 1 or 3 channels, got {self.in_channels}")
        if self.latent_dim is not None:
            check_range("--latent-dim", self.latent_dim, 1, MAX_LATENT)
        if self.base_channels is not None:
            check_range("--base-channels", self.base_channels, 1, MAX_BASE_CHANNELS)
        check_range("--depth", self.depth, 1, MAX_DEPTH)
        if self.body is not None and not isinstance(self.body, str):
            raise AekitError(f"--body must be a family name, got {self.body!r}")
        check_side(self.image_size)

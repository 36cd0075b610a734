"""Model families behind one contract (after timm's registry).

``create_model(config)`` builds the family ``config.arch`` names; ``list_models()`` names them.
A family is one module here plus one line below: its ``Autoencoder`` subclass, its config check,
value range and default loss (``registry.Family``). Every ``forward`` returns an ``AEOutput``.
"""

from __future__ import annotations

from . import conv, draem, keras, nafnet, resnet, unet, vae
from .base import (
    AEOutput,
    Autoencoder,
    check_input,
    to_model_scale,
    to_unit_scale,
    topk_mask,
    value_range,
)
from .config import ModelConfig
from .conv import downsample_sizes
from .registry import Family, check_config, get_family, list_bodies, list_models, register

register(conv.FAMILY)
register(keras.FAMILY)
register(resnet.FAMILY)
register(unet.FAMILY)
register(nafnet.FAMILY)
register(vae.FAMILY)
register(draem.FAMILY)


def create_model(config: ModelConfig | None = None, **kwargs: object) -> Autoencoder:
    """The autoencoder of the family ``config.arch`` (``ModelConfig`` fields as ``kwargs``)."""
    config = config or ModelConfig(**kwargs)  # type: ignore[arg-type]
    return get_family(config.arch).model(config)


__all__ = [
    "AEOutput",
    "Autoencoder",
    "Family",
    "check_config",
    "check_input",
    "create_model",
    "downsample_sizes",
    "get_family",
    "list_bodies",
    "list_models",
    "register",
    "to_model_scale",
    "to_unit_scale",
    "topk_mask",
    "value_range",
]

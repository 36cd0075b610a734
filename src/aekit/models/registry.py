"""The registry of model families (after timm's): each family registers one ``Family`` entry
holding its model class, its config check, its value range and its default loss. Nothing outside
this registry asks which family a model is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import AekitError


@dataclass(frozen=True)
class Family:
    name: str  # the --arch value
    summary: str  # one line for --help
    model: type  # the family's Autoencoder subclass
    check: Callable[[Any], None]  # refuse a ModelConfig it cannot build; fill its defaults
    value_range: tuple[float, float]  # the data scale the model reads and writes
    default_loss: str  # "mse" or "bce", when --loss is not given
    any_size: bool = False  # takes images of any HxW, not only its training size
    decodable: bool = True  # its code decodes on its own (interpolation between codes)
    generative: bool = False  # has a prior to sample (aekit generate); forward takes eps
    segments: bool = False  # trains on synthetic anomalies (forward takes their mask) and
    # maps where an image is anomalous (``segment``): aekit score --method draem
    body: tuple[type, type] | None = None  # (encoder, decoder) classes a vae can be built on
    batch_size: int = 64  # training defaults, where --batch-size and --lr are not given
    lr: float = 1e-3


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in _FAMILIES:
        raise ValueError(f"model family {family.name!r} is registered twice")
    _FAMILIES[family.name] = family
    return family


def list_models() -> list[str]:
    """The registered family names (``--arch`` values), in registration order."""
    return list(_FAMILIES)


def list_bodies() -> list[str]:
    """The families a ``vae`` can be built on (``--body`` values)."""
    return [name for name, family in _FAMILIES.items() if family.body is not None]


def get_family(name: str) -> Family:
    """The registered family ``name``; an unknown one is an AekitError listing the others."""
    try:
        return _FAMILIES[name]
    except (KeyError, TypeError):
        raise AekitError(f"unknown --arch {name!r}: choose one of {', '.join(_FAMILIES)}") from None


def check_config(cfg: Any) -> None:
    """Refuse a ``ModelConfig`` its family cannot build, and fill the family's defaults (its
    latent size): the one check of model options, for the CLI, the API and saved runs alike."""
    family = get_family(cfg.arch)
    if cfg.body is not None and not family.generative:
        raise AekitError(f"--body is the body of a vae: drop it for --arch {cfg.arch}")
    family.check(cfg)
    if cfg.topk is not None and not 1 <= cfg.topk <= cfg.latent_dim:
        raise AekitError(f"topk:{cfg.topk} must be between 1 and the latent size {cfg.latent_dim}")

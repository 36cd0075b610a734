"""Trained models that ship inside the package (``builtin:NAME``), as torchvision and timm ship
pretrained weights: each is a safetensors file in ``weights/`` with its model config, sha256,
model card and the noise it was trained on, listed in ``weights/index.json``. Loading checks the
file's sha256 against the index before the weights are read.

``aekit denoise PHOTO`` with no run picks the built-in denoiser of the photo's mode (gray or
colour: ``default_for``), and for a JPEG file the one trained on noisy JPEGs where there is one
(``default_for_jpeg``); ``--model NAME``, ``aekit.load("builtin:NAME")`` and ``aekit train
--init builtin:NAME`` name one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import AekitError
from ..options import from_dict
from .base import Autoencoder
from .config import ModelConfig

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
INDEX = "index.json"
PREFIX = "builtin:"


@dataclass(frozen=True)
class Pretrained:
    """One built-in model: what it is and where its files are."""

    name: str
    config: ModelConfig
    weights: Path
    sha256: str
    card: Path
    noise: str  # the noise it was trained on, e.g. gaussian:0-50 (a blind denoiser)
    default_for: int | None  # the channels (1 gray, 3 colour) it is the default denoiser of
    summary: str  # one line: what it is, how it was trained, what it measured
    run_config: dict[str, Any]  # the config.json of the run that trained it (data, model, train)
    default_for_jpeg: int | None = None  # ... of JPEG files of that many channels

    def describe(self) -> str:
        mode = {1: "gray", 3: "colour"}[self.config.in_channels]
        default = " (default)" if self.default_for else ""
        if self.default_for_jpeg:
            default = " (default for JPEG files)"
        return f"{self.name}{default}: {mode}, {self.noise}; {self.summary}"


def available(folder: Path | None = None) -> dict[str, Pretrained]:
    """Every built-in model, by name (none when the package ships none)."""
    folder = WEIGHTS_DIR if folder is None else folder
    path = folder / INDEX
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        models = {name: _entry(folder, name, entry) for name, entry in raw.items()}
        for channels in (1, 3):
            if sum(m.default_for == channels for m in models.values()) > 1:
                raise ValueError(f"two default models for {channels}-channel photos")
            if sum(m.default_for_jpeg == channels for m in models.values()) > 1:
                raise ValueError(f"two default models for {channels}-channel JPEG files")
        return models
    except (ValueError, KeyError, TypeError, AttributeError, AekitError) as e:
        raise AekitError(f"{path} is damaged ({e}): reinstall aekit") from None
    except OSError as e:
        raise AekitError(f"cannot read {path} ({e.strerror or e}): check its permissions, "
                         "or reinstall aekit") from None  # fmt: skip


def _entry(folder: Path, name: str, entry: dict[str, Any]) -> Pretrained:
    config = from_dict(ModelConfig, entry["config"])
    if config.in_channels not in (1, 3):
        raise ValueError(f"{name}: in_channels must be 1 or 3")
    if entry["run_config"]["model"] != entry["config"]:
        raise ValueError(f"{name}: its config and its run's model config differ")
    for key in ("default_for", "default_for_jpeg"):
        if entry.get(key) not in (None, config.in_channels):
            raise ValueError(f"{name}: {key} must be null or its {config.in_channels} channels")
    return Pretrained(name, config, folder / entry["weights"], entry["sha256"],
                      folder / entry["card"], entry["noise"], entry.get("default_for"),
                      entry["summary"], entry["run_config"],
                      entry.get("default_for_jpeg"))  # fmt: skip


def get(name: str, folder: Path | None = None) -> Pretrained:
    """The built-in model ``name`` (with or without ``builtin:``); an unknown name is refused
    with the list of those there are."""
    name = name.removeprefix(PREFIX)
    models = available(folder)
    if name not in models:
        there = ", ".join(sorted(models)) or "none in this installation"
        raise AekitError(f"no built-in model {name!r}: the built-in models are {there}")
    return models[name]


def default_for(channels: int, folder: Path | None = None, jpeg: bool = False) -> Pretrained:
    """The built-in denoiser for photos of ``channels`` channels (1 gray, 3 colour); with
    ``jpeg``, the one for JPEG files of them where there is one (else the same)."""
    if channels not in (1, 3):
        raise AekitError(
            f"photos have 1 (gray) or 3 (colour) channels, got {channels}: convert them first"
        )
    models = available(folder).values()
    if jpeg:
        for model in models:
            if model.default_for_jpeg == channels:
                return model
    for model in models:
        if model.default_for == channels:
            return model
    mode = "gray" if channels == 1 else "colour"
    raise AekitError(
        f"this installation has no built-in {mode} denoiser: pass a trained run "
        "(aekit denoise RUN PHOTO ...) or --model NAME (aekit denoise --list)"
    )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_weights(model: Pretrained) -> dict[str, torch.Tensor]:
    """The state dict of ``model``, after its file's sha256 is checked against the index."""
    if not model.weights.is_file():
        raise AekitError(f"{model.weights} is missing: reinstall aekit")
    try:
        digest = sha256(model.weights)
    except OSError as e:
        raise AekitError(
            f"cannot read {model.weights} ({e.strerror or e}): reinstall aekit"
        ) from None
    if digest != model.sha256:
        raise AekitError(
            f"{model.weights} does not match its sha256 in {INDEX} (damaged or replaced): "
            "reinstall aekit"
        )
    try:
        return load_file(model.weights)
    except (SafetensorError, OSError) as e:
        raise AekitError(f"{model.weights} cannot be read ({e}): reinstall aekit") from None


def load_pretrained(name: str, folder: Path | None = None) -> Autoencoder:
    """The built-in model ``name``, in eval mode on the CPU."""
    entry = get(name, folder)
    model = Autoencoder(entry.config)
    try:
        model.load_state_dict(load_weights(entry))
    except RuntimeError as e:
        raise AekitError(
            f"{entry.weights} does not fit its config ({e}): reinstall aekit"
        ) from None
    return model.eval()

"""``aekit train --init RUN|builtin:NAME``: a run that starts from trained weights, to adapt a
model to one's own data or noise (fine-tuning). The model is the one the weights belong to; the
data and training options are the command's; the optimizer starts anew."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import AekitError
from ..models import Autoencoder, get_family
from ..models import pretrained as builtin
from ..models.config import MODEL_CLI_SKIP, ModelConfig
from .config import BUILTIN
from .runs import WEIGHTS, load_config


def init_model_config(spec: str, given: dict[str, Any]) -> ModelConfig:
    """The model config of ``--init spec``; a model option in ``given`` (the flags the user
    gave) that differs from it is refused: the weights decide the model."""
    model = _source_config(spec)
    for name, value in given.items():
        if name in MODEL_CLI_SKIP or getattr(model, name) == value:
            continue
        if name == "arch":
            raise AekitError(
                f"--init {spec} is a {model.arch} model and --arch {value} is another family: "
                f"drop --arch, or start from a {value} run"
            )
        flag = "--" + name.replace("_", "-")
        raise AekitError(
            f"--init {spec} has {flag} {getattr(model, name)}, not {value}: the weights decide "
            f"the model; drop {flag}"
        )
    return replace(model, in_channels=None, image_size=None, topk=None)


def _source_config(spec: str) -> ModelConfig:
    if spec.startswith(BUILTIN):
        return builtin.get(spec).config
    cfg = load_config(spec)  # says so when the folder is not a run
    if not (Path(spec) / WEIGHTS).is_file():
        raise AekitError(f"--init {spec} has no trained weights ({WEIGHTS}): train it first")
    return cfg.model


def load_init(model: Autoencoder, spec: str) -> None:
    """Put the weights of ``--init spec`` into ``model`` (a new run's, fitted to its data): a
    model of other channels or, for a fixed-size family, another image size is refused."""
    source = _source_config(spec)
    fitted = model.config
    if source.in_channels != fitted.in_channels:
        modes = {1: "gray (1 channel)", 3: "colour (3 channels)"}
        raise AekitError(
            f"--init {spec} is a {modes[source.in_channels]} model and the data are "
            f"{modes[fitted.in_channels]}: start from a model of the data's mode"
        )
    if not get_family(source.arch).any_size and source.image_size != fitted.image_size:
        raise AekitError(
            f"--init {spec} takes {source.image_size}x{source.image_size} images and the data "
            f"are {fitted.image_size}x{fitted.image_size}: pass --image-size {source.image_size}"
        )
    if spec.startswith(BUILTIN):
        state = builtin.load_weights(builtin.get(spec))
    else:
        from safetensors.torch import load_file

        state = load_file(Path(spec) / WEIGHTS)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise AekitError(f"the weights of --init {spec} do not fit its config ({first})") from e

"""A run folder: config, weights, checkpoint and metrics, written atomically.

RUN/config.json           data, model and training configs (enough to rebuild and re-run)
RUN/model.safetensors     the latest weights
RUN/checkpoint.pt         weights, optimizer state, epoch and RNG states, for --resume
RUN/metrics.jsonl         one JSON line per finished epoch
RUN/samples/epoch_NNN.png originals over reconstructions
RUN/loss.png              the loss curves, at the end

Nothing is loaded by unpickling code: safetensors, and ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import fastpath
from .config import DataConfig, ModelConfig, TrainConfig, from_dict, to_dict
from .errors import AekitError
from .files import atomic_write, write_text
from .models import Autoencoder

CONFIG, WEIGHTS, CHECKPOINT, METRICS = (
    "config.json",
    "model.safetensors",
    "checkpoint.pt",
    "metrics.jsonl",
)


@dataclass
class RunConfig:
    """All that defines a run."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": to_dict(self.data),
            "model": to_dict(self.model),
            "train": to_dict(self.train),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return cls(
            from_dict(DataConfig, d["data"]),
            from_dict(ModelConfig, d["model"]),
            from_dict(TrainConfig, d["train"]),
        )


def save_config(run: Path, cfg: RunConfig) -> None:
    write_text(run / CONFIG, json.dumps(cfg.to_dict(), indent=2) + "\n")


def state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Plain contiguous CPU tensors, keyed without torch.compile's ``_orig_mod.`` prefix."""
    sd = model.state_dict()
    return {k.replace("_orig_mod.", ""): v.detach().cpu().contiguous() for k, v in sd.items()}


def save_weights(run: Path, model: torch.nn.Module) -> None:
    atomic_write(run / WEIGHTS, lambda tmp: save_file(state_dict(model), tmp))


def save_checkpoint(run: Path, state: dict[str, Any]) -> None:
    atomic_write(run / CHECKPOINT, lambda tmp: torch.save(state, tmp))


def load_checkpoint(run: Path) -> dict[str, Any]:
    path = run / CHECKPOINT
    if not path.is_file():
        raise AekitError(
            f"nothing to resume in {run}: {CHECKPOINT} is missing (train without "
            "--resume to start over)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is the user's to replace, not a bug
        raise AekitError(f"{path} is corrupt ({type(e).__name__}); start the run again") from e


def append_metrics(run: Path, row: dict[str, Any]) -> None:
    with open(run / METRICS, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """The complete metric lines of a run (a torn last line from a kill is ignored)."""
    path = run / METRICS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def keep_metrics(run: Path, last_epoch: int) -> None:
    """Drop metric lines past the checkpoint's epoch, so a resumed run continues the same file."""
    rows = [r for r in read_metrics(run) if r["epoch"] <= last_epoch]
    write_text(run / METRICS, "".join(json.dumps(r) + "\n" for r in rows))


def load_config(run: str | Path) -> RunConfig:
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise AekitError(f"{run} is a file, not a run folder (a folder made by aekit train)")
    if not run.is_dir():
        raise AekitError(
            f"run folder {run} does not exist (train one with: aekit train --out {run})"
        )
    path = run / CONFIG
    if not path.is_file():
        raise AekitError(f"{run} is not a complete run folder: {CONFIG} is missing")
    try:
        return RunConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise AekitError(f"{path} is corrupt ({e}); train the run again") from e


def load(run: str | Path, device: str | torch.device = "cpu") -> Autoencoder:
    """The trained autoencoder of a run folder, in eval mode (channels_last where that pays)."""
    run = Path(run)
    cfg = load_config(run)
    path = run / WEIGHTS
    if not path.is_file():
        raise AekitError(
            f"{run} has no trained weights yet ({WEIGHTS} is missing): train it first "
            "or let its first epoch finish"
        )
    model = Autoencoder(cfg.model)
    try:
        model.load_state_dict(load_file(path))
    except (SafetensorError, RuntimeError, OSError) as e:
        raise AekitError(
            f"{path} is corrupt or does not match {CONFIG}: train the run again"
        ) from e
    device = torch.device(device)
    return model.to(device, memory_format=fastpath.memory_format(device)).eval()

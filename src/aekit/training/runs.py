"""A run folder: config, weights, checkpoint and metrics, written atomically.

RUN/config.json           data, model and training configs (enough to rebuild and re-run)
RUN/checkpoint.pt         weights, optimizer state, epoch and RNG states, for --resume
RUN/model.safetensors     the latest weights (their epoch in the file's metadata), written
                          after the checkpoint: the checkpoint is the truth
RUN/metrics.jsonl         one JSON line per finished epoch
RUN/samples/epoch_NNN.png originals over reconstructions
RUN/loss.png              the loss curves, at the end

Nothing is loaded by unpickling code: safetensors, and ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..data.config import DataConfig
from ..errors import AekitError
from ..files import atomic_write, write_text
from ..models import Autoencoder, check_config, get_family
from ..models.config import ModelConfig
from ..models.pretrained import available as available_pretrained
from ..models.pretrained import get as get_pretrained
from ..models.pretrained import load_pretrained
from ..options import from_dict, to_dict
from . import fastpath
from .config import BUILTIN, TrainConfig
from .objectives import parse_sparsity

CONFIG, WEIGHTS, CHECKPOINT, METRICS, LOSS_PLOT = (
    "config.json",
    "model.safetensors",
    "checkpoint.pt",
    "metrics.jsonl",
    "loss.png",
)


@dataclass
class RunConfig:
    """All that defines a run."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    def __post_init__(self) -> None:
        sparsity = parse_sparsity(self.train.sparsity)
        if sparsity and sparsity.kind == "topk":
            self.model.topk = sparsity.k  # the model keeps the k largest: its family must allow
        check_config(self.model)  # the family's rules, for every way a run config is made
        family = get_family(self.model.arch)
        if self.train.batch_size is None:
            self.train.batch_size = family.batch_size
        if self.train.lr is None:
            self.train.lr = family.lr
        if family.generative and self.train.loss not in (None, "mse", "bce"):
            raise AekitError(f"a vae's ELBO needs a likelihood: --loss mse (Gaussian) or bce, "
                             f"not {self.train.loss}")  # fmt: skip
        if get_family(self.model.arch).generative and sparsity:
            raise AekitError("a vae's code is kept in check by its KL term (--beta): drop "
                             "--sparsity")  # fmt: skip
        if self.train.self_supervised and (family.generative or family.segments):
            raise AekitError(f"--self-supervised trains a denoiser: --arch unet (or another "
                             f"plain family), not {self.model.arch}")  # fmt: skip
        if self.train.self_supervised == "nb2nb" and not family.any_size:
            raise AekitError(
                f"nb2nb trains on half-size sub-images: a fully convolutional --arch (unet), "
                f"not {self.model.arch}, or --self-supervised n2v"
            )
        if not get_family(self.model.arch).generative and (
            self.train.beta != 1.0 or self.train.kl_warmup
        ):
            raise AekitError(f"--beta and --kl-warmup weight a vae's KL term: drop them for "
                             f"--arch {self.model.arch}")  # fmt: skip

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


PARTS = ("data", "model", "train")


# The format of config.json. 1 (no "version" key): gaussian noise in the model's value scale.
# 2: noise in pixel units (0-255), the same for every family. Older files are migrated on load.
CONFIG_VERSION = 2


def save_config(run: Path, cfg: RunConfig) -> None:
    text = json.dumps({"version": CONFIG_VERSION, **cfg.to_dict()}, indent=2) + "\n"
    write_text(run / CONFIG, text)


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A config.json of any earlier format, as the current format (``CONFIG_VERSION``)."""
    version = raw.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"version {version!r} is not a config format")
    if version > CONFIG_VERSION:
        raise ValueError(
            f"it is format {version}, made by a newer aekit (this one reads up to "
            f"{CONFIG_VERSION}); upgrade aekit"
        )
    raw = {k: v for k, v in raw.items() if k != "version"}
    if version == 1:  # gaussian sigma: model scale -> pixel units
        noise = raw["train"].get("noise")
        if isinstance(noise, str) and noise.startswith("gaussian:"):
            lo, hi = get_family(raw["model"].get("arch", "conv")).value_range
            sigma = float(noise.split(":", 1)[1]) * 255.0 / (hi - lo)
            raw["train"] = {**raw["train"], "noise": f"gaussian:{sigma}"}
    return raw


def state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Plain contiguous CPU tensors, keyed without torch.compile's ``_orig_mod.`` prefix."""
    sd = model.state_dict()
    return {k.replace("_orig_mod.", ""): v.detach().cpu().contiguous() for k, v in sd.items()}


def save_weights(run: Path, model: torch.nn.Module, epoch: int) -> None:
    meta = {"epoch": str(epoch)}
    atomic_write(run / WEIGHTS, lambda tmp: save_file(state_dict(model), tmp, metadata=meta))


def weights_epoch(run: Path) -> int | None:
    """The epoch of the run's weights file: None when it is missing or unreadable; -1 when it
    predates the epoch metadata."""
    try:
        with safe_open(str(run / WEIGHTS), "pt") as f:
            epoch = (f.metadata() or {}).get("epoch")
    except (OSError, SafetensorError):
        return None
    return int(epoch) if epoch is not None and epoch.isdigit() else -1


def save_checkpoint(run: Path, state: dict[str, Any]) -> None:
    atomic_write(run / CHECKPOINT, lambda tmp: torch.save(state, tmp))


CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "cpu_rng", "device_rng")


def load_checkpoint(run: Path, epochs: int | None = None) -> dict[str, Any]:
    """The run's checkpoint, checked to be one: its keys, and an epoch between 1 and ``epochs``
    (the run's configured epochs). Whether its tensors fit the model is ``train``'s check."""
    path = run / CHECKPOINT
    if not path.is_file():
        raise AekitError(
            f"nothing to resume in {run}: {CHECKPOINT} is missing (train without "
            "--resume to start over)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is the user's to replace, not a bug
        raise AekitError(f"{path} is corrupt ({type(e).__name__}); start the run again") from e
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in CHECKPOINT_KEYS):
        raise AekitError(
            f"{path} is not an aekit checkpoint (it needs {', '.join(CHECKPOINT_KEYS)}); "
            "start the run again"
        )
    epoch = ckpt["epoch"]
    if type(epoch) is not int or epoch < 1 or (epochs is not None and epoch > epochs):
        raise AekitError(
            f"{path} is damaged: its epoch {epoch!r} is not one of the run's "
            f"{epochs or ''} epochs; start the run again"
        )
    return ckpt


def append_metrics(run: Path, row: dict[str, Any]) -> None:
    with open(run / METRICS, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


METRIC_KEYS = ("epoch", "train_loss", "test_loss", "test_mse", "test_psnr", "seconds")


def _metrics_row(line: bytes) -> dict[str, Any] | None:
    """One metrics line as a row, or None when it is not one aekit wrote."""
    try:
        row = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(row, dict) or any(k not in row for k in METRIC_KEYS):
        return None
    if type(row["epoch"]) is not int or row["epoch"] < 1:
        return None
    return row


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """The metric lines of a run, one per finished epoch. A torn last line (a kill while it
    was written) is ignored; a damaged line before it is an error naming the file and line."""
    path = run / METRICS
    if not path.is_file():
        return []
    lines = path.read_bytes().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        row = _metrics_row(line)
        if row is None:
            if number == len(lines):
                break  # torn by a kill mid-write: that epoch was not checkpointed either
            raise AekitError(
                f"{path} line {number} is damaged (not a metrics row aekit wrote): "
                "repair or delete that line"
            )
        rows.append(row)
    return rows


def keep_metrics(run: Path, last_epoch: int) -> None:
    """Drop metric lines past the checkpoint's epoch, so a resumed run continues the same file."""
    rows = [r for r in read_metrics(run) if r["epoch"] <= last_epoch]
    write_text(run / METRICS, "".join(json.dumps(r) + "\n" for r in rows))


def load_config(run: str | Path) -> RunConfig:
    """A run's config (a built-in model's: the run that trained it); a damaged ``config.json``
    is an AekitError saying so."""
    if str(run).startswith(BUILTIN):
        return RunConfig.from_dict(migrate(get_pretrained(str(run)).run_config))
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise AekitError(f"{run} is a file, not a run folder (a folder made by aekit train)")
    if not run.is_dir():
        if str(run) in available_pretrained():
            raise AekitError(f"run folder {run} does not exist: for the built-in model, "
                             f"write {BUILTIN}{run}")  # fmt: skip
        raise AekitError(
            f"run folder {run} does not exist (train one with: aekit train --out {run})"
        )
    path = run / CONFIG
    if not path.is_file():
        raise AekitError(
            f"{run} is not a complete run folder ({CONFIG} is missing: it was stopped before "
            f"its first save); train it again: aekit train --out {run} ..., without --resume"
        )
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(raw, dict) or any(not isinstance(raw.get(k), dict) for k in PARTS):
            raise ValueError(f"it needs the objects {', '.join(PARTS)}")
        return RunConfig.from_dict(migrate(raw))
    except (UnicodeDecodeError, ValueError, AekitError) as e:  # JSONDecodeError is a ValueError
        raise AekitError(f"{path} is damaged: {e}; train the run again") from e


# How a run is computed, not what it trains: these may change when it is resumed (a run begun
# on a GPU machine continues on a CPU one); the others are the run's identity.
RESUME_MAY_CHANGE = ("epochs", "time_limit", "device", "compile", "amp", "log")


def resume_config(run: str | Path, changes: dict[str, Any]) -> RunConfig:
    """The config to continue ``run`` with: its own, with ``epochs`` (more than its checkpoint
    has finished) and how it runs (``RESUME_MAY_CHANGE``) changed; any other option in
    ``changes`` that differs is refused. A run killed after its last checkpoint but before its
    weights and loss.png were written is finished by resuming it with the same epochs.
    The rule of ``aekit train --resume`` and of ``aekit.train(..., resume=True)`` alike."""
    cfg = load_config(run)
    known = {f.name for part in (cfg.data, cfg.model, cfg.train) for f in fields(part)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise AekitError(f"unknown training option {unknown[0]!r}")
    for part in (cfg.data, cfg.model, cfg.train):
        for f in fields(part):
            if f.name in RESUME_MAY_CHANGE or f.name not in changes:
                continue
            # compare as the config stores it (paths made absolute, and so on)
            given = getattr(replace(part, **{f.name: changes[f.name]}), f.name)
            if given != getattr(part, f.name):
                raise AekitError(
                    f"--resume continues {run} as it was configured "
                    f"({f.name} = {getattr(part, f.name)!r}); only --epochs, --time-limit "
                    "and how it runs (--device, --no-compile, --no-amp, --log) may change"
                )
    ckpt = load_checkpoint(Path(run), cfg.train.epochs)  # the checkpoint is the truth
    done = ckpt["epoch"]
    how = {k: changes[k] for k in RESUME_MAY_CHANGE
           if k not in ("epochs", "time_limit") and changes.get(k) is not None}  # fmt: skip
    epochs = changes.get("epochs") or cfg.train.epochs
    limit = changes.get("time_limit") or cfg.train.time_limit
    unfinished = weights_epoch(Path(run)) not in (done, -1) or not (Path(run) / LOSS_PLOT).exists()
    same = done == epochs == cfg.train.epochs and unfinished
    if done >= epochs and not same:
        raise AekitError(
            f"{run} has already finished {done} epochs: pass --epochs N (more "
            f"than {done}) with --resume to train further"
        )
    spent = ckpt.get("trained_seconds", 0.0) / 60
    if limit is not None and spent >= limit and not (limit == cfg.train.time_limit and unfinished):
        raise AekitError(
            f"{run} has already trained for its --time-limit of {limit:g} minutes: pass "
            f"--time-limit M (more than {limit:g}) with --resume to train further"
        )
    train = replace(cfg.train, epochs=epochs, time_limit=limit, **how)
    return replace(cfg, train=train)


def load(run: str | Path, device: str | torch.device = "cpu") -> Autoencoder:
    """The trained autoencoder of a run folder, or the built-in model ``builtin:NAME``, in eval
    mode (channels_last where that pays)."""
    if str(run).startswith(BUILTIN):
        device = torch.device(device)
        model = load_pretrained(str(run))
        return model.to(device, memory_format=fastpath.memory_format(device)).eval()
    run = Path(run)
    cfg = load_config(run)
    path = run / WEIGHTS
    if not path.is_file():
        if (run / CHECKPOINT).is_file():  # stopped between its checkpoint and its weights
            raise AekitError(
                f"{run} has a checkpoint but no {WEIGHTS} (it was stopped while saving): "
                f"finish it with aekit train --out {run} --resume"
            )
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
    if not all(
        torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point()
    ):
        # training never saves such weights (a diverged epoch stops before its save)
        raise AekitError(f"{path} holds NaN or infinite weights: train the run again")
    device = torch.device(device)
    return model.to(device, memory_format=fastpath.memory_format(device)).eval()

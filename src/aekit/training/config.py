"""Dataclass configs for data, model and training, with JSON round trip and validation.

Each field's ``metadata`` carries its CLI help; ``add_arguments`` derives the command-line flags
from the dataclass so that the flags are never restated by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from .data.images import check_side
from .errors import AekitError

T = TypeVar("T")

LOSSES = ("mse", "bce")
DEVICES = ("auto", "cpu", "cuda", "mps")


# Upper bounds far beyond any use of these models, low enough that a typo (an extra few zeros)
# is one line rather than an allocator error minutes later.
MAX_LATENT = 65_536
MAX_BASE_CHANNELS = 1024
MAX_DEPTH = 16
MAX_BATCH = 65_536
MAX_EPOCHS = 100_000
MAX_SEED = 2**63 - 1  # torch.manual_seed takes 64-bit seeds
MAX_MINUTES = 525_600  # --time-limit: a year
DEFAULT_EPOCHS = 10
SCHEDULES = ("constant", "cosine", "onecycle")
MODEL_CLI_SKIP = ("in_channels", "image_size", "topk")  # set from the data and --sparsity
LOGGERS = ("tensorboard",)  # --log: where each epoch is logged besides metrics.jsonl


def check_range(flag: str, value: int | float, low: int | float, high: int | float) -> None:
    """Refuse ``value`` outside [low, high] (and NaN) with one line naming the flag."""
    if not low <= value <= high:
        raise AekitError(f"{flag} must be between {low:,} and {high:,}, got {value}")


def _opt(help: str, default: Any, flag: str | None = None) -> Any:
    """A dataclass field with CLI metadata: ``help`` text and an optional flag name."""
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass
class DataConfig:
    """Where the images come from and how they are prepared."""

    source: str = _opt(
        "dataset: mnist, fashion-mnist, cifar10, medmnist/<flag>[@size], "
        "shapes, folder:<dir>, npz:<file>, wds:<dir or shard pattern>",
        flag="--data",
        default="shapes",
    )
    data_dir: str | None = _opt(
        "dataset folder (default: $AEKIT_DATA, else ~/.cache/aekit)", default=None
    )
    image_size: int | None = _opt(
        "resize folder images to this size (default: most common)", default=None
    )
    limit: int | None = _opt(
        "use only the first N images of the training and held-out splits", default=None
    )
    train_split: str = _opt("split to train on", default="train")
    heldout_split: str | None = _opt(
        "split to evaluate on each epoch (default: test, else val, "
        "else 10%% held out of the training split)",
        default=None,
    )
    augment: str | None = _opt(
        "training augmentation: crop,hflip,vflip,rot90 or none (default: the seed's crop,"
        "hflip,vflip for cifar10 and medmnist; hflip,vflip,rot90 with --patch-size; else none)",
        default=None,
    )
    classes: str | None = _opt(
        "train on these classes only, by number or name (e.g. 3 or 3,5): the normal images "
        "of an anomaly detector; held-out images are kept to them too",
        default=None,
    )
    patch_size: int | None = _opt(
        "train on random PxP patches cut from the images at their own sizes (photos of mixed "
        "sizes in a folder: no resizing)",
        default=None,
    )

    def __post_init__(self) -> None:
        # paths are stored absolute so that the run's config works from any folder
        for prefix in ("folder:", "npz:"):
            if self.source.startswith(prefix) and len(self.source) > len(prefix):
                self.source = prefix + str(Path(self.source[len(prefix) :]).expanduser().resolve())
        if self.data_dir is not None:
            self.data_dir = str(Path(self.data_dir).expanduser().resolve())
        if self.limit is not None and self.limit < 1:
            raise AekitError(f"--limit must be a positive number of images, got {self.limit}")
        check_side(self.image_size)
        check_side(self.patch_size, "--patch-size")
        if self.patch_size is not None and self.image_size is not None:
            raise AekitError(
                "--patch-size cuts patches from the images at their own sizes: drop --image-size"
            )
        if self.classes is not None:
            from .data.classes import parse_classes

            parse_classes(self.classes)
            if self.patch_size is not None:
                raise AekitError(
                    "--classes picks labelled images; --patch-size trains on unlabelled photos: "
                    "drop one of them"
                )
        if self.augment is not None:
            from .data.augment import parse_augment

            parse_augment(self.augment)

    def augment_ops(self) -> tuple[str, ...]:
        """The augmentation ops in effect: explicit, else the seed's default for the source
        (and the 8 rotations and reflections for patches)."""
        from .data.augment import parse_augment

        if self.augment is not None:
            return parse_augment(self.augment)
        if self.patch_size is not None:
            return ("hflip", "vflip", "rot90")
        seeded = self.source == "cifar10" or self.source.startswith("medmnist/")
        return ("crop", "hflip", "vflip") if seeded else ()


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


@dataclass
class TrainConfig:
    """How a model is trained."""

    epochs: int | None = _opt(
        "number of passes over the training set (default 10; with --time-limit, as many as "
        "the time allows)",
        default=None,
    )
    batch_size: int | None = _opt(
        "images per step (default: the family's; 64, unet 16)", default=None
    )
    lr: float | None = _opt("Adam learning rate (default: the family's; 1e-3, unet 2e-3)",
                            default=None)  # fmt: skip
    loss: str | None = _opt(
        "reconstruction loss (default: the family's; mse for conv, bce for keras)", default=None
    )
    noise: str | None = _opt(
        "denoising corruption: gaussian:SIGMA (pixel units, 0-255), saltpepper:FRACTION or "
        "mask:FRACTION",
        default=None,
    )
    sparsity: str | None = _opt("sparsity: l1:WEIGHT, kl:RHO:WEIGHT or topk:K", default=None)
    beta: float = _opt("weight of the KL term (vae; 1 is the plain VAE)", default=1.0)
    kl_warmup: int = _opt(
        "epochs over which the KL weight rises linearly from 0 to --beta (vae)", default=0
    )
    time_limit: float | None = _opt(
        "stop after this many minutes of training (after the current step), evaluate and save "
        "as at an epoch's end; the learning-rate schedule spans this budget",
        default=None,
    )
    schedule: str | None = _opt(
        "learning-rate schedule: constant, cosine (after a warm-up over its first 2%%) or "
        "onecycle (default: cosine with "
        "--time-limit, else constant)",
        default=None,
    )
    device: str = _opt("auto, cpu, cuda or mps", default="auto")
    seed: int = _opt("random seed (data order, augmentation, noise, weights)", default=0)
    amp: bool = _opt(
        "bf16 autocast where the device runs it natively (--no-amp: float32)", default=True
    )
    compile: bool = _opt(
        "torch.compile the training forward where it pays, on a GPU (--no-compile: eager)",
        default=True,
    )
    log: str | None = _opt(
        "also log each epoch to: tensorboard (its numbers and samples, in RUN/tensorboard/; "
        "needs the tensorboard package); metrics.jsonl is always written",
        default=None,
    )

    def __post_init__(self) -> None:
        from .objectives import parse_noise, parse_sparsity

        if self.time_limit is not None:
            real = isinstance(self.time_limit, int | float) and not isinstance(
                self.time_limit, bool
            )
            if not (real and 0 < self.time_limit <= MAX_MINUTES):
                raise AekitError(
                    f"--time-limit is minutes of training, above 0 and at most {MAX_MINUTES:,} "
                    f"(a year), got {self.time_limit!r}"
                )
        if self.epochs is None:
            self.epochs = MAX_EPOCHS if self.time_limit is not None else DEFAULT_EPOCHS
        if self.schedule is None:
            self.schedule = "cosine" if self.time_limit is not None else "constant"
        if self.log not in (None, *LOGGERS):
            raise AekitError(f"unknown --log {self.log!r}: aekit logs to {', '.join(LOGGERS)}")
        if self.schedule not in SCHEDULES:
            raise AekitError(
                f"unknown --schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}"
            )
        if self.epochs < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise AekitError("--epochs and --batch-size must be positive")
        check_range("--epochs", self.epochs, 1, MAX_EPOCHS)
        if self.batch_size is not None:
            check_range("--batch-size", self.batch_size, 1, MAX_BATCH)
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise AekitError(f"--lr must be a positive number, got {self.lr}")
        check_range("--seed", self.seed, 0, MAX_SEED)
        if self.loss is not None and self.loss not in LOSSES:
            raise AekitError(f"unknown --loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.device not in DEVICES:
            raise AekitError(
                f"unknown --device {self.device!r}: choose one of {', '.join(DEVICES)}"
            )
        parse_noise(self.noise)
        parse_sparsity(self.sparsity)
        real = isinstance(self.beta, int | float) and not isinstance(self.beta, bool)
        if not (real and self.beta >= 0 and math.isfinite(self.beta)):
            raise AekitError(f"--beta must be a number >= 0, got {self.beta!r}")
        if isinstance(self.kl_warmup, bool) or not isinstance(self.kl_warmup, int):
            raise AekitError(f"--kl-warmup must be whole epochs, got {self.kl_warmup!r}")
        check_range("--kl-warmup", self.kl_warmup, 0, MAX_EPOCHS)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as a plain JSON-ready dict."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a dict, refusing keys it does not know (as minGPT's config merge) and
    values of the wrong type (a saved config may have been edited or damaged)."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise AekitError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if not _has_type(value, hints[name]):
            raise AekitError(f"{cls.__name__}.{name} is {value!r}, not of type {hints[name]}")
    return cls(**data)


def _has_type(value: Any, tp: Any) -> bool:
    """Whether a JSON value fits a field type: str, int, float, bool, or one of them | None."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return any(_has_type(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return type(value) in (int, float)
    return type(value) is tp  # bool is not an int here, nor an int a bool


def _base_type(tp: Any) -> type:
    """``int | None`` -> ``int``: the type a flag's value is parsed as."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: tuple[str, ...] = (),
    choices: dict[str, list[str]] | None = None,
) -> None:
    """Add one ``--flag`` per field of the dataclass ``cls`` (defaults left to the dataclass);
    ``choices`` lists the valid values of some fields (e.g. the registered model families)."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        kind: dict[str, Any] = {"type": _base_type(hints[f.name])}
        if f.name in (choices or {}):
            kind["choices"] = choices[f.name]  # type: ignore[index]
        if hints[f.name] is bool:  # a switch: --no-x turns off what is on by default
            flag = flag.replace("--", "--no-") if f.default else flag
            kind = {"action": "store_const", "const": not f.default}
        parser.add_argument(
            flag, dest=f.name, default=argparse.SUPPRESS, help=f.metadata.get("help"), **kind
        )


def from_namespace(cls: type[T], ns: argparse.Namespace, **overrides: Any) -> T:
    """Build ``cls`` from the flags the user gave (others keep the dataclass defaults)."""
    given = {f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)}  # type: ignore[arg-type]
    given.update(overrides)
    return cls(**given)

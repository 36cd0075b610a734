"""The training config: how a model is trained (the data's and the model's configs live beside
what they configure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..devices import DEVICES
from ..errors import AekitError
from ..options import check_range
from ..options import option as _opt

LOSSES = ("mse", "bce", "l1", "charbonnier")
# Upper bounds far beyond any use, low enough that a typo (an extra few zeros) is one line
# rather than an allocator error minutes later.
MAX_BATCH = 65_536
MAX_EPOCHS = 100_000
MAX_SEED = 2**63 - 1  # torch.manual_seed takes 64-bit seeds
MAX_MINUTES = 525_600  # --time-limit: a year
DEFAULT_EPOCHS = 10
SCHEDULES = ("constant", "cosine", "onecycle")
LOGGERS = ("tensorboard",)  # --log: where each epoch is logged besides metrics.jsonl
BUILTIN = "builtin:"  # --init builtin:NAME: weights that ship with aekit


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
        "reconstruction loss: mse, bce, l1 or charbonnier (a smooth l1) (default: the "
        "family's; mse for conv, bce for keras)",
        default=None,
    )
    noise: str | None = _opt(
        "denoising corruption: gaussian:SIGMA (pixel units, 0-255), gaussian:LOW-HIGH, "
        "poisson:PEAK, saltpepper:FRACTION or mask:FRACTION; +jpeg:LOW-HIGH[:SHARE] then saves "
        "that share of the noisy images as JPEG files of those qualities",
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
    ema: float | None = _opt(
        "keep an exponential moving average of the weights with this decay (e.g. 0.999): the "
        "average is what the run evaluates and saves",
        default=None,
    )
    init: str | None = _opt(
        "start from trained weights: a run folder, or builtin:NAME (aekit denoise --list); "
        "the model is theirs, the data and training options this command's, the optimizer new",
        default=None,
    )
    anomaly_source: str | None = _opt(
        "draem: a folder of images whose textures are pasted as synthetic anomalies (DRAEM "
        "used the DTD textures; default: the training images, shuffled and recoloured)",
        default=None,
    )
    self_supervised: str | None = _opt(
        "train a denoiser on noisy images alone, no clean image and no --noise: n2v (a blind "
        "spot, Noise2Void) or nb2nb (two neighbouring sub-images, Neighbor2Neighbor)",
        default=None,
    )
    clean: str | None = _opt(
        "--self-supervised: a folder of clean references paired with noisy images by file "
        "name; those noisy images are held out and scored by PSNR/SSIM against them",
        default=None,
    )

    def __post_init__(self) -> None:
        from .objectives import parse_noise, parse_sparsity
        from .selfsup import METHODS

        if self.self_supervised is not None and self.self_supervised not in METHODS:
            raise AekitError(f"unknown --self-supervised {self.self_supervised!r}: choose "
                             f"{' or '.join(METHODS)}")  # fmt: skip
        if self.self_supervised is not None and self.noise:
            raise AekitError(
                "--self-supervised learns the noise the images already have: drop --noise (or "
                "drop --self-supervised to train on clean images)"
            )
        if self.clean is not None:
            if self.self_supervised is None:
                raise AekitError(
                    "--clean gives a self-supervised run clean references to score against: "
                    "add --self-supervised n2v|nb2nb, or drop --clean"
                )
            if not isinstance(self.clean, str) or not self.clean.strip():
                raise AekitError(f"--clean names a folder of clean images, got {self.clean!r}")
            self.clean = str(Path(self.clean).expanduser().resolve())

        if self.anomaly_source is not None:
            if not isinstance(self.anomaly_source, str) or not self.anomaly_source.strip():
                raise AekitError(f"--anomaly-source names a folder of images, got "
                                 f"{self.anomaly_source!r}")  # fmt: skip
            self.anomaly_source = str(Path(self.anomaly_source).expanduser().resolve())

        if self.ema is not None:
            real = isinstance(self.ema, int | float) and not isinstance(self.ema, bool)
            if not (real and 0 < self.ema < 1):
                raise AekitError(f"--ema is a decay between 0 and 1 (e.g. 0.999), got {self.ema!r}")
        if self.init is not None:
            if not isinstance(self.init, str) or not self.init.strip():
                raise AekitError(f"--init names a run folder or builtin:NAME, got {self.init!r}")
            if not self.init.startswith(BUILTIN):  # stored absolute: the run works from anywhere
                self.init = str(Path(self.init).expanduser().resolve())

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

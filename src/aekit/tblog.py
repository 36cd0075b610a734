"""``aekit train --log tensorboard``: each epoch's numbers (the row metrics.jsonl gets) and its
sample grid, written with ``torch.utils.tensorboard`` into ``RUN/tensorboard/``, for
``tensorboard --logdir runs``. metrics.jsonl stays the record aekit reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import AekitError

DIR = "tensorboard"
INSTALL = "pip install 'aekit[tensorboard]' (the tensorboard package)"


def check_available() -> None:
    """``--log tensorboard`` needs the tensorboard package: say so before any training."""
    try:
        import tensorboard  # noqa: F401
    except ImportError as e:
        raise AekitError(
            f"--log tensorboard needs tensorboard, which is not installed: {INSTALL}"
        ) from e


class EpochLog:
    """The TensorBoard event files of one run, written by rank 0 at each epoch's end."""

    def __init__(self, run: Path, first_epoch: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run logs from its checkpoint on: what a killed run logged past it is purged
        self.writer = SummaryWriter(str(run / DIR), purge_step=first_epoch)

    def epoch(self, row: dict[str, Any], samples: Path) -> None:
        step = row["epoch"]
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)
        with Image.open(samples) as picture:
            pixels = np.asarray(picture.convert("RGB"))
        self.writer.add_image("samples", pixels, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

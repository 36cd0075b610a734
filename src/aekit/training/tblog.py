"""``aekit train --log tensorboard``: each epoch's numbers (the row metrics.jsonl gets) and its
sample grid, written with ``torch.utils.tensorboard`` into ``RUN/tensorboard/``, for
``tensorboard --logdir runs``. metrics.jsonl stays the record aekit reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import AekitError

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

        from .runs import read_metrics

        # A resumed run's curve is metrics.jsonl's, whenever logging was turned on: everything
        # logged before is purged (what a killed run logged past its checkpoint too) and the
        # epochs before this one are written again from metrics.jsonl and their sample grids.
        self.writer = SummaryWriter(str(run / DIR), purge_step=1)
        for row in read_metrics(run) if first_epoch > 1 else []:
            if row.get("epoch", first_epoch) < first_epoch:
                grid = run / "samples" / f"epoch_{row['epoch']:03d}.png"
                self.epoch(row, grid if grid.is_file() else None)

    def epoch(self, row: dict[str, Any], samples: Path | None) -> None:
        step = row["epoch"]
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)
        if samples is not None:
            with Image.open(samples) as picture:
                pixels = np.asarray(picture.convert("RGB"))
            self.writer.add_image("samples", pixels, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

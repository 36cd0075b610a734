"""Learning-rate schedules as pure functions of training progress (0 at the start, 1 at the end).

Progress is the fraction of the training steps done, or with ``--time-limit`` the fraction of the
time budget spent; torch's ``lr_scheduler`` classes count steps, which a time budget cannot give
in advance, so the same shapes are written here as functions of progress. ``cosine`` rises
linearly from lr/25 to lr over the first 2% (a warm-up: Adam's first steps, on second moments
of a few batches, are the ones that blew a photo denoiser up at full rate), then anneals to 0.
``onecycle`` is the shape of torch's ``OneCycleLR`` with its defaults (cosine warm-up over the
first 30% from lr/25 to lr, then cosine annealing to lr/(25 * 1e4)).
"""

from __future__ import annotations

import math

PCT_START, DIV_FACTOR, FINAL_DIV_FACTOR = 0.3, 25.0, 1e4  # OneCycleLR's defaults
WARMUP = 0.02  # cosine's warm-up: the fraction of training over which the rate rises


def _cos(start: float, end: float, t: float) -> float:
    return end + (start - end) / 2.0 * (1.0 + math.cos(math.pi * t))


def lr_factor(kind: str, progress: float) -> float:
    """The learning rate's multiple of ``--lr`` at ``progress`` (clamped to [0, 1])."""
    p = min(max(progress, 0.0), 1.0)
    if kind == "cosine":
        if p < WARMUP:
            return 1.0 / DIV_FACTOR + (1.0 - 1.0 / DIV_FACTOR) * p / WARMUP
        return _cos(1.0, 0.0, (p - WARMUP) / (1 - WARMUP))
    if kind == "onecycle":
        if p < PCT_START:
            return _cos(1.0 / DIV_FACTOR, 1.0, p / PCT_START)
        return _cos(1.0, 1.0 / (DIV_FACTOR * FINAL_DIV_FACTOR), (p - PCT_START) / (1 - PCT_START))
    return 1.0

"""``--ema DECAY``: an exponential moving average of the weights (Polyak averaging), as image
restoration models are trained (KAIR, NAFNet: 0.999). The average is what a run evaluates and
saves; training steps the raw weights. torch's ``AveragedModel`` keeps it."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..models import Autoencoder


class Ema:
    """The average of ``model``'s weights (and buffers), updated after every optimizer step."""

    def __init__(self, model: Autoencoder, decay: float) -> None:
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
                                      use_buffers=True)  # fmt: skip
        self.source = model

    @property
    def model(self) -> Autoencoder:
        return self.averaged.module

    @torch.no_grad()
    def update(self) -> None:
        self.averaged.update_parameters(self.source)

    @torch.no_grad()
    def reset(self) -> None:
        """Start again from the current weights (after the guard undid a spike: the average
        would otherwise hold the weights of the steps that were undone)."""
        self.model.load_state_dict(self.source.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)

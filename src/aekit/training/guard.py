"""Training's safety net: gradient spikes clipped, loss spikes undone.

Every step, the gradient's norm is clipped to ``CLIP`` times its running mean (after AutoClip,
Seetharaman et al. 2020: a threshold that follows the run, where torch's ``clip_grad_norm_``
takes a fixed one that would depend on the loss's scale and the model). That bites only on
outliers and keeps one bad batch from inflating Adam's second moments.

Every ``CHECK_EVERY`` steps (more often in short epochs) and at each epoch's end, the mean loss
of the steps since the last check is read (one host sync), and the loss of a fixed batch under
the current weights (``probe``): either one not finite, or above ``SPIKE`` times the median of
the last good checks, is a spike. The guard then puts back the weights and optimizer state of
the last good check, halves the learning rate for the rest of the run, and says so: a line on
stderr, the epoch's line, and its ``spikes`` entry in metrics.jsonl. Steps it undid do not
count in the epoch's train loss; an epoch none of whose steps could be kept is trained again. After
``MAX_RESTORES`` spikes the run is called diverged.

Under torchrun the checked loss is the sum over the ranks, so every rank decides alike.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..data.warn import warn
from .distributed import SINGLE, Group

CHECK_EVERY = 50  # steps between checks (at least 4 checks an epoch)
CHECKS_PER_EPOCH = 4
SPIKE = 3.0  # a check's loss above this multiple of the recent good ones is a spike
# Spikes in losses this small are noise, not damage: 1e-4 is an MSE of 46 dB PSNR on the
# [-1, 1] scale (a unet trained as a plain autoencoder copies its input to ~1e-9)
FLOOR = 1e-4
MAX_RESTORES = 6  # the rate halves at each: after 6, 1/64 of --lr, the run has diverged
CLIP = 5.0  # a gradient's norm above this multiple of its running mean is clipped to it
CLIP_MOMENTUM = 0.98  # the running mean's memory: about 50 steps
RECENT = 5  # good checks the median is taken over


class Diverged(Exception):
    """Raised by ``Guard.check`` when the spikes did not stop; the message says what happened."""


class Guard:
    """Clips gradients and watches the loss of one training run (see the module's docstring).

    ``probe()`` gives the loss of a fixed batch under the current weights (no gradient): the
    interval's training losses were computed before each step's update, so only the probe
    vouches for the weights a check keeps. ``lr_scale``: the multiple of the schedule's rate in
    effect (halved at each spike). A checkpoint keeps ``state()``, so a resumed run goes on
    with its rate and its running numbers.
    """

    def __init__(
        self, model: nn.Module, opt: torch.optim.Optimizer, device: torch.device, steps: int,
        probe: Callable[[], torch.Tensor], group: Group = SINGLE,
        state: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.model, self.opt, self.probe, self.group = model, opt, probe, group
        self.every = max(1, min(CHECK_EVERY, steps // CHECKS_PER_EPOCH))
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.norm_mean = torch.zeros((), device=device)
        self.clipped = torch.zeros((), device=device)
        self.since = torch.zeros(2, device=device)  # loss sum and count since the last check
        self.kept = torch.zeros(2, device=device)  # the same for this epoch's kept steps
        self.events: list[dict[str, Any]] = []  # this epoch's spikes
        state = state or {}
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.restores = int(state.get("restores", 0))
        self.steps = int(state.get("steps", 0))  # gradients seen (the first set the mean)
        self.norm_mean.fill_(float(state.get("norm_mean", 0.0)))
        self.good_step = int(state.get("good_step", 0))
        self.taken = int(state.get("taken", 0))  # steps taken, undone ones too
        # the last good checks' interval losses and probe losses (the untrained model's
        # probe before there are any)
        self.recent = [float(v) for v in state.get("recent", [])]
        self.probes = [float(v) for v in state.get("probes", [])] or [self._probe()]
        self._snapshot()

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the guard (plain numbers)."""
        return {"lr_scale": self.lr_scale, "restores": self.restores, "steps": self.steps,
                "norm_mean": float(self.norm_mean.item()), "good_step": self.good_step,
                "taken": self.taken,
                "recent": list(self.recent), "probes": list(self.probes)}  # fmt: skip

    def clip(self) -> None:
        """Clip this step's gradient (call between backward and the optimizer's step)."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return
        norm = torch.nn.utils.get_total_norm(grads).float()
        if self.steps < 10:  # the first steps set the running mean: their plain average
            self.norm_mean += (norm - self.norm_mean) / (self.steps + 1)
        else:
            limit = CLIP * self.norm_mean
            # a factor of 1 below the limit; tensors all along: no host sync per step
            scale = torch.where(norm > limit, limit / norm, torch.ones_like(norm))
            torch._foreach_mul_(grads, scale)
            self.clipped += (norm > limit).float()
            self.norm_mean.mul_(CLIP_MOMENTUM).add_(
                (1 - CLIP_MOMENTUM) * torch.minimum(norm, limit)
            )
        self.steps += 1

    def add(self, loss: torch.Tensor, n: int) -> None:
        """Count one step's mean loss over its ``n`` images (on the device)."""
        self.since += torch.stack([loss.detach().float() * n, loss.new_tensor(float(n))])
        self.taken += 1

    def running(self) -> float:
        """This rank's mean loss over the epoch so far (a host sync: for a progress bar)."""
        total, count = (self.kept + self.since).tolist()
        return total / max(count, 1.0)

    def due(self) -> bool:
        return self.taken % self.every == 0

    def check(self, epoch: int) -> None:
        """Read the losses since the last check and the probe's; keep the weights, or put
        back the last good ones (raises ``Diverged`` after too many spikes)."""
        since = self.group.sum(self.since.clone()) if self.group.on else self.since
        total, count = since.tolist()
        if count == 0:
            return
        mean, probe = total / count, self._probe()
        bad = [what for what, value, past in (("training loss", mean, self.recent),
                                              ("loss of a fixed batch", probe, self.probes))
               if _spike(value, past)]  # fmt: skip
        if not bad:
            self.kept += self.since
            self.since.zero_()
            self.recent = [*self.recent, mean][-RECENT:]
            self.probes = [*self.probes, probe][-RECENT:]
            self.good_step = self.taken
            self._snapshot()
            return
        self.restores += 1
        self.lr_scale /= 2
        self.since.zero_()
        self.model.load_state_dict(self._weights)
        self.opt.load_state_dict(copy.deepcopy(self._opt))
        self.norm_mean.copy_(self._norm_mean)
        self.steps = self._steps
        self.events.append({"epoch": epoch, "step": self.taken, "loss": _finite(mean),
                            "probe": _finite(probe), "back_to_step": self.good_step,
                            "lr_scale": self.lr_scale})  # fmt: skip
        what = bad[0]
        value, past = (mean, self.recent) if what == "training loss" else (probe, self.probes)
        jumped = f"the {what} jumped to {_number(value)}"
        if past:
            jumped += f" (the last good checks: {statistics.median(past):.4g})"
        if self.restores > MAX_RESTORES:
            raise Diverged(
                f"training diverged: the loss spiked {self.restores} times (the last: {jumped} "
                f"in epoch {epoch}) although the learning rate was halved after each"
            )
        warn(
            f"epoch {epoch}, step {self.taken}: {jumped}: the weights of step {self.good_step} "
            f"are back and the learning rate is halved (now {self.lr_scale:g} x the schedule's)"
        )

    def take_epoch(self) -> tuple[float, dict[str, Any]] | None:
        """(the mean loss of this epoch's kept steps over all ranks, the metrics.jsonl entry),
        and a reset; None when none of its steps could be kept (its spikes are kept for the
        epoch that is trained again in its place)."""
        total, count = (self.group.sum(self.kept.clone()) if self.group.on else self.kept).tolist()
        if count == 0:
            return None
        entry: dict[str, Any] = {"clipped_steps": int(self.clipped.item())}
        if self.events:
            entry["spikes"] = self.events
        if self.lr_scale != 1.0:
            entry["lr_scale"] = self.lr_scale
        self.kept.zero_()
        self.clipped.zero_()
        self.events = []
        return total / count, entry

    def _probe(self) -> float:
        value = self.probe().detach().float().reshape(1)
        if self.group.on:  # every rank decides on the same number
            value = self.group.sum(value) / self.group.world
        return float(value.item())

    def _snapshot(self) -> None:
        self._weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._opt = copy.deepcopy(self.opt.state_dict())
        self._norm_mean, self._steps = self.norm_mean.clone(), self.steps


def _spike(value: float, past: list[float]) -> bool:
    """Whether ``value`` is not finite, or a jump above ``SPIKE`` times the median of ``past``
    (and above ``FLOOR``)."""
    if not math.isfinite(value):
        return True
    if not past:
        return False
    reference = statistics.median(past)
    return math.isfinite(reference) and value > max(SPIKE * reference, FLOOR)


def _finite(value: float) -> float | None:
    """A number for metrics.jsonl: JSON has no NaN or infinity."""
    return value if math.isfinite(value) else None


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "a value that is not finite"

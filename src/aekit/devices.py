"""Choosing the compute device."""

from __future__ import annotations

import torch

from .errors import AekitError

DEVICES = ("auto", "cpu", "cuda", "mps")  # --device


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; an explicit device that is absent is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise AekitError(
            f"--device {name} was asked for but this machine has none; use --device auto or cpu"
        )
    return torch.device(name)


def bf16_native(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively (AVX512-BF16/AMX CPUs, Ampere+ GPUs), so it pays."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False

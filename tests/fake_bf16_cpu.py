"""A pytest plugin that makes this CPU claim native bf16, as AVX512-BF16/AMX CPUs do, so that a
test run on an AVX2 machine finds the tests that depend on which CPU they get (bf16 autocast is
on by default only where bf16 is native). bf16 is emulated here, so the run is slow (~7 min).

    make test-bf16      # = PYTHONPATH=tests python -m pytest -p fake_bf16_cpu

Subprocess tests keep the real CPU's answer (the plugin patches this process only).
"""

from __future__ import annotations

import importlib

import torch

_devices = importlib.import_module("aekit.devices")
_step = importlib.import_module("aekit.training.step")  # where training looks the check up
_real = _devices.bf16_native


def _native_on_cpu(device: torch.device) -> bool:
    return True if device.type == "cpu" else _real(device)


_devices.bf16_native = _native_on_cpu
_step.bf16_native = _native_on_cpu

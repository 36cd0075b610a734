"""The fast path's switches, each on by default where it pays and each with a ``--no-`` flag.

- bf16 autocast (``--no-amp``): where the device runs bf16 natively (``devices.bf16_native``).
  Where it does not (CPUs without AVX512-BF16/AMX) bf16 is emulated and slower than float32.
- bf16 autocast in ``aekit eval`` and ``aekit denoise`` (and the web page's denoising) too
  (``--no-amp``), where bf16 is native: with bf16 forced on the AVX2 CPU, eval's MSE stayed
  within 1e-3 (relative) of float32 and denoised pixels within 1e-3 (mean absolute, on [0, 1];
  at most one 8-bit level) (BENCHMARKS.md, "bf16 in eval, embed and denoise").
  ``aekit embed`` stays float32: bf16 moved the code vectors by 0.4-1% (relative), which
  changed 0.5% of the top-10 neighbours, and a store's vectors should not depend on the CPU
  that built it.
- channels_last memory format for the model's weights (and so its activations) on a CPU and a
  GPU, in training and in ``runs.load``: on the 2-core AVX2 CPU it trained the seed's model 8%
  faster (261 vs 241 images/s) at the same test MSE, and made ``aekit embed``/``eval``
  1.3-1.5x faster (BENCHMARKS.md); GPU convolutions use tensor cores best in it.
- ``torch.compile`` of the training forward (``--no-compile``): on a GPU, where kernel fusion
  and fewer launches are the usual win, with Triton installed (else eager, said once). Not on a
  CPU: there it cost ~30 s of compiling for 7% in later epochs on the seed's model
  (BENCHMARKS.md, "Training speed"), which a run of minutes does not earn back.
"""

from __future__ import annotations

import shutil

import torch
from torch import nn

from .. import devices
from ..data.warn import warn


def bf16_inference(device: torch.device, amp: bool = True) -> bool:
    """Whether eval and denoise run the model under bf16 autocast on ``device``: where it runs
    bf16 natively, unless ``amp`` is off (``--no-amp``)."""
    return amp and devices.bf16_native(device)


def compile_pays(device: torch.device) -> bool:
    """Whether ``torch.compile`` is part of the fast path on ``device`` (measured: not on CPU)."""
    return device.type == "cuda"


def can_compile(device: torch.device) -> str | None:
    """None when ``torch.compile`` can build kernels for ``device``, else why not."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "Triton is not installed"
    if device.type == "cpu":
        from torch._inductor import config

        names = config.cpp.cxx if isinstance(config.cpp.cxx, tuple) else (config.cpp.cxx,)
        found = any(shutil.which(n) for n in names if n) or shutil.which("g++")
        return None if found else "no C++ compiler (g++) was found"
    return f"torch.compile is not used on {device.type}"


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on a CPU or GPU; the default layout elsewhere (MPS: not measured)."""
    return torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format


def training_forward(model: nn.Module, device: torch.device, enabled: bool) -> nn.Module:
    """The module to call for full training batches: ``model`` compiled where it pays, else itself.

    The compiled module shares its parameters with ``model``; callers keep ``model`` for
    evaluation and for a last partial batch, so neither a no-grad pass nor a second batch shape
    triggers a recompile.
    """
    if not enabled or not compile_pays(device):
        return model
    why_not = can_compile(device)
    if why_not:
        warn(f"training without torch.compile: {why_not}")
        return model
    return torch.compile(model, dynamic=False)

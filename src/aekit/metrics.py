"""Image quality numbers on the [0, 1] pixel scale: MSE, PSNR (dB) and SSIM."""

from __future__ import annotations

import math

import torch
from pytorch_msssim import ssim as _ssim


def mse_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) mean squared error of each image pair, inputs on the [0, 1] scale."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)


def psnr(mse: float) -> float:
    """PSNR in dB for a mean squared error on the [0, 1] scale (peak 1)."""
    return math.inf if mse <= 0 else -10.0 * math.log10(mse)


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR of each image pair in dB (capped at 100 dB for identical images)."""
    return -10.0 * torch.log10(mse_per_image(a, b).clamp_min(1e-10))


def ssim_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) on [0, 1] images.

    Images smaller than the window (under 11 pixels a side) use a window of their own size.
    """
    win = min(11, a.shape[-1], a.shape[-2])
    win -= 1 - win % 2  # the window must be odd
    return _ssim(a.float(), b.float(), data_range=1.0, size_average=False, win_size=win)

"""Image quality numbers on the [0, 1] pixel scale: MSE, PSNR (dB) and SSIM."""

from __future__ import annotations

import math

import torch
from pytorch_msssim import ssim as _ssim


def mse_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) mean squared error of each image pair, inputs on the [0, 1] scale."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)


MIN_MSE = 1e-10  # PSNR is capped at 100 dB: identical images (a new unet copies) stay JSON


def psnr(mse: float) -> float:
    """PSNR in dB for a mean squared error on the [0, 1] scale (peak 1; at most 100 dB)."""
    return -10.0 * math.log10(max(mse, MIN_MSE))


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR of each image pair in dB (capped at 100 dB for identical images)."""
    return -10.0 * torch.log10(mse_per_image(a, b).clamp_min(MIN_MSE))


def ssim_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) on [0, 1] images.

    Images smaller than the window (under 11 pixels a side) use a window of their own size.
    """
    win = min(11, a.shape[-1], a.shape[-2])
    win -= 1 - win % 2  # the window must be odd
    return _ssim(a.float(), b.float(), data_range=1.0, size_average=False, win_size=win)

"""What each epoch reports: its row of ``metrics.jsonl``, the line printed on stderr, and the
grid of held-out samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..models import Autoencoder, to_unit_scale
from ..viz import image_rows
from .step import Objective, step


def epoch_row(epoch: int, train_loss: float, seconds: float, n: int, ev: dict) -> dict[str, Any]:
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        "test_loss": ev["loss"],
        "test_mse": ev["mse"],
        "test_psnr": ev["psnr"],
        "seconds": round(seconds, 3),
        "images_per_s": round(n / seconds, 1),
    }
    keys = ("noisy_psnr", "denoised_psnr", "denoised_ssim", "self_supervised_loss", "kl",
            "nelbo", "active_fraction", "dead_units", "collapsed")  # fmt: skip
    row.update({k: ev[k] for k in keys if k in ev})
    return row


def epoch_line(
    row: dict[str, Any], epochs: int, limit: float | None = None, minutes: float = 0.0
) -> str:
    """The line training prints at each epoch's end: its numbers, and what went wrong.
    ``limit``: the run's --time-limit, of which ``minutes`` are spent."""
    of = f" ({minutes:.1f} of {limit:g} min)" if limit else f"/{epochs}"
    parts = [f"train loss {row['train_loss']:.5g}"]
    if "self_supervised_loss" in row:  # the output against noisy images: its PSNR says little
        parts.append(f"held-out loss {row['self_supervised_loss']:.5g}")
    else:
        parts.append(f"held-out PSNR {row['test_psnr']:.2f} dB")
    if "denoised_psnr" in row:
        parts.append(f"denoised {row['noisy_psnr']:.2f} -> {row['denoised_psnr']:.2f} dB")
    parts.append(f"{row['images_per_s']:.0f} images/s")
    for spike in row.get("spikes", []):
        parts.append(f"loss spike at step {spike['step']} undone (back to step "
                     f"{spike['back_to_step']}, learning rate x{spike['lr_scale']:g})")  # fmt: skip
    if row.get("collapsed"):
        parts.append("COLLAPSED: every held-out image gets the same output (try another --lr "
                     "or --arch)")  # fmt: skip
    if row.get("stopped"):
        parts.append(f"stopped at the {row['stopped']}")
    return f"epoch {row['epoch']}{of}: " + ", ".join(parts)


def save_samples(
    run: Path, epoch: int, model: Autoencoder, images: torch.Tensor, obj: Objective
) -> Path:
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        gen = torch.Generator(device).manual_seed(1)
        # a self-supervised run's images are noisy: shown with the model's output for them
        noisy = obj.self_supervised is None
        out = step(model, images.to(device), obj, gen, training=False, noisy=noisy)
        # what the segmentation finds in the input (a draem's pasted anomalies)
        seg = model.segment(out.inputs) if obj.anomalies else None  # type: ignore[operator]
    arch = model.config.arch
    rows = [("noisy image" if obj.self_supervised else "original", to_unit_scale(out.clean, arch))]
    if obj.noise:
        rows.append(("noisy input", to_unit_scale(out.inputs, arch)))
    elif obj.anomalies:
        rows.append(("pasted anomalies", to_unit_scale(out.inputs, arch)))
    name = "denoised" if obj.self_supervised else "reconstruction"
    rows.append((name, to_unit_scale(out.output, arch)))
    if seg is not None:
        rows.append(("segmentation", seg[:, None].expand_as(out.inputs).float()))
    path = run / "samples" / f"epoch_{epoch:03d}.png"
    image_rows(rows, path, title=f"epoch {epoch}")
    return path

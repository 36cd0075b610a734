"""The ``aekit`` commands that use a trained run: eval, reconstruct, denoise, demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .errors import AekitError
from .metrics import psnr_per_image
from .models import Autoencoder, to_model_scale, to_unit_scale
from .objectives import corrupt, parse_noise


def _load(run: str) -> tuple[Autoencoder, object]:
    from .devices import pick_device
    from .runs import load, load_config

    cfg = load_config(run)
    return load(run, device=pick_device("auto")), cfg


def cmd_eval(ns: argparse.Namespace) -> None:
    from .data import load_dataset
    from .train import Objective, evaluate

    model, cfg = _load(ns.run)
    source = getattr(ns, "source", cfg.data.source)
    data_dir = ns.data_dir or cfg.data.data_dir
    ds = load_dataset(
        source, ns.split, data_dir=data_dir, image_size=ns.image_size or cfg.data.image_size
    )
    if ds.shape != (model.config.in_channels, model.config.image_size, model.config.image_size):
        raise AekitError(
            f"{source} [{ns.split}] images are {'x'.join(map(str, ds.shape))} but "
            f"{ns.run} was trained on {model.config.in_channels}x"
            f"{model.config.image_size}x{model.config.image_size}: pass "
            "--image-size or evaluate on matching data"
        )
    images = ds.images[: ns.limit] if ns.limit else ds.images
    result = evaluate(model, images, Objective.from_config(cfg), with_ssim=True)
    keys = ["mse", "psnr", "ssim", "count", "noisy_psnr", "denoised_psnr"]
    out = {k: result[k] for k in keys if k in result}
    if ns.json:
        print(json.dumps(out))
    else:
        print(
            f"{source} [{ns.split}], {out['count']} images: MSE {out['mse']:.5f}, "
            f"PSNR {out['psnr']:.2f} dB, SSIM {out['ssim']:.4f}"
        )


def _read_images(model: Autoencoder, paths: list[str]) -> torch.Tensor:
    """Image files as model-scale floats, converted as the training data was (and said so)."""
    from .data import read_image_files

    size = model.config.image_size
    u8, notes = read_image_files(paths, model.config.in_channels, (size, size))
    for note in notes:
        print(f"note: {note} (as the model's training data)", file=sys.stderr)
    device = next(model.parameters()).device
    return to_model_scale(u8.to(device), model.config.arch)


def cmd_reconstruct(ns: argparse.Namespace) -> None:
    from .viz import image_rows

    model, _ = _load(ns.run)
    x = _read_images(model, ns.images)
    with torch.no_grad():
        _, y = model(x)
    arch = model.config.arch
    orig, rec = to_unit_scale(x, arch), to_unit_scale(y, arch)
    scores = psnr_per_image(rec, orig)
    image_rows([("original", orig), ("reconstruction", rec)], ns.out)
    for path, score in zip(ns.images, scores.tolist(), strict=True):
        print(f"{path}: PSNR {score:.2f} dB")
    print(f"wrote {ns.out}")


def _out_name(out: Path, path: str, tag: str, used: set[str]) -> Path:
    name, i = f"{Path(path).stem}_{tag}.png", 1
    while name in used:
        i += 1
        name = f"{Path(path).stem}-{i}_{tag}.png"
    used.add(name)
    return out / name


def cmd_denoise(ns: argparse.Namespace) -> None:
    from .viz import save_image

    noise = parse_noise(ns.add_noise)
    if ns.add_noise and noise is None:
        raise AekitError("--add-noise needs KIND:AMOUNT, e.g. gaussian:0.2")
    model, _ = _load(ns.run)
    arch = model.config.arch
    x = _read_images(model, ns.images)
    noisy = x
    if noise:
        gen = torch.Generator(x.device).manual_seed(ns.seed)
        noisy = corrupt(x, noise, model.value_range, gen)
    with torch.no_grad():
        _, y = model(noisy)
    out, used = Path(ns.out), set()
    clean, noisy01, den01 = (
        to_unit_scale(x, arch),
        to_unit_scale(noisy, arch),
        to_unit_scale(y, arch),
    )
    before, after = psnr_per_image(noisy01, clean), psnr_per_image(den01, clean)
    for i, path in enumerate(ns.images):
        written = save_image(den01[i], _out_name(out, path, "denoised", used))
        line = f"{path} -> {written}"
        if noise:
            noisy_path = save_image(noisy01[i], _out_name(out, path, "noisy", used))
            line += f" (noisy copy {noisy_path}): PSNR {before[i]:.2f} dB -> {after[i]:.2f} dB"
        print(line)
    if noise:
        print(f"mean PSNR: noisy {before.mean():.2f} dB, denoised {after.mean():.2f} dB")


def cmd_demo(ns: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(Path(ns.out))

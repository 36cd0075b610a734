"""The commands that use a trained run: ``aekit eval``, ``reconstruct`` and ``denoise``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from ..data.images import add_max_pixels_flag
from ..errors import AekitError
from ..metrics import psnr_per_image
from ..models import Autoencoder
from ..objectives import parse_noise
from .args import data_flags, out_dir, out_path, out_png, positive_int, seed


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("eval", help="reconstruction quality of a run on a dataset split")
    p.add_argument("run")
    data_flags(p)
    p.add_argument(
        "--split",
        default=None,
        help="split to score (default: the images the run held out while training)",
    )
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("reconstruct", help="reconstruct image files; writes a comparison grid")
    p.add_argument("run")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, type=out_path, help="PNG to write")
    add_max_pixels_flag(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("denoise", help="clean image files with a (denoising) run")
    p.add_argument("run")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, type=out_path, help="folder for the cleaned images")
    add_max_pixels_flag(p)
    p.add_argument(
        "--add-noise",
        default=None,
        metavar="KIND:AMOUNT",
        help="corrupt the images first (e.g. gaussian:25, sigma in pixel units) and report PSNR",
    )
    p.add_argument("--seed", type=seed, default=0, help="seed of the added noise")
    p.set_defaults(func=cmd_denoise)


def _load(run: str) -> tuple[Autoencoder, object]:
    from ..devices import pick_device
    from ..runs import load, load_config

    cfg = load_config(run)
    return load(run, device=pick_device("auto")), cfg


def cmd_eval(ns: argparse.Namespace) -> None:
    from ..api import evaluate

    source = getattr(ns, "source", None)
    out = evaluate(ns.run, data=source, split=ns.split, data_dir=ns.data_dir,
                   image_size=ns.image_size, limit=ns.limit)  # fmt: skip
    if ns.json:
        print(json.dumps(out))
    else:
        vae = "".join(f", {k} {out[k]:.1f} nats" for k in ("kl", "nelbo") if k in out)
        print(f"{out['source']} [{out['split']}], {out['count']} images: MSE {out['mse']:.5f}, "
              f"PSNR {out['psnr']:.2f} dB, SSIM {out['ssim']:.4f}{vae}")  # fmt: skip


def _read_images(model: Autoencoder, paths: list[str]) -> torch.Tensor:
    """Image files as uint8 (B, C, H, W), converted as the training data was (and said so)."""
    from ..data import read_image_files

    size = model.config.image_size
    u8, notes = read_image_files(paths, model.config.in_channels, (size, size))
    for note in notes:
        print(f"note: {note} (as the model's training data)", file=sys.stderr)
    return u8


def cmd_reconstruct(ns: argparse.Namespace) -> None:
    from ..api import reconstruct
    from ..viz import image_rows

    out_png(ns.out)
    model, _ = _load(ns.run)
    u8 = _read_images(model, ns.images)
    rec = reconstruct(model, u8).cpu()
    orig = u8.float() / 255
    image_rows([("original", orig), ("reconstruction", rec)], ns.out)
    for path, score in zip(ns.images, psnr_per_image(rec, orig).tolist(), strict=True):
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
    from ..api import denoise
    from ..viz import save_image

    out, used = out_dir(ns.out), set()
    parse_noise(ns.add_noise, "--add-noise")  # a bad spec is refused before the model loads
    names = [(_out_name(out, path, "denoised", used),
              _out_name(out, path, "noisy", used) if ns.add_noise else None)
             for path in ns.images]  # fmt: skip
    for name in (n for pair in names for n in pair if n is not None):
        if name.is_dir():
            raise AekitError(
                f"{name} is a folder, so the picture cannot be written: choose another --out"
            )
    model, _ = _load(ns.run)
    u8 = _read_images(model, ns.images)
    noisy, den = (t.cpu() for t in denoise(model, u8, ns.add_noise, seed=ns.seed))
    clean = u8.float() / 255
    before, after = psnr_per_image(noisy, clean), psnr_per_image(den, clean)
    for i, (path, (den_name, noisy_name)) in enumerate(zip(ns.images, names, strict=True)):
        line = f"{path} -> {save_image(den[i], den_name)}"
        if noisy_name is not None:
            noisy_path = save_image(noisy[i], noisy_name)
            line += f" (noisy copy {noisy_path}): PSNR {before[i]:.2f} dB -> {after[i]:.2f} dB"
        print(line)
    if ns.add_noise:
        print(f"mean PSNR: noisy {before.mean():.2f} dB, denoised {after.mean():.2f} dB")

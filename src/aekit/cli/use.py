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
from ..fullsize import DEFAULT_TILE
from ..metrics import psnr_per_image
from ..models import Autoencoder, get_family
from ..objectives import parse_noise
from .args import bounded_int, data_flags, out_dir, out_path, out_png, positive_int, seed


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
    p.add_argument("--noise", default=None, metavar="KIND:AMOUNT",
                   help="score denoising of this noise (default: the run's own)")  # fmt: skip
    p.add_argument(
        "--full-size",
        action="store_true",
        help="denoise each photo at its own size (a fully convolutional run) and report noisy "
        "and denoised PSNR and SSIM on the 0-255 scale",
    )
    p.add_argument("--per-image", action="store_true", help="with --full-size: each photo too")
    p.add_argument("--seed", type=seed, default=0, help="seed of the noise (photo i: SEED + i)")
    p.add_argument(
        "--tile",
        type=bounded_int(64, 65_536),
        default=DEFAULT_TILE,
        metavar="PIXELS",
        help=f"with --full-size: tile side for large photos (default {DEFAULT_TILE})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast where the CPU or GPU runs bf16 natively (--no-amp: "
                   "float32 everywhere)")  # fmt: skip
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
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the added noise (image i of the list gets SEED + i)")  # fmt: skip
    p.add_argument(
        "--tile",
        type=bounded_int(64, 65_536),
        default=DEFAULT_TILE,
        metavar="PIXELS",
        help=f"process larger images in exact overlapping tiles of at most this side, to bound "
        f"memory (default {DEFAULT_TILE})",
    )
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast where the CPU or GPU runs bf16 natively (--no-amp: "
                   "float32 everywhere)")  # fmt: skip
    p.set_defaults(func=cmd_denoise)


def _load(run: str) -> tuple[Autoencoder, object]:
    from ..devices import pick_device
    from ..runs import load, load_config

    cfg = load_config(run)
    return load(run, device=pick_device("auto")), cfg


def cmd_eval(ns: argparse.Namespace) -> None:
    from ..api import evaluate

    source = getattr(ns, "source", None)
    if ns.full_size and ns.image_size is not None:
        raise AekitError("--full-size scores photos at their own size: drop --image-size")
    out = evaluate(ns.run, data=source, split=ns.split, data_dir=ns.data_dir,
                   image_size=ns.image_size, limit=ns.limit, noise=ns.noise,
                   full_size=ns.full_size, per_image=ns.per_image, seed=ns.seed,
                   tile=ns.tile, amp=ns.amp)  # fmt: skip
    if ns.json:
        print(json.dumps(out))
    elif ns.full_size:
        for row in out.get("images", []):
            print(f"{row['path']} ({row['width']}x{row['height']}): PSNR {row['noisy_psnr']:.2f}"
                  f" -> {row['denoised_psnr']:.2f} dB, SSIM {row['noisy_ssim']:.4f} -> "
                  f"{row['denoised_ssim']:.4f}")  # fmt: skip
        print(f"{out['source']} [{out['split']}], {out['count']} photos at full size, "
              f"{out['noise']}: PSNR {out['noisy_psnr']:.2f} -> {out['denoised_psnr']:.2f} dB, "
              f"SSIM {out['noisy_ssim']:.4f} -> {out['denoised_ssim']:.4f}, "
              f"{out['seconds_per_image']:.2f} s/photo")  # fmt: skip
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
    if get_family(model.config.arch).any_size:
        orig, rec = _reconstruct_own_sizes(model, ns.images)
    else:
        u8 = _read_images(model, ns.images)
        orig, rec = list(u8.float() / 255), list(reconstruct(model, u8).cpu())
    image_rows([("original", orig), ("reconstruction", rec)], ns.out)
    for path, a, b in zip(ns.images, orig, rec, strict=True):
        print(f"{path}: PSNR {float(psnr_per_image(b[None], a[None])[0]):.2f} dB")
    print(f"wrote {ns.out}")


def _reconstruct_own_sizes(
    model: Autoencoder, paths: list[str]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A fully convolutional run's originals and reconstructions, [0, 1] (C, H, W), each at its
    file's own size (as ``denoise`` keeps it); large ones in exact tiles, to bound memory."""
    from ..data.images import read_image_file
    from ..fullsize import denoise_image

    _check_headers(model, paths)
    orig = []
    for path in paths:
        u8, notes = read_image_file(path, model.config.in_channels)
        for note in notes:
            print(f"note: {note} (as the model's training data)", file=sys.stderr)
        orig.append(u8.float() / 255)
    # float32, as the fixed-size families' reconstruction is
    return orig, [denoise_image(model, x, DEFAULT_TILE, amp=False) for x in orig]


def _out_name(out: Path, path: str, tag: str, used: set[str]) -> Path:
    name, i = f"{Path(path).stem}_{tag}.png", 1
    while name in used:
        i += 1
        name = f"{Path(path).stem}-{i}_{tag}.png"
    used.add(name)
    return out / name


def cmd_denoise(ns: argparse.Namespace) -> None:
    from tqdm import tqdm

    from ..api import denoise_photo
    from ..data.images import GRAY_MODES, peek, read_image_file
    from ..fullsize import check_full_size, check_tile, matching_channels, to_uint8
    from ..viz import save_image

    out, used = out_dir(ns.out), set()
    noise = parse_noise(ns.add_noise, "--add-noise")  # a bad spec is refused before the model loads
    names = [(_out_name(out, path, "denoised", used),
              _out_name(out, path, "noisy", used) if noise else None)
             for path in ns.images]  # fmt: skip
    for name in (n for pair in names for n in pair if n is not None):
        if name.is_dir():
            raise AekitError(
                f"{name} is a folder, so the picture cannot be written: choose another --out"
            )
    model, _ = _load(ns.run)
    check_tile(model, ns.tile)
    _check_headers(model, ns.images)  # every file, before any output is written
    before, after = [], []
    bar = tqdm(ns.images, unit="photo", desc="denoise", disable=None, leave=False)
    for i, (path, (den_name, noisy_name)) in enumerate(zip(bar, names, strict=False)):
        u8, notes = read_image_file(path, model.config.in_channels)
        for note in notes:
            tqdm.write(f"note: {note} (as the model's training data)", file=sys.stderr)
        if not get_family(model.config.arch).any_size and u8.shape[1:] != _side(model):
            check_full_size(model, f", and {path} is {u8.shape[2]}x{u8.shape[1]}")
        noisy, den = denoise_photo(model, u8, ns.add_noise, ns.seed + i, ns.tile, ns.amp)
        out8 = to_uint8(den)
        if peek(Path(path))[0] in GRAY_MODES:  # a gray photo through a colour model: gray again
            out8 = matching_channels(out8, 1)
        line = f"{path} -> {save_image(out8, den_name)}"
        if noisy_name is not None:
            clean = u8.float() / 255
            before.append(float(psnr_per_image(noisy[None], clean[None])))
            after.append(float(psnr_per_image(to_uint8(den)[None].float() / 255, clean[None])))
            noisy_path = save_image(to_uint8(noisy), noisy_name)
            line += f" (noisy copy {noisy_path}): PSNR {before[-1]:.2f} dB -> {after[-1]:.2f} dB"
        tqdm.write(line)
    if noise:
        mean = sum(before) / len(before), sum(after) / len(after)
        print(f"mean PSNR: noisy {mean[0]:.2f} dB, denoised {mean[1]:.2f} dB")


def _side(model: Autoencoder) -> tuple[int, int]:
    return model.config.image_size, model.config.image_size


def _check_headers(model: Autoencoder, paths: list[str]) -> None:
    """Refuse, before any work, a missing or unreadable file, one over the pixel limit, and
    one smaller than the model's stride (read from the headers only)."""
    from ..data.images import image_size

    least = getattr(model, "stride", 1)
    for path in map(Path, paths):
        w, h = image_size(path)
        if min(w, h) < least:
            raise AekitError(
                f"{path} is {w}x{h} pixels: this model needs images of at least {least}x{least}"
            )

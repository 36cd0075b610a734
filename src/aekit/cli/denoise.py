"""``aekit denoise``: clean image files with a (denoising) run, each at its own size."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..data.images import add_max_pixels_flag
from ..denoising.fullsize import DEFAULT_TILE
from ..errors import AekitError
from ..metrics import psnr_per_image
from ..models import Autoencoder, get_family
from ..training.objectives import parse_noise
from .args import bounded_int, out_dir, out_path, seed
from .inputs import check_headers, load_run


def add_parsers(sub: Any) -> None:
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


def _out_name(out: Path, path: str, tag: str, used: set[str]) -> Path:
    name, i = f"{Path(path).stem}_{tag}.png", 1
    while name in used:
        i += 1
        name = f"{Path(path).stem}-{i}_{tag}.png"
    used.add(name)
    return out / name


def cmd_denoise(ns: argparse.Namespace) -> None:
    from tqdm import tqdm

    from ..data.images import GRAY_MODES, peek, read_image_file
    from ..denoising.apply import denoise_photo
    from ..denoising.fullsize import check_full_size, check_tile, matching_channels, to_uint8
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
    model, _ = load_run(ns.run)
    check_tile(model, ns.tile)
    check_headers(model, ns.images)  # every file, before any output is written
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

"""``aekit denoise``: clean image files, each at its own size, with a trained run or, with no run,
the built-in denoiser of each photo's mode (``aekit.models.pretrained``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..data.images import IMAGE_EXTENSIONS, add_max_pixels_flag
from ..denoising.fullsize import DEFAULT_TILE
from ..errors import AekitError
from ..metrics import psnr_per_image
from ..models import Autoencoder, get_family
from ..training.objectives import parse_noise
from .args import bounded_int, out_dir, out_path, seed
from .inputs import check_headers, load_run


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "denoise",
        help="clean image files with a trained run, or with aekit's built-in denoisers",
        description="aekit denoise [RUN] PHOTO ... --out DIR: with a run folder first, its model "
        "cleans the photos; without one, the built-in denoiser of each photo's mode (gray or "
        "colour), or the one --model names.",
    )
    p.add_argument("paths", nargs="*", metavar="[RUN] PHOTO",
                   help="a trained run folder (optional), then the photos")  # fmt: skip
    p.add_argument("--out", type=out_path, default=None, help="folder for the cleaned images")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="a built-in model for every photo (aekit denoise --list)")  # fmt: skip
    p.add_argument("--list", action="store_true", help="name the built-in models and stop")
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
    p.add_argument("--tta", action="store_true",
                   help="the mean over each photo's 8 rotations and reflections: a little "
                   "cleaner, 8x the time")  # fmt: skip
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

    from ..data.images import image_size, read_image_file
    from ..denoising.fullsize import (
        add_noise,
        check_full_size,
        denoise_image,
        matching_channels,
        to_uint8,
    )
    from ..models.tiles import check_tile
    from ..viz import save_image

    if ns.list:
        if ns.paths or ns.model or ns.out:
            raise AekitError("--list names the built-in models and stops: drop the photos, "
                             "--model and --out, or drop --list")  # fmt: skip
        _print_builtin()
        return
    run, photos = _run_and_photos(ns)
    out, used = out_dir(ns.out), set()
    noise = parse_noise(ns.add_noise, "--add-noise")  # a bad spec is refused before the model loads
    names = [(_out_name(out, path, "denoised", used),
              _out_name(out, path, "noisy", used) if noise else None)
             for path in photos]  # fmt: skip
    for name in (n for pair in names for n in pair if n is not None):
        if name.is_dir():
            raise AekitError(
                f"{name} is a folder, so the picture cannot be written: choose another --out"
            )
    models, chosen = _models(run, ns.model, photos)  # every header read, before any output
    for model in {id(m): m for m in models}.values():
        mine = [p for p, m in zip(photos, models, strict=True) if m is model]
        check_headers(model, mine)
        check_tile(model, ns.tile, max(max(image_size(Path(p))) for p in mine))
    gray = [_is_gray(p) for p in photos]
    for path, model, is_gray in zip(photos, models, gray, strict=True):  # decoded once in full
        _, _ = read_image_file(path, 1 if is_gray else model.config.in_channels)  # before output
    for line in chosen:
        print(line, file=sys.stderr)
    before, after = [], []
    bar = tqdm(photos, unit="photo", desc="denoise", disable=None, leave=False)
    for i, (path, (den_name, noisy_name)) in enumerate(zip(bar, names, strict=False)):
        model = models[i]
        # a gray photo stays gray: noise is added to it, and a colour model sees it repeated
        u8, notes = read_image_file(path, 1 if gray[i] else model.config.in_channels)
        if gray[i] and model.config.in_channels == 3:
            notes.append(f"{path} is gray: the colour model sees it as RGB, and it is saved gray")
        for note in notes:
            said = " (as the model's training data)" if note.startswith("converted") else ""
            tqdm.write(f"note: {note}{said}", file=sys.stderr)
        if not get_family(model.config.arch).any_size and u8.shape[1:] != _side(model):
            check_full_size(model, f", and {path} is {u8.shape[2]}x{u8.shape[1]}")
        spec = parse_noise(ns.add_noise, "--add-noise")
        noisy = add_noise(u8, spec, ns.seed + i) if spec else u8.float() / 255
        seen = noisy.expand(model.config.in_channels, -1, -1) if gray[i] else noisy
        den = denoise_image(model, seen, ns.tile, ns.amp, ns.tta)
        out8 = matching_channels(to_uint8(den), u8.shape[0])  # a colour model's output of gray
        line = f"{path} -> {save_image(out8, den_name)}"
        if noisy_name is not None:
            clean = u8.float() / 255
            before.append(float(psnr_per_image(noisy[None], clean[None])))
            after.append(float(psnr_per_image(out8[None].float() / 255, clean[None])))
            noisy_path = save_image(to_uint8(noisy), noisy_name)
            line += f" (noisy copy {noisy_path}): PSNR {before[-1]:.2f} dB -> {after[-1]:.2f} dB"
        tqdm.write(line)
    if noise:
        mean = sum(before) / len(before), sum(after) / len(after)
        print(f"mean PSNR: noisy {mean[0]:.2f} dB, denoised {mean[1]:.2f} dB")


def _is_gray(path: str) -> bool:
    """Whether a photo's header says gray (an unreadable one: no, and its full read says why)."""
    from ..data.images import GRAY_MODES, UNREADABLE, peek

    try:
        return peek(Path(path))[0] in GRAY_MODES
    except UNREADABLE:
        return False


def _side(model: Autoencoder) -> tuple[int, int]:
    return model.config.image_size, model.config.image_size


def _run_and_photos(ns: argparse.Namespace) -> tuple[str | None, list[str]]:
    """(the run folder or None, the photos) of the positional paths: the first is a run when it
    is a folder, or when it is not there and does not look like an image (said as a missing run)."""
    if not ns.paths:
        raise AekitError("name the photos to denoise: aekit denoise [RUN] PHOTO ... --out DIR")
    if ns.out is None:
        raise AekitError("--out DIR is needed: the folder for the cleaned photos")
    first = Path(ns.paths[0])
    looks_like_run = first.is_dir() or (
        not first.exists() and first.suffix.lower() not in IMAGE_EXTENSIONS and len(ns.paths) > 1
    )
    if not looks_like_run:
        return None, list(ns.paths)
    if ns.model is not None:
        raise AekitError(f"{first} is a run and --model names a built-in model: pass one of them")
    if len(ns.paths) == 1:
        raise AekitError(f"name the photos for {first} to denoise: aekit denoise RUN PHOTO ...")
    return str(first), list(ns.paths[1:])


def _models(
    run: str | None, name: str | None, photos: list[str]
) -> tuple[list[Autoencoder], list[str]]:
    """The model for each photo: the run's, the built-in one ``name``s, or the built-in denoiser
    of the photo's mode (gray or colour, read from its header); and the lines that say which
    built-in models were chosen."""
    from ..denoising.apply import builtin_for
    from ..models import pretrained

    if run is not None:
        model, _ = load_run(run)
        return [model] * len(photos), []
    if name is not None:
        return [_builtin(pretrained.get(name).name)] * len(photos), []
    loaded: dict[str, Autoencoder] = {}
    out, said = [], []
    for path in photos:
        channels, jpeg = 1 if _is_gray(path) else 3, _is_jpeg(path)
        name = pretrained.default_for(channels, jpeg=jpeg).name
        if name not in loaded:
            loaded[name], _ = builtin_for(channels, jpeg)
            what = " (trained on noisy JPEG files)" if pretrained.get(name).default_for_jpeg else ""
            said.append(f"denoising with aekit's built-in {name}{what} (--model NAME picks "
                        "another; aekit denoise --list)")  # fmt: skip
        out.append(loaded[name])
    return out, said


def _is_jpeg(path: str) -> bool:
    """Whether a photo is a JPEG file, by its header (its noise is then JPEG's: 4:2:0 colour,
    8x8 blocks)."""
    from ..data.images import UNREADABLE, open_image

    try:
        with open_image(Path(path), path) as img:
            return img.format == "JPEG"
    except UNREADABLE:
        return False


def _print_builtin() -> None:
    from ..models import pretrained

    models = pretrained.available()
    if not models:
        print("this installation has no built-in models")
    for entry in models.values():
        print(entry.describe())


def _builtin(name: str) -> Autoencoder:
    from ..devices import pick_device
    from ..models.pretrained import PREFIX
    from ..training.runs import load

    return load(PREFIX + name, device=pick_device("auto"))

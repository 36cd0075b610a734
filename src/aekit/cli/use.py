"""The commands that use a trained run: ``aekit eval`` and ``reconstruct`` (``denoise`` is
:mod:`aekit.cli.denoise`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch

from ..data.images import add_max_pixels_flag
from ..denoising.fullsize import DEFAULT_TILE
from ..errors import AekitError
from ..metrics import psnr_per_image
from ..models import Autoencoder, get_family
from .args import bounded_int, data_flags, out_path, out_png, positive_int, seed
from .inputs import check_headers, load_run, read_images


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
    p.add_argument("--clean", default=None, metavar="DIR",
                   help="with --full-size: score the photos as they are (noisy files) against "
                   "the clean references of the same names in DIR")  # fmt: skip
    p.add_argument("--tta", action="store_true",
                   help="with --full-size: denoise each photo as the mean over its 8 rotations "
                   "and reflections (8x the time)")  # fmt: skip
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


def cmd_eval(ns: argparse.Namespace) -> None:
    from ..api import evaluate

    source = getattr(ns, "source", None)
    if ns.full_size and ns.image_size is not None:
        raise AekitError("--full-size scores photos at their own size: drop --image-size")
    out = evaluate(ns.run, data=source, split=ns.split, data_dir=ns.data_dir,
                   image_size=ns.image_size, limit=ns.limit, noise=ns.noise,
                   full_size=ns.full_size, per_image=ns.per_image, seed=ns.seed,
                   tile=ns.tile, amp=ns.amp, tta=ns.tta, clean=ns.clean)  # fmt: skip
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


def cmd_reconstruct(ns: argparse.Namespace) -> None:
    from ..api import reconstruct
    from ..viz import image_rows

    out_png(ns.out)
    model, _ = load_run(ns.run)
    if get_family(model.config.arch).any_size:
        orig, rec = _reconstruct_own_sizes(model, ns.images)
    else:
        u8 = read_images(model, ns.images)
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
    from ..denoising.fullsize import denoise_image

    check_headers(model, paths)
    orig = []
    for path in paths:
        u8, notes = read_image_file(path, model.config.in_channels)
        for note in notes:
            print(f"note: {note} (as the model's training data)", file=sys.stderr)
        orig.append(u8.float() / 255)
    # float32, as the fixed-size families' reconstruction is
    return orig, [denoise_image(model, x, DEFAULT_TILE, amp=False) for x in orig]

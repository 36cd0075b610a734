"""The commands that decode codes no image gave: ``aekit generate`` (a vae's prior) and
``aekit interpolate`` (the path between two images' codes)."""

from __future__ import annotations

import argparse
from typing import Any

from ..data.images import add_max_pixels_flag
from ..explore.generate import MAX_SAMPLES, MAX_STEPS, MAX_TEMPERATURE
from .args import bounded_float, bounded_int, out_path, out_png, seed
from .inputs import load_run, read_images


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("generate", help="sample new images from a vae run's prior")
    p.add_argument("run")
    p.add_argument("--n", type=bounded_int(1, MAX_SAMPLES), default=64, help="images to draw")
    p.add_argument("--seed", type=seed, default=0, help="seed of the draws")
    p.add_argument("--temperature", type=bounded_float(MAX_TEMPERATURE), default=1.0,
                   help="the prior's standard deviation (below 1: plainer samples)")  # fmt: skip
    p.add_argument("--cols", type=bounded_int(1, 64), default=8, help="images per row")
    p.add_argument("--out", required=True, type=out_path, help="PNG to write (a grid)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("interpolate", help="decode the path between two images' codes")
    p.add_argument("run")
    p.add_argument("image_a", metavar="IMAGE_A")
    p.add_argument("image_b", metavar="IMAGE_B")
    p.add_argument("--steps", type=bounded_int(2, MAX_STEPS), default=8,
                   help="points decoded, the two ends included")  # fmt: skip
    p.add_argument("--out", required=True, type=out_path, help="PNG to write (a strip)")
    add_max_pixels_flag(p)
    p.set_defaults(func=cmd_interpolate)


def cmd_generate(ns: argparse.Namespace) -> None:
    from ..explore.generate import generate
    from ..viz import image_grid

    out_png(ns.out)
    model, _ = load_run(ns.run)
    images = generate(model, ns.n, seed=ns.seed, temperature=ns.temperature)
    title = f"{ns.n} samples of {ns.run} (seed {ns.seed}, temperature {ns.temperature:g})"
    print(f"wrote {image_grid(images, ns.out, cols=ns.cols, title=title)}")


def cmd_interpolate(ns: argparse.Namespace) -> None:
    from ..explore.generate import interpolate
    from ..viz import interpolation_strip

    out_png(ns.out)
    model, _ = load_run(ns.run)
    a, b = read_images(model, [ns.image_a, ns.image_b])
    path = interpolate(model, a, b, steps=ns.steps)
    print(f"wrote {interpolation_strip(a, b, path, ns.out)}")

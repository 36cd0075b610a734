"""The commands that look inside a trained model (``aekit.explore``): ``aekit generate`` (a
vae's prior sampled), ``aekit interpolate`` (the path between two images' codes) and ``aekit
units`` (what each unit of a code stands for)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..data.images import add_max_pixels_flag
from ..devices import DEVICES
from ..explore.generate import MAX_SAMPLES, MAX_STEPS, MAX_TEMPERATURE
from .args import bounded_float, bounded_int, out_path, out_png, positive_int, seed
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

    p = sub.add_parser("units", help="the most used units of a run's code and what they stand for")
    p.add_argument("run")
    p.add_argument("--data", dest="source", default=None,
                   help="images to score (default: those the run held out)")  # fmt: skip
    p.add_argument("--split", default=None, help="with --data: the split (default test)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images")
    p.add_argument("--top", type=positive_int, default=8, help="units to show (default 8)")
    p.add_argument("--images", type=positive_int, default=8,
                   help="images per unit, those that activate it most (default 8)")  # fmt: skip
    p.add_argument("--out", required=True, type=out_path, help="PNG to draw")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where the model runs (default auto: a GPU if any)")  # fmt: skip
    p.set_defaults(func=cmd_units)


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


def cmd_units(ns: argparse.Namespace) -> None:
    import torch

    from ..devices import pick_device
    from ..explore.units import unit_report
    from ..training.objectives import parse_sparsity
    from ..training.runs import load, load_config
    from ..training.splits import load_split_images
    from ..viz import image_rows

    out = out_png(ns.out)
    cfg = load_config(ns.run)
    model = load(ns.run, device=pick_device(ns.device))
    ds = load_split_images(ns.run, cfg, model, ns.source, ns.split)
    images = ds.images[: ns.limit] if ns.limit else ds.images
    found = unit_report(model, images, parse_sparsity(cfg.train.sparsity), ns.top, ns.images)
    rows = []
    for i, unit in enumerate(found.units):
        tops = images[torch.from_numpy(found.top[i])]
        shown = tops if found.alone is None else torch.cat([
            (found.alone[i : i + 1] * 255).round().to(torch.uint8), tops])  # fmt: skip
        rows.append((f"unit {unit}\nfires {found.fires[unit]:.0%}", shown))
    first = "" if found.alone is None else "first: the unit alone, decoded; then "
    title = (f"{ns.run} on {ds.source} [{ds.split}], {found.count:,} images: {first}the images "
             f"that activate each unit most; {found.dead} of {len(found.fires)} units never "
             "fire")  # fmt: skip
    image_rows(rows, out, title=title)
    mean_active = float(found.fires.sum())
    if ns.json:
        print(json.dumps({
            "count": found.count, "units": len(found.fires), "dead_units": found.dead,
            "active_per_image": mean_active, "picture": str(out),
            "top": [{"unit": u, "fires": float(found.fires[u]), "value": float(found.value[i]),
                     "images": found.top[i].tolist()} for i, u in enumerate(found.units)],
        }))  # fmt: skip
        return
    print(f"{found.count:,} images of {ds.source} [{ds.split}]: {len(found.fires)} units, "
          f"{found.dead} never fire, {mean_active:.1f} fire per image on average; the "
          f"{len(found.units)} most used drawn in {out}")  # fmt: skip

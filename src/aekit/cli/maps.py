"""The latent space, seen: ``aekit map`` (a store's vectors in 2-D, coloured by label:
``aekit.search.latent_map``) and ``aekit units`` (what each unit of a code stands for:
``aekit.explore.units``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..devices import DEVICES
from ..search.latent_map import DEFAULT_FIT, METHODS
from .args import out_path, out_png, positive_int, seed


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("map", help="a 2-D map of a store's vectors, coloured by label")
    p.add_argument("store", metavar="EMB")
    p.add_argument("--method", default="pca",
                   help=f"{', '.join(METHODS)} (default pca: fast; umap and tsne show "
                   "clusters better)")  # fmt: skip
    p.add_argument("--out", type=out_path, default=None, help="PNG to draw (default EMB/map.png)")
    p.add_argument("--thumbnails", type=int, default=0, metavar="N",
                   help="draw N stored images at their points (default 0)")  # fmt: skip
    p.add_argument("--fit", type=positive_int, default=DEFAULT_FIT, metavar="N",
                   help=f"fit on at most N vectors, drawn at random (default "
                   f"{DEFAULT_FIT:,})")  # fmt: skip
    p.add_argument("--seed", type=seed, default=0, help="seed of the sample and the method")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_map)

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


def cmd_map(ns: argparse.Namespace) -> None:
    from ..errors import AekitError
    from ..search.embed import Embeddings
    from ..search.latent_map import map_embeddings
    from ..search.stores import MAP
    from ..viz import latent_map

    store = Embeddings.load(ns.store)
    out = out_png(ns.out or Path(ns.store) / "map.png")
    if not 0 <= ns.thumbnails <= len(store):
        raise AekitError(
            f"--thumbnails {ns.thumbnails}: the store holds {len(store):,} images; draw "
            f"between 0 and {len(store):,}"
        )
    if ns.method not in METHODS:  # before any work
        raise AekitError(f"unknown --method {ns.method!r}: use one of {', '.join(METHODS)}")
    rows = np.random.default_rng(ns.seed).choice(len(store), size=ns.thumbnails, replace=False)
    thumbs = list(zip(rows.tolist(), store.images(rows), strict=True)) if len(rows) else []
    done = map_embeddings(store, ns.method, ns.fit, ns.seed)
    agree = ("" if done.agreement_full is None else
             f"; {done.k}-NN label agreement {done.agreement_full:.3f} in {store.dim}-d, "
             f"{done.agreement_map:.3f} on the map")  # fmt: skip
    title = f"{ns.store}: {len(store):,} vectors, {done.method}{agree}"
    latent_map(done.points, store.class_labels(), store.label_names(), out, title, thumbs)
    result = {"count": len(store), "method": done.method, "fitted_on": done.fitted_on,
              "map": str(Path(ns.store) / MAP), "picture": str(out),
              "knn_label_agreement": None if done.agreement_full is None else
              {"k": done.k, "full": done.agreement_full, "map": done.agreement_map}}  # fmt: skip
    if ns.json:
        print(json.dumps(result))
        return
    print(f"mapped {len(store):,} vectors of {store.dim}-d with {done.method} (fitted on "
          f"{done.fitted_on:,}): {result['map']}, picture {out}{agree}")  # fmt: skip


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

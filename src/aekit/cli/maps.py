"""``aekit map``: a store's vectors in 2-D, coloured by label (``aekit.search.latent_map``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

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

"""The commands of similarity search (``aekit.search``): ``aekit embed``, ``search``, ``index``,
``search-eval``."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import IMAGE_EXTENSIONS, add_max_pixels_flag
from ..errors import AekitError
from ..files import folder_lock
from ..search.embed import Embeddings, append, check_new_part, check_same_size, embed, model_hash
from ..search.knn import INDEX_KINDS, METRICS
from ..search.stores import INDEX, MANIFEST, read_manifest
from .args import image_side, out_dir, out_path, out_png, positive_int, seed


def add_parsers(sub: Any) -> None:
    """Register embed, search, index and search-eval on the ``aekit`` subparsers."""
    p = sub.add_parser("embed", help="encode a dataset into an embedding store")
    p.add_argument("run")
    p.add_argument("--data", dest="source", default=None, help="dataset (default: the run's)")
    p.add_argument("--split", default="test")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--image-size", type=image_side, default=None)
    p.add_argument("--out", required=True, type=out_path, help="store folder to write")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--append", action="store_true", help="add to a store of the same model")
    add_max_pixels_flag(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("search", help="nearest (or farthest) stored images of a query")
    p.add_argument("store", metavar="EMB")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--index", type=int, help="query by a stored item (itself excluded)")
    q.add_argument("--image", help="query by an image file (encoded with the store's run)")
    q.add_argument("--queries", help="a folder of images, or a text file of paths / indices")
    p.add_argument("--k", type=int, default=7)
    d = p.add_mutually_exclusive_group()
    d.add_argument("--farthest", action="store_true", help="bottom-k: the least similar")
    d.add_argument("--both", action="store_true", help="top-k and bottom-k")
    p.add_argument("--metric", choices=METRICS, default="l2")
    p.add_argument("--exact", action="store_true", help="exact search even with an index")
    p.add_argument("--out", type=out_path, help="PNG: the query and its results")
    p.add_argument("--json", action="store_true", help="one JSON line per query")
    add_max_pixels_flag(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("index", help="build a FAISS index for a large store")
    p.add_argument("store", metavar="EMB")
    p.add_argument("--kind", choices=INDEX_KINDS, default="flat")
    p.add_argument("--metric", choices=METRICS, default="l2")
    p.add_argument("--nlist", type=int, default=None, help="ivf: number of lists")
    p.add_argument("--nprobe", type=int, default=None, help="ivf: lists searched per query")
    p.add_argument("--m", type=int, default=32, help="hnsw: links per node")
    p.add_argument("--ef-search", type=int, default=None, help="hnsw: search breadth")
    p.add_argument("--ef-construction", type=int, default=None, help="hnsw: build breadth")
    p.add_argument("--k", type=int, default=10, help="k of the reported recall@k")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search-eval", help="retrieval quality vs pixel and PCA baselines")
    p.add_argument("store", metavar="EMB")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--queries", type=int, default=None, help="a random sample of N queries")
    p.add_argument("--baselines", default="pixels,pca")
    p.add_argument("--metric", choices=METRICS, default="l2")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--json", action="store_true")
    add_max_pixels_flag(p)
    p.set_defaults(func=cmd_search_eval)


def cmd_embed(ns: argparse.Namespace) -> None:
    """Under torchrun each process encodes its share; rank 0 alone holds the store and
    writes it."""
    from ..training.distributed import join

    out_dir(ns.out)
    group, device = join("auto")
    with contextlib.ExitStack() as held:
        error = None
        try:
            if group.main:  # read, encode, write: one writer
                held.enter_context(folder_lock(Path(ns.out), "an embedding store"))
            checked = _embed_inputs(ns, device)
        except AekitError as e:
            error = e
        group.agree(error)
        existing, model, ds, data_dir, size = checked
        store = embed(model, ds, ns.batch_size, run=ns.run, data_dir=data_dir, image_size=size,
                      group=group)  # fmt: skip
        error, count = None, len(store)
        try:
            if group.main:
                if existing is not None:
                    store = append(existing, store)
                store.save(ns.out)
                print(
                    f"embedded {count} images of {ds.source} [{ds.split}] into {ns.out} "
                    f"({len(store)} items, {store.dim}-d)"
                )
        except AekitError as e:
            error = e
        group.agree(error)  # the others end when the store is written


def _embed_inputs(ns: argparse.Namespace, device: Any) -> tuple:
    """(the store to append to or None, model, dataset, data_dir, image_size), all checked
    before the costly encoding."""
    from ..data import load_dataset
    from ..data.streamed import open_stream
    from ..training.runs import load, load_config

    if not ns.append and (Path(ns.out) / MANIFEST).exists():
        read_manifest(Path(ns.out))  # a damaged store says so (and how to start over)
        raise AekitError(
            f"{ns.out} already holds a store: pass --append to add to it, or choose another --out"
        )
    existing = Embeddings.load(ns.out) if ns.append else None
    cfg = load_config(ns.run)
    if existing is not None and existing.manifest.get("model_hash") != model_hash(ns.run):
        raise AekitError(
            f"cannot append: {ns.out} was made by another model "
            f"({existing.manifest.get('run')}); embed with that run or make a new "
            "store"
        )
    model = load(ns.run, device=device)
    data_dir = ns.data_dir or cfg.data.data_dir
    size = ns.image_size or cfg.data.image_size
    source = ns.source or cfg.data.source
    # a split too large to decode into memory is read in chunks as it is encoded
    ds = open_stream(source, ns.split, data_dir, size)
    if ds is None:
        ds = load_dataset(source, ns.split, data_dir=data_dir, image_size=size)
    if len(ds) == 0:
        raise AekitError(f"{ds.source} [{ds.split}] has no images to embed")
    if existing is not None:  # before the costly encoding
        part = {"source": ds.source, "split": ds.split, "data_dir": data_dir, "image_size": size}
        check_new_part(existing, part)
        check_same_size(existing, ds.shape)
    return existing, model, ds, data_dir, size


def _query_vectors(store: Embeddings, ns: argparse.Namespace) -> tuple[Any, list[dict]]:
    """(vectors (n, D), one description per query: its caption, picture, excluded index)."""
    if ns.index is not None:
        indices = [ns.index]
        files: list[str] = []
    elif ns.image:
        indices, files = [], [ns.image]
    else:
        indices, files = _read_queries(Path(ns.queries))
    for i in indices:
        if not 0 <= i < len(store):
            raise AekitError(
                f"stored item {i} is out of range: the store holds {len(store)} items "
                f"(0 to {len(store) - 1})"
            )
    queries = [{"index": i, "exclude": i, "caption": f"#{i} {store.caption(i)}"}
               for i in indices]  # fmt: skip
    vectors = [np.asarray(store.vectors[indices])] if indices else []
    if files:
        from ..search.embed import encode
        from ..training.runs import WEIGHTS, load
        from .inputs import read_images

        run, rel = store.manifest.get("run"), store.manifest.get("run_relative")
        if not run or not Path(run).is_dir():
            also = f" nor at {rel} from the store" if rel else ""
            raise AekitError(
                f"the store's run is gone (not at {run}{also}): image queries need the model "
                "that made the store; move it back, or embed again with a run you have"
            )
        if (Path(run) / WEIGHTS).is_file() and not store.made_by(run):
            raise AekitError(
                f"{run} holds other weights than the model that made the store (trained "
                "further?): embed again with it, so that queries and stored vectors agree"
            )
        model = load(run)
        u8 = read_images(model, files)
        vectors.append(encode(model, u8, progress=False))
        queries += [{"file": f, "exclude": -1, "caption": Path(f).name, "image": u8[j]}
                    for j, f in enumerate(files)]  # fmt: skip
    return np.concatenate(vectors), queries


def _read_queries(path: Path) -> tuple[list[int], list[str]]:
    """(stored indices, image paths) of a --queries folder or text file."""
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise AekitError(f"--queries {path} holds no image files")
        return [], files
    one_per_line = "a text file with one image path or stored index per line"
    if not path.is_file():
        raise AekitError(f"--queries {path} does not exist: give a folder of images or "
                         f"{one_per_line}")  # fmt: skip
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AekitError(
            f"--queries {path} is not a text file ({e}): give {one_per_line}"
        ) from None
    if "\x00" in text:
        raise AekitError(f"--queries {path} is not a text file (it holds NUL bytes): give "
                         f"{one_per_line}")  # fmt: skip
    indices, files = [], []
    for line in text.splitlines():
        line = line.strip()
        if re.fullmatch(r"-?[0-9]+", line):  # ASCII digits only: "²" is a digit to isdigit()
            indices.append(int(line))
        elif line:
            files.append(line)
    if not indices and not files:
        raise AekitError(f"--queries {path} holds no image paths or stored indices: give "
                         f"{one_per_line}")  # fmt: skip
    return indices, files


def cmd_search(ns: argparse.Namespace) -> None:
    if ns.out:
        out_png(ns.out)
    store = Embeddings.load(ns.store)
    if len(store) == 0:
        raise AekitError(f"{ns.store} is empty: embed some images into it first")
    vectors, queries = _query_vectors(store, ns)
    exclude = np.array([q["exclude"] for q in queries], dtype=np.int64)
    directions = [False, True] if ns.both else [ns.farthest]
    found = {f: store.search(vectors, ns.k, farthest=f, metric=ns.metric, exclude=exclude,
                             exact=ns.exact) for f in directions}  # fmt: skip
    if ns.out:  # first: a picture that cannot be drawn (its data changed) is refused before output
        _draw(
            store,
            queries[0],
            {f: found[f][1][0] for f in directions},
            {f: found[f][0][0] for f in directions},
            ns.out,
        )
    for qi, q in enumerate(queries):
        lists = {f: _results(store, *found[f], qi) for f in directions}
        if ns.json:
            doc: Any = ({"nearest": lists[False], "farthest": lists[True]} if ns.both
                        else lists[directions[0]])  # fmt: skip
            print(json.dumps(doc, allow_nan=False))
        else:
            for f, rows in lists.items():
                what = "farthest" if f else "nearest"
                shown = ", ".join(f"#{r['index']} {store.caption(r['index'])} "
                                  f"({r['distance']:.3f})" for r in rows)  # fmt: skip
                print(f"query {q['caption']}: {what} {ns.k}: {shown}")
    if ns.out:
        print(f"wrote {ns.out} (first query)")


def _results(store: Embeddings, dist: np.ndarray, idx: np.ndarray, qi: int) -> list[dict]:
    return [
        {
            "rank": r + 1,
            "index": int(i),
            "label": store.items[int(i)]["label"],
            "distance": float(d),
        }
        for r, (d, i) in enumerate(zip(dist[qi], idx[qi], strict=True))
    ]


def _draw(store: Embeddings, query: dict, idx: dict, dist: dict, out: str) -> None:
    from ..viz import search_grid

    image = query.get("image")
    if image is None:
        image = store.images([query["index"]])[0]
    rows = []
    for farthest, ids in idx.items():
        captions = [f"{store.caption(int(i))}\n{d:.3f}" for i, d in
                    zip(ids, dist[farthest], strict=True)]  # fmt: skip
        title = f"bottom-{len(ids)}" if farthest else f"top-{len(ids)}"
        rows.append((title, store.images(ids), captions))
    search_grid(image, query["caption"], rows, out)


def cmd_index(ns: argparse.Namespace) -> None:
    from ..search.indexing import index_store

    path = Path(ns.store)
    if not (path / MANIFEST).is_file():
        Embeddings.load(path)  # says what is missing, without creating the folder
    with folder_lock(path, "an embedding store"):
        info = index_store(path, ns.kind, ns.metric, ns.k, nlist=ns.nlist, nprobe=ns.nprobe,
                           m=ns.m, ef_search=ns.ef_search,
                           ef_construction=ns.ef_construction)  # fmt: skip
    k = info["k"]
    print(
        f"built a {ns.kind} index ({ns.metric}) of {info['count']} vectors in {path / INDEX}: "
        f"recall@{k} {info[f'recall@{k}']:.3f} against exact search on {info['queries']} stored "
        "queries"
    )


def cmd_search_eval(ns: argparse.Namespace) -> None:
    from ..search.retrieval import search_eval

    store = Embeddings.load(ns.store)
    labels = store.labels()
    baselines = tuple(b for b in ns.baselines.split(",") if b and b != "none")
    images = store.images(np.arange(len(store))) if baselines else None
    result = search_eval(np.asarray(store.vectors), images, labels, k=ns.k, queries=ns.queries,
                         baselines=baselines, metric=ns.metric, seed=ns.seed)  # fmt: skip
    if ns.json:
        print(json.dumps(result, allow_nan=False))
        return
    print(f"retrieval of {result['queries']} queries, k={result['k']} ({result['metric']}):")
    for name, r in result["results"].items():
        print(
            f"  {name:12s} precision@{result['k']} {r['precision']:.3f}  "
            f"mAP@{result['k']} {r['map']:.3f}"
        )

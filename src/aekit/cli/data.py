"""``aekit data describe`` and ``aekit data preview``: look at a dataset."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .args import Parser, data_flags, out_dir, out_path, out_png, positive_int


def add_parsers(sub: Any) -> None:
    data = sub.add_parser("data", help="look at datasets").add_subparsers(
        dest="data_command", required=True, parser_class=Parser
    )
    for name, helptext in (
        ("describe", "count, shape and classes of a split"),
        ("preview", "a labelled grid of sample images"),
    ):
        p = data.add_parser(name, help=helptext)
        p.add_argument("source", metavar="SOURCE")
        p.add_argument("--split", default="train")
        data_flags(p, source_flag=False)
        if name == "describe":
            p.add_argument("--json", action="store_true", help="print one JSON object")
        else:
            p.add_argument("--out", required=True, type=out_path, help="PNG to write")
            p.add_argument("--count", type=positive_int, default=32, help="number of images")
        p.set_defaults(func=cmd_data)
    p = data.add_parser("pack", help="write a source as WebDataset tar shards (read as wds:DIR)")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("--out", required=True, type=out_path, help="new folder for the shards")
    p.add_argument(
        "--shard-size",
        default="1GB",
        help="image bytes per shard: 1GB, 500MB, ... (tar headers add ~1 KB an image)",
    )
    p.add_argument("--split", action="append", dest="splits", default=None,
                   help="a split to pack (repeatable; default: every split)")  # fmt: skip
    data_flags(p, source_flag=False)
    p.set_defaults(func=cmd_pack)


def cmd_pack(ns: argparse.Namespace) -> None:
    from ..data.pack import pack, parse_size

    size = parse_size(ns.shard_size)
    out_dir(ns.out)  # a file, or a path through one: refused before any work
    info = pack(ns.source, ns.out, size, ns.splits, ns.data_dir, ns.image_size)
    for split, part in info["splits"].items():
        print(f"{split}: {sum(part['counts'])} images in {len(part['shards'])} shard(s)")
    print(f"wrote {ns.out} (train on it with --data wds:{ns.out})")


def cmd_data(ns: argparse.Namespace) -> None:
    from ..data import describe, load_dataset

    if ns.data_command == "preview":
        out_png(ns.out)
    ds = load_dataset(ns.source, ns.split, data_dir=ns.data_dir, image_size=ns.image_size)
    if ns.data_command == "describe":
        info = describe(ds)
        if ns.json:
            print(json.dumps(info))
        else:
            c, h, w = info["shape"]
            print(
                f"{info['source']} [{info['split']}]: {info['count']} images, {c}x{h}x{w}, "
                f"{len(info['classes'])} classes {', '.join(info['classes'][:12])}"
            )
        return
    from ..viz import labelled_grid

    n = min(ns.count, len(ds))
    captions = [caption(ds, i) for i in range(n)]
    labelled_grid(ds.images[:n], captions, ns.out, title=f"{ns.source} [{ns.split}]")
    print(f"wrote {n} {ns.split} images of {ns.source} to {ns.out}")


def caption(ds: object, i: int) -> str:
    """The class name(s) of image ``i`` (its index when unlabelled)."""
    labels, classes = ds.labels, ds.classes  # type: ignore[attr-defined]
    if labels is None:
        return f"#{i}"
    row = labels[i]
    if row.ndim == 0:
        k = int(row)
        return classes[k] if k < len(classes) else str(k)
    names = [classes[j] if j < len(classes) else str(j) for j in row.nonzero().flatten().tolist()]
    return "+".join(names) or "none"

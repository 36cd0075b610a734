"""The ``aekit`` command. Flags for configs are derived from the dataclasses in ``config``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import NoReturn

from . import __version__
from .cliargs import image_side, out_dir, out_path, out_png, positive_int, seed
from .config import (
    DEVICES,
    LOSSES,
    DataConfig,
    ModelConfig,
    TrainConfig,
    add_arguments,
    from_namespace,
)
from .data.images import add_max_pixels_flag, pixel_limit
from .errors import AekitError
from .models import list_models


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _data_flags(p: argparse.ArgumentParser, source_flag: bool = True) -> None:
    if source_flag:
        p.add_argument(
            "--data",
            dest="source",
            default=argparse.SUPPRESS,
            help="dataset (default: the run's own)",
        )
    p.add_argument(
        "--data-dir",
        default=None,
        help="dataset folder (default: $AEKIT_DATA, else ~/.cache/aekit)",
    )
    p.add_argument(
        "--image-size", type=image_side, default=None, help="resize folder images to this"
    )
    add_max_pixels_flag(p)


def build_parser() -> Parser:
    parser = Parser(
        prog="aekit", description="Image autoencoders: train, inspect, denoise, search."
    )
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train an autoencoder into a run folder")
    p.add_argument("--out", required=True, type=out_path, help="run folder to create (or continue)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    add_arguments(p, DataConfig)
    add_max_pixels_flag(p)
    add_arguments(p, ModelConfig, skip=("in_channels", "image_size", "topk"),
                  choices={"arch": list_models()})  # fmt: skip
    add_arguments(p, TrainConfig, choices={"loss": list(LOSSES), "device": list(DEVICES)})

    p = sub.add_parser("eval", help="reconstruction quality of a run on a dataset split")
    p.add_argument("run")
    _data_flags(p)
    p.add_argument(
        "--split",
        default=None,
        help="split to score (default: the images the run held out while training)",
    )
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("reconstruct", help="reconstruct image files; writes a comparison grid")
    p.add_argument("run")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, type=out_path, help="PNG to write")
    add_max_pixels_flag(p)

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
    p.add_argument("--seed", type=seed, default=0, help="seed of the added noise")

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
        _data_flags(p, source_flag=False)
        if name == "describe":
            p.add_argument("--json", action="store_true", help="print one JSON object")
        else:
            p.add_argument("--out", required=True, type=out_path, help="PNG to write")
            p.add_argument("--count", type=positive_int, default=32, help="number of images")

    from .search_cli import add_parsers

    add_parsers(sub)

    from .web import add_parser as add_serve_parser

    add_serve_parser(sub)

    p = sub.add_parser("demo", help="the offline demo: train, denoise, write a report")
    p.add_argument(
        "--out", default="aekit-demo", type=out_path, help="folder for everything it writes"
    )
    return parser


def cmd_train(ns: argparse.Namespace) -> None:
    from .runs import RunConfig, resume_config
    from .train import train

    if ns.resume:
        given = {f.name: getattr(ns, f.name) for c in CONFIGS for f in fields(c)
                 if hasattr(ns, f.name)}  # fmt: skip
        cfg = resume_config(ns.out, given)
    else:
        cfg = RunConfig(*(from_namespace(c, ns) for c in CONFIGS))
    out_dir(ns.out)
    run = train(cfg, ns.out, resume=ns.resume)
    _print_summary(run)


CONFIGS = (DataConfig, ModelConfig, TrainConfig)


def _print_summary(run: Path) -> None:
    from .runs import read_metrics

    last = read_metrics(run)[-1]
    extra = "".join(f", {k} {last[k]:.2f} dB" for k in ("noisy_psnr", "denoised_psnr") if k in last)
    print(
        f"trained {run}: epoch {last['epoch']}, held-out PSNR {last['test_psnr']:.2f} dB"
        f"{extra}, {last['images_per_s']:.0f} images/s"
    )
    print(
        f"  weights {run / 'model.safetensors'}, metrics {run / 'metrics.jsonl'}, "
        f"samples {run / 'samples'}, curves {run / 'loss.png'}"
    )


def cmd_data(ns: argparse.Namespace) -> None:
    from .data import describe, load_dataset

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
    from .viz import labelled_grid

    if ns.count < 1:
        raise AekitError("--count must be at least 1")
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


COMMANDS = {"train": cmd_train, "data": cmd_data}


def _command(name: str):
    if name in COMMANDS:
        return COMMANDS[name]
    from . import commands, search_cli, web

    fn = f"cmd_{name.replace('-', '_')}"
    return getattr(commands, fn, None) or getattr(search_cli, fn, None) or getattr(web, fn)


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        with pixel_limit(getattr(ns, "max_pixels", None)):
            _command(ns.command)(ns)
    except AekitError as e:
        print(f"aekit {ns.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"aekit {ns.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # the filesystem refused a path the user gave (full disk, no access...)
        where = f": {e.filename}" if e.filename else ""
        print(f"aekit {ns.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

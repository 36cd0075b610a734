"""``aekit demo``: the offline demo (train, denoise, search, write a report)."""

from __future__ import annotations

import argparse
from typing import Any

from .args import out_dir, out_path


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("demo", help="the offline demo: train, denoise, write a report")
    p.add_argument(
        "--out", default="aekit-demo", type=out_path, help="folder for everything it writes"
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(ns: argparse.Namespace) -> None:
    from ..demo import run_demo

    run_demo(out_dir(ns.out))

"""``aekit export``: a run as an ONNX model for onnxruntime (``aekit.export``)."""

from __future__ import annotations

import argparse
from typing import Any

from ..exporting.onnx import FORMATS, PARTS
from .args import out_path


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("export", help="write a run's model as ONNX, checked in onnxruntime")
    p.add_argument("run")
    p.add_argument("--format", default="onnx", help=f"one of {', '.join(FORMATS)} (default onnx)")
    p.add_argument("--out", required=True, type=out_path, help="the .onnx file to write")
    p.add_argument(
        "--part",
        default="full",
        help="full: images -> reconstruction and code; encoder: images -> code; decoder: "
        f"code -> images (one of {', '.join(PARTS)}; default full)",
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_export)


def cmd_export(ns: argparse.Namespace) -> None:
    from ..exporting.onnx import TOLERANCE, export

    done = export(ns.run, ns.out, part=ns.part, fmt=ns.format, force=ns.force)

    def shapes(named: dict) -> str:
        return ", ".join(f"{k} ({', '.join(map(str, v))})" for k, v in named.items())

    print(f"wrote {done.path}: {done.part}, {shapes(done.inputs)} -> {shapes(done.outputs)}; "
          f"onnxruntime matches aekit within {done.max_difference:.1g} (at most {TOLERANCE:g}) "
          f"on {done.checked_on}")  # fmt: skip

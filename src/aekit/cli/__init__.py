"""The ``aekit`` command: one module per command group, each registering its own parsers
(``add_parsers``) with the function that runs them. Flags and choices come from the dataclass
configs and module constants."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .. import __version__
from ..data.images import pixel_limit
from ..errors import AekitError
from ..training.distributed import (
    AgreedError,
    QuietExit,
    connected,
    exit_process,
    farewell,
    peer_detail,
    peer_failure,
    rank_prefix,
    stop_listening,
    timeout_s,
)
from . import anomaly, data, demo, denoise, explore, export, maps, search, serve, train, use
from .args import Parser

# in the order --help lists them
GROUPS = (train, use, denoise, anomaly, explore, export, data, search, maps, serve, demo)


def build_parser() -> Parser:
    parser = Parser(
        prog="aekit", description="Image autoencoders: train, inspect, denoise, search."
    )
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    name = " ".join(filter(None, (ns.command, getattr(ns, "data_command", None))))
    try:
        with pixel_limit(getattr(ns, "max_pixels", None)):
            ns.func(ns)
    except QuietExit as e:  # another process of a torchrun group says what went wrong
        farewell()
        return e.exit_code
    except AekitError as e:
        # before the group is joined every rank finds the same mistake: rank 0 says it
        if connected() or not rank_prefix():
            print(f"aekit {name}: error: {rank_prefix()}{e}", file=sys.stderr, flush=True)
        if isinstance(e, AgreedError):
            farewell()
        return e.exit_code
    except RuntimeError as e:
        if not peer_failure(e):
            raise  # a bug: its traceback
        print(
            f"aekit {name}: error: {rank_prefix()}another process of this torchrun group "
            f"stopped (or did not answer within {timeout_s():g} s: {peer_detail(e)}); start "
            "again (a training run continues from its last checkpoint with --resume)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"aekit {name}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # the filesystem refused a path the user gave (full disk, no access...)
        where = f": {e.filename}" if e.filename else ""
        print(f"aekit {name}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    finally:
        stop_listening()
    return 0


def run() -> None:
    """The ``aekit`` command (``python -m aekit``): :func:`main`, and its status as the
    process's exit status."""
    exit_process(main())

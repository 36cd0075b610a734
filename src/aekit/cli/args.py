"""Checks of command-line values shared by every ``aekit`` command, before any work is done:
argparse value types (a bad value is a one-line usage error naming its flag) and the output
paths a user names."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ..data.images import add_max_pixels_flag
from ..errors import AekitError
from ..options import MAX_SIDE, MIN_SIDE
from ..training.config import MAX_SEED

# argparse knows "-1" and "-.5" as numbers but takes "-inf", "-nan" or "-1e-3" for flags, so
# "--beta -inf" was "expected one argument": these are values (no aekit flag looks like one)
_NUMBER = re.compile(r"-(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?|inf(inity)?|nan)", re.I)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), not a usage dump; a command's
    positionals may come after its flags (``aekit score RUN --data X a.png``), and a flag it
    does not know is refused in its name (``aekit score: error: ...``)."""

    _intermixing = False

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # a group of commands (aekit, aekit data) hands the rest to a command's own parser;
        # parse_known_intermixed_args calls this again for each of its two passes
        if self._subparsers is not None or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            ns, extras = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras

    def _parse_optional(self, arg_string: str) -> Any:
        if _NUMBER.fullmatch(arg_string):
            return None  # a value, not a flag
        return super()._parse_optional(arg_string)


def out_path(text: str) -> str:
    """An output path: never empty (an empty path would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty path would write into the current folder: name a file or folder"
        )
    return text


def positive_int(text: str) -> int:
    """A count of at least 1 (--limit, --count, --batch-size, --k, ...)."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        value = _whole(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high:,}, got {value}")
        return value

    return parse


def bounded_float(high: float) -> Callable[[str], float]:
    """An argparse type: a number above 0 and at most ``high`` (--temperature)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not 0 < value <= high:
            raise argparse.ArgumentTypeError(f"must be above 0 and at most {high:g}, got {text}")
        return value

    return parse


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def seed(text: str) -> int:
    """A random seed, 0 to 2**63-1 (what torch.manual_seed takes)."""
    value = _whole(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is between 0 and 2**63-1, got {value}")
    return value


def image_side(text: str) -> int:
    """--image-size: the side of the square images are resized to."""
    value = _whole(text)
    if not MIN_SIDE <= value <= MAX_SIDE:
        raise argparse.ArgumentTypeError(
            f"an image side is from {MIN_SIDE} to {MAX_SIDE:,} pixels, got {value}"
        )
    return value


def port(text: str) -> int:
    """A TCP port, 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535, got {value}")
    return value


def out_dir(path: str | Path) -> Path:
    """An output folder the user named: refuse a file (or a path through one) before any work."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.is_symlink() and not p.exists():
            raise AekitError(
                f"--out {path}: {p} is a link to {os.readlink(p)}, which does not exist; create "
                "it, or choose another folder"
            )
        if p.exists():
            if not p.is_dir():
                raise AekitError(f"--out {path}: {p} is a file, not a folder; choose a folder")
            return path
    return path


def out_png(path: str | Path) -> Path:
    """An output picture the user named: a .png file path whose folder can exist."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise AekitError(f"--out {path}: pictures are written as PNG; give a path ending in .png")
    if path.is_dir():
        raise AekitError(f"--out {path} is a folder; give a file path ending in .png")
    out_dir(path.parent)
    return path


def data_flags(p: argparse.ArgumentParser, source_flag: bool = True) -> None:
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

"""argparse value types shared by every ``aekit`` command: a bad value is a one-line usage error
naming its flag (argparse adds the flag), before any work is done."""

from __future__ import annotations

import argparse


def out_path(text: str) -> str:
    """An output path: never empty (an empty path would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty path would write into the current folder: name a file or folder"
        )
    return text


def positive_int(text: str) -> int:
    """A count of at least 1 (--limit, --count, --batch-size, --k, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
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

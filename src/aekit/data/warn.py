"""One way to tell the user about something odd that is not an error: a line on stderr."""

from __future__ import annotations

import os
import sys


def warn(message: str) -> None:
    """Print ``aekit: warning: <message>`` on stderr (the CLI and tests both see it there).
    Under torchrun only rank 0 prints: every process reads the same data and finds the same."""
    if os.environ.get("RANK", "0").strip() not in ("", "0"):
        return
    print(f"aekit: warning: {message}", file=sys.stderr, flush=True)


def worth_saying(n: int, first: int = 5) -> bool:
    """Whether the ``n``-th of a run of like warnings is printed: the first few, then the
    10th, 100th, 1000th, ... (a damaged set would otherwise print a line per image)."""
    return n <= first or str(n).strip("0") == "1"

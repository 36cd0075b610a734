"""One way to tell the user about something odd that is not an error: a line on stderr."""

from __future__ import annotations

import sys


def warn(message: str) -> None:
    """Print ``aekit: warning: <message>`` on stderr (the CLI and tests both see it there)."""
    print(f"aekit: warning: {message}", file=sys.stderr, flush=True)

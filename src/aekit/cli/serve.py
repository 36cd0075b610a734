"""``aekit serve``: the web app. FastAPI and uvicorn are the optional ``web`` extra, so they are
imported only when the command runs."""

from __future__ import annotations

import argparse
import errno
import socket
from typing import Any

from ..errors import AekitError
from .args import port, positive_int


def add_parsers(sub: Any) -> None:
    """Register ``serve`` on the ``aekit`` subparsers."""
    from ..data.images import add_max_pixels_flag
    from ..web.uploads import MAX_UPLOAD_BYTES

    p = sub.add_parser("serve", help="a web app: reconstruct, denoise and search in a browser")
    p.add_argument("run", nargs="?", default=None,
                   help="a trained run folder, or builtin:NAME (default: the built-in colour "
                   "denoiser)")  # fmt: skip
    p.add_argument("--gallery", metavar="EMB", default=None, help="embedding store to search")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine)")
    p.add_argument("--port", type=port, default=8000)
    p.add_argument("--max-upload-bytes", type=positive_int, default=MAX_UPLOAD_BYTES)
    add_max_pixels_flag(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(ns: argparse.Namespace) -> None:
    try:
        import uvicorn

        from ..web.server import create_app
    except ImportError as e:
        raise AekitError(
            f"aekit serve needs the web extra ({e.name} is missing): pip install 'aekit[web]'"
        ) from e
    from ..data.images import max_pixels
    from ..models import pretrained

    if ns.run is None:  # a photo denoiser with no training at all
        ns.run = pretrained.PREFIX + pretrained.default_for(3).name
    app = create_app(ns.run, ns.gallery, ns.max_upload_bytes, max_pixels())  # --max-pixels
    check_address(ns.host, ns.port)
    print(f"serving {ns.run} on http://{ns.host}:{ns.port} (API docs at /docs)")
    uvicorn.run(app, host=ns.host, port=ns.port, log_level="warning")


def check_address(host: str, port: int) -> None:
    """Refuse an address the server could not listen on (an unknown host, a port in use): one
    line instead of uvicorn's log lines."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise AekitError(f"--host {host}: not an address of this machine ({e}); use "
                         "127.0.0.1, 0.0.0.0 or a name of this machine") from None  # fmt: skip
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as e:
            why = "already in use" if e.errno == errno.EADDRINUSE else e.strerror
            raise AekitError(
                f"cannot serve on {host}:{port}: {why}; pass another --port (or --host)"
            ) from None

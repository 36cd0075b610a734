"""Download and MD5-check dataset files.

A download streams to a temp file in the destination folder and is moved into place only once its
MD5 matches, so the final path never holds a half-written or wrong file. Files already in place are
hashed once; the result is remembered (by size and mtime) in a small JSON beside them.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import stat
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import AekitError
from .warn import warn

CHUNK = 1 << 20
TIMEOUT_S = 60
MARKER = ".aekit-md5.json"  # {file name: {"size", "mtime_ns", "md5"}} for files already hashed


def describe_file(dest: Path) -> str:
    """'mnist file t10k-images-idx3-ubyte.gz': the folder names the dataset."""
    return f"{dest.parent.name} file {dest.name}"


def fetch(urls: list[str], dest: Path, md5: str | None) -> Path:
    """Download the first reachable URL of ``urls`` (mirrors) to ``dest`` and return ``dest``.

    The bytes are checked against ``md5`` (skipped, with a warning, when None) before they reach
    ``dest``; a mismatch or a network failure raises AekitError and leaves nothing at ``dest``.
    """
    dest = Path(dest).absolute()
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    try:
        return _fetch(urls, dest, md5)
    except AekitError:
        for folder in created:  # deepest first: leave no empty folders behind a failure
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _fetch(urls: list[str], dest: Path, md5: str | None) -> Path:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AekitError(
            f"cannot create {dest.parent} to download into ({exc.strerror}): "
            f"choose a writable data folder with --data-dir or $AEKIT_DATA"
        ) from exc
    refusal: AekitError | None = None
    last_error = "no URL to try"
    for url in urls:
        try:
            actual = _download(url, dest, md5)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            last_error = str(getattr(exc, "reason", None) or exc)
            continue
        if md5 is None:
            warn(f"no known MD5 for {describe_file(dest)}: using it unverified")
            return dest
        if actual == md5:
            _remember(dest, actual)
            return dest
        # _download deleted the bad bytes; another mirror may still serve the right ones
        refusal = AekitError(
            f"refused {describe_file(dest)} downloaded from {url}: its MD5 is {actual}, "
            f"expected {md5}; nothing was saved at {dest}"
        )
    if refusal is not None:
        raise refusal
    raise AekitError(
        f"cannot download {describe_file(dest)} (no network?): download {urls[0] if urls else '?'} "
        f"and put it at {dest} (last error: {last_error})"
    )


def _download(url: str, dest: Path, md5: str | None) -> str:
    """Stream ``url`` to a temp file beside ``dest``; move it to ``dest`` only if its MD5 is
    ``md5`` (or ``md5`` is None). The temp file never outlives this call. Returns the MD5."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.md5()
    quiet = not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp,
            tqdm(
                total=resp.length, unit="B", unit_scale=True, desc=dest.name, disable=quiet
            ) as bar,
        ):
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if md5 is None or digest.hexdigest() == md5:
            os.replace(tmp, dest)
        return digest.hexdigest()
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def ensure_file(dest: Path, urls: list[str], md5: str | None, download: bool = True) -> Path:
    """Return ``dest`` once it holds the right bytes: verify it if present, else download it.

    With ``download=False`` a missing file is an AekitError saying where to put it.
    """
    dest = Path(dest).absolute()
    if dest.is_file():
        if md5 is None:
            warn(f"no known MD5 for {describe_file(dest)}: using {dest} unverified")
        else:
            verify_file(dest, md5, urls)
        return dest
    if not download:
        raise AekitError(
            f"{describe_file(dest)} is missing and downloads are off: download "
            f"{urls[0] if urls else '?'} and put it at {dest}"
        )
    return fetch(urls, dest, md5)


def verify_file(path: Path, md5: str, urls: list[str] | None = None) -> None:
    """Raise AekitError if ``path``'s MD5 is not ``md5`` (the file is left alone, but refused)."""
    actual = file_md5(path)
    if actual != md5:
        source = f" from {urls[0]}" if urls else ""
        raise AekitError(
            f"refused {path}: its MD5 is {actual}, expected {md5} (corrupt or a different "
            f"version); delete it to download it again, or replace it with the official file"
            f"{source}"
        )


def file_md5(path: Path) -> str:
    """MD5 of a file, reusing the remembered value while its size and mtime are unchanged."""
    path = Path(path)
    info = path.stat()
    entry = _read_marker(path.parent).get(path.name)
    if entry and entry.get("size") == info.st_size and entry.get("mtime_ns") == info.st_mtime_ns:
        return str(entry["md5"])
    digest = hashlib.md5()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    _remember(path, digest.hexdigest())
    return digest.hexdigest()


def _read_marker(folder: Path) -> dict:
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(path: Path, md5: str) -> None:
    """Record ``path``'s MD5; skipped where the folder is read-only (a shared data dir), judged by
    its mode bits too, since root could write there anyway."""
    if not path.parent.stat().st_mode & stat.S_IWUSR:
        return
    info = path.stat()
    data = _read_marker(path.parent)
    data[path.name] = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "md5": md5}
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{MARKER}.", suffix=".part")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; others sharing the folder may read it
        os.replace(tmp, path.parent / MARKER)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)

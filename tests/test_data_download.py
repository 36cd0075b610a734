"""Downloads over a local HTTP server: MD5 check, atomic placement, mirrors, error messages."""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from aekit.data import load_dataset
from aekit.data import registry as reg
from aekit.data.download import MARKER, fetch, file_md5
from aekit.errors import AekitError
from formats import md5, rand_uint8, write_mnist_split


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, folder it serves) for a local HTTP server."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()
    httpd.server_close()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.bin"


def _leftovers(folder: Path) -> list[str]:
    """Temp files left in ``folder`` (a folder that a failed download made is removed whole)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_good_download(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    payload = os.urandom(3_000_000)  # several chunks
    (root / "blob.bin").write_bytes(payload)
    dest = tmp_path / "data" / "set" / "blob.bin"
    assert fetch([base + "blob.bin"], dest, md5(root / "blob.bin")) == dest.absolute()
    assert dest.read_bytes() == payload and _leftovers(dest.parent) == []
    marker = json.loads((dest.parent / MARKER).read_text())
    assert marker["blob.bin"]["md5"] == md5(dest)  # verified once, remembered


def test_wrong_md5_is_refused_and_nothing_is_left(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    (root / "blob.bin").write_bytes(b"tampered")
    dest = tmp_path / "set" / "blob.bin"
    with pytest.raises(AekitError) as err:
        fetch([base + "blob.bin"], dest, "0" * 32)
    msg = str(err.value)
    assert "refused set file blob.bin" in msg and "0" * 32 in msg and md5(root / "blob.bin") in msg
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_mirrors_are_tried_in_order(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    (root / "b.bin").write_bytes(b"right bytes")
    dest = tmp_path / "set" / "b.bin"
    fetch([_closed_port_url(), base + "missing.bin", base + "b.bin"], dest, md5(root / "b.bin"))
    assert dest.read_bytes() == b"right bytes"


def test_unreachable_url_says_what_to_do(tmp_path: Path) -> None:
    url = _closed_port_url()
    dest = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    with pytest.raises(AekitError) as err:
        fetch([url], dest, "0" * 32)
    msg = str(err.value)
    assert msg.startswith("cannot download mnist file t10k-images-idx3-ubyte.gz (no network?)")
    assert f"download {url} and put it at {dest.absolute()}" in msg and "\n" not in msg
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_load_dataset_downloads_missing_split(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = server
    images, labels = rand_uint8((6, 28, 28)), np.arange(6) % 10
    served = write_mnist_split(root, "test", images, labels)
    monkeypatch.setattr(reg.MNIST, "base_urls", [_closed_port_url() + "/", base])
    for path in served:
        monkeypatch.setitem(reg.MNIST.md5, path.name, md5(path))
    data = tmp_path / "data"
    ds = load_dataset("mnist", "test", data_dir=data)
    assert np.array_equal(ds.images[:, 0].numpy(), images) and ds.labels.tolist() == list(labels)
    assert sorted(p.name for p in (data / "mnist").glob("*.gz")) == sorted(p.name for p in served)


def test_download_off_never_touches_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used with download=False")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(AekitError, match="missing and downloads are off: download https://"):
        load_dataset("mnist", "train", data_dir=tmp_path, download=False)


def test_existing_file_is_hashed_once(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    real = md5(path)
    assert file_md5(path) == real
    # a forged cache entry is believed while size and mtime match: proof the file is not re-read
    marker = tmp_path / MARKER
    entries = json.loads(marker.read_text())
    entries["f.bin"]["md5"] = "cached"
    marker.write_text(json.dumps(entries))
    assert file_md5(path) == "cached"
    path.write_bytes(b"abcd")  # changed size: hashed again
    assert file_md5(path) == md5(path)


def test_read_only_folder_still_verifies_and_stays_untouched(tmp_path: Path) -> None:
    path = tmp_path / "ro" / "f.bin"
    path.parent.mkdir()
    path.write_bytes(b"xyz")
    path.parent.chmod(0o555)
    try:
        assert file_md5(path) == md5(path)
        assert sorted(p.name for p in path.parent.iterdir()) == ["f.bin"]  # even as root
    finally:
        path.parent.chmod(0o755)


def test_a_failed_download_leaves_no_new_folders(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "file.bin"
    with pytest.raises(AekitError, match="cannot download"):
        fetch([_closed_port_url()], dest, None)
    assert list(tmp_path.iterdir()) == []

"""CIFAR-10 from the binary tarball, its extracted folder, or torchvision's pickled folder.

Resolution order for a split, under ``<data_dir>/cifar10/``: ``cifar-10-batches-bin/``
(extracted), the tarball ``cifar-10-binary.tar.gz`` (members read straight out of it),
``cifar-10-batches-py/`` (torchvision's pickles, read with a restricted unpickler that can only
rebuild numpy arrays), then a download of the tarball.
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import AekitError
from .download import ensure_file
from .imageset import ImageSet
from .registry import CIFAR10

RECORD = 3073  # 1 label byte, then 1024 R, 1024 G, 1024 B (row-major 32×32)
BIN_DIR, PY_DIR = "cifar-10-batches-bin", "cifar-10-batches-py"
BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def load_cifar10(split: str, data_dir: Path, source: str, download: bool) -> ImageSet:
    """Load the ``split`` ("train" | "test") of CIFAR-10 from ``data_dir/cifar10/``."""
    folder = data_dir / "cifar10"
    bin_names = [f"{b}.bin" for b in BATCHES[split]]
    bin_dir, py_dir, tar_path = folder / BIN_DIR, folder / PY_DIR, folder / CIFAR10.file
    classes = list(CIFAR10.classes)
    if all((bin_dir / n).is_file() for n in bin_names):
        blobs = {n: (bin_dir / n, (bin_dir / n).read_bytes()) for n in bin_names}
        if (bin_dir / "batches.meta.txt").is_file():
            classes = _meta_classes((bin_dir / "batches.meta.txt").read_bytes(), classes)
    elif not tar_path.is_file() and all((py_dir / b).is_file() for b in BATCHES[split]):
        images, labels = _read_py_batches([py_dir / b for b in BATCHES[split]])
        return _imageset(images, labels, _py_classes(py_dir, classes), source, split)
    else:
        tar_path = ensure_file(tar_path, CIFAR10.urls, CIFAR10.md5, download)
        members = _read_tar(tar_path, [*bin_names, "batches.meta.txt"], required=bin_names)
        blobs = {n: (tar_path / BIN_DIR / n, members[n]) for n in bin_names}
        if "batches.meta.txt" in members:
            classes = _meta_classes(members["batches.meta.txt"], classes)
    parts = [_parse_records(data, where) for where, data in blobs.values()]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return _imageset(images, labels, classes, source, split)


def _imageset(
    images: np.ndarray, labels: np.ndarray, classes: list[str], source: str, split: str
) -> ImageSet:
    return ImageSet(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=classes,
        source=source,
        split=split,
    )


def _parse_records(data: bytes, where: Path) -> tuple[np.ndarray, np.ndarray]:
    """Binary batch -> images (N, 3, 32, 32) uint8 and labels (N,)."""
    if len(data) == 0 or len(data) % RECORD:
        raise AekitError(
            f"{where} is not a CIFAR-10 binary batch: {len(data)} bytes is not a whole number of "
            f"{RECORD}-byte records (truncated?); delete it and download it again"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    _check_count(len(records), where)
    labels = records[:, 0]
    if labels.max() >= len(CIFAR10.classes):
        raise AekitError(
            f"{where} has label {labels.max()}, not a CIFAR-10 batch "
            f"(labels are 0..9); replace it with the official file"
        )
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def _check_count(count: int, where: Path) -> None:
    """Every official batch holds exactly CIFAR10.records images: fewer is a cut-off download."""
    if count != CIFAR10.records:
        raise AekitError(
            f"{where} holds {count} images, but every official CIFAR-10 batch holds "
            f"{CIFAR10.records}: it is truncated or not the official file; delete it and "
            f"download it again"
        )


def _read_tar(path: Path, names: list[str], required: list[str]) -> dict[str, bytes]:
    """Read the wanted ``cifar-10-batches-bin/<name>`` members in one pass over the tarball."""
    wanted = {f"{BIN_DIR}/{n}": n for n in names}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name and member.isfile():
                    found[name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise AekitError(
            f"cannot read {path} as a .tar.gz ({exc}); delete it and download it again"
        ) from exc
    missing = [n for n in required if n not in found]
    if missing:
        raise AekitError(
            f"{path} has no {BIN_DIR}/{missing[0]}: it is not the CIFAR-10 binary "
            f"version; replace it with {CIFAR10.urls[0]}"
        )
    return found


def _meta_classes(text: bytes, default: list[str]) -> list[str]:
    names = [line.strip() for line in text.decode("utf-8", "replace").splitlines() if line.strip()]
    return names if len(names) == len(default) else default


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else: a pickle naming any other
    callable (os.system, builtins.eval, ...) is refused before anything runs."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals().get((module, name))
        if allowed is None:
            raise AekitError(
                f"refused to unpickle {self.path}: it references {module}.{name}, which a "
                f"CIFAR-10 batch never needs (tampered file?); delete it or use the binary version"
            )
        return allowed


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stands in for _codecs.encode, which Python 3 protocol-2 pickles use for bytes."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"unexpected encoding {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2 moved numpy.core to numpy._core; pickles name either
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for pkg in ("numpy.core", "numpy._core"):
        table[(f"{pkg}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{pkg}.numeric", "_frombuffer")] = numeric._frombuffer
    return table


def _unpickle(path: Path) -> Any:
    try:
        with path.open("rb") as fh:
            return _ArraysOnlyUnpickler(fh, path).load()
    except AekitError:
        raise
    except Exception as exc:  # any malformed pickle: truncated, wrong opcodes, bad numpy state
        raise AekitError(
            f"cannot read {path} as a CIFAR-10 pickle batch ({exc}); delete it "
            f"and download the binary version"
        ) from exc


def _field(batch: Any, key: str) -> Any:
    if isinstance(batch, dict):
        for k in (key.encode(), key):
            if k in batch:
                return batch[k]
    return None


def _read_py_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's pickled batches -> images (N, 3, 32, 32) and labels (N,)."""
    images, labels = [], []
    for path in paths:
        batch = _unpickle(path)
        data, labs = _field(batch, "data"), _field(batch, "labels")
        ok = (
            isinstance(data, np.ndarray)
            and data.dtype == np.uint8
            and data.ndim == 2
            and data.shape[1] == 3072
            and labs is not None
            and len(labs) == len(data)
        )
        if not ok:
            raise AekitError(
                f"{path} is not a CIFAR-10 batch: expected a dict with b'data' "
                f"(N×3072 uint8) and b'labels' (N ints); replace it"
            )
        _check_count(len(data), path)
        lab = np.asarray(labs, dtype=np.int64)
        if lab.size and (lab.min() < 0 or lab.max() >= len(CIFAR10.classes)):
            raise AekitError(f"{path} has labels outside 0..9; replace it")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def _py_classes(py_dir: Path, default: list[str]) -> list[str]:
    meta = py_dir / "batches.meta"
    if not meta.is_file():
        return default
    names = _field(_unpickle(meta), "label_names")
    if not isinstance(names, list) or len(names) != len(default):
        return default
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]

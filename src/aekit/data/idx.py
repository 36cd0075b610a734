"""MNIST and Fashion-MNIST: the official IDX files (gzipped, or already un-gzipped)."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import AekitError
from .download import ensure_file
from .imageset import ImageSet
from .registry import IdxSet

IMAGES_MAGIC = 0x00000803  # uint8 data, 3 dims: count, rows, cols
LABELS_MAGIC = 0x00000801  # uint8 data, 1 dim: count


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file (gzipped if it ends in .gz) whose header must start with ``magic``.

    Checks the magic number, the dimensions and that the file holds exactly the bytes the header
    promises; anything else is an AekitError naming the file and what is wrong.
    """
    path = Path(path)
    kind = "image" if magic == IMAGES_MAGIC else "label"
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise AekitError(
            f"cannot read {path}: not a valid gzip file ({exc}); delete it and download it again"
        ) from exc
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise AekitError(
            f"{path} is not an IDX {kind} file: only {len(raw)} bytes, too short "
            f"for its header; delete it and download it again"
        )
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise AekitError(
            f"{path} is not an IDX {kind} file: magic number 0x{found:08x}, expected "
            f"0x{magic:08x}; check the file name or download it again"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims)  # Python ints: 2**31 x 2**31 x 4 must not wrap to 0
    if len(raw) - header != expected:
        shape = "×".join(str(d) for d in dims)
        raise AekitError(
            f"{path} has the wrong size: its header says {shape} = {expected} bytes of data but "
            f"it holds {len(raw) - header} (truncated or corrupt?); delete it and download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _locate(spec: IdxSet, folder: Path, name: str, download: bool) -> Path:
    """The .gz if present (MD5-checked), else the un-gzipped file, else download the .gz."""
    gz, plain = folder / name, folder / name.removesuffix(".gz")
    if not gz.is_file() and plain.is_file():
        return plain  # no official MD5 for un-gzipped files; read_idx still checks the layout
    return ensure_file(gz, [base + name for base in spec.base_urls], spec.md5.get(name), download)


def load_idx_set(spec: IdxSet, split: str, data_dir: Path, source: str, download: bool) -> ImageSet:
    """Load the ``split`` ("train" | "test") of an MNIST-like set from ``data_dir/<name>/``."""
    folder = data_dir / spec.name
    image_name, label_name = spec.files[split]
    image_path = _locate(spec, folder, image_name, download)
    label_path = _locate(spec, folder, label_name, download)
    images = read_idx(image_path, IMAGES_MAGIC)
    labels = read_idx(label_path, LABELS_MAGIC)
    if len(labels) != len(images):
        raise AekitError(
            f"{label_path} has {len(labels)} labels but {image_path} has {len(images)} images; "
            f"they must come from the same split: replace the wrong one"
        )
    if labels.size and labels.max() >= len(spec.classes):
        raise AekitError(
            f"{label_path} has label {labels.max()}, but {spec.name} has only "
            f"{len(spec.classes)} classes; replace the file"
        )
    return ImageSet(
        images=torch.from_numpy(images.copy()).unsqueeze(1),  # (N, H, W) -> (N, 1, H, W)
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=list(spec.classes),
        source=source,
        split=split,
    )

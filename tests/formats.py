"""Writers for the real dataset file formats, so data tests can build small files in tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def md5(path: Path) -> str:
    """MD5 hex digest of a file."""
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def rand_uint8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Reproducible random uint8 array."""
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file: big-endian magic (0x0000080<ndim> for uint8), dims, then the raw bytes."""
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x00000800 | array.ndim if magic is None else magic
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    """Write an IDX file, gzipped when ``path`` ends in .gz."""
    data = idx_bytes(array, magic)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_mnist_split(
    folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool = True
) -> tuple[Path, Path]:
    """Write the official file pair of an MNIST-like split into ``folder``."""
    prefix = "train" if split == "train" else "t10k"
    ext = ".gz" if gz else ""
    return (
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images),
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels),
    )


def cifar_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary records: 1 label byte + 3072 bytes (R, G, B planes) per image."""
    flat = images.reshape(len(images), -1)
    return np.concatenate([labels.astype(np.uint8)[:, None], flat], axis=1).tobytes()


def cifar_batches(sizes: dict[str, int], seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random CIFAR-like batches: name -> (images (n, 3, 32, 32), labels (n,))."""
    out = {}
    for i, (name, n) in enumerate(sizes.items()):
        out[name] = (rand_uint8((n, 3, 32, 32), seed + i), (np.arange(n) + i) % 10)
    return out


def write_cifar_bin_dir(folder: Path, batches: dict, meta: list[str] | None = None) -> Path:
    """An extracted ``cifar-10-batches-bin/`` folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in batches.items():
        (folder / f"{name}.bin").write_bytes(cifar_records(images, labels))
    if meta is not None:
        (folder / "batches.meta.txt").write_text("\n".join(meta) + "\n\n")
    return folder


def write_cifar_tar(path: Path, batches: dict, meta: list[str] | None = None) -> Path:
    """A ``cifar-10-binary.tar.gz`` holding ``cifar-10-batches-bin/<name>.bin`` members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    members = {f"{n}.bin": cifar_records(*b) for n, b in batches.items()}
    if meta is not None:
        members["batches.meta.txt"] = ("\n".join(meta) + "\n").encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_cifar_py_dir(
    folder: Path, batches: dict, meta: list[str] | None = None, protocol: int = 2
) -> Path:
    """A torchvision ``cifar-10-batches-py/`` folder: pickled dicts with b"data", b"labels"."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in batches.items():
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(x) for x in labels],
            b"data": images.reshape(len(images), 3072),
            b"filenames": [f"{i}.png".encode() for i in range(len(images))],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    if meta is not None:
        info = {b"label_names": [m.encode() for m in meta], b"num_vis": 3072}
        (folder / "batches.meta").write_bytes(pickle.dumps(info, protocol=protocol))
    return folder


def write_npz(path: Path, compressed: bool = False, **arrays: np.ndarray) -> Path:
    """An .npz with the given arrays (compressed members exercise zip streaming)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def medmnist_arrays(
    counts: dict[str, int], hw: int, channels: int, n_labels: int = 1, seed: int = 0
) -> dict[str, np.ndarray]:
    """MedMNIST-style arrays: <split>_images (N, H, W[, 3]) and <split>_labels (N, L)."""
    out = {}
    for i, (split, n) in enumerate(counts.items()):
        shape = (n, hw, hw) if channels == 1 else (n, hw, hw, 3)
        out[f"{split}_images"] = rand_uint8(shape, seed + i)
        if n_labels == 1:
            out[f"{split}_labels"] = (np.arange(n) % 3).reshape(n, 1).astype(np.uint8)
        else:
            out[f"{split}_labels"] = rand_uint8((n, n_labels), seed + 10 + i) % 2
    return out


def write_image(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    """Save an (H, W) or (H, W, C) uint8 array with Pillow (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(array, dtype=np.uint8))
    if mode is not None:
        img = img.convert(mode)
    img.save(path)
    return path


def solid(h: int, w: int, color: int | tuple[int, int, int]) -> np.ndarray:
    """An (H, W) gray or (H, W, 3) RGB image of one colour."""
    if isinstance(color, int):
        return np.full((h, w), color, dtype=np.uint8)
    return np.broadcast_to(np.array(color, dtype=np.uint8), (h, w, 3)).copy()


def write_truncated_png(path: Path) -> Path:
    """A PNG cut in half: Pillow can read its header but not its pixels."""
    full = path.with_suffix(".full.png")
    write_image(full, rand_uint8((32, 32, 3)))
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def mapped_files() -> dict[str, list[tuple[int, int]]]:
    """path -> address ranges mapped from it in this process."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            start, end = (int(x, 16) for x in parts[0].split("-"))
            ranges.setdefault(parts[5], []).append((start, end))
    return ranges


MVTEC_SIZES = [(40, 56), (48, 48), (56, 40)]  # (h, w): not square, as inspection photos are


def mvtec_parts(root: Path) -> None:
    """train/good (dark textured parts), test/good, test/{spot,scratch} with bright defects, and
    their masks (soft-edged, as many data sets draw them)."""
    rng = np.random.default_rng(0)

    def part(h: int, w: int) -> np.ndarray:
        return rng.integers(30, 70, (h, w), dtype=np.uint8)

    for split, kind, n in (("train", "good", 24), ("test", "good", 6), ("test", "spot", 4),
                           ("test", "scratch", 4)):  # fmt: skip
        (root / split / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = MVTEC_SIZES[i % 3]
            a = part(h, w)
            if kind != "good":
                mask = np.zeros((h, w), np.uint8)
                y, x = int(rng.integers(4, h - 14)), int(rng.integers(4, w - 14))
                if kind == "spot":
                    mask[y : y + 10, x : x + 10] = 255
                else:
                    mask[y : y + 3, x : x + 12] = 255
                mask[y - 1, x : x + 3] = 90  # a soft edge: below 127, not defect
                a[mask > 127] = 250
                gt = root / "ground_truth" / kind
                gt.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(gt / f"{i:03d}_mask.png")
            Image.fromarray(a).save(root / split / kind / f"{i:03d}.png")


def mvtec_run(base: Path, *flags: str) -> tuple[Path, Path]:
    """(the parts folder of :func:`mvtec_parts` under ``base``, a run trained on it with
    ``aekit train`` and ``flags``)."""
    from aekit.cli import main

    root = base / "parts"
    mvtec_parts(root)
    run = base / "run"
    assert main(["train", "--data", f"folder:{root}", *flags, "--out", str(run)]) == 0
    return root, run

"""Image and label arrays out of .npz files, never unpickling, memory-mapped where they can be.

An images member stored uncompressed (``numpy.savez``) is memory-mapped where it lies in the
file, whatever its size (unless ``AEKIT_MEMMAP_BYTES`` is set and the member is not above it):
nothing is copied, and the OS pages it in as batches read it. A
compressed one (``numpy.savez_compressed``, MedMNIST's files) bigger than ``AEKIT_MEMMAP_BYTES``
(default 2 GiB) is streamed once from the zip into an (N, C, H, W) ``.npy`` cache and then
memory-mapped, so a 224-pixel MedMNIST split larger than RAM still loads; smaller compressed
members are read into memory.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from numpy.lib import format as npy_format

from ..errors import AekitError
from ..files import give_normal_mode

DEFAULT_MEMMAP_BYTES = 2 << 30
CHUNK_BYTES = 64 << 20  # rows streamed per step when building a cache
# Labels index class names ('0', '1', ...): more classes than any image dataset has (ImageNet-21k:
# 21,841) means the labels are not class indices, and 10**12 names would not fit in memory.
MAX_CLASSES = 100_000
# What reading a damaged member raises: a bad CRC, a broken deflate stream, a cut-off file.
DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError)


def memmap_threshold(default: int = DEFAULT_MEMMAP_BYTES) -> int:
    """Bytes above which an images array is memory-mapped ($AEKIT_MEMMAP_BYTES, else
    ``default``: 2 GiB for compressed members, 0 for those mapped in place)."""
    raw = os.environ.get("AEKIT_MEMMAP_BYTES", "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise AekitError(
            f"AEKIT_MEMMAP_BYTES={raw!r} is not a byte count: set it to a whole "
            f"number such as 2147483648, or unset it"
        )
    return value


def npz_keys(path: Path) -> list[str]:
    """The array names stored in an .npz (its ``<name>.npy`` members)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return [n.removesuffix(".npy") for n in zf.namelist() if n.endswith(".npy")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise AekitError(
            f"cannot read {path} as an .npz file ({exc}); check the path or download/save it again"
        ) from exc


@contextlib.contextmanager
def _damage_is_an_error(path: Path, key: str) -> Iterator[None]:
    """Turn what a damaged member raises while it is read into an AekitError naming it."""
    try:
        yield
    except DAMAGED as exc:
        raise AekitError(
            f"{path} is damaged: member {key!r} cannot be read ({exc}); download or save it again"
        ) from exc


def member_header(path: Path, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of ``key`` in the npz, read without loading the array;
    the header must promise exactly the bytes the member holds."""
    with _damage_is_an_error(path, key), zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
        with zf.open(info) as fp:
            shape, fortran, dtype = _read_header(fp, path, key)
            held = info.file_size - fp.tell()
    promised = math.prod(shape) * dtype.itemsize  # Python ints: a huge shape cannot wrap
    if promised != held and not dtype.hasobject:  # object arrays are pickles: refused later
        dims = "×".join(str(d) for d in shape)
        raise AekitError(
            f"{path}: member {key!r} says it holds {dims} {dtype} = {promised} bytes but holds "
            f"{held} (truncated or corrupt?); download or save it again"
        )
    return shape, fortran, dtype


def _read_header(fp: object, path: Path, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = npy_format.read_magic(fp)
        if version == (1, 0):
            return npy_format.read_array_header_1_0(fp)
        return npy_format.read_array_header_2_0(fp)
    except ValueError as exc:
        raise AekitError(
            f"{path}: member {key!r} is not a valid .npy array ({exc}); save the "
            f"file again with numpy.savez"
        ) from exc


def image_layout(shape: tuple[int, ...], where: str) -> tuple[str, tuple[int, int, int, int]]:
    """Name the layout of an images array and give its (N, C, H, W) shape.

    N×H×W is gray; N×C×H×W is accepted only when unambiguous (C in {1, 3} on axis 1 and the last
    axis not in {1, 3}); otherwise a last axis of 1 or 3 means N×H×W×C.
    """
    if len(shape) == 3:
        n, h, w = shape
        return "NHW", (n, 1, h, w)
    if len(shape) == 4:
        n, a, b, c = shape
        if a in (1, 3) and c not in (1, 3):
            return "NCHW", (n, a, b, c)
        if c in (1, 3):
            return "NHWC", (n, c, a, b)
    raise AekitError(
        f"{where}: images of shape {tuple(shape)} are not N×H×W, N×H×W×C or N×C×H×W with 1 or 3 "
        f"channels; reshape them before saving"
    )


def to_nchw(block: np.ndarray, layout: str) -> np.ndarray:
    """Rearrange a block of images in ``layout`` to (N, C, H, W)."""
    if layout == "NHW":
        return block[:, None]
    if layout == "NHWC":
        return block.transpose(0, 3, 1, 2)
    return block


def load_images(path: Path, key: str, cache: Path) -> torch.Tensor:
    """The ``key`` images of an npz as uint8 (N, C, H, W); memory-mapped from ``cache`` when the
    array is bigger than :func:`memmap_threshold`."""
    shape, fortran, dtype = member_header(path, key)
    where = f"{path} [{key}]"
    if dtype != np.uint8:
        raise AekitError(
            f"{where}: images are {dtype}, expected uint8 (0..255); convert them (floats in "
            f"[0, 1]: (x * 255).round().astype(np.uint8); integers in 0..255: "
            f"x.astype(np.uint8)) and save again"
        )
    layout, nchw = image_layout(shape, where)
    size = math.prod(shape)
    in_place = not fortran and size > memmap_threshold(0)
    offset = stored_offset(path, key) if in_place else None
    if offset is not None:  # stored uncompressed: mapped where it lies, never copied
        mapped = np.memmap(path, dtype=np.uint8, mode="c", offset=offset, shape=shape)
        return torch.from_numpy(to_nchw(mapped, layout))
    if math.prod(shape) > memmap_threshold():
        if fortran:
            raise AekitError(
                f"{where} is stored in Fortran order and too big to load whole; "
                f"save it again with numpy.savez from a C-ordered array"
            )
        if not _cache_is_fresh(cache, path, nchw):
            _build_cache(path, key, cache, shape, layout)
        # "c" = copy-on-write: writable (torch needs that) but never writes back to the file
        return torch.from_numpy(np.load(cache, mmap_mode="c", allow_pickle=False))
    if fortran:
        with _damage_is_an_error(path, key), np.load(path, allow_pickle=False) as npz:
            array = npz[key]
        return torch.from_numpy(np.ascontiguousarray(to_nchw(array, layout)))
    out = np.empty(nchw, dtype=np.uint8)  # filled chunk by chunk: the images are held once
    _stream_into(out, path, key, shape, layout)
    return torch.from_numpy(out)


def stored_offset(path: Path, key: str) -> int | None:
    """Where the array data of member ``key`` starts in the file, when the member is stored
    uncompressed (``numpy.savez``), so it can be memory-mapped in place; else None.

    The member's CRC-32 is checked first, as zipfile would on reading it: one streamed pass
    (about 1 GB/s), which also leaves the data in the OS page cache for the first epoch."""
    with _damage_is_an_error(path, key), zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:  # deflated, encrypted
        return None
    with path.open("rb") as fp:
        fp.seek(info.header_offset)
        local = fp.read(30)  # the local file header: its name and extra field lengths vary
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        crc, left = 0, info.file_size
        fp.seek(start)
        while left:
            block = fp.read(min(left, CHUNK_BYTES))
            if not block:
                break
            crc, left = zlib.crc32(block, crc), left - len(block)
        if left or crc != info.CRC:
            raise AekitError(
                f"{path} is damaged: member {key!r} cannot be read (Bad CRC-32 for file "
                f"'{key}.npy'); download or save it again"
            )
        fp.seek(start)
        _read_header(fp, path, key)
        return fp.tell()


def _cache_is_fresh(cache: Path, source: Path, nchw: tuple[int, ...]) -> bool:
    try:
        # the cache carries its source's modification time: any other time (an older file moved
        # in place, a copy with -p) means another source
        if cache.stat().st_mtime_ns != source.stat().st_mtime_ns:
            return False
        with cache.open("rb") as fp:
            shape, _, dtype = _read_header(fp, cache, "cache")
    except (OSError, AekitError):
        return False
    return tuple(shape) == tuple(nchw) and dtype == np.uint8


def _stream_into(
    out: np.ndarray, path: Path, key: str, shape: tuple[int, ...], layout: str
) -> None:
    """Read a C-ordered member chunk by chunk into ``out`` (N, C, H, W), never whole at once."""
    row = math.prod(shape[1:])
    step = max(1, CHUNK_BYTES // max(row, 1))
    with _damage_is_an_error(path, key), zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as fp:
        _read_header(fp, path, key)  # positions fp at the first data byte
        for start in range(0, shape[0], step):
            count = min(step, shape[0] - start)
            data = fp.read(count * row)
            if len(data) != count * row:
                raise AekitError(f"{path} [{key}] is truncated; download or save it again")
            block = np.frombuffer(data, dtype=np.uint8).reshape((count, *shape[1:]))
            out[start : start + count] = to_nchw(block, layout)


def _build_cache(path: Path, key: str, cache: Path, shape: tuple[int, ...], layout: str) -> None:
    """Stream the member into ``cache`` as (N, C, H, W), chunk by chunk, then move it into place."""
    _, nchw = image_layout(shape, key)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=cache.parent, prefix=f".{cache.name}.", suffix=".part")
    except OSError as exc:
        raise AekitError(
            f"cannot write the memmap cache {cache} ({exc.strerror}): make {cache.parent} "
            f"writable, or raise AEKIT_MEMMAP_BYTES to load the array into memory"
        ) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        out = npy_format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=nchw)
        _stream_into(out, path, key, shape, layout)
        out.flush()
        del out
        give_normal_mode(tmp)
        os.utime(tmp, ns=(time.time_ns(), path.stat().st_mtime_ns))  # see _cache_is_fresh
        os.replace(tmp, cache)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def load_labels(path: Path, key: str, count: int) -> torch.Tensor:
    """Labels as int64 (N,), or (N, L) of 0/1 for multi-label sets; N×1 is squeezed to (N,)."""
    where = f"{path} [{key}]"
    shape = member_header(path, key)[0]  # refuse a bad shape before numpy allocates it
    if len(shape) not in (1, 2) or shape[0] != count:
        raise AekitError(
            f"{where}: labels of shape {shape} do not match {count} images; "
            f"expected ({count},), ({count}, 1) or ({count}, L)"
        )
    try:
        with _damage_is_an_error(path, key), np.load(path, allow_pickle=False) as npz:
            labels = npz[key]
    except ValueError as exc:  # object arrays need pickle, which we never allow
        raise AekitError(
            f"{where} cannot be read without pickle ({exc}); save plain integer arrays"
        ) from exc
    if labels.dtype.kind not in "biu":
        raise AekitError(
            f"{where}: labels are {labels.dtype}, expected integers; convert them "
            f"with .astype(np.int64) and save again"
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim not in (1, 2) or labels.shape[0] != count:
        raise AekitError(
            f"{where}: labels of shape {labels.shape} do not match {count} images; "
            f"expected ({count},), ({count}, 1) or ({count}, L)"
        )
    if labels.size and labels.min() < 0:
        raise AekitError(f"{where}: negative label {labels.min()}; labels must be 0, 1, 2, ...")
    if labels.ndim == 1 and labels.size and int(labels.max()) >= MAX_CLASSES:
        raise AekitError(
            f"{where}: label {labels.max()} is not a class index (at most {MAX_CLASSES} "
            f"classes, 0 to {MAX_CLASSES - 1}); number the classes 0, 1, 2, ..."
        )
    if labels.ndim == 2 and labels.shape[1] > MAX_CLASSES:
        raise AekitError(
            f"{where}: {labels.shape[1]} label columns, more than the {MAX_CLASSES} classes "
            f"aekit accepts; give one 0/1 column per class"
        )
    if labels.ndim == 2 and labels.size and labels.max() > 1:
        raise AekitError(
            f"{where}: an (N, L) label array must hold 0/1 flags, found {labels.max()}"
        )
    return torch.from_numpy(labels.astype(np.int64))

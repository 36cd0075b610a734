"""``aekit data pack``: any source written as WebDataset tar shards (``wds:`` reads them back).

Each split becomes ``{split}-000000.tar``, ``{split}-000001.tar``, ... of at most
``--shard-size`` bytes, written by ``webdataset.ShardWriter``; members are ``KEY.png`` (or the
image file's own bytes and extension, for a ``folder:``) and ``KEY.cls`` (the class number) for
labelled sets; ``info.json`` lists the shards, their image counts, the class names and the
image shape. A folder's files are copied as they are, one at a time (a folder of a million JPEGs
is read once, never held in memory); array sources are PNG-encoded from their (memory-mapped)
arrays. Everything is written into a temporary folder beside ``--out`` and moved into place
when complete; the next pack into the same ``--out`` removes such a folder that a killed pack
left (``files.remove_stale_temps_of``).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from ..errors import AekitError
from ..files import remove_stale_temps_of, writing
from .folder import _decide, _root, _scan, folder_splits
from .images import UNREADABLE, peek, unreadable_reason
from .sources import available_splits, load_dataset, parse_source
from .warn import warn
from .wds import INFO

UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}  # fmt: skip
MIN_SHARD = 1 << 16
PNG_LEVEL = 1  # fast to write; decoding speed is the same at any level


def parse_size(text: str) -> int:
    """'1GB', '500MB', '64M', '1e9' -> bytes (at least 64 KiB)."""
    found = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", str(text))
    unit = found.group(2).upper() if found else None
    try:
        value = float(found.group(1)) * UNITS[unit] if found else -1.0  # type: ignore[index]
    except (ValueError, KeyError):
        value = -1.0
    if value < MIN_SHARD:
        raise AekitError(
            f"--shard-size {text!r} is not a size of at least 64KB: write, say, 1GB or 500MB"
        )
    return int(value)


def pack(
    source: str,
    out: str | Path,
    shard_size: int = 10**9,
    splits: list[str] | None = None,
    data_dir: str | None = None,
    image_size: int | None = None,
) -> dict:
    """Write the splits of ``source`` as shards into the new folder ``out``; returns info."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AekitError(f"--out {out} is a file, not a folder: choose a new folder for the shards")
    if out.exists() and any(out.iterdir()):
        raise AekitError(f"{out} already exists and is not empty: choose another --out")
    have = available_splits(source, data_dir)
    for split in splits or []:
        if split not in have:
            raise AekitError(f"{source} has no {split!r} split: it has {', '.join(have)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps_of(out)  # what a pack killed before this one left
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        with writing(tmp):
            info = _write(source, tmp, out, shard_size, splits or have, data_dir, image_size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def _write(
    source: str,
    tmp: Path,
    out: Path,
    shard_size: int,
    splits: list[str],
    data_dir: str | None,
    image_size: int | None,
) -> dict:
    """Write the shards and info.json into ``tmp``, then move it to ``out``."""
    import webdataset as wds

    info: dict = {"format": "aekit-wds 1", "source": source, "classes": [], "shape": None,
                  "splits": {}}  # fmt: skip
    for split in splits:
        items, classes, shape = _items(source, split, data_dir, image_size)
        info["classes"] = info["classes"] or classes
        info["shape"] = info["shape"] or list(shape)
        counts: list[int] = []
        pattern = str(tmp / f"{split}-%06d.tar")
        with wds.ShardWriter(pattern, maxsize=shard_size, maxcount=10**9, verbose=0) as sink:
            for key, member in items:
                sink.write({"__key__": key, **member})
                shard = sink.shard - 1
                counts += [0] * (shard + 1 - len(counts))
                counts[shard] += 1
        names = [f"{split}-{i:06d}.tar" for i in range(len(counts))]
        info["splits"][split] = {"shards": names, "counts": counts}
    (tmp / INFO).write_text(json.dumps(info, indent=1) + "\n")
    os.chmod(tmp, 0o777 & ~_umask())
    if out.exists():
        out.rmdir()
    tmp.replace(out)
    return info


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _items(
    source: str, split: str, data_dir: str | None, image_size: int | None
) -> tuple[Iterator[tuple[str, dict]], list[str], tuple[int, int, int]]:
    """(the members of each image, the class names, the (C, H, W) images are brought to)."""
    src = parse_source(source)
    if src.kind == "folder" and image_size is None:
        return _folder_items(Path(src.name), split)
    ds = load_dataset(source, split, data_dir=data_dir, image_size=image_size)

    def items() -> Iterator[tuple[str, dict]]:
        labels = None if ds.labels is None or ds.multi_label else ds.labels.tolist()
        for i in range(len(ds)):
            a = ds.images[i].permute(1, 2, 0).numpy()
            buf = io.BytesIO()
            Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a).save(
                buf, format="PNG", compress_level=PNG_LEVEL
            )
            member = {"png": buf.getvalue()}
            if labels is not None:
                member["cls"] = str(labels[i]).encode()
            yield f"{i:09d}", member

    return items(), list(ds.classes) if ds.labels is not None else [], ds.shape


def _folder_items(
    root: Path, split: str
) -> tuple[Iterator[tuple[str, dict]], list[str], tuple[int, int, int]]:
    root = _root(root)
    if split not in folder_splits(root):
        raise AekitError(f"{root} has no {split!r} split")
    files, labels, classes = _scan(root, split)
    headers, kept = [], []
    for f in files:
        try:
            headers.append(peek(f))
            kept.append(f)
        except UNREADABLE as exc:
            warn(f"skipped {f}: {unreadable_reason(exc)}")
    if not kept:
        raise AekitError(f"no readable image in {root} [{split}]")
    gray, (w, h) = _decide(headers, None)
    keep = set(kept)

    def items() -> Iterator[tuple[str, dict]]:
        for i, f in enumerate(files):
            if f not in keep:
                continue
            ext = f.suffix.lower().lstrip(".")
            ext = "jpg" if ext == "jpeg" else ext
            member = {ext: f.read_bytes()}
            if labels is not None:
                member["cls"] = str(labels[i]).encode()
            yield f"{i:09d}", member

    return items(), classes, (1 if gray else 3, h, w)

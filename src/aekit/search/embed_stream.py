"""Embedding a split too large for memory (:class:`aekit.data.streamed.SplitStream`), and
showing the pictures of such a folder's items file by file.

The vectors, items and fingerprint are those of the in-memory path: chunks of the batch size
are encoded in the split's order, and the fingerprint's 64 images are kept as they pass.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..data.images import UNREADABLE, load, unreadable_reason
from ..data.npzarrays import memmap_threshold
from ..data.sources import parse_source
from ..data.streamed import Listing, SplitStream
from ..errors import AekitError
from ..models import Autoencoder
from ..training.distributed import SINGLE, Group
from .encoding import encode, fingerprint_of, fingerprint_rows


def encode_stream(
    model: Autoencoder,
    stream: SplitStream,
    batch_size: int = 256,
    progress: bool | None = None,
    group: Group = SINGLE,
) -> tuple[np.ndarray, Listing, str]:
    """(float32 (N, D) vectors, what the pass found, the split's fingerprint) of a streamed
    split; in a torchrun ``group`` each process reads its part, and every one gets it all."""
    mine = stream.part(group.rank, group.world) if group.on else stream
    wanted = set(fingerprint_rows(stream.expected).tolist())  # if every image decodes
    vectors = np.empty((len(mine), model.config.latent_dim), np.float32)  # filled in place
    kept, pos = {}, mine.offset
    bar = tqdm(total=len(mine), unit="img", desc="embedding", leave=False,
               disable=None if progress is None else not progress)  # fmt: skip
    try:
        for chunk in mine.chunks(batch_size):
            at = pos - mine.offset
            vectors[at : at + len(chunk.images)] = encode(model, chunk.images, batch_size,
                                                          False, first=pos)  # fmt: skip
            for j in sorted(wanted.intersection(range(pos, pos + len(chunk.images)))):
                kept[j] = chunk.images[j - pos].clone()  # not a view: the chunk goes
            pos += len(chunk.images)
            bar.update(len(chunk.images) + chunk.skipped)
    finally:
        bar.close()
    vectors = vectors[: pos - mine.offset]  # fewer where images failed to decode
    found = mine.listing()
    if group.on:
        vectors = group.gather_rows(torch.from_numpy(vectors)).numpy()
        found = _joined(group.gather_objects(found))  # type: ignore[arg-type]
        kept = {k: v for part in group.gather_objects(kept) for k, v in part.items()}  # type: ignore[union-attr]
    return vectors, found, _fingerprint(stream, found, kept, group)


def _joined(parts: list[Listing]) -> Listing:
    """The processes' listings, in rank order, as one."""
    first = parts[0]
    labels = None if first.labels is None else torch.cat([p.labels for p in parts])  # type: ignore[misc]
    paths = None if first.paths is None else [x for p in parts for x in p.paths or []]
    classes = next((p.classes for p in parts if p.classes), first.classes)
    return Listing(first.source, first.split, first.shape, classes, labels, paths,
                   sum(p.count for p in parts))  # fmt: skip


def _fingerprint(
    stream: SplitStream, found: Listing, kept: dict[int, torch.Tensor], group: Group
) -> str:
    """The in-memory path's fingerprint: from the images kept as they passed when every image
    decoded, else (positions moved) the images now at its positions: a folder's files, or
    one more pass over the shards (only the main process, which writes the store)."""
    if not len(found):
        return fingerprint_of(torch.zeros((0, *found.shape), dtype=torch.uint8), 0)
    rows = fingerprint_rows(len(found)).tolist()
    if len(found) == stream.expected:
        return fingerprint_of(torch.stack([kept[r] for r in rows]), len(found))
    if not group.main:
        return ""
    if found.paths is not None:
        sample = read_files([found.paths[r] for r in rows], found.shape)
    else:
        sample = images_at(stream, rows)
    return fingerprint_of(sample, len(found))


def images_at(stream: SplitStream, rows: list[int]) -> torch.Tensor:
    """The images at positions ``rows`` (sorted) of a streamed split, by one pass over it up to
    the last of them."""
    wanted, out, pos = set(rows), {}, 0
    for chunk in stream.chunks(256, limit=rows[-1] + 1):
        for j in sorted(wanted.intersection(range(pos, pos + len(chunk.images)))):
            out[j] = chunk.images[j - pos].clone()
        pos += len(chunk.images)
    return torch.stack([out[r] for r in rows])


def read_files(paths: list[str], shape: tuple[int, int, int] | list[int]) -> torch.Tensor:
    """uint8 (n, C, H, W): image files decoded as a folder's split of ``shape`` decodes them; a
    file gone or unreadable is an AekitError (the data changed since it was embedded)."""
    c, h, w = shape
    out = []
    for path in paths:
        try:
            out.append(torch.from_numpy(load(Path(path), c == 1, (w, h)).copy()))
        except UNREADABLE as exc:
            reason = "is missing" if isinstance(exc, FileNotFoundError) else (
                f"cannot be read ({unreadable_reason(exc)})")  # fmt: skip
            raise AekitError(
                f"{path} {reason}: the data changed since it was embedded; embed it again"
            ) from None
    return torch.stack(out)


def per_file(part: dict[str, Any], items: list[dict[str, Any]]) -> bool:
    """Whether a store's part shows its pictures file by file: a folder too large to decode
    into memory (as training and embed decide it), embedded with its shape and paths."""
    shape = part.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) for v in shape)):
        return False
    if parse_source(part["source"]).kind != "folder":
        return False
    return part["count"] * math.prod(shape) > memmap_threshold() and all(
        isinstance(it.get("path"), str) for it in items
    )


def check_files(part: dict[str, Any], items: list[dict[str, Any]], store: Path | None) -> None:
    """Refuse a folder part whose files are no longer the ones embedded: its fingerprint from
    the files of the items at its positions (64 files read)."""
    count = part["count"]
    by_item = {it["item"]: it["path"] for it in items}
    rows = fingerprint_rows(count).tolist()
    if any(r not in by_item for r in rows):
        raise AekitError(
            f"the store {store} holds {part['source']} [{part['split']}] without all of its "
            "items: embed it again"
        )
    sample = read_files([by_item[r] for r in rows], part["shape"])
    if part.get("fingerprint") not in (None, fingerprint_of(sample, count)):
        raise AekitError(
            f"the store {store} holds {part['source']} [{part['split']}] but its images are "
            "no longer the ones embedded: the data changed since it was embedded; embed it again"
        )

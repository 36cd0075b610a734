"""An embedding store's files: all-or-nothing saves, and a loader that checks what it opens.

EMB/manifest.json          the one pointer: count, dim, parts, run, and the names of the files
                           of the current generation G ("files": {"vectors", "items"})
EMB/embeddings[.G].npy     float32 (N, D); generation 0 is plain embeddings.npy
EMB/items[.G].jsonl        one JSON object per item
EMB/index.faiss, index.json  optional FAISS index (``aekit index``) of the generation whose
                           manifest "id" index.json names as its "store"
EMB/map.npy, map.json      optional 2-D map of the vectors (``aekit map``), tied the same way

A save writes generation G+1 under new names, replaces the manifest (atomically) last, then
removes generation G and its index. A process killed at any moment leaves the old store or the
new one, never a mix; what it left half-done (temp files, an orphaned generation) is removed
when the store is next opened for writing. Stores made before generations have no "files" and
use generation 0.

The run is recorded twice: absolute ("run") and relative to the store ("run_relative"), so a
store moved together with its run, and a store moved alone, both still find the model.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AekitError
from ..files import atomic_write, folder_lock, remove_stale_temps, write_text
from .knn import INDEX_KINDS, METRICS, check_index_options

MANIFEST, INDEX, INDEX_INFO = "manifest.json", "index.faiss", "index.json"
MAP, MAP_INFO = "map.npy", "map.json"
VECTORS, ITEMS = "embeddings.npy", "items.jsonl"  # generation 0
GENERATION = re.compile(r"(embeddings|items)(?:\.(\d+))?\.(npy|jsonl)")
FINITE_CHUNK = 65536  # rows checked at a time, so a memmap is read piece by piece


def read_store(path: Path) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    """(vectors memory-mapped, items, manifest) of the store in ``path``, every file checked.

    The manifest's "run" is the run folder to use: the relative one when it exists there."""
    if not (path / MANIFEST).is_file() and (path / "config.json").is_file():
        raise AekitError(
            f"{path} is a run folder, not an embedding store: make a store of it with "
            f"aekit embed {path} --out EMB, then use EMB"
        )
    if not (path / MANIFEST).is_file():
        raise AekitError(
            f"{path} is not an embedding store ({MANIFEST} is missing): make "
            f"one with aekit embed RUN --data SOURCE --out {path}"
        )
    manifest = read_manifest(path)
    try:
        vectors, items = _read_generation(path, manifest)
    except FileNotFoundError as e:  # a writer may have switched generations just now: retry once
        newer = read_manifest(path)
        if newer == manifest:
            raise _damaged(path, f"{Path(str(e.filename)).name} is missing") from None
        manifest = newer
        vectors, items = _read_generation(path, manifest)
    rel = manifest.get("run_relative")
    if rel and (path / rel).is_dir():
        manifest["run"] = str((path / rel).resolve())
    return vectors, items, manifest


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise _damaged(path / MANIFEST, str(e)) from None
    _check_manifest(path, manifest)
    return manifest


def write_store(
    path: Path, vectors: np.ndarray, items: list[dict[str, Any]], manifest: dict[str, Any]
) -> dict[str, Any]:
    """Save the store into ``path`` as the next generation; returns the manifest as loaded."""
    with folder_lock(path, "an embedding store"):
        return _write_store(path, vectors, items, manifest)


def _write_store(
    path: Path, vectors: np.ndarray, items: list[dict[str, Any]], manifest: dict[str, Any]
) -> dict[str, Any]:
    try:
        old = read_manifest(path)["files"]
    except AekitError:  # no store here, or a damaged one: nothing worth keeping
        old = None
    tidy(path, old)
    gen = 0 if old is None else _generation(old["vectors"]) + 1
    files = {"vectors": f"embeddings.{gen}.npy" if gen else VECTORS,
             "items": f"items.{gen}.jsonl" if gen else ITEMS}  # fmt: skip
    atomic_write(path / files["vectors"], lambda tmp: _save_npy(tmp, vectors))
    atomic_write(path / files["items"], lambda tmp: _save_items(tmp, items))
    run = manifest.get("run")
    run_relative = os.path.relpath(Path(run).resolve(), path.resolve()) if run else None
    manifest = {**manifest, "run": run, "run_relative": run_relative, "files": files,
                "id": uuid.uuid4().hex}  # fmt: skip
    write_text(path / MANIFEST, json.dumps(manifest, indent=2) + "\n")  # the switch
    # the old generation's files and index go only now: a kill before the switch leaves the old
    # store whole, index included; a kill after it leaves an index whose id no longer matches
    derived = {INDEX_INFO, INDEX, MAP_INFO, MAP}
    _unlink(path, derived | (set(old.values()) - set(files.values()) if old else set()))
    return manifest


def tidy(path: Path, files: dict[str, str] | None) -> None:
    """Remove what a killed writer left in ``path``: temp files, and the data files of any
    generation but ``files`` (the manifest's). Only for the folder's one writer."""
    remove_stale_temps(path)
    data = {p.name for p in path.iterdir() if _kind(p.name)}
    _unlink(path, data - set((files or {}).values()))


def read_index_info(path: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """What ``aekit index`` built for the store in ``path`` (kind, metric, ...), if anything;
    refused when it was built for another store, or another generation of this one."""
    if not (path / INDEX_INFO).is_file():
        return None
    try:
        info = json.loads((path / INDEX_INFO).read_text())
    except (OSError, ValueError) as e:
        raise _bad_index(path, str(e)) from None
    if not isinstance(info, dict):
        raise _bad_index(path, f"a JSON object was expected, not {type(info).__name__}")
    if info.get("kind") not in INDEX_KINDS or info.get("metric") not in METRICS:
        raise _bad_index(path, f"kind {info.get('kind')!r}, metric {info.get('metric')!r}")
    if info.get("store") != manifest.get("id"):  # stores older than ids have neither
        raise AekitError(
            f"the index in {path} ({INDEX}, {INDEX_INFO}) was built for another store, or "
            f"before this one last changed: rebuild it with aekit index {path}, or search "
            "with --exact"
        )
    count = manifest["count"]
    try:
        check_index_options(info["kind"], count, nprobe=info.get("nprobe"),
                            ef_search=info.get("ef_search"))  # fmt: skip
    except AekitError as e:
        raise _bad_index(path, str(e)) from None
    return info


def _read_generation(path: Path, manifest: dict[str, Any]) -> tuple[np.ndarray, list[dict]]:
    files = manifest["files"]
    try:
        vectors = np.load(path / files["vectors"], mmap_mode="r", allow_pickle=False)
        lines = (path / files["items"]).read_text().splitlines()
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as e:  # truncated .npy, not UTF-8, ...
        # numpy takes any non-.npy bytes for a pickle, and says so: say what it is instead
        why = f"{files['vectors']} is not a .npy array" if "pickle" in str(e) else str(e)
        raise _damaged(path, why) from None
    n, dim = manifest["count"], manifest["dim"]
    if vectors.ndim != 2 or vectors.shape != (n, dim) or len(lines) != n:
        raise AekitError(
            f"{path} is inconsistent: the manifest says {n} x {dim}, {files['vectors']} "
            f"holds {vectors.shape} and {files['items']} {len(lines)} items; "
            "delete the store folder and embed again with aekit embed"
        )
    total = sum(p["count"] for p in manifest["parts"])
    if total != n:
        raise AekitError(
            f"{path} is inconsistent: its parts add up to {total} items, its manifest says {n}; "
            "delete the store folder and embed again with aekit embed"
        )
    if vectors.dtype != np.float32:
        raise AekitError(
            f"{path / files['vectors']} holds {vectors.dtype}, not float32: rebuild it"
        )
    _check_finite(path / files["vectors"], vectors)
    return vectors, _read_items(path / files["items"], lines, manifest["parts"])


def _check_manifest(path: Path, m: Any) -> None:
    if not isinstance(m, dict):
        raise _damaged(path / MANIFEST, f"a JSON object was expected, not {type(m).__name__}")
    m.setdefault("files", {"vectors": VECTORS, "items": ITEMS})  # a store older than generations
    for key, lowest in (("count", 0), ("dim", 1)):
        if not _is_int(m.get(key)) or m[key] < lowest:
            raise _damaged(path / MANIFEST, f"{key} {m.get(key)!r} is not an integer >= {lowest}")
    parts = m.get("parts")
    if not isinstance(parts, list) or not all(
        isinstance(p, dict) and isinstance(p.get("source"), str) and isinstance(p.get("split"), str)
        and _is_int(p.get("count")) and p["count"] >= 0 for p in parts
    ):  # fmt: skip
        raise _damaged(path / MANIFEST, "parts must list each part's source, split and count")
    files = m["files"]
    if not isinstance(files, dict) or [_kind(files.get(k)) for k in ("vectors", "items")] != [
        "embeddings", "items"
    ]:  # fmt: skip
        raise _damaged(path / MANIFEST, f"files {files!r} are not a store's file names")
    if not all(isinstance(p.get("fingerprint"), str | None) for p in parts):
        raise _damaged(path / MANIFEST, "a part's fingerprint is not a string")
    for key in ("run", "run_relative", "model_hash", "id"):
        if not isinstance(m.get(key), str | None):
            raise _damaged(path / MANIFEST, f"{key} {m[key]!r} is not a string")


def _read_items(path: Path, lines: list[str], parts: list[dict]) -> list[dict[str, Any]]:
    """Each line a JSON object naming a part of the store and a position inside it."""
    sizes: dict[tuple[str, str], int] = {}
    for p in parts:
        key = (p["source"], p["split"])
        sizes[key] = max(sizes.get(key, 0), p["count"])
    items, label_kinds = [], set()
    for n, line in enumerate(lines, 1):
        try:
            it = json.loads(line)
        except ValueError as e:
            raise _damaged(path, f"line {n}: {e}") from None
        if not isinstance(it, dict):
            raise _damaged(path, f"line {n} is {line[:40]!r}, not a JSON object")
        key = (it.get("source"), it.get("split"))
        size = sizes.get(key) if all(isinstance(x, str) for x in key) else None  # type: ignore
        if size is None:
            raise _damaged(path, f"line {n}: {it.get('source')!r} [{it.get('split')!r}] is not "
                                 "a part of the store")  # fmt: skip
        if not _is_int(it.get("item")) or not 0 <= it["item"] < size:
            raise _damaged(path, f"line {n}: position {it.get('item')!r} is outside its part "
                                 f"of {size} images")  # fmt: skip
        label = it.get("label")
        if not (label is None or _is_int(label)
                or (isinstance(label, list) and all(map(_is_int, label)))):  # fmt: skip
            raise _damaged(path, f"line {n}: label {label!r} is not an integer (or a list)")
        label_kinds.add("class" if _is_int(label) else None if label is None else len(label))
        items.append(it)
    if len(label_kinds - {None}) > 1:  # a class each, or lists of one length (multi-label)
        raise _damaged(path, "its items mix class labels and label lists of different lengths")
    return items


def _check_finite(path: Path, vectors: np.ndarray) -> None:
    for s in range(0, len(vectors), FINITE_CHUNK):
        bad = ~np.isfinite(vectors[s : s + FINITE_CHUNK]).all(axis=1)
        if bad.any():
            raise AekitError(
                f"{path} holds NaN or infinite values (row {s + int(bad.argmax())}): the model "
                "that made it was broken; retrain it and rebuild the store with aekit embed"
            )


def _unlink(path: Path, names: set[str]) -> None:
    for name in names:
        (path / name).unlink(missing_ok=True)


def _kind(name: Any) -> str | None:
    """ "embeddings" or "items" for a store data file name (of any generation), else None."""
    match = GENERATION.fullmatch(name) if isinstance(name, str) else None
    if match is None or (match[1] == "embeddings") != (match[3] == "npy"):
        return None
    return match[1]


def _generation(name: str) -> int:
    match = GENERATION.fullmatch(name)
    return int(match[2]) if match and match[2] else 0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _damaged(path: Path, why: str) -> AekitError:
    return AekitError(
        f"{path} is damaged ({why}): delete the store folder and embed again with aekit embed"
    )


def _bad_index(path: Path, why: str) -> AekitError:
    return AekitError(
        f"{path / INDEX_INFO} is damaged ({why}): rebuild the index with aekit index {path}, "
        f"or delete {INDEX_INFO} and {INDEX}"
    )


def _save_items(tmp: str, items: list[dict[str, Any]]) -> None:
    with open(tmp, "w") as f:  # line by line: no second copy of a large store in memory
        f.writelines(json.dumps(it) + "\n" for it in items)


def _save_npy(tmp: str, vectors: np.ndarray) -> None:
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(vectors, dtype=np.float32))


def save_map(path: Path, manifest: dict[str, Any], points: np.ndarray, info: dict) -> None:
    """Write the store's 2-D map (N, 2) and what made it, tied to this generation's id."""
    with folder_lock(path, "an embedding store"):
        atomic_write(path / MAP, lambda tmp: _save_npy(tmp, points.astype(np.float32)))
        write_text(path / MAP_INFO, json.dumps({**info, "store": manifest.get("id")}) + "\n")


def read_map(path: Path, manifest: dict[str, Any]) -> tuple[np.ndarray, dict] | None:
    """The store's 2-D map and its info, or None when there is none for this generation."""
    try:
        info = json.loads((path / MAP_INFO).read_text())
        points = np.load(path / MAP, allow_pickle=False)
    except (OSError, ValueError):
        return None
    fits = points.shape == (manifest.get("count"), 2) and info.get("store") == manifest.get("id")
    # a map damaged or edited by hand counts as none (it is remade), never as broken points
    return (points, info) if fits and np.isfinite(points).all() else None

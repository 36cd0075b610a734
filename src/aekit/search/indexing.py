"""``aekit index``: a FAISS index built over a store, its recall measured against exact search
on stored queries, and saved in the store (``index.faiss``, then ``index.json`` last, which
says an index is there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AekitError
from ..files import write_text
from .embed import Embeddings
from .knn import (
    DEFAULT_M,
    build_index,
    check_index_options,
    exact_search,
    index_search,
    recall_at_k,
    save_index,
)
from .stores import INDEX, INDEX_INFO, tidy

RECALL_QUERIES = 200  # stored items, drawn with a fixed seed, whose recall@k the index reports


def index_store(
    path: Path,
    kind: str,
    metric: str,
    k: int,
    nlist: int | None = None,
    nprobe: int | None = None,
    m: int = DEFAULT_M,
    ef_search: int | None = None,
    ef_construction: int | None = None,
) -> dict[str, Any]:
    """Build a ``kind`` index of the store at ``path`` (held by its writer) and save it; returns
    what ``index.json`` holds, with ``k`` and the number of ``queries`` its recall was
    measured on."""
    store = Embeddings.load(path)
    if len(store) < 2:
        raise AekitError(f"{path} holds {len(store)} item(s): nothing to index")
    if k < 1:
        raise AekitError(f"--k {k}: the recall needs at least 1 neighbour")
    check_index_options(kind, len(store), nlist=nlist, nprobe=nprobe, m=m, ef_search=ef_search,
                        ef_construction=ef_construction)  # fmt: skip
    tidy(path, store.manifest["files"])  # what a killed writer left
    index = build_index(np.asarray(store.vectors), kind, metric=metric, nlist=nlist, m=m,
                        ef_construction=ef_construction)  # fmt: skip
    k = min(k, len(store) - 1)
    rng = np.random.default_rng(0)
    sample = rng.choice(len(store), size=min(RECALL_QUERIES, len(store)), replace=False)
    q = np.asarray(store.vectors[sample])
    _, approx = index_search(index, q, k, metric=metric, exclude=sample, nprobe=nprobe,
                             ef_search=ef_search)  # fmt: skip
    _, exact = exact_search(q, store.vectors, k, metric=metric, exclude=sample)
    recall = recall_at_k(approx, exact)
    # index.json says an index is there: gone while index.faiss is replaced, written last
    (path / INDEX_INFO).unlink(missing_ok=True)
    save_index(index, path / INDEX)
    info = {
        "kind": kind,
        "metric": metric,
        "nlist": nlist,
        "nprobe": nprobe,
        "m": m,
        "ef_search": ef_search,
        "ef_construction": ef_construction,
        f"recall@{k}": recall,
        "count": len(store),
        "store": store.manifest.get("id"),  # the generation it indexes
    }
    write_text(path / INDEX_INFO, json.dumps(info, indent=2) + "\n")
    return {**info, "k": k, "queries": len(sample)}

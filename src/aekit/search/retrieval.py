"""Are the neighbours any good? Label-based retrieval quality: precision@k and mAP@k.

Each query is an item of the store, searched against the whole store with itself left out; a
result is relevant when it shares the query's label (for multi-label sets: at least one positive
label). :func:`search_eval` scores the autoencoder's vectors next to two baselines on the same
queries: raw pixels, and PCA of the pixels to the autoencoder's latent size.

mAP@k here is the usual one of retrieval papers: per query

    AP@k = sum_{i=1..k} P@i * rel_i / min(k, R)

with P@i the precision of the top i, rel_i 1 when result i is relevant, and R the number of
relevant items in the whole store for that query (the query itself not counted); AP@k = 0 when
R = 0, and mAP@k is its mean over the queries. Dividing by min(k, R) makes a perfect top k score
1 even when R > k. Other normalisations exist (by R, by k, or by the relevant items found in
the top k), so compare numbers only with papers that use the same one.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import AekitError
from .knn import exact_search

BASELINES = ("pixels", "pca")


def _as_labels(labels: np.ndarray | torch.Tensor | None, n: int | None = None) -> np.ndarray:
    """(N,) int labels or (N, L) 0/1 as bool; anything else is a user error."""
    if labels is None:
        raise AekitError(
            "search-eval needs labelled images: relevance is 'shares the query's label', and "
            "this dataset has no labels; use a labelled dataset (e.g. mnist, cifar10)"
        )
    lab = np.asarray(labels)
    if lab.ndim not in (1, 2) or not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool):
        raise AekitError(f"labels must be integers (N,) or 0/1 (N, L), got {lab.dtype} {lab.shape}")
    if n is not None and lab.shape[0] != n:
        raise AekitError(f"{lab.shape[0]} labels for {n} items: give one label row per item")
    return lab > 0 if lab.ndim == 2 else lab


def relevance(labels: np.ndarray, query_idx: np.ndarray, result_idx: np.ndarray) -> np.ndarray:
    """(n, k) bool: whether each result shares its query's label.

    ``labels`` is (N,) int, or (N, L) 0/1 for multi-label sets, where a result is relevant when
    it shares at least one positive label with the query. ``query_idx`` (n,) and ``result_idx``
    (n, k) index into ``labels``; a result index of -1 (no result) is never relevant.
    """
    lab = _as_labels(labels)
    q = np.asarray(query_idx, dtype=np.int64)
    r = np.asarray(result_idx, dtype=np.int64)
    if r.ndim != 2 or q.shape != (r.shape[0],):
        raise AekitError(f"query_idx must be (n,) and result_idx (n, k); got {q.shape}, {r.shape}")
    found = r >= 0
    r = np.where(found, r, 0)
    if lab.ndim == 1:
        return (lab[r] == lab[q][:, None]) & found
    return (lab[q][:, None, :] & lab[r]).any(axis=2) & found  # (n, 1, L) & (n, k, L) -> (n, k)


def count_relevant(labels: np.ndarray, query_idx: np.ndarray, batch: int = 1024) -> np.ndarray:
    """(n,) int64: how many other items of the store are relevant to each query (R in AP@k)."""
    lab = _as_labels(labels)
    q = np.asarray(query_idx, dtype=np.int64)
    if lab.ndim == 1:
        _, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
        return counts[inverse.reshape(-1)[q]].astype(np.int64) - 1
    # Work on the distinct label rows, far fewer than the items in practice (chestmnist: 14 labels).
    rows, inverse, counts = np.unique(lab, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    rows_f = rows.astype(np.float32)
    shared = np.empty(len(rows), dtype=np.int64)
    for i in range(0, len(rows), batch):  # batched so the (U, U) overlap never exists whole
        overlap = rows_f[i : i + batch] @ rows_f.T > 0
        shared[i : i + batch] = overlap.astype(np.int64) @ counts
    # The query shares a label with itself exactly when it has a positive label.
    return shared[inverse[q]] - rows.any(axis=1)[inverse[q]]


def precision_at_k(rel: np.ndarray) -> float:
    """Mean over the queries of (relevant results in the top k) / k, for ``rel`` (n, k)."""
    rel = np.asarray(rel, dtype=bool)
    if rel.ndim != 2 or rel.size == 0:
        raise AekitError(f"relevance must be a non-empty (n, k) array, got shape {rel.shape}")
    return float(rel.mean(axis=1).mean())


def average_precision_at_k(rel: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """(n,) AP@k per query: sum_{i<=k} P@i * rel_i / min(k, R); 0 where R = 0.

    ``rel`` is (n, k) bool, nearest first; ``n_relevant`` (n,) is R, the relevant items in the
    whole store for each query (itself excluded). See the module docstring for the definition.
    """
    rel = np.asarray(rel, dtype=bool)
    big_r = np.asarray(n_relevant, dtype=np.int64)
    if rel.ndim != 2 or big_r.shape != (rel.shape[0],):
        raise AekitError(f"rel must be (n, k) and n_relevant (n,); got {rel.shape}, {big_r.shape}")
    k = rel.shape[1]
    hits = np.cumsum(rel, axis=1)
    precision_at_i = hits / np.arange(1, k + 1)  # (n, k): P@1 .. P@k
    summed = (precision_at_i * rel).sum(axis=1)
    norm = np.minimum(k, big_r)
    return np.where(norm > 0, summed / np.maximum(norm, 1), 0.0)


def retrieval_scores(
    vectors: np.ndarray,
    labels: np.ndarray,
    k: int,
    query_idx: np.ndarray,
    metric: str = "l2",
    device: str = "auto",
) -> dict[str, float]:
    """{"precision": P@k, "map": mAP@k} of searching ``vectors`` (N, D) with ``labels``.

    Each query is the stored item ``query_idx[j]``, searched against all N vectors with itself
    excluded, so it can neither find itself nor count itself as relevant.
    """
    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim != 2:
        raise AekitError(f"vectors must be (N, D), got shape {vecs.shape}")
    n = vecs.shape[0]
    lab = _as_labels(labels, n)
    _check_k(k, n)
    q = np.asarray(query_idx, dtype=np.int64)
    if q.ndim != 1 or q.size == 0 or q.min() < 0 or q.max() >= n:
        raise AekitError(f"query_idx must be a non-empty (n,) array of indices below {n}")
    _, idx = exact_search(vecs[q], vecs, k, metric=metric, exclude=q, device=device)
    rel = relevance(lab, q, idx)
    ap = average_precision_at_k(rel, count_relevant(lab, q))
    return {"precision": precision_at_k(rel), "map": float(ap.mean())}


def pixel_vectors(images: torch.Tensor | np.ndarray, batch: int = 4096) -> np.ndarray:
    """uint8 (N, C, H, W) -> float32 (N, C*H*W) on the [0, 1] scale.

    Converted ``batch`` images at a time, so a memmap-backed set is read from disk in pieces and
    never held whole as float on top of the result. The result itself is in memory and needs
    N * C * H * W * 4 bytes (60 000 MNIST images: 188 MB; 100 000 RGB 64x64: 4.9 GB).
    """
    if isinstance(images, torch.Tensor):
        dtype_ok, shape = images.dtype == torch.uint8, tuple(images.shape)
    else:
        dtype_ok, shape = images.dtype == np.uint8, tuple(images.shape)
    if not dtype_ok or len(shape) != 4:
        raise AekitError(f"images must be uint8 (N, C, H, W), got {images.dtype} {shape}")
    n, features = shape[0], int(np.prod(shape[1:]))
    out = np.empty((n, features), dtype=np.float32)
    for i in range(0, n, batch):
        chunk = images[i : i + batch]
        chunk = chunk.numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk)
        np.divide(chunk.reshape(len(chunk), features), np.float32(255), out=out[i : i + batch])
    return out


def pca_vectors(pixels: np.ndarray, dim: int, seed: int = 0, fit_max: int = 20000) -> np.ndarray:
    """(N, D) -> float32 (N, dim): PCA fitted on at most ``fit_max`` rows, applied to all rows.

    The fit sample is a seeded random choice of rows. ``dim`` above min(sample rows, D) is
    clamped to it silently, so the output may be narrower than asked. The fit uses
    ``torch.pca_lowrank`` (randomised SVD, Halko et al. 2011) on the centred sample: its cost is
    O(rows * D * dim) instead of O(rows * D * min(rows, D)) for a full ``torch.linalg.svd``
    (20 000 CIFAR rows: under a second against ~12 s on 2 cores, and it grows with D^2), and it
    is exact when the sample has rank <= dim + 10. Its random projection is seeded from ``seed``.
    """
    x = np.asarray(pixels)
    if x.ndim != 2 or x.shape[0] == 0:
        raise AekitError(f"pixels must be a non-empty (N, D) array, got shape {x.shape}")
    if dim < 1:
        raise AekitError(f"PCA dimension must be at least 1, got {dim}")
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    # Sorted so a memmap is read front to back.
    fit_rows = np.sort(rng.choice(n, size=min(n, fit_max), replace=False))
    sample = torch.from_numpy(np.asarray(x[fit_rows], dtype=np.float32))
    mean = sample.mean(dim=0)
    dim = min(dim, *sample.shape)
    q = min(dim + 10, *sample.shape)  # oversampling makes the top `dim` components accurate
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, _, v = torch.pca_lowrank(sample - mean, q=q, center=False, niter=4)
    components = v[:, :dim].numpy()  # (D, dim)
    mean_np = mean.numpy()
    out = np.empty((n, dim), dtype=np.float32)
    for i in range(0, n, 8192):
        out[i : i + 8192] = (np.asarray(x[i : i + 8192], dtype=np.float32) - mean_np) @ components
    return out


def search_eval(
    vectors: np.ndarray,
    images: torch.Tensor | np.ndarray | None,
    labels: np.ndarray | None,
    k: int = 10,
    queries: int | None = None,
    baselines: tuple[str, ...] = BASELINES,
    metric: str = "l2",
    seed: int = 0,
    device: str = "auto",
) -> dict:
    """Retrieval quality of the autoencoder's ``vectors`` (N, D) next to pixel baselines.

    Returns ``{"k", "queries", "metric", "results": {"autoencoder": {"precision", "map"},
    "pixels": {...}, "pca": {...}}}`` (only the ``baselines`` asked for). ``queries`` None uses
    every item as a query, else a seeded random sample of that many, the same for every method.
    "pca" projects the pixels to D dimensions (see :func:`pca_vectors`). The baselines need the
    pixel vectors in memory: N * C * H * W * 4 bytes (see :func:`pixel_vectors`).
    """
    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim != 2:
        raise AekitError(f"vectors must be (N, D), got shape {vecs.shape}")
    n = vecs.shape[0]
    lab = _as_labels(labels, n)
    if isinstance(baselines, str):  # a lone name, not its letters
        baselines = (baselines,)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise AekitError(f"unknown baseline {names}; choose from {', '.join(BASELINES)}")
    if baselines and (images is None or len(images) != n):
        got = "no images" if images is None else f"{len(images)} images"
        raise AekitError(f"the baselines need the {n} images behind the vectors, got {got}")
    _check_k(k, n)
    if queries is None:
        query_idx = np.arange(n, dtype=np.int64)
    elif not 1 <= queries <= n:
        raise AekitError(f"queries must be between 1 and the {n} items, got {queries}")
    else:
        rng = np.random.default_rng(seed)
        query_idx = np.sort(rng.choice(n, size=queries, replace=False)).astype(np.int64)

    def score(v: np.ndarray) -> dict[str, float]:
        return retrieval_scores(v, lab, k, query_idx, metric=metric, device=device)

    # The autoencoder first, so a bad metric fails before the costly pixel conversion.
    results = {"autoencoder": score(vecs)}
    if baselines:
        pixels = pixel_vectors(images)
        if "pixels" in baselines:
            results["pixels"] = score(pixels)
        if "pca" in baselines:
            results["pca"] = score(pca_vectors(pixels, vecs.shape[1], seed=seed))
    return {"k": k, "queries": len(query_idx), "metric": metric, "results": results}


def _check_k(k: int, n: int) -> None:
    if not 1 <= k < n:
        raise AekitError(
            f"k must be between 1 and {n - 1} (the store has {n} items and each query leaves "
            f"itself out), got {k}"
        )

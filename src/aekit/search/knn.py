"""Nearest-neighbour search over an embedding store: exact (torch, chunked) and FAISS indices.

Every search returns ``(distances, indices)``, both ``(n, k)``, like faiss ``index.search``:
distances float32, indices int64, nearest first. ``l2`` is the Euclidean distance (not
squared); ``cosine`` is ``1 - cos similarity``, with a zero vector's norm taken as 1e-12 so it
is not a NaN (it ends up at distance 1 from everything).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..devices import pick_device
from ..errors import AekitError
from ..files import atomic_write

if TYPE_CHECKING:
    import faiss

METRICS = ("l2", "cosine")
INDEX_KINDS = ("flat", "ivf", "hnsw")
EPS_NORM = 1e-12
DEFAULT_NPROBE = 16  # IVF lists visited per query (clamped to nlist)
DEFAULT_EF_SEARCH = 64  # HNSW candidate list size (raised to k + 1 when k is larger)
DEFAULT_M, MAX_M = 32, 256  # HNSW links per vector; each costs 8 bytes per vector at level 0
DEFAULT_EF_CONSTRUCTION = 200  # HNSW candidates while building
ADD_CHUNK = 65536  # rows per add() call, so a memmap store is read piece by piece

Array = np.ndarray | torch.Tensor


def exact_search(
    queries: Array,
    base: np.ndarray,
    k: int,
    metric: str = "l2",
    farthest: bool = False,
    exclude: np.ndarray | None = None,
    chunk_size: int = 65536,
    device: str | torch.device = "auto",
    query_batch: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest (or, with ``farthest``, farthest) stored vectors of each query, exactly.

    ``base`` (N, D) may be a read-only ``np.memmap``: it is streamed ``chunk_size`` rows at a
    time, each chunk read once, moved to the device and scored against every query batch;
    a running top-k per query is merged across chunks. The largest matrix held is
    ``query_batch x chunk_size`` float32 (1 GiB at the defaults; lower either to save memory).
    ``exclude`` (n,) names, per query, one base index to leave out (-1 for none), e.g. the
    query's own row when it is a stored item. ``device="auto"`` picks CUDA when present, else
    the CPU. The math is float32: float64 would be several times slower and float32 is what
    faiss computes, so both backends agree.
    """
    q, n = _check_queries(queries, base.shape, k, metric, exclude)
    if chunk_size < 1 or query_batch < 1:
        raise AekitError("chunk_size and query_batch must be at least 1")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = dev if device == "auto" else pick_device(str(device))
    q = _prepare(q.to(dev), metric)
    fill = -torch.inf if farthest else torch.inf  # the worst score: never chosen
    best_d = torch.full((n, k), fill, dtype=torch.float32, device=dev)
    best_i = torch.full((n, k), -1, dtype=torch.int64, device=dev)
    ex = None if exclude is None else torch.as_tensor(np.asarray(exclude, np.int64)).to(dev)
    faiss = _faiss_or_none() if dev.type == "cpu" and not farthest else None
    for start in range(0, base.shape[0], chunk_size):
        x = _prepare(_rows(base, start, start + chunk_size).to(dev), metric)
        for b in range(0, n, query_batch):
            rows = slice(b, b + query_batch)
            local = None if ex is None else ex[rows] - start
            if faiss is not None:  # its blocked BLAS search: faster on a CPU (BENCHMARKS.md)
                cd, ci = _faiss_block(faiss, q[rows], x, k, metric, local)
            else:
                d = _distances(q[rows], x, metric)  # (b, chunk)
                if local is not None:
                    hit = torch.nonzero((local >= 0) & (local < x.shape[0])).squeeze(1)
                    d[hit, local[hit]] = fill
                cd, ci = torch.topk(d, min(k, d.shape[1]), dim=1, largest=farthest, sorted=False)
            md = torch.cat([best_d[rows], cd], 1)  # (b, k + kc): merge with the running top-k
            mi = torch.cat([best_i[rows], ci + start], 1)
            md, pos = torch.topk(md, k, dim=1, largest=farthest, sorted=True)
            best_d[rows], best_i[rows] = md, mi.gather(1, pos)
    if metric == "l2":
        best_d = best_d.sqrt()
    return _finite(best_d.cpu().numpy()), best_i.cpu().numpy()


def _faiss_or_none() -> Any:
    """faiss, or None where it is not installed (exact search then stays on torch)."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _faiss_block(
    faiss: Any, q: torch.Tensor, x: torch.Tensor, k: int, metric: str, local: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of the block ``x`` for each query by ``faiss.knn`` (squared l2, or
    1 - cos for unit rows), as our distances; ``local`` (b,): a row of ``x`` to leave out per
    query (out of range: none), so one more is asked for."""
    want = min(k + (local is not None), x.shape[0])
    space = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    d, i = faiss.knn(_numpy(q), _numpy(x), want, metric=space)
    d, i = torch.from_numpy(d), torch.from_numpy(i)
    if metric == "cosine":
        d = 1 - d
    # faiss drops a non-finite distance (vectors too large: float32 overflows) as index -1 at
    # FLT_MAX; as infinity it is what the torch path gives, refused by _finite if it is kept
    d[i < 0] = torch.inf
    if local is not None:
        d[i == local[:, None]] = torch.inf
    return d, i


def check_index_options(
    kind: str,
    count: int,
    nlist: int | None = None,
    nprobe: int | None = None,
    m: int = DEFAULT_M,
    ef_search: int | None = None,
    ef_construction: int | None = None,
) -> None:
    """Refuse index parameters that faiss would abort on or that make no sense for ``count``
    vectors, before any work: nlist, nprobe, ef_search and ef_construction between 1 and
    ``count``, m between 2 and 256. None takes the default (clamped to the index where used:
    nprobe to nlist, the HNSW beams to ``count``)."""
    if kind not in INDEX_KINDS:
        raise AekitError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_KINDS)}")
    for name, value in (("nlist", nlist), ("nprobe", nprobe), ("ef_search", ef_search),
                        ("ef_construction", ef_construction)):  # fmt: skip
        _check_int(name, value, 1, count, f"the store size ({count})", optional=True)
    _check_int("m", m, 2, MAX_M)


def default_nlist(count: int) -> int:
    """IVF lists for ``count`` vectors: 4 * sqrt(N), at most N // 39 (faiss wants 39 training
    points per list)."""
    return min(max(1, round(4 * count**0.5)), max(1, count // 39))


def build_index(
    vectors: np.ndarray,
    kind: str,
    metric: str = "l2",
    nlist: int | None = None,
    m: int = DEFAULT_M,
    ef_construction: int | None = None,
    seed: int = 0,
) -> faiss.Index:
    """A FAISS index over ``vectors`` (N, D): ``flat`` (exact), ``ivf`` or ``hnsw``.

    Cosine indices hold L2-normalised vectors and score by inner product. ``ivf`` uses
    ``nlist`` lists (default ``4 * sqrt(N)``, at most ``N // 39`` since faiss wants 39 training
    points per list), trained on a seeded random sample of at most ``256 * nlist`` vectors.
    ``hnsw`` links each vector to ``m`` neighbours, searching ``ef_construction`` candidates
    (default 200) while building. Vectors are added in chunks, so a memmap is never loaded whole.
    """
    faiss = _faiss()
    _check_metric(metric)
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise AekitError("the store is empty" if vectors.size == 0 else "vectors must be (N, D)")
    count, dim = vectors.shape
    check_index_options(kind, count, nlist=nlist, m=m, ef_construction=ef_construction)
    space = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        index = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, m, space)
        index.hnsw.efConstruction = min(ef_construction or DEFAULT_EF_CONSTRUCTION, count)
    else:
        nlist = default_nlist(count) if nlist is None else nlist
        quantizer = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, space)
        index.cp.seed = seed
        index.cp.spherical = metric == "cosine"  # centroids stay on the unit sphere
        rng = np.random.default_rng(seed)
        take = np.sort(rng.choice(count, size=min(count, 256 * nlist), replace=False))
        index.train(_numpy(_prepare(_rows(vectors, take), metric)))
    for start in range(0, count, ADD_CHUNK):
        index.add(_numpy(_prepare(_rows(vectors, start, start + ADD_CHUNK), metric)))
    return index


def save_index(index: faiss.Index, path: Path) -> None:
    """Write ``index`` to ``path`` atomically: a temp file in the same folder, then a rename."""
    faiss = _faiss()
    path = Path(path)
    if not path.parent.is_dir():
        raise AekitError(f"folder {path.parent} does not exist; create it first")
    atomic_write(path, lambda tmp: faiss.write_index(index, tmp))


def load_index(path: Path) -> faiss.Index:
    """Read an index written by ``save_index``; a missing or corrupt file is an AekitError."""
    faiss = _faiss()
    path = Path(path)
    if not path.is_file():
        raise AekitError(f"no index file at {path}; build one with build_index and save_index")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as e:  # drop faiss's "Error in <function> at <file:line>: " prefix
        reason = re.sub(r"^Error in .*? at \S+:\d+: (Error: )?", "", str(e).strip()) or "unreadable"
        raise AekitError(
            f"{path} is not a readable FAISS index ({reason}); delete it and rebuild it"
        ) from None


def index_search(
    index: faiss.Index,
    queries: Array,
    k: int,
    metric: str = "l2",
    exclude: np.ndarray | None = None,
    nprobe: int | None = None,
    ef_search: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest stored vectors of each query through a FAISS index.

    Same distances and layout as ``exact_search``. Nearest only: a farthest search is always
    exact (``exact_search(..., farthest=True)``), since these indices are built to find near
    points. ``nprobe`` (IVF lists visited, default 16) and ``ef_search`` (HNSW candidates,
    default 64, at least k + 1) trade speed for recall; the index itself is left unchanged.
    Rows where the index found fewer than k results are searched again exhaustively (IVF)
    or with a wider beam (HNSW); if still short, an AekitError says so.
    """
    faiss = _faiss()
    kind = index_kind(index)
    _check_metric(metric)
    if index.metric_type != (faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT):
        raise AekitError(f"this index was not built for metric={metric!r}; rebuild it")
    q, n = _check_queries(queries, (index.ntotal, index.d), k, metric, exclude)
    q = _numpy(_prepare(q, metric))
    for name, value in (("nprobe", nprobe), ("ef_search", ef_search)):
        _check_int(name, value, 1, index.ntotal, f"the index size ({index.ntotal})", optional=True)
    nprobe = DEFAULT_NPROBE if nprobe is None else nprobe
    ef_search = DEFAULT_EF_SEARCH if ef_search is None else ef_search
    kk = k + (exclude is not None)
    if kind == "ivf":
        params = faiss.SearchParametersIVF(nprobe=min(nprobe, index.nlist))
        wider = faiss.SearchParametersIVF(nprobe=index.nlist)  # every list: exhaustive
    elif kind == "hnsw":  # a beam wider than the index holds searches it all: clamped
        ef = min(max(ef_search, kk), index.ntotal)
        params = faiss.SearchParametersHNSW(efSearch=ef)
        wider = faiss.SearchParametersHNSW(efSearch=min(max(4 * ef, 256), index.ntotal))
    else:
        params = wider = None
    dist, idx = index.search(q, kk, params=params)
    short = (idx < 0).any(1)
    if short.any():  # faiss pads with -1 when it found fewer than kk candidates
        dist[short], idx[short] = index.search(q[short], kk, params=wider)
        if (idx < 0).any():
            raise AekitError(
                f"the {kind} index found fewer than k={k} neighbours for some queries; "
                "use a larger nprobe/ef_search or exact_search"
            )
    if exclude is not None:
        ex = np.asarray(exclude, np.int64)[:, None]
        drop = (idx == ex) & (ex >= 0)
        drop[~drop.any(1), -1] = True  # excluded item not among the results: drop the extra
        dist, idx = dist[~drop].reshape(n, k), idx[~drop].reshape(n, k)
    dist = np.sqrt(np.maximum(dist, 0)) if metric == "l2" else 1 - dist
    return _finite(dist.astype(np.float32)), idx.astype(np.int64)


def recall_at_k(approx_indices: np.ndarray, exact_indices: np.ndarray) -> float:
    """Mean over queries of ``|approx ∩ exact| / k`` for two (n, k) index arrays."""
    a, e = np.asarray(approx_indices), np.asarray(exact_indices)
    if a.shape != e.shape or a.ndim != 2 or a.shape[1] == 0:
        raise AekitError(f"recall needs two (n, k) arrays of one shape, got {a.shape}, {e.shape}")
    hits = (a[:, :, None] == e[:, None, :]).any(2).sum(1)  # (n, k, k) -> (n,)
    return float(hits.mean() / a.shape[1])


def index_kind(index: faiss.Index) -> str:
    """``flat``, ``ivf`` or ``hnsw``: which of our index kinds ``index`` is."""
    faiss = _faiss()
    kinds = {"flat": faiss.IndexFlat, "ivf": faiss.IndexIVF, "hnsw": faiss.IndexHNSW}
    for kind, cls in kinds.items():
        if isinstance(index, cls):
            return kind
    raise AekitError(f"unsupported index type {type(index).__name__}; use build_index")


def _faiss() -> Any:
    """faiss, imported on first use so that exact search works without it."""
    faiss = _faiss_or_none()
    if faiss is None:
        raise AekitError("FAISS is not installed; run `pip install faiss-cpu`")
    return faiss


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise AekitError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def _check_queries(
    queries: Array, store: tuple[int, ...], k: int, metric: str, exclude: np.ndarray | None
) -> tuple[torch.Tensor, int]:
    """Validate a search in a store of shape ``store`` (N, D); returns the queries as a float32
    tensor (a copy for numpy input: it may be read-only) and their count."""
    _check_metric(metric)
    if len(store) != 2:
        raise AekitError(f"the store must be (N, D), got shape {store}")
    count, store_dim = store
    if isinstance(queries, torch.Tensor):
        q = queries.detach().float()
    else:
        q = torch.from_numpy(np.array(queries, dtype=np.float32))
    if count == 0:
        raise AekitError("the store is empty; add vectors before searching")
    if q.ndim != 2:
        raise AekitError(f"queries must be (n, D), got shape {tuple(q.shape)}")
    n, dim = q.shape
    if dim != store_dim:
        raise AekitError(f"queries have D={dim} but the store has D={store_dim}")
    if not torch.isfinite(q).all():
        raise AekitError("queries hold NaN or infinite values: give finite vectors")
    if k < 1:
        raise AekitError(f"k={k}: ask for at least 1 neighbour")
    if exclude is not None:
        ex = np.asarray(exclude)
        if ex.shape != (n,) or (n and (ex.min() < -1 or ex.max() >= count)):
            raise AekitError(f"exclude must hold one index in [-1, {count}) per query ({n})")
    avail = count - (exclude is not None)
    if k > avail:
        also = " once each query's own item is left out" if exclude is not None else ""
        raise AekitError(f"k={k} is larger than the store ({avail} items{also}); ask for fewer")
    return q, n


def _check_int(
    name: str, value: Any, lo: int, hi: int | None = None, what: str = "", optional: bool = False
) -> None:
    """``value`` must be an int in [lo, hi] (None too when ``optional``)."""
    if value is None and optional:
        return
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        bounds = f"between {lo} and {what or hi}" if hi is not None else f"at least {lo}"
        raise AekitError(f"{name}={value!r} must be an integer {bounds}")


def _finite(distances: np.ndarray) -> np.ndarray:
    """Distances, refused when float32 overflowed (vectors too large to compare)."""
    if not np.isfinite(distances).all():
        raise AekitError(
            "distances overflow float32: the vectors are too large to compare "
            "(values beyond about 1e18); rebuild the store from a model with sane codes"
        )
    return distances


def _rows(base: np.ndarray, *where: Any) -> torch.Tensor:
    """Rows ``base[start:stop]`` (two ints) or ``base[indices]`` as a float32 CPU tensor."""
    part = base[slice(*where)] if len(where) == 2 else base[where[0]]
    part = np.ascontiguousarray(part, dtype=np.float32)
    if not part.flags.writeable:  # a read-only memmap slice; torch wants its own buffer
        part = part.copy()
    return torch.from_numpy(part)


def _prepare(x: torch.Tensor, metric: str) -> torch.Tensor:
    """Unit-normalise rows for cosine (zero rows stay zero); l2 keeps them as they are."""
    if metric == "l2":
        return x
    return x / x.norm(dim=1, keepdim=True).clamp(min=EPS_NORM)


def _numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32)


def _distances(q: torch.Tensor, x: torch.Tensor, metric: str) -> torch.Tensor:
    """(b, D), (c, D) -> (b, c): squared l2 (‖q‖² − 2q·x + ‖x‖², clamped at 0 where rounding
    dips below) or 1 − cos for rows already unit-normalised."""
    if metric == "cosine":
        return torch.mm(q, x.T).neg_().add_(1)
    d = ((q * q).sum(1)[:, None] + (x * x).sum(1)[None, :]).addmm_(q, x.T, alpha=-2)
    return d.clamp_(min=0)

"""Exact search against a float64 numpy brute force; FAISS indices against exact search."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aekit import AekitError
from aekit.search.knn import (
    INDEX_KINDS,
    METRICS,
    build_index,
    exact_search,
    index_kind,
    index_search,
    load_index,
    recall_at_k,
    save_index,
)

N, DIM, NQ, K = 1000, 16, 50, 5


def brute_force(
    queries: np.ndarray, base: np.ndarray, k: int, metric: str, farthest: bool, exclude=None
) -> tuple[np.ndarray, np.ndarray]:
    """The reference: every distance in float64, fully sorted."""
    q, b = queries.astype(np.float64), base.astype(np.float64)
    if metric == "l2":
        d = np.sqrt(((q[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    else:
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        bn = b / np.linalg.norm(b, axis=1, keepdims=True)
        d = 1 - qn @ bn.T
    if exclude is not None:
        d[np.arange(len(q)), exclude] = -np.inf if farthest else np.inf
    order = np.argsort(-d if farthest else d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, 1), order


def random_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((N, DIM)).astype(np.float32)
    return rng.standard_normal((NQ, DIM)).astype(np.float32), base


def clustered(n: int, dim: int = 32, centers: int = 50, seed: int = 0) -> np.ndarray:
    """Points around random centres: the data IVF and HNSW are made for."""
    rng = np.random.default_rng(seed)
    mids = rng.standard_normal((centers, dim)) * 4
    return (mids[rng.integers(0, centers, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def assert_same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    (d, i), (wd, wi) = got, want
    assert d.dtype == np.float32 and i.dtype == np.int64 and d.shape == i.shape == wi.shape
    np.testing.assert_array_equal(i, wi)
    np.testing.assert_allclose(d, wd, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("farthest", [False, True])
@pytest.mark.parametrize("case", ["one_chunk", "many_chunks", "self_excluded", "memmap"])
def test_exact_search_matches_brute_force(
    metric: str, farthest: bool, case: str, tmp_path: Path
) -> None:
    queries, base = random_data()
    kwargs: dict = {}
    exclude = None
    if case == "many_chunks":
        kwargs = {"chunk_size": 100, "query_batch": 16}
    elif case == "self_excluded":
        queries, exclude = base[:NQ], np.arange(NQ)
        kwargs = {"chunk_size": 30, "query_batch": 16, "exclude": exclude}
    elif case == "memmap":
        np.save(tmp_path / "base.npy", base)
        base = np.load(tmp_path / "base.npy", mmap_mode="r")
        assert isinstance(base, np.memmap) and not base.flags.writeable
        kwargs = {"chunk_size": 128}
    got = exact_search(queries, base, K, metric, farthest=farthest, **kwargs)
    assert_same(got, brute_force(queries, np.asarray(base), K, metric, farthest, exclude))


def test_exact_search_takes_tensor_queries_and_a_cpu_device() -> None:
    queries, base = random_data()
    got = exact_search(torch.from_numpy(queries), base, K, device="cpu")
    assert_same(got, brute_force(queries, base, K, "l2", False))


def test_cosine_treats_a_zero_vector_as_distance_one_from_everything() -> None:
    base = random_data()[1]
    dist, _ = exact_search(np.zeros((1, DIM), np.float32), base, K, "cosine")
    np.testing.assert_allclose(dist, 1.0)


def test_the_excluded_item_is_never_returned_even_when_it_is_the_only_other_choice() -> None:
    base = np.eye(3, dtype=np.float32)
    _, idx = exact_search(base, base, 2, exclude=np.array([0, 1, -1]), chunk_size=1)
    assert set(idx[0]) == {1, 2} and set(idx[1]) == {0, 2} and idx[2, 0] == 2


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("self_excluded", [False, True])
def test_flat_index_is_exact(metric: str, self_excluded: bool) -> None:
    queries, base = random_data(1)
    exclude = np.arange(NQ) if self_excluded else None
    if self_excluded:
        queries = base[:NQ]
    index = build_index(base, "flat", metric)
    assert index_kind(index) == "flat" and index.ntotal == N
    got = index_search(index, queries, K, metric, exclude=exclude)
    assert_same(got, exact_search(queries, base, K, metric, exclude=exclude))


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
@pytest.mark.parametrize("metric", METRICS)
def test_approximate_indices_reach_recall_0_9_with_defaults(kind: str, metric: str) -> None:
    """5,000 points round 50 centres in 32-d, 200 queries, k=10; defaults: ivf nlist=128
    (4 * sqrt(N) capped at N // 39) with nprobe=16, hnsw M=32, efConstruction=200, efSearch=64."""
    data = clustered(5200)
    base, queries = data[:5000], data[5000:]
    index = build_index(base, kind, metric)
    assert index_kind(index) == kind
    if kind == "ivf":
        assert index.nlist == 128
    dist, idx = index_search(index, queries, 10, metric)
    exact = exact_search(queries, base, 10, metric)
    assert recall_at_k(idx, exact[1]) >= 0.9
    assert np.all(np.diff(dist, axis=1) >= 0)
    found = idx == exact[1]  # where a neighbour matches, so must its distance
    np.testing.assert_allclose(dist[found], exact[0][found], rtol=1e-4, atol=1e-5)


def test_ivf_results_missing_from_the_probed_lists_are_filled_exactly() -> None:
    base = clustered(400, centers=10)
    index = build_index(base, "ivf", nlist=10)  # ~40 items per list, fewer than k
    got = index_search(index, base[:20], 100, exclude=np.arange(20), nprobe=1)
    assert_same(got, exact_search(base[:20], base, 100, exclude=np.arange(20)))


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_save_load_round_trip(kind: str, tmp_path: Path) -> None:
    queries, base = random_data(2)
    index = build_index(base, kind, "cosine")
    save_index(index, tmp_path / "store.faiss")
    assert [p.name for p in tmp_path.iterdir()] == ["store.faiss"]  # no temp file left
    loaded = load_index(tmp_path / "store.faiss")
    assert index_kind(loaded) == kind and loaded.ntotal == N
    before = index_search(index, queries, K, "cosine")
    after = index_search(loaded, queries, K, "cosine")
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[0], after[0])


@pytest.mark.parametrize("content", [b"not an index at all", "truncated"])
def test_a_corrupt_index_file_is_an_aekit_error_naming_it(content, tmp_path: Path) -> None:
    path = tmp_path / "broken.faiss"
    if content == "truncated":
        save_index(build_index(random_data()[1], "hnsw"), path)
        content = path.read_bytes()[:500]
    path.write_bytes(content)
    with pytest.raises(AekitError, match=r"broken\.faiss"):
        load_index(path)


def test_missing_faiss_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    with pytest.raises(AekitError, match="pip install faiss-cpu"):
        build_index(random_data()[1], "flat")


def test_recall_at_k() -> None:
    exact = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(np.array([[3, 2, 9, 8], [7, 9, 9, 9]]), exact) == pytest.approx(0.375)


QUERIES, BASE = random_data()
EMPTY = np.zeros((0, DIM), np.float32)
BAD_CALLS = {
    "k_too_large": (lambda: exact_search(QUERIES, BASE, N + 1), r"k=1001 is larger .*1000 items"),
    "k_too_large_excluding": (
        lambda: exact_search(BASE[:3], BASE, N, exclude=np.arange(3)),
        r"k=1000 is larger than the store \(999 items",
    ),
    "k_zero": (lambda: exact_search(QUERIES, BASE, 0), "at least 1"),
    "empty_store": (lambda: exact_search(QUERIES, EMPTY, 1), "the store is empty"),
    "dim_mismatch": (lambda: exact_search(QUERIES[:, :8], BASE, 1), "D=8 .* D=16"),
    "bad_metric": (lambda: exact_search(QUERIES, BASE, 1, "dot"), "l2, cosine"),
    "bad_exclude": (lambda: exact_search(QUERIES, BASE, 1, exclude=np.arange(3)), "exclude"),
    "index_k_too_large": (
        lambda: index_search(build_index(BASE, "flat"), QUERIES, N + 1),
        r"k=1001 is larger .*1000 items",
    ),
    "index_dim_mismatch": (
        lambda: index_search(build_index(BASE, "flat"), QUERIES[:, :8], 1),
        "D=8 .* D=16",
    ),
    "index_wrong_metric": (
        lambda: index_search(build_index(BASE, "flat", "l2"), QUERIES, 1, "cosine"),
        "metric='cosine'",
    ),
    "index_bad_nprobe": (
        lambda: index_search(build_index(BASE, "ivf"), QUERIES, 1, nprobe=0),
        "nprobe=0",
    ),
    "index_bad_metric": (lambda: build_index(BASE, "flat", "dot"), "l2, cosine"),
    "index_bad_kind": (lambda: build_index(BASE, "lsh"), "flat, ivf, hnsw"),
    "index_empty_store": (lambda: build_index(EMPTY, "flat"), "the store is empty"),
    "index_bad_nlist": (lambda: build_index(BASE, "ivf", nlist=N + 1), "nlist=1001"),
    "recall_shapes": (lambda: recall_at_k(np.zeros((2, 3)), np.zeros((2, 4))), "one shape"),
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_bad_input_is_an_aekit_error_saying_what_is_wrong(name: str) -> None:
    call, message = BAD_CALLS[name]
    with pytest.raises(AekitError, match=message):
        call()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_exact_search_through_faiss_equals_the_torch_path(
    metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("faiss")
    from aekit.search import knn as search

    rng = np.random.default_rng(0)
    base = rng.standard_normal((1000, 16)).astype(np.float32)
    base[7] = 0  # a zero vector: cosine distance 1 from everything
    q = rng.standard_normal((40, 16)).astype(np.float32)
    exclude = np.arange(40) * 20  # in every block of 300 rows
    exclude[::5] = -1  # none left out
    kwargs = {"metric": metric, "exclude": exclude, "chunk_size": 300, "device": "cpu"}
    d_faiss, i_faiss = search.exact_search(q, base, 9, **kwargs)
    monkeypatch.setattr(search, "_faiss_or_none", lambda: None)
    d_torch, i_torch = search.exact_search(q, base, 9, **kwargs)
    np.testing.assert_allclose(d_faiss, d_torch, rtol=1e-4, atol=1e-4)
    assert (i_faiss == i_torch).mean() > 0.99  # ties in float32 may swap equal neighbours
    assert not (i_faiss == exclude[:, None]).any()

"""Retrieval quality: relevance, precision@k, mAP@k, pixel and PCA baselines, search_eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aekit.errors import AekitError
from aekit.search import retrieval
from aekit.search.retrieval import (
    average_precision_at_k,
    count_relevant,
    pca_vectors,
    pixel_vectors,
    precision_at_k,
    relevance,
    retrieval_scores,
    search_eval,
)


def clusters(per: int = 40, classes: int = 3, dim: int = 6, seed: int = 0):
    """Tight clusters around 10 * e_c, one label each: (vectors, labels)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per)
    vectors = 10 * np.eye(dim, dtype=np.float32)[labels] + rng.normal(0, 0.1, (len(labels), dim))
    return vectors.astype(np.float32), labels


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_separated_clusters_score_perfectly(metric: str) -> None:
    vectors, labels = clusters()
    q = np.arange(len(labels))
    assert retrieval_scores(vectors, labels, 5, q, metric=metric) == {"precision": 1.0, "map": 1.0}


def test_hand_made_store() -> None:
    # 1-d points and labels:  0:0.0 A   1:1.0 A   2:2.2 B   3:3.5 A   4:10.0 B;  k = 2.
    # q0 -> 1 (A), 2 (B): rel [1,0]  P@2 = 1/2  R = 2  AP = (1*1 + 1/2*0) / min(2,2) = 0.5
    # q2 -> 1 (A), 3 (A): rel [0,0]  P@2 = 0    R = 1  AP = 0
    # q3 -> 2 (B), 1 (A): rel [0,1]  P@2 = 1/2  R = 2  AP = (0 + 1/2*1) / min(2,2) = 0.25
    # q4 -> 3 (A), 2 (B): rel [0,1]  P@2 = 1/2  R = 1  AP = (0 + 1/2*1) / min(2,1) = 0.5
    # precision = (0.5 + 0 + 0.5 + 0.5) / 4 = 0.375;  mAP = (0.5 + 0 + 0.25 + 0.5) / 4 = 0.3125
    vectors = np.array([[0.0], [1.0], [2.2], [3.5], [10.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 0, 1])
    q = np.array([0, 2, 3, 4])
    scores = retrieval_scores(vectors, labels, 2, q)
    assert scores["precision"] == pytest.approx(0.375)
    assert scores["map"] == pytest.approx(0.3125)
    rel = relevance(labels, q, np.array([[1, 2], [1, 3], [2, 1], [3, 2]]))
    np.testing.assert_array_equal(rel, [[1, 0], [0, 0], [0, 1], [0, 1]])
    np.testing.assert_array_equal(count_relevant(labels, q), [2, 1, 2, 1])
    np.testing.assert_allclose(average_precision_at_k(rel, [2, 1, 2, 1]), [0.5, 0, 0.25, 0.5])


@pytest.mark.parametrize(
    ("rel", "n_rel", "ap"),
    [
        ([1, 0, 1], 5, (1 + 2 / 3) / 3),  # R > k: divide by k
        ([1, 1, 0], 2, 1.0),  # R < k and both found at the top: perfect, not 2/3
        ([0, 1, 0], 1, 0.5),  # the one relevant item at rank 2: P@2 / min(3, 1)
        ([0, 0, 1], 1, 1 / 3),
        ([0, 0, 0], 0, 0.0),  # nothing relevant in the store: 0, not a NaN
        ([1, 0, 0], 0, 0.0),
    ],
)
def test_average_precision_normalisation(rel: list[int], n_rel: int, ap: float) -> None:
    got = average_precision_at_k(np.array([rel], dtype=bool), np.array([n_rel]))
    assert got.shape == (1,)
    assert got[0] == pytest.approx(ap)


def test_precision_at_k_is_mean_fraction() -> None:
    rel = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    assert precision_at_k(rel) == pytest.approx((0.5 + 1 + 0) / 3)


def test_shuffled_labels_give_chance_precision() -> None:
    classes = 5
    vectors, labels = clusters(per=400, classes=classes, dim=8)
    shuffled = np.random.default_rng(1).permutation(labels)
    q = np.arange(len(labels))
    scores = retrieval_scores(vectors, shuffled, 10, q)
    assert scores["precision"] == pytest.approx(1 / classes, abs=0.02)
    assert retrieval_scores(vectors, labels, 10, q)["precision"] == 1.0


def test_multi_label_relevance_and_counts() -> None:
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]])
    q = np.array([0, 2, 4])
    result = np.array([[1, 2, 3, 4], [0, 1, 3, 4], [0, 1, 2, 3]])
    rel = relevance(labels, q, result)
    np.testing.assert_array_equal(rel, [[0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    # q0 shares with {2}, q1 with {2}, q2 with {0, 1}, q3 with nobody, q4 has no label at all.
    np.testing.assert_array_equal(count_relevant(labels, np.arange(5)), [1, 1, 2, 0, 0])
    # The same as a torch tensor, as an ImageSet holds its labels.
    np.testing.assert_array_equal(relevance(torch.as_tensor(labels), q, result), rel)


def test_multi_label_counts_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random((200, 6)) < 0.2).astype(np.int64)
    q = np.arange(200)
    share = (labels @ labels.T) > 0
    np.fill_diagonal(share, False)
    np.testing.assert_array_equal(count_relevant(labels, q, batch=7), share.sum(1))


def test_search_results_are_scored_against_labels() -> None:
    # Single-label counts R leave the query itself out.
    labels = np.array([3, 3, 3, 7, 9])
    np.testing.assert_array_equal(count_relevant(labels, np.arange(5)), [2, 2, 2, 0, 0])
    # A -1 (no result) is never relevant.
    assert not relevance(labels, np.array([0]), np.array([[-1]]))[0, 0]


@pytest.mark.parametrize("as_tensor", [True, False])
def test_pixel_vectors_scale_and_layout(as_tensor: bool) -> None:
    images = np.arange(7 * 2 * 3 * 3, dtype=np.int64).reshape(7, 2, 3, 3) % 256
    images = images.astype(np.uint8)
    images[0, 0, 0, 0], images[0, 0, 0, 1] = 0, 255
    given = torch.from_numpy(images) if as_tensor else images
    out = pixel_vectors(given, batch=3)  # batches of 3, 3, 1
    assert out.dtype == np.float32 and out.shape == (7, 18)
    assert out[0, 0] == 0.0 and out[0, 1] == 1.0
    np.testing.assert_allclose(out, images.reshape(7, -1) / 255, rtol=1e-6)


def test_pixel_vectors_from_memmap(tmp_path) -> None:
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.uint8, (5, 1, 4, 4))
    mm[:] = 51
    mm.flush()
    out = pixel_vectors(np.load(tmp_path / "x.npy", mmap_mode="r"), batch=2)
    np.testing.assert_allclose(out, 0.2, rtol=1e-6)


def test_pixel_vectors_rejects_float_images() -> None:
    with pytest.raises(AekitError, match="uint8"):
        pixel_vectors(torch.rand(2, 1, 4, 4))


def test_pca_to_the_data_subspace_keeps_distances() -> None:
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(50, 3)))  # (50, 3) orthonormal columns
    x = (rng.normal(size=(300, 3)) * [5, 2, 1]) @ basis.T + rng.normal(size=50)
    x = x.astype(np.float32)
    y = pca_vectors(x, 3, fit_max=100)  # fitted on a sample, applied to all rows
    assert y.shape == (300, 3) and y.dtype == np.float32
    d_x = np.linalg.norm(x[:, None] - x[None], axis=2)
    d_y = np.linalg.norm(y[:, None] - y[None], axis=2)
    np.testing.assert_allclose(d_y, d_x, atol=1e-3 * d_x.max())


@pytest.mark.parametrize(
    ("rows", "features", "dim", "fit_max", "width"),
    [
        (40, 10, 4, 20000, 4),
        (40, 10, 1, 20000, 1),
        (40, 10, 25, 20000, 10),  # clamped to the features
        (12, 30, 25, 20000, 12),  # clamped to the rows
        (40, 30, 25, 8, 8),  # clamped to the fit sample
    ],
)
def test_pca_vectors_shape(rows: int, features: int, dim: int, fit_max: int, width: int) -> None:
    x = np.random.default_rng(0).random((rows, features), dtype=np.float32)
    out = pca_vectors(x, dim, fit_max=fit_max)
    assert out.shape == (rows, width)
    np.testing.assert_array_equal(out, pca_vectors(x, dim, fit_max=fit_max))  # seeded


def test_pca_vectors_rejects_zero_dim() -> None:
    with pytest.raises(AekitError, match="at least 1"):
        pca_vectors(np.ones((4, 3), np.float32), 0)


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 8, 8), generator=torch.Generator().manual_seed(seed)).to(
        torch.uint8
    )


def test_search_eval_structure_and_shared_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    vectors, labels = clusters(per=30, dim=3)
    images = random_images(len(labels))
    seen_queries: list[np.ndarray] = []
    seen_dims: list[int] = []
    real_search, real_pca = retrieval.exact_search, retrieval.pca_vectors

    def search(queries, base, k, **kw):
        seen_queries.append(np.asarray(kw["exclude"]).copy())
        return real_search(queries, base, k, **kw)

    def pca(pixels, dim, **kw):
        seen_dims.append(dim)
        return real_pca(pixels, dim, **kw)

    monkeypatch.setattr(retrieval, "exact_search", search)
    monkeypatch.setattr(retrieval, "pca_vectors", pca)
    out = search_eval(vectors, images, labels, k=5, queries=30, seed=3)
    json.dumps(out)  # JSON-ready as it is
    assert set(out) == {"k", "queries", "metric", "results"}
    assert (out["k"], out["queries"], out["metric"]) == (5, 30, "l2")
    assert set(out["results"]) == {"autoencoder", "pixels", "pca"}
    for scores in out["results"].values():
        assert set(scores) == {"precision", "map"}
        assert all(isinstance(v, float) and 0 <= v <= 1 for v in scores.values())
    assert len(seen_queries) == 3 and len(np.unique(seen_queries[0])) == 30
    for q in seen_queries[1:]:
        np.testing.assert_array_equal(q, seen_queries[0])
    assert seen_dims == [3]  # PCA to the autoencoder's width
    # The perfect "autoencoder" beats pixels of random images, which score about chance (1/3).
    auto, pixels = out["results"]["autoencoder"], out["results"]["pixels"]
    assert auto == {"precision": 1.0, "map": 1.0}
    assert pixels["precision"] < 0.7 and pixels["map"] < 0.7


def test_search_eval_all_queries_and_baseline_subsets() -> None:
    vectors, labels = clusters(per=10, dim=3)
    images = random_images(len(labels))
    out = search_eval(vectors, images, labels, k=3, baselines=("pca",), metric="cosine")
    assert out["queries"] == 30 and out["metric"] == "cosine"
    assert set(out["results"]) == {"autoencoder", "pca"}
    only = search_eval(vectors, None, labels, k=3, baselines=())
    assert set(only["results"]) == {"autoencoder"}
    again = search_eval(vectors, images, labels, k=3, queries=12, seed=5)
    assert again == search_eval(vectors, images, labels, k=3, queries=12, seed=5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": None}, "search-eval needs labelled images"),
        ({"baselines": ("pixels", "sift")}, "unknown baseline 'sift'; choose from pixels, pca"),
        ({"k": 30}, "k must be between 1 and 29"),
        ({"k": 0}, "k must be between 1 and 29"),
        ({"queries": 0}, "queries must be between 1 and the 30 items"),
        ({"queries": 31}, "queries must be between 1 and the 30 items"),
        ({"labels": np.zeros(29, np.int64)}, "29 labels for 30 items"),
        ({"labels": np.zeros(30)}, "labels must be integers"),
        ({"images": None}, "the baselines need the 30 images"),
        ({"metric": "hamming"}, "unknown metric"),
    ],
)
def test_search_eval_bad_inputs(change: dict, message: str) -> None:
    vectors, labels = clusters(per=10, dim=3)
    args = {"images": random_images(30), "labels": labels} | change
    with pytest.raises(AekitError, match=message):
        search_eval(vectors, **args)

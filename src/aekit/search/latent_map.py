"""``aekit map``: an embedding store's vectors in 2-D (PCA, UMAP or t-SNE), and how much the map
keeps of the store's neighbourhoods.

PCA (scikit-learn) is the fast default; UMAP (``umap-learn``) and t-SNE (scikit-learn) show
clusters better. A large store is fitted on ``fit`` vectors drawn at random (seeded); PCA and
UMAP then place the others with the fitted model; t-SNE cannot place new points, so it maps
a store no larger than ``fit`` (and says so otherwise). The map is saved beside the vectors
(``map.npy``, tied to the store's generation) for the web page to reuse.

The measure: for up to ``QUERIES`` labelled items, the fraction of their ``K`` nearest neighbours
(the item itself left out) that share their label, in the full space and on the map. A map that
keeps the neighbourhoods has about the same agreement as the full space.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AekitError
from .embed import Embeddings
from .knn import exact_search
from .stores import save_map

METHODS = ("pca", "umap", "tsne")
DEFAULT_FIT = 50_000
QUERIES = 2_000
K = 10
CHUNK = 65_536  # rows transformed at a time (a memory-mapped store is read piece by piece)


@dataclass
class LatentMap:
    """The 2-D map of a store and how it was made."""

    points: np.ndarray  # float32 (N, 2)
    method: str
    fitted_on: int  # vectors the method was fitted on (the others were placed by it)
    agreement_full: float | None  # k-NN label agreement in the full space (None: unlabelled)
    agreement_map: float | None  # the same on the map
    k: int = K


def _fit_transform(vectors: np.ndarray, method: str, fit_rows: np.ndarray, seed: int) -> np.ndarray:
    sample = np.asarray(vectors[np.sort(fit_rows)], dtype=np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(2.0, (len(sample) - 1) / 3))
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(sample)
    if method == "pca":
        from sklearn.decomposition import PCA

        model = PCA(2, random_state=seed).fit(sample)
    else:
        try:
            import umap
        except ImportError as e:
            raise AekitError(
                "--method umap needs umap-learn, which is not installed: pip install "
                "'aekit[map]' (or pip install umap-learn), or use --method pca or tsne"
            ) from e
        # its spectral start needs more points than 3 (scipy's eigh refuses k >= N): fewer
        # start at random
        init = "spectral" if len(sample) > 3 else "random"
        model = umap.UMAP(n_components=2, random_state=seed, n_jobs=1, init=init).fit(sample)
    out = np.empty((len(vectors), 2), dtype=np.float32)
    for s in range(0, len(vectors), CHUNK):
        out[s : s + CHUNK] = model.transform(np.asarray(vectors[s : s + CHUNK], dtype=np.float32))
    return out


def knn_agreement(points: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int) -> float:
    """The mean fraction of each query's ``k`` nearest neighbours (itself excluded) that share
    its label, in the space of ``points``."""
    _, idx = exact_search(np.asarray(points[queries], dtype=np.float32), points, k,
                          exclude=queries)  # fmt: skip
    return float((labels[idx] == labels[queries][:, None]).mean())


def map_embeddings(
    store: Embeddings | str | Path,
    method: str = "pca",
    fit: int = DEFAULT_FIT,
    seed: int = 0,
    save: bool = True,
    measure: bool = True,
) -> LatentMap:
    """Project ``store``'s vectors to 2-D with ``method`` and, with ``measure``, measure the map
    (see the module); ``save`` writes it into the store folder as ``map.npy``."""
    if method not in METHODS:
        raise AekitError(f"unknown --method {method!r}: use one of {', '.join(METHODS)}")
    if not isinstance(fit, int) or fit < 3:
        raise AekitError(f"--fit must be a whole number of vectors, at least 3, got {fit!r}")
    store = store if isinstance(store, Embeddings) else Embeddings.load(store)
    n = len(store)
    if n < 3:
        raise AekitError(f"the store holds {n} vector{'s' * (n != 1)}: a map needs at least 3")
    if method == "tsne" and n > fit:
        raise AekitError(
            f"t-SNE places only the points it is fitted on, and the store holds {n:,} (more "
            f"than --fit {fit:,}): raise --fit to {n:,}, or use --method pca or umap"
        )
    rng = np.random.default_rng(seed)
    fit_rows = np.arange(n) if n <= fit else rng.choice(n, size=fit, replace=False)
    points = _fit_transform(store.vectors, method, fit_rows, seed)
    labels = store.class_labels()
    full = on_map = None
    if measure and labels is not None and n > K:
        queries = np.sort(rng.choice(n, size=min(QUERIES, n), replace=False))
        full = knn_agreement(np.asarray(store.vectors), labels, queries, K)
        on_map = knn_agreement(points, labels, queries, K)
    result = LatentMap(points, method, len(fit_rows), full, on_map)
    if save and store.path is not None:
        info = {"method": method, "fitted_on": len(fit_rows), "seed": seed}
        save_map(store.path, store.manifest, points, info)
    return result

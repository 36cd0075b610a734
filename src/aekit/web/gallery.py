"""The served embedding store, with its items' pictures loaded once at start."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.masks import image_mask
from ..errors import AekitError
from ..search.embed import Embeddings
from ..search.latent_map import map_embeddings
from ..search.stores import MAP_INFO

MAX_MAP_POINTS = 100_000  # points the page's map gets: a seeded sample of a larger store


class Gallery:
    """An ``Embeddings`` store and the uint8 image of every item."""

    def __init__(self, store: Embeddings, run: Path, latent_dim: int) -> None:
        if not store.made_by(run):
            # its vectors live in another model's latent space: image queries would be nonsense
            raise AekitError(
                f"the gallery {store.path} was made by another model "
                f"({store.manifest.get('run')}); embed with {run} or serve that run"
            )
        if store.dim != latent_dim:
            raise AekitError(
                f"the gallery {store.path} holds {store.dim}-d vectors but {run} encodes "
                f"{latent_dim}-d: embed with {run}"
            )
        self.store = store
        self._map: dict[str, Any] = {}
        self._map_lock = threading.Lock()
        store.preload()  # every item's pictures now, not per request

    def __len__(self) -> int:
        return len(self.store)

    def image(self, i: int) -> torch.Tensor:
        """uint8 (C, H, W) of item ``i`` (0 <= i < len)."""
        return self.store.image(i)

    def mask(self, i: int, size_hw: tuple[int, int]) -> torch.Tensor | None:
        """Item ``i``'s defect mask as (1, H, W) 0/1 floats at ``size_hw`` (nearest pixels), where
        the item is a test image of a folder in MVTec AD's layout; None otherwise."""
        path = self.store.items[i].get("path")
        found = None if path is None else image_mask(Path(path))
        if found is None:
            return None
        mask = torch.from_numpy(found).float()[None, None]
        return F.interpolate(mask, size=size_hw, mode="nearest")[0]

    def item(self, i: int) -> dict[str, Any]:
        it = self.store.items[i]
        return {"index": i, "label": it["label"], "class": it.get("class"),
                "image_url": f"/api/gallery/{i}/image"}  # fmt: skip

    def search_many(
        self, queries: list[tuple[np.ndarray, int, bool, str, int | None]]
    ) -> list[list[dict[str, Any]]]:
        """Results of many (vector, k, farthest, metric, exclude) queries: one store search per
        group of queries that share k, direction, metric and whether they exclude an item."""
        out: list[list[dict[str, Any]]] = [[] for _ in queries]
        groups: dict[tuple[int, bool, str, bool], list[int]] = {}
        for pos, (_, k, farthest, metric, exclude) in enumerate(queries):
            groups.setdefault((k, farthest, metric, exclude is None), []).append(pos)
        for (k, farthest, metric, no_exclude), positions in groups.items():
            vectors = np.stack([np.asarray(queries[p][0], np.float32).reshape(-1)
                                for p in positions])  # fmt: skip
            ex = None if no_exclude else np.array([queries[p][4] for p in positions], np.int64)
            dist, idx = self.store.search(vectors, k, farthest=farthest, metric=metric, exclude=ex)
            for row, pos in enumerate(positions):
                out[pos] = [
                    {"rank": r + 1, **self.item(int(i)), "distance": float(d)}
                    for r, (d, i) in enumerate(zip(dist[row], idx[row], strict=True))
                ]
        return out

    def map_view(self) -> dict[str, Any]:
        """The store's 2-D map for the page: the one ``aekit map`` saved (read again when it
        changes), else PCA computed here once (not written into the store). At most
        ``MAX_MAP_POINTS`` points, a seeded sample of a larger store (``index`` names them)."""
        with self._map_lock:
            stamp = self._map_stamp()
            if self._map.get("stamp") != stamp or "answer" not in self._map:
                self._map = {"stamp": stamp, "answer": self._make_map()}
            return self._map["answer"]

    def _map_stamp(self) -> int | None:
        try:
            return (self.store.path / MAP_INFO).stat().st_mtime_ns  # type: ignore[operator]
        except (OSError, TypeError):
            return None

    def _make_map(self) -> dict[str, Any]:
        saved = self.store.saved_map()
        if saved is not None:
            points, info = saved
            method, fitted_on, source = info.get("method"), info.get("fitted_on"), "saved"
        else:
            made = map_embeddings(self.store, "pca", save=False, measure=False)
            points, method, fitted_on, source = made.points, "pca", made.fitted_on, "computed"
        n = len(points)
        rows = None
        if n > MAX_MAP_POINTS:
            rows = np.sort(np.random.default_rng(0).choice(n, MAX_MAP_POINTS, replace=False))
            points = points[rows]
        labels = self.store.class_labels()
        # about six significant digits: the answer stays small and the points where they were
        span = float(np.abs(points).max()) if len(points) else 1.0
        digits = max(0, 5 - int(np.floor(np.log10(span)))) if span > 0 else 6
        xy = np.asarray(points, np.float64).round(digits)
        return {
            "count": n, "shown": len(xy), "method": method, "fitted_on": fitted_on,
            "source": source, "x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(),
            "index": None if rows is None else rows.tolist(),
            "labels": None if labels is None else
            (labels if rows is None else labels[rows]).tolist(),
            "classes": {str(k): v for k, v in sorted(self.store.label_names().items())},
        }  # fmt: skip

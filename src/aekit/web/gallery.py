"""The served embedding store with its items' pictures held in memory.

``Embeddings.images`` reloads a dataset per call; a server answers many thumbnail requests, so
each part's dataset is loaded once at start instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import ImageSet, load_dataset
from ..embed import Embeddings, model_hash
from ..errors import AekitError


class Gallery:
    """An ``Embeddings`` store and the uint8 image of every item."""

    def __init__(self, store: Embeddings, run: Path, latent_dim: int) -> None:
        made_by = store.manifest.get("model_hash")
        if made_by and made_by != model_hash(run):
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
        self._sets: dict[tuple[str, str], ImageSet] = {}
        for part in store.manifest["parts"]:
            key = (part["source"], part["split"])
            if key not in self._sets:
                self._sets[key] = load_dataset(*key, data_dir=part.get("data_dir"),
                                               image_size=part.get("image_size"))  # fmt: skip

    def __len__(self) -> int:
        return len(self.store)

    def image(self, i: int) -> torch.Tensor:
        """uint8 (C, H, W) of item ``i`` (0 <= i < len)."""
        it = self.store.items[i]
        return self._sets[(it["source"], it["split"])].images[it["item"]]

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

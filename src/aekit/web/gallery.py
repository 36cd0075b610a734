"""The served embedding store, with its items' pictures loaded once at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

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
        for part in store.manifest["parts"]:  # load every item's pictures now, not per request
            store.dataset(part["source"], part["split"])

    def __len__(self) -> int:
        return len(self.store)

    def image(self, i: int) -> torch.Tensor:
        """uint8 (C, H, W) of item ``i`` (0 <= i < len)."""
        return self.store.image(i)

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

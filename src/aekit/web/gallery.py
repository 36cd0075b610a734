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

    def search(
        self, vectors: np.ndarray, k: int, farthest: bool, metric: str, exclude: int | None
    ) -> list[dict[str, Any]]:
        """Ranked results of one query, as ``Embeddings.search`` finds them."""
        ex = None if exclude is None else np.array([exclude], dtype=np.int64)
        dist, idx = self.store.search(vectors, k, farthest=farthest, metric=metric, exclude=ex)
        return [{"rank": r + 1, **self.item(int(i)), "distance": float(d)}
                for r, (d, i) in enumerate(zip(dist[0], idx[0], strict=True))]  # fmt: skip

"""Embedding stores: the latent vectors of a dataset under one trained model, kept on disk.

EMB/embeddings.npy  float32 (N, D), opened memory-mapped
EMB/items.jsonl     per item: index, label, class, source, split, item (index in its split), path
EMB/manifest.json   run, model hash, source(s), split(s), dim, count, created, file names
EMB/index.faiss     optional FAISS index (``aekit index``), with EMB/index.json describing it

A save is all or nothing and a load checks every file: see :mod:`aekit.search.stores`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import ImageSet, load_dataset, same_source
from ..data.streamed import Listing, SplitStream
from ..errors import AekitError
from ..models import Autoencoder, check_input
from ..training.distributed import SINGLE, Group
from ..training.runs import WEIGHTS
from .encoding import encode, fingerprint
from .stores import INDEX, INDEX_INFO, read_index_info, read_map, read_store, write_store


@dataclass
class Embeddings:
    """Latent vectors (N, D) with what each row is; ``search`` finds neighbours among them."""

    vectors: np.ndarray
    items: list[dict[str, Any]]
    manifest: dict[str, Any]
    path: Path | None = None
    _index: Any = field(default=None, repr=False)
    _datasets: dict[tuple[str, str], ImageSet] = field(default_factory=dict, repr=False)
    # parts whose pictures are read file by file (checked once), and those that are not
    _by_file: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def labels(self) -> np.ndarray | None:
        """(N,) int labels, (N, L) multi-label 0/1, or None when the items are unlabelled."""
        raw = [it["label"] for it in self.items]
        return None if any(v is None for v in raw) else np.asarray(raw, dtype=np.int64)

    def class_labels(self) -> np.ndarray | None:
        """(N,) int labels when every item has one single label, else None (what a map colours
        by and its agreement counts)."""
        labels = self.labels()
        return labels if labels is not None and labels.ndim == 1 else None

    def label_names(self) -> dict[int, str]:
        """Class name of each single label that has one, as the items record them."""
        names: dict[int, str] = {}
        for it in self.items:
            if it.get("class") is not None and isinstance(it.get("label"), int):
                names.setdefault(it["label"], str(it["class"]))
        return names

    def saved_map(self) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The 2-D map ``aekit map`` saved for this generation of the store, and its info."""
        return None if self.path is None else read_map(self.path, self.manifest)

    def index_info(self) -> dict[str, Any] | None:
        """What ``aekit index`` built for this store (kind, metric, ...), if anything."""
        return None if self.path is None else read_index_info(self.path, self.manifest)

    def made_by(self, run: str | Path) -> bool:
        """Whether ``run``'s model, with its weights as they are now, made these vectors (a
        store that recorded no model hash is taken to be): image queries encoded by another
        model would be compared with vectors of another latent space."""
        recorded = self.manifest.get("model_hash")
        return not recorded or recorded == model_hash(run)

    def search(
        self,
        queries: np.ndarray | torch.Tensor,
        k: int = 7,
        farthest: bool = False,
        metric: str = "l2",
        exclude: np.ndarray | None = None,
        exact: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices), both (n, k), nearest first (farthest first with ``farthest``).

        Uses the store's FAISS index when one was built for ``metric`` (nearest only), unless
        ``exact``; otherwise exact chunked search. ``exclude``: (n,) item to leave out per query.
        """
        from .knn import exact_search, index_search

        q = np.asarray(queries.detach().cpu() if isinstance(queries, torch.Tensor) else queries,
                       dtype=np.float32)  # fmt: skip
        q = q.reshape(1, -1) if q.ndim == 1 else q
        info = None if exact or farthest else self.index_info()
        if info and info["metric"] == metric:
            return index_search(
                self._load_index(),
                q,
                k,
                metric=metric,
                exclude=exclude,
                nprobe=info.get("nprobe"),
                ef_search=info.get("ef_search"),
            )
        return exact_search(q, self.vectors, k, metric=metric, farthest=farthest, exclude=exclude)

    def _load_index(self) -> Any:
        """The store's FAISS index, loaded once; refused when it indexes other vectors."""
        from .knn import load_index

        if self._index is None:
            path = self.path / INDEX  # type: ignore[operator]
            if not path.is_file():
                raise AekitError(
                    f"{self.path} describes an index ({INDEX_INFO}) but {INDEX} is missing: "
                    f"rebuild it with aekit index {self.path}, or search with --exact"
                )
            index = load_index(path)
            if (index.ntotal, index.d) != (len(self), self.dim):
                raise AekitError(
                    f"{path} indexes {index.ntotal} vectors of {index.d}-d but the store holds "
                    f"{len(self)} x {self.dim}: it belongs to another store; rebuild it with "
                    f"aekit index {self.path} (or search with --exact)"
                )
            self._index = index
        return self._index

    def dataset(self, source: str, split: str) -> ImageSet:
        """The dataset a part of the store came from, loaded once and kept; refused when it no
        longer holds every stored item's image."""
        key = (source, split)
        if key not in self._datasets:
            part = self._part(key)
            ds = load_dataset(source, split, data_dir=part.get("data_dir"),
                              image_size=part.get("image_size"))  # fmt: skip
            top = max((it["item"] for it in self.items if (it["source"], it["split"]) == key),
                      default=-1)  # fmt: skip
            if top >= len(ds) or (
                part.get("fingerprint") not in (None, fingerprint(ds.images, part["count"]))
            ):
                now = (f"that split now holds {len(ds)} images" if top >= len(ds)
                       else "its images are no longer the ones embedded")  # fmt: skip
                raise AekitError(
                    f"the store {self.path} holds {source} [{split}] but {now}: the data "
                    "changed since it was embedded; embed it again"
                )
            self._datasets[key] = ds
        return self._datasets[key]

    def _part(self, key: tuple[str, str]) -> dict[str, Any]:
        return next((p for p in self.manifest["parts"] if (p["source"], p["split"]) == key), {})

    def _read_by_file(self, key: tuple[str, str]) -> bool:
        """Whether a part's pictures are read from its items' files, one at a time (a folder
        too large to decode into memory); its files are checked on the first."""
        if key not in self._by_file:
            from .embed_stream import check_files, per_file

            part = self._part(key)
            items = [it for it in self.items if (it["source"], it["split"]) == key]
            by_file = per_file(part, items)
            if by_file:
                check_files(part, items, self.path)
            self._by_file[key] = by_file
        return self._by_file[key]

    def preload(self) -> None:
        """Read every part's pictures now (a server's, not per request), and check that they
        are the ones embedded; a folder too large for memory is checked, then read a file per
        picture shown."""
        for part in self.manifest["parts"]:
            key = (part["source"], part["split"])
            if not self._read_by_file(key):
                self.dataset(*key)

    def image(self, i: int) -> torch.Tensor:
        """uint8 (C, H, W): stored item ``i``'s image, from its source (from its file alone,
        where the source is a folder too large to decode into memory)."""
        it = self.items[i]
        key = (it["source"], it["split"])
        if self._read_by_file(key):
            from .embed_stream import read_files

            return read_files([it["path"]], self._part(key)["shape"])[0]
        return self.dataset(*key).images[it["item"]]

    def images(self, indices: np.ndarray | list[int]) -> torch.Tensor:
        """The stored items' images, uint8 (n, C, H, W), from their sources."""
        return torch.stack([self.image(int(i)) for i in np.asarray(indices).reshape(-1)])

    def caption(self, i: int) -> str:
        it = self.items[i]
        return str(it["class"] if it.get("class") is not None else f"#{i}")

    def save(self, path: str | Path) -> Path:
        """Write the store into the folder ``path``, all or nothing (an existing store there
        stays whole until the new one is complete); returns it."""
        path = Path(path)
        self.manifest = write_store(path, self.vectors, self.items, self.manifest)
        self.path, self._index = path, None
        return path

    @classmethod
    def load(cls, path: str | Path) -> Embeddings:
        """Open a store (vectors memory-mapped), checking every file and that they agree."""
        path = Path(path)
        vectors, items, manifest = read_store(path)
        return cls(vectors, items, manifest, path)


def model_hash(run: str | Path) -> str:
    """sha256 of a run's weights file: the identity of the model that made a store."""
    h = hashlib.sha256()
    with open(Path(run) / WEIGHTS, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def items_of(ds: ImageSet | Listing, start: int = 0) -> list[dict[str, Any]]:
    """One record per image: global index, label, class name, and where it came from."""
    labels = None if ds.labels is None else ds.labels.tolist()
    records = []
    for i in range(len(ds)):
        label = None if labels is None else labels[i]
        name = None
        if isinstance(label, int) and label < len(ds.classes):
            name = ds.classes[label]
        elif isinstance(label, list):
            name = "+".join(ds.classes[j] for j, v in enumerate(label) if v) or "none"
        records.append({"index": start + i, "label": label, "class": name, "source": ds.source,
                        "split": ds.split, "item": i,
                        "path": ds.paths[i] if ds.paths else None})  # fmt: skip
    return records


def embed(
    model: Autoencoder,
    data: ImageSet | SplitStream,
    batch_size: int = 256,
    run: str | Path | None = None,
    progress: bool | None = None,
    data_dir: str | None = None,
    image_size: int | None = None,
    group: Group = SINGLE,
) -> Embeddings:
    """Encode every image of ``data`` with ``model`` into an (unsaved) ``Embeddings`` store.

    ``run``, ``data_dir`` and ``image_size`` are recorded so that the store can encode new
    query images and show its items' pictures later. In a torchrun ``group`` each process
    encodes its share of the images and every process gets all the vectors. A
    ``SplitStream`` (a split too large for memory) is read in chunks of ``batch_size``,
    in its order: the same vectors and items as from memory.
    """
    check_input(model, data.shape, f"{data.source} [{data.split}]", run)
    show = progress if group.main else False
    if isinstance(data, SplitStream):
        from .embed_stream import encode_stream

        vectors, found, mark = encode_stream(model, data, batch_size, show, group)
    else:
        codes = encode(model, data.images[group.shard(len(data))], batch_size, show)
        vectors = group.gather_rows(torch.from_numpy(codes)).numpy()
        found, mark = data, fingerprint(data.images, len(data))
    part = {"source": data.source, "split": data.split, "count": len(found),
            "data_dir": data_dir, "image_size": image_size, "shape": list(data.shape),
            "fingerprint": mark}  # fmt: skip
    manifest = {
        "run": str(Path(run).resolve()) if run else None,
        "model_hash": model_hash(run) if run else None,
        "model": vars(model.config).copy(),
        "source": data.source, "split": data.split,
        "parts": [part],
        "dim": int(vectors.shape[1]), "count": len(found),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip
    return Embeddings(vectors, items_of(found), manifest)


def append(store: Embeddings, more: Embeddings) -> Embeddings:
    """``store`` followed by ``more``; both must come from the same model, and ``more`` must
    not hold a part (the same data and split) that ``store`` has."""
    if store.manifest.get("model_hash") != more.manifest.get("model_hash"):
        raise AekitError(
            f"cannot append: {store.path} was made by another model "
            f"({store.manifest.get('run')}); embed with that run or make a new store"
        )
    for part in more.manifest["parts"]:
        check_new_part(store, part)
    if len(more):
        check_same_size(store, tuple(more.image(0).shape))
    offset = len(store)
    items = [{**it, "index": offset + i} for i, it in enumerate(more.items)]
    manifest = {**store.manifest, "count": offset + len(more),
                "parts": store.manifest["parts"] + more.manifest["parts"]}  # fmt: skip
    vectors = np.concatenate([np.asarray(store.vectors), more.vectors])
    return Embeddings(vectors, store.items + items, manifest)


def check_same_size(store: Embeddings, shape: tuple[int, ...]) -> None:
    """Refuse images of another (C, H, W) than the store's: its pictures and search-eval stack
    them (a family of any size, unet, could otherwise fill one store at two sizes)."""
    have = tuple(store.image(0).shape) if len(store) else tuple(shape)
    if have != tuple(shape):
        raise AekitError(
            f"{store.path} holds {'x'.join(map(str, have))} images and these are "
            f"{'x'.join(map(str, shape))}: a store's images share one size; pass "
            f"--image-size {have[1]} or embed them into a new --out"
        )


def check_new_part(store: Embeddings, part: dict[str, Any]) -> None:
    """Refuse to append data the store already holds: every item would be there twice.

    The same source and split is the same data however it is spelled, whichever --data-dir holds
    its copy and whatever --image-size was given (a store's images all have its model's size).
    """
    if any(
        p["split"] == part["split"] and same_source(p["source"], part["source"])
        for p in store.manifest["parts"]
    ):
        raise AekitError(
            f"{part['source']} [{part['split']}] is already in {store.path}: appending it again "
            "would store each of its items twice; embed it into a new --out instead"
        )

"""Training on a ``wds:`` split streamed from its shards (:mod:`aekit.data.wds` reads them): each
epoch every process reads its own shards in an order drawn from the run's generator, DataLoader
workers decode them (each worker its shards), and samples pass a shuffle buffer, so memory holds
the buffer and the batches in flight, never the set."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .images import UNREADABLE
from .wds import SHUFFLE_BUFFER, Shards, Skipped, decode, held_out, label_of, read_samples


@dataclass
class Stream:
    """A split streamed from its shards for training (see the module docstring)."""

    shards: Shards
    shape: tuple[int, int, int]  # (C, H, W)
    workers: int = 2
    buffer: int = SHUFFLE_BUFFER
    wanted: Callable[[int | None], bool] | None = None  # keep a sample by its label (--classes)
    limit: int | None = None

    def rank_urls(self, rank: int, world: int) -> list[str]:
        return self.shards.urls[rank::world]

    def count(self, rank: int, world: int) -> int:
        """Images this rank trains on per epoch (before --classes; at most --limit / world)."""
        n = sum(self.shards.train_count(u) for u in self.rank_urls(rank, world))
        return n if self.limit is None else min(n, -(-self.limit // world))

    def batches(
        self, batch_size: int, gen: torch.Generator, rank: int = 0, world: int = 1
    ) -> Iterator[torch.Tensor]:
        """One epoch of this rank's uint8 batches: its shards in an order drawn from ``gen``
        (the same draw on every rank), decoded by DataLoader workers."""
        from torch.utils.data import DataLoader

        mine = self.rank_urls(rank, world)
        order = torch.randperm(len(mine), generator=gen).tolist()
        urls = [mine[i] for i in order]
        salt = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        part = _Part(self, urls, salt + 7919 * rank, world)
        workers = min(self.workers, len(urls))
        loader = DataLoader(part, batch_size=batch_size, num_workers=workers,
                            prefetch_factor=2 if workers else None,
                            persistent_workers=False)  # fmt: skip
        yield from loader


class _Part(torch.utils.data.IterableDataset):
    """One rank's shards for one epoch: samples decoded to uint8 (C, H, W) tensors."""

    def __init__(self, stream: Stream, urls: list[str], seed: int, world: int) -> None:
        self.stream, self.urls, self.seed, self.world = stream, urls, seed, world

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        st = self.stream
        c, h, w = st.shape
        rng = random.Random(self.seed * 1000 + worker)
        skipped = Skipped(st.shards.source)
        buffer: list[torch.Tensor] = []
        limit = None if st.limit is None else -(-st.limit // self.world)
        taken = 0
        for sample in read_samples(self.urls, skipped, workers=True):
            if st.shards.carve and held_out(sample["__key__"]):
                continue
            if st.wanted is not None and not st.wanted(label_of(sample)):
                continue
            if limit is not None:  # --limit: the first images of the epoch's order, per worker
                taken += 1
                if taken > -(-limit // workers):
                    break
            try:
                image = torch.from_numpy(decode(sample, c, (w, h)).copy())  # Pillow: read-only
            except UNREADABLE as exc:
                skipped(exc, f"{sample['__key__']}")
                continue
            if len(buffer) < st.buffer:
                buffer.append(image)
                continue
            i = rng.randrange(len(buffer))
            buffer[i], image = image, buffer[i]
            yield image
        rng.shuffle(buffer)
        yield from buffer

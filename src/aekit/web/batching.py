"""Micro-batching: concurrent requests' work runs as one batch.

FastAPI runs the plain ``def`` handlers in a thread pool. When several requests arrive together,
the first to get here waits ``wait_s`` for company, then runs everyone's items through one call
(one encoder pass, one scan of the store) and hands each caller its own result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """``submit(item)`` returns ``fn([.., item, ..])[its position]``, batching concurrent calls."""

    def __init__(self, fn: Callable[[list[T]], list[R]], max_batch: int = 64,
                 wait_s: float = 0.002) -> None:  # fmt: skip
        self.fn, self.max_batch, self.wait_s = fn, max_batch, wait_s
        self._lock = threading.Lock()
        self._pending: list[tuple[T, Future[R]]] = []
        self._leading = False
        self.batches = 0  # how many calls of fn so far (for tests and curiosity)

    def submit(self, item: T) -> R:
        future: Future[R] = Future()
        with self._lock:
            self._pending.append((item, future))
            lead = not self._leading
            self._leading = self._leading or lead
        if lead:
            time.sleep(self.wait_s)  # let concurrent requests join this batch
            self._drain()
        return future.result()

    def _drain(self) -> None:
        """Run batches until nothing is pending; then the next caller leads."""
        while True:
            with self._lock:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                if not batch:
                    self._leading = False
                    return
            self.batches += 1
            try:
                results = self.fn([item for item, _ in batch])
            except Exception as e:  # every caller of the batch sees the failure
                for _, f in batch:
                    f.set_exception(e)
                continue
            for (_, f), r in zip(batch, results, strict=True):
                f.set_result(r)

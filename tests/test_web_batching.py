"""MicroBatcher: concurrent calls share batches, and each caller gets its own answer."""

from __future__ import annotations

import threading

from aekit.web.batching import MicroBatcher


def run_concurrently(batcher: MicroBatcher, items: list[int]) -> dict[int, object]:
    results: dict[int, object] = {}
    start = threading.Barrier(len(items))

    def call(x: int) -> None:
        start.wait()
        try:
            results[x] = batcher.submit(x)
        except Exception as e:  # collected for the assertions
            results[x] = e

    threads = [threading.Thread(target=call, args=(x,)) for x in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return results


def test_concurrent_calls_are_batched_and_answered_each() -> None:
    seen: list[list[int]] = []
    batcher = MicroBatcher(lambda xs: (seen.append(list(xs)), [x * x for x in xs])[1],
                           max_batch=8, wait_s=0.05)  # fmt: skip
    results = run_concurrently(batcher, list(range(20)))
    assert results == {x: x * x for x in range(20)}
    assert sorted(x for batch in seen for x in batch) == list(range(20))  # each item once
    assert max(len(b) for b in seen) <= 8
    assert batcher.batches == len(seen) < 20  # fewer calls than requests


def test_a_failing_batch_fails_its_callers_and_the_next_call_works() -> None:
    def fn(xs: list[int]) -> list[int]:
        if 13 in xs:
            raise ValueError("bad item")
        return xs

    batcher = MicroBatcher(fn, wait_s=0.05)
    results = run_concurrently(batcher, [1, 13])
    assert isinstance(results[13], ValueError)
    # 1 fails too when it shared 13's batch (the usual case), else it got its answer
    assert isinstance(results[1], ValueError) or results[1] == 1
    assert batcher.submit(5) == 5


def test_single_call_runs_alone() -> None:
    batcher = MicroBatcher(lambda xs: [str(x) for x in xs], wait_s=0)
    assert batcher.submit(3) == "3" and batcher.batches == 1

"""The dynamic batcher: concurrent queries of one modality share one encoder call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import numpy as np
import torch

from embedstore.api.batcher import Batcher, BatchSizeMismatch, DynamicBatcher


class RecordingEncoder:
    """A deterministic encoder that records the batch sizes it was called with."""

    def __init__(self, delay: float = 0.02) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.delay = delay
        self.threads: set[str] = set()

    def __call__(self, encoder: str, modality: str, batch: torch.Tensor) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.calls.append((encoder, modality, len(batch)))
        threading.Event().wait(self.delay)
        return batch.float().sum(dim=tuple(range(1, batch.dim()))).numpy()[:, None] * np.ones(
            (1, 4), np.float32
        )


class GatedEncoder(RecordingEncoder):
    """Blocks its first call until ``gate`` opens (``entered`` says it is inside the model)."""

    def __init__(self) -> None:
        super().__init__(delay=0.0)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self, encoder: str, modality: str, batch: torch.Tensor) -> np.ndarray:
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return super().__call__(encoder, modality, batch)


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the event loop until ``condition()`` holds (a state, not a time, is awaited)."""
    for _ in range(30_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never happened: {what}")


def test_queries_that_queue_behind_a_busy_model_share_one_call() -> None:
    enc = GatedEncoder()
    # an hour-long window: were it ever waited out, the test would hang (and time out)
    batcher = DynamicBatcher(enc, max_batch=64, wait_ms=3_600_000)

    async def main() -> list[np.ndarray]:
        first = asyncio.ensure_future(batcher.embed("m", "text", torch.full((3,), 0.0)))
        await _until(enc.entered.is_set, "the first query reaches the model")
        rest = [
            asyncio.ensure_future(batcher.embed("m", "text", torch.full((3,), float(i))))
            for i in range(1, 40)
        ]
        await _until(lambda: batcher.queued(("m", "text")) == 39, "39 queries queue behind it")
        enc.gate.set()
        return await asyncio.gather(first, *rest)

    out = asyncio.run(main())
    assert [float(v[0]) for v in out] == [3.0 * i for i in range(40)]  # each gets its own row
    assert [n for *_, n in enc.calls] == [1, 39]  # the idle model took the first at once
    assert threading.main_thread().name not in enc.threads  # never on the event loop thread


def test_an_idle_model_gets_a_query_at_once_whatever_the_window() -> None:
    enc = RecordingEncoder(delay=0.0)
    batcher = DynamicBatcher(enc, max_batch=32, wait_ms=3_600_000)  # an hour

    async def main() -> np.ndarray:
        return await asyncio.wait_for(batcher.embed("m", "text", torch.ones(2)), 60)

    assert float(asyncio.run(main())[0]) == 2.0
    assert [n for *_, n in enc.calls] == [1]


def test_a_busy_model_holds_the_batch_for_the_window() -> None:
    """While ``busy()`` says the model is taken (e.g. by indexing), queries wait to join up."""
    enc = RecordingEncoder(delay=0.0)
    model_taken = threading.Event()
    model_taken.set()
    batcher = DynamicBatcher(enc, max_batch=4, wait_ms=3_600_000, busy=model_taken.is_set)

    async def main() -> list[np.ndarray]:
        jobs = [asyncio.ensure_future(batcher.embed("m", "text", torch.ones(1))) for _ in range(3)]
        await _until(lambda: all(not j.done() for j in jobs), "three queries queued")
        await asyncio.sleep(0)
        assert enc.calls == []  # held: the model is busy and the batch is not full
        jobs.append(asyncio.ensure_future(batcher.embed("m", "text", torch.ones(1))))
        return await asyncio.gather(*jobs)  # the fourth fills the batch: dispatched at once

    assert len(asyncio.run(main())) == 4
    assert [n for *_, n in enc.calls] == [4]


def test_batches_are_capped_and_keyed_by_modality() -> None:
    enc = RecordingEncoder(delay=0.0)
    batcher = DynamicBatcher(enc, max_batch=8, wait_ms=5)

    async def main() -> None:
        jobs = [batcher.embed("m", "text", torch.ones(2)) for _ in range(20)]
        jobs += [batcher.embed("m", "audio", torch.ones(5)) for _ in range(3)]
        await asyncio.gather(*jobs)
        await batcher.aclose()

    asyncio.run(main())
    assert all(n <= 8 for *_, n in enc.calls)
    assert sum(n for _, m, n in enc.calls if m == "text") == 20
    assert sum(n for _, m, n in enc.calls if m == "audio") == 3


def test_an_encoder_error_reaches_every_waiting_query_and_the_batcher_recovers() -> None:
    fail = {"on": True}

    def encode(encoder: str, modality: str, batch: torch.Tensor) -> np.ndarray:
        if fail["on"]:
            raise RuntimeError("model exploded")
        return np.zeros((len(batch), 2), np.float32)

    batcher = DynamicBatcher(encode, max_batch=4, wait_ms=1)

    async def main() -> None:
        results = await asyncio.gather(
            *(batcher.embed("m", "text", torch.ones(1)) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, RuntimeError) for r in results)
        fail["on"] = False
        assert (await batcher.embed("m", "text", torch.ones(1))).shape == (2,)

    asyncio.run(main())


def test_a_call_returning_too_few_results_fails_every_request() -> None:
    """Results are never zipped short: each request gets an answer or an error."""
    batcher: Batcher[str, int, int] = Batcher(lambda key, items: [0] * (len(items) - 1), wait_ms=0)

    async def main() -> list[object]:
        return await asyncio.wait_for(
            asyncio.gather(*(batcher.submit("k", i) for i in range(3)), return_exceptions=True),
            60,
        )

    results = asyncio.run(main())
    assert all(isinstance(r, BatchSizeMismatch) for r in results), results


def test_a_failing_observer_costs_no_answer_and_the_worker_lives_on() -> None:
    def observe(key: object, size: int, seconds: float) -> None:
        raise RuntimeError("metrics exploded")

    gate = threading.Event()

    def run(key: str, items: list[int]) -> list[int]:
        assert gate.wait(30)
        return [i * 2 for i in items]

    batcher: Batcher[str, int, int] = Batcher(run, wait_ms=0, observe=observe)

    async def main() -> list[int]:
        first = asyncio.ensure_future(batcher.submit("k", 1))
        await _until(lambda: batcher.busy(), "the first call runs")
        second = asyncio.ensure_future(batcher.submit("k", 2))  # queued behind the first
        await _until(lambda: batcher.queued("k") == 1, "the second query queues")
        gate.set()
        return list(await asyncio.wait_for(asyncio.gather(first, second), 60))

    assert asyncio.run(main()) == [2, 4]


def test_closing_the_batcher_ends_every_waiting_request() -> None:
    gate = threading.Event()

    def run(key: str, items: list[int]) -> list[int]:
        gate.wait(30)
        return items

    batcher: Batcher[str, int, int] = Batcher(run, wait_ms=0)

    async def main() -> list[object]:
        jobs = [asyncio.ensure_future(batcher.submit("k", 0))]
        await _until(batcher.busy, "the first call runs")
        jobs += [asyncio.ensure_future(batcher.submit("k", i)) for i in (1, 2)]
        await _until(lambda: batcher.queued("k") == 2, "two wait behind it")
        await batcher.aclose()
        gate.set()
        return await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), 60)

    assert all(isinstance(r, asyncio.CancelledError) for r in asyncio.run(main()))


def test_idle_keys_are_forgotten() -> None:
    """Keys can be many (one per search filter): an idle key leaves no queue or task behind."""
    batcher: Batcher[str, int, int] = Batcher(lambda key, items: [i * 2 for i in items], wait_ms=1)

    async def main() -> list[int]:
        out = await asyncio.gather(*(batcher.submit(f"filter-{i % 50}", i) for i in range(200)))
        await asyncio.sleep(0.05)
        return list(out)

    assert asyncio.run(main()) == [i * 2 for i in range(200)]
    assert batcher._queues == {}

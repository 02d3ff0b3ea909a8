"""The dynamic batcher: concurrent queries of one modality share one encoder call."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
import torch

from embedstore.api.batcher import Batcher, DynamicBatcher


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


def test_concurrent_queries_share_one_call() -> None:
    enc = RecordingEncoder()
    batcher = DynamicBatcher(enc, max_batch=64, wait_ms=20)

    async def main() -> list[np.ndarray]:
        items = [torch.full((3,), float(i)) for i in range(40)]
        return await asyncio.gather(*(batcher.embed("m", "text", it) for it in items))

    out = asyncio.run(main())
    assert [float(v[0]) for v in out] == [3.0 * i for i in range(40)]  # each gets its own row
    assert sum(n for *_, n in enc.calls) == 40
    assert len(enc.calls) <= 2 and max(n for *_, n in enc.calls) >= 20
    assert threading.main_thread().name not in enc.threads  # never on the event loop thread


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


def test_a_single_query_waits_at_most_the_window() -> None:
    enc = RecordingEncoder(delay=0.0)
    batcher = DynamicBatcher(enc, max_batch=32, wait_ms=50)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await batcher.embed("m", "text", torch.ones(1))
        return loop.time() - t0

    assert asyncio.run(main()) == pytest.approx(0.05, abs=0.2)


def test_idle_keys_are_forgotten() -> None:
    """Keys can be many (one per search filter): an idle key leaves no queue or task behind."""
    batcher: Batcher[str, int, int] = Batcher(lambda key, items: [i * 2 for i in items], wait_ms=1)

    async def main() -> list[int]:
        out = await asyncio.gather(*(batcher.submit(f"filter-{i % 50}", i) for i in range(200)))
        await asyncio.sleep(0.05)
        return list(out)

    assert asyncio.run(main()) == [i * 2 for i in range(200)]
    assert batcher._queues == {}

"""Dynamic batching: concurrent requests with the same key share one call (model or index)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio.to_thread
import numpy as np
import torch

In = TypeVar("In")
Out = TypeVar("Out")
K = TypeVar("K", bound=Hashable)

BatchObserver = Callable[[Any, int, float], None]
"""Called as ``observe(key, batch_size, seconds)`` after every batched call."""


@dataclass
class _Queue(Generic[In, Out]):
    items: asyncio.Queue[tuple[In, asyncio.Future[Out]]] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None


class Batcher(Generic[K, In, Out]):
    """Collect requests for up to ``wait_ms`` (or ``max_batch`` items) and run them in one call.

    ``run(key, items)`` runs in a worker thread, never on the event loop, and returns one result
    per item. One worker task per key keeps at most one call per key in flight, so requests that
    arrive while a call is busy form the next batch.
    """

    def __init__(
        self,
        run: Callable[[K, list[In]], Sequence[Out]],
        *,
        max_batch: int = 32,
        wait_ms: float = 2.0,
        observe: BatchObserver | None = None,
    ) -> None:
        self._run_batch = run
        self.max_batch = max(1, max_batch)
        self.wait_s = max(0.0, wait_ms) / 1000.0
        self._observe = observe
        self._queues: dict[K, _Queue[In, Out]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, key: K, item: In) -> Out:
        """Queue ``item`` under ``key`` and wait for its result."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (e.g. a new test client): start afresh
            self._queues = {}
            self._loop = loop
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        if queue.worker is None or queue.worker.done():
            queue.worker = loop.create_task(self._work(key, queue))
        future: asyncio.Future[Out] = loop.create_future()
        queue.items.put_nowait((item, future))
        return await future

    async def _collect(
        self, items: asyncio.Queue[tuple[In, asyncio.Future[Out]]]
    ) -> list[tuple[In, asyncio.Future[Out]]]:
        batch = [await items.get()]
        deadline = time.monotonic() + self.wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(items.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(items.get(), remaining))
            except TimeoutError:
                break
        return [(item, fut) for item, fut in batch if not fut.done()]

    async def _work(self, key: K, queue: _Queue[In, Out]) -> None:
        items = queue.items
        while True:
            if items.empty() and self._queues.get(key) is queue:
                del self._queues[key]  # idle: forget the key (keys may be many, e.g. filters)
                return
            batch = await self._collect(items)
            if not batch:
                continue
            start = time.perf_counter()
            try:
                inputs = [item for item, _ in batch]
                results = await anyio.to_thread.run_sync(self._run_batch, key, inputs)
            except Exception as e:  # handed to every waiting request
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            if self._observe is not None:
                self._observe(key, len(batch), time.perf_counter() - start)
            for result, (_, fut) in zip(results, batch):
                if not fut.done():
                    fut.set_result(result)

    async def aclose(self) -> None:
        """Stop the worker tasks (pending requests are cancelled)."""
        for queue in self._queues.values():
            if queue.worker is not None:
                queue.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await queue.worker
        self._queues = {}


EncodeFn = Callable[[str, str, torch.Tensor], np.ndarray]


class DynamicBatcher(Batcher[tuple[str, str], torch.Tensor, np.ndarray]):
    """Batches preprocessed query items per (encoder, modality) into one ``encode`` call."""

    def __init__(
        self,
        encode: EncodeFn,
        *,
        max_batch: int = 32,
        wait_ms: float = 2.0,
        observe: BatchObserver | None = None,
    ) -> None:
        def run(key: tuple[str, str], items: list[torch.Tensor]) -> list[np.ndarray]:
            return list(encode(key[0], key[1], torch.stack(items)))

        super().__init__(run, max_batch=max_batch, wait_ms=wait_ms, observe=observe)

    async def embed(self, encoder: str, modality: str, item: torch.Tensor) -> np.ndarray:
        """Embed one preprocessed item; returns its float32 ``(dim,)`` vector."""
        return await self.submit((encoder, modality), item)

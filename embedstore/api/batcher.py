"""Dynamic batching: concurrent queries of one (encoder, modality) share one model call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread
import numpy as np
import torch

logger = logging.getLogger(__name__)

EncodeFn = Callable[[str, str, torch.Tensor], np.ndarray]
BatchObserver = Callable[[str, str, int, float], None]


@dataclass
class _Queue:
    items: asyncio.Queue[tuple[torch.Tensor, asyncio.Future[np.ndarray]]] = field(
        default_factory=asyncio.Queue
    )
    worker: asyncio.Task[None] | None = None


class DynamicBatcher:
    """Collect queries for up to ``wait_ms`` (or ``max_batch`` items) and embed them in one call.

    ``encode(encoder, modality, batch)`` runs in a worker thread, never on the event loop; one
    worker task per (encoder, modality) keeps at most one call per key in flight, so queries that
    arrive while the model is busy form the next batch.
    """

    def __init__(
        self,
        encode: EncodeFn,
        *,
        max_batch: int = 32,
        wait_ms: float = 2.0,
        observe: BatchObserver | None = None,
    ) -> None:
        self._encode = encode
        self.max_batch = max(1, max_batch)
        self.wait_s = max(0.0, wait_ms) / 1000.0
        self._observe = observe
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def embed(self, encoder: str, modality: str, item: torch.Tensor) -> np.ndarray:
        """Embed one preprocessed item; returns its float32 ``(dim,)`` vector."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (e.g. a new test client): start afresh
            self._queues = {}
            self._loop = loop
        key = (encoder, modality)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        if queue.worker is None or queue.worker.done():
            queue.worker = loop.create_task(self._run(key, queue.items))
        future: asyncio.Future[np.ndarray] = loop.create_future()
        queue.items.put_nowait((item, future))
        return await future

    async def _collect(
        self, items: asyncio.Queue[tuple[torch.Tensor, asyncio.Future[np.ndarray]]]
    ) -> list[tuple[torch.Tensor, asyncio.Future[np.ndarray]]]:
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

    async def _run(
        self,
        key: tuple[str, str],
        items: asyncio.Queue[tuple[torch.Tensor, asyncio.Future[np.ndarray]]],
    ) -> None:
        encoder, modality = key
        while True:
            batch = await self._collect(items)
            if not batch:
                continue
            start = time.perf_counter()
            try:
                tensors = [item for item, _ in batch]
                vectors = await anyio.to_thread.run_sync(self._stack_encode, key, tensors)
            except Exception as e:  # handed to every waiting request
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            if self._observe is not None:
                self._observe(encoder, modality, len(batch), time.perf_counter() - start)
            for row, (_, fut) in zip(vectors, batch):
                if not fut.done():
                    fut.set_result(row)

    def _stack_encode(self, key: tuple[str, str], tensors: list[torch.Tensor]) -> np.ndarray:
        return self._encode(key[0], key[1], torch.stack(tensors))

    async def aclose(self) -> None:
        """Stop the worker tasks (pending queries are cancelled)."""
        for queue in self._queues.values():
            if queue.worker is not None:
                queue.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await queue.worker
        self._queues = {}

"""Dynamic batching: concurrent requests with the same key share one call (model or index)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio.to_thread
import numpy as np
import torch

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")
K = TypeVar("K", bound=Hashable)

BatchObserver = Callable[[Any, int, float], None]
"""Called as ``observe(key, batch_size, seconds)`` after every batched call."""


BUSY_POLL_S = 0.001  # while a batch waits for a busy model, how often it checks the model again


@dataclass
class _Queue(Generic[In, Out]):
    items: asyncio.Queue[tuple[In, asyncio.Future[Out]]] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None
    forming: list[tuple[In, asyncio.Future[Out]]] = field(default_factory=list)


class BatchSizeMismatch(RuntimeError):
    """A batched call returned a different number of results than it was given items."""


class Batcher(Generic[K, In, Out]):
    """Run requests with the same key together, in one call of ``run(key, items)``.

    ``run`` runs in a worker thread, never on the event loop, and returns one result per item.
    One worker task per key keeps at most one call per key in flight. A request that finds the
    model idle is dispatched at once, with whatever is queued beside it; only while the model is
    busy (``busy()``: a call of this batcher is running, or the ``busy`` callable says so) does the
    worker wait, up to ``wait_ms``, for more requests to join, and it dispatches as soon as the
    model is free. Requests that queue behind a running call form the next batch (up to
    ``max_batch``). Every request ends with its result or an exception, whatever ``run`` or
    ``observe`` do. ``run_alone`` runs one item in the caller's thread, counted as busy.
    """

    def __init__(
        self,
        run: Callable[[K, list[In]], Sequence[Out]],
        *,
        max_batch: int = 32,
        wait_ms: float = 2.0,
        observe: BatchObserver | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self._run_batch = run
        self.max_batch = max(1, max_batch)
        self.wait_s = max(0.0, wait_ms) / 1000.0
        self._observe = observe
        self._busy = busy
        self._running = 0  # calls of this batcher in flight
        self._queues: dict[K, _Queue[In, Out]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def busy(self) -> bool:
        """Whether the model (or index) is busy now: new requests would wait for it anyway."""
        return self._running > 0 or (self._busy is not None and self._busy())

    def idle(self) -> bool:
        """Nothing queued or running here, and the model free: a request may skip the queue."""
        return not self._queues and not self.busy()

    def queued(self, key: K) -> int:
        """How many requests under ``key`` wait for a call (not counting a running one)."""
        queue = self._queues.get(key)
        return 0 if queue is None else queue.items.qsize() + len(queue.forming)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Count as a running call while the block runs (on the event loop thread)."""
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1

    def run_alone(
        self, key: K, item: In, run: Callable[[K, list[In]], Sequence[Out]] | None = None
    ) -> Out:
        """Run one item now, in the calling (worker) thread, observed like a batch of one.

        For a request that found the batcher ``idle()``: it skips the queue and a thread hop.
        ``run`` replaces the batch function for this call (one that reuses what the caller
        already looked up).
        """
        start = time.perf_counter()
        results = (run or self._run_batch)(key, [item])
        if len(results) != 1:
            raise BatchSizeMismatch(f"call for {key!r} returned {len(results)} results for 1")
        if self._observe is not None:
            try:
                self._observe(key, 1, time.perf_counter() - start)
            except Exception:
                log.exception("batch observer failed for %r", key)
        return results[0]

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

    async def _collect(self, queue: _Queue[In, Out]) -> list[tuple[In, asyncio.Future[Out]]]:
        items = queue.items
        batch = queue.forming = [await items.get()]
        try:
            while len(batch) < self.max_batch and not items.empty():  # what queued meanwhile
                batch.append(items.get_nowait())
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch and self.busy():  # join up behind a busy model
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(items.get(), min(remaining, BUSY_POLL_S)))
                except TimeoutError:
                    continue
        except BaseException as e:  # cancelled (aclose): the requests taken here end too
            for _, fut in batch:
                _fail(fut, e)
            raise
        finally:
            queue.forming = []
        return [(item, fut) for item, fut in batch if not fut.done()]  # done: timed out, gone

    async def _work(self, key: K, queue: _Queue[In, Out]) -> None:
        items = queue.items
        batch: list[tuple[In, asyncio.Future[Out]]] = []
        try:
            while True:
                if items.empty() and self._queues.get(key) is queue:
                    del self._queues[key]  # idle: forget the key (keys may be many, e.g. filters)
                    return
                batch = await self._collect(queue)
                if batch:
                    await self._call(key, batch)
                batch = []
        except BaseException as e:  # cancelled (aclose) or a bug here: nobody is left waiting
            for _, fut in batch:
                _fail(fut, e)
            while not items.empty():
                _fail(items.get_nowait()[1], e)
            if self._queues.get(key) is queue:
                del self._queues[key]
            raise

    async def _call(self, key: K, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        """One call for ``batch``; each future gets its result or the call's exception."""
        start = time.perf_counter()
        self._running += 1
        try:
            inputs = [item for item, _ in batch]
            results = await anyio.to_thread.run_sync(self._run_batch, key, inputs)
            if len(results) != len(batch):
                raise BatchSizeMismatch(
                    f"batched call for {key!r} returned {len(results)} results for "
                    f"{len(batch)} requests"
                )
        except Exception as e:  # handed to every waiting request
            for _, fut in batch:
                _fail(fut, e)
            return
        finally:
            self._running -= 1
        for result, (_, fut) in zip(results, batch):
            if not fut.done():
                fut.set_result(result)
        if self._observe is not None:
            try:
                self._observe(key, len(batch), time.perf_counter() - start)
            except Exception:  # metrics must never cost an answer
                log.exception("batch observer failed for %r", key)

    async def aclose(self) -> None:
        """Stop the worker tasks (pending requests are cancelled)."""
        for queue in list(self._queues.values()):
            if queue.worker is not None:
                queue.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await queue.worker
        self._queues = {}


def _fail(fut: asyncio.Future[Any], error: BaseException) -> None:
    if fut.done():
        return
    if isinstance(error, asyncio.CancelledError):
        fut.cancel()
    else:
        fut.set_exception(error)


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
        busy: Callable[[], bool] | None = None,
    ) -> None:
        def run(key: tuple[str, str], items: list[torch.Tensor]) -> list[np.ndarray]:
            return list(encode(key[0], key[1], torch.stack(items)))

        super().__init__(run, max_batch=max_batch, wait_ms=wait_ms, observe=observe, busy=busy)

    async def embed(self, encoder: str, modality: str, item: torch.Tensor) -> np.ndarray:
        """Embed one preprocessed item; returns its float32 ``(dim,)`` vector."""
        return await self.submit((encoder, modality), item)

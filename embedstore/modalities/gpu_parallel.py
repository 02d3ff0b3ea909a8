"""``decode_many`` with JPEGs decoded in device batches while worker processes take the rest.

On CUDA the device work runs on a stream of its own (``decode_stream``) and is finished when its
results are yielded. They were allocated on that stream, so a consumer that reads them on another
stream keeps them until that work is done (or calls ``record_stream``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterable
from typing import Any

import torch

from embedstore.modalities.gpu_decode import is_jpeg_name, load_images
from embedstore.modalities.parallel import DecodeTask, decode_many
from embedstore.modalities.pool import DecodePool
from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits

_END = object()


def takes(task: DecodeTask) -> bool:
    """True for the tasks the device path decodes: vision ``.jpg``/``.jpeg`` paths, ``exif`` option only."""
    return task.modality == "vision" and is_jpeg_name(task.source) and set(task.options) <= {"exif"}


def decode_many_on_device(
    tasks: Iterable[DecodeTask],
    workers: int,
    *,
    device: str | torch.device,
    batch_size: int = 32,
    timeout_s: float | None = None,
    limits: DecodeLimits | None = None,
    shared: DecodePool | None = None,
) -> Generator[tuple[DecodeTask, Any], None, None]:
    """Like ``decode_many``, but JPEG images are decoded ``batch_size`` at a time on ``device``.

    Every other task goes to ``decode_many`` in a background thread (``workers`` processes, the
    usual time budget); results of both arrive as they are ready, in no particular order. Every
    image (``vision``) result is a tensor on ``device``, the workers' ones (PNG, WebP, ...) moved
    there, so that images of one batch share a device; other results are as ``decode_many`` gives
    them. A JPEG the device path cannot take is decoded by the exact path in this thread, without
    the per-task time budget. With a ``shared`` pool (``modalities.pool``), its workers decode
    the rest instead of ``workers`` new ones.
    """
    limits = limits or DEFAULT_LIMITS
    todo = list(tasks)
    fast = [t for t in todo if takes(t)]
    rest = [t for t in todo if not takes(t)]
    ahead = max(2 * batch_size, 1)
    pool = _Pool(rest, workers, timeout_s, limits, ahead, shared) if rest else None
    if pool is not None:
        pool.start()
    finished = pool is None
    stream = decode_stream(device)
    try:
        for s in range(0, len(fast), max(batch_size, 1)):
            chunk = fast[s : s + batch_size]
            for exif in (True, False):
                part = [t for t in chunk if bool(t.options.get("exif", True)) is exif]
                if part:
                    with _on(stream):
                        results = load_images([t.source for t in part], device, limits, exif=exif)
                    _finished(stream)
                    yield from zip(part, results)
            while not finished and (item := pool.get(block=False)) is not None:  # type: ignore[union-attr]
                finished = item is _END
                if not finished:
                    yield _placed(item, device, stream)
        while not finished:
            item = pool.get(block=True)  # type: ignore[union-attr]
            finished = item is _END
            if item is not None and not finished:
                yield _placed(item, device, stream)
    finally:
        if pool is not None:
            pool.close()
    if pool is not None and pool.error is not None:
        raise pool.error


def decode_stream(device: str | torch.device) -> torch.cuda.Stream | None:
    """A side stream for the decode work on a CUDA ``device`` (None elsewhere).

    On the default stream, the decoder's copies and its synchronisation would wait behind every
    model kernel already queued there (the model runs in another thread): decoding and
    embedding would take turns instead of overlapping.
    """
    dev = torch.device(device)
    return torch.cuda.Stream(dev) if dev.type == "cuda" else None


def _on(stream: torch.cuda.Stream | None) -> contextlib.AbstractContextManager[Any]:
    return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()


def _finished(stream: torch.cuda.Stream | None) -> None:
    """Wait for the decode work queued on ``stream``: its results are then ready on any stream."""
    if stream is not None:
        stream.synchronize()


def _placed(
    item: tuple[DecodeTask, Any], device: str | torch.device, stream: torch.cuda.Stream | None
) -> tuple[DecodeTask, Any]:
    task, result = item
    if task.modality == "vision" and isinstance(result, torch.Tensor):
        with _on(stream):
            placed = result.to(device)
        _finished(stream)
        return task, placed
    return item


class _Pool(threading.Thread):
    """Runs ``decode_many`` over the non-device tasks and queues its results, then ``_END``."""

    def __init__(
        self,
        tasks: list[DecodeTask],
        workers: int,
        timeout_s: float | None,
        limits: DecodeLimits,
        ahead: int,
        shared: DecodePool | None = None,
    ) -> None:
        super().__init__(name="embedstore-decode-pool", daemon=True)
        self.tasks, self.workers, self.timeout_s, self.limits = tasks, workers, timeout_s, limits
        self.shared = shared
        self.queue: queue.Queue[Any] = queue.Queue(ahead)
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        results = decode_many(
            self.tasks,
            self.workers,
            timeout_s=self.timeout_s,
            limits=self.limits,
            pool=self.shared,
        )
        try:
            for pair in results:
                if not self._put(pair):
                    return
        except BaseException as e:  # re-raised by the consumer
            self.error = e
        finally:
            results.close()  # type: ignore[attr-defined]  # shuts the worker processes down
            self._put(_END)

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def get(self, *, block: bool) -> Any:
        """The next result or ``_END``; None when nothing came (at once, or within 0.2 s)."""
        try:
            return self.queue.get(block=block, timeout=0.2 if block else None)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Stop early: unblock the thread and wait until decode_many has closed its workers."""
        self.stop.set()
        while self.is_alive():
            with contextlib.suppress(queue.Empty):
                self.queue.get(timeout=0.1)
            self.join(0.1)


__all__ = ["decode_many_on_device", "takes"]

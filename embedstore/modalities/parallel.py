"""Decoding in worker processes with bounded in-flight work and a wall-clock budget per task.

Each worker holds up to ``IN_FLIGHT`` tasks, so it starts the next file as soon as it has sent a
result. On Linux the decoded arrays travel through two shared-memory buffers per worker (memfd,
reused for every result) and only a small header goes through the pipe; elsewhere, and for results
over ``SHARED_MAX`` bytes, the arrays are pickled through the pipe.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import multiprocessing as mp
import os
import socket
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import reduction
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from embedstore import errors
from embedstore.errors import EmbedstoreError, InvalidMedia
from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits, Source, describe

if TYPE_CHECKING:
    from embedstore.modalities.pool import DecodePool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeTask:
    """One item to decode; ``key`` is the caller's handle (results may arrive out of order)."""

    key: Any
    modality: str
    source: Source
    options: dict[str, Any] = field(default_factory=dict)


IN_FLIGHT = 2  # tasks queued per worker: the one it decodes and the next one
SHARED_MAX = 64 * 1024 * 1024  # larger results are pickled through the pipe
SMALL_TASK = 64 * 1024  # in-memory sources above this wait for an idle worker (no prefetch)
_ALIGN = 64
_SHARED = hasattr(os, "memfd_create") and hasattr(socket, "SCM_RIGHTS")


def _to_wire(value: Any, arrays: list[np.ndarray]) -> Any:
    """Tensors become indexes into ``arrays``; dataclasses are walked."""
    if isinstance(value, torch.Tensor):
        arrays.append(value.numpy())
        return ("__tensor__", len(arrays) - 1)
    if hasattr(value, "__dataclass_fields__"):
        fields = {k: _to_wire(getattr(value, k), arrays) for k in value.__dataclass_fields__}
        return ("__dataclass__", type(value), fields)
    return value


def _from_wire(value: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(value, tuple) and value and value[0] == "__tensor__":
        return torch.from_numpy(arrays[value[1]])
    if isinstance(value, tuple) and value and value[0] == "__dataclass__":
        return value[1](**{k: _from_wire(v, arrays) for k, v in value[2].items()})
    return value


def _layout(arrays: list[np.ndarray]) -> tuple[list[tuple[int, str, tuple[int, ...]]], int]:
    """(offset, dtype, shape) of each array packed into one buffer, and the bytes needed."""
    specs, end = [], 0
    for a in arrays:
        offset = -(-end // _ALIGN) * _ALIGN
        specs.append((offset, a.dtype.str, tuple(a.shape)))
        end = offset + a.nbytes
    return specs, end


class _Outbox:
    """The worker's side of the shared buffers: ``IN_FLIGHT`` memfd mappings, grown on demand."""

    def __init__(self) -> None:
        self.buffers: list[mmap.mmap | None] = [None] * IN_FLIGHT

    def write(self, slot: int, arrays: list[np.ndarray]) -> tuple[Any, int | None]:
        """Copy ``arrays`` into buffer ``slot``: (header, fd of a new buffer to send, or None)."""
        specs, needed = _layout(arrays)
        buf, fd = self.buffers[slot], None
        if buf is None or len(buf) < needed:
            size = max(1 << 20, 1 << (needed - 1).bit_length())
            fd = os.memfd_create("embedstore-decode", os.MFD_CLOEXEC)
            os.ftruncate(fd, size)
            if buf is not None:
                buf.close()
            buf = self.buffers[slot] = mmap.mmap(fd, size)
        for (offset, _, shape), a in zip(specs, arrays):
            np.copyto(np.ndarray(shape, a.dtype, buffer=buf, offset=offset), a)
        return ("shared", slot, specs, None if fd is None else len(buf)), fd


class _Inbox:
    """The parent's side: the mappings of one worker's buffers."""

    def __init__(self) -> None:
        self.buffers: list[mmap.mmap | None] = [None] * IN_FLIGHT

    def read(self, conn: Connection, header: Any) -> list[np.ndarray]:
        """Copies of the arrays a header describes (receiving a new buffer's fd first if sent)."""
        if header[0] == "inline":
            return list(header[1])
        _, slot, specs, new_size = header
        if new_size is not None:
            fd = reduction.recv_handle(conn)
            try:
                buf = mmap.mmap(fd, new_size)
            finally:
                os.close(fd)
            self._drop(slot)
            self.buffers[slot] = buf
        buf = self.buffers[slot]
        if buf is None:
            raise OSError("a decode worker referred to a shared buffer it never sent")
        return [
            np.ndarray(shape, np.dtype(dtype), buffer=buf, offset=offset).copy()
            for offset, dtype, shape in specs
        ]

    def _drop(self, slot: int) -> None:
        buf, self.buffers[slot] = self.buffers[slot], None
        if buf is not None:
            buf.close()

    def close(self) -> None:
        for slot in range(IN_FLIGHT):
            self._drop(slot)


def _decode_one(task: DecodeTask, limits: DecodeLimits) -> tuple[bool, Any]:
    from embedstore.modalities import load

    try:
        return True, load(task.modality, task.source, limits=limits, **task.options)
    except EmbedstoreError as e:
        return False, e
    except Exception as e:  # a bug in a decoder must not end the batch
        log.exception("unexpected error decoding %s", describe(task.source))
        return False, InvalidMedia(
            f"{describe(task.source)}: decoder failed: {e}", uri=describe(task.source)
        )


def _worker(conn: Connection, limits: DecodeLimits) -> None:
    torch.set_num_threads(1)
    import embedstore.modalities  # noqa: F401 - imported before "ready" so budgets exclude it

    outbox = _Outbox() if _SHARED else None
    conn.send("ready")
    seq = 0
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        task, task_limits = msg if isinstance(msg, tuple) else (msg, limits)  # pool: (task, limits)
        ok, value = _decode_one(task, task_limits)
        if ok:
            arrays: list[np.ndarray] = []
            wire = _to_wire(value, arrays)
            header: Any = ("inline", arrays)
            fd = None
            if outbox is not None and _layout(arrays)[1] <= SHARED_MAX:
                try:
                    header, fd = outbox.write(seq % IN_FLIGHT, arrays)
                except OSError:  # no shared memory to be had: the pipe for the rest of the run
                    log.warning("decode worker: shared buffers unavailable", exc_info=True)
                    outbox = None
            conn.send((True, (wire, header)))
            if fd is not None:
                reduction.send_handle(conn, fd, os.getppid())
                os.close(fd)
        else:
            uri = getattr(value, "uri", None)
            conn.send((False, (type(value).__name__, str(value), uri)))
        seq += 1


def _error(name: str, message: str, uri: str | None) -> EmbedstoreError:
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, EmbedstoreError)):
        cls = InvalidMedia
    if issubclass(cls, InvalidMedia):
        return cls(message, uri=uri)
    return cls(message)


class _Slot:
    """One worker process and the tasks queued on it (the first is the one being decoded)."""

    def __init__(self, ctx: Any, limits: DecodeLimits) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, limits), daemon=True)
        self.proc.start()
        child.close()
        self.tasks: deque[DecodeTask] = deque()
        self.deadline = 0.0
        self.ready = False
        self.inbox = _Inbox()

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        """Block until the worker has imported the decoders."""
        if not self.ready:
            try:
                ok = self.conn.poll(timeout_s) and self.conn.recv() == "ready"
            except (EOFError, OSError):
                ok = False
            if not ok:
                raise RuntimeError(
                    "a decode worker failed to start (a script calling decode_many needs an "
                    "`if __name__ == '__main__':` guard; or pass workers=0)"
                )
            self.ready = True

    def submit(self, task: DecodeTask, timeout_s: float) -> None:
        self.wait_ready()
        if not self.tasks:
            self.deadline = time.monotonic() + timeout_s
        self.tasks.append(task)
        self.conn.send(task)

    def finished(self, timeout_s: float) -> DecodeTask:
        """Drop the task whose result came; the next queued one starts its budget now."""
        task = self.tasks.popleft()
        self.deadline = time.monotonic() + timeout_s
        return task

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()
        self.inbox.close()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.proc.join(1)
        if self.proc.is_alive():
            self.kill()
        self.inbox.close()


def _small(task: DecodeTask) -> bool:
    """Whether the task can wait in a busy worker's pipe without filling it."""
    src = task.source
    return not isinstance(src, bytes | bytearray | memoryview) or len(src) <= SMALL_TASK


def worker_context() -> Any:
    """The multiprocessing context of decode workers: forkserver (preloading the decoders) on
    POSIX, spawn elsewhere; never fork, since this process has imported torch."""
    ctx = mp.get_context("forkserver" if os.name == "posix" else "spawn")
    if os.name == "posix":
        ctx.set_forkserver_preload(["embedstore.modalities"])
    return ctx


def decode_many(
    tasks: Iterable[DecodeTask],
    workers: int,
    *,
    timeout_s: float | None = None,
    limits: DecodeLimits | None = None,
    pool: DecodePool | None = None,
) -> Iterator[tuple[DecodeTask, Any]]:
    """Decode tasks in ``workers`` processes (0: in this process); yield ``(task, result or error)``.

    A task running longer than ``timeout_s`` has its worker killed and yields ``InvalidMedia``; a
    crashed worker is replaced and the tasks queued behind the failed one are decoded again. At most
    ``IN_FLIGHT`` tasks per worker are queued, so memory stays bounded; results come in completion
    order. With a ``pool`` (``modalities.pool``), its shared workers decode instead of ``workers``
    new ones started for this call.
    """
    limits = limits or DEFAULT_LIMITS
    budget = timeout_s if timeout_s is not None else limits.timeout_s
    if pool is not None:
        yield from pool.decode(tasks, limits=limits, timeout_s=budget)
        return
    if workers <= 0:
        for task in tasks:
            yield task, _decode_one(task, limits)[1]
        return
    ctx = worker_context()
    pending = iter(tasks)
    waiting: deque[DecodeTask] = deque()  # taken from ``pending`` or given back by a dead worker
    slots = [_Slot(ctx, limits) for _ in range(workers)]

    def peek() -> DecodeTask | None:
        if not waiting:
            nxt = next(pending, None)
            if nxt is None:
                return None
            waiting.append(nxt)
        return waiting[0]

    def fill() -> None:
        for depth in range(1, IN_FLIGHT + 1):  # an idle worker first, then queue behind
            for slot in slots:
                if len(slot.tasks) >= depth:
                    continue
                nxt = peek()
                if nxt is None or (depth > 1 and not _small(nxt)):
                    return
                slot.submit(waiting.popleft(), budget)

    try:
        while True:
            fill()
            busy = [s for s in slots if s.tasks]
            if not busy:
                return
            now = time.monotonic()
            ready = wait(
                [s.conn for s in busy], timeout=max(min(s.deadline for s in busy) - now, 0)
            )
            for i, slot in enumerate(slots):
                if not slot.tasks:
                    continue
                task = slot.tasks[0]
                if slot.conn in ready:
                    result = _receive(slot, task)
                elif time.monotonic() >= slot.deadline:
                    result = InvalidMedia(
                        f"{describe(task.source)}: decoding took longer than {budget:g} s",
                        uri=describe(task.source),
                    )
                    slot.kill()
                else:
                    continue
                slot.finished(budget)
                if slot.conn.closed:
                    waiting.extendleft(reversed(slot.tasks))
                    slots[i] = _Slot(ctx, limits)
                yield task, result
    finally:
        for slot in slots:
            slot.close()


def _receive(slot: _Slot, task: DecodeTask) -> Any:
    try:
        ok, payload = slot.conn.recv()
        arrays = slot.inbox.read(slot.conn, payload[1]) if ok else []
    except (EOFError, OSError, RuntimeError):  # RuntimeError: a buffer's fd did not arrive
        slot.proc.join(1)  # its pipe closed as it died: its exit code comes a moment later
        code = slot.proc.exitcode
        slot.kill()
        return InvalidMedia(
            f"{describe(task.source)}: decoder process died (exit code {code})",
            uri=describe(task.source),
        )
    if ok:
        return _from_wire(payload[0], arrays)
    return _error(*payload)


__all__ = ["DecodeTask", "decode_many"]

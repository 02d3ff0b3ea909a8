"""Decoding in worker processes with bounded in-flight work and a wall-clock budget per task."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from embedstore import errors
from embedstore.errors import EmbedstoreError, InvalidMedia
from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits, Source, describe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeTask:
    """One item to decode; ``key`` is the caller's handle (results may arrive out of order)."""

    key: Any
    modality: str
    source: Source
    options: dict[str, Any] = field(default_factory=dict)


def _to_wire(value: Any) -> Any:
    """Tensors become numpy arrays (pickled as one buffer); dataclasses are walked."""
    if isinstance(value, torch.Tensor):
        return ("__tensor__", value.numpy())
    if hasattr(value, "__dataclass_fields__"):
        fields = {k: _to_wire(getattr(value, k)) for k in value.__dataclass_fields__}
        return ("__dataclass__", type(value), fields)
    return value


def _from_wire(value: Any) -> Any:
    if isinstance(value, tuple) and value and value[0] == "__tensor__":
        return torch.from_numpy(value[1])
    if isinstance(value, tuple) and value and value[0] == "__dataclass__":
        return value[1](**{k: _from_wire(v) for k, v in value[2].items()})
    return value


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

    conn.send("ready")
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        ok, value = _decode_one(msg, limits)
        if ok:
            conn.send((True, _to_wire(value)))
        else:
            uri = getattr(value, "uri", None)
            conn.send((False, (type(value).__name__, str(value), uri)))


def _error(name: str, message: str, uri: str | None) -> EmbedstoreError:
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, EmbedstoreError)):
        cls = InvalidMedia
    if issubclass(cls, InvalidMedia):
        return cls(message, uri=uri)
    return cls(message)


class _Slot:
    """One worker process and the task it is working on."""

    def __init__(self, ctx: Any, limits: DecodeLimits) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, limits), daemon=True)
        self.proc.start()
        child.close()
        self.task: DecodeTask | None = None
        self.deadline = 0.0
        self.ready = False

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
        self.task, self.deadline = task, time.monotonic() + timeout_s
        self.conn.send(task)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.proc.join(1)
        if self.proc.is_alive():
            self.kill()


def decode_many(
    tasks: Iterable[DecodeTask],
    workers: int,
    *,
    timeout_s: float | None = None,
    limits: DecodeLimits | None = None,
) -> Iterator[tuple[DecodeTask, Any]]:
    """Decode tasks in ``workers`` processes (0: in this process); yield ``(task, result or error)``.

    A task running longer than ``timeout_s`` has its worker killed and yields ``InvalidMedia``; a
    crashed worker is replaced. At most one task per worker is in flight, so memory stays bounded.
    """
    limits = limits or DEFAULT_LIMITS
    budget = timeout_s if timeout_s is not None else limits.timeout_s
    if workers <= 0:
        for task in tasks:
            yield task, _decode_one(task, limits)[1]
        return
    ctx = mp.get_context("forkserver" if os.name == "posix" else "spawn")
    if os.name == "posix":
        ctx.set_forkserver_preload(["embedstore.modalities"])
    pending = iter(tasks)
    slots = [_Slot(ctx, limits) for _ in range(workers)]
    idle = deque(slots)
    try:
        exhausted = False
        while True:
            while idle and not exhausted:
                nxt = next(pending, None)
                if nxt is None:
                    exhausted = True
                    break
                idle.popleft().submit(nxt, budget)
            busy = [s for s in slots if s.task is not None]
            if not busy:
                return
            now = time.monotonic()
            ready = wait(
                [s.conn for s in busy], timeout=max(min(s.deadline for s in busy) - now, 0)
            )
            for i, slot in enumerate(slots):
                if slot.task is None:
                    continue
                task = slot.task
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
                if slot.conn.closed:
                    slot = slots[i] = _Slot(ctx, limits)
                slot.task = None
                idle.append(slot)
                yield task, result
    finally:
        for slot in slots:
            slot.close()


def _receive(slot: _Slot, task: DecodeTask) -> Any:
    try:
        ok, payload = slot.conn.recv()
    except (EOFError, OSError):
        code = slot.proc.exitcode
        slot.kill()
        return InvalidMedia(
            f"{describe(task.source)}: decoder process died (exit code {code})",
            uri=describe(task.source),
        )
    if ok:
        return _from_wire(payload)
    return _error(*payload)


__all__ = ["DecodeTask", "decode_many"]

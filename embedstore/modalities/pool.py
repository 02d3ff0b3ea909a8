"""``DecodePool``: one set of decode worker processes that many concurrent runs share.

``decode_many`` starts its workers for one call and stops them at its end, which suits one CLI
run. A server runs many adds, often at once: the engine keeps one ``DecodePool`` for its process
(``Engine.decode_pool``), whose workers start on the first add that needs them and stay until
``Engine.close()``. Each call to ``DecodePool.decode`` is a job with its own result queue: a job
only ever receives its own tasks' results, however the workers interleave them. Jobs take turns
for idle workers, and each keeps at most ``IN_FLIGHT`` tasks per worker outstanding, so one large
add cannot starve another.

One thread (``embedstore-decode-pool``) owns the workers' pipes. A task over its time budget has
its worker killed; a worker that dies answers its current task with ``InvalidMedia`` ("decoder
process died") and is replaced at once, its queued tasks going to the next free worker. When the
pool itself stops (a worker that cannot start, an error in its thread), every unanswered task of
every job fails with the reason, ``broken`` is set, and the engine makes a new pool on the next
add. Workers come from the same forkserver (or spawn) context as ``decode_many``: nothing is
forked from a process that has imported torch.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from embedstore.errors import InvalidMedia
from embedstore.modalities.parallel import (
    IN_FLIGHT,
    DecodeTask,
    _receive,
    _Slot,
    _small,
    worker_context,
)
from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits, describe

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Job:
    """One ``decode`` call: its limits, its budget per task, its queued tasks and its results."""

    limits: DecodeLimits
    budget: float
    waiting: deque[DecodeTask] = field(default_factory=deque)
    results: queue.Queue[tuple[DecodeTask, Any]] = field(default_factory=queue.Queue)
    open: bool = True


@dataclass(eq=False)
class _Work:
    job: _Job
    task: DecodeTask


class _Worker(_Slot):
    """A worker process of the pool; ``work`` lists what it was sent, the first being decoded."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx, DEFAULT_LIMITS)  # each task carries its job's limits
        self.work: deque[_Work] = deque()

    def send(self, work: _Work) -> None:
        if not self.work:
            self.deadline = time.monotonic() + work.job.budget
        self.work.append(work)
        self.conn.send((work.task, work.job.limits))

    def done(self) -> _Work:
        """Drop the head task (answered); the next one's budget starts now."""
        work = self.work.popleft()
        if self.work:
            self.deadline = time.monotonic() + self.work[0].job.budget
        return work


class DecodePool:
    """``workers`` decode processes shared by concurrent ``decode`` calls (see module doc)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"a decode pool needs at least one worker, got {workers}")
        self.workers = workers
        self.starts = 0
        """How many times this pool started its worker processes (0 or 1; tests, metrics)."""
        self.replaced = 0
        """Workers replaced after dying or running over a task's time budget."""
        self.peak_jobs = 0
        """The most ``decode`` calls that were open at once."""
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._slots: list[_Worker] = []
        self._jobs: list[_Job] = []
        self._turn = itertools.count()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # -- public ----------------------------------------------------------------------------------
    @property
    def broken(self) -> bool:
        """True once the pool has stopped on an error: make a new one."""
        return self.error is not None

    @property
    def started(self) -> bool:
        """Whether the worker processes were started (and the pool is not closed)."""
        return self._thread is not None

    def start(self) -> None:
        """Start the worker processes and the dispatching thread, unless running (non-blocking:
        the workers import the decoders while the caller goes on)."""
        with self._lock:
            if self._thread is not None or self._closing or self.error is not None:
                return
            ctx = worker_context()
            self._slots = [_Worker(ctx) for _ in range(self.workers)]
            self.starts += 1
            self._thread = threading.Thread(
                target=self._run, name="embedstore-decode-pool", daemon=True
            )
            self._thread.start()

    def pids(self) -> list[int]:
        """The process ids of the current workers (empty before start and after close)."""
        with self._lock:
            return [s.proc.pid for s in self._slots if s.proc.pid is not None]

    def in_flight(self) -> int:
        """How many tasks the workers hold now (sent, not yet answered)."""
        with self._lock:
            return sum(len(s.work) for s in self._slots)

    def open_jobs(self) -> int:
        """How many ``decode`` calls are open now."""
        with self._lock:
            return len(self._jobs)

    def decode(
        self,
        tasks: Iterable[DecodeTask],
        *,
        limits: DecodeLimits | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[tuple[DecodeTask, Any]]:
        """Decode ``tasks`` in the shared workers; yield ``(task, result or error)`` as they come.

        Safe to call from many threads at once. ``tasks`` is consumed lazily, at most
        ``IN_FLIGHT`` per worker ahead of the results taken. Closing the generator early drops
        this job's queued tasks; the ones being decoded finish and their results are discarded.
        """
        limits = limits or DEFAULT_LIMITS
        job = _Job(limits, timeout_s if timeout_s is not None else limits.timeout_s)
        self.start()
        with self._lock:
            self._jobs.append(job)
            self.peak_jobs = max(self.peak_jobs, len(self._jobs))
        cap = IN_FLIGHT * self.workers
        pending = iter(tasks)
        outstanding = 0
        try:
            while True:
                while outstanding < cap:
                    task = next(pending, None)
                    if task is None:
                        cap = 0  # exhausted
                        break
                    self._submit(job, task)
                    outstanding += 1
                if outstanding == 0:
                    return
                yield job.results.get()
                outstanding -= 1
        finally:
            with self._lock:
                job.open = False
                job.waiting.clear()
                with contextlib.suppress(ValueError):
                    self._jobs.remove(job)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers (each finishes or is killed) and the thread; open jobs' unanswered
        tasks fail. The pool cannot be used again."""
        with self._lock:
            self._closing = True
            thread = self._thread
        self._wake()
        if thread is not None:
            thread.join(timeout)
        with self._lock:  # the thread is gone (or stuck): make sure no worker outlives the pool
            slots, self._slots = self._slots, []
            self._thread = None
        for slot in slots:
            slot.close()
        self._fail_all("the decode pool was closed")
        for sock in (self._wake_r, self._wake_w):
            sock.close()

    # -- callers' side ---------------------------------------------------------------------------
    def _submit(self, job: _Job, task: DecodeTask) -> None:
        with self._lock:
            stopped = self._closing or self.error is not None
            if not stopped:
                job.waiting.append(task)
        if stopped:
            job.results.put((task, self._failure(task, self._stop_reason())))
        else:
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            self._wake_w.send(b"\0")

    # -- the dispatching thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as e:  # every open job learns of it; the engine replaces the pool
            log.exception("decode pool stopped")
            self.error = e
        finally:
            if self.error is not None or self._closing:
                self._fail_all(self._stop_reason())

    def _step(self) -> bool:
        """One round: hand out tasks, wait for an answer, a wake-up or a deadline; False: stop."""
        with self._lock:
            if self._closing:
                return False
            self._fill()
            slots = list(self._slots)
        busy = [s.deadline for s in slots if s.ready and s.work]
        timeout = max(min(busy) - time.monotonic(), 0.0) if busy else None
        ready = wait([self._wake_r, *(s.conn for s in slots)], timeout)
        if self._wake_r in ready:
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
        with self._lock:
            if self._closing:
                return False
            for i, slot in enumerate(self._slots):
                self._check(i, slot, slot.conn in ready)
        return True

    def _check(self, i: int, slot: _Worker, readable: bool) -> None:
        """Read an answer from, time out, or replace worker ``i`` (lock held)."""
        if not slot.ready:
            if readable:
                try:
                    slot.ready = slot.conn.recv() == "ready"
                except (EOFError, OSError):
                    slot.ready = False
                if not slot.ready:
                    raise RuntimeError(
                        "a decode worker failed to start (a script using the decode pool needs "
                        "an `if __name__ == '__main__':` guard; or set workers to 0)"
                    )
            return
        if not slot.work:
            if readable:  # an idle worker's pipe closed: it died between tasks
                log.warning("decode worker %s exited while idle; replacing it", slot.proc.pid)
                slot.kill()
                self._replace(i)
            return
        head = slot.work[0]
        if readable:
            result = _receive(slot, head.task)
        elif time.monotonic() >= slot.deadline:
            result = InvalidMedia(
                f"{describe(head.task.source)}: decoding took longer than {head.job.budget:g} s",
                uri=describe(head.task.source),
            )
            slot.kill()
        else:
            return
        slot.done()
        if head.job.open:
            head.job.results.put((head.task, result))
        if slot.conn.closed:  # killed: its queued tasks go first to the next free worker
            self._requeue(slot)
            self._replace(i)

    def _requeue(self, slot: _Worker) -> None:
        """Give a dead worker's unanswered tasks back to their jobs, first in line."""
        for work in reversed(slot.work):
            if work.job.open:
                work.job.waiting.appendleft(work.task)
        slot.work.clear()

    def _replace(self, i: int) -> None:
        self._slots[i] = _Worker(worker_context())
        self.replaced += 1

    def _fill(self) -> None:
        """Give ready workers tasks: idle ones first, then one queued behind (small tasks only);
        jobs take turns (lock held)."""
        for depth in range(1, IN_FLIGHT + 1):
            for i, slot in enumerate(self._slots):
                if not slot.ready or len(slot.work) >= depth:
                    continue
                job = self._next_job(big_ok=depth == 1)
                if job is None:
                    break
                try:
                    slot.send(_Work(job, job.waiting.popleft()))
                except OSError:  # it died since the last look: its tasks wait for the next
                    log.warning("decode worker %s exited; replacing it", slot.proc.pid)
                    self._requeue(slot)
                    slot.kill()
                    self._replace(i)

    def _next_job(self, *, big_ok: bool) -> _Job | None:
        jobs = [j for j in self._jobs if j.waiting and (big_ok or _small(j.waiting[0]))]
        return jobs[next(self._turn) % len(jobs)] if jobs else None

    # -- stopping --------------------------------------------------------------------------------
    def _stop_reason(self) -> str:
        if self.error is not None:
            return f"the decode pool stopped: {self.error}"
        return "the decode pool was closed"

    @staticmethod
    def _failure(task: DecodeTask, reason: str) -> InvalidMedia:
        name = describe(task.source)
        return InvalidMedia(f"{name}: {reason}", uri=name)

    def _fail_all(self, reason: str) -> None:
        """Answer every unanswered task of every open job with ``reason``."""
        with self._lock:
            for job in self._jobs:
                unanswered = list(job.waiting)
                job.waiting.clear()
                for slot in self._slots:
                    unanswered += [w.task for w in slot.work if w.job is job]
                for task in unanswered:
                    job.results.put((task, self._failure(task, reason)))
            for slot in self._slots:
                slot.work.clear()


__all__ = ["DecodePool"]

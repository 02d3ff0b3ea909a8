"""Batch preparation overlapped with the model: the next batch is collated while this one runs.

The thread that takes decoded items collates each full batch into one contiguous tensor
(`Stager`). On CUDA the tensor goes through pinned host memory and is copied to the device with
``non_blocking`` on a side stream, and an event recorded after the copy is what the model's stream
waits on; images decoded on the device are stacked on that side stream too. A `ModelThread` runs
the model on the staged batches, at most ``ahead`` of them queued, so memory stays bounded while
neither the device nor the decoding waits for the other. On the CPU the same code runs without
pinned memory, streams or events.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

STAGED_AHEAD = 1  # batches staged and waiting while the model runs one (one more is collating)


@dataclass(slots=True)
class Staged:
    """One collated batch: the rows' handles, the tensor, and the event its copy records."""

    modality: str
    rows: list[Any]
    tensor: torch.Tensor
    ready: torch.cuda.Event | None = None


@dataclass(slots=True)
class PipeStats:
    """Where the embed step spent its time (seconds, summed over batches)."""

    batches: int = 0
    items: int = 0
    stage_s: float = 0.0  # collating and issuing copies, in the thread that takes decoded items
    handoff_wait_s: float = 0.0  # that thread blocked because ``ahead`` batches were waiting
    model_s: float = 0.0  # in the model call (its result on the host)
    model_idle_s: float = 0.0  # the model thread waiting for a batch, after the first one came

    def as_dict(self) -> dict[str, float | int]:
        """The figures, rounded for a report."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


class Stager:
    """Collates tensors of one shape into a contiguous batch on ``device``.

    CPU: ``torch.stack``. CUDA: host tensors are stacked into pinned memory and copied with
    ``non_blocking`` on this stager's stream (torch's pinned-memory cache keeps a buffer until its
    copy is done); device tensors are stacked on that stream. ``stage`` returns the batch and the
    event recorded after it on the stream (None on the CPU).
    """

    def __init__(self, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    def stage(
        self, tensors: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.cuda.Event | None]:
        """One (B, ...) tensor of ``tensors`` on the device, and the event to wait on before use."""
        if self.stream is None:
            return torch.stack(list(tensors)), None
        with torch.cuda.stream(self.stream):
            if all(t.device.type == "cpu" for t in tensors):
                first = tensors[0]
                host = torch.empty((len(tensors), *first.shape), dtype=first.dtype, pin_memory=True)
                torch.stack(list(tensors), out=host)
                batch = host.to(self.device, non_blocking=True)
            else:
                parts = [t.to(self.device) for t in tensors]  # host rows among them: rare
                for t in parts:  # made on the decode stream: kept until this stack has run
                    t.record_stream(self.stream)
                batch = torch.stack(parts)
            ready = torch.cuda.Event()
            ready.record(self.stream)
        return batch, ready


def wait_ready(staged: Staged) -> torch.Tensor:
    """The staged tensor, with the current stream ordered after its copy (CUDA)."""
    if staged.ready is not None:
        stream = torch.cuda.current_stream(staged.tensor.device)
        stream.wait_event(staged.ready)
        staged.tensor.record_stream(stream)  # its memory is not reused before the model read it
    return staged.tensor


class ModelThread(threading.Thread):
    """Runs ``run_batch`` on staged batches in order, at most ``ahead`` waiting.

    Each batch's rows and result go to ``results`` for the producer to take (``take``): the
    thread does nothing else between two model calls, so the device is not left idle while the
    results of one batch are sorted out. An error in ``run_batch`` ends the model work: the
    batches still queued are dropped and the error is raised to the producer by its next ``put``
    or by ``finish``.
    """

    def __init__(self, run_batch: Callable[[Staged], Any], ahead: int = STAGED_AHEAD) -> None:
        super().__init__(name="embedstore-model", daemon=True)
        self.run_batch = run_batch
        self.results: deque[tuple[list[Any], Any]] = deque()
        self.queue: queue.Queue[Staged | None] = queue.Queue(max(ahead, 1))
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.stats = PipeStats()

    def run(self) -> None:
        started = False
        while True:
            t0 = time.perf_counter()
            job = self.queue.get()
            if started:
                self.stats.model_idle_s += time.perf_counter() - t0
            if job is None:
                return
            started = True
            if self.error is not None or self.stop.is_set():
                continue  # drain: the producer learns of the error from put/finish/close
            t0 = time.perf_counter()
            try:
                self.results.append((job.rows, self.run_batch(job)))
            except BaseException as e:  # re-raised in the producer
                self.error = e
            self.stats.model_s += time.perf_counter() - t0
            self.stats.batches += 1
            self.stats.items += len(job.rows)
            del job  # the batch's memory goes before the next one is taken

    def put(self, staged: Staged) -> None:
        """Queue a batch; blocks while ``ahead`` are waiting; raises the model's error."""
        if self.ident is None:
            self.start()
        t0 = time.perf_counter()
        while True:
            if self.error is not None:
                raise self.error
            if not self.is_alive():
                raise RuntimeError("the model thread has ended")
            try:
                self.queue.put(staged, timeout=0.1)
                break
            except queue.Full:
                continue
        self.stats.handoff_wait_s += time.perf_counter() - t0

    def take(self) -> list[tuple[list[Any], Any]]:
        """The (rows, result) of the batches finished since the last call, in order."""
        out = []
        while self.results:
            out.append(self.results.popleft())
        return out

    def finish(self) -> None:
        """Run every queued batch, end the thread, and raise the model's error if there was one."""
        self._end()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """End the thread now (after the batch running), dropping the batches still queued."""
        self.stop.set()
        self._end()

    def _end(self) -> None:
        if self.ident is None:
            return
        while self.is_alive():
            try:
                self.queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self.join()

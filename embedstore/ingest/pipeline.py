"""Decode in worker processes, embed in batches per modality, write in a committing thread."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from embedstore.errors import EmbedstoreError
from embedstore.ingest.plan import Group
from embedstore.ingest.walk import FileEntry
from embedstore.modalities.sources import DecodeLimits

if TYPE_CHECKING:
    from embedstore.encoders import Encoder
    from embedstore.engine import Engine
    from embedstore.ingest.overlap import PipeStats, Staged
    from embedstore.modalities.pool import DecodePool
    from embedstore.store import Collection, NewItem

log = logging.getLogger(__name__)

FailureRow = tuple[str, str, int, float, str | None]


def metadata_of(entry: FileEntry, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The user-visible metadata stored with every indexed file."""
    name = entry.uri.rsplit("/", 1)[-1]
    folder = entry.uri.rsplit("/", 2)[-2] if entry.uri.count("/") >= 2 else ""
    ext = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    return {"name": name, "ext": ext, "folder": folder, "size": entry.size, **(extra or {})}


class Writer(threading.Thread):
    """Commits batches of items and failures in order, one transaction per batch."""

    def __init__(
        self,
        coll: Collection,
        on_written: Callable[[int], None],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name="embedstore-writer", daemon=True)
        self.coll = coll
        self.metadata = dict(metadata or {})  # merged into every item written (API uploads)
        self.queue: queue.Queue[tuple[list[NewItem], list[FailureRow]] | None] = queue.Queue(8)
        self.on_written = on_written
        self.error: BaseException | None = None

    def run(self) -> None:
        while (job := self.queue.get()) is not None:
            if self.error is not None:
                continue
            items, failures = job
            try:
                if items and self.metadata:
                    items = [replace(i, metadata={**i.metadata, **self.metadata}) for i in items]
                if items:
                    self.coll.add_items(items)
                if failures:
                    self.coll.record_failures(failures)
                self.on_written(len(items) + len(failures))
            except BaseException as e:  # re-raised in the main thread by close()
                self.error = e

    def put(self, items: list[NewItem], failures: list[FailureRow] | None = None) -> None:
        """Queue one batch (blocks while the writer is 8 batches behind)."""
        if self.error is not None:
            raise self.error
        if items or failures:
            self.queue.put((items, failures or []))

    def close(self, timeout: float | None = None) -> None:
        """Flush everything queued, stop, and re-raise a write error.

        With ``timeout`` (an interrupted run), give up waiting after that many seconds: what is
        not committed by then is simply redone by the next run.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self.error is not None:
            raise self.error


@dataclass(slots=True)
class Slot:
    """An item being embedded: its vectors fill in as their batches run."""

    group: Group
    modality: str
    metadata: dict[str, Any]
    specs: list[tuple[str, int, float | None, float | None]]  # modality, segment, start, end
    vectors: list[np.ndarray | None] = field(default_factory=list)
    remaining: int = 0


class Embedder:
    """Collects decoded pieces per (encoder modality, shape); full batches run in a model thread.

    The caller's thread collates each full batch (``overlap.Stager``: on CUDA into pinned memory,
    copied on a side stream) while the model runs the previous one (``overlap.ModelThread``, at
    most ``ahead`` batches waiting), and files the vectors of the batches that ran: ``done`` gets
    the slots they finished, in the caller's thread, from ``add`` and ``flush``. ``on_staged``
    (tests, benchmarks) sees each batch once it is collated.
    """

    def __init__(
        self,
        engine: Engine,
        encoder: Encoder,
        batch_size: int,
        done: Callable[[list[Slot]], None],
        *,
        ahead: int | None = None,
        on_staged: Callable[[Staged], None] | None = None,
    ) -> None:
        from embedstore.ingest.overlap import STAGED_AHEAD, ModelThread, Stager

        self.engine, self.encoder, self.batch_size, self.done = engine, encoder, batch_size, done
        self.pending: dict[tuple[str, tuple[int, ...]], list[tuple[Slot, int, Any]]] = {}
        self.stager = Stager(getattr(encoder, "device", "cpu"))
        self.model = ModelThread(self._run, STAGED_AHEAD if ahead is None else ahead)
        self.on_staged = on_staged

    @property
    def stats(self) -> PipeStats:
        """Time spent collating, handing over, in the model and waiting for batches."""
        return self.model.stats

    def add(self, entry: Group, modality: str, decoded: Any) -> None:
        """Split one decoded item into pieces (video: clips + sound track) and queue them."""
        from embedstore.modalities import VideoItem

        pieces: list[tuple[str, int, float | None, float | None, Any]]
        extra: dict[str, Any]
        if isinstance(decoded, VideoItem):
            pieces = [
                ("vision", i, s, e, decoded.clips[i])
                for i, (s, e) in enumerate(zip(decoded.starts, decoded.ends))
            ]
            if decoded.audio is not None and "audio" in self.encoder.modalities:
                pieces.append(("audio", 0, 0.0, float(decoded.duration), decoded.audio))
            extra = {"duration": float(decoded.duration), "clips": len(decoded.starts)}
        else:
            pieces = [(modality, 0, None, None, decoded)]
            extra = {}
        slot = Slot(entry, modality, metadata_of(entry.leader, extra), [p[:4] for p in pieces])
        slot.vectors = [None] * len(pieces)
        slot.remaining = len(pieces)
        self._file()
        for i, (mod, *_rest, tensor) in enumerate(pieces):
            key = (mod, tuple(tensor.shape))
            bucket = self.pending.setdefault(key, [])
            bucket.append((slot, i, tensor))
            if len(bucket) >= self.batch_size:
                self._stage(key)

    def flush(self) -> None:
        """Run every partial batch and wait for the model; raises the model's error."""
        for key in list(self.pending):
            self._stage(key)
        try:
            self.model.finish()
        finally:
            self._file()  # the batches that ran before an error are kept

    def close(self) -> None:
        """Stop the model thread (after the batch it runs) without running what is queued; the
        batches that ran are still given to ``done`` (an error there is dropped: this is the way
        out after another error)."""
        self.model.close()
        with contextlib.suppress(Exception):
            self._file()

    def _stage(self, key: tuple[str, tuple[int, ...]]) -> None:
        from embedstore.ingest.overlap import Staged

        bucket = self.pending.pop(key, [])
        if not bucket:
            return
        t0 = time.perf_counter()
        batch, ready = self.stager.stage([t for _, _, t in bucket])
        staged = Staged(key[0], [(slot, i) for slot, i, _ in bucket], batch, ready)
        del bucket  # the decoded tensors are not needed once collated
        self.model.stats.stage_s += time.perf_counter() - t0
        if self.on_staged is not None:
            self.on_staged(staged)
        self.model.put(staged)

    def _run(self, staged: Staged) -> np.ndarray:  # in the model thread: the model call only
        from embedstore.ingest.overlap import wait_ready

        return self.engine.encode(self.encoder, staged.modality, wait_ready(staged))

    def _file(self) -> None:
        """Give the vectors of the batches that ran to their slots; ``done`` with the finished."""
        for rows, vectors in self.model.take():
            finished = []
            for (slot, i), vec in zip(rows, vectors):
                slot.vectors[i] = vec
                slot.remaining -= 1
                if slot.remaining == 0:
                    finished.append(slot)
            if finished:
                self.done(finished)


def items_of(slot: Slot) -> list[NewItem]:
    """The stored items for a finished slot: the leader and its byte-identical followers."""
    from embedstore.store import NewItem, NewVector

    vectors = [
        NewVector(mod, vec, segment=seg, start=start, end=end)
        for (mod, seg, start, end), vec in zip(slot.specs, slot.vectors)
        if vec is not None
    ]
    g = slot.group
    return [
        NewItem(
            e.uri,
            slot.modality,
            g.content_hash,
            e.size,
            e.mtime,
            metadata_of(e, {k: v for k, v in slot.metadata.items() if k in ("duration", "clips")}),
            vectors,
        )
        for e in [g.leader, *g.followers]
    ]


def decode_groups(
    groups: Iterable[Group],
    workers: int,
    *,
    limits: DecodeLimits | None = None,
    timeout_s: float | None = None,
    device: str | None = None,
    batch_size: int = 32,
    recipe: str | None = None,
    pool: DecodePool | None = None,
    endpoint: str | None = None,
) -> Iterator[tuple[Group, Any]]:
    """Decode each group's leader in worker processes; yields (group, tensor or exception).

    ``groups`` is consumed lazily: the workers start before its first item is taken. With a
    ``device``, JPEG images are decoded ``batch_size`` at a time on it instead (gpu_decode; the
    default recipe only). ``recipe`` is the encoder family's preprocessing (None: ImageBind's).
    With a ``pool`` (``Engine.decode_pool``), its shared workers decode instead of new ones.
    Object storage URIs are read here (``endpoint``: S3's) and their bytes decoded in the workers.
    """
    from pathlib import Path

    from embedstore.ingest import objects
    from embedstore.modalities import DecodeTask, decode_many

    sent: dict[int, Group] = {}
    unread: list[tuple[Group, BaseException]] = []  # objects that could not be read
    options = {"recipe": recipe} if recipe else {}
    max_bytes = limits.max_file_bytes if limits else None

    def tasks() -> Iterator[DecodeTask]:
        for i, g in enumerate(groups):
            source: Any = Path(g.leader.uri)
            if objects.is_object_uri(g.leader.uri):
                try:
                    source = objects.read_object(g.leader.uri, endpoint, max_bytes)
                except EmbedstoreError as err:
                    unread.append((g, err))
                    continue
            sent[i] = g
            yield DecodeTask(i, g.leader.modality, source, dict(options))

    if device is None or recipe:
        results = decode_many(tasks(), workers, limits=limits, timeout_s=timeout_s, pool=pool)
    else:
        from embedstore.modalities.gpu_parallel import decode_many_on_device

        results = decode_many_on_device(
            tasks(),
            workers,
            device=device,
            batch_size=batch_size,
            limits=limits,
            timeout_s=timeout_s,
            shared=pool,
        )
    for task, result in results:
        while unread:
            yield unread.pop(0)
        yield sent.pop(task.key), result
    yield from unread


class DecodeAhead(threading.Thread):
    """Runs ``decode_groups`` in a thread so decoding continues while the caller embeds.

    Started before the groups are known (``groups=None``), it starts the worker processes at once
    and waits for ``feed``: the workers come up while the caller hashes files and loads the model.
    """

    _END = object()

    def __init__(
        self,
        groups: Sequence[Group] | None,
        workers: int,
        ahead: int,
        *,
        limits: DecodeLimits | None = None,
        timeout_s: float | None = None,
        device: str | None = None,
        batch_size: int = 32,
        recipe: str | None = None,
        pool: DecodePool | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(name="embedstore-decode", daemon=True)
        self.recipe, self.endpoint = recipe, endpoint
        self.groups: Sequence[Group] = groups or ()
        self.workers = workers
        self.pool = pool  # shared workers (Engine.decode_pool) instead of ``workers`` new ones
        self.limits, self.timeout_s = limits, timeout_s
        self.device, self.batch_size = device, batch_size
        self.queue: queue.Queue[Any] = queue.Queue(max(ahead, 1))
        self.stop = threading.Event()
        self.fed = threading.Event()
        if groups is not None:
            self.fed.set()
        self.error: BaseException | None = None

    def feed(self, groups: Sequence[Group]) -> None:
        """The groups to decode (once; an empty list shuts the workers down)."""
        self.groups = groups
        self.fed.set()

    def _groups(self) -> Iterator[Group]:
        while not self.fed.wait(0.1):
            if self.stop.is_set():
                return
        yield from self.groups

    def run(self) -> None:
        try:
            for pair in decode_groups(
                self._groups(),
                self.workers,
                limits=self.limits,
                timeout_s=self.timeout_s,
                device=self.device,
                batch_size=self.batch_size,
                recipe=self.recipe,
                pool=self.pool,
                endpoint=self.endpoint,
            ):
                while not self.stop.is_set():
                    try:
                        self.queue.put(pair, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self.stop.is_set():
                    return
        except BaseException as e:  # re-raised in the consumer
            self.error = e
        finally:
            self.queue.put(self._END)

    def __iter__(self) -> Iterator[tuple[Group, Any]]:
        if self.ident is None:
            self.start()
        try:
            while (pair := self.queue.get()) is not self._END:
                yield pair
        finally:
            self.close()
        if self.error is not None:
            raise self.error

    def cancel(self) -> None:
        """Stop without waiting: the thread shuts its workers down on its own (no-op once fed)."""
        if not self.fed.is_set():
            self.stop.set()
            self.feed(())

    def close(self, timeout: float = 30.0) -> None:
        """Stop decoding (workers shut down) and wait for the thread, at most ``timeout`` s.

        The thread is a daemon and its workers are daemon processes, so one that is stuck in a
        decode does not keep the process alive.
        """
        self.stop.set()
        deadline = time.monotonic() + timeout
        while self.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                self.queue.get(timeout=0.1)

"""The writer gate: writers of a collection, in any process, wait while a swap replaces it.

Every write transaction on a collection holds the gate's shared side (``Collection._write``);
``reindex --encoder`` (``ingest/reembed.py``) takes the exclusive side for its last catch-up
round and the swap, so writers of other processes wait there instead of forcing more rounds.
A writer waits at most ``writer_gate_timeout_s`` seconds, then gets ``Unavailable`` naming the
collection (nothing written).

- SQLite: ``flock`` on ``<database file>.writers/<collection id>.lock``, taken before ``BEGIN``
  so a waiting writer holds no database lock. One descriptor per collection and process,
  shared by its threads (a holder count); the exclusive side opens its own.
- PostgreSQL: the advisory lock (``WRITE_LOCK``, collection id) that every write transaction
  already takes to serialise the collection's writers (``pg_advisory_xact_lock``, released by
  the commit) is the gate: the swapper holds it at session level on a connection of its own
  and runs the swap on that connection (a session's own locks never block it). Writers being
  serialised already, a shared side would let no more of them in at once, and this way the
  gate costs them no extra round trip (python -m benchmarks.writer_gate).
- Other catalogs (SQLite in memory): one process only, the in-process locks suffice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from embedstore.errors import Unavailable

POLL_S = (0.001, 0.05)  # first and longest sleep between two tries of a held lock
WRITE_LOCK = 72350  # PostgreSQL advisory lock class of a collection's writers


class _Slot:
    """One collection's lock file in this process: descriptor, holder count, their mutex."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.holders = 0
        self.mutex = threading.Lock()


class WriterGate:
    """Shared side for every write transaction, exclusive side for a collection's swap."""

    def __init__(self, engine: Engine, timeout_s: float) -> None:
        self.engine = engine
        self.timeout_s = float(timeout_s)
        self.postgres = engine.dialect.name == "postgresql"
        db = engine.url.database if engine.dialect.name == "sqlite" else None
        self.dir: Path | None = (
            Path(db).expanduser().with_name(Path(db).name + ".writers")
            if db and db != ":memory:" and not db.startswith("file:")
            else None
        )
        self._slots: dict[int, _Slot] = {}
        self._mutex = threading.Lock()

    def close(self) -> None:
        """Close the lock files of this process (none may be held)."""
        with self._mutex:
            for slot in self._slots.values():
                with contextlib.suppress(OSError):
                    os.close(slot.fd)
            self._slots.clear()

    def forget(self, collection_id: int) -> None:
        """Remove a dropped collection's lock file (ids are never reused; a writer still waiting
        on it then finds its collection gone)."""
        if self.dir is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.dir / f"{int(collection_id)}.lock").unlink()

    # -- writers ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def shared(self, collection_id: int, name: str) -> Iterator[None]:
        """SQLite: hold the shared side around a write transaction (enter it before BEGIN)."""
        if self.dir is None:
            yield
            return
        slot = self._slot(collection_id)
        with slot.mutex:
            if slot.holders == 0:
                self._flock(slot.fd, fcntl.LOCK_SH, name)
            slot.holders += 1
        try:
            yield
        finally:
            with slot.mutex:
                slot.holders -= 1
                if slot.holders == 0:
                    fcntl.flock(slot.fd, fcntl.LOCK_UN)

    def join(self, conn: Connection, collection_id: int, name: str) -> None:
        """PostgreSQL: take the collection's write lock in the transaction ``conn`` (until its
        commit), waiting at most ``timeout_s`` for other writers or a swap."""
        if not self.postgres:
            return
        key = {"k": WRITE_LOCK, "c": collection_id}
        if conn.execute(text("SELECT pg_try_advisory_xact_lock(:k, :c)"), key).scalar():
            return  # the usual case: one round trip, as the plain lock took before the gate
        conn.execute(text(f"SET LOCAL lock_timeout = '{max(1, int(self.timeout_s * 1000))}ms'"))
        try:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k, :c)"), key)
        except OperationalError as e:
            if getattr(e.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            raise _timed_out(name, self.timeout_s) from e
        conn.execute(text("SET LOCAL lock_timeout TO DEFAULT"))

    # -- the swapper -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def exclusive(self, collection_id: int, name: str) -> Iterator[Connection | None]:
        """Hold the exclusive side: entered once every write transaction in flight has ended;
        new ones wait until it is left. Unavailable when writers keep it past the timeout.

        PostgreSQL: yields the connection that holds the lock; the swap's transaction must run
        on it (another connection of this process would wait for it like any writer).
        """
        if self.postgres:
            with self.engine.connect() as conn:
                key = {"k": WRITE_LOCK, "c": collection_id}
                try_lock = text("SELECT pg_try_advisory_lock(:k, :c)")
                held = lambda: bool(conn.execute(try_lock, key).scalar())  # noqa: E731
                _poll(held, self.timeout_s, name, swapper=True)
                conn.commit()  # a session-level lock outlives transactions
                try:
                    yield conn
                finally:
                    try:
                        conn.execute(text("SELECT pg_advisory_unlock(:k, :c)"), key)
                        conn.commit()
                    except Exception:
                        conn.invalidate()  # never back to the pool with the lock held
                        raise
            return
        if self.dir is None:
            yield None
            return
        fd = self._open(collection_id)  # a descriptor of its own: conflicts with this process's
        try:
            self._flock(fd, fcntl.LOCK_EX, name, swapper=True)
            try:
                yield None
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # -- helpers ---------------------------------------------------------------------------------
    def _slot(self, collection_id: int) -> _Slot:
        slot = self._slots.get(collection_id)
        if slot is None:
            with self._mutex:
                slot = self._slots.get(collection_id)
                if slot is None:
                    slot = self._slots[collection_id] = _Slot(self._open(collection_id))
        return slot

    def _open(self, collection_id: int) -> int:
        assert self.dir is not None
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{int(collection_id)}.lock"
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _flock(self, fd: int, mode: int, name: str, *, swapper: bool = False) -> None:
        def attempt() -> bool:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        _poll(attempt, self.timeout_s, name, swapper=swapper)


def _poll(attempt: Any, timeout_s: float, name: str, *, swapper: bool = False) -> None:
    """Call ``attempt()`` until it returns True, sleeping a little longer each time."""
    if attempt():
        return
    deadline = time.monotonic() + timeout_s
    pause = POLL_S[0]
    while True:
        time.sleep(pause)
        if attempt():
            return
        if time.monotonic() >= deadline:
            raise _timed_out(name, timeout_s, swapper=swapper)
        pause = min(pause * 2, POLL_S[1])


def _timed_out(name: str, timeout_s: float, *, swapper: bool = False) -> Unavailable:
    if swapper:
        return Unavailable(
            f"Collection {name!r}: its writers did not pause within {timeout_s:g} s "
            "(writer_gate_timeout_s); nothing was swapped, the old collection is kept"
        )
    return Unavailable(
        f"Writes to collection {name!r} wait while it is being swapped (reindex --encoder); "
        f"still waiting after {timeout_s:g} s (writer_gate_timeout_s): nothing was written, "
        "run it again"
    )

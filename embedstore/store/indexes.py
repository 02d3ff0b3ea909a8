"""One FAISS index per (collection, modality): a cache of the database with a watermark.

Every vector add or delete commits a row to ``changes`` in the same transaction. An index file
records (in ``meta["watermark"]``) the last change it includes; opening loads it and replays
newer changes, or rebuilds it from the ``vectors`` table when the file is missing, unreadable,
too far behind or disagrees with the database's counts. Files load on first use of
:attr:`IndexSet.indexes`: reading the catalog or deleting items (``rm``) never loads FAISS, and
the change log brings a file up to date whenever it is next loaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine, func, select

import indexers
from embedstore.store.tables import OP_ADD, changes, from_blobs, vectors
from embedstore.store.writes import Written, top_seq
from indexers import ExactIndex

if TYPE_CHECKING:
    from indexers import FaissIndex

    AnyIndex = ExactIndex | FaissIndex

log = logging.getLogger(__name__)
CHUNK = 500  # ids per IN (...) list
TRAIN_FACTOR = 39  # train once this many vectors per centroid exist (FAISS's own advice)
# An index file is rewritten once its unsaved vectors reach max(SAVE_EVERY, its size): each save
# rewrites the whole file, so saving at each doubling keeps the bytes written linear in the
# vectors added (about one extra copy), and a crash leaves at most that many to replay from the
# database on the next open.
SAVE_EVERY = 50_000


def _tier(spec: str) -> int:
    return 0 if not spec.upper().startswith("IVF") else (2 if "PQ" in spec.upper() else 1)


class IndexSet:
    """The indexes of one collection, kept in step with the database."""

    def __init__(self, engine: Engine, collection_id: int, dim: int, spec: str, index_dir: Path):
        self.engine, self.collection_id, self.dim = engine, collection_id, dim
        self.spec = spec
        self.dir = index_dir / str(collection_id)
        self.lock = threading.RLock()
        self._indexes: dict[str, AnyIndex] = {}
        self._opened = False  # files loaded (and caught up with the change log)
        self._loading = False
        self._unsaved: dict[str, int] = {}
        self._seen = 0  # the highest global change seq this process has looked at
        self.refresh_interval = 1.0
        self._last_refresh = 0.0

    # -- opening -------------------------------------------------------------------------------
    @property
    def indexes(self) -> dict[str, AnyIndex]:
        """The index of each modality; the first use loads the files (see :meth:`load`)."""
        if not self._opened:
            with self.lock:
                if not self._opened and not self._loading:
                    self.load()
        return self._indexes

    @indexes.setter
    def indexes(self, value: dict[str, AnyIndex]) -> None:
        with self.lock:
            self._indexes, self._opened = value, True

    @property
    def loaded(self) -> bool:
        """True once the index files are loaded in this process."""
        return self._opened

    def open(self) -> None:
        """Forget what is loaded; the files load again, caught up, on first use of ``indexes``."""
        with self.lock:
            self._indexes, self._opened = {}, False

    def load(self) -> None:
        """Load every modality's index file, replay the change log, rebuild what disagrees."""
        with self.lock:
            self._loading = True
            try:
                self._load_all()
                self._opened = True
            finally:
                self._loading = False

    def _load_all(self) -> None:
        with self.lock:
            with self.engine.connect() as conn:
                counts = self._counts(conn)
                self._seen = conn.execute(select(func.max(changes.c.seq))).scalar() or 0
            for modality in counts:
                self.indexes[modality] = self._load(modality) or self._rebuild(modality)
            self.catch_up()
            with self.engine.connect() as conn:
                counts = self._counts(conn)
            for modality, n in counts.items():
                if len(self.indexes[modality]) != n:
                    log.warning(
                        "index %s/%s has %d vectors, database %d: rebuilding",
                        self.collection_id,
                        modality,
                        len(self.indexes[modality]),
                        n,
                    )
                    self.indexes[modality] = self._rebuild(modality)
            self._last_refresh = time.monotonic()

    def _counts(self, conn: Any) -> dict[str, int]:
        rows = conn.execute(
            select(vectors.c.modality, func.count())
            .where(vectors.c.collection_id == self.collection_id)
            .group_by(vectors.c.modality)
        )
        return {m: int(n) for m, n in rows}

    def path(self, modality: str) -> Path:
        """The index file of ``modality``."""
        return self.dir / f"{modality}.index"

    def _load(self, modality: str) -> AnyIndex | None:
        path = self.path(modality)
        if not path.exists():
            return None
        try:
            index = indexers.load_index(path)
        except indexers.IndexError_ as e:
            log.warning("%s; rebuilding it from the database", e)
            return None
        meta = index.meta
        ok = meta.get("collection_id") == self.collection_id and meta.get("modality") == modality
        ok = ok and index.dim == self.dim and (self.spec in ("auto", index.spec))
        return index if ok else None

    # -- keeping up ----------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Apply changes other processes committed (checked at most every ``refresh_interval`` s)."""
        now = time.monotonic()
        if not force and now - self._last_refresh < self.refresh_interval:
            return
        self._last_refresh = now
        with self.engine.connect() as conn:
            top = conn.execute(select(func.max(changes.c.seq))).scalar() or 0
        if top > self._seen:
            with self.lock:
                self.catch_up()

    def catch_up(self, known: Mapping[int, np.ndarray] | None = None) -> None:
        """Replay committed changes newer than each index's watermark (idempotent)."""
        with self.lock, self.engine.connect() as conn:
            self._seen = max(
                self._seen, conn.execute(select(func.max(changes.c.seq))).scalar() or 0
            )
            floor = min([self.watermark(m) for m in self.indexes], default=0)
            rows = conn.execute(
                select(changes.c.seq, changes.c.modality, changes.c.op, changes.c.vector_id)
                .where(changes.c.collection_id == self.collection_id, changes.c.seq > floor)
                .order_by(changes.c.seq)
            ).all()
            top = max([r[0] for r in rows], default=floor)
            by_modality: dict[str, list[tuple[int, int, int]]] = {}
            for seq, modality, op, vid in rows:
                by_modality.setdefault(modality, []).append((seq, op, vid))
            for modality, ops in by_modality.items():
                if modality not in self.indexes:
                    self.indexes[modality] = self._rebuild(modality, conn=conn)
                    continue
                self._apply(conn, modality, ops, known or {})
            for modality in self.indexes:  # only this collection's committed rows move watermarks
                self.watermark(modality, max(top, self.watermark(modality)))

    def start_add(
        self, prev: int, parts: Mapping[str, tuple[np.ndarray, np.ndarray]]
    ) -> EarlyAdd | None:
        """Add a write transaction's vectors in a thread while it is still running.

        Only when this process's indexes are current up to ``prev`` (the transaction's starting
        change seq) and already exist for those modalities. The caller holds :attr:`lock` from
        before the transaction until :meth:`apply_written`, so no search sees the vectors before
        the commit; after a rollback it calls :meth:`EarlyAdd.undo`.
        """
        if not self.indexes or any(self.watermark(m) < prev for m in self.indexes):
            return None
        ready = {m: p for m, p in parts.items() if m in self.indexes and len(p[0])}
        return EarlyAdd(self, ready) if ready else None

    def apply_written(self, w: Written, early: EarlyAdd | None = None) -> None:
        """Apply one committed transaction of this process; replays the log if others wrote first.

        Nothing to do while the files are not loaded: loading replays the committed change log.
        """
        with self.lock:
            if not self._opened:
                return
            if early is not None:
                early.join()
            if not self.indexes or any(self.watermark(m) < w.prev for m in self.indexes):
                if early is not None:
                    early.undo()
                known = {int(i): v for ids, x in w.adds.values() for i, v in zip(ids, x)}
                self.catch_up(known)
                return
            for modality, dels in w.dels.items():
                if modality in self.indexes:
                    self.indexes[modality].remove(dels)
            for modality, (ids, x) in w.adds.items():
                if early is not None and modality in early.done:
                    continue
                if modality not in self.indexes:
                    fresh = indexers.create_index(self.spec, self.dim)
                    fresh.meta.update(collection_id=self.collection_id, modality=modality)
                    self.indexes[modality] = fresh
                self.indexes[modality].add(ids, x)
            for modality in self.indexes:
                self.watermark(modality, max(w.top, self.watermark(modality)))
            for modality in set(w.adds) | set(w.dels):
                n = len(w.adds.get(modality, ((), ()))[0]) + len(w.dels.get(modality, ()))
                self._unsaved[modality] = self._unsaved.get(modality, 0) + n
                self._maybe_rebuild(modality)

    def _maybe_rebuild(self, modality: str, conn: Any = None) -> None:
        index = self.indexes[modality]
        if (
            not isinstance(index, ExactIndex)
            and (index.needs_compaction or self._should_train(index))
            or self.spec == "auto"
            and _tier(indexers.auto_spec(len(index), self.dim)) > _tier(index.spec)
        ):
            self.indexes[modality] = self._rebuild(modality, conn=conn)

    def _apply(
        self,
        conn: Any,
        modality: str,
        ops: list[tuple[int, int, int]],
        known: Mapping[int, np.ndarray],
    ) -> None:
        index = self.indexes[modality]
        wm = self.watermark(modality)
        arr = np.array([(op, vid) for seq, op, vid in ops if seq > wm], dtype=np.int64).reshape(
            -1, 2
        )
        if not len(arr):
            return
        dels = arr[arr[:, 0] != OP_ADD, 1]
        adds = np.setdiff1d(arr[arr[:, 0] == OP_ADD, 1], dels)
        if len(adds) > max(10_000, len(index)):
            self.indexes[modality] = self._rebuild(modality, conn=conn)
            return
        if len(dels):
            index.remove(dels)
        if len(adds):
            adds = adds[~np.isin(adds, index.ids())]
            ids, x = self._vectors(conn, adds, known)
            index.add(ids, x)
        self._unsaved[modality] = self._unsaved.get(modality, 0) + len(arr)
        self._maybe_rebuild(modality, conn)

    def _should_train(self, index: FaissIndex) -> bool:
        return not index.is_trained and len(index) >= TRAIN_FACTOR * index.min_training_points

    def _vectors(
        self, conn: Any, ids: np.ndarray, known: Mapping[int, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        have = [int(i) for i in ids if int(i) in known]
        missing = [int(i) for i in ids if int(i) not in known]
        out_ids, blobs = list(have), []
        rows_x = [known[i] for i in have]
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            for vid, blob in conn.execute(
                select(vectors.c.id, vectors.c.vector).where(vectors.c.id.in_(chunk))
            ):
                out_ids.append(vid)
                blobs.append(blob)
        x = np.concatenate(
            [
                np.asarray(rows_x, dtype=np.float32).reshape(-1, self.dim),
                from_blobs(blobs, self.dim),
            ]
        )
        return np.asarray(out_ids, dtype=np.int64), x

    def watermark(self, modality: str, value: int | None = None) -> int:
        """Get (or set) the last change seq the index of ``modality`` includes."""
        index = self.indexes[modality]
        if value is not None:
            index.meta["watermark"] = int(value)
        return int(index.meta.get("watermark", 0))

    # -- building ------------------------------------------------------------------------------
    def build(
        self, modality: str, spec: str | None = None, conn: Any = None, *, eager: bool = False
    ) -> AnyIndex:
        """A fresh index of ``modality`` from the database, trained once there is enough data.

        Enough is 39 vectors per centroid, or (``eager``, as ``reindex`` asks) FAISS's minimum.
        """
        if conn is None:
            with self.engine.connect() as c:
                return self.build(modality, spec, c, eager=eager)
        spec = spec or self.spec
        wm = top_seq(conn, self.collection_id)
        ids: list[int] = []
        blobs: list[bytes] = []
        q = select(vectors.c.id, vectors.c.vector).where(
            vectors.c.collection_id == self.collection_id, vectors.c.modality == modality
        )
        for vid, blob in conn.execute(q.order_by(vectors.c.id)):
            ids.append(vid)
            blobs.append(blob)
        x = from_blobs(blobs, self.dim)
        index = indexers.create_index(spec, self.dim, n=len(ids))
        need = 1 if eager else TRAIN_FACTOR
        if not isinstance(index, ExactIndex) and len(ids) >= need * index.min_training_points:
            size = indexers.training_size(index.min_training_points, self._total(conn))
            index.train(self.training_sample(conn, size))
        if not isinstance(
            index, ExactIndex
        ):  # IVF nprobe / HNSW efSearch set for recall@10 >= 0.95
            tuned = index.add_tuned(np.asarray(ids, dtype=np.int64), x)
            if tuned:
                log.info("index %s/%s: %s", self.collection_id, modality, tuned)
        else:
            index.add(np.asarray(ids, dtype=np.int64), x)
        index.meta.update(collection_id=self.collection_id, modality=modality, watermark=int(wm))
        return index

    def _rebuild(self, modality: str, spec: str | None = None, conn: Any = None) -> AnyIndex:
        index = self.build(modality, spec, conn)
        self._unsaved[modality] = len(index) + 1
        return index

    def _total(self, conn: Any) -> int:
        q = (
            select(func.count())
            .select_from(vectors)
            .where(vectors.c.collection_id == self.collection_id)
        )
        return int(conn.execute(q).scalar() or 0)

    def training_sample(self, conn: Any, size: int, seed: int = 0) -> np.ndarray:
        """Up to ``size`` vectors of this collection, balanced across its modalities."""
        counts = self._counts(conn)
        rng = np.random.default_rng(seed)
        quota = -(-size // max(1, len(counts)))
        picked: list[int] = []
        for modality in sorted(counts):
            q = select(vectors.c.id).where(
                vectors.c.collection_id == self.collection_id, vectors.c.modality == modality
            )
            ids = np.fromiter((r[0] for r in conn.execute(q)), dtype=np.int64)
            picked.extend(rng.choice(ids, min(quota, len(ids)), replace=False).tolist())
        blobs: list[bytes] = []
        for start in range(0, len(picked), CHUNK):
            q = select(vectors.c.vector).where(vectors.c.id.in_(picked[start : start + CHUNK]))
            blobs.extend(r[0] for r in conn.execute(q))
        return from_blobs(blobs, self.dim)

    # -- saving --------------------------------------------------------------------------------
    def save(self, force: bool = False, modalities: Iterable[str] | None = None) -> None:
        """Write index files whose unsaved changes are many (or all of them with ``force``)."""
        with self.lock:
            if not self._opened:
                return
            for modality in list(modalities or self.indexes):
                index = self.indexes[modality]
                unsaved = self._unsaved.get(modality, 0)
                if unsaved and (force or unsaved >= max(SAVE_EVERY, len(index))):
                    index.save(self.path(modality))
                    self._unsaved[modality] = 0


class EarlyAdd:
    """Index adds running in a thread beside the transaction that writes the same vectors.

    FAISS and SQLite both release the GIL for their heavy work, so the index add (IVF
    assignment, HNSW insertion, copying) and the database insert run on two cores at once.
    """

    def __init__(
        self, index_set: IndexSet, parts: Mapping[str, tuple[np.ndarray, np.ndarray]]
    ) -> None:
        self.index_set, self.parts = index_set, dict(parts)
        self.done: list[str] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="embedstore-index-add", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for modality, (ids, x) in self.parts.items():
                self.index_set.indexes[modality].add(ids, x)
                self.done.append(modality)
        except BaseException as e:  # re-raised by join() in the writing thread
            self.error = e

    def join(self) -> None:
        """Wait for the adds; re-raise what failed (the caller reloads the indexes)."""
        self._thread.join()
        if self.error is not None:
            self.undo()
            raise self.error

    def undo(self) -> None:
        """Take the vectors out again (the transaction rolled back, or the log must replay)."""
        self._thread.join()
        for modality in self.done:
            index = self.index_set.indexes.get(modality)
            if index is not None:
                index.remove(self.parts[modality][0])
        self.done = []

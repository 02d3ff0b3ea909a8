"""The query path: FAISS per modality, merge by score, one SQL query for the hits' rows."""

from __future__ import annotations

import functools
import json
import threading
import weakref
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from embedstore.store.filters import Filter
from embedstore.store.indexes import IndexSet
from embedstore.store.tables import items, vectors
from embedstore.types import SearchResult

CHUNK = 500
ROW_CACHE_ROWS = 200_000
READER_CACHE_KIB = 65_536
READER_MMAP_BYTES = 1 << 31  # SQLite's default build caps the mapping at 2 GB


def allowed_ids(
    engine: Engine, collection_id: int, modalities: Sequence[str], flt: Filter
) -> dict[str, np.ndarray]:
    """Vector ids per modality whose item passes ``flt`` (one SQL query)."""
    q = (
        select(vectors.c.id, vectors.c.modality)
        .join(items, items.c.id == vectors.c.item_id)
        .where(vectors.c.collection_id == collection_id, vectors.c.modality.in_(list(modalities)))
        .where(items.c.status == "ok", flt.condition)
    )
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    if not rows:
        return {m: np.empty(0, dtype=np.int64) for m in modalities}
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    mods = np.array([r[1] for r in rows])
    return {m: ids[mods == m] for m in modalities}


def raw_search(
    index_set: IndexSet,
    q: np.ndarray,
    k: int,
    modalities: Sequence[str],
    allowed: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k vectors over ``modalities`` merged by score: (scores, vector ids), -1 padded."""
    parts_s, parts_i = [], []
    with index_set.lock:
        for modality in modalities:
            index = index_set.indexes.get(modality)
            if index is None:
                continue
            sub = None if allowed is None else allowed.get(modality, np.empty(0, dtype=np.int64))
            if sub is not None and not len(sub):
                continue
            s, i = index.search(q, k, allowed=sub)
            parts_s.append(s)
            parts_i.append(i)
    if not parts_s:
        empty = np.empty((len(q), 0))
        return empty.astype(np.float32), empty.astype(np.int64)
    if len(parts_s) == 1:
        return parts_s[0], parts_i[0]
    s, i = np.hstack(parts_s), np.hstack(parts_i)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)


def fetch_rows(engine: Engine, vector_ids: Collection[int]) -> dict[int, tuple[Any, ...]]:
    """vector id -> (item_id, modality, segment, start, end, uri, metadata) for live ``ok`` items.

    The query path runs on the DBAPI cursor with a prepared SQL string (SQLAlchemy's statement
    execution costs several times the query itself for k rows fetched by primary key). SQLite
    reads go through a :class:`RowCache`.
    """
    if not vector_ids:
        return {}
    if engine.dialect.name == "sqlite":
        return row_cache(engine).get(vector_ids)
    out: dict[int, tuple[Any, ...]] = {}
    raw = engine.raw_connection()
    try:
        _fetch_into(raw.cursor(), "%s", list(vector_ids), out)
        raw.commit()  # end the read transaction (PostgreSQL would otherwise idle in it)
    finally:
        raw.close()
    return out


class RowCache:
    """The rows of recently served vectors, valid until the database changes.

    SQLite's ``PRAGMA data_version`` changes whenever another connection (any writer, in this
    process or another) commits; each lookup checks it first and drops everything on a change,
    so a row is never served after its item is deleted, moved or re-embedded. Misses are read
    on the cache's own autocommit connection (memory-mapped, a large page cache).
    """

    def __init__(self, engine: Engine, max_rows: int = ROW_CACHE_ROWS) -> None:
        fairy = engine.raw_connection()
        fairy.detach()  # out of the pool: the cache keeps it (closed when collected)
        conn = fairy.dbapi_connection
        assert conn is not None
        self.conn: Any = conn
        for pragma in (f"cache_size=-{READER_CACHE_KIB}", f"mmap_size={READER_MMAP_BYTES}"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.max_rows = max_rows
        self.lock = threading.Lock()
        self.rows: dict[int, tuple[Any, ...] | None] = {}  # None: not a live, ok vector
        self.version: Any = None
        self._version_cursor: Any = self.conn.cursor()

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` on this connection: it changes whenever another
        connection commits, so a value equal to an earlier one means nothing was written since."""
        with self.lock:
            cur = self._version_cursor
            cur.execute("PRAGMA data_version")
            return int(cur.fetchone()[0])

    def close(self) -> None:
        """Close the cache's connection (its rows are dropped)."""
        with self.lock:
            self.rows.clear()
            self.version = None
            self._version_cursor.close()
            self.conn.close()

    def get(self, vector_ids: Collection[int]) -> dict[int, tuple[Any, ...]]:
        """Rows of the live vectors among ``vector_ids`` (fetched where not cached)."""
        with self.lock:
            cur = self._version_cursor
            cur.execute("PRAGMA data_version")
            version = cur.fetchone()[0]
            if version != self.version:
                self.rows.clear()
                self.version = version
            rows = self.rows
            missing = [i for i in vector_ids if i not in rows]
            if missing:
                fetched: dict[int, tuple[Any, ...]] = {}
                _fetch_into(self.conn.cursor(), "?", missing, fetched)
                if len(rows) + len(missing) > self.max_rows:
                    rows.clear()
                for i in missing:
                    rows[i] = fetched.get(i)
            return {i: r for i in vector_ids if (r := rows.get(i)) is not None}


_caches: weakref.WeakKeyDictionary[Engine, RowCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def row_cache(engine: Engine) -> RowCache:
    """The row cache of ``engine``'s SQLite database (one per engine)."""
    cache = _caches.get(engine)
    if cache is None:
        with _caches_lock:
            cache = _caches.get(engine)
            if cache is None:
                cache = _caches[engine] = RowCache(engine)
    return cache


def close_row_cache(engine: Engine) -> None:
    """Close ``engine``'s row cache connection, if it has one (``Store.close``)."""
    with _caches_lock:
        cache = _caches.pop(engine, None)
    if cache is not None:
        cache.close()


def _fetch_into(
    cur: Any, mark: str, vector_ids: Sequence[int], out: dict[int, tuple[Any, ...]]
) -> None:
    try:
        for start in range(0, len(vector_ids), CHUNK):
            chunk = [int(i) for i in vector_ids[start : start + CHUNK]]
            cur.execute(_fetch_sql(mark, len(chunk)), chunk)
            rows = cur.fetchall()
            metas = [r[7] for r in rows]
            if metas and all(isinstance(m, str) for m in metas):  # one JSON parse for all rows
                metas = json.loads(f"[{','.join(metas)}]")
            for r, meta in zip(rows, metas):
                out[r[0]] = (r[1], r[2], r[3], r[4], r[5], r[6], meta)
    finally:
        cur.close()


@functools.lru_cache(maxsize=256)
def _fetch_sql(mark: str, n: int) -> str:
    return (
        "SELECT v.id, v.item_id, v.modality, v.segment, v.start_s, v.end_s, i.uri, i.metadata "
        "FROM vectors v JOIN items i ON i.id = v.item_id "
        f"WHERE v.id IN ({', '.join([mark] * n)}) AND i.status = 'ok'"
    )


def search(
    index_set: IndexSet,
    engine: Engine,
    q: np.ndarray,
    k: int,
    offset: int,
    modalities: Sequence[str],
    flt: Filter,
    exclude: int | None = None,
) -> list[list[SearchResult]]:
    """Best ``k`` items per query after ``offset``, each collapsed to its best vector."""
    allowed = None if flt.empty else allowed_ids(engine, index_set.collection_id, modalities, flt)
    want = k + offset + (1 if exclude is not None else 0)
    fetch = want
    while True:
        scores, ids = raw_search(index_set, q, fetch, modalities, allowed)
        id_rows, score_rows = ids.tolist(), scores.tolist()
        found = {v for row in id_rows for v in row}
        found.discard(-1)
        rows = fetch_rows(engine, found)
        results = [_collapse(s, i, rows, want, exclude) for s, i in zip(score_rows, id_rows)]
        if all(len(r) >= want for r in results):
            break
        exhausted = ids.shape[1] < fetch or bool((ids[:, -1] < 0).all()) if ids.size else True
        if exhausted or fetch >= 1 << 20:
            break
        fetch *= 4
    return [r[offset : offset + k] for r in results]


def _collapse(
    scores: list[float],
    ids: list[int],
    rows: dict[int, tuple[Any, ...]],
    want: int,
    exclude: int | None,
) -> list[SearchResult]:
    out: list[SearchResult] = []
    seen: set[int] = set()
    get = rows.get
    for score, vid in zip(scores, ids):
        row = get(vid)
        if row is None:  # deleted since the index saw it: never served
            continue
        item_id, modality, segment, start, end, uri, meta = row
        if item_id in seen or item_id == exclude:
            continue
        seen.add(item_id)
        # positional: SearchResult(id, uri, modality, score, metadata, start, end, segment);
        # metadata is a copy so cached rows stay intact
        out.append(
            SearchResult(
                item_id, uri, modality, score, dict(meta) if meta else {}, start, end, segment
            )
        )
        if len(out) >= want:
            break
    return out

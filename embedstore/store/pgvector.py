"""The ``pgvector`` index backend: vectors served from the catalog by PostgreSQL + pgvector.

A collection created with ``index_backend="pgvector"`` keeps each vector's float32 bytes in
``vectors.vector`` (the source of truth, as with FAISS) and a ``halfvec`` copy in
``vectors.embedding``, searched through one partial HNSW index per (collection, modality)
(``WHERE collection_id = C AND modality = 'M'`` on the expression ``embedding::halfvec(dim)``).
There is no index file and no warm-up: every process on every machine that reaches the
database serves the same committed rows.

- Loads first, index after: rows go into an unindexed table until a modality has
  :data:`HNSW_MIN` vectors and the store is flushed (the end of an ``index`` run, ``close``),
  or it passes :data:`AUTO_BUILD` while writing; the index is then built with
  ``CREATE INDEX CONCURRENTLY`` (writers keep going) and PostgreSQL maintains it afterwards.
- ``hnsw.ef_search`` is tuned per modality after each build to recall@10 >= 0.95 against exact
  search over the float32 vectors (see :meth:`PgVectorIndexSet.tune`), never below 40.
- Filters compile to SQL; pgvector's iterative index scan (0.8+, ``relaxed_order``) keeps
  reading the graph until the filter has passed enough rows, and when the scan still comes back
  short (a very selective filter) the query runs as an exact scan of the rows that pass.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Float, bindparam, cast, literal_column, select, text
from sqlalchemy import update as sa_update
from sqlalchemy.exc import DBAPIError

from embedstore.errors import InvalidInput, Unavailable
from embedstore.store.filters import Filter
from embedstore.store.search import _collapse
from embedstore.store.tables import collections, from_blobs, items, vectors
from embedstore.store.writes import Written
from embedstore.types import SearchResult

log = logging.getLogger(__name__)

MIN_VERSION = (0, 8, 0)  # iterative index scans (hnsw.iterative_scan) arrived in pgvector 0.8.0
MAX_DIM = 4000  # the most dimensions an HNSW index on halfvec takes
HNSW_MIN = 2000  # below this many vectors an exact scan is as fast as the graph: no index
AUTO_BUILD = 50_000  # an unindexed modality this large gets its index without waiting for flush
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 64  # pgvector's defaults
# From pgvector's default (40) up to its maximum. Lower values reached the target on the tuning
# queries but not on held-out ones: at 20k x 1024, ef 16 read 0.986 (stored vectors) and 0.997
# (midpoints) while held-out queries got 0.946 and 0.955 (benchmarks/results/scale-ann-20k*).
EF_STEPS = (40, 48, 64, 96, 128, 192, 256, 384, 512, 800, 1000)
DEFAULT_EF = 40
RECALL_TARGET, MARGIN = 0.95, 0.01  # as FaissIndex.add_tuned: aim a little above the target
TUNE_QUERIES = 100
MAINTENANCE_MEM = "1GB"  # the graph of 100k x 1024 halfvec is ~250 MB; building in memory is fast
PARALLEL_BUILD_WORKERS = 2
TRUTH_CHUNK = 20_000
_NAME_RE = re.compile(r"^[a-z0-9_-]{1,32}$")


# -- schema ------------------------------------------------------------------------------------
def _version(text_: str | None) -> tuple[int, ...] | None:
    if not text_:
        return None
    return tuple(int(p) for p in re.findall(r"\d+", text_)[:3])


def extension_versions(conn: Connection) -> tuple[str | None, str | None]:
    """(installed, available) versions of the ``vector`` extension on this server."""
    row = conn.exec_driver_sql(
        "SELECT installed_version, default_version FROM pg_available_extensions "
        "WHERE name = 'vector'"
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _ddl(conn: Connection) -> None:
    conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    conn.exec_driver_sql("ALTER TABLE vectors ADD COLUMN IF NOT EXISTS embedding halfvec")


def try_ensure_schema(conn: Connection) -> bool:
    """Create the extension and ``vectors.embedding`` when the server has pgvector (migration).

    Runs in a savepoint: a server without pgvector, or a user who may not create the
    extension, leaves the migration's transaction intact. Returns whether it worked.
    """
    installed, available = extension_versions(conn)
    if available is None and installed is None:
        return False
    try:
        with conn.begin_nested():
            _ddl(conn)
    except DBAPIError as e:
        log.info("pgvector not set up by the migration: %s", str(e).splitlines()[0])
        return False
    return True


def ensure_schema(engine: Engine) -> str:
    """Check the server can serve a pgvector collection (creating what is missing); its version.

    Raises InvalidInput on a non-PostgreSQL catalog and Unavailable when the server lacks
    pgvector, has an older version than :data:`MIN_VERSION`, or the user cannot create it.
    """
    if engine.dialect.name != "postgresql":
        raise InvalidInput(
            f"index_backend 'pgvector' needs a PostgreSQL catalog; this one is "
            f"{engine.dialect.name} (set EMBEDSTORE_DATABASE_URL=postgresql+psycopg://...)",
            field="index_backend",
        )
    need = ".".join(map(str, MIN_VERSION))
    with engine.begin() as conn:
        installed, available = extension_versions(conn)
        if installed is None and available is None:
            raise Unavailable(
                f"the PostgreSQL server has no pgvector extension; install pgvector {need} or "
                f"newer on it (or run: bash .ci/start-pgvector.sh for a local one)"
            )
        have = installed or available
        if (_version(have) or (0,)) < MIN_VERSION:
            raise Unavailable(
                f"pgvector {have} is {'installed' if installed else 'available'} on the server; "
                f"embedstore needs {need} or newer (iterative index scans): install it, then "
                f"run ALTER EXTENSION vector UPDATE"
            )
        has_column = conn.exec_driver_sql(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'vectors' AND column_name = 'embedding'"
        ).first()
        if installed is not None and has_column is not None:
            return installed
        try:
            with conn.begin_nested():
                _ddl(conn)
        except DBAPIError as e:
            raise Unavailable(
                f"cannot set up pgvector in this database ({str(e.orig).splitlines()[0]}); "
                f"as a superuser run: CREATE EXTENSION vector"
            ) from e
        return str(extension_versions(conn)[0])


def check_collection(dim: int) -> None:
    """A pgvector collection's dimension must fit a halfvec HNSW index."""
    if dim > MAX_DIM:
        raise InvalidInput(
            f"index_backend 'pgvector' indexes at most {MAX_DIM} dimensions (halfvec); got {dim}",
            field="index_backend",
        )


def index_name(collection_id: int, modality: str) -> str:
    """The partial HNSW index of one (collection, modality)."""
    return f"ix_vectors_hnsw_{int(collection_id)}_{modality.replace('-', '_')}"


def drop_indexes(engine: Engine, collection_id: int) -> None:
    """Drop every HNSW index of a collection (after the collection itself is deleted)."""
    with engine.begin() as conn:
        names = conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'vectors' AND indexname LIKE %s",
            (f"ix_vectors_hnsw_{int(collection_id)}_%",),
        ).scalars()
        for name in list(names):
            conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{name}"')


# -- writing -----------------------------------------------------------------------------------
_registered: weakref.WeakSet[Any] = weakref.WeakSet()
_registered_lock = threading.Lock()


def halfvec_values(conn: Connection, x: np.ndarray) -> list[Any]:
    """Rows of ``x`` as values psycopg sends in pgvector's binary halfvec format."""
    from pgvector import HalfVector
    from pgvector.psycopg import register_vector

    raw = conn.connection.dbapi_connection
    with _registered_lock:
        if raw not in _registered:
            register_vector(raw)  # type: ignore[arg-type]
            _registered.add(raw)
    return [HalfVector(v) for v in np.asarray(x, dtype=np.float32)]


# -- the index set -----------------------------------------------------------------------------
class PgVectorIndexSet:
    """What :class:`~embedstore.store.indexes.IndexSet` does for FAISS, done by PostgreSQL.

    ``indexes`` maps each modality the collection has to its tuned ``ef_search`` (None while it
    has no HNSW index and is searched exactly).
    """

    backend = "pgvector"

    def __init__(self, engine: Engine, collection_id: int, dim: int, spec: str) -> None:
        self.engine, self.collection_id, self.dim, self.spec = engine, collection_id, dim, spec
        self.lock = threading.RLock()
        self.indexes: dict[str, int | None] = {}
        self.refresh_interval = 1.0
        self._last_refresh = 0.0
        self._unindexed_adds: dict[str, int] = {}
        self.stats = {"queries": 0, "exact_fallbacks": 0}
        """Searches run and those that fell back to an exact scan (benchmarks)."""
        from pgvector.sqlalchemy import HALFVEC

        self._type = HALFVEC(dim)
        self._emb = literal_column(f"vectors.embedding::halfvec({int(dim)})", type_=self._type)

    # -- state -----------------------------------------------------------------------------------
    def open(self) -> None:
        """Check the server (pgvector 0.8+) and read the modalities and their indexes."""
        ensure_schema(self.engine)
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        """Re-read the modalities, their HNSW indexes and tuned ef (at most every second)."""
        now = time.monotonic()
        if not force and now - self._last_refresh < self.refresh_interval:
            return
        self._last_refresh = now
        with self.engine.connect() as conn:
            mods = self._modalities(conn)
            built = self._built(conn)
            params = self._params(conn)
        efs = params.get("ef_search", {})
        with self.lock:
            self.indexes = {m: (int(efs.get(m, DEFAULT_EF)) if m in built else None) for m in mods}

    def _modalities(self, conn: Connection) -> list[str]:
        # a loose index scan over ix_vectors_collection_modality: one probe per modality
        rows = conn.exec_driver_sql(
            "WITH RECURSIVE m AS ("
            " (SELECT modality FROM vectors WHERE collection_id = %(c)s ORDER BY modality LIMIT 1)"
            " UNION ALL SELECT (SELECT v.modality FROM vectors v WHERE v.collection_id = %(c)s"
            " AND v.modality > m.modality ORDER BY v.modality LIMIT 1) FROM m"
            " WHERE m.modality IS NOT NULL) SELECT modality FROM m WHERE modality IS NOT NULL",
            {"c": self.collection_id},
        )
        return [r[0] for r in rows]

    def _built(self, conn: Connection) -> set[str]:
        rows = conn.exec_driver_sql(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'vectors'::regclass AND i.indisvalid AND c.relname LIKE %s",
            (f"ix_vectors_hnsw_{self.collection_id}_%",),
        ).scalars()
        names = set(rows)
        return {m for m in self._modalities(conn) if index_name(self.collection_id, m) in names}

    def _params(self, conn: Connection) -> dict[str, Any]:
        row = conn.execute(
            select(collections.c.index_params).where(collections.c.id == self.collection_id)
        ).scalar()
        return dict(row or {})

    # -- the write path (the IndexSet interface) -------------------------------------------------
    def embedding_values(self, conn: Connection, x: np.ndarray) -> list[Any]:
        """The ``embedding`` column's values for new vector rows (same transaction)."""
        return halfvec_values(conn, x)

    def start_add(self, prev: int, parts: Mapping[str, Any]) -> None:
        """Nothing to add early: the rows are the index."""
        return None

    def apply_written(self, w: Written, early: Any = None) -> None:
        """Note new modalities and how many rows went in unindexed."""
        with self.lock:
            for modality, (ids, _x) in w.adds.items():
                if self.indexes.get(modality) is None:
                    self._unindexed_adds[modality] = self._unindexed_adds.get(modality, 0) + len(
                        ids
                    )
                    self.indexes.setdefault(modality, None)

    def save(self, force: bool = False, modalities: Sequence[str] | None = None) -> None:
        """Build the HNSW index of modalities that need one.

        ``force`` (flush, close): every modality with at least :data:`HNSW_MIN` vectors;
        otherwise only those this process has loaded :data:`AUTO_BUILD` rows into.
        """
        with self.lock:
            todo = [
                m
                for m, n in self._unindexed_adds.items()
                if (force or n >= AUTO_BUILD) and (modalities is None or m in modalities)
            ]
        if force:
            self.refresh(force=True)
            todo = sorted(set(todo) | {m for m, ef in self.indexes.items() if ef is None})
        for modality in todo:
            if self._count(modality) >= (HNSW_MIN if force else AUTO_BUILD):
                self.build(modality)
            with self.lock:
                self._unindexed_adds.pop(modality, None)

    def _count(self, modality: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM vectors WHERE collection_id = %s AND modality = %s",
                    (self.collection_id, modality),
                ).scalar()
                or 0
            )

    # -- building and tuning ---------------------------------------------------------------------
    def build(self, modality: str, *, rebuild: bool = False) -> dict[str, Any]:
        """Build (``rebuild``: replace) the HNSW index of ``modality`` concurrently, then tune it."""
        if not _NAME_RE.match(modality):
            raise InvalidInput(f"invalid modality {modality!r}", field="modality")
        name = index_name(self.collection_id, modality)
        t0 = time.perf_counter()
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            valid = conn.exec_driver_sql(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = %s",
                (name,),
            ).scalar()
            if valid is False or (valid is not None and rebuild):  # a failed or replaced build
                conn.exec_driver_sql(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
            conn.exec_driver_sql(f"SET maintenance_work_mem = '{MAINTENANCE_MEM}'")
            conn.exec_driver_sql(
                f"SET max_parallel_maintenance_workers = {int(PARALLEL_BUILD_WORKERS)}"
            )
            conn.exec_driver_sql(
                f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON vectors USING hnsw '
                f"((embedding::halfvec({int(self.dim)})) halfvec_ip_ops) "
                f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
                f"WHERE collection_id = {int(self.collection_id)} AND modality = '{modality}'"
            )
            conn.exec_driver_sql("RESET maintenance_work_mem")
            conn.exec_driver_sql("RESET max_parallel_maintenance_workers")
            # fresh statistics after a bulk load, or the planner, still counting the rows
            # autovacuum has not seen yet, prefers the btree and a sort to the graph
            conn.exec_driver_sql("ANALYZE vectors")
        built_s = time.perf_counter() - t0
        with self.lock:
            self.indexes[modality] = DEFAULT_EF
        chosen = self.tune(modality)
        chosen["build_s"] = round(built_s, 3)
        log.info("pgvector index %s: %s", name, chosen)
        return chosen

    def tune(self, modality: str, *, k: int = 10, seed: int = 0) -> dict[str, Any]:
        """Set the smallest ``hnsw.ef_search`` with recall@``k`` >= 0.95 against exact search.

        The queries are not stored vectors (a stored vector finds itself and its graph
        neighbours too easily: at 20k x 1024 that read 0.986 where held-out queries got 0.946)
        but the midpoints of sampled stored vectors and their nearest neighbours: points of the
        data the graph has never seen. The truth is exact search over the float32 vectors.
        """
        with self.engine.connect() as conn:
            ids, base = self._sample(conn, modality, TUNE_QUERIES, seed)
            if len(ids) < 2 * k:
                return {}
            nn = np.asarray([row[0] for row in self._truth(conn, modality, ids, base, 1)])
            q = base + self._vectors_by_id(conn, nn)
            q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            truth = self._truth(conn, modality, np.full(len(q), -1), q, k)
            chosen, recall = EF_STEPS[-1], 0.0
            for ef in EF_STEPS:
                got = [
                    [vid for _s, vid, _r in self._query(conn, qv, modality, k, None, ef)]
                    for qv in q
                ]
                recall = float(np.mean([len(set(g) & set(t)) / k for g, t in zip(got, truth)]))
                conn.commit()
                if recall >= RECALL_TARGET + MARGIN:
                    chosen = ef
                    break
            params = self._params(conn)
            params.setdefault("ef_search", {})[modality] = chosen
            params.setdefault("recall_at_10", {})[modality] = round(recall, 4)
            conn.execute(
                sa_update(collections)
                .where(collections.c.id == self.collection_id)
                .values(index_params=params)
            )
            conn.commit()
        with self.lock:
            self.indexes[modality] = chosen
        return {"ef_search": chosen, "recall_at_10": round(recall, 4)}

    def _sample(
        self, conn: Connection, modality: str, n: int, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        conn.exec_driver_sql("SELECT setseed(%s)", (((seed % 1000) / 1000.0),))
        rows = conn.execute(
            select(vectors.c.id, vectors.c.vector)
            .where(vectors.c.collection_id == self.collection_id, vectors.c.modality == modality)
            .order_by(text("random()"))
            .limit(n)
        ).all()
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        return ids, from_blobs([r[1] for r in rows], self.dim)

    def _vectors_by_id(self, conn: Connection, ids: np.ndarray) -> np.ndarray:
        rows = dict(
            conn.execute(
                select(vectors.c.id, vectors.c.vector).where(vectors.c.id.in_(ids.tolist()))
            ).all()
        )
        return from_blobs([rows[int(i)] for i in ids], self.dim)

    def _truth(
        self, conn: Connection, modality: str, qids: np.ndarray, q: np.ndarray, k: int
    ) -> list[list[int]]:
        """Exact top-k by inner product over the float32 vectors, each query's own row left out."""
        best_s = np.full((len(q), k + 1), -np.inf, dtype=np.float32)
        best_i = np.full((len(q), k + 1), -1, dtype=np.int64)
        stmt = (
            select(vectors.c.id, vectors.c.vector)
            .where(vectors.c.collection_id == self.collection_id, vectors.c.modality == modality)
            .execution_options(yield_per=TRUTH_CHUNK)
        )
        for part in conn.execute(stmt).partitions():
            ids = np.asarray([r[0] for r in part], dtype=np.int64)
            s = q @ from_blobs([r[1] for r in part], self.dim).T
            s[ids[None, :] == qids[:, None]] = -np.inf
            all_s, all_i = np.hstack([best_s, s]), np.hstack([best_i, np.tile(ids, (len(q), 1))])
            top = np.argsort(-all_s, axis=1, kind="stable")[:, : k + 1]
            best_s = np.take_along_axis(all_s, top, 1)
            best_i = np.take_along_axis(all_i, top, 1)
        return [[int(v) for v in row[:k]] for row in best_i]

    # -- searching -------------------------------------------------------------------------------
    def _query(
        self,
        conn: Connection,
        qv: np.ndarray,
        modality: str,
        n: int,
        flt: Filter | None,
        ef: int | None,
    ) -> list[tuple[float, int, tuple[Any, ...]]]:
        """Up to ``n`` (score, vector id, row) of one modality: HNSW when ``ef``, else exact."""
        qp = cast(bindparam("q", type_=self._type), self._type)
        dist = self._emb.op("<#>", return_type=Float)(qp)  # negative inner product
        order = dist if ef is not None else dist + literal_column("0")  # + 0: no index order
        stmt = (
            select(
                vectors.c.id,
                vectors.c.item_id,
                vectors.c.modality,
                vectors.c.segment,
                vectors.c.start_s,
                vectors.c.end_s,
                items.c.uri,
                items.c.metadata,
                dist.label("d"),
            )
            .select_from(vectors.join(items, items.c.id == vectors.c.item_id))
            # literals, not parameters: the planner matches them to the partial index predicate
            .where(
                text(
                    f"vectors.collection_id = {int(self.collection_id)} "
                    f"AND vectors.modality = '{modality}'"
                ),
                items.c.status == "ok",
            )
            .order_by(order)
            .limit(n)
        )
        if flt is not None and not flt.empty:
            stmt = stmt.where(flt.condition)
        if ef is not None:
            conn.exec_driver_sql(
                f"SET LOCAL hnsw.ef_search = {int(ef)}; "
                "SET LOCAL hnsw.iterative_scan = relaxed_order"
            )
        rows = conn.execute(stmt, {"q": qv}).all()
        out = [(-float(r[8]), int(r[0]), (r[1], r[2], r[3], r[4], r[5], r[6], r[7])) for r in rows]
        out.sort(key=lambda t: -t[0])  # relaxed_order: the scan may return them slightly out
        return out

    def search(
        self,
        q: np.ndarray,
        k: int,
        offset: int,
        modalities: Sequence[str],
        flt: Filter,
        exclude: int | None = None,
    ) -> list[list[SearchResult]]:
        """Best ``k`` items per query after ``offset``, each collapsed to its best vector."""
        for m in modalities:
            if not _NAME_RE.match(m):
                raise InvalidInput(f"invalid modality {m!r}", field="modalities")
        want = k + offset + (1 if exclude is not None else 0)
        with self.lock:
            efs = dict(self.indexes)
        out: list[list[SearchResult]] = []
        with self.engine.connect() as conn:
            mods = list(modalities) if modalities else self._modalities(conn)
            for qv in q:
                out.append(self._search_one(conn, qv, want, mods, flt, efs, exclude))
            conn.commit()
        return [r[offset : offset + k] for r in out]

    def _search_one(
        self,
        conn: Connection,
        qv: np.ndarray,
        want: int,
        mods: Sequence[str],
        flt: Filter,
        efs: Mapping[str, int | None],
        exclude: int | None,
    ) -> list[SearchResult]:
        self.stats["queries"] += 1
        fetch = want
        while True:
            cands: list[tuple[float, int, tuple[Any, ...]]] = []
            exhausted = True
            for m in mods:
                ef = efs.get(m)
                got = self._query(conn, qv, m, fetch, flt, ef)
                if ef is not None and len(got) < fetch:
                    # the graph scan stopped short (max_scan_tuples): the filter passes few
                    # rows, so score exactly the rows that pass it
                    self.stats["exact_fallbacks"] += 1
                    got = self._query(conn, qv, m, fetch, flt, None)
                exhausted = exhausted and len(got) < fetch
                cands.extend(got)
            cands.sort(key=lambda t: -t[0])
            rows = {vid: row for _s, vid, row in cands}
            res = _collapse([c[0] for c in cands], [c[1] for c in cands], rows, want, exclude)
            if len(res) >= want or exhausted or fetch >= 1 << 20:
                return res
            fetch *= 4

    def raw_search(self, q: np.ndarray, k: int, modality: str) -> tuple[np.ndarray, np.ndarray]:
        """(scores, vector ids) of one modality, -1 padded (the store's ``search_ids``)."""
        ef = self.indexes.get(modality)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        with self.engine.connect() as conn:
            for j, qv in enumerate(q):
                got = self._query(conn, qv, modality, k, None, ef)
                for i, (s, vid, _row) in enumerate(got):
                    scores[j, i], ids[j, i] = s, vid
            conn.commit()
        return scores, ids

    def reindex(self) -> None:
        """Rebuild every modality's HNSW index (concurrently) and re-tune it."""
        self.refresh(force=True)
        for modality in list(self.indexes):
            if self._count(modality) >= HNSW_MIN:
                self.build(modality, rebuild=True)

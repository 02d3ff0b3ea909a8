"""Store: the catalog database plus one index cache per collection."""

from __future__ import annotations

import logging
import re
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

import indexers
from embedstore.errors import (
    CollectionExists,
    CollectionNotFound,
    Conflict,
    DimensionMismatch,
    EncoderMismatch,
    InvalidInput,
)
from embedstore.store import pgvector
from embedstore.store import search as _search
from embedstore.store.collection import Collection
from embedstore.store.gate import WriterGate
from embedstore.store.indexes import IndexSet
from embedstore.store.schema import make_engine, migrate, writer
from embedstore.store.tables import changes, collections, items, utcnow, vectors
from embedstore.store.types import CollectionInfo

if TYPE_CHECKING:
    from embedstore.config import Settings

log = logging.getLogger(__name__)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
BACKENDS = ("faiss", "pgvector")


class Store:
    """Collections in a SQLite or PostgreSQL database, with FAISS index files under ``index_dir``."""

    def __init__(
        self, url: str, index_dir: Path | str, *, writer_gate_timeout_s: float = 600.0
    ) -> None:
        self.url = url
        self.index_dir = Path(index_dir).expanduser()
        self.engine = make_engine(url)
        migrate(self.engine)
        # writers of a collection wait (at most this long) while reindex --encoder swaps it
        self.gate = WriterGate(self.engine, writer_gate_timeout_s)
        self._lock = threading.RLock()
        self._sets: dict[int, IndexSet | pgvector.PgVectorIndexSet] = {}
        # name -> (data_version, collections row): the row lookup of every query, re-read as
        # soon as any connection commits (SQLite files only; PostgreSQL reads the row each time)
        self._rows: dict[str, tuple[int, Any]] = {}
        self._cache_rows = self.engine.dialect.name == "sqlite" and (
            self.engine.url.database or ":memory:"
        ) not in (":memory:", "")

    @classmethod
    def open(cls, settings: Settings) -> Store:
        """Open (creating and migrating as needed) the store that ``settings`` points at."""
        return cls(
            settings.resolved_database_url,
            settings.index_dir,
            writer_gate_timeout_s=settings.writer_gate_timeout_s,
        )

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Save index files with unsaved changes and release the database connections."""
        with self._lock:
            for index_set in self._sets.values():
                try:
                    index_set.save(force=True)
                except OSError:
                    log.exception(
                        "could not save the index of collection %s", index_set.collection_id
                    )
            self._sets.clear()
            self._rows.clear()
        _search.close_row_cache(self.engine)
        self.gate.close()
        self.engine.dispose()

    # -- collections ---------------------------------------------------------------------------
    def create_collection(
        self,
        name: str,
        encoder: str,
        dim: int,
        *,
        encoder_version: str = "",
        index_spec: str = "auto",
        exist_ok: bool = False,
        index_backend: str = "faiss",
    ) -> Collection:
        """Create a collection (or, with ``exist_ok``, return the matching existing one).

        ``index_backend``: ``faiss`` (index files, the default) or ``pgvector`` (HNSW in a
        PostgreSQL catalog with pgvector 0.8+, see :mod:`embedstore.store.pgvector`).
        """
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidInput(
                f"Invalid collection name {name!r}: use letters, digits, '_', '.' or '-' (max 128)",
                field="name",
            )
        if not isinstance(dim, int) or dim < 1:
            raise InvalidInput(
                f"Collection dimension must be a positive integer, got {dim!r}", field="dim"
            )
        try:
            indexers.validate_spec(index_spec, dim)
        except indexers.InvalidSpec as e:
            raise InvalidInput(f"Invalid index spec: {e}", field="index_spec") from e
        if index_backend not in BACKENDS:
            raise InvalidInput(
                f"Unknown index backend {index_backend!r} (use {' or '.join(BACKENDS)})",
                field="index_backend",
            )
        if index_backend == "pgvector":
            pgvector.check_collection(dim)
            pgvector.ensure_schema(self.engine)
        row = self._row(name)
        if row is None:
            try:
                with writer(self.engine).begin() as conn:
                    conn.execute(
                        insert(collections).values(
                            name=name,
                            encoder=encoder,
                            encoder_version=encoder_version,
                            dim=dim,
                            index_spec=index_spec,
                            created_at=utcnow(),
                            index_backend=index_backend,
                        )
                    )
                return self.collection(name)
            except IntegrityError:
                row = self._row(name)  # created concurrently
                if row is None:
                    raise
        if not exist_ok:
            raise CollectionExists(
                f"Collection {name!r} exists already (drop it first or pass exist_ok)"
            )
        if row["encoder"] != encoder:
            raise EncoderMismatch(
                f"Collection {name!r} was built with encoder {row['encoder']!r}, not {encoder!r}",
                field="encoder",
            )
        if row["dim"] != dim:
            raise DimensionMismatch(
                f"Collection {name!r} has dimension {row['dim']}, not {dim}", field="dim"
            )
        if index_backend != "faiss" and row["index_backend"] != index_backend:
            raise Conflict(
                f"Collection {name!r} uses index backend {row['index_backend']!r}, "
                f"not {index_backend!r}",
                field="index_backend",
            )
        return self.collection(name)

    def _row(self, name: str) -> Any:
        with self.engine.connect() as conn:
            return (
                conn.execute(select(collections).where(collections.c.name == name))
                .mappings()
                .first()
            )

    def _current_row(self, name: str) -> Any:
        """``_row(name)``, served from ``_rows`` while SQLite's data_version is unchanged."""
        if not self._cache_rows:
            return self._row(name)
        version = _search.row_cache(self.engine).data_version()  # read before the row
        hit = self._rows.get(name)
        if hit is not None and hit[0] == version:
            return hit[1]
        row = self._row(name)
        if row is not None:
            self._rows[name] = (version, row)
        return row

    def collection(self, name: str) -> Collection:
        """The collection ``name``; CollectionNotFound says how to create it."""
        row = self._current_row(name)
        if row is None:
            raise CollectionNotFound(
                f"Collection {name!r} does not exist; create it with: embedstore index PATH -c {name}"
            )
        with self._lock:
            index_set = self._sets.get(row["id"])
            if index_set is None:
                if row["index_backend"] == "pgvector":
                    index_set = pgvector.PgVectorIndexSet(
                        self.engine, row["id"], row["dim"], row["index_spec"]
                    )
                else:
                    index_set = IndexSet(
                        self.engine, row["id"], row["dim"], row["index_spec"], self.index_dir
                    )
                index_set.open()
                self._sets[row["id"]] = index_set
        return Collection(self, row, index_set)

    def collections(self) -> list[CollectionInfo]:
        """Every collection with its counts, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(collections).order_by(collections.c.name)).mappings().all()
            n_items: dict[int, int] = dict(
                conn.execute(
                    select(items.c.collection_id, func.count()).group_by(items.c.collection_id)
                ).all()
            )
            failed: dict[int, int] = dict(
                conn.execute(
                    select(items.c.collection_id, func.count())
                    .where(items.c.status == "failed")
                    .group_by(items.c.collection_id)
                ).all()
            )
            by_mod: dict[int, dict[str, int]] = {}
            for cid, m, n in conn.execute(
                select(vectors.c.collection_id, vectors.c.modality, func.count()).group_by(
                    vectors.c.collection_id, vectors.c.modality
                )
            ):
                by_mod.setdefault(cid, {})[m] = int(n)
        return [
            CollectionInfo(
                name=r["name"],
                encoder=r["encoder"],
                encoder_version=r["encoder_version"],
                dim=r["dim"],
                index_spec=r["index_spec"],
                created_at=r["created_at"],
                items=int(n_items.get(r["id"], 0)),
                vectors=sum(by_mod.get(r["id"], {}).values()),
                by_modality=by_mod.get(r["id"], {}),
                failed=int(failed.get(r["id"], 0)),
                index_backend=r["index_backend"],
            )
            for r in rows
        ]

    def list_collections(self) -> list[str]:
        """Collection names."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(select(collections.c.name).order_by(collections.c.name)).scalars()
            )

    def drop_collection(self, name: str) -> None:
        """Delete a collection, its items, vectors and index files."""
        row = self._row(name)
        if row is None:
            raise CollectionNotFound(f"Collection {name!r} does not exist")
        cid = row["id"]
        with self._lock:
            index_set = self._sets.pop(cid, None)
            lock = index_set.lock if index_set else threading.RLock()
            with lock, writer(self.engine).begin() as conn:
                for table in (changes, vectors, items):
                    conn.execute(delete(table).where(table.c.collection_id == cid))
                conn.execute(delete(collections).where(collections.c.id == cid))
            if row["index_backend"] == "pgvector":
                pgvector.drop_indexes(self.engine, cid)
            shutil.rmtree(self.index_dir / str(cid), ignore_errors=True)
            self.gate.forget(cid)

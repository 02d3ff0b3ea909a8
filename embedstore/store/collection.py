"""Collection: one named set of items embedded by one encoder, with its indexes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select, update

import indexers
from embedstore.errors import DimensionMismatch, InvalidInput, InvalidQuery, ItemNotFound
from embedstore.store import keyword, writes
from embedstore.store import search as _search
from embedstore.store.captions import Caption, write_captions
from embedstore.store.filters import Filter
from embedstore.store.indexes import EarlyAdd, IndexSet
from embedstore.store.pgvector import PgVectorIndexSet
from embedstore.store.schema import writer
from embedstore.store.tables import collections, from_blobs, items, vectors
from embedstore.store.types import CollectionInfo, FileState, ItemInfo, NewItem, NewVector
from embedstore.types import SearchResult

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from embedstore.store.store import Store

log = logging.getLogger(__name__)
CHUNK = 500


class Collection:
    """The API of one collection: add, remove, search, list, reindex."""

    def __init__(
        self, store: Store, row: Mapping[str, Any], index_set: IndexSet | PgVectorIndexSet
    ) -> None:
        self.store = store
        self.id: int = row["id"]
        self.name: str = row["name"]
        self.encoder: str = row["encoder"]
        self.encoder_version: str = row["encoder_version"]
        self.dim: int = row["dim"]
        self.index_spec: str = row["index_spec"]
        self.created_at = row["created_at"]
        self.index_backend: str = row.get("index_backend") or "faiss"
        self.indexes: Any = index_set  # IndexSet (faiss) or PgVectorIndexSet (pgvector)

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, encoder={self.encoder!r}, dim={self.dim})"

    @property
    def _engine(self) -> Any:
        return self.store.engine

    # -- reading the catalog -------------------------------------------------------------------
    def info(self) -> CollectionInfo:
        """Settings and counts (items, vectors, vectors per modality, failed files)."""
        with self._engine.connect() as conn:
            by_status = dict(
                conn.execute(
                    select(items.c.status, func.count())
                    .where(items.c.collection_id == self.id)
                    .group_by(items.c.status)
                ).all()
            )
            by_modality = dict(
                conn.execute(
                    select(vectors.c.modality, func.count())
                    .where(vectors.c.collection_id == self.id)
                    .group_by(vectors.c.modality)
                ).all()
            )
        return CollectionInfo(
            name=self.name,
            encoder=self.encoder,
            encoder_version=self.encoder_version,
            dim=self.dim,
            index_spec=self.index_spec,
            created_at=self.created_at,
            index_backend=self.index_backend,
            items=int(sum(by_status.values())),
            vectors=int(sum(by_modality.values())),
            by_modality={k: int(v) for k, v in by_modality.items()},
            failed=int(by_status.get("failed", 0)),
        )

    def file_states(self, uris: Iterable[str]) -> dict[str, FileState]:
        """uri -> what the catalog holds about it, for the uris it knows."""
        uris = list(uris)
        cols = (
            items.c.uri,
            items.c.id,
            items.c.size,
            items.c.mtime,
            items.c.content_hash,
            items.c.status,
        )
        out: dict[str, FileState] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(uris), CHUNK):
                q = select(*cols).where(
                    items.c.collection_id == self.id, items.c.uri.in_(uris[start : start + CHUNK])
                )
                for uri, iid, size, mtime, h, status in conn.execute(q):
                    out[uri] = FileState(
                        id=iid, size=size, mtime=mtime, content_hash=h, status=status
                    )
        return out

    def items_by_hash(self, hashes: Iterable[str]) -> dict[str, int]:
        """content_hash -> the id of an item with status ``ok`` and that hash."""
        hashes = list(hashes)
        out: dict[str, int] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(hashes), CHUNK):
                q = (
                    select(items.c.content_hash, func.min(items.c.id))
                    .where(items.c.collection_id == self.id, items.c.status == "ok")
                    .where(items.c.content_hash.in_(hashes[start : start + CHUNK]))
                    .group_by(items.c.content_hash)
                )
                out.update({h: int(i) for h, i in conn.execute(q)})
        return out

    def vectors_of(self, item_id: int) -> list[NewVector]:
        """The stored vectors of an item (ItemNotFound if there is no such item)."""
        self._item_row(item_id)
        q = (
            select(
                vectors.c.modality,
                vectors.c.vector,
                vectors.c.segment,
                vectors.c.start_s,
                vectors.c.end_s,
            )
            .where(vectors.c.item_id == item_id)
            .order_by(vectors.c.id)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(q).all()
        return [NewVector(m, from_blobs([b], self.dim)[0], seg, s, e) for m, b, seg, s, e in rows]

    def get_item(self, id_or_uri: int | str) -> ItemInfo:
        """One item by id (int) or uri (str); ItemNotFound otherwise."""
        return _item_info(
            self._item_row(id_or_uri), self._vector_counts([self._item_row(id_or_uri)["id"]])
        )

    def list_items(
        self,
        *,
        where: Mapping[str, Any] | None = None,
        limit: int = 100,
        offset: int = 0,
        status: str | None = None,
    ) -> list[ItemInfo]:
        """Items in id order, filtered by ``where`` and ``status``."""
        if limit < 0 or offset < 0:
            raise InvalidQuery("limit and offset must be >= 0", field="limit")
        q = select(items).where(items.c.collection_id == self.id, Filter.parse(where).condition)
        if status is not None:
            q = q.where(items.c.status == status)
        with self._engine.connect() as conn:
            rows = conn.execute(q.order_by(items.c.id).limit(limit).offset(offset)).mappings().all()
        counts = self._vector_counts([r["id"] for r in rows])
        return [_item_info(r, counts) for r in rows]

    def _item_row(self, id_or_uri: int | str) -> Any:
        key = (
            items.c.uri == id_or_uri if isinstance(id_or_uri, str) else items.c.id == int(id_or_uri)
        )
        with self._engine.connect() as conn:
            row = (
                conn.execute(select(items).where(items.c.collection_id == self.id, key))
                .mappings()
                .first()
            )
        if row is None:
            raise ItemNotFound(f"No item {id_or_uri!r} in collection {self.name!r}")
        return row

    def _vector_counts(self, item_ids: Sequence[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(item_ids), CHUNK):
                q = (
                    select(vectors.c.item_id, func.count())
                    .where(vectors.c.item_id.in_(list(item_ids[start : start + CHUNK])))
                    .group_by(vectors.c.item_id)
                )
                out.update({int(i): int(n) for i, n in conn.execute(q)})
        return out

    # -- writing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[tuple[Connection, int]]:
        """The one way a write transaction on this collection begins: ``(conn, last seq)``.

        Holds the writer gate's shared side (store/gate.py: a swap by ``reindex --encoder`` in
        any process waits for it, and it waits for the swap), then BEGINs; ``begin_write``
        checks the collection is still there. Callers hold ``self.indexes.lock`` around it.
        """
        gate = self.store.gate
        with gate.shared(self.id, self.name), writer(self._engine).begin() as conn:
            yield conn, writes.begin_write(conn, self.id, self.name, gate)

    def add_items(self, new_items: Sequence[NewItem]) -> list[int]:
        """Add or replace (by uri) items with their vectors in one transaction; returns item ids."""
        if not new_items:
            return []
        x = writes.validate_items(new_items, self.dim)
        mods = writes.vector_modalities(new_items)
        bodies = keyword.prepare(new_items, self.text_fields())
        w = writes.Written()
        with self.indexes.lock:
            early = None
            try:
                with self._write() as (conn, w.prev):
                    vids = writes.allocate_ids(conn, vectors, len(x))
                    parts = writes.split_by_modality(mods, vids, x)
                    early = self.indexes.start_add(w.prev, parts)  # overlaps the inserts below
                    ids = writes.upsert_items(conn, self.id, new_items, w)
                    emb = getattr(self.indexes, "embedding_values", None)  # pgvector's column
                    writes.insert_vectors(
                        conn, self.id, new_items, ids, x, vids, emb(conn, x) if emb else None
                    )
                    keyword.write_bodies(conn, self.id, ids, bodies)
                    w.adds = parts
                    w.top = writes.top_seq(conn, self.id)
            except BaseException:
                if early is not None:
                    early.undo()
                raise
            self._after_write(w, early)
        return ids

    def record_failures(self, failures: Iterable[tuple[str, str, int, float, str | None]]) -> None:
        """Record files that could not be indexed: ``(uri, reason, size, mtime, content_hash)``.

        An item that is stored with vectors keeps them (still searchable) and its old size, mtime
        and hash, so the next run tries the file again; only the reason is noted in ``error``.
        """
        batch, reasons = [], []
        for uri, reason, size, mtime, content_hash in failures:
            batch.append(
                NewItem(
                    uri=uri, modality="unknown", content_hash=content_hash, size=size, mtime=mtime
                )
            )
            reasons.append(str(reason))
        if not batch:
            return
        w = writes.Written()
        with self.indexes.lock:
            with self._write() as (conn, w.prev):
                kept = writes.note_errors(conn, self.id, [it.uri for it in batch], reasons)
                rest = [(it, r) for it, r in zip(batch, reasons) if it.uri not in kept]
                if rest:
                    ids = writes.upsert_items(
                        conn,
                        self.id,
                        [it for it, _ in rest],
                        w,
                        status="failed",
                        errors=[r for _, r in rest],
                    )
                    keyword.write_bodies(conn, self.id, ids, [""] * len(ids))
                w.top = writes.top_seq(conn, self.id)
            self._after_write(w)

    def move_item(self, item_id: int, new_uri: str, size: int, mtime: float) -> None:
        """Point an item at a new uri (a renamed file keeps its vectors)."""
        self._item_row(item_id)
        with self.indexes.lock, self._write() as (conn, _):
            writes.move(conn, self.id, item_id, new_uri, size, mtime)

    def remove(self, ids: Iterable[int] | None = None, uris: Iterable[str] | None = None) -> int:
        """Delete items by id and/or uri; returns how many were deleted."""
        w = writes.Written()
        with self.indexes.lock:
            with self._write() as (conn, w.prev):
                targets = [int(i) for i in ids or []]
                if uris:
                    targets += list(writes.existing_ids(conn, self.id, list(uris)).values())
                n = writes.remove_items(conn, self.id, sorted(set(targets)), w)
                w.top = writes.top_seq(conn, self.id)
            self._after_write(w)
        return n

    def set_captions(self, captions: Sequence[Caption]) -> int:
        """Store captions with their text vectors and keyword bodies in one transaction.

        Each replaces the item's previous caption (and its ``text`` vector); returns how many
        were stored (items deleted meanwhile are left out).
        """
        if not captions:
            return 0
        x = writes.validate_items(
            [
                NewItem(f"item {c.item_id}", "text", vectors=[NewVector("text", c.vector)])
                for c in captions
            ],
            self.dim,
        )
        w = writes.Written()
        with self.indexes.lock:
            with self._write() as (conn, w.prev):
                emb = getattr(self.indexes, "embedding_values", None)  # pgvector's column
                n = write_captions(conn, self.id, captions, x, w, emb)
                w.top = writes.top_seq(conn, self.id)
            self._after_write(w)
        return n

    def text_fields(self) -> list[str]:
        """The user metadata fields this collection declared searchable by keyword."""
        with self._engine.connect() as conn:
            return keyword.fields_of(conn, self.id)

    def set_text_fields(self, fields: Sequence[str]) -> int:
        """Declare the metadata fields keyword search covers; rebuilds the bodies (returns how many)."""
        names = list(dict.fromkeys(str(f).strip() for f in fields if str(f).strip()))
        for name in names:
            if name in ("caption", "caption_model"):
                raise InvalidInput(
                    f"{name!r} is searchable already; declare user fields", field="fields"
                )
        with self.indexes.lock, self._write() as (conn, _):
            conn.execute(
                keyword.collection_text.delete().where(
                    keyword.collection_text.c.collection_id == self.id
                )
            )
            if names:
                conn.execute(
                    keyword.collection_text.insert().values(collection_id=self.id, fields=names)
                )
            return keyword.rebuild(conn, self.id, names)

    def _after_write(self, w: writes.Written, early: EarlyAdd | None = None) -> None:
        try:
            self.indexes.apply_written(w, early)
            self.indexes.save()
        except Exception:  # the database is committed: reload the indexes from files + log
            log.exception("updating the index of %s failed; reloading it", self.name)
            self.indexes.indexes.clear()
            self.indexes.open()

    # -- searching -----------------------------------------------------------------------------
    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        modalities: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        offset: int = 0,
    ) -> list[list[SearchResult]]:
        """Best ``k`` items per query vector (after ``offset``), restricted by ``modalities``/``where``."""
        q = self._queries(queries)
        flt, mods = self._search_args(k, offset, modalities, where)
        if isinstance(self.indexes, PgVectorIndexSet):
            return self.indexes.search(q, k, offset, mods, flt)
        return _search.search(self.indexes, self._engine, q, k, offset, mods, flt)

    def keyword_search(
        self,
        text: str,
        k: int = 10,
        *,
        modalities: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        offset: int = 0,
    ) -> list[SearchResult]:
        """Items whose caption, text or searchable fields match words of ``text`` (BM25 order).

        ``modalities`` here restricts the items' own modality (a captioned picture is ``vision``).
        """
        if k < 1 or offset < 0:
            raise InvalidQuery(
                f"k must be >= 1 and offset >= 0 (got k={k}, offset={offset})", field="k"
            )
        for m in modalities or ():
            writes.check_modality(m, "modalities")
        flt = Filter.parse(where)
        return keyword.search(self._engine, self.id, text, k, offset, flt, modalities)

    def similar_to(
        self,
        item_id: int,
        k: int = 10,
        *,
        modalities: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        offset: int = 0,
    ) -> list[SearchResult]:
        """Items most similar to an item (its vectors' normalised mean), the item itself excluded."""
        vecs = self.vectors_of(item_id)
        if not vecs:
            raise ItemNotFound(f"Item {item_id} in collection {self.name!r} has no vectors")
        mean = np.asarray(np.mean([v.vector for v in vecs], axis=0), dtype=np.float32)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        flt, mods = self._search_args(k, offset, modalities, where)
        if isinstance(self.indexes, PgVectorIndexSet):
            return self.indexes.search(mean[None], k, offset, mods, flt, exclude=item_id)[0]
        return _search.search(
            self.indexes, self._engine, mean[None], k, offset, mods, flt, exclude=item_id
        )[0]

    def search_ids(
        self, queries: np.ndarray, k: int = 10, *, modality: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Low-level: (scores, vector ids) of one modality's index, no database round trip."""
        q = self._queries(queries)
        self.indexes.refresh()
        if isinstance(self.indexes, PgVectorIndexSet):
            return self.indexes.raw_search(q, k, modality)
        return _search.raw_search(self.indexes, q, k, [modality])

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries, dtype=np.float32)
        q = q[None] if q.ndim == 1 else q
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise DimensionMismatch(
                f"query vector dimension {q.shape[-1]} differs from collection {self.name!r} ({self.dim})",
                field="vector",
            )
        if not np.isfinite(q).all():
            raise InvalidInput("query vector contains NaN or infinity", field="vector")
        return np.ascontiguousarray(q)

    def _search_args(
        self, k: int, offset: int, modalities: Sequence[str] | None, where: Mapping[str, Any] | None
    ) -> tuple[Filter, list[str]]:
        if k < 1 or offset < 0:
            raise InvalidQuery(
                f"k must be >= 1 and offset >= 0 (got k={k}, offset={offset})", field="k"
            )
        flt = Filter.parse(where)
        self.indexes.refresh()
        if not modalities:
            if isinstance(self.indexes, PgVectorIndexSet):
                return flt, []  # read from the catalog by each search: no stale list
            return flt, sorted(self.indexes.indexes)  # names the store made: already checked
        mods = list(modalities)
        for m in mods:
            writes.check_modality(m, "modalities")
        return flt, mods

    # -- maintenance ---------------------------------------------------------------------------
    def reindex(self, index_spec: str | None = None, *, min_recall: float | None = None) -> None:
        """Rebuild every modality's index (optionally with a new spec) beside the old, then swap.

        Before the swap each new index is checked: its recall@10 against exact search on a sample
        of queries (``store.verify.recall_at_k``) must reach ``min_recall`` (default
        ``verify.MIN_RECALL``), else ``InvalidInput`` gives the measured recall and the old index
        stays. The measured figures are kept in ``self.verified`` (modality -> recall).
        """
        spec = index_spec or self.index_spec
        if isinstance(self.indexes, PgVectorIndexSet):  # HNSW in the catalog: rebuilt in place
            self.indexes.reindex()
            return
        try:
            indexers.validate_spec(spec, self.dim)
        except indexers.InvalidSpec as e:
            raise InvalidInput(str(e), field="index_spec") from e
        with self._engine.connect() as conn:
            mods = [
                m
                for (m,) in conn.execute(
                    select(vectors.c.modality).where(vectors.c.collection_id == self.id).distinct()
                )
            ]
        built = {
            m: self.indexes.build(m, spec, eager=True) for m in mods
        }  # searches keep using the old ones
        self.verified = self._verify(built, spec, min_recall)
        with self.indexes.lock:
            with writer(self._engine).begin() as conn:
                conn.execute(
                    update(collections).where(collections.c.id == self.id).values(index_spec=spec)
                )
            for m, index in built.items():
                index.save(self.indexes.path(m))
            for path in self.indexes.dir.glob("*.index"):
                if path.stem not in built:
                    indexers.remove_index(path)
            self.indexes.indexes = dict(built)
            self.indexes.spec = self.index_spec = spec
            self.indexes._unsaved = {}
            self.indexes.catch_up()
            self.indexes.save(force=True)

    def _verify(
        self, built: Mapping[str, Any], spec: str, min_recall: float | None
    ) -> dict[str, float]:
        """Recall@10 of each rebuilt index against exact search; refuse one below the bar."""
        from embedstore.store import verify

        bar = verify.MIN_RECALL if min_recall is None else min_recall
        out: dict[str, float] = {}
        with self._engine.connect() as conn:
            for m, index in built.items():
                ids, x = verify.stored_vectors(conn, self.id, m, self.dim)
                recall, n = verify.recall_at_k(index, ids, x)
                log.info(
                    "reindex %s/%s %s: recall@10 %.3f (%d queries)", self.name, m, spec, recall, n
                )
                if recall < bar:
                    raise InvalidInput(
                        f"Index {spec!r} for the {m} vectors of {self.name!r}: recall@10 "
                        f"{recall:.3f} against exact search on {n} sample queries is below "
                        f"{bar:g}; kept the old index",
                        field="index_spec",
                    )
                out[m] = recall
        return out

    def flush(self) -> None:
        """Write every index file that has unsaved changes."""
        self.indexes.save(force=True)


def _item_info(row: Any, counts: Mapping[int, int]) -> ItemInfo:
    return ItemInfo(
        id=row["id"],
        uri=row["uri"],
        modality=row["modality"],
        content_hash=row["content_hash"],
        size=row["size"],
        mtime=row["mtime"],
        metadata=row["metadata"] or {},
        status=row["status"],
        error=row["error"],
        vectors=counts.get(row["id"], 0),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )

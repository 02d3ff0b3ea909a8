"""Write paths of a collection: batched upserts, failures, moves and removals (SQLAlchemy Core).

Ids are allocated up front (SQLite: after the highest id, under the IMMEDIATE write lock;
PostgreSQL: ``nextval`` of the table's sequence) so inserts are plain ``executemany`` calls.
Every vector add or delete is logged in ``changes`` within the same transaction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from embedstore.errors import CollectionReplaced, Conflict, DimensionMismatch, InvalidInput
from embedstore.store.tables import OP_ADD, OP_DEL, changes, items, utcnow, vectors
from embedstore.store.types import NewItem

if TYPE_CHECKING:
    from embedstore.store.gate import WriterGate

CHUNK = 500
MODALITY_RE = re.compile(r"^[a-z0-9_-]{1,32}$")


@dataclass
class Written:
    """What one write transaction changed, for applying it to the indexes without re-reading."""

    prev: int = 0  # the collection's last change seq before this transaction
    top: int = 0  # ... and after it
    adds: dict[str, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )  # modality -> (ids, X)
    dels: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> ids


def check_modality(modality: str, where: str) -> None:
    """Modalities name index files: lowercase letters, digits, ``_`` and ``-`` only."""
    if not isinstance(modality, str) or not MODALITY_RE.match(modality):
        raise InvalidInput(
            f"{where}: invalid modality {modality!r} (lowercase letters, digits, _ or -)",
            field="modality",
        )


def validate_items(batch: Sequence[NewItem], dim: int) -> np.ndarray:
    """Check every item; return all vectors stacked as one float32 ``(n_vectors, dim)`` array."""
    seen: set[str] = set()
    for item in batch:
        if not isinstance(item.uri, str) or not item.uri:
            raise InvalidInput(
                f"item uri must be a non-empty string, got {item.uri!r}", field="uri"
            )
        if item.uri in seen:
            raise InvalidInput(f"{item.uri}: the same uri appears twice in one batch", field="uri")
        seen.add(item.uri)
        check_modality(item.modality, item.uri)
        if not isinstance(item.metadata, dict):
            raise InvalidInput(f"{item.uri}: metadata must be a dict", field="metadata")
        for v in item.vectors:
            check_modality(v.modality, item.uri)
    flat = [v.vector for it in batch for v in it.vectors]
    if not flat:
        return np.empty((0, dim), dtype=np.float32)
    try:
        x = np.asarray(flat, dtype=np.float32)
    except ValueError:
        x = np.empty(0, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        for it in batch:
            for v in it.vectors:
                if np.size(v.vector) != dim:
                    raise DimensionMismatch(
                        f"{it.uri}: vector dimension {np.size(v.vector)} differs from the collection's {dim}",
                        field="vector",
                    )
        raise DimensionMismatch(f"vectors must be 1-d of length {dim}", field="vector")
    if not np.isfinite(x).all():
        bad = int(np.nonzero(~np.isfinite(x).all(1))[0][0])
        owner = [it.uri for it in batch for _ in it.vectors][bad]
        raise InvalidInput(f"{owner}: vector contains NaN or infinity", field="vector")
    return x


# begin_write's one query, as text: building the same select with SQLAlchemy's expression API
# costs more Python time than SQLite takes to answer it (python -m benchmarks.writer_gate)
BEGIN_WRITE_SQL = text(
    "SELECT (SELECT max(seq) FROM changes WHERE collection_id = :c), "
    "(SELECT id FROM collections WHERE id = :c AND name = :n)"
)


def begin_write(
    conn: Connection, collection_id: int, name: str, gate: WriterGate | None = None
) -> int:
    """Open a write on a collection in the transaction ``conn``; return its last change seq.

    PostgreSQL: serialises the collection's writers with an advisory lock, which is also the
    writer ``gate`` (store/gate.py): with it, the wait is bounded and a swap holding the lock
    keeps the writer out; None for the swap itself, run on the connection that holds it. Then
    checks, in the same query as the seq, that the collection still exists under ``name``: a
    write that comes after ``reindex --encoder`` replaced it (the old row is renamed, then
    dropped) raises CollectionReplaced instead of vanishing with the old row.
    """
    if gate is not None:
        gate.join(conn, collection_id, name)
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(72350, :c)"), {"c": collection_id})
    seq, found = conn.execute(BEGIN_WRITE_SQL, {"c": collection_id, "n": name}).one()
    if found is None:
        raise CollectionReplaced(
            f"Collection {name!r} was replaced (reindex --encoder) or dropped "
            "before this write could start; nothing was written: run it again"
        )
    return int(seq or 0)


def top_seq(conn: Connection, collection_id: int) -> int:
    """The highest change seq of a collection (0 when none)."""
    q = select(func.max(changes.c.seq)).where(changes.c.collection_id == collection_id)
    return int(conn.execute(q).scalar() or 0)


def allocate_ids(conn: Connection, table: Table, n: int) -> np.ndarray:
    """``n`` fresh primary keys for ``table`` (never reused)."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if conn.dialect.name == "postgresql":
        q = text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)")
        return np.fromiter(
            conn.execute(q, {"t": table.name, "n": n}).scalars(), dtype=np.int64, count=n
        )
    seq = conn.execute(
        text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table.name}
    ).scalar()
    top = conn.execute(select(func.max(table.c.id))).scalar()
    start = max(int(seq or 0), int(top or 0)) + 1
    return np.arange(start, start + n, dtype=np.int64)


def existing_ids(conn: Connection, collection_id: int, uris: Sequence[str]) -> dict[str, int]:
    """uri -> item id for the uris already in the collection."""
    found: dict[str, int] = {}
    for start in range(0, len(uris), CHUNK):
        q = select(items.c.uri, items.c.id).where(
            items.c.collection_id == collection_id, items.c.uri.in_(uris[start : start + CHUNK])
        )
        found.update({uri: iid for uri, iid in conn.execute(q)})
    return found


def drop_vectors(
    conn: Connection, collection_id: int, item_ids: Sequence[int], out: Written
) -> None:
    """Delete the vectors of ``item_ids``, logging one ``del`` change per vector."""
    dels: dict[str, list[int]] = {}
    for start in range(0, len(item_ids), CHUNK):
        chunk = list(item_ids[start : start + CHUNK])
        rows = conn.execute(
            select(vectors.c.modality, vectors.c.id).where(vectors.c.item_id.in_(chunk))
        ).all()
        if not rows:
            continue
        for modality, vid in rows:
            dels.setdefault(modality, []).append(vid)
        conn.execute(
            insert(changes),
            [
                {"collection_id": collection_id, "modality": m, "op": OP_DEL, "vector_id": v}
                for m, v in rows
            ],
        )
        conn.execute(delete(vectors).where(vectors.c.item_id.in_(chunk)))
    for modality, vids in dels.items():
        prior = out.dels.get(modality, np.empty(0, dtype=np.int64))
        out.dels[modality] = np.concatenate([prior, np.asarray(vids, dtype=np.int64)])


def upsert_items(
    conn: Connection,
    collection_id: int,
    batch: Sequence[NewItem],
    out: Written,
    status: str = "ok",
    errors: Sequence[str | None] | None = None,
) -> list[int]:
    """Insert or replace items by uri (dropping old vectors); returns their ids in input order."""
    uris = [it.uri for it in batch]
    found = existing_ids(conn, collection_id, uris)
    now = utcnow()
    errs = errors or [None] * len(batch)

    def row(it: NewItem, err: str | None) -> dict[str, Any]:
        return {
            "uri": it.uri, "modality": it.modality, "content_hash": it.content_hash,
            "size": int(it.size), "mtime": float(it.mtime), "metadata": it.metadata,
            "status": status, "error": err, "updated_at": now,
        }  # fmt: skip

    old = [(it, e) for it, e in zip(batch, errs) if it.uri in found]
    if old:
        drop_vectors(conn, collection_id, [found[it.uri] for it, _ in old], out)
        stmt = update(items).where(items.c.id == bindparam("_id"))
        conn.execute(stmt, [row(it, e) | {"_id": found[it.uri]} for it, e in old])
    new = [(it, e) for it, e in zip(batch, errs) if it.uri not in found]
    if new:
        ids = allocate_ids(conn, items, len(new)).tolist()
        stamp = bind_processor(conn, items.c.created_at)(now)
        meta = bind_processor(conn, items.c.metadata)
        rows = [
            (iid, collection_id, it.uri, it.modality, it.content_hash, int(it.size),
             float(it.mtime), meta(it.metadata), status, e, stamp, stamp)
            for (it, e), iid in zip(new, ids)
        ]  # fmt: skip
        cols = "id, collection_id, uri, modality, content_hash, size, mtime, metadata, status, "
        driver_insert(conn, "items", cols + "error, created_at, updated_at", rows)
        found.update({it.uri: iid for (it, _), iid in zip(new, ids)})
    return [found[u] for u in uris]


def note_errors(
    conn: Connection, collection_id: int, uris: Sequence[str], reasons: Sequence[str]
) -> set[str]:
    """Note ``reasons`` on the items of ``uris`` that are stored with vectors (status ``ok``).

    Their vectors, status, size, mtime and hash stay as they were: the last good version stays
    searchable and the next run retries the file. Returns the uris handled this way.
    """
    ok: dict[str, int] = {}
    for start in range(0, len(uris), CHUNK):
        chunk = list(uris[start : start + CHUNK])
        q = (
            select(items.c.uri, items.c.id)
            .where(items.c.collection_id == collection_id, items.c.uri.in_(chunk))
            .where(items.c.status == "ok")
            .where(select(vectors.c.id).where(vectors.c.item_id == items.c.id).exists())
        )
        ok.update({uri: iid for uri, iid in conn.execute(q)})
    if ok:
        now = utcnow()
        stmt = update(items).where(items.c.id == bindparam("_id"))
        conn.execute(
            stmt,
            [
                {"_id": ok[u], "error": r, "updated_at": now}
                for u, r in zip(uris, reasons)
                if u in ok
            ],
        )
    return set(ok)


def bind_processor(conn: Connection, column: Any) -> Callable[[Any], Any]:
    """The function SQLAlchemy applies to ``column``'s values for this dialect (or identity)."""
    kind = column.type.dialect_impl(conn.dialect)
    proc = kind.bind_processor(conn.dialect)
    return proc if proc is not None else _identity


def _identity(value: Any) -> Any:
    return value


def driver_insert(conn: Connection, table: str, cols: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """A driver-level ``executemany`` INSERT of ready tuples (no per-row SQLAlchemy processing).

    The hot write path: SQLAlchemy's per-row parameter handling costs more than SQLite's insert.
    """
    if not rows:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    marks = ", ".join([mark] * len(rows[0]))
    conn.exec_driver_sql(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(rows))


def vector_modalities(batch: Sequence[NewItem]) -> np.ndarray:
    """The modality of every vector of ``batch``, in order (rows of ``validate_items``' array)."""
    return np.asarray([v.modality for it in batch for v in it.vectors], dtype=object)


def split_by_modality(
    mods: np.ndarray, vids: np.ndarray, x: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """modality -> (vector ids, vectors) for one batch."""
    if len(mods) and (mods == mods[0]).all():
        return {str(mods[0]): (vids, x)}
    return {str(m): (vids[mods == m], x[mods == m]) for m in dict.fromkeys(mods.tolist())}


def insert_vectors(
    conn: Connection,
    collection_id: int,
    batch: Sequence[NewItem],
    item_ids: Sequence[int],
    x: np.ndarray,
    vids: np.ndarray,
    embeddings: Sequence[Any] | None = None,
) -> None:
    """Insert every item's vectors (rows of ``x`` in order) and log their ``add`` changes.

    ``vids`` come from ``allocate_ids`` earlier in the same transaction; ``embeddings`` (one
    value per row, the pgvector backend's ``embedding`` column) go into the same rows.
    """
    if not len(x):
        return
    flat = memoryview(np.ascontiguousarray(x, dtype="<f4").reshape(-1).view(np.uint8).data)
    width = x.shape[1] * 4
    id_list = vids.tolist()
    rows: list[tuple[Any, ...]] = []
    j = 0
    for it, iid in zip(batch, item_ids):
        for v in it.vectors:
            start, end = _opt_float(v.start), _opt_float(v.end)
            rows.append(
                (
                    id_list[j],
                    collection_id,
                    iid,
                    v.modality,
                    int(v.segment),
                    start,
                    end,
                    flat[j * width : (j + 1) * width],
                )
            )
            j += 1
    cols = "id, collection_id, item_id, modality, segment, start_s, end_s, vector"
    if embeddings is not None:
        rows = [(*row, e) for row, e in zip(rows, embeddings)]
        cols += ", embedding"
    driver_insert(conn, "vectors", cols, rows)
    sel = select(literal(collection_id), vectors.c.modality, literal(OP_ADD), vectors.c.id).where(
        vectors.c.collection_id == collection_id,
        vectors.c.id.between(int(vids.min()), int(vids.max())),
    )
    conn.execute(insert(changes).from_select(["collection_id", "modality", "op", "vector_id"], sel))


def _opt_float(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def move(
    conn: Connection, collection_id: int, item_id: int, new_uri: str, size: int, mtime: float
) -> None:
    """Point an item at a new uri (a renamed or touched file, as stored); Conflict when taken."""
    taken = existing_ids(conn, collection_id, [new_uri])
    if taken and taken[new_uri] != item_id:
        raise Conflict(
            f"cannot move item {item_id} to {new_uri}: another item has that uri", field="uri"
        )
    conn.execute(
        update(items)
        .where(items.c.id == item_id, items.c.collection_id == collection_id)
        .values(uri=new_uri, size=int(size), mtime=float(mtime), error=None, updated_at=utcnow())
    )


def remove_items(
    conn: Connection, collection_id: int, item_ids: Sequence[int], out: Written
) -> int:
    """Delete items and their vectors (logging the deletes); returns how many existed."""
    n = 0
    drop_vectors(conn, collection_id, item_ids, out)
    for start in range(0, len(item_ids), CHUNK):
        chunk = list(item_ids[start : start + CHUNK])
        res = conn.execute(
            delete(items).where(items.c.collection_id == collection_id, items.c.id.in_(chunk))
        )
        n += res.rowcount or 0
    return n

"""Write paths of a collection: batched upserts, failures, moves and removals (SQLAlchemy Core)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, delete, insert, literal, select, update

from embedstore.errors import Conflict, DimensionMismatch, InvalidInput
from embedstore.store.tables import OP_ADD, OP_DEL, changes, items, to_blob, utcnow, vectors
from embedstore.store.types import NewItem

CHUNK = 500
MODALITY_RE = re.compile(r"^[a-z0-9_-]{1,32}$")


def check_modality(modality: str, where: str) -> None:
    """Modalities name index files: lowercase letters, digits, ``_`` and ``-`` only."""
    if not isinstance(modality, str) or not MODALITY_RE.match(modality):
        raise InvalidInput(
            f"{where}: invalid modality {modality!r} (lowercase letters, digits, _ or -)",
            field="modality",
        )


def validate_items(batch: Sequence[NewItem], dim: int) -> list[np.ndarray]:
    """Check every item and return one ``(n_vectors, dim)`` float32 array per item."""
    out, seen = [], set()
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
        if not item.vectors:
            out.append(np.empty((0, dim), dtype=np.float32))
            continue
        try:
            x = np.stack([np.asarray(v.vector, dtype=np.float32).reshape(-1) for v in item.vectors])
        except ValueError as e:
            raise DimensionMismatch(
                f"{item.uri}: vectors of different lengths ({e})", field="vector"
            ) from e
        if x.shape[1] != dim:
            raise DimensionMismatch(
                f"{item.uri}: vector dimension {x.shape[1]} differs from the collection's {dim}",
                field="vector",
            )
        if not np.isfinite(x).all():
            raise InvalidInput(f"{item.uri}: vector contains NaN or infinity", field="vector")
        out.append(x)
    return out


def existing_ids(conn: Connection, collection_id: int, uris: Sequence[str]) -> dict[str, int]:
    """uri -> item id for the uris already in the collection."""
    found: dict[str, int] = {}
    for start in range(0, len(uris), CHUNK):
        q = select(items.c.uri, items.c.id).where(
            items.c.collection_id == collection_id, items.c.uri.in_(uris[start : start + CHUNK])
        )
        found.update({uri: iid for uri, iid in conn.execute(q)})
    return found


def drop_vectors(conn: Connection, collection_id: int, item_ids: Sequence[int]) -> None:
    """Delete the vectors of ``item_ids``, logging one ``del`` change per vector."""
    for start in range(0, len(item_ids), CHUNK):
        chunk = list(item_ids[start : start + CHUNK])
        sel = select(
            literal(collection_id), vectors.c.modality, literal(OP_DEL), vectors.c.id
        ).where(vectors.c.item_id.in_(chunk))
        conn.execute(
            insert(changes).from_select(["collection_id", "modality", "op", "vector_id"], sel)
        )
        conn.execute(delete(vectors).where(vectors.c.item_id.in_(chunk)))


def upsert_items(
    conn: Connection,
    collection_id: int,
    batch: Sequence[NewItem],
    status: str = "ok",
    errors: Sequence[str | None] | None = None,
) -> list[int]:
    """Insert or replace items by uri; returns their ids in input order (vectors not touched)."""
    uris = [it.uri for it in batch]
    found = existing_ids(conn, collection_id, uris)
    now = utcnow()
    errs = errors or [None] * len(batch)

    def row(it: NewItem, err: str | None) -> dict[str, Any]:
        return {
            "uri": it.uri,
            "modality": it.modality,
            "content_hash": it.content_hash,
            "size": int(it.size),
            "mtime": float(it.mtime),
            "metadata": it.metadata,
            "status": status,
            "error": err,
            "updated_at": now,
        }

    old = [(it, e) for it, e in zip(batch, errs) if it.uri in found]
    if old:
        drop_vectors(conn, collection_id, [found[it.uri] for it, _ in old])
        stmt = update(items).where(items.c.id == bindparam("_id"))
        conn.execute(stmt, [row(it, e) | {"_id": found[it.uri]} for it, e in old])
    new = [(it, e) for it, e in zip(batch, errs) if it.uri not in found]
    if new:
        rows = [row(it, e) | {"collection_id": collection_id, "created_at": now} for it, e in new]
        ins = insert(items).returning(items.c.id, sort_by_parameter_order=True)
        ids = conn.execute(ins, rows).scalars().all()
        found.update({it.uri: iid for (it, _), iid in zip(new, ids)})
    return [found[u] for u in uris]


def insert_vectors(
    conn: Connection,
    collection_id: int,
    batch: Sequence[NewItem],
    item_ids: Sequence[int],
    arrays: Sequence[np.ndarray],
) -> dict[int, np.ndarray]:
    """Insert every item's vectors and their ``add`` changes; returns vector id -> vector."""
    rows, xs = [], []
    for it, iid, x in zip(batch, item_ids, arrays):
        for v, vec in zip(it.vectors, x):
            rows.append(
                {
                    "collection_id": collection_id,
                    "item_id": iid,
                    "modality": v.modality,
                    "segment": int(v.segment),
                    "start_s": _opt_float(v.start),
                    "end_s": _opt_float(v.end),
                    "vector": to_blob(vec),
                }
            )
            xs.append(vec)
    if not rows:
        return {}
    stmt = insert(vectors).returning(vectors.c.id, sort_by_parameter_order=True)
    vids = conn.execute(stmt, rows).scalars().all()
    conn.execute(
        insert(changes),
        [
            {
                "collection_id": collection_id,
                "modality": r["modality"],
                "op": OP_ADD,
                "vector_id": vid,
            }
            for r, vid in zip(rows, vids)
        ],
    )
    return dict(zip(vids, xs))


def _opt_float(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def move(
    conn: Connection, collection_id: int, item_id: int, new_uri: str, size: int, mtime: float
) -> None:
    """Point an item at a new uri (a renamed file); Conflict when the uri is taken."""
    taken = existing_ids(conn, collection_id, [new_uri])
    if taken and taken[new_uri] != item_id:
        raise Conflict(
            f"cannot move item {item_id} to {new_uri}: another item has that uri", field="uri"
        )
    conn.execute(
        update(items)
        .where(items.c.id == item_id, items.c.collection_id == collection_id)
        .values(uri=new_uri, size=int(size), mtime=float(mtime), updated_at=utcnow())
    )


def remove_items(conn: Connection, collection_id: int, item_ids: Sequence[int]) -> int:
    """Delete items and their vectors (logging the deletes); returns how many existed."""
    n = 0
    drop_vectors(conn, collection_id, item_ids)
    for start in range(0, len(item_ids), CHUNK):
        chunk = list(item_ids[start : start + CHUNK])
        res = conn.execute(
            delete(items).where(items.c.collection_id == collection_id, items.c.id.in_(chunk))
        )
        n += res.rowcount or 0
    return n

"""Writing captions: metadata, the caption's text vector and the keyword body, in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from embedstore.store import keyword, writes
from embedstore.store.tables import OP_DEL, changes, items, utcnow, vectors
from embedstore.store.types import NewItem, NewVector

CAPTION_MODALITY = "text"


@dataclass(slots=True)
class Caption:
    """A caption for one stored item, written by ``model``, and its text embedding."""

    item_id: int
    text: str
    model: str
    vector: np.ndarray


def drop_text_vectors(
    conn: Connection, collection_id: int, item_ids: Sequence[int], out: writes.Written
) -> None:
    """Delete the caption vectors (modality ``text``) of ``item_ids``, logging the deletes."""
    ids = [int(i) for i in item_ids]
    found: list[int] = []
    for start in range(0, len(ids), writes.CHUNK):
        chunk = ids[start : start + writes.CHUNK]
        cond = (vectors.c.item_id.in_(chunk), vectors.c.modality == CAPTION_MODALITY)
        found += [int(v) for v in conn.execute(select(vectors.c.id).where(*cond)).scalars()]
        conn.execute(delete(vectors).where(*cond))
    if not found:
        return
    conn.execute(
        insert(changes),
        [
            {
                "collection_id": collection_id,
                "modality": CAPTION_MODALITY,
                "op": OP_DEL,
                "vector_id": v,
            }
            for v in found
        ],
    )
    prior = out.dels.get(CAPTION_MODALITY, np.empty(0, dtype=np.int64))
    out.dels[CAPTION_MODALITY] = np.concatenate([prior, np.asarray(found, dtype=np.int64)])


def write_captions(
    conn: Connection,
    collection_id: int,
    captions: Sequence[Caption],
    x: np.ndarray,
    out: writes.Written,
    embed: Callable[[Connection, np.ndarray], Any] | None = None,
) -> int:
    """Store every caption: item metadata, one ``text`` vector per item, the keyword body.

    ``x`` holds the captions' vectors as validated float32 rows, in order; ``embed`` gives an
    index backend's own column values for them. Items deleted since
    they were captioned are left out; returns how many captions were stored.
    """
    wanted = [c.item_id for c in captions]
    rows = {
        int(r[0]): r
        for r in conn.execute(
            select(items.c.id, items.c.uri, items.c.modality, items.c.metadata).where(
                items.c.collection_id == collection_id,
                items.c.id.in_(wanted),
                items.c.status == "ok",
            )
        )
    }
    keep = [j for j, c in enumerate(captions) if c.item_id in rows]
    if not keep:
        return 0
    captions = [captions[j] for j in keep]
    x = np.ascontiguousarray(x[keep])
    ids = [c.item_id for c in captions]
    drop_text_vectors(conn, collection_id, ids, out)
    now = utcnow()
    metas = {
        c.item_id: {**(rows[c.item_id][3] or {}), "caption": c.text, "caption_model": c.model}
        for c in captions
    }
    stmt = update(items).where(items.c.id == bindparam("_id"))
    conn.execute(stmt, [{"_id": i, "metadata": m, "updated_at": now} for i, m in metas.items()])
    vids = writes.allocate_ids(conn, vectors, len(captions))
    shells = [
        NewItem(rows[c.item_id][1], rows[c.item_id][2], vectors=[NewVector(CAPTION_MODALITY, v)])
        for c, v in zip(captions, x)
    ]
    if embed is None:
        writes.insert_vectors(conn, collection_id, shells, ids, x, vids)
    else:  # an index backend that keeps its own column of the vectors (pgvector)
        writes.insert_vectors(conn, collection_id, shells, ids, x, vids, embed(conn, x))
    out.adds = {CAPTION_MODALITY: (vids, x)}
    fields = keyword.fields_of(conn, collection_id)
    bodies = [
        keyword.body_of(rows[i][2], rows[i][1], metas[i], fields) for i in ids
    ]  # text items are not captioned: no file is read here
    keyword.write_bodies(conn, collection_id, ids, bodies)
    return len(captions)

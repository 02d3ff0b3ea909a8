"""Keyword search: one text body per item (caption, a text item's words, declared metadata fields).

``item_text`` holds the body. SQLite indexes it with FTS5 (an external-content table kept in step
by triggers, ranked by BM25); PostgreSQL with a generated ``tsvector`` column and a GIN index
(ranked by ``ts_rank_cd``). Bodies are written by the same transaction that writes their item, so
a committed item is findable by its words at once and a deleted one never is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnClause,
    ColumnElement,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Table,
    Text,
    column,
    delete,
    func,
    insert,
    literal_column,
    select,
    table,
)

from embedstore.errors import InvalidQuery
from embedstore.store.filters import Filter
from embedstore.store.tables import Id, items, metadata
from embedstore.store.types import NewItem
from embedstore.types import SearchResult

CHUNK = 500
MAX_TEXT_BYTES = 64 * 1024  # of a text item's file that goes into its body
MAX_TERMS = 32
PG_CONFIG = "english"  # stemming + stop words, like FTS5's porter tokenizer
PG_NORMALIZE = 1  # ts_rank_cd divided by 1 + log(length): shorter bodies first, as with BM25
_TERM = re.compile(r"\w+", re.UNICODE)

item_text = Table(
    "item_text",
    metadata,
    Column("item_id", Id, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_item_text_collection", "collection_id"),
)

collection_text = Table(
    "collection_text",
    metadata,
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
    Column("fields", JSON, nullable=False),  # user metadata keys whose values are searchable
)

_fts = table("item_fts", column("rowid"))


# -- bodies ----------------------------------------------------------------------------------------
def text_of_file(uri: str) -> str:
    """The first :data:`MAX_TEXT_BYTES` of a text item's file ('' when it is not a readable file)."""
    path = Path(uri)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TEXT_BYTES)
    except OSError:
        return ""
    return raw.decode("utf-8-sig", errors="replace")


def body_of(
    modality: str, uri: str, meta: Mapping[str, Any], fields: Sequence[str], text: str | None = None
) -> str:
    """An item's searchable text: its caption, its own words (text items), declared fields."""
    parts: list[str] = []
    caption = meta.get("caption")
    if isinstance(caption, str) and caption:
        parts.append(caption)
    if modality == "text":
        parts.append(text if text is not None else text_of_file(uri))
    for name in fields:
        value = meta.get(name)
        if isinstance(value, list | tuple):
            parts.extend(str(v) for v in value if v is not None)
        elif value is not None and not isinstance(value, dict):
            parts.append(str(value))
    return "\n".join(p for p in parts if p.strip())


def fields_of(conn: Connection, collection_id: int) -> list[str]:
    """The metadata fields a collection declared searchable."""
    q = select(collection_text.c.fields).where(collection_text.c.collection_id == collection_id)
    value = conn.execute(q).scalar()
    return [str(f) for f in value] if isinstance(value, list) else []


def prepare(batch: Sequence[NewItem], fields: Sequence[str]) -> list[str]:
    """Bodies for a batch about to be written (reads text items' files: call before the write)."""
    return [body_of(it.modality, it.uri, it.metadata, fields) for it in batch]


def write_bodies(
    conn: Connection, collection_id: int, item_ids: Sequence[int], bodies: Sequence[str]
) -> None:
    """Replace the bodies of ``item_ids`` (an empty body removes the item from keyword search)."""
    ids = [int(i) for i in item_ids]
    for start in range(0, len(ids), CHUNK):
        conn.execute(delete(item_text).where(item_text.c.item_id.in_(ids[start : start + CHUNK])))
    rows = [
        {"item_id": i, "collection_id": collection_id, "body": b} for i, b in zip(ids, bodies) if b
    ]
    if rows:
        conn.execute(insert(item_text), rows)


def rebuild(conn: Connection, collection_id: int, fields: Sequence[str]) -> int:
    """Recompute every body of a collection (after its searchable fields change)."""
    q = select(items.c.id, items.c.uri, items.c.modality, items.c.metadata).where(
        items.c.collection_id == collection_id, items.c.status == "ok"
    )
    rows = conn.execute(q).all()
    bodies = [body_of(m, u, meta or {}, fields) for _, u, m, meta in rows]
    conn.execute(delete(item_text).where(item_text.c.collection_id == collection_id))
    write_bodies(conn, collection_id, [r[0] for r in rows], bodies)
    return sum(1 for b in bodies if b)


# -- queries ---------------------------------------------------------------------------------------
def terms(text: str) -> list[str]:
    """The words of a query, lower case, each once, at most :data:`MAX_TERMS`."""
    if not isinstance(text, str):
        raise InvalidQuery("keyword search needs a text query", field="text")
    words = list(dict.fromkeys(w.lower() for w in _TERM.findall(text)))
    return words[:MAX_TERMS]


def search(
    engine: Engine,
    collection_id: int,
    text: str,
    k: int,
    offset: int = 0,
    flt: Filter | None = None,
    modalities: Sequence[str] | None = None,
) -> list[SearchResult]:
    """Items whose body matches any word of ``text``, best first (BM25 / ``ts_rank_cd``).

    ``modalities`` restricts the items' own modality; ``score`` is higher for better matches.
    """
    words = terms(text)
    if not words:
        return []
    score: ColumnElement[Any]
    if engine.dialect.name == "postgresql":
        query = func.to_tsquery(PG_CONFIG, " | ".join(words))
        tsv: ColumnClause[Any] = literal_column("item_text.tsv")
        score = func.ts_rank_cd(tsv, query, PG_NORMALIZE)
        q = (
            select(items.c.id, items.c.uri, items.c.modality, items.c.metadata, score)
            .select_from(item_text.join(items, items.c.id == item_text.c.item_id))
            .where(item_text.c.collection_id == collection_id, tsv.op("@@")(query))
        )
    else:
        match = " OR ".join(f'"{w}"' for w in words)
        score = -func.bm25(literal_column("item_fts"))
        q = (
            select(items.c.id, items.c.uri, items.c.modality, items.c.metadata, score)
            .select_from(_fts.join(items, items.c.id == _fts.c.rowid))
            .where(literal_column("item_fts").op("MATCH")(match))
            .where(items.c.collection_id == collection_id)
        )
    q = q.where(items.c.status == "ok")
    if flt is not None and not flt.empty:
        q = q.where(flt.condition)
    if modalities:
        q = q.where(items.c.modality.in_(list(modalities)))
    q = q.order_by(score.desc(), items.c.id).limit(k).offset(offset)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [
        SearchResult(int(i), uri, mod, float(s), dict(meta) if meta else {})
        for i, uri, mod, meta, s in rows
    ]

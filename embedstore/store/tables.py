"""The catalog schema as SQLAlchemy Core tables (the migrations create exactly these)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite needs INTEGER for rowid primary keys
Json = JSON().with_variant(JSONB(), "postgresql")
OP_ADD, OP_DEL = 1, -1


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(UTC)


collections = Table(
    "collections",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("encoder", String(255), nullable=False),
    Column("encoder_version", String(64), nullable=False, default=""),
    Column("dim", Integer, nullable=False),
    Column("index_spec", String(255), nullable=False, default="auto"),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    # "faiss" (index files per process) or "pgvector" (HNSW in the catalog; store/pgvector.py)
    Column("index_backend", String(16), nullable=False, default="faiss", server_default="faiss"),
    Column("index_params", Json),  # backend state, e.g. pgvector's tuned ef_search per modality
    sqlite_autoincrement=True,
)

items = Table(
    "items",
    metadata,
    Column("id", Id, primary_key=True),
    Column(
        "collection_id",
        ForeignKey("collections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("uri", Text, nullable=False),
    Column("modality", String(32), nullable=False),
    Column("content_hash", String(128)),
    Column("size", BigInteger, nullable=False, default=0),
    Column("mtime", Float, nullable=False, default=0.0),
    Column("metadata", Json, nullable=False, default=dict),
    Column("status", String(16), nullable=False, default="ok"),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("updated_at", DateTime(timezone=True), nullable=False, default=utcnow),
    UniqueConstraint("collection_id", "uri", name="uq_items_collection_uri"),
    Index("ix_items_collection_hash", "collection_id", "content_hash"),
    sqlite_autoincrement=True,
)

vectors = Table(
    "vectors",
    metadata,
    Column("id", Id, primary_key=True),  # = the FAISS id
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), nullable=False),
    Column("item_id", ForeignKey("items.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("modality", String(32), nullable=False),
    Column("segment", Integer, nullable=False, default=0),
    Column("start_s", Float),
    Column("end_s", Float),
    Column("vector", LargeBinary, nullable=False),  # float32 little-endian
    Index("ix_vectors_collection_modality", "collection_id", "modality", "id"),
    sqlite_autoincrement=True,  # ids are never reused: tombstones and watermarks rely on it
)

changes = Table(
    "changes",
    metadata,
    Column("seq", Id, primary_key=True),
    Column("collection_id", ForeignKey("collections.id", ondelete="CASCADE"), nullable=False),
    Column("modality", String(32), nullable=False),
    Column("op", Integer, nullable=False),  # OP_ADD / OP_DEL
    Column("vector_id", BigInteger, nullable=False),
    Index("ix_changes_collection_seq", "collection_id", "seq"),
    sqlite_autoincrement=True,
)


def to_blob(vector: np.ndarray) -> bytes:
    """float32 little-endian bytes of one vector."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blobs(blobs: list[bytes], dim: int) -> np.ndarray:
    """Stack float32 blobs into an ``(n, dim)`` array."""
    if not blobs:
        return np.empty((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float32)

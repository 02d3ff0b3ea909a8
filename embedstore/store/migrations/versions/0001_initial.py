"""Initial schema: collections, items, vectors, changes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("encoder", sa.String(255), nullable=False),
        sa.Column("encoder_version", sa.String(64), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("index_spec", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    fk_coll = sa.ForeignKey("collections.id", ondelete="CASCADE")
    op.create_table(
        "items",
        sa.Column("id", Id, primary_key=True),
        sa.Column("collection_id", sa.Integer, fk_coll, nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("modality", sa.String(32), nullable=False),
        sa.Column("content_hash", sa.String(128)),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime", sa.Float, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("collection_id", "uri", name="uq_items_collection_uri"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_items_collection_hash", "items", ["collection_id", "content_hash"])
    op.create_table(
        "vectors",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("item_id", Id, sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("modality", sa.String(32), nullable=False),
        sa.Column("segment", sa.Integer, nullable=False),
        sa.Column("start_s", sa.Float),
        sa.Column("end_s", sa.Float),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_vectors_item_id", "vectors", ["item_id"])
    op.create_index(
        "ix_vectors_collection_modality", "vectors", ["collection_id", "modality", "id"]
    )
    op.create_table(
        "changes",
        sa.Column("seq", Id, primary_key=True),
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("modality", sa.String(32), nullable=False),
        sa.Column("op", sa.Integer, nullable=False),
        sa.Column("vector_id", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_changes_collection_seq", "changes", ["collection_id", "seq"])


def downgrade() -> None:
    for table in ("changes", "vectors", "items", "collections"):
        op.drop_table(table)

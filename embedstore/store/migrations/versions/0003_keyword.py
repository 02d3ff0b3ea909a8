"""Keyword search: ``item_text`` bodies with SQLite FTS5 or a PostgreSQL ``tsvector`` + GIN index,
and ``collection_text`` (the metadata fields a collection declares searchable).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")

SQLITE_FTS = (
    "CREATE VIRTUAL TABLE item_fts USING fts5("
    "body, content='item_text', content_rowid='item_id', tokenize='porter unicode61')",
    "CREATE TRIGGER item_text_ai AFTER INSERT ON item_text BEGIN "
    "INSERT INTO item_fts(rowid, body) VALUES (new.item_id, new.body); END",
    "CREATE TRIGGER item_text_ad AFTER DELETE ON item_text BEGIN "
    "INSERT INTO item_fts(item_fts, rowid, body) VALUES ('delete', old.item_id, old.body); END",
    "CREATE TRIGGER item_text_au AFTER UPDATE ON item_text BEGIN "
    "INSERT INTO item_fts(item_fts, rowid, body) VALUES ('delete', old.item_id, old.body); "
    "INSERT INTO item_fts(rowid, body) VALUES (new.item_id, new.body); END",
)
POSTGRES_TSV = (
    "ALTER TABLE item_text ADD COLUMN tsv tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english', body)) STORED",
    "CREATE INDEX ix_item_text_tsv ON item_text USING GIN (tsv)",
)


def upgrade() -> None:
    op.create_table(
        "item_text",
        sa.Column(
            "item_id",
            Id,
            sa.ForeignKey("items.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_item_text_collection", "item_text", ["collection_id"])
    op.create_table(
        "collection_text",
        sa.Column(
            "collection_id",
            sa.Integer,
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("fields", sa.JSON, nullable=False),
    )
    statements = POSTGRES_TSV if op.get_context().dialect.name == "postgresql" else SQLITE_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        for trigger in ("item_text_ai", "item_text_ad", "item_text_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS item_fts")
    op.drop_table("collection_text")
    op.drop_table("item_text")

"""Index backends: ``collections.index_backend``/``index_params``; pgvector's column when available.

On PostgreSQL with the ``vector`` extension available, the extension is created and
``vectors.embedding`` (``halfvec``, dimension-free: each collection's partial HNSW index casts
it to its own dimension) is added. Without it (SQLite, or a server without pgvector) only the
collection columns are added; a ``pgvector`` collection then fails with a clear error, and
creating one later runs the same statements (``embedstore.store.pgvector.ensure_schema``).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.add_column(
            sa.Column("index_backend", sa.String(16), nullable=False, server_default="faiss")
        )
        batch.add_column(sa.Column("index_params", Json))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from embedstore.store.pgvector import try_ensure_schema

        try_ensure_schema(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE vectors DROP COLUMN IF EXISTS embedding")
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("index_params")
        batch.drop_column("index_backend")

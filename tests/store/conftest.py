"""A Store on a real SQLite file and on real PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from embedstore.store import Store


@pytest.fixture(autouse=True)
def _one_faiss_thread(one_faiss_thread: None) -> None:
    """Every index test runs FAISS on one thread (see ``one_faiss_thread``)."""


@pytest.fixture
def pg_schema_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema created for this test and dropped after."""
    base = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of one backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Store]:
    """An open store; closed after the test."""
    s = Store(db_url, tmp_path / "indexes")
    yield s
    s.close()

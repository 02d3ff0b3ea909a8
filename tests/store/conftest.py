"""A Store on a real SQLite file and on real PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest
import sqlalchemy as sa

from embedstore.store import NewItem, NewVector, Store


@pytest.fixture(autouse=True)
def _one_faiss_thread() -> Iterator[None]:
    """FAISS's OpenMP threads only slow small indexes down on a shared CPU."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


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


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_items(
    n: int, dim: int = 16, *, seed: int = 0, prefix: str = "/data/", modality: str = "vision"
) -> list[NewItem]:
    """``n`` items with one random unit vector each and metadata ``{"n": i, "even": bool}``."""
    x = unit(np.random.default_rng(seed).standard_normal((n, dim)))
    return [
        NewItem(
            uri=f"{prefix}{i:05d}.jpg",
            modality=modality,
            content_hash=f"h{seed}-{i}",
            size=100 + i,
            mtime=float(i),
            metadata={"n": i, "even": i % 2 == 0, "tag": "ab"[i % 2]},
            vectors=[NewVector(modality, x[i])],
        )
        for i in range(n)
    ]

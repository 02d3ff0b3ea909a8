"""PostgreSQL with pgvector (``.ci/start-pgvector.sh``, env ``EMBEDSTORE_TEST_PGVECTOR_URL``)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testdata import require_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))  # ingest_media


@pytest.fixture(scope="session")
def pgvector_url() -> str:
    """URL of a real PostgreSQL database with pgvector 0.8 (set by .ci/run)."""
    url = os.environ.get("EMBEDSTORE_TEST_PGVECTOR_URL", "")
    require_data(
        bool(url),
        "EMBEDSTORE_TEST_PGVECTOR_URL is not set (.ci/run starts PostgreSQL + pgvector with "
        ".ci/start-pgvector.sh and sets it)",
    )
    return url


@pytest.fixture
def coll_name() -> Iterator[str]:
    """A collection name no other test (or earlier run on the same database) uses."""
    yield f"t{uuid.uuid4().hex[:12]}"

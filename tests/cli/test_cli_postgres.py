"""The same commands against a real PostgreSQL catalog (``EMBEDSTORE_DATABASE_URL``)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from ingest_media import index_json

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh schema on the test server, set as the database of every command."""
    schema = f"cli_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    monkeypatch.setenv("EMBEDSTORE_DATABASE_URL", url)
    yield url
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def test_index_rename_search_on_postgres(invoke, library: Path, pg_url: str) -> None:
    assert index_json(invoke, library, "-c", "media")["added"] == 9
    os.rename(library / "images" / "dog.png", library / "images" / "puppy.png")
    report = index_json(invoke, library, "-c", "media", "--prune")
    assert (report["moved"], report["unchanged"], report["removed"]) == (1, 8, 0)
    hits = json.loads(
        invoke("search", "--file", library / "images" / "puppy.png", "-c", "media", "--json").stdout
    )
    assert hits[0]["uri"] == str(library / "images" / "puppy.png")
    assert not (Path(os.environ["EMBEDSTORE_DATA_DIR"]) / "embedstore.db").exists()


def test_reindex_encoder_keeps_ids_on_postgres(invoke, library: Path, pg_url: str) -> None:
    index_json(invoke, library / "images", "-c", "media")
    before = {h["uri"]: h["id"] for h in json.loads(invoke("ls", "-c", "media", "--json").stdout)}
    (library / "images" / "bird.png").unlink()
    out = invoke("reindex", "-c", "media", "--encoder", "openclip_test", "--json").stdout
    info = json.loads(out)
    assert info["encoder"] == "openclip_test" and info["reembed"]["reembedded"] == 2
    assert info["reembed"]["missing"] == [str(library / "images" / "bird.png")]
    after = {h["uri"]: h["id"] for h in json.loads(invoke("ls", "-c", "media", "--json").stdout)}
    assert after == before
    hits = json.loads(invoke("search", "a dog", "-c", "media", "-k", "2", "--json").stdout)
    assert len(hits) == 2

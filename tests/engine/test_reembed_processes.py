"""Re-embedding while a writer in another process keeps adding: nothing lost, no error, bounded.

The writer (``reembed_writer.py``) is a real process on the same catalog (a SQLite file, or a
schema of the real PostgreSQL): it indexes a new picture at a time with ``Engine.index``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from tolerances import SAME_CPU

from embedstore.config import Settings
from embedstore.engine import Engine
from embedstore.ingest import reembed_collection
from embedstore.ingest.reembed import FREE_ROUNDS

WRITER = Path(__file__).with_name("reembed_writer.py")
WAIT_S = 180.0  # for the writer's first acks (a cold torch import on a loaded 2-core machine)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """None for the data folder's SQLite file, else a fresh schema on the test PostgreSQL;
    set in the environment, so the writer process opens the same catalog."""
    if request.param == "sqlite":
        yield ""
        return
    base = str(request.getfixturevalue("postgres_url"))
    schema = f"rw_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    monkeypatch.setenv("EMBEDSTORE_DATABASE_URL", url)
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _acked(out: Path) -> list[str]:
    return [line for line in out.read_text().splitlines() if line.strip()]


def _wait_for(out: Path, n: int, proc: subprocess.Popen[bytes], err: Path) -> list[str]:
    deadline = time.monotonic() + WAIT_S
    while len(got := _acked(out)) < n:
        assert proc.poll() is None, f"the writer died: {err.read_text()}"
        assert time.monotonic() < deadline, f"the writer acked {len(got)} < {n} adds"
        time.sleep(0.05)
    return got


@pytest.mark.slow
def test_a_writer_in_another_process_waits_and_loses_nothing(
    database_url: str, settings: Settings, library: Path, tmp_path: Path
) -> None:
    s = settings.model_copy(update={"batch_size": 4, "database_url": database_url or None})
    engine = Engine(s)
    try:
        engine.index([library / "images"], "c")
        incoming = tmp_path / "incoming"
        incoming.mkdir()
        stop, out, err = tmp_path / "stop", tmp_path / "acked.txt", tmp_path / "writer.err"
        source = library / "images" / "dog.png"
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(
                [sys.executable, str(WRITER), "c", str(incoming), str(source), str(stop)],
                stdout=o,
                stderr=e,
                env=os.environ.copy(),
            )
        try:
            _wait_for(out, 2, proc, err)  # the writer is adding: the rebuild starts meanwhile
            report = reembed_collection(engine, "c", "openclip_test")
            at_swap = len(_acked(out))
            _wait_for(out, at_swap + 2, proc, err)  # and it goes on, into the new collection
        finally:
            stop.touch()
            rc = proc.wait(WAIT_S)
        assert rc == 0, f"the writer saw an error: {err.read_text()}"
        acked = _acked(out)

        # bounded: after FREE_ROUNDS the writer waits, one more round catches up, then the swap
        assert report.rounds <= FREE_ROUNDS + 2, report
        new = engine.collection("c")
        assert new.encoder == "openclip_test"
        items = {i.uri: i for i in new.list_items(limit=10_000)}
        assert len(items) == 3 + len(acked)  # the library's 3 pictures and every acked add
        for uri in acked:
            item = items[uri]
            assert item.status == "ok" and item.vectors == 1, item
            (stored,) = new.vectors_of(item.id)
            # embedded by the new encoder: equal to embedding the file with it here, up to the
            # order of float32 sums (a batch in the catch-up or the writer vs one query)
            want = engine.embed_query(new, "vision", Path(uri))[0]
            np.testing.assert_allclose(stored.vector, want, **SAME_CPU)
    finally:
        engine.close()

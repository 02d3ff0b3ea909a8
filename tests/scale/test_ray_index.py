"""``embedstore index --engine ray`` into PostgreSQL + pgvector, in real processes.

A local Ray cluster (started by the CLI) decodes real photos (crops of the reference assets in
../shared) in tasks and embeds them in an encoder actor (121 changed files are one hash batch:
the driver hashes them); the job is killed mid-way with SIGKILL, and the same command resumes it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ingest_media import many_images
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "cli", "--device", "cpu", *map(str, args)]


def _counts(engine, name: str) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """(ok items, distinct uris, vectors) of collection ``name``."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE i.status = 'ok'), count(DISTINCT i.uri), "
                "(SELECT count(*) FROM vectors v WHERE v.collection_id = c.id) "
                "FROM collections c LEFT JOIN items i ON i.collection_id = c.id "
                "WHERE c.name = :n GROUP BY c.id"
            ),
            {"n": name},
        ).first()
    return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))


def test_ray_job_into_pgvector_killed_resumed_then_searched(
    pgvector_url: str, coll_name: str, tmp_path: Path
) -> None:
    total = 120  # 60 blocks of 2: a window of several commits to kill the job in
    lib = many_images(tmp_path / "lib", total, size=64)
    (lib / "broken.png").write_bytes(b"\x89PNG not really")  # recorded as a failure
    env = {
        **os.environ,
        "EMBEDSTORE_DATABASE_URL": pgvector_url,
        "EMBEDSTORE_DATA_DIR": str(tmp_path / "data"),
        "OMP_NUM_THREADS": "1",
    }
    args = _cli(
        "index", lib, "-c", coll_name, "--encoder", "imagebind_test", "--index-backend",
        "pgvector", "--engine", "ray", "--batch-size", "2", "--workers", "1", "--json",
    )  # fmt: skip
    db = create_engine(pgvector_url)
    log = (tmp_path / "first.log").open("wb")
    first = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 240
    while _counts(db, coll_name)[0] < 6:  # a few blocks committed: kill it now
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the Ray job committed nothing in time"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    committed, uris, vecs = _counts(db, coll_name)
    assert 6 <= committed < total, "the job finished before it could be killed mid-way"
    assert uris >= committed and vecs == committed  # each committed item whole, nothing partial

    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 1, done.stderr[-3000:]  # 1: the broken file failed
    report = json.loads(done.stdout)
    assert report["added"] + report["unchanged"] == total  # nothing lost
    assert report["added"] == total - committed  # nothing committed was redone
    assert [f["uri"] for f in report["failed"]] == [str(lib / "broken.png")]
    ok, uris, vecs = _counts(db, coll_name)
    assert ok == total and vecs == total and uris == total + 1  # + the failure's row

    query = lib / "img00017.png"
    found = subprocess.run(
        _cli("search", "--file", query, "-c", coll_name, "-k", "3", "--json"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert found.returncode == 0, found.stderr[-3000:]
    assert json.loads(found.stdout)[0]["uri"] == str(query)
    db.dispose()

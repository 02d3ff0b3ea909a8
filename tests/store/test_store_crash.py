"""kill -9 a writer at random points, reopen, and check the store is consistent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from embedstore.store import Store
from embedstore.store.tables import from_blobs, items, vectors

TRIALS = 20
WRITER = Path(__file__).with_name("crash_writer.py")


@pytest.fixture
def forker() -> Iterator[subprocess.Popen[str]]:
    """A process that imported the store once and forks a fresh writer per trial."""
    env = os.environ | {
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    proc = subprocess.Popen(
        [sys.executable, str(WRITER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield proc
    proc.stdin.close()  # type: ignore[union-attr]
    proc.wait(timeout=30)


def wait_for(log: Path, lines: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count("\n") >= lines:
            return
        time.sleep(0.01)
    raise AssertionError(
        f"writer did not reach {lines} log lines: {log.read_text() if log.exists() else ''}"
    )


def check_consistent(
    url: str, index_dir: Path, added: set[int], deleted: set[int], maybe: set[int]
) -> set[int]:
    """Every committed item is stored and searchable; no deleted vector is in any index."""
    with Store(url, index_dir) as store:
        coll = store.collection("crash")
        with store.engine.connect() as conn:
            item_ids = set(
                conn.execute(select(items.c.id).where(items.c.collection_id == coll.id)).scalars()
            )
            rows = conn.execute(
                select(vectors.c.id, vectors.c.item_id, vectors.c.vector).where(
                    vectors.c.collection_id == coll.id
                )
            ).all()
        assert added - deleted - maybe <= item_ids, "a committed item was lost"
        assert not deleted & item_ids, "a deleted item came back"
        index = coll.indexes.indexes.get("vision")
        db_vectors = {r[0] for r in rows}
        assert set((index.ids() if index is not None else np.empty(0)).tolist()) == db_vectors
        if rows:
            x = from_blobs([r[2] for r in rows], coll.dim)
            hits = coll.search(x, k=1)
            assert [h[0].id for h in hits] == [r[1] for r in rows], (
                "an item is not found by its own vector"
            )
    return item_ids


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_at_random_points_loses_nothing(
    backend: str, forker, tmp_path: Path, request
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'crash.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_schema_url")
    )
    index_dir = tmp_path / "indexes"
    rnd = random.Random(1234)
    added: set[int] = set()
    deleted: set[int] = set()
    for trial in range(TRIALS):
        log = tmp_path / f"log{trial}"
        forker.stdin.write(f"{url} {index_dir} {log} {trial}\n")  # type: ignore[union-attr]
        forker.stdin.flush()  # type: ignore[union-attr]
        pid = int(forker.stdout.readline())  # type: ignore[union-attr]
        wait_for(log, 1 + rnd.randint(0, 8))
        time.sleep(rnd.uniform(0, 0.05))
        os.kill(pid, signal.SIGKILL)
        maybe: set[int] = set()  # removals the kill may have cut between commit and log line
        for line in log.read_text().splitlines()[1:]:
            op, *nums = line.split()
            ids = {int(n) for n in nums if n.isdigit()}
            if op == "add":  # one os.write per commit: lines are never torn
                added |= ids
            elif op == "rm":
                maybe |= ids
            elif op == "del":
                deleted |= ids
                maybe -= ids
        time.sleep(0.05)  # let the kernel finish tearing the child down (locks, sockets)
        present = check_consistent(url, index_dir, added, deleted, maybe)
        deleted |= maybe - present

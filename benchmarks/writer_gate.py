"""What the writer gate (embedstore/store/gate.py) adds to a collection's write transaction.

    python -m benchmarks.writer_gate
    python -m benchmarks.writer_gate --database-url "$(cat /tmp/pg_url)" --json

Rows ``gate``: the shared side alone, microseconds per enter + exit (SQLite: the ``flock`` pair
on the collection's lock file; PostgreSQL: a transaction that only takes the collection's write
lock through the gate, ``pg_try_advisory_xact_lock``, against one that takes it as
``begin_write`` did before, ``pg_advisory_xact_lock``). Row ``check``:
``begin_write``'s one query (the last change seq and whether the collection is still there under
its name, ``writes.BEGIN_WRITE_SQL``) against the seq query alone (``writes.top_seq``), which was
all it ran before the gate. Rows ``write``:
microseconds per whole write transaction through ``Collection`` with the gate ``on`` and
``off`` (its work skipped, everything else the same), for two writes: ``remove`` of a uri that
is not there (the smallest write: gate, BEGIN, ``begin_write``, one select, COMMIT) and
``add_items`` of one item with one 64-d vector. On and off alternate in blocks; a ``write``
figure is the median of the blocks' means, a ``gate`` or ``check`` figure the lowest block mean
(the least disturbed by other load on a shared machine).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks.common import emit, output_options, result_doc

DIM = 64


def _per_call_us(fn: Callable[[], Any], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def _gate_row(store: Any, cid: int, backend: str, n: int, blocks: int) -> dict[str, Any]:
    from sqlalchemy import text

    gate = store.gate
    if backend == "sqlite":

        def shared() -> None:
            with gate.shared(cid, "bench"):
                pass

        us = min(_per_call_us(shared, n) for _ in range(blocks))
        return {"kind": "gate", "backend": backend, "side": "shared", "us": round(us, 2)}

    def tx(join: bool) -> Callable[[], None]:
        def run() -> None:
            with store.engine.begin() as conn:
                if join:  # the gate: try the write lock, wait (bounded) only when it is held
                    gate.join(conn, cid, "bench")
                else:  # what begin_write ran before the gate: wait for the lock, unbounded
                    conn.execute(text("SELECT pg_advisory_xact_lock(72350, :c)"), {"c": cid})

        return run

    on = min(_per_call_us(tx(True), n) for _ in range(blocks))
    off = min(_per_call_us(tx(False), n) for _ in range(blocks))
    return {
        "kind": "gate",
        "backend": backend,
        "side": "shared",
        "gate_us": round(on, 1),
        "plain_lock_us": round(off, 1),
        "us": round(on - off, 2),
    }


def _check_row(store: Any, cid: int, backend: str, n: int, blocks: int) -> dict[str, Any]:
    """``begin_write``'s query (last seq + the collection still there) against the seq alone."""
    from embedstore.store import writes

    args = {"c": cid, "n": "bench-gate"}
    with store.engine.connect() as conn:
        check = min(
            _per_call_us(lambda: conn.execute(writes.BEGIN_WRITE_SQL, args).one(), n)
            for _ in range(blocks)
        )
        seq = min(_per_call_us(lambda: writes.top_seq(conn, cid), n) for _ in range(blocks))
    return {
        "kind": "check",
        "backend": backend,
        "begin_write_us": round(check, 1),
        "top_seq_us": round(seq, 1),
        "us": round(check - seq, 1),
    }


def _write_rows(coll: Any, backend: str, n: int, blocks: int) -> list[dict[str, Any]]:
    from embedstore.store import NewItem, NewVector

    gate = coll.store.gate
    real = (gate.dir, gate.postgres)
    rng = np.random.default_rng(0)
    vec = rng.standard_normal(DIM).astype(np.float32)
    count = iter(range(10**9))

    def add() -> None:
        i = next(count)
        coll.add_items(
            [NewItem(f"/bench/{i}.png", "vision", f"h{i}", 1, 1.0, {}, [NewVector("vision", vec)])]
        )

    def remove_nothing() -> None:
        coll.remove(uris=["/bench/not-there.png"])

    rows = []
    for op, fn in (("remove_nothing", remove_nothing), ("add_items_1", add)):
        times: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(blocks):
            for state in ("on", "off"):
                gate.dir, gate.postgres = real if state == "on" else (None, False)
                times[state].append(_per_call_us(fn, n))
        gate.dir, gate.postgres = real
        on, off = (statistics.median(times[s]) for s in ("on", "off"))
        rows.append(
            {
                "kind": "write",
                "backend": backend,
                "op": op,
                "gate_on_us": round(on, 1),
                "gate_off_us": round(off, 1),
                "overhead_us": round(on - off, 1),
            }
        )
    return rows


@click.command()
@click.option("--database-url", default=None, help="Default: a SQLite file in a temp dir.")
@click.option("--n", default=200, show_default=True, help="Transactions per block.")
@click.option("--blocks", default=7, show_default=True, help="Alternating on/off blocks.")
@output_options
def main(
    database_url: str | None,
    n: int,
    blocks: int,
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
) -> None:
    """Measure the writer gate's cost per write transaction."""
    from embedstore.store import Store

    if smoke:
        n, blocks = 20, 3
    tmp = Path(tempfile.mkdtemp(prefix="embedstore-bench-"))
    try:
        store = Store(database_url or f"sqlite:///{tmp / 'bench.db'}", tmp / "indexes")
        backend = store.engine.dialect.name
        try:
            if "bench-gate" in store.list_collections():
                store.drop_collection("bench-gate")
            coll = store.create_collection("bench-gate", "bench", DIM, index_spec="Flat")
            rows = [_gate_row(store, coll.id, backend, n, blocks)]
            rows.append(_check_row(store, coll.id, backend, n, blocks))
            rows += _write_rows(coll, backend, n, blocks)
            store.drop_collection("bench-gate")
        finally:
            store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    params = {"n": n, "blocks": blocks, "dim": DIM, "backend": backend}
    emit(result_doc("writer_gate", params, rows), as_json=as_json, out=out, plot=plot)


if __name__ == "__main__":
    main()

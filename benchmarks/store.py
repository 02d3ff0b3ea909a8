"""Store overhead over raw FAISS (same index object) and ingest throughput (DB + index).

    python -m benchmarks.store --smoke --json
    python -m benchmarks.store --n 100000 --dim 1024 --out benchmarks/results/store.json

Rows ``search``: per-query median latency (k=10, one query per call) of raw ``faiss`` on the
collection's own index, of ``Collection.search_ids`` (ids + scores) and of ``Collection.search``
(+ the k hits' rows: ``store_rows_ms`` with the row cache as a repeated query set leaves it,
``store_rows_cold_ms`` with it emptied before every query, so every row is read from the
database), with the overhead in percent. Rows ``ingest``: vectors
per second through ``Collection.add_items`` in batches (SQL insert + change log + index add,
IVF training included): ``committed_per_s`` up to the last batch's commit (every vector in the
database, which is the source of truth, and in the index in memory), ``vectors_per_s`` up to the
index files written too (``flush``; on a crash before it, the index catches up from the
database when it is next opened).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks.common import emit, output_options, result_doc, synthetic_clustered

SMOKE = {
    "n": 5000,
    "dim": 64,
    "nq": 50,
    "ingest_specs": "Flat,IVF64,Flat",
    "search_specs": "Flat,HNSW32",
}


def _items(x: np.ndarray, start: int) -> list[Any]:
    from embedstore.store import NewItem, NewVector

    return [
        NewItem(
            f"/bench/{start + i:08d}.jpg",
            "vision",
            f"h{start + i}",
            1000,
            1.0,
            {"n": start + i, "tag": "ab"[(start + i) % 2]},
            [NewVector("vision", v)],
        )
        for i, v in enumerate(x)
    ]


def ingest(
    store: Any, name: str, spec: str, xb: np.ndarray, more: np.ndarray, batch: int
) -> list[dict[str, Any]]:
    """Add ``xb`` to an empty collection, then ``more`` to it, one item per vector in batches.

    Each phase is timed up to its index files on disk (``flush``); the first includes IVF
    training, the second adds to the trained index. Returns one ingest row per phase.
    """
    coll = store.create_collection(name, "bench", xb.shape[1], index_spec=spec)
    rows = []
    offset = 0
    for phase, x in (("from_empty", xb), ("into_trained", more)):
        if not len(x):
            continue
        batches = [_items(x[s : s + batch], offset + s) for s in range(0, len(x), batch)]
        t0 = time.perf_counter()
        for b in batches:
            coll.add_items(b)
        committed = time.perf_counter() - t0  # in the database, and in the index in memory
        coll.flush()
        seconds = time.perf_counter() - t0
        offset += len(x)
        index = coll.indexes.indexes["vision"]
        rows.append(
            {
                "kind": "ingest",
                "phase": phase,
                "spec": spec,
                "index": index.spec,
                "trained": index.is_trained,
                "n": len(x),
                "total": len(index),
                "batch": batch,
                "seconds": round(seconds, 2),
                "vectors_per_s": round(len(x) / seconds),
                "committed_s": round(committed, 2),
                "committed_per_s": round(len(x) / committed),
            }
        )
    return rows


def _interleaved(
    variants: dict[str, Any], queries: list[np.ndarray], runs: int, warm: frozenset[str]
) -> dict[str, float]:
    """Median seconds per query of each variant over ``runs`` passes of all the queries; the
    variants take turns within each run, so a change in machine load hits them alike. A variant
    named in ``warm`` gets an untimed pass right before each timed one (the row cache it reads
    is emptied by the cold variant)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs + 1):  # the first run warms up and is not kept
        for name, fn in variants.items():
            if name in warm:
                for q in queries:
                    fn(q)
            t0 = time.perf_counter()
            for q in queries:
                fn(q)
            times[name].append((time.perf_counter() - t0) / len(queries))
    return {name: statistics.median(ts[1:]) for name, ts in times.items()}


def search_rows(coll: Any, xq: np.ndarray, k: int, runs: int) -> dict[str, Any]:
    """Median per-query latency: raw FAISS, store ids+scores, store with rows; overhead in %."""
    index = coll.indexes.indexes["vision"]
    raw = index._index  # the very FAISS object the store searches
    params = index._params(None, None, None, k)
    queries = [xq[i : i + 1] for i in range(len(xq))]

    variants: dict[str, Any] = {
        "raw": lambda q: raw.search(q, k, params=params),
        "ids": lambda q: coll.search_ids(q, k, modality="vision"),
        "rows": lambda q: coll.search(q, k),
    }
    if coll._engine.dialect.name == "sqlite":  # rows read from the database on every query
        from embedstore.store.search import row_cache

        cache = row_cache(coll._engine)

        def cold(q: np.ndarray) -> Any:
            cache.version = None  # the next lookup starts from an empty cache
            return coll.search(q, k)

        variants["cold"] = cold
    short = sum(int((raw.search(q, k, params=params)[1] < 0).any()) for q in queries)
    per_query = _interleaved(variants, queries, runs, warm=frozenset({"rows"}))
    raw_s, ids_s, full_s = per_query["raw"], per_query["ids"], per_query["rows"]
    cold_s = per_query.get("cold", full_s)
    return {
        "kind": "search",
        "spec": index.spec,
        "n": len(index),
        "k": k,
        "raw_faiss_ms": round(raw_s * 1e3, 4),
        "store_ids_ms": round(ids_s * 1e3, 4),
        "store_rows_ms": round(full_s * 1e3, 4),
        "store_rows_cold_ms": round(cold_s * 1e3, 4),
        "ids_overhead_pct": round(100 * (ids_s / raw_s - 1), 1),
        "rows_overhead_pct": round(100 * (full_s / raw_s - 1), 1),
        "rows_cold_overhead_pct": round(100 * (cold_s / raw_s - 1), 1),
        "raw_short_queries": short,  # queries FAISS answered with fewer than k ids
        "nprobe": index.nprobe or None,  # as the store tuned them (recall@10 >= 0.95)
        "ef_search": index.ef_search if "HNSW" in index.spec else None,
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--n", default=100_000, show_default=True, help="Vectors in the collection.")
@click.option("--dim", default=1024, show_default=True)
@click.option("--nq", default=200, show_default=True, help="Queries (timed one per call).")
@click.option("-k", "k", default=10, show_default=True)
@click.option("--batch", default=1000, show_default=True, help="Items per add_items call.")
@click.option(
    "--more",
    default=None,
    type=int,
    help="Vectors added in a second ingest phase, into the trained index (default: --n).",
)
@click.option(
    "--ingest-specs",
    default="Flat,IVF1024,Flat",
    show_default=True,
    help="';'-free list: 'Flat,IVF1024,Flat' = Flat and IVF1024,Flat.",
)
@click.option("--search-specs", default="Flat,HNSW32", show_default=True)
@click.option("--database-url", default=None, help="Default: a SQLite file in a temp dir.")
@click.option("--runs", default=3, show_default=True)
@click.option(
    "--threads", default=0, help="FAISS OpenMP threads for the search rows (0: FAISS default)."
)
@output_options
def main(
    n: int,
    dim: int,
    nq: int,
    k: int,
    batch: int,
    more: int | None,
    ingest_specs: str,
    search_specs: str,
    database_url: str | None,
    runs: int,
    threads: int,
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
) -> None:
    """Measure the store's search overhead over raw FAISS and its ingest rate."""
    import faiss

    from embedstore.store import Store

    if smoke:
        n, dim, nq, more = 5000, 64, 50, 2000
        ingest_specs, search_specs = "Flat,IVF64,Flat", "Flat,HNSW32"
    more = n if more is None else more
    all_threads = faiss.omp_get_max_threads()
    ds = synthetic_clustered(n + more, nq, dim, seed=0, k=k)
    xb, extra = ds.xb[:n], ds.xb[n:]
    tmp = Path(tempfile.mkdtemp(prefix="embedstore-bench-"))
    rows: list[dict[str, Any]] = []
    try:
        store = Store(database_url or f"sqlite:///{tmp / 'bench.db'}", tmp / "indexes")
        for name in store.list_collections():
            if name.startswith("bench-"):
                store.drop_collection(name)
        for i, spec in enumerate(_split_specs(ingest_specs)):  # every core, as indexing runs
            rows.extend(ingest(store, f"bench-ingest-{i}", spec, xb, extra, batch))
            store.drop_collection(f"bench-ingest-{i}")
        if threads:
            faiss.omp_set_num_threads(threads)
        first = None
        for spec in _split_specs(search_specs):
            if first is None:
                first = store.create_collection("bench-search", "bench", dim, index_spec=spec)
                for s in range(0, n, batch):
                    first.add_items(_items(xb[s : s + batch], s))
            else:
                first.reindex(spec, min_recall=0.0)  # recall is measured below
            rows.append(search_rows(first, ds.xq, k, runs))
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    params = {
        "n": n,
        "dim": dim,
        "nq": nq,
        "k": k,
        "batch": batch,
        "more": more,
        "dataset": ds.name,
        "database": "sqlite" if database_url is None else database_url.split(":")[0],
        "faiss_threads_ingest": all_threads,
        "faiss_threads_search": faiss.omp_get_max_threads(),
    }
    emit(result_doc("store", params, rows), as_json=as_json, out=out, plot=plot)


def _split_specs(text: str) -> list[str]:
    """'Flat,IVF1024,Flat,HNSW32' -> ['Flat', 'IVF1024,Flat', 'HNSW32'] (IVF takes its encoding)."""
    parts, out = [p.strip() for p in text.split(",") if p.strip()], []
    i = 0
    while i < len(parts):
        if parts[i].upper().startswith(("IVF", "OPQ", "PCA")) and i + 1 < len(parts):
            out.append(f"{parts[i]},{parts[i + 1]}")
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out


if __name__ == "__main__":
    main()

"""Past one machine, measured here: the Ray job vs in-process indexing, pgvector vs FAISS.

    python -m benchmarks.scale --smoke --json
    python -m benchmarks.scale --pgvector-url URL --out benchmarks/results/scale.json

Part ``ray`` (``--images``, default 1000): the same JPEG crops of the real reference photos
indexed with ``imagebind_test`` into a fresh SQLite catalog, once by ``Engine.index`` in this
process and once as a Ray Data job on a local cluster (``engine="ray"``, cluster start-up
included): files/s and the peak resident memory of the whole process tree (the driver, its
decode workers, and Ray's raylet, object store and workers), sampled every 0.2 s.

Part ``ann`` (``--n`` x ``--dim`` clustered unit vectors, default 100k x 1024, ``--nq`` held-out
queries): the same vectors through the store into a FAISS ``HNSW32`` collection (SQLite catalog)
and a ``pgvector`` collection (``--pgvector-url``, e.g. from ``bash .ci/start-pgvector.sh``).
Rows: load rate (``add_items`` in batches of ``--batch``, committed; FAISS inserts each batch
into the live HNSW graph, pgvector writes rows with no graph yet), build time (FAISS:
``Collection.reindex``, a fresh graph from the catalog with efSearch tuned, swapped in and saved;
pgvector: ``CREATE INDEX CONCURRENTLY`` + ``ANALYZE``, and the ef_search tuning separately),
index size (FAISS: the header and data files), then per filter (none, 10%, 1% of the items)
recall@10 against exact float32 search of the rows that pass, p50/p99 latency of one
``Collection.search`` per query (k=10, the hits' rows included) and how many queries returned
fewer than 10 hits. Each backend runs at the knob its own tuning chose for recall@10 >= 0.95;
FAISS queries run on ``--threads`` OpenMP threads (default 1, as a server should).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks.common import emit, output_options, result_doc, synthetic_clustered

SMOKE = {"images": 24, "n": 4000, "dim": 64, "nq": 30}


# -- memory ------------------------------------------------------------------------------------
def tree_rss(root: int) -> int:
    """Bytes resident in process ``root`` and all its descendants (Linux ``/proc``)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier and p not in tree]
        tree.update(kids)
        frontier = kids
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return total


class TreeMemory(threading.Thread):
    """Samples the summed RSS of this process and all its descendants; ``peak_mb`` after stop."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak = interval, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_rss(os.getpid()))
            self._stop_event.wait(self.interval)

    def stop(self) -> float:
        """Stop sampling; the peak in MiB."""
        self._stop_event.set()
        self.join()
        return self.peak / 2**20


# -- part 1: Ray job vs in-process -------------------------------------------------------------
def ray_vs_local(n_images: int, workers: int, batch_size: int) -> list[dict[str, Any]]:
    """Index the same real images in-process and as a Ray job; files/s and peak memory."""
    from benchmarks.ingest import make_images
    from embedstore.config import Settings
    from embedstore.engine import Engine

    rows = []
    with tempfile.TemporaryDirectory(prefix="embedstore-scale-") as tmp:
        root = Path(tmp)
        make_images(root / "lib", n_images, 224)
        for run in ("local", "ray"):
            settings = Settings(
                data_dir=root / run,
                encoder="imagebind_test",
                device="cpu",
                workers=workers,
                batch_size=batch_size,
            )
            engine = Engine(settings)
            mem = TreeMemory()
            mem.start()
            t0 = time.perf_counter()
            report = engine.index([root / "lib"], "bench", engine=run)
            seconds = time.perf_counter() - t0
            peak = mem.stop()
            engine.close()
            assert report.added == n_images and not report.failed, report
            rows.append(
                {
                    "part": "ray",
                    "engine": run,
                    "files": n_images,
                    "seconds": round(seconds, 2),
                    "files_per_s": round(n_images / seconds, 1),
                    "peak_tree_rss_mb": round(peak),
                }
            )
    return rows


# -- part 2: pgvector vs FAISS -----------------------------------------------------------------
def _items(x: np.ndarray, start: int, end: int) -> list[Any]:
    from embedstore.store import NewItem, NewVector

    return [
        NewItem(f"/v/{i:07d}", "vision", f"h{i}", 1, 0.0, {"pct10": i % 10, "pct1": i % 100},
                [NewVector("vision", x[i])])
        for i in range(start, end)
    ]  # fmt: skip


FILTERS: dict[str, tuple[dict[str, Any] | None, Callable[[np.ndarray], np.ndarray]]] = {
    "none": (None, lambda ids: np.ones(len(ids), dtype=bool)),
    "10%": ({"pct10": 3}, lambda ids: ids % 10 == 3),
    "1%": ({"pct1": 42}, lambda ids: ids % 100 == 42),
}


def _queries(coll: Any, xb: np.ndarray, xq: np.ndarray, k: int = 10) -> list[dict[str, Any]]:
    ids = np.arange(len(xb))
    out = []
    for name, (where, keep) in FILTERS.items():
        mask = keep(ids)
        sub, sub_ids = xb[mask], ids[mask]
        truth = sub_ids[np.argsort(-(xq @ sub.T), axis=1)[:, :k]]
        coll.search(xq[:3], k, where=where)  # warm: plans, caches, first connection
        lat, recalls, short = [], [], 0
        for q, t in zip(xq, truth):
            t0 = time.perf_counter()
            hits = coll.search(q, k, where=where)[0]
            lat.append((time.perf_counter() - t0) * 1000)
            got = [int(h.uri.rsplit("/", 1)[1]) for h in hits]
            recalls.append(len(set(got) & set(t.tolist())) / k)
            short += len(hits) < k
        lat.sort()
        out.append(
            {
                "filter": name,
                "recall_at_10": round(float(np.mean(recalls)), 4),
                "p50_ms": round(statistics.median(lat), 2),
                "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2),
                "short_queries": short,
            }
        )
    return out


def _load(coll: Any, xb: np.ndarray, batch: int) -> float:
    t0 = time.perf_counter()
    for start in range(0, len(xb), batch):
        coll.add_items(_items(xb, start, min(len(xb), start + batch)))
    return time.perf_counter() - t0


def faiss_rows(
    xb: np.ndarray, xq: np.ndarray, batch: int, tmp: Path, threads: int = 1
) -> list[dict[str, Any]]:
    """The default backend: SQLite catalog, HNSW32 index files, efSearch tuned by the store.

    The load goes into the live graph (what ``embedstore index`` does: every committed batch is
    inserted into the loaded HNSW index); the build is ``Collection.reindex`` (a fresh graph from
    the catalog, efSearch tuned, recall verified, swapped in and saved), so the queries run on
    the tuned graph, as pgvector's do. Load and build use every core; the queries run with
    ``threads`` OpenMP threads (0: every core), as a server should (docs/api.md): one query on
    two threads waits at an OpenMP barrier whenever the machine is busy.
    """
    import faiss

    from embedstore.store import Store
    from indexers.faiss_index import companions

    store = Store(f"sqlite:///{tmp / 'faiss.db'}", tmp / "indexes")
    coll = store.create_collection("bench", "synthetic", xb.shape[1], index_spec="HNSW32")
    load_s = _load(coll, xb, batch)
    t0 = time.perf_counter()
    # from the catalog, efSearch tuned, swapped in, saved; the recall check of reindex is
    # recorded, not enforced (its midpoint queries fall between this data's clusters)
    coll.reindex("HNSW32", min_recall=0.0)
    build_s = time.perf_counter() - t0
    path = coll.indexes.path("vision")
    size = path.stat().st_size + sum(p.stat().st_size for p in companions(path))
    base = {
        "part": "ann",
        "backend": "faiss HNSW32",
        "load_rows_per_s": round(len(xb) / load_s),
        "build_s": round(build_s, 1),
        "ef_search": int(getattr(coll.indexes.indexes["vision"], "ef_search", 0)),
        "reindex_check_recall_at_10": round(coll.verified.get("vision", 0.0), 4),
        "index_mb": round(size / 2**20, 1),
    }
    every = faiss.omp_get_max_threads()
    if threads > 0:
        faiss.omp_set_num_threads(threads)
    try:
        base["query_threads"] = faiss.omp_get_max_threads()
        rows = [{**base, **r} for r in _queries(coll, xb, xq)]
    finally:
        faiss.omp_set_num_threads(every)
    store.close()
    return rows


def pgvector_rows(
    xb: np.ndarray, xq: np.ndarray, batch: int, url: str, tmp: Path, with_vector: bool
) -> list[dict[str, Any]]:
    """PostgreSQL + pgvector: halfvec rows, HNSW built after the load, ef_search tuned."""
    from sqlalchemy import text

    from embedstore.store import Store
    from embedstore.store.pgvector import index_name

    store = Store(url, tmp / "pg-indexes")
    name = f"bench{os.getpid()}"
    coll = store.create_collection(name, "synthetic", xb.shape[1], index_backend="pgvector")
    try:
        load_s = _load(coll, xb, batch)
        built = coll.indexes.build("vision")
        coll.indexes.refresh(force=True)
        with store.engine.connect() as conn:
            size = conn.execute(
                text("SELECT pg_relation_size(:n)"), {"n": index_name(coll.id, "vision")}
            ).scalar()
            col = conn.execute(
                text(
                    "SELECT avg(pg_column_size(embedding)), avg(pg_column_size(vector)) "
                    "FROM vectors WHERE collection_id = :c"
                ),
                {"c": coll.id},
            ).first()
        base = {
            "part": "ann",
            "backend": "pgvector HNSW halfvec (m=16, ef_construction=64)",
            "load_rows_per_s": round(len(xb) / load_s),
            "build_s": built["build_s"],
            "ef_search": built["ef_search"],
            "tune_recall_at_10": built["recall_at_10"],
            "index_mb": round(int(size or 0) / 2**20, 1),
            "halfvec_bytes": round(float(col[0] or 0)),
            "float32_blob_bytes": round(float(col[1] or 0)),
        }
        rows = [{**base, **r} for r in _queries(coll, xb, xq)]
        rows[0]["exact_fallbacks"] = coll.indexes.stats["exact_fallbacks"]
        if with_vector:  # the same graph over full-precision vector(dim), for its size and time
            vname = f"ix_bench_vector_{coll.id}"
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql("SET maintenance_work_mem = '2GB'")
                c.exec_driver_sql("SET max_parallel_maintenance_workers = 2")
                t0 = time.perf_counter()
                c.exec_driver_sql(
                    f"CREATE INDEX {vname} ON vectors USING hnsw "
                    f"((embedding::vector({xb.shape[1]})) vector_ip_ops) "
                    f"WHERE collection_id = {coll.id} AND modality = 'vision'"
                )
                vbuild = time.perf_counter() - t0
                vsize = c.exec_driver_sql(f"SELECT pg_relation_size('{vname}')").scalar()
                c.exec_driver_sql(f"DROP INDEX {vname}")
            rows.append(
                {
                    "part": "ann",
                    "backend": "pgvector HNSW vector (same graph settings, size only)",
                    "build_s": round(vbuild, 1),
                    "index_mb": round(int(vsize or 0) / 2**20, 1),
                }
            )
        return rows
    finally:
        store.drop_collection(name)
        store.close()


@click.command()
@click.option("--images", default=1000, show_default=True, help="Real images for part ray.")
@click.option("--workers", default=1, show_default=True, help="Decode workers / tasks.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--n", default=100_000, show_default=True, help="Vectors for part ann.")
@click.option("--dim", default=1024, show_default=True)
@click.option("--nq", default=200, show_default=True, help="Held-out queries.")
@click.option("--batch", default=1000, show_default=True, help="Items per add_items call.")
@click.option(
    "--pgvector-url",
    envvar="EMBEDSTORE_TEST_PGVECTOR_URL",
    help="PostgreSQL with pgvector 0.8 (bash .ci/start-pgvector.sh prints one).",
)
@click.option("--parts", default="ray,ann", show_default=True)
@click.option("--vector-too", is_flag=True, help="Also build a full-precision vector index.")
@click.option("--skip", default="", help="Backends of part ann to leave out, e.g. faiss.")
@click.option(
    "--threads",
    default=1,
    show_default=True,
    help="FAISS OpenMP threads for the queries of part ann (0: every core).",
)
@output_options
def main(
    images: int,
    workers: int,
    batch_size: int,
    n: int,
    dim: int,
    nq: int,
    batch: int,
    pgvector_url: str | None,
    parts: str,
    vector_too: bool,
    skip: str,
    threads: int,
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
) -> None:
    """Ray job vs in-process indexing; pgvector vs FAISS through the store."""
    if smoke:
        images, n, dim, nq = SMOKE["images"], SMOKE["n"], SMOKE["dim"], SMOKE["nq"]
    todo = {p.strip() for p in parts.split(",")}
    rows: list[dict[str, Any]] = []
    if "ray" in todo:
        rows += ray_vs_local(images, workers, batch_size)
    if "ann" in todo:
        data = synthetic_clustered(n, nq, dim, seed=0, k=10)
        with tempfile.TemporaryDirectory(prefix="embedstore-scale-") as tmp:
            if "faiss" not in skip:
                rows += faiss_rows(data.xb, data.xq, batch, Path(tmp), threads)
            if pgvector_url:
                rows += pgvector_rows(data.xb, data.xq, batch, pgvector_url, Path(tmp), vector_too)
            else:
                click.echo("no --pgvector-url: pgvector rows skipped", err=True)
    params = {"images": images, "workers": workers, "batch_size": batch_size, "n": n, "dim": dim}
    params |= {"nq": nq, "batch": batch, "threads": threads, "load_average": os.getloadavg()[0]}
    emit(result_doc("scale", params, rows), as_json=as_json, out=out, plot=None)


if __name__ == "__main__":
    main()

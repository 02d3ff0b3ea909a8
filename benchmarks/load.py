"""HTTP load: requests/s and p50/p99 latency of text search against a real server on loopback.

A collection of ``--n`` synthetic vectors (clustered, like real embeddings) is written straight
into a fresh store; ``uvicorn --factory embedstore.api:create_app`` then serves it on 127.0.0.1
from a subprocess, and 1, 8 and 32 concurrent clients send text searches. Every row reports the
ratio of the server's latency to the store's own in-process search latency (the HTTP, JSON,
encoder and batching overhead on top of FAISS).

    python -m benchmarks.load --n 100000 --concurrency 1,8,32 --json
    python -m benchmarks.load --smoke --json
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click
import httpx
import numpy as np

from benchmarks.common import emit, output_options, parse_ints, result_doc, synthetic_clustered

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "load"


def fill_store(data_dir: Path, n: int, encoder: str, seed: int) -> dict[str, float]:
    """Write ``n`` synthetic vectors; time the store's own search and the in-process engine search."""
    from benchmarks.common import timeit
    from embedstore.config import Settings
    from embedstore.engine import Engine
    from embedstore.store import NewItem, NewVector

    settings = Settings(data_dir=data_dir, encoder=encoder, device="cpu", workers=0)
    engine = Engine(settings)
    coll = engine.create_collection(COLLECTION, encoder=encoder)
    dim = coll.info().dim
    xb = synthetic_clustered(n, 1, dim, seed=seed).xb
    t0 = time.perf_counter()
    for lo in range(0, n, 5000):
        items = [
            NewItem(f"synthetic://{i}.png", "vision", f"h{i}", 1, 0.0, {"i": i},
                    [NewVector("vision", xb[i])])
            for i in range(lo, min(n, lo + 5000))
        ]  # fmt: skip
        coll.add_items(items)
    fill_s = time.perf_counter() - t0
    q = engine.embed_query(coll, "text", "a photo of a dog")
    coll.search(q, 10)  # build/warm the index before timing
    store = timeit(lambda: coll.search(q, 10), warmup=3, runs=30)
    full = timeit(
        lambda: engine.search(COLLECTION, text="a photo of a dog", k=10), warmup=2, runs=20
    )
    engine.close()
    return {"fill_s": fill_s, "store_search_ms": store.median_s * 1e3,
            "engine_search_ms": full.median_s * 1e3, "dim": dim}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    data_dir: Path, encoder: str, port: int, batch_wait_ms: float
) -> subprocess.Popen[bytes]:
    """``uvicorn --factory embedstore.api:create_app`` on 127.0.0.1, configured through the env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDSTORE_")}
    env.update(
        EMBEDSTORE_DATA_DIR=str(data_dir), EMBEDSTORE_ENCODER=encoder, EMBEDSTORE_DEVICE="cpu",
        EMBEDSTORE_WORKERS="0", EMBEDSTORE_BATCH_WAIT_MS=str(batch_wait_ms),
    )  # fmt: skip
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "embedstore.api:create_app",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Poll ``/healthz`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise click.ClickException("server did not become healthy")


async def _load(url: str, concurrency: int, requests: int, duration: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    r = await client.post(
                        f"/v1/collections/{COLLECTION}/search", json={"text": f"query {i}", "k": 10}
                    )
                except httpx.TransportError:  # counted, not timed
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1e3
    return {"requests": len(latencies), "errors": errors, "wall_s": wall,
            "rps": len(latencies) / wall, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99))}  # fmt: skip


SERIES = {
    "encode_calls": r'embedstore_encode_batch_size_count\{[^}]*modality="text"\}',
    "encode_items": r'embedstore_encode_batch_size_sum\{[^}]*modality="text"\}',
    "encode_s": r'embedstore_encode_batch_duration_seconds_sum\{[^}]*modality="text"\}',
    "search_calls": r"embedstore_search_batch_size_count",
    "search_items": r"embedstore_search_batch_size_sum",
    "search_s": r"embedstore_search_batch_duration_seconds_sum",
}


def server_totals(url: str) -> dict[str, float]:
    """Encoder and index call counters of the text-search path so far, from ``/metrics``."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for name, pattern in SERIES.items():
        m = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
        out[name] = float(m.group(1)) if m else 0.0
    return out


def server_row(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean batch sizes and per-call times inside the server between two scrapes."""
    d = {k: after[k] - before[k] for k in after}
    calls_e, calls_s = max(d["encode_calls"], 1), max(d["search_calls"], 1)
    return {"mean_encode_batch": d["encode_items"] / calls_e,
            "encode_call_ms": 1e3 * d["encode_s"] / calls_e,
            "mean_search_batch": d["search_items"] / calls_s,
            "search_call_ms": 1e3 * d["search_s"] / calls_s}  # fmt: skip


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--n", type=int, default=100_000, show_default=True, help="Stored vectors.")
@click.option("--concurrency", default="1,8,32", show_default=True, help="Client counts.")
@click.option("--requests", type=int, default=2000, show_default=True, help="Per level (cap).")
@click.option(
    "--duration", type=float, default=30.0, show_default=True, help="Seconds per level (cap)."
)
@click.option("--encoder", default="imagebind_test", show_default=True)
@click.option("--batch-wait-ms", type=float, default=2.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--threads",
    type=int,
    default=1,
    show_default=True,
    help="OMP_NUM_THREADS for the server and the in-process baseline (0: leave as is).",
)
@output_options
def main(n: int, concurrency: str, requests: int, duration: float, encoder: str,
         batch_wait_ms: float, seed: int, threads: int, as_json: bool, out: Path | None, smoke: bool,
         plot: Path | None) -> None:  # fmt: skip
    """Measure text-search throughput and latency of the HTTP API on loopback."""
    if smoke:
        n, requests, duration = 2000, 60, 8.0
    levels = parse_ints(concurrency)
    if threads > 0:  # before torch/faiss load; the server subprocess inherits it
        os.environ["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="embedstore-load-") as tmp:
        data_dir = Path(tmp) / "data"
        click.echo(f"writing {n} vectors ...", err=True)
        base = fill_store(data_dir, n, encoder, seed)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(data_dir, encoder, port, batch_wait_ms)
        rows = []
        try:
            wait_ready(url, proc)
            asyncio.run(_load(url, 2, 10, 60))  # warm up: model, index, connections
            for c in levels:
                before = server_totals(url)
                row = asyncio.run(_load(url, c, requests, duration))
                inside = server_row(before, server_totals(url))
                rows.append({
                    "concurrency": c, **{k: round(v, 3) for k, v in row.items()},
                    **{k: round(v, 2) for k, v in inside.items()},
                    "p50_over_search_call": round(row["p50_ms"] / max(inside["search_call_ms"], 1e-3), 1),
                    "p50_over_store_inproc": round(row["p50_ms"] / base["store_search_ms"], 1),
                })  # fmt: skip
                click.echo(f"concurrency {c}: {row['rps']:.1f} req/s", err=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    params = {"n": n, "encoder": encoder, "k": 10, "requests_cap": requests,
              "duration_cap_s": duration, "batch_wait_ms": batch_wait_ms, "seed": seed,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "server": "uvicorn 1 worker on 127.0.0.1, client in the same machine",
              **{k: round(v, 3) for k, v in base.items()}}  # fmt: skip
    emit(result_doc("load", params, rows), as_json=as_json, out=out, plot=None)


if __name__ == "__main__":
    main()

"""Text-search latency in process and through the HTTP API, at 1, 8 and 32 concurrent clients.

A collection of ``--n`` synthetic vectors (clustered, like real embeddings) is written straight
into a fresh store. First ``Engine.search(text=...)`` is timed in this process from 1, 8 and 32
threads; then ``uvicorn --factory embedstore.api:create_app`` serves the same store on 127.0.0.1
from a subprocess and the same number of clients send the same JSON text searches. Each row gives
both p50/p99 and their difference: what HTTP, JSON, the batchers and the thread hops add on top
of the engine. The HTTP client is a minimal keep-alive HTTP/1.1 client on asyncio streams, so the
figures are the server's, not a client library's; ``/healthz`` p50 (one client) is the floor.
CPU time per request (this process in process; the server process over HTTP) shows the overhead
apart from scheduling delays, which dominate latency on a loaded machine.

    python -m benchmarks.load --n 1861 --json
    python -m benchmarks.load --smoke --json
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click
import numpy as np

from benchmarks.common import emit, output_options, parse_ints, result_doc, synthetic_clustered

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "load"
SEARCH_PATH = f"/v1/collections/{COLLECTION}/search"


def fill_store(data_dir: Path, n: int, encoder: str, seed: int) -> dict[str, float]:
    """Write ``n`` synthetic vectors into a fresh store; returns the fill time and dimension."""
    from embedstore.config import Settings
    from embedstore.engine import Engine
    from embedstore.store import NewItem, NewVector

    engine = Engine(Settings(data_dir=data_dir, encoder=encoder, device="cpu", workers=0))
    coll = engine.create_collection(COLLECTION, encoder=encoder)
    dim = coll.dim
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
    engine.close()
    return {"fill_s": fill_s, "dim": dim}


def _summary(latencies: list[float], wall: float, errors: int) -> dict[str, float]:
    lat = np.asarray(latencies) * 1e3
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}  # fmt: skip


def _thread_level(
    engine: Any, concurrency: int, requests: int, duration: float
) -> dict[str, float]:
    """``concurrency`` threads calling ``Engine.search(text=...)`` until the cap or the deadline."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def client() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            try:
                hits = engine.search(COLLECTION, text=f"query {i}", k=10)
            except Exception:  # counted, not timed
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)
            errors += len(hits) != 10

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t0, cpu0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = _summary(latencies, time.perf_counter() - t0, errors)
    out["cpu_ms_per_req"] = 1e3 * (time.process_time() - cpu0) / max(len(latencies), 1)
    return out


def in_process(
    data_dir: Path, encoder: str, levels: list[int], requests: int, duration: float
) -> dict[int, dict[str, float]]:
    """``Engine.search(text=...)`` from ``c`` threads at once, for each ``c`` in ``levels``."""
    from embedstore.config import Settings
    from embedstore.engine import Engine

    engine = Engine(Settings(data_dir=data_dir, encoder=encoder, device="cpu", workers=0))
    for i in range(20):  # warm up: model, index, row cache
        engine.search(COLLECTION, text=f"warm up {i}", k=10)
    out = {}
    for c in levels:
        out[c] = _thread_level(engine, c, requests, duration)
        click.echo(f"in process, {c} clients: {out[c]['p50_ms']:.2f} ms p50", err=True)
    engine.close()
    return out


class Connection:
    """One keep-alive HTTP/1.1 connection: a request out, the status and body back."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        length = {k.strip().lower(): v.strip() for k, v in headers.items()}.get("content-length")
        if length is None:
            raise click.ClickException(f"{method} {path}: answer without Content-Length")
        return status, await self.reader.readexactly(int(length))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _http_level(
    port: int, concurrency: int, requests: int, duration: float, call: Callable[[int], Any]
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    deadline = time.perf_counter() + duration
    conns = [Connection("127.0.0.1", port) for _ in range(concurrency)]

    async def client(conn: Connection) -> None:
        nonlocal errors
        for i in counter:
            if time.perf_counter() > deadline:
                return
            method, path, body = call(i)
            t0 = time.perf_counter()
            try:
                status, _ = await conn.request(method, path, body)
            except (OSError, asyncio.IncompleteReadError):  # counted, not timed
                errors += 1
                conn.close()
                conn.reader = conn.writer = None
                continue
            latencies.append(time.perf_counter() - t0)
            errors += status != 200

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    wall = time.perf_counter() - t0
    for c in conns:
        c.close()
    return _summary(latencies, wall, errors)


def search_call(i: int) -> tuple[str, str, Any]:
    return "POST", SEARCH_PATH, {"text": f"query {i}", "k": 10}


def health_call(i: int) -> tuple[str, str, Any]:
    return "GET", "/healthz", None


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Poll ``/healthz`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
            status = asyncio.run(_http_level(port, 1, 1, 10, health_call))["errors"]
            if status == 0:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise click.ClickException("server did not become healthy")


SERIES = {
    "encode_calls": r'embedstore_encode_batch_size_count\{[^}]*modality="text"\}',
    "encode_items": r'embedstore_encode_batch_size_sum\{[^}]*modality="text"\}',
    "search_calls": r"embedstore_search_batch_size_count",
    "search_items": r"embedstore_search_batch_size_sum",
}


def server_totals(port: int) -> dict[str, float]:
    """Encoder and index call counters of the text-search path so far, from ``/metrics``."""

    async def get() -> bytes:
        conn = Connection("127.0.0.1", port)
        try:
            return (await conn.request("GET", "/metrics"))[1]
        finally:
            conn.close()

    text = asyncio.run(get()).decode()
    out = {}
    for name, pattern in SERIES.items():
        m = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
        out[name] = float(m.group(1)) if m else 0.0
    return out


def batch_sizes(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean encoder and index batch sizes inside the server between two scrapes."""
    d = {k: after[k] - before[k] for k in after}
    return {"mean_encode_batch": d["encode_items"] / max(d["encode_calls"], 1),
            "mean_search_batch": d["search_items"] / max(d["search_calls"], 1)}  # fmt: skip


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--n", type=int, default=1861, show_default=True, help="Stored vectors.")
@click.option("--concurrency", default="1,8,32", show_default=True, help="Client counts.")
@click.option("--requests", type=int, default=2000, show_default=True, help="Per level (cap).")
@click.option(
    "--duration", type=float, default=20.0, show_default=True, help="Seconds per level (cap)."
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
    """Text-search p50/p99: ``Engine.search`` in process against the HTTP API on loopback."""
    if smoke:
        n, requests, duration = 2000, 60, 8.0
    levels = parse_ints(concurrency)
    if threads > 0:  # before torch/faiss load; the server subprocess inherits it
        os.environ["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="embedstore-load-") as tmp:
        data_dir = Path(tmp) / "data"
        click.echo(f"writing {n} vectors ...", err=True)
        base = fill_store(data_dir, n, encoder, seed)
        local = in_process(data_dir, encoder, levels, requests, duration)
        port = _free_port()
        proc = start_server(data_dir, encoder, port, batch_wait_ms)
        rows = []
        try:
            wait_ready(port, proc)
            asyncio.run(_http_level(port, 2, 40, 60, search_call))  # warm up: model, index
            health = asyncio.run(_http_level(port, 1, 500, duration, health_call))
            for c in levels:
                before, cpu0 = server_totals(port), process_cpu_s(proc.pid)
                row = asyncio.run(_http_level(port, c, requests, duration, search_call))
                server_cpu = process_cpu_s(proc.pid) - cpu0  # includes 2 /metrics scrapes
                inside = batch_sizes(before, server_totals(port))
                mine = local[c]
                rows.append({
                    "clients": c,
                    "inproc_p50_ms": round(mine["p50_ms"], 2),
                    "http_p50_ms": round(row["p50_ms"], 2),
                    "p50_diff_ms": round(row["p50_ms"] - mine["p50_ms"], 2),
                    "inproc_p99_ms": round(mine["p99_ms"], 2),
                    "http_p99_ms": round(row["p99_ms"], 2),
                    "inproc_rps": round(mine["rps"], 1),
                    "http_rps": round(row["rps"], 1),
                    "inproc_cpu_ms": round(mine["cpu_ms_per_req"], 2),
                    "server_cpu_ms": round(1e3 * server_cpu / max(row["requests"], 1), 2),
                    "http_requests": row["requests"],
                    "errors": int(row["errors"] + mine["errors"]),
                    **{k: round(v, 2) for k, v in inside.items()},
                })  # fmt: skip
                click.echo(f"HTTP, {c} clients: {row['p50_ms']:.2f} ms p50", err=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    params = {"n": n, "encoder": encoder, "k": 10, "requests_cap": requests,
              "duration_cap_s": duration, "batch_wait_ms": batch_wait_ms, "seed": seed,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "server": "uvicorn 1 worker on 127.0.0.1, client in the same machine",
              "healthz_p50_ms": round(health["p50_ms"], 3),
              **{k: round(v, 3) for k, v in base.items()}}  # fmt: skip
    emit(result_doc("load", params, rows), as_json=as_json, out=out, plot=None)


if __name__ == "__main__":
    main()

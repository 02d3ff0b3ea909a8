"""Wall time of consecutive folder adds through the HTTP API (the server's decode pool).

A real ``uvicorn --factory embedstore.api:create_app`` serves a fresh data folder on 127.0.0.1
from a subprocess, with ``--workers`` decode processes. After a one-file add (the model loads,
decoded in the request thread), ``--adds`` folders of ``--files`` distinct JPEG crops of the
real reference photos (``../shared/fixtures``) are added one after another with
``POST /v1/collections/bench/items {"path": ...}``; each add's wall time is recorded. With more
than 16 changed files an add decodes in worker processes: before the shared pool every such add
started (and stopped) its own; now the server starts one pool on the first and reuses it.

``--before DIR`` serves from a second source checkout (e.g. ``git worktree add /tmp/before
<commit>``, with ``../shared`` beside it) too; the checkouts alternate round by round, so that
load from other processes hits both alike.

    python -m benchmarks.api_adds --json
    python -m benchmarks.api_adds --rounds 3 --before /tmp/before/main --out result.json
    python -m benchmarks.api_adds --smoke --json
"""

from __future__ import annotations

import os
import socket
import statistics
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

from benchmarks.common import ROOT, emit, output_options, result_doc
from benchmarks.ingest import make_images


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(checkout: Path, data_dir: Path, root: Path, port: int, workers: int) -> Any:
    """uvicorn on 127.0.0.1 serving ``checkout``'s embedstore, configured through the env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDSTORE_")}
    env.update(
        EMBEDSTORE_DATA_DIR=str(data_dir), EMBEDSTORE_ENCODER="imagebind_test",
        EMBEDSTORE_DEVICE="cpu", EMBEDSTORE_WORKERS=str(workers), EMBEDSTORE_ROOTS=str(root),
        PYTHONPATH=str(checkout),
    )  # fmt: skip
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "embedstore.api:create_app",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=checkout, env=env)


def wait_ready(url: str, proc: Any, timeout: float = 120) -> None:
    """Poll ``/healthz`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise click.ClickException("server did not become healthy")


def run_adds(
    checkout: Path, tmp: Path, library: Path, adds: int, workers: int
) -> tuple[list[float], list[dict[str, Any]]]:
    """Serve from ``checkout`` and add the library's folders one by one: seconds and reports."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(checkout, tmp, library, port, workers)
    try:
        wait_ready(url, proc)
        with httpx.Client(base_url=url, timeout=600) as http:
            r = http.post("/v1/collections", json={"name": "bench"})
            r.raise_for_status()
            warm = http.post("/v1/collections/bench/items", json={"path": str(library / "warm")})
            warm.raise_for_status()  # one file: the model loads; decoded in the request thread
            times, reports = [], []
            for i in range(adds):
                t0 = time.perf_counter()
                r = http.post("/v1/collections/bench/items", json={"path": str(library / f"{i}")})
                times.append(time.perf_counter() - t0)
                r.raise_for_status()
                reports.append(r.json()["report"])
        return times, reports
    finally:
        proc.terminate()
        proc.wait(60)


@click.command()
@click.option("--adds", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--files", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--size", default=256, show_default=True, help="Side of the JPEG crops (px).")
@click.option(
    "--workers",
    default=max(1, (os.cpu_count() or 2) - 1),
    show_default="CPU cores - 1, the server's default",
    type=click.IntRange(min=0),
)
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--before",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Another source checkout to serve alternately with this one.",
)
@output_options
def main(
    adds: int,
    files: int,
    size: int,
    workers: int,
    rounds: int,
    before: Path | None,
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
) -> None:
    """Time consecutive folder adds through the HTTP API."""
    if smoke:
        adds, files, size, rounds = 2, 17, 64, 1
    checkouts = {"this": ROOT} | ({"before": before.resolve()} if before else {})
    runs: dict[str, list[list[float]]] = {name: [] for name in checkouts}
    added: dict[str, int] = {name: 0 for name in checkouts}
    failed: dict[str, int] = {name: 0 for name in checkouts}
    dedup: dict[str, int] = {name: 0 for name in checkouts}
    with tempfile.TemporaryDirectory(prefix="embedstore-bench-") as tmp:
        library = Path(tmp) / "library"
        crops = make_images(Path(tmp) / "crops", 1 + adds * files, size)  # distinct crops
        for j, p in enumerate(crops):
            folder = library / ("warm" if j == 0 else f"{(j - 1) // files}")
            folder.mkdir(parents=True, exist_ok=True)
            p.rename(folder / p.name)
        for r in range(rounds):
            for name, checkout in checkouts.items():
                data = Path(tmp) / f"data-{name}-{r}"
                times, reports = run_adds(checkout, data, library, adds, workers)
                runs[name].append(times)
                added[name] += sum(rep["added"] for rep in reports)
                failed[name] += sum(len(rep["failed"]) for rep in reports)
                dedup[name] += sum(rep["deduplicated"] for rep in reports)
    rows = []
    for name, per_round in runs.items():
        totals = [sum(t) for t in per_round]
        rows.append(
            {
                "checkout": name,
                "adds": adds,
                "files_per_add": files,
                "workers": workers,
                "total_s_median": round(statistics.median(totals), 3),
                "first_add_s_median": round(statistics.median(t[0] for t in per_round), 3),
                "later_add_s_median": round(
                    statistics.median(x for t in per_round for x in t[1:]), 3
                )
                if adds > 1
                else None,
                "added": added[name],
                "deduplicated": dedup[name],
                "failed": failed[name],
                "runs": [[round(x, 3) for x in t] for t in per_round],
            }
        )
    params = {
        "adds": adds,
        "files": files,
        "size": size,
        "workers": workers,
        "rounds": rounds,
        "before": str(before) if before else None,
    }
    emit(result_doc("api_adds", params, rows), as_json=as_json, out=out, plot=plot)


if __name__ == "__main__":
    main()

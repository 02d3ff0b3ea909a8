"""The real entry point in a subprocess: exit codes, JSON on stdout, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from ingest_media import many_images

ROOT = Path(__file__).resolve().parents[2]
GATED_CLI = Path(__file__).resolve().parent / "gated_cli.py"


def run_cli(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "--device", "cpu", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "EMBEDSTORE_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}


def test_index_and_search_through_python_m_cli(env: dict[str, str], library: Path) -> None:
    (library / "junk.png").write_bytes(b"not an image")
    done = run_cli(
        "index", library, "-c", "media", "--encoder", "imagebind_test", "--json", env=env
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["added"] == 9 and [f["uri"] for f in report["failed"]] == [
        str(library / "junk.png")
    ]
    assert "skipping " in done.stderr
    found = run_cli(
        "search", "a bird", "-c", "media", "-k", "4", "--in", "vision,audio", "--json", env=env
    )
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 4 and {h["modality"] for h in hits} <= {"vision", "audio"}
    missing = run_cli("search", "x", "-c", "nope", env=env)
    assert missing.returncode == 3 and missing.stderr.startswith("Error: ")


def _committed(data_dir: Path) -> int:
    """Items committed so far, read straight from the SQLite file (cheap enough to poll)."""
    db = data_dir / "embedstore.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM items WHERE status = 'ok'").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def _interrupt_at_gate(
    args: list[str], env: dict[str, str], data_dir: Path, at: int, sig: int
) -> tuple[subprocess.Popen[bytes], int]:
    """Run ``embedstore index`` paused after ``at`` queued items (gated_cli.py); signal it there.

    The run waits at the gate until it gets ``sig``, so it cannot finish first on a fast machine,
    and the test waits for the gate and for ``at`` new commits, so no timing is assumed.
    Returns the process and the number of items it had handed to the writer.
    """
    flag = data_dir.parent / f"gate-{sig}"
    gate = {**env, "TEST_INDEX_GATE_AT": str(at), "TEST_INDEX_GATE_FILE": str(flag)}
    committed_before = _committed(data_dir)
    proc = subprocess.Popen(
        [sys.executable, str(GATED_CLI), *args],
        cwd=ROOT,
        env=gate,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while not (flag.exists() and _committed(data_dir) >= committed_before + at):
        assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the index run never reached its gate"
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc, int(flag.read_text())


@pytest.mark.slow
def test_ctrl_c_and_kill_during_index_then_resume(
    env: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    total = 48
    lib = many_images(tmp_path / "big", total, size=96)
    args = ["--device", "cpu", "index", str(lib), "-c", "big", "--encoder", "imagebind_test"]
    args += ["--batch-size", "8", "--workers", "1", "--json"]
    proc, queued = _interrupt_at_gate(args, env, data_dir, 8, signal.SIGINT)
    assert proc.returncode == 130
    assert b"run the same command to resume" in proc.stderr.read()  # type: ignore[union-attr]
    after_ctrl_c = _committed(data_dir)
    # Ctrl-C commits every batch handed to the writer, and the batches the model had finished
    assert queued <= after_ctrl_c <= queued + 2 * 8 < total
    proc, queued = _interrupt_at_gate(args, env, data_dir, 8, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    before = _committed(data_dir)
    assert after_ctrl_c + 8 <= before <= after_ctrl_c + queued < total
    done = run_cli("index", lib, "-c", "big", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["unchanged"] == before and report["added"] == total - before
    assert report["failed"] == [] and _committed(data_dir) == total


def test_serve_answers_on_loopback(env: dict[str, str], library: Path) -> None:
    done = run_cli(
        "index", library / "images", "-c", "media", "--encoder", "imagebind_test", env=env
    )
    assert done.returncode == 0, done.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "--device", "cpu", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.3)
        assert health.status_code == 200
        listed = httpx.get(f"http://127.0.0.1:{port}/v1/collections", timeout=10)
        assert listed.status_code == 200, listed.text
        assert [c["name"] for c in listed.json()] == ["media"]
    finally:
        server.terminate()
        server.wait(timeout=30)

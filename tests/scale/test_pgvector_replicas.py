"""Two API server processes (real uvicorn) on one pgvector catalog: stateless replicas."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from ingest_media import many_images

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def replica(url: str, data_dir: Path) -> Iterator[str]:
    """``embedstore serve`` in its own process and data folder; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "EMBEDSTORE_DATABASE_URL": url,
        "EMBEDSTORE_DATA_DIR": str(data_dir),
        "EMBEDSTORE_ENCODER": "imagebind_test",
        "EMBEDSTORE_DEVICE": "cpu",
        "EMBEDSTORE_WORKERS": "0",
        "OMP_NUM_THREADS": "1",
    }
    log = (data_dir.parent / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"replica exited: {proc.returncode}"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "replica did not start"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def test_an_item_added_through_one_replica_is_found_through_the_other(
    pgvector_url: str, coll_name: str, tmp_path: Path
) -> None:
    photos = many_images(tmp_path / "photos", 3, size=96)
    with ExitStack() as stack:
        a = stack.enter_context(replica(pgvector_url, tmp_path / "a"))
        b = stack.enter_context(replica(pgvector_url, tmp_path / "b"))
        made = httpx.post(
            f"{a}/v1/collections",
            json={"name": coll_name, "encoder": "imagebind_test", "index_backend": "pgvector"},
            timeout=60,
        )
        assert made.status_code == 201 and made.json()["index_backend"] == "pgvector", made.text
        shown = httpx.get(f"{b}/v1/collections/{coll_name}", timeout=60).json()
        assert shown["index_backend"] == "pgvector"
        for photo in sorted(photos.iterdir()):
            with photo.open("rb") as f:
                added = httpx.post(
                    f"{a}/v1/collections/{coll_name}/items",
                    files={"file": (photo.name, f, "image/png")},
                    timeout=120,
                )
            assert added.status_code == 201, added.text
            ids = added.json()["ids"]
            # at once, through the other replica: no index file, no refresh interval
            hits = httpx.post(
                f"{b}/v1/collections/{coll_name}/search",
                json={"item_id": ids[0], "k": 5},
                timeout=120,
            )
            assert hits.status_code == 200, hits.text
            with photo.open("rb") as f:
                same = httpx.post(
                    f"{b}/v1/collections/{coll_name}/search",
                    files={"file": (photo.name, f, "image/png")},
                    data={"k": "1"},
                    timeout=120,
                )
            assert same.status_code == 200, same.text
            assert same.json()["results"][0]["id"] == ids[0]
        assert not (tmp_path / "b" / "indexes").exists() or not any(
            (tmp_path / "b" / "indexes").rglob("*.index")
        )  # replica b served it with no index file of its own
        httpx.delete(f"{a}/v1/collections/{coll_name}", timeout=60)

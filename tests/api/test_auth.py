"""API keys: required when configured, optional only on loopback, read from EMBEDSTORE_API_KEYS."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from embedstore.api import create_app
from embedstore.config import Settings
from embedstore.errors import InvalidConfig

ROOT = Path(__file__).resolve().parents[2]


def test_keys_are_required_when_configured(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"api_keys": "k-one, k-two"})
    with TestClient(create_app(settings)) as client:
        missing = client.get("/v1/collections")
        assert missing.status_code == 401 and missing.json()["type"] == "Unauthorized"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.get("/v1/collections", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["detail"] == "Invalid API key"
        basic = client.get("/v1/collections", headers={"Authorization": "Basic azE6"})
        assert basic.status_code == 401
        for key in ("k-one", "k-two"):
            ok = client.get("/v1/collections", headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200
        assert client.get("/metrics").status_code == 401
        assert client.get("/healthz").status_code == 200  # probes need no key
        search = client.post("/v1/collections/x/search", json={"text": "red"})
        assert search.status_code == 401  # auth is checked before anything else


def test_anonymous_access_only_on_loopback(api_settings: Settings) -> None:
    with TestClient(create_app(api_settings)) as client:
        assert client.get("/v1/collections").status_code == 200
    with pytest.raises(InvalidConfig, match="EMBEDSTORE_API_KEYS"):
        create_app(api_settings.model_copy(update={"host": "0.0.0.0"}))
    with pytest.raises(InvalidConfig):
        create_app(api_settings.model_copy(update={"allow_anonymous_loopback": False}))


def test_remote_clients_need_a_key_even_on_a_loopback_config(api_settings: Settings) -> None:
    app = create_app(api_settings)
    with TestClient(app, client=("203.0.113.7", 5000)) as client:
        assert client.get("/v1/collections").status_code == 401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_uvicorn_factory_reads_keys_from_the_environment(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EMBEDSTORE_")},
        "EMBEDSTORE_DATA_DIR": str(tmp_path / "data"),
        "EMBEDSTORE_ENCODER": "imagebind_test",
        "EMBEDSTORE_DEVICE": "cpu",
        "EMBEDSTORE_API_KEYS": "s3cret,other",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "embedstore.api:create_app",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        assert httpx.get(f"{url}/v1/collections").status_code == 401
        bad = httpx.get(f"{url}/v1/collections", headers={"Authorization": "Bearer s3cre"})
        assert bad.status_code == 401
        good = httpx.get(f"{url}/v1/collections", headers={"Authorization": "Bearer other"})
        assert good.status_code == 200 and good.json() == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)

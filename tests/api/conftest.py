"""API fixtures: real media files under an allowed root, an app on real SQLite, a real server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from embedstore.api import create_app
from embedstore.config import Settings

from .mediafiles import png_bytes, wav_bytes

torch.set_num_threads(2)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """An allowed root with two images, a tone and a text file."""
    root = tmp_path / "media"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "red.png").write_bytes(png_bytes((255, 0, 0)))
    (root / "photos" / "blue.png").write_bytes(png_bytes((0, 0, 255)))
    (root / "tone.wav").write_bytes(wav_bytes())
    (root / "note.txt").write_text("a short note about a red square")
    (tmp_path / "outside.png").write_bytes(png_bytes((0, 255, 0)))
    return root.resolve()


@pytest.fixture
def api_settings(settings: Settings, media: Path) -> Settings:
    """Tiny encoder on CPU, real SQLite in tmp, the media folder as the only root."""
    return settings.model_copy(update={"roots": str(media), "batch_wait_ms": 5.0})


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as c:
        yield c


@pytest.fixture
def photos(client: TestClient, media: Path) -> TestClient:
    """A collection ``photos`` holding red.png, blue.png and tone.wav."""
    assert client.post("/v1/collections", json={"name": "photos"}).status_code == 201
    for rel in ("photos/red.png", "photos/blue.png", "tone.wav"):
        r = client.post("/v1/collections/photos/items", json={"path": str(media / rel)})
        assert r.status_code == 201, r.text
    return client


@contextmanager
def serve(settings: Settings, app: FastAPI | None = None) -> Iterator[str]:
    """Run the app (default: ``create_app(settings)``) under a real uvicorn on 127.0.0.1 (a free
    port) in a thread; yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = app if app is not None else create_app(settings)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def server(api_settings: Settings) -> Iterator[str]:
    with serve(api_settings) as url:
        yield url

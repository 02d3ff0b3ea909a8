"""Roots that hold over HTTP: every walked file is confined, encoder names cannot name server
paths, and with API keys set only the probes answer without one (docs included)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi.testclient import TestClient

from embedstore.api import create_app
from embedstore.bind.bound import CONFIG_FILE, FORMAT
from embedstore.config import Settings

from .mediafiles import png_bytes


def test_a_folder_add_never_embeds_files_outside_the_roots(
    client: TestClient, media: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "green.png").write_bytes(png_bytes((0, 255, 0)))
    (secret / "notes.txt").write_text("the secret plans")
    os.symlink("../../secret", media / "photos" / "out")  # inside the root, leading out
    os.symlink(tmp_path / "outside.png", media / "photos" / "leak.png")
    assert client.post("/v1/collections", json={"name": "c"}).status_code == 201
    r = client.post("/v1/collections/c/items", json={"path": str(media / "photos")})
    assert r.status_code == 201, r.text
    report = r.json()["report"]
    assert report["added"] == 2 and not report["failed"]
    assert sorted(report["skipped"]) == [
        f"skipping {media}/photos/leak.png: outside {media}/photos",
        f"skipping {media}/photos/out: outside {media}/photos",
    ]
    uris = [i["uri"] for i in client.get("/v1/collections/c/items").json()]
    assert sorted(uris) == [f"{media}/photos/blue.png", f"{media}/photos/red.png"]
    hits = client.post("/v1/collections/c/search", json={"text": "secret plans", "k": 10}).json()
    assert all("secret" not in h["uri"] and "leak" not in h["uri"] for h in hits["results"])


def _bound_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    config = {"format": FORMAT, "modality": "thermal", "base_encoder": "imagebind_test"}
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    return folder


def test_encoder_names_cannot_name_server_paths(
    client: TestClient, api_settings: Settings, tmp_path: Path
) -> None:
    inside = _bound_folder(api_settings.data_dir / "bound" / "mine")
    elsewhere = _bound_folder(tmp_path / "elsewhere")

    def create(name: str, encoder: str) -> int:
        body = {"name": name, "encoder": encoder}
        return client.post("/v1/collections", json=body).status_code

    assert create("a", "imagebind_test") == 201
    assert create("b", "bound:mine") == 201
    assert create("c", f"bound:{inside}") == 201
    assert create("d", f"bound:{elsewhere}") == 403  # a valid bound folder, outside the data dir
    assert create("e", "bound:../elsewhere") == 403
    assert create("f", "openclip:/etc/passwd") == 403
    assert create("g", "no_such_encoder") == 422
    names = [c["name"] for c in client.get("/v1/collections").json()]
    assert names == ["a", "b", "c"]


def test_keys_guard_the_docs_too(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"api_keys": "k1"})
    key = {"Authorization": "Bearer k1"}
    with TestClient(create_app(settings)) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers=key).status_code == 200, path
        assert "/v1/collections" in client.get("/openapi.json", headers=key).json()["paths"]
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 401
    opened = settings.model_copy(update={"public_docs": True})
    with TestClient(create_app(opened)) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 200, path
        assert client.get("/v1/collections").status_code == 401


def test_docs_stay_open_to_local_clients_without_keys(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200

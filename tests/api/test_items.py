"""Adding (path or upload), getting, removing items, and serving their media."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from embedstore.api import create_app
from embedstore.config import Settings

from .mediafiles import mp4_bytes, npy_bytes, png_bytes, wav_bytes


def test_add_by_path_then_get_list_and_remove(photos: TestClient, media: Path) -> None:
    items = photos.get("/v1/collections/photos/items").json()
    by_name = {Path(i["uri"]).name: i for i in items}
    assert set(by_name) == {"red.png", "blue.png", "tone.wav"}
    assert by_name["tone.wav"]["modality"] == "audio" and by_name["red.png"]["modality"] == "vision"

    red = by_name["red.png"]
    assert photos.get(f"/v1/collections/photos/items/{red['id']}").json()["uri"] == red["uri"]
    assert photos.get("/v1/collections/photos").json()["items"] == 3

    assert photos.delete(f"/v1/collections/photos/items/{red['id']}").status_code == 204
    gone = photos.get(f"/v1/collections/photos/items/{red['id']}")
    assert gone.status_code == 404 and gone.json()["type"] == "ItemNotFound"
    assert photos.delete(f"/v1/collections/photos/items/{red['id']}").status_code == 404
    assert (media / "photos" / "red.png").exists()  # files under the roots are never deleted


def test_add_a_folder(client: TestClient, media: Path) -> None:
    client.post("/v1/collections", json={"name": "all"})
    r = client.post("/v1/collections/all/items", json={"path": "photos"})  # relative to a root
    assert r.status_code == 201 and r.json()["report"]["added"] == 2


def test_paths_outside_the_roots_are_refused(photos: TestClient, media: Path) -> None:
    os.symlink(media.parent / "outside.png", media / "link.png")
    os.symlink(media.parent, media / "up")
    for path in ("../outside.png", str(media / ".." / "outside.png"), str(media.parent / "outside.png"),
                 str(media / "link.png"), "up/outside.png", "/etc/passwd"):  # fmt: skip
        r = photos.post("/v1/collections/photos/items", json={"path": path})
        assert r.status_code == 403, path
        assert r.json()["type"] == "PathNotAllowed"
    missing = photos.post("/v1/collections/photos/items", json={"path": "photos/nope.png"})
    assert missing.status_code == 404


def test_server_side_paths_are_off_without_roots(settings: Settings, media: Path) -> None:
    with TestClient(create_app(settings)) as client:
        client.post("/v1/collections", json={"name": "c"})
        r = client.post("/v1/collections/c/items", json={"path": str(media / "tone.wav")})
    assert r.status_code == 403 and "EMBEDSTORE_ROOTS" in r.json()["detail"]


def test_upload_with_metadata_then_fetch_media_and_thumbnail(client: TestClient) -> None:
    client.post("/v1/collections", json={"name": "up"})
    data = png_bytes((0, 200, 0), size=600)
    r = client.post(
        "/v1/collections/up/items",
        files={"file": ("green.png", data, "image/png")},
        data={"metadata": json.dumps({"year": 2024, "tag": "grass"})},
    )
    assert r.status_code == 201, r.text
    (item_id,) = r.json()["ids"]
    item = client.get(f"/v1/collections/up/items/{item_id}").json()
    assert item["modality"] == "vision"
    assert item["metadata"]["name"] == "green.png"  # the client's file name, not the stored one
    assert item["metadata"]["year"] == 2024 and item["metadata"]["tag"] == "grass"

    media = client.get(f"/v1/collections/up/items/{item_id}/media")
    assert media.status_code == 200 and media.content == data
    assert media.headers["content-type"] == "image/png"
    thumb = client.get(f"/v1/collections/up/items/{item_id}/thumbnail")
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256

    assert client.delete(f"/v1/collections/up/items/{item_id}").status_code == 204
    assert client.get(f"/v1/collections/up/items/{item_id}/media").status_code == 404


def test_audio_has_media_but_no_thumbnail(photos: TestClient) -> None:
    items = photos.get("/v1/collections/photos/items").json()
    tone = next(i for i in items if i["modality"] == "audio")
    assert photos.get(f"/v1/collections/photos/items/{tone['id']}/media").content == wav_bytes()
    r = photos.get(f"/v1/collections/photos/items/{tone['id']}/thumbnail")
    assert r.status_code == 415 and r.json()["type"] == "UnsupportedMediaType"


def test_bad_uploads(client: TestClient) -> None:
    client.post("/v1/collections", json={"name": "up"})
    url = "/v1/collections/up/items"
    corrupt = client.post(url, files={"file": ("bad.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)})
    assert corrupt.status_code == 422 and corrupt.json()["type"] == "InvalidMedia"
    assert "bad.png" in corrupt.json()["detail"]
    exe = client.post(url, files={"file": ("tool.exe", b"MZ\x90\x00\x03" + b"\x00" * 64)})
    assert exe.status_code == 415 and exe.json()["type"] == "UnsupportedMediaType"
    renamed = client.post(url, files={"file": ("notes.png", b"just some text")})
    assert renamed.status_code == 415 and "notes.png" in renamed.json()["detail"]
    empty = client.post(url, files={"file": ("e.png", b"")})
    assert empty.status_code == 422
    wrong = client.post(
        url, files={"file": ("a.png", png_bytes((1, 2, 3)))}, data={"modality": "audio"}
    )
    assert wrong.status_code == 415
    unknown = client.post(
        url, files={"file": ("a.png", png_bytes((1, 2, 3)))}, data={"modality": "smell"}
    )
    assert unknown.status_code == 422 and unknown.json()["type"] == "UnknownModality"
    meta = client.post(
        url, files={"file": ("a.png", png_bytes((1, 2, 3)))}, data={"metadata": "[1]"}
    )
    assert meta.status_code == 400
    nofile = client.post(url, data={"modality": "vision"}, files={"other": ("x", b"x")})
    assert nofile.status_code == 400
    text = client.post(url, content=b"hello", headers={"content-type": "text/plain"})
    assert text.status_code == 415
    missing = client.post(
        "/v1/collections/nope/items", files={"file": ("a.png", png_bytes((1, 2, 3)))}
    )
    assert missing.status_code == 404
    assert client.get("/v1/collections/up").json()["items"] == 0


def test_uploads_over_the_limit_answer_413(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"max_upload_bytes": 10_000})
    with TestClient(create_app(settings)) as client:
        client.post("/v1/collections", json={"name": "up"})
        big = png_bytes((9, 9, 9), size=2000)
        assert len(big) > 10_000
        r = client.post("/v1/collections/up/items", files={"file": ("big.png", big)})
        assert r.status_code == 413 and r.json()["type"] == "PayloadTooLarge"
        s = client.post("/v1/collections/up/search", files={"file": ("big.png", big)})
        assert s.status_code == 413


@pytest.mark.slow
def test_video_upload_thumbnail_and_search_by_clip(client: TestClient) -> None:
    client.post("/v1/collections", json={"name": "clips"})
    video = mp4_bytes(seconds=2.0)
    added = client.post("/v1/collections/clips/items", files={"file": ("fade.mp4", video)})
    assert added.status_code == 201, added.text
    (item_id,) = added.json()["ids"]
    assert client.get(f"/v1/collections/clips/items/{item_id}").json()["modality"] == "video"
    thumb = client.get(f"/v1/collections/clips/items/{item_id}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"

    r = client.post("/v1/collections/clips/search", files={"file": ("q.mp4", video)})
    assert r.status_code == 200, r.text
    hit = r.json()["results"][0]
    assert hit["id"] == item_id and hit["score"] > 0.9
    assert 0 <= hit["start"] < hit["end"] <= 2.0 + 1e-6  # the matching clip's time span


def test_npy_uploads_name_their_modality(client: TestClient) -> None:
    client.post("/v1/collections", json={"name": "sensors"})
    url = "/v1/collections/sensors/items"
    rng = np.random.default_rng(0)
    depth = npy_bytes(rng.random((64, 64), dtype=np.float32))
    imu = npy_bytes(rng.standard_normal((6, 2000)).astype(np.float32))
    unnamed = client.post(url, files={"file": ("scan.npy", depth)})
    assert unnamed.status_code == 422 and unnamed.json()["field"] == "modality"
    for modality, data in (("depth", depth), ("imu", imu)):
        r = client.post(url, files={"file": ("x.npy", data)}, data={"modality": modality})
        assert r.status_code == 201, r.text
        hit = client.post(
            "/v1/collections/sensors/search",
            files={"file": ("q.npy", data)},
            data={"modality": modality, "modalities": modality},
        ).json()["results"][0]
        assert hit["id"] == r.json()["ids"][0] and hit["modality"] == modality

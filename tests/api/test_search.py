"""Search by text, uploaded file, stored item and raw vector; filters, pagination and limits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from .mediafiles import png_bytes, wav_bytes


def _search(client: TestClient, **body: object) -> dict:
    r = client.post("/v1/collections/photos/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_text_search_contract(photos: TestClient) -> None:
    out = _search(photos, text="a red square", k=5)
    assert len(out["results"]) == 3 and out["took_ms"] >= 0
    hit = out["results"][0]
    assert {"id", "uri", "modality", "score", "metadata"} <= set(hit)
    scores = [h["score"] for h in out["results"]]
    assert scores == sorted(scores, reverse=True)
    audio = _search(photos, text="a tone", k=5, modalities=["audio"])["results"]
    assert [Path(h["uri"]).name for h in audio] == ["tone.wav"]
    assert audio[0]["modality"] == "audio"


def test_pagination_and_where(photos: TestClient, media: Path) -> None:
    full = _search(photos, text="colour", k=3)["results"]
    page = _search(photos, text="colour", k=1, offset=1)["results"]
    assert [h["id"] for h in page] == [full[1]["id"]]
    only = _search(photos, text="colour", k=5, where={"uri": {"prefix": str(media / "photos")}})
    assert {Path(h["uri"]).name for h in only["results"]} == {"red.png", "blue.png"}


def test_search_by_upload_item_and_vector(photos: TestClient) -> None:
    red = photos.post(
        "/v1/collections/photos/search",
        files={"file": ("q.png", png_bytes((255, 0, 0)))},
        data={"k": "2", "modalities": "vision"},
    )
    assert red.status_code == 200, red.text
    top = red.json()["results"][0]
    assert Path(top["uri"]).name == "red.png" and top["score"] > 0.99  # the same pixels

    tone = photos.post(
        "/v1/collections/photos/search",
        files={"file": ("q.wav", wav_bytes())},
        data={"modality": "audio", "where": json.dumps({"modality": "audio"})},
    )
    assert Path(tone.json()["results"][0]["uri"]).name == "tone.wav"

    similar = _search(photos, item_id=top["id"], k=3)["results"]
    assert len(similar) == 2 and top["id"] not in {h["id"] for h in similar}  # neighbours only

    dim = photos.get("/v1/collections/photos").json()["dim"]
    vector = np.random.default_rng(0).normal(size=dim).tolist()
    assert len(_search(photos, vector=vector, k=2)["results"]) == 2


def test_search_errors(photos: TestClient, client: TestClient) -> None:
    url = "/v1/collections/photos/search"

    def check(status: int, kind: str | None = None, **kw: object) -> None:
        r = photos.post(url, **kw)  # type: ignore[arg-type]
        assert r.status_code == status, r.text
        if kind:
            assert r.json()["type"] == kind

    check(400, "InvalidQuery", json={"text": "x" * 1001})
    check(400, "InvalidQuery", json={"text": "red", "k": 1001})
    check(400, "InvalidQuery", json={"text": "red", "k": 900, "offset": 200})
    check(400, "InvalidQuery", json={"text": "red", "vector": [0.1]})
    check(400, "InvalidQuery", json={})
    check(409, "DimensionMismatch", json={"vector": [0.1, 0.2]})
    check(422, None, json={"text": "red", "k": 0})
    check(422, None, json={"text": "red", "colour": "blue"})
    check(422, "UnknownModality", json={"text": "red", "modalities": ["smell"]})
    check(404, "ItemNotFound", json={"item_id": 123456})
    check(415, "UnsupportedMediaType", content=b"red", headers={"content-type": "text/plain"})
    check(415, "UnsupportedMediaType", files={"file": ("x.bin", b"\x7fELF\x02\x01\x01\x00")})
    corrupt = photos.post(url, files={"file": ("bad.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)})
    assert corrupt.status_code in (415, 422) and "bad.png" in corrupt.json()["detail"]
    check(400, "InvalidQuery", files={"other": ("a.png", png_bytes((1, 1, 1)))})
    check(422, None, files={"file": ("a.png", png_bytes((1, 1, 1)))}, data={"where": "{bad"})
    check(422, None, files={"file": ("a.png", png_bytes((1, 1, 1)))}, data={"k": "many"})
    missing = client.post("/v1/collections/nope/search", json={"text": "red"})
    assert missing.status_code == 404 and missing.json()["type"] == "CollectionNotFound"

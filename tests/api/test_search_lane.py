"""JSON searches take the short path (``embedstore/api/search_lane.py``) and answer exactly as the
FastAPI route does: same keys, validation errors, limits, error bodies, metrics and CORS headers."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from embedstore.api import create_app
from embedstore.config import Settings

from .conftest import serve

SEARCH = "/v1/collections/photos/search"


def test_json_search_through_a_real_server_and_its_metrics(
    photos: TestClient, api_settings: Settings
) -> None:
    with serve(api_settings) as url, httpx.Client(base_url=url, timeout=120) as http:
        r = http.post(SEARCH, json={"text": "a red square", "k": 2})  # the first loads the model
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert len(body["results"]) == 2 and body["took_ms"] >= 0
        assert {"id", "uri", "score", "start", "end"} <= set(body["results"][0])
        # a vendor JSON type is JSON too
        vendor = http.post(
            SEARCH,
            content=b'{"text": "blue", "k": 1}',
            headers={"Content-Type": "application/vnd.example+json; charset=utf-8"},
        )
        assert vendor.status_code == 200 and len(vendor.json()["results"]) == 1
        metrics = http.get("/metrics").text
    label = 'method="POST",route="/v1/collections/{name}/search",status="200"'
    assert f"embedstore_http_requests_total{{{label}}} 2.0" in metrics, [
        line for line in metrics.splitlines() if line.startswith("embedstore_http_requests_total")
    ]


def test_bad_bodies_get_the_framework_422(photos: TestClient) -> None:
    bad_json = photos.post(
        SEARCH, content=b'{"text": ', headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 422
    assert bad_json.json()["detail"][0]["type"] == "json_invalid"
    extra = photos.post(SEARCH, json={"text": "red", "colour": "red"})
    assert extra.status_code == 422
    assert extra.json()["detail"][0]["loc"] == ["body", "colour"]
    bad_k = photos.post(SEARCH, json={"text": "red", "k": 0})
    assert bad_k.status_code == 422 and bad_k.json()["detail"][0]["loc"] == ["body", "k"]


def test_our_errors_keep_their_status_body_and_field(photos: TestClient) -> None:
    missing = photos.post("/v1/collections/nope/search", json={"text": "red"})
    assert missing.status_code == 404 and missing.json()["type"] == "CollectionNotFound"
    two = photos.post(SEARCH, json={"text": "red", "item_id": 1})
    assert two.status_code == 400 and "exactly one" in two.json()["detail"]
    wrong_dim = photos.post(SEARCH, json={"vector": [1.0, 2.0]})
    assert wrong_dim.status_code == 409 and wrong_dim.json()["field"] == "vector"
    keyword = photos.post(SEARCH, json={"vector": [1.0], "mode": "keyword"})
    assert keyword.status_code == 400 and keyword.json()["field"] == "mode"


def test_keys_and_cors_apply_to_json_searches(api_settings: Settings) -> None:
    settings = api_settings.model_copy(
        update={"api_keys": "k-one", "cors_origins": "https://app.example"}
    )
    key = {"Authorization": "Bearer k-one"}
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/collections", json={"name": "photos"}, headers=key).is_success
        refused = client.post(SEARCH, content=b"not even JSON", headers={
            "Content-Type": "application/json", "Authorization": "Bearer nope"})  # fmt: skip
        assert refused.status_code == 401  # the key is checked before the body is read
        assert refused.headers["www-authenticate"] == "Bearer"
        ok = client.post(
            SEARCH, json={"text": "red"}, headers={**key, "Origin": "https://app.example"}
        )
        assert ok.status_code == 200 and ok.json()["results"] == []
        assert ok.headers["access-control-allow-origin"] == "https://app.example"


def test_uploads_and_other_routes_still_go_through_the_router(photos: TestClient) -> None:
    from .mediafiles import png_bytes

    files = {"file": ("red.png", png_bytes((255, 0, 0)), "image/png")}
    upload = photos.post(SEARCH, files=files, data={"k": "1"})
    assert upload.status_code == 200
    assert upload.json()["results"][0]["uri"].endswith("red.png")
    plain = photos.post(SEARCH, content=b"red", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415 and plain.json()["type"] == "UnsupportedMediaType"
    slash = photos.post(SEARCH + "/", json={"text": "red"}, follow_redirects=False)
    assert slash.status_code == 307 and slash.headers["location"].endswith(SEARCH)


def test_json_search_under_a_root_path(api_settings: Settings) -> None:
    """Behind a proxy that mounts the API at /api (uvicorn --root-path /api)."""
    with TestClient(create_app(api_settings), root_path="/api") as client:
        assert client.post("/api/v1/collections", json={"name": "photos"}).status_code == 201
        r = client.post("/api" + SEARCH, json={"text": "red"})
        assert r.status_code == 200 and r.json()["results"] == []
        metrics = client.get("/api/metrics").text
    assert 'route="/v1/collections/{name}/search",status="200"' in metrics

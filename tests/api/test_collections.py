"""Health, encoders, collections and the error contract, through TestClient."""

from __future__ import annotations

from fastapi.testclient import TestClient

from embedstore.api import create_app
from embedstore.config import Settings


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["store"] == "ok"


def test_encoders_are_listed(client: TestClient) -> None:
    encoders = {e["name"]: e for e in client.get("/v1/encoders").json()}
    assert encoders["imagebind_test"]["dim"] > 0
    assert "vision" in encoders["imagebind_test"]["modalities"]


def test_collection_lifecycle(client: TestClient) -> None:
    created = client.post("/v1/collections", json={"name": "photos"})
    assert created.status_code == 201
    assert created.json()["encoder"] == "imagebind_test" and created.json()["items"] == 0
    assert [c["name"] for c in client.get("/v1/collections").json()] == ["photos"]
    assert client.get("/v1/collections/photos").json()["dim"] == created.json()["dim"]

    again = client.post("/v1/collections", json={"name": "photos"})
    assert again.status_code == 409
    assert again.json()["type"] == "CollectionExists" and "photos" in again.json()["detail"]
    assert (
        client.post("/v1/collections", json={"name": "photos", "exist_ok": True}).status_code == 201
    )

    assert client.delete("/v1/collections/photos").status_code == 204
    gone = client.get("/v1/collections/photos")
    assert gone.status_code == 404 and gone.json()["type"] == "CollectionNotFound"
    assert client.delete("/v1/collections/photos").status_code == 404


def test_bad_collection_requests(client: TestClient) -> None:
    unknown = client.post("/v1/collections", json={"name": "x", "encoder": "no_such_model"})
    assert unknown.status_code == 422 and unknown.json()["type"] == "UnknownEncoder"
    bad_name = client.post("/v1/collections", json={"name": "../etc"})
    assert bad_name.status_code == 422 and "detail" in bad_name.json()  # FastAPI validation
    not_json = client.post(
        "/v1/collections", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422


def test_unexpected_errors_answer_500_without_a_traceback(api_settings: Settings) -> None:
    app = create_app(api_settings)

    def broken() -> None:
        raise RuntimeError("secret internals at /srv/db")

    with TestClient(app) as client:
        app.state.api.engine.store.collections = broken
        r = client.get("/v1/collections")
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error", "type": "InternalError"}
    assert "secret" not in r.text and "Traceback" not in r.text


def test_json_bodies_over_the_limit_answer_413(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"max_json_bytes": 200})
    with TestClient(create_app(settings)) as client:
        client.post("/v1/collections", json={"name": "photos"})
        r = client.post("/v1/collections/photos/search", json={"text": "x" * 500})
    assert r.status_code == 413 and r.json()["type"] == "PayloadTooLarge"


def test_metrics_count_requests_by_route(client: TestClient) -> None:
    client.get("/v1/collections")
    client.get("/v1/collections/nope")
    text = client.get("/metrics").text
    assert (
        'embedstore_http_requests_total{method="GET",route="/v1/collections",status="200"}' in text
    )
    assert 'route="/v1/collections/{name}",status="404"' in text
    assert "embedstore_http_request_duration_seconds_bucket" in text


def test_two_apps_keep_separate_metrics(api_settings: Settings) -> None:
    with TestClient(create_app(api_settings)) as a, TestClient(create_app(api_settings)) as b:
        a.get("/v1/collections")
        assert 'route="/v1/collections"' in a.get("/metrics").text
        assert 'route="/v1/collections"' not in b.get("/metrics").text


def test_cors_is_off_by_default_and_configurable(api_settings: Settings) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(api_settings)) as client:
        r = client.options("/v1/collections", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    settings = api_settings.model_copy(update={"cors_origins": "https://app.example"})
    with TestClient(create_app(settings)) as client:
        r = client.options("/v1/collections", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_missing_weights_answer_503(client: TestClient) -> None:
    created = client.post("/v1/collections", json={"name": "clip", "encoder": "openclip_vit_b_32"})
    assert created.status_code == 201  # creating checks the registry; weights load on first use
    r = client.post("/v1/collections/clip/search", json={"text": "a dog"})
    assert r.status_code == 503 and r.json()["type"] == "WeightsNotFound"
    assert "openclip_vit_b_32" in r.json()["detail"]


def test_readiness_fails_when_the_catalog_does_not_answer(api_settings: Settings) -> None:
    app = create_app(api_settings)

    def down() -> None:
        raise OSError("database is locked")

    with TestClient(app) as client:
        app.state.api.engine.store.collections = down
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["store"] == "error: OSError"
        assert client.get("/healthz").status_code == 200

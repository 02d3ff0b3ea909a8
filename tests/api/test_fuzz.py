"""Fuzz every operation of the OpenAPI schema: whatever the input, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from embedstore.api import create_app
from embedstore.config import Settings


@pytest.fixture
def fuzz_schema(api_settings: Settings, media: Path) -> Iterator[object]:
    app = create_app(api_settings)
    with TestClient(app) as client:  # a collection with items, so deep paths are reachable
        client.post("/v1/collections", json={"name": "photos"})
        client.post("/v1/collections/photos/items", json={"path": "photos"})
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: schemathesis.Case) -> None:
    if (
        case.path_parameters
        and "name" in case.path_parameters
        and case.operation.method != "delete"
    ):
        case.path_parameters["name"] = "photos"  # reach the code behind the collection lookup
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"

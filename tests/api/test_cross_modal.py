"""Cross-modal search through the HTTP API with an encoder whose vectors mean something.

A folder of pictures, sounds and captions (dog, car, bird) is added by path; JSON text searches
and multipart uploads of other files (a mirrored photo, another second of a recording) must find
the matching item of another modality first: never the query itself, which is not stored.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from class_encoder import CLASSES, class_encoder, other_photo, other_sound  # noqa: F401
from fastapi.testclient import TestClient

from embedstore.api import create_app
from embedstore.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from ingest_media import make_library  # noqa: E402


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path / "lib").resolve()


@pytest.fixture
def client(
    settings: Settings,
    library: Path,
    class_encoder: str,  # noqa: F811
) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"roots": str(library), "encoder": class_encoder}))
    with TestClient(app) as c:
        yield c


def _hits(response) -> list[dict]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    hits = response.json()["results"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    return hits


def _upload(client: TestClient, path: Path, only: str) -> list[dict]:
    files = {"file": (path.name, path.read_bytes())}
    return _hits(
        client.post(
            "/v1/collections/media/search", files=files, data={"k": "3", "modalities": only}
        )
    )


@pytest.mark.slow
def test_captions_and_sounds_find_their_pictures_over_http(
    client: TestClient, library: Path, tmp_path: Path
) -> None:
    assert client.post("/v1/collections", json={"name": "media"}).status_code == 201
    added = client.post("/v1/collections/media/items", json={"path": str(library)})
    assert added.status_code == 201, added.text
    report = added.json()["report"]
    assert report["added"] == 9 and report["failed"] == []
    for name in CLASSES:
        picture = str(library / "images" / f"{name}.png")
        body = {"text": f"the {name}", "k": 3, "modalities": ["vision"]}
        hits = _hits(client.post("/v1/collections/media/search", json=body))
        assert hits[0]["uri"] == picture and {h["modality"] for h in hits} == {"vision"}
        assert hits[0]["score"] > hits[1]["score"] + 0.5, hits

        later = other_sound(name, tmp_path / f"{name}-later.wav")
        assert _upload(client, later, "vision")[0]["uri"] == picture
        assert _upload(client, later, "text")[0]["uri"] == str(library / f"{name}.txt")

        mirrored = other_photo(name, tmp_path / f"{name}-mirrored.png")
        hits = _upload(client, mirrored, "audio")
        assert hits[0]["uri"] == str(library / "sounds" / f"{name}.wav"), hits

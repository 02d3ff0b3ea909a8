"""``languagebind_test`` end to end on real media: CLI index and search, the engine, the HTTP API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from testdata import LANGUAGEBIND_FIXTURES, require_data

ENCODER = "languagebind_test"
FILES = {  # library path -> fixture file (LanguageBind's own assets and test inputs)
    "images/kid.jpg": "assets/image/0.jpg",
    "images/car.jpg": "inputs/car_image.jpg",
    "sounds/speech.wav": "assets/audio/0.wav",
    "sounds/car.wav": "inputs/car_audio.wav",
    "clips/portrait.mov": "inputs/video_portrait_230x367_10f.mov",
    "depth/room.png": "assets/depth/0.png",
    "thermal/street.jpg": "assets/thermal/0.jpg",
}


@pytest.fixture
def lb_library(tmp_path: Path) -> Path:
    require_data(
        LANGUAGEBIND_FIXTURES, f"LanguageBind fixtures not found at {LANGUAGEBIND_FIXTURES}"
    )
    root = tmp_path / "lb"
    for rel, src in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(LANGUAGEBIND_FIXTURES / src, root / rel)
    (root / "caption.txt").write_text("A car parked in the street.\n", encoding="utf-8")
    return root


@pytest.fixture
def indexed(invoke, lb_library: Path) -> Path:
    out = invoke(
        "index",
        lb_library,
        "-c",
        "lb",
        "--encoder",
        ENCODER,
        "--json",
        "--rule",
        "depth/**=depth",
        "--rule",
        "thermal/**=thermal",
    )
    report = json.loads(out.stdout)
    assert report["added"] == len(FILES) + 1 and not report["failed"], report
    return lb_library


def hits_of(invoke, *args) -> list[dict]:
    return json.loads(invoke("search", *args, "-c", "lb", "--json").stdout)


def test_cli_index_and_search_any_to_any(invoke, indexed: Path) -> None:
    hits = hits_of(invoke, "a car in the street", "-k", "20")
    assert {h["modality"] for h in hits} == {"vision", "audio", "depth", "thermal", "text"}
    assert {h["uri"] for h in hits} == {str(indexed / rel) for rel in [*FILES, "caption.txt"]}
    for rel, modality in [
        ("images/car.jpg", None),
        ("sounds/speech.wav", None),
        ("depth/room.png", "depth"),
        ("thermal/street.jpg", "thermal"),
        ("clips/portrait.mov", None),
    ]:
        extra = ["--modality", modality] if modality else []
        top = hits_of(invoke, "--file", indexed / rel, *extra, "-k", "1")[0]
        assert top["uri"] == str(indexed / rel)
        assert top["score"] == pytest.approx(1.0, abs=1e-4)
    video = [
        h for h in hits if h["uri"].endswith(".mov")
    ]  # one clip of 8 frames: 10 frames at 10 fps
    assert video[0]["start"] == 0.0 and video[0]["end"] == pytest.approx(1.0)


def test_the_collection_uses_the_languagebind_recipe(indexed: Path, settings) -> None:
    """Stored vectors are the encoder's output on the LanguageBind preprocessing, not ImageBind's."""
    from embedstore.encoders import create_encoder
    from embedstore.engine import Engine
    from embedstore.modalities import load

    engine = Engine(settings)
    enc = create_encoder(ENCODER, device="cpu")
    for rel, modality in [
        ("images/kid.jpg", "vision"),
        ("sounds/speech.wav", "audio"),
        ("depth/room.png", "depth"),
    ]:
        ours = enc.encode(modality, load(modality, indexed / rel, recipe="languagebind")[None])
        top = engine.search("lb", vector=ours[0], k=1)[0]
        assert top.uri == str(indexed / rel) and top.score == pytest.approx(1.0, abs=1e-4)
    # ImageBind's depth recipe (disparity) gives another vector: the stored one is not it
    path = indexed / "depth/room.png"
    other = enc.encode("depth", load("depth", path).expand(3, -1, -1)[None])  # (1, H, W) map
    ours = enc.encode("depth", load("depth", path, recipe="languagebind")[None])
    assert float(np.dot(other[0], ours[0])) < 0.99


def test_collections_of_the_two_families_never_mix(invoke, indexed: Path) -> None:
    out = invoke("index", indexed, "-c", "lb", "--encoder", "imagebind_test", ok=False)
    assert out.exit_code != 0


def test_api_adds_and_searches_uploads_with_the_recipe(lb_library: Path, settings) -> None:
    from fastapi.testclient import TestClient

    from embedstore.api import create_app

    s = settings.model_copy(update={"roots": str(lb_library), "batch_wait_ms": 5.0})
    with TestClient(create_app(s)) as client:
        r = client.post("/v1/collections", json={"name": "lb", "encoder": ENCODER})
        assert r.status_code == 201, r.text
        for rel in ("images/kid.jpg", "images/car.jpg", "sounds/car.wav"):
            r = client.post("/v1/collections/lb/items", json={"path": str(lb_library / rel)})
            assert r.status_code == 201, r.text
        data = (lb_library / "images/car.jpg").read_bytes()
        r = client.post(
            "/v1/collections/lb/search", files={"file": ("q.jpg", data)}, data={"k": "2"}
        )
        assert r.status_code == 200, r.text
        top = r.json()["results"][0]
        assert top["uri"] == str(lb_library / "images/car.jpg")
        assert top["score"] == pytest.approx(1.0, abs=1e-4)
        r = client.post("/v1/collections/lb/search", json={"text": "a car", "k": 3})
        assert r.status_code == 200 and len(r.json()["results"]) == 3


def test_reindex_moves_a_collection_between_the_families(invoke, lb_library: Path) -> None:
    invoke(
        "index",
        lb_library / "images",
        lb_library / "sounds",
        "-c",
        "mix",
        "--encoder",
        "imagebind_test",
    )
    invoke("reindex", "-c", "mix", "--encoder", ENCODER)
    top = json.loads(
        invoke(
            "search", "--file", lb_library / "sounds/car.wav", "-k", "1", "-c", "mix", "--json"
        ).stdout
    )[0]
    assert top["uri"] == str(lb_library / "sounds/car.wav")
    assert top["score"] == pytest.approx(1.0, abs=1e-4)  # re-embedded with the LanguageBind recipe
    assert json.loads(invoke("collections", "show", "mix").stdout)["encoder"] == ENCODER


def test_bind_anchors_use_the_base_family_recipe(lb_library: Path) -> None:
    from embedstore.bind.inputs import embed_anchors
    from embedstore.encoders import create_encoder
    from embedstore.modalities import load

    enc = create_encoder(ENCODER, device="cpu")
    path = lb_library / "sounds/car.wav"
    ok, emb = embed_anchors(enc, "audio", [path])
    expected = enc.encode("audio", load("audio", path, recipe="languagebind")[None])
    assert ok == [0] and np.allclose(emb, expected, atol=1e-6)

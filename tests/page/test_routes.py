"""The page's routes (no browser): the HTML with its security headers, the modules, the icon,
and the upload a browser recording makes (WebM/Opus searched as audio)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from api.mediafiles import png_bytes
from fastapi.testclient import TestClient

from embedstore.api import create_app
from embedstore.config import Settings


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def webm_opus(seconds: float = 1.0, rate: int = 48000) -> bytes:
    """A WebM file holding one Opus audio track (what Chromium's MediaRecorder produces)."""
    import av

    t = np.arange(int(seconds * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=rate)
        stream.layout = "mono"
        for i in range(0, len(tone), 960):
            frame = av.AudioFrame.from_ndarray(tone[None, i : i + 960], format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def test_page_is_served_with_a_strict_content_security_policy(app_client: TestClient) -> None:
    r = app_client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp
    assert "'unsafe-inline'" not in csp
    for name in ("app.js", "api.js", "state.js", "render.js", "npy.js"):
        js = app_client.get(f"/static/{name}")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"], name
    assert app_client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert app_client.get("/favicon.ico").headers["content-type"] == "image/svg+xml"
    assert app_client.get("/static/../app.py").status_code == 404


def test_page_needs_no_key_but_its_api_calls_do(settings: Settings) -> None:
    keyed = settings.model_copy(update={"api_keys": "sesame"})
    with TestClient(create_app(keyed)) as client:
        assert client.get("/").status_code == 200
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/v1/collections").status_code == 401


def test_a_browser_recording_searches_as_audio(app_client: TestClient) -> None:
    """WebM is sniffed as video; a recording names modality=audio and its Opus track is decoded."""
    assert app_client.post("/v1/collections", json={"name": "c"}).status_code == 201
    added = app_client.post(
        "/v1/collections/c/items", files={"file": ("red.png", png_bytes((255, 0, 0)))}
    )
    assert added.status_code == 201, added.text
    r = app_client.post(
        "/v1/collections/c/search",
        files={"file": ("recording.webm", webm_opus(), "audio/webm;codecs=opus")},
        data={"modality": "audio", "k": "3"},
    )
    assert r.status_code == 200, r.text
    assert [h["modality"] for h in r.json()["results"]] == ["vision"]
    image_as_audio = app_client.post(
        "/v1/collections/c/search",
        files={"file": ("red.png", png_bytes((255, 0, 0)))},
        data={"modality": "audio"},
    )
    assert image_as_audio.status_code == 415


def test_thumbnails_of_transparent_pictures_lie_on_white(app_client: TestClient) -> None:
    """Stamps and icons are RGBA PNGs whose transparent pixels hold arbitrary colours."""
    from PIL import Image

    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0] = 255  # invisible red everywhere...
    rgba[16:48, 16:48] = (0, 0, 255, 255)  # ...and an opaque blue square
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG")
    assert app_client.post("/v1/collections", json={"name": "c"}).status_code == 201
    added = app_client.post("/v1/collections/c/items", files={"file": ("icon.png", out.getvalue())})
    item_id = added.json()["ids"][0]
    thumb = app_client.get(f"/v1/collections/c/items/{item_id}/thumbnail")
    pixels = np.asarray(Image.open(io.BytesIO(thumb.content)).convert("RGB"), dtype=np.int16)
    # JPEG (quality 85) keeps flat areas within a few levels; 12 leaves room for chroma rounding.
    assert np.abs(pixels[2, 2] - (255, 255, 255)).max() <= 12
    assert np.abs(pixels[32, 32] - (0, 0, 255)).max() <= 12

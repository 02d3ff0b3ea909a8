"""Keyword/hybrid search and ``POST /v1/collections/{name}/ask`` (server-sent events) over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from embedstore.api import create_app
from embedstore.config import Settings
from embedstore.hybrid import reciprocal_rank_fusion
from embedstore.types import SearchResult

from .conftest import serve

pytest.importorskip("transformers", reason="the [llava] extra is not installed")


@pytest.fixture
def ask_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(update={"generator": "llava_test", "ask_max_answer_tokens": 12})


def library(client: TestClient, media: Path, caption: bool = True) -> TestClient:
    """Collection ``photos``: two pictures, a tone and a note, the pictures captioned."""
    r = client.post("/v1/collections", json={"name": "photos", "exist_ok": True})
    assert r.status_code in (200, 201), r.text
    for rel in ("photos/red.png", "photos/blue.png", "tone.wav", "note.txt"):
        r = client.post("/v1/collections/photos/items", json={"path": str(media / rel)})
        assert r.status_code in (200, 201), r.text
    if caption:
        engine = client.app.state.api.engine  # type: ignore[attr-defined]
        assert engine.caption("photos", "llava_test").captioned == 2
    return client


@pytest.fixture
def asked(ask_settings: Settings, media: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ask_settings)) as c:
        yield library(c, media)


def events(lines: Iterator[str]) -> list[tuple[str, dict]]:
    """Parse a server-sent event stream into (event, data) pairs."""
    out, event, data = [], None, []
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and event is not None:
            out.append((event, json.loads("\n".join(data))))
            event, data = None, []
    return out


def ask(client: TestClient, **body: object) -> list[tuple[str, dict]]:
    with client.stream("POST", "/v1/collections/photos/ask", json=body) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return events(r.iter_lines())


def search(client: TestClient, **body: object) -> list[dict]:
    r = client.post("/v1/collections/photos/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()["results"]


@pytest.mark.slow
def test_keyword_and_hybrid_search(asked: TestClient, media: Path) -> None:
    keyword = search(asked, text="a red square", mode="keyword", k=50)
    assert keyword[0]["uri"] == str(media / "note.txt")
    vector = search(asked, text="a red square", k=50)
    hybrid = search(asked, text="a red square", mode="hybrid", k=3)

    def hits(rows: list[dict]) -> list[SearchResult]:
        return [SearchResult(r["id"], r["uri"], r["modality"], r["score"]) for r in rows]

    fused = reciprocal_rank_fusion([hits(vector), hits(keyword)], 60.0)[:3]
    assert [h["id"] for h in hybrid] == [h.id for h in fused]
    pics = search(asked, text="a red square", mode="hybrid", modalities=["vision"], k=5)
    assert {Path(h["uri"]).suffix for h in pics} == {".png"}
    bad = asked.post(
        "/v1/collections/photos/search", json={"vector": [0.0] * 64, "mode": "keyword"}
    )
    assert bad.status_code == 400 and bad.json()["field"] == "mode"
    assert (
        asked.post("/v1/collections/photos/search", json={"text": "x", "mode": "fuzzy"}).status_code
        == 422
    )


@pytest.mark.slow
def test_ask_streams_items_tokens_and_done(asked: TestClient) -> None:
    stream = ask(asked, question="What colour is the square?", k=3)
    kinds = [e for e, _ in stream]
    assert kinds[0] == "items" and kinds[-1] == "done" and set(kinds[1:-1]) == {"token"}
    items = stream[0][1]["items"]
    done = stream[-1][1]
    assert 1 <= len(items) <= 3 and done["items"] == items
    assert done["answer"] == "".join(d["text"] for e, d in stream if e == "token").strip()
    stored = {r["id"]: r["uri"] for r in asked.get("/v1/collections/photos/items").json()}
    assert all(stored[i["id"]] == i["uri"] for i in items)
    only = ask(asked, question="What colour is the square?", modalities=["vision"])
    assert {Path(i["uri"]).suffix for i in only[0][1]["items"]} == {".png"}


@pytest.mark.slow
def test_ask_limits_and_errors(asked: TestClient) -> None:
    def post(**body: object) -> httpx.Response:
        return asked.post("/v1/collections/photos/ask", json=body)

    assert post(question="x" * 1001).status_code == 400  # max_query_chars
    assert post(question="colour?", k=100_000).json()["field"] == "k"  # max_k
    assert post(question="colour?", model="llava:/elsewhere").status_code == 422
    assert post(question="colour?", modalities=["smell"]).status_code == 422
    assert asked.post("/v1/collections/nope/ask", json={"question": "x"}).status_code == 404
    assert post(question="").status_code == 422


@pytest.mark.slow
def test_ask_picture_prompt_and_time_limits(ask_settings: Settings, media: Path) -> None:
    # no pictures allowed and no captions: only the note has words a model can read
    no_pictures = ask_settings.model_copy(update={"ask_max_images": 0})
    with TestClient(create_app(no_pictures)) as c:
        library(c, media, caption=False)
        items = ask(c, question="What colour is the square?", k=4)[0][1]["items"]
        assert [Path(i["uri"]).name for i in items] == ["note.txt"]
    tight = ask_settings.model_copy(update={"ask_max_prompt_tokens": 16})
    with TestClient(create_app(tight)) as c:
        library(c, media, caption=False)
        r = c.post("/v1/collections/photos/ask", json={"question": "What colour is it?"})
        assert r.status_code == 400 and "ask_max_prompt_tokens" in r.json()["detail"]
    hurried = ask_settings.model_copy(update={"ask_timeout_s": 1e-6, "ask_max_answer_tokens": 200})
    with TestClient(create_app(hurried)) as c:
        library(c, media, caption=False)
        tokens = [e for e, _ in ask(c, question="colour?")].count("token")
        assert tokens <= 2  # generation stops at its first check of the time limit


@pytest.mark.slow
def test_ask_over_a_real_server(ask_settings: Settings, media: Path) -> None:
    with TestClient(create_app(ask_settings)) as c:
        library(c, media)  # the catalog lives in the data folder both apps share
    with serve(ask_settings) as url, httpx.Client(timeout=120) as http:
        with http.stream(
            "POST", f"{url}/v1/collections/photos/ask", json={"question": "colour?"}
        ) as r:
            assert r.status_code == 200
            assert r.headers["cache-control"] == "no-cache"
            raw = "".join(r.iter_text())
    blocks = [b for b in raw.split("\n\n") if b]
    assert blocks[0].startswith("event: items\ndata: {")
    assert blocks[-1].startswith("event: done\ndata: {")
    assert all(b.count("\n") == 1 for b in blocks)  # one event line, one data line each

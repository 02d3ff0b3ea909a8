"""The API under concurrency, with explicit gates: batching behind a busy model, deadlines,
decode pools, and the upload transaction."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from waiting import until

from embedstore.api import create_app
from embedstore.config import Settings
from embedstore.encoders import create_encoder, register_encoder
from embedstore.encoders.registry import _ENCODERS

from .conftest import serve
from .mediafiles import png_bytes

GATED = "gated_test"


class Gate:
    """Holds the first model call until opened; ``entered`` is set once that call is inside."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()

    def wrap(self, encode: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        def gated(modality: str, batch: Any) -> np.ndarray:
            if not self.entered.is_set():
                self.entered.set()
                assert self.open.wait(60), "the test never opened the gate"
            return encode(modality, batch)

        return gated


@pytest.fixture
def gate() -> Iterator[Gate]:
    """A real ``imagebind_test`` model registered as ``gated_test``, its first call gated."""
    g = Gate()

    def factory(**kw: Any) -> Any:
        enc = create_encoder("imagebind_test", **kw)
        enc.encode = g.wrap(enc.encode)  # type: ignore[method-assign]
        return enc

    info = _ENCODERS["imagebind_test"]
    register_encoder(GATED, family="test", dim=info.dim, modalities=info.modalities, replace=True)(
        factory
    )
    yield g
    g.open.set()
    _ENCODERS.pop(GATED, None)


def _counter(text: str, series: str) -> float:
    m = re.search(rf'^{series}\{{encoder="{GATED}",modality="text"\}} (\S+)$', text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def test_queries_behind_a_busy_model_share_one_call_over_http(
    api_settings: Settings, gate: Gate
) -> None:
    # a window of an hour: a batch leaves when the model frees up, never by the clock
    settings = api_settings.model_copy(update={"batch_wait_ms": 3_600_000})
    app = create_app(settings)
    state = app.state.api
    with serve(settings, app) as url:
        with httpx.Client(base_url=url, timeout=60) as http:
            r = http.post("/v1/collections", json={"name": "g", "encoder": GATED})
            assert r.status_code == 201, r.text

        def search(i: int) -> int:
            with httpx.Client(base_url=url, timeout=60) as http:
                r = http.post("/v1/collections/g/search", json={"text": f"query {i}", "k": 1})
                return r.status_code

        with ThreadPoolExecutor(max_workers=9) as pool:
            first = pool.submit(search, 0)
            assert gate.entered.wait(60)  # the first query holds the (idle) model
            rest = [pool.submit(search, i) for i in range(1, 9)]
            until(lambda: state.batcher.queued((GATED, "text")) == 8, "8 queries queue")
            gate.open.set()
            codes = [first.result(), *(f.result() for f in rest)]
        assert codes == [200] * 9
        metrics = httpx.get(f"{url}/metrics").text
    assert _counter(metrics, "embedstore_encode_batch_size_sum") == 9
    assert _counter(metrics, "embedstore_encode_batch_size_count") == 2  # 1, then the 8 together


def test_a_search_that_gets_no_answer_ends_with_a_504(api_settings: Settings, gate: Gate) -> None:
    settings = api_settings.model_copy(update={"request_timeout_s": 0.5})
    app = create_app(settings)
    with TestClient(app) as client:
        assert (
            client.post("/v1/collections", json={"name": "g", "encoder": GATED}).status_code == 201
        )
        r = client.post("/v1/collections/g/search", json={"text": "stuck", "k": 1})
        assert r.status_code == 504
        assert r.json()["type"] == "RequestTimeout" and "request_timeout_s" in r.json()["detail"]
        gate.open.set()  # the model frees up: the next search is answered
        until(lambda: not app.state.api.engine.model_busy(), "the held call ends")
        assert (
            client.post("/v1/collections/g/search", json={"text": "free", "k": 1}).status_code
            == 200
        )


def test_an_upload_with_metadata_is_written_once(client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "up"}).status_code == 201
    writes: list[str] = []
    engine = client.app.state.api.engine  # type: ignore[attr-defined]

    def record(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if sql.lstrip().upper().startswith(("INSERT INTO VECTORS", "DELETE FROM VECTORS")):
            writes.append(sql.split("(")[0].strip())

    event.listen(engine.store.engine, "before_cursor_execute", record)
    r = client.post(
        "/v1/collections/up/items",
        files={"file": ("sunset.png", png_bytes((250, 120, 0)))},
        data={"metadata": '{"album": "holiday"}'},
    )
    assert r.status_code == 201, r.text
    assert len(writes) == 1, writes  # the vectors were written once, with the metadata
    item = client.get(f"/v1/collections/up/items/{r.json()['ids'][0]}").json()
    assert item["metadata"]["name"] == "sunset.png" and item["metadata"]["album"] == "holiday"


def test_small_adds_by_path_start_no_decode_pool(
    api_settings: Settings, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decode pool's start-up costs more than decoding a few files (docs/api.md)."""
    import multiprocessing.context as mpc

    from embedstore.ingest.run import IN_THREAD_MAX_FILES

    started: list[str] = []
    real = mpc.ForkServerProcess._Popen

    def spy(process_obj: Any) -> Any:  # counts, then starts the real process
        started.append(process_obj.name)
        return real(process_obj)

    monkeypatch.setattr(mpc.ForkServerProcess, "_Popen", staticmethod(spy))
    with TestClient(create_app(api_settings.model_copy(update={"workers": 1}))) as client:
        assert client.post("/v1/collections", json={"name": "one"}).status_code == 201
        one = client.post("/v1/collections/one/items", json={"path": str(media / "photos/red.png")})
        assert one.status_code == 201 and one.json()["report"]["added"] == 1
        assert started == []
        folder = client.post("/v1/collections/one/items", json={"path": str(media / "photos")})
        assert folder.status_code == 201 and folder.json()["report"]["added"] == 1
        assert started == [], "a folder with one new file decodes it in the request thread"
        many = media / "many"
        many.mkdir()
        for i in range(IN_THREAD_MAX_FILES + 1):  # distinct pictures, so none is deduplicated
            (many / f"{i:02d}.png").write_bytes(png_bytes((i * 7, 255 - i * 5, 40)))
        big = client.post("/v1/collections/one/items", json={"path": str(many)})
        assert big.status_code == 201
        assert big.json()["report"]["added"] == IN_THREAD_MAX_FILES + 1
        assert started, "a larger folder decodes in the pool"

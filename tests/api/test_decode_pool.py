"""The server's one decode pool: shared by folder adds, concurrent adds kept apart, a crashed
worker replaced, nothing left running after shutdown. A real uvicorn on loopback, real PNGs."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context as mpc
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tolerances import SAME_CPU
from waiting import process_gone, until

from embedstore.api import create_app
from embedstore.config import Settings
from embedstore.encoders import create_encoder, register_encoder
from embedstore.encoders.registry import _ENCODERS
from embedstore.ingest.run import IN_THREAD_MAX_FILES

from .conftest import serve
from .mediafiles import png_bytes

HELD = "held_test"
N = IN_THREAD_MAX_FILES + 1  # the smallest add that decodes in the pool


def _folder(root: Path, name: str, n: int, shade: int) -> Path:
    """``n`` distinct solid-colour PNGs (none deduplicated; ``shade`` keeps folders apart)."""
    folder = root / name
    folder.mkdir()
    for i in range(n):
        (folder / f"{i:02d}.png").write_bytes(png_bytes((i * 9 % 256, 255 - i * 5, shade)))
    return folder


@pytest.fixture
def forkserver_starts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The process ids of the decode workers started from now on (really started, then noted)."""
    started: list[int] = []
    real = mpc.ForkServerProcess._Popen

    def spy(process_obj: Any) -> Any:
        popen = real(process_obj)
        started.append(popen.pid)
        return popen

    monkeypatch.setattr(mpc.ForkServerProcess, "_Popen", staticmethod(spy))
    return started


@pytest.fixture
def pool_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(update={"workers": 1, "batch_size": 4})


def _add(url: str, collection: str, path: Path) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=300) as http:
        r = http.post(f"/v1/collections/{collection}/items", json={"path": str(path)})
    assert r.status_code == 201, r.text
    report: dict[str, Any] = r.json()["report"]
    return report


def _create(url: str, name: str, encoder: str | None = None) -> None:
    body = {"name": name, **({"encoder": encoder} if encoder else {})}
    r = httpx.post(f"{url}/v1/collections", json=body, timeout=60)
    assert r.status_code == 201, r.text


def test_folder_adds_share_one_pool_that_shutdown_ends(
    pool_settings: Settings, media: Path, forkserver_starts: list[int]
) -> None:
    app = create_app(pool_settings)
    engine = app.state.api.engine
    with serve(pool_settings, app) as url:
        _create(url, "lib")
        first = _add(url, "lib", _folder(media, "first", N, 10))
        assert first["added"] == N and not first["failed"]
        second = _add(url, "lib", _folder(media, "second", N, 200))
        assert second["added"] == N and not second["failed"]
        assert len(forkserver_starts) == 1, forkserver_starts  # one worker, started once
        pool = engine.decode_pool(create=False)
        assert pool is not None and engine.decode_pool_starts == 1
        pids = pool.pids()
        assert pids == forkserver_starts
        # an upload decodes in its request thread and leaves the pool alone
        r = httpx.post(
            f"{url}/v1/collections/lib/items",
            files={"file": ("x.png", png_bytes((1, 2, 3)))},
            timeout=60,
        )
        assert r.status_code == 201 and len(forkserver_starts) == 1
    # the server has shut down: the engine closed its pool, whose workers have exited
    assert engine.decode_pool(create=False) is None and pool.pids() == []
    assert not [p for p in multiprocessing.active_children() if p.pid in pids]
    until(lambda: all(process_gone(pid) for pid in pids), "the decode workers exit")


@pytest.fixture
def held() -> Iterator[tuple[threading.Event, threading.Event]]:
    """``held_test``: the real ``imagebind_test`` model whose first call waits to be released.

    Yields (entered, release)."""
    entered, release = threading.Event(), threading.Event()

    def factory(**kw: Any) -> Any:
        enc = create_encoder("imagebind_test", **kw)
        encode = enc.encode

        def held_encode(modality: str, batch: Any) -> np.ndarray:
            if not entered.is_set():
                entered.set()
                assert release.wait(120), "the test never released the model"
            return encode(modality, batch)

        enc.encode = held_encode  # type: ignore[method-assign]
        return enc

    info = _ENCODERS["imagebind_test"]
    register_encoder(HELD, family="test", dim=info.dim, modalities=info.modalities, replace=True)(
        factory
    )
    yield entered, release
    release.set()
    _ENCODERS.pop(HELD, None)


def test_concurrent_adds_share_the_pool_and_keep_their_own_vectors(
    pool_settings: Settings, media: Path, held: tuple[threading.Event, threading.Event]
) -> None:
    entered, release = held
    app = create_app(pool_settings)
    engine = app.state.api.engine
    # far more files than the pipeline takes while its first model call is held (the batch in
    # the model, staged batches, the decoded-ahead queue: about 25 with batches of 4), so that
    # add a's decode job is still open when add b starts
    n = 48
    folders = {"a": _folder(media, "a", n, 30), "b": _folder(media, "b", n, 160)}
    with serve(pool_settings, app) as url:
        _create(url, "a", HELD)
        _create(url, "b")
        with ThreadPoolExecutor(max_workers=2) as adds:
            a = adds.submit(_add, url, "a", folders["a"])
            assert entered.wait(120)  # add a is inside its first model call, files still to decode
            pool = engine.decode_pool(create=False)
            assert pool is not None and pool.open_jobs() == 1
            b = adds.submit(_add, url, "b", folders["b"])
            until(lambda: pool.open_jobs() == 2, "both adds decode through the pool")
            release.set()
            reports = {"a": a.result(300), "b": b.result(300)}
        assert engine.decode_pool_starts == 1 and pool.peak_jobs == 2
    for name, folder in folders.items():
        assert reports[name]["added"] == n and not reports[name]["failed"], reports[name]
        coll = engine.collection(name)
        items = coll.list_items(limit=100)
        assert sorted(Path(i.uri).parent for i in items) == [folder] * n
        got = np.stack([coll.vectors_of(i.id)[0].vector for i in items])
        want = np.concatenate(
            [engine.embed_query(coll, "vision", Path(i.uri)) for i in items]
        )  # each file alone, decoded in this thread
        # same model, same pixels; only the batch (order of float32 sums) differs: SAME_CPU.
        # A vector of another file would be far off: the files' vectors are further apart.
        np.testing.assert_allclose(got, want, atol=SAME_CPU["atol"], rtol=SAME_CPU["rtol"])
        nearest_other = min(
            float(np.abs(want[i] - want[j]).max()) for i in range(n) for j in range(n) if i != j
        )
        assert nearest_other > 100 * SAME_CPU["atol"]
    engine.close()


def test_a_crashed_worker_fails_its_file_and_the_adds_go_on(
    pool_settings: Settings, media: Path
) -> None:
    app = create_app(pool_settings)
    engine = app.state.api.engine
    with serve(pool_settings, app) as url:
        _create(url, "lib")
        assert not _add(url, "lib", _folder(media, "first", N, 10))["failed"]
        pool = engine.decode_pool(create=False)
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGSTOP)  # stopped, it holds what it is sent until the kill
        with ThreadPoolExecutor(max_workers=1) as adds:
            second = adds.submit(_add, url, "lib", _folder(media, "second", N, 120))
            until(lambda: pool.in_flight() == 2, "two files sent to the stopped worker")
            os.kill(pid, signal.SIGKILL)
            report = second.result(300)
        assert report["added"] == N - 1
        ((failure),) = report["failed"]
        assert failure["uri"].startswith(str(media / "second"))
        assert "decoder process died (exit code -9)" in failure["reason"]
        assert pool.replaced == 1 and pool.pids() != [pid]
        third = _add(url, "lib", _folder(media, "third", N, 240))
        assert third["added"] == N and not third["failed"]
        assert engine.decode_pool_starts == 1

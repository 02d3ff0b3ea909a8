"""The engine under concurrent use: encoder loads, load failures, thread counts, close, query cost."""

from __future__ import annotations

import gc
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sqlalchemy import event

from embedstore.config import Settings
from embedstore.encoders import create_encoder, register_encoder
from embedstore.encoders.registry import _ENCODERS
from embedstore.engine import Engine
from embedstore.errors import WeightsNotFound
from embedstore.runtime import configure_threads
from embedstore.store import NewItem, NewVector
from embedstore.store import search as store_search

ENC = "imagebind_test"


@pytest.fixture
def registered() -> Iterator[Callable[[str, Callable[..., Any]], None]]:
    """Register test encoder factories under real registry names; removed afterwards."""
    names: list[str] = []

    def add(name: str, factory: Callable[..., Any]) -> None:
        register_encoder(name, family="test", dim=64, modalities=("text", "vision"), replace=True)(
            factory
        )
        names.append(name)

    yield add
    for name in names:
        _ENCODERS.pop(name, None)


def _in_thread(fn: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Run ``fn`` in a thread; fail (not hang) if it is still blocked after ``timeout`` s."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"blocked: {what}"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def _one_item_collection(engine: Engine, name: str = "c") -> None:
    coll = engine.create_collection(name, encoder=ENC)
    vec = np.ones(coll.dim, np.float32) / np.sqrt(coll.dim)
    coll.add_items([NewItem("mem://a.png", "vision", "h", 1, 0.0, {}, [NewVector("vision", vec)])])


@pytest.mark.slow
def test_a_loading_encoder_holds_up_neither_the_store_nor_other_encoders(
    settings: Settings, registered: Callable[[str, Callable[..., Any]], None]
) -> None:
    loading, gate = threading.Event(), threading.Event()

    def slow(**kw: Any) -> Any:  # a model download in progress, held open by the test
        loading.set()
        assert gate.wait(60), "the test never opened the gate"
        return create_encoder(ENC, **kw)

    registered("slow_test", slow)
    engine = Engine(settings)
    _one_item_collection(engine)
    loader = threading.Thread(target=engine.encoder, args=("slow_test",), daemon=True)
    loader.start()
    try:
        assert loading.wait(60)
        # while slow_test loads: the store answers, and another encoder loads and embeds
        assert _in_thread(engine.store.list_collections, "listing collections") == ["c"]
        hits = _in_thread(lambda: engine.search("c", text="a red square", k=1), "a text search")
        assert [h.uri for h in hits] == ["mem://a.png"]
        assert loader.is_alive()  # still loading: nothing above waited for it
    finally:
        gate.set()
        loader.join(60)
    assert engine.encoder("slow_test").dim == 64
    engine.close()


def test_a_failed_load_is_remembered_for_encoder_retry_s(
    settings: Settings, registered: Callable[[str, Callable[..., Any]], None]
) -> None:
    attempts: list[int] = []

    def broken(**kw: Any) -> Any:
        attempts.append(1)
        raise WeightsNotFound("broken_test.pth is missing from the weights folder")

    registered("broken_test", broken)
    engine = Engine(settings.model_copy(update={"encoder_retry_s": 3600}))
    for _ in range(3):
        with pytest.raises(WeightsNotFound, match="broken_test.pth"):
            engine.encoder("broken_test")
    assert len(attempts) == 1  # every later request got the remembered error at once

    eager = Engine(settings.model_copy(update={"encoder_retry_s": 0}))
    for _ in range(2):
        with pytest.raises(WeightsNotFound):
            eager.encoder("broken_test")
    assert len(attempts) == 3  # retry_s 0: each call tries again


def test_close_frees_the_encoders_and_the_row_cache_connection(settings: Settings) -> None:
    engine = Engine(settings)
    _one_item_collection(engine)
    assert engine.search("c", text="anything", k=1)  # loads the encoder, fills the row cache
    cache = store_search.row_cache(engine.store.engine)
    model = weakref.ref(engine.encoder(ENC))
    engine.close()
    gc.collect()
    assert model() is None  # nothing keeps the model alive
    with pytest.raises(sqlite3.ProgrammingError):  # closed, not left for the collector
        cache.conn.execute("SELECT 1")


def test_a_search_counts_no_rows(settings: Settings) -> None:
    engine = Engine(settings)
    _one_item_collection(engine)
    engine.search("c", text="warm up", k=1)
    statements: list[str] = []
    event.listen(
        engine.store.engine,
        "before_cursor_execute",
        lambda conn, cursor, sql, *a: statements.append(sql.lower()),
    )
    for q in ("a dog", "a cat", "a bird"):
        assert engine.search("c", text=q, k=1)
    assert not [s for s in statements if "count(" in s], statements
    engine.close()


def test_a_renamed_collection_is_seen_at_the_next_query(settings: Settings) -> None:
    """The collection row is cached per name; a commit from any connection invalidates it."""
    from sqlalchemy import update

    from embedstore.store import Store
    from embedstore.store.schema import writer
    from embedstore.store.tables import collections

    engine = Engine(settings)
    _one_item_collection(engine, "live")
    assert engine.collection("live").encoder == ENC
    other = Store.open(settings)  # another process's connections, same database file
    other.create_collection("next", "other_encoder", 8)
    with writer(other.engine).begin() as conn:  # the swap of a re-embedding
        for old, new in (("live", "tmp"), ("next", "live"), ("tmp", "next")):
            conn.execute(update(collections).where(collections.c.name == old).values(name=new))
    other.close()
    coll = engine.collection("live")
    assert (coll.encoder, coll.dim) == ("other_encoder", 8)
    assert engine.collection("next").encoder == ENC
    engine.close()


@pytest.mark.slow
def test_indexing_leaves_the_thread_count_alone(settings: Settings, tmp_path: Path) -> None:
    """torch's thread count is process-wide: set once at start, never changed by a request."""
    seen: list[int] = []

    class Recording(Engine):
        def encode(self, encoder: Any, modality: str, batch: Any) -> np.ndarray:
            seen.append(torch.get_num_threads())
            return super().encode(encoder, modality, batch)

    for i in range(3):
        (tmp_path / f"note{i}.txt").write_text(f"note number {i}")
    # one decode worker per core: the old per-run setting dropped to 1 thread here
    workers = max(1, (torch.get_num_threads() or 2) - 1)
    engine = Recording(settings.model_copy(update={"workers": workers}))
    configure_threads(engine.settings)  # what the app and the CLI do at start
    before = torch.get_num_threads()
    report = engine.index([tmp_path], "notes", encoder=ENC)
    assert report.added == 3 and seen
    assert set(seen) == {before} and torch.get_num_threads() == before
    engine.close()

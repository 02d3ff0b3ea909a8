"""Re-embedding with another encoder loses nothing: ids, metadata, missing files, late writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from embedstore.api import create_app
from embedstore.config import Settings
from embedstore.engine import Engine
from embedstore.ingest import reembed_collection
from embedstore.store import NewItem, NewVector


def _items(engine: Engine, name: str) -> dict[str, object]:
    return {i.uri: i for i in engine.collection(name).list_items(limit=1000)}


def test_ids_metadata_and_missing_files_are_kept(engine: Engine, library: Path) -> None:
    engine.index([library / "images", library / "sounds"], "c")
    coll = engine.collection("c")
    dog = coll.get_item(str(library / "images" / "dog.png"))
    meta = {**dog.metadata, "label": "good dog", "stars": 5}  # metadata given by a client
    coll.add_items(
        [
            NewItem(
                dog.uri, dog.modality, dog.content_hash, dog.size, dog.mtime, meta,
                coll.vectors_of(dog.id),
            )
        ]
    )  # fmt: skip
    before = _items(engine, "c")
    gone = library / "images" / "bird.png"
    gone.unlink()

    report = reembed_collection(engine, "c", "openclip_test")

    after = _items(engine, "c")
    assert {u: i.id for u, i in after.items()} == {u: i.id for u, i in before.items()}
    assert {u: i.metadata for u, i in after.items()} == {u: i.metadata for u, i in before.items()}
    assert after[dog.uri].metadata["label"] == "good dog"
    assert report.items == 6 and report.reembedded == 2  # car and dog: the images still there
    assert report.missing == (str(gone),)  # reported, not silently dropped
    assert after[str(gone)].status == "failed" and "missing" in (after[str(gone)].error or "")
    sounds = sorted(u for u in after if u.endswith(".wav"))  # openclip_test embeds no audio
    assert [f.uri for f in report.failed] == sounds
    assert all(after[u].status == "failed" for u in sounds)
    new = engine.collection("c")
    assert new.info().encoder == "openclip_test"
    assert engine.store.list_collections() == ["c"]
    vec = new.vectors_of(dog.id)[0].vector
    assert new.search(vec[None, :], 1)[0][0].id == dog.id  # found under its old id


def test_writes_during_the_rebuild_are_caught_up(engine: Engine, library: Path) -> None:
    engine.index([library / "images"], "c")
    old = engine.collection("c")
    car = old.get_item(str(library / "images" / "car.png"))
    late = library / "images" / "late.png"
    calls: list[int] = []

    def write_meanwhile(done: int, total: int) -> None:  # runs while the staging is built
        if calls:
            return
        calls.append(done)
        with Image.open(library / "images" / "dog.png") as im:  # a new image: the dog, mirrored
            im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(late)
        engine.index([late], "c")  # a writer on the old collection
        old.remove(ids=[car.id])
        dog = old.get_item(str(library / "images" / "dog.png"))
        vectors = old.vectors_of(dog.id)
        old.add_items(
            [
                NewItem(
                    dog.uri, dog.modality, dog.content_hash, dog.size, dog.mtime,
                    {**dog.metadata, "note": "written during the rebuild"}, vectors,
                )
            ]
        )  # fmt: skip

    report = reembed_collection(engine, "c", "openclip_test", progress=write_meanwhile)
    assert calls and report.rounds >= 2
    after = _items(engine, "c")
    assert str(late) in after and after[str(late)].status == "ok"
    assert after[str(late)].vectors == 1  # embedded by the new encoder in a catch-up round
    assert str(car.uri) not in after
    dog = after[str(library / "images" / "dog.png")]
    assert dog.metadata["note"] == "written during the rebuild"
    new = engine.collection("c")
    assert new.info().encoder == "openclip_test" and new.info().items == 3
    vec = new.vectors_of(after[str(late)].id)[0].vector
    assert np.isfinite(vec).all()
    assert new.search(vec[None, :], 1)[0][0].uri == str(late)


def test_upload_names_and_api_metadata_survive(settings: Settings, library: Path) -> None:
    app = create_app(settings.model_copy(update={"workers": 0}))
    with TestClient(app) as client:
        assert client.post("/v1/collections", json={"name": "u"}).status_code == 201
        data = (library / "images" / "dog.png").read_bytes()
        r = client.post(
            "/v1/collections/u/items",
            files={"file": ("holiday-dog.png", data, "image/png")},
            data={"metadata": '{"album": "summer"}'},
        )
        assert r.status_code == 201, r.text
        (item_id,) = r.json()["ids"]
        engine = app.state.api.engine
        report = reembed_collection(engine, "u", "openclip_test")
        assert report.reembedded == 1 and not report.missing
        got = client.get(f"/v1/collections/u/items/{item_id}").json()
        assert got["metadata"]["name"] == "holiday-dog.png"
        assert got["metadata"]["album"] == "summer"
        assert client.get(f"/v1/collections/u/items/{item_id}/media").content == data
        hits = client.post(
            "/v1/collections/u/search", json={"item_id": item_id, "k": 1}
        ).status_code
        assert hits == 200


def test_no_acknowledged_write_is_lost(engine: Engine, library: Path) -> None:
    """A writer thread adds items the whole time: each add that returned is in the result."""
    import threading

    engine.index([library / "images"], "c")
    old = engine.collection("c")
    rng = np.random.default_rng(0)
    done = threading.Event()
    acked: dict[str, int] = {}
    errors: list[BaseException] = []

    def writer() -> None:
        i = 0
        while not done.is_set():
            v = rng.standard_normal(old.dim).astype(np.float32)
            uri = f"/nowhere/vector-{i}.png"  # no file: kept as missing by the re-embedding
            try:
                (iid,) = old.add_items(
                    [NewItem(uri, "vision", f"h{i}", 1, 1.0, {"i": i}, [NewVector("vision", v)])]
                )
            except Exception as e:  # after the swap the old collection is gone: a loud error
                errors.append(e)
                return
            acked[uri] = iid
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        report = reembed_collection(engine, "c", "openclip_test")
    finally:
        done.set()
        thread.join(30)
    after = _items(engine, "c")
    assert acked, "the writer ran during the rebuild"
    assert {u: after[u].id for u in acked if u in after} == acked  # every acknowledged write kept
    assert set(report.missing) <= set(acked) and report.reembedded == 3

"""Collections and items: create/list/drop, upsert by uri, failures, moves, removal, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_helpers import make_items, unit

from embedstore.errors import (
    CollectionExists,
    CollectionNotFound,
    Conflict,
    DimensionMismatch,
    EncoderMismatch,
    InvalidInput,
    InvalidQuery,
    ItemNotFound,
)
from embedstore.store import NewItem, NewVector, Store


def test_collections_lifecycle(store: Store) -> None:
    coll = store.create_collection("photos", "imagebind_test", 16, encoder_version="v1")
    assert coll.name == "photos" and coll.dim == 16
    with pytest.raises(CollectionExists, match="photos"):
        store.create_collection("photos", "imagebind_test", 16)
    assert store.create_collection("photos", "imagebind_test", 16, exist_ok=True).id == coll.id
    with pytest.raises(EncoderMismatch, match="imagebind_test"):
        store.create_collection("photos", "other", 16, exist_ok=True)
    with pytest.raises(DimensionMismatch, match="16"):
        store.create_collection("photos", "imagebind_test", 32, exist_ok=True)
    store.create_collection("audio", "imagebind_test", 16, index_spec="HNSW16")
    assert [c.name for c in store.collections()] == ["audio", "photos"]
    coll.add_items(make_items(3))
    info = {c.name: c for c in store.collections()}["photos"]
    assert (info.items, info.vectors, info.by_modality, info.encoder_version) == (
        3,
        3,
        {"vision": 3},
        "v1",
    )
    store.drop_collection("photos")
    with pytest.raises(CollectionNotFound, match="embedstore index PATH -c photos"):
        store.collection("photos")
    with pytest.raises(CollectionNotFound):
        store.drop_collection("photos")
    assert store.list_collections() == ["audio"]


@pytest.mark.parametrize(("name", "spec"), [("bad name", "auto"), ("", "auto"), ("ok", "NOPE42")])
def test_create_rejects_bad_names_and_specs(store: Store, name: str, spec: str) -> None:
    with pytest.raises(InvalidInput):
        store.create_collection(name, "e", 8, index_spec=spec)


def test_add_items_upserts_by_uri_and_replaces_vectors(store: Store) -> None:
    coll = store.create_collection("c", "e", 16)
    batch = make_items(10)
    ids = coll.add_items(batch)
    assert len(set(ids)) == 10
    changed = make_items(2, seed=5)
    changed[0].uri, changed[1].uri = batch[3].uri, "/data/new.jpg"
    changed[0].metadata = {"n": 999}
    again = coll.add_items(changed)
    assert again[0] == ids[3], "same uri keeps its item id"
    item = coll.get_item(batch[3].uri)
    assert item.metadata == {"n": 999} and item.vectors == 1 and item.status == "ok"
    np.testing.assert_allclose(coll.vectors_of(ids[3])[0].vector, changed[0].vectors[0].vector)
    assert coll.info().vectors == 11
    hit = coll.search(changed[0].vectors[0].vector, k=1)[0][0]
    assert hit.id == ids[3] and hit.score == pytest.approx(1.0, abs=1e-5)
    old_hits = coll.search(batch[3].vectors[0].vector, k=11)[0]
    assert all(h.score < 0.999 or h.id != ids[3] for h in old_hits), "the replaced vector is gone"


def test_file_states_hashes_moves_and_failures(store: Store) -> None:
    coll = store.create_collection("c", "e", 16)
    ids = coll.add_items(make_items(3))
    states = coll.file_states(["/data/00000.jpg", "/data/none.jpg"])
    assert list(states) == ["/data/00000.jpg"]
    assert (
        states["/data/00000.jpg"].id,
        states["/data/00000.jpg"].size,
        states["/data/00000.jpg"].status,
    ) == (ids[0], 100, "ok")
    assert coll.items_by_hash(["h0-1", "nope"]) == {"h0-1": ids[1]}
    coll.move_item(ids[1], "/moved/b.jpg", 7, 9.5)
    assert (
        coll.get_item(ids[1]).uri == "/moved/b.jpg" and coll.get_item("/moved/b.jpg").mtime == 9.5
    )
    with pytest.raises(Conflict, match="/data/00002.jpg"):
        coll.move_item(ids[1], "/data/00002.jpg", 1, 1.0)
    coll.record_failures(
        [("/data/00000.jpg", "corrupt JPEG", 5, 1.0, "zz"), ("/bad.wav", "empty", 0, 2.0, None)]
    )
    failed = coll.list_items(status="failed")
    assert [(f.uri, f.error, f.vectors) for f in failed] == [("/bad.wav", "empty", 0)]
    kept = coll.get_item(ids[0])
    assert (kept.status, kept.error, kept.vectors, kept.size) == ("ok", "corrupt JPEG", 1, 100), (
        "a stored item whose changed file fails keeps its last good vectors and notes the reason"
    )
    assert coll.info().failed == 1 and coll.info().vectors == 3
    assert any(h.id == ids[0] for h in coll.search(unit(np.ones(16)), k=10)[0]), (
        "the last good vectors stay searchable"
    )
    assert "zz" not in coll.items_by_hash(["zz"]), "only ok items are reuse candidates"


def test_remove_by_id_and_uri_and_errors(store: Store) -> None:
    coll = store.create_collection("c", "e", 16)
    batch = make_items(6)
    ids = coll.add_items(batch)
    assert coll.remove(ids=[ids[0], 123456], uris=[batch[1].uri, "/none"]) == 2
    assert coll.remove(ids=[ids[0]]) == 0
    with pytest.raises(ItemNotFound, match=str(ids[0])):
        coll.get_item(ids[0])
    hits = coll.search(np.stack([b.vectors[0].vector for b in batch]), k=6)
    assert all({h.id for h in row} == set(ids[2:]) for row in hits)
    with pytest.raises(DimensionMismatch, match="8"):
        coll.add_items(
            [NewItem("/x", "vision", vectors=[NewVector("vision", np.ones(8, np.float32))])]
        )
    with pytest.raises(DimensionMismatch):
        coll.search(np.ones((1, 8), np.float32))
    with pytest.raises(InvalidInput, match="twice"):
        coll.add_items(make_items(1) + make_items(1))
    with pytest.raises(InvalidInput, match="modality"):
        coll.add_items(make_items(1, modality="Bad/Modality"))
    with pytest.raises(InvalidQuery, match="k must"):
        coll.search(np.ones(16, np.float32), k=0)


def test_list_items_pagination_and_where(store: Store) -> None:
    coll = store.create_collection("c", "e", 16)
    ids = coll.add_items(make_items(25))
    page = coll.list_items(limit=10, offset=10)
    assert [i.id for i in page] == ids[10:20]
    assert [i.metadata["n"] for i in coll.list_items(where={"n": {"gte": 20}})] == [
        20,
        21,
        22,
        23,
        24,
    ]
    assert len(coll.list_items(where={"even": True}, limit=100)) == 13
    assert len(coll.list_items(where={"uri": {"glob": "/data/0001?.jpg"}})) == 10
    with pytest.raises(InvalidQuery, match="'n'"):
        coll.list_items(where={"n": {"between": [1, 2]}})


def test_reopen_keeps_everything(db_url: str, tmp_path: Path) -> None:
    with Store(db_url, tmp_path / "idx") as s:
        coll = s.create_collection("c", "e", 16)
        batch = make_items(20)
        ids = coll.add_items(batch)
        coll.remove(ids=ids[:5])
    with Store(db_url, tmp_path / "idx") as s:
        coll = s.collection("c")
        assert coll.info().items == 15
        hit = coll.search(batch[7].vectors[0].vector, k=1)[0][0]
        assert (hit.id, hit.uri) == (ids[7], batch[7].uri)


def test_new_sqlite_files_use_large_pages_and_old_ones_keep_theirs(tmp_path: Path) -> None:
    import sqlite3

    from embedstore.store.schema import SQLITE_PAGE_SIZE

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # a file created with SQLite's default page size
        conn.execute("CREATE TABLE t (x)")
    for path, size in ((tmp_path / "new.db", SQLITE_PAGE_SIZE), (old, 4096)):
        with Store(f"sqlite:///{path}", tmp_path / "idx") as s:
            s.create_collection(path.stem, "e", 16).add_items(make_items(3))
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA page_size").fetchone()[0] == size


@pytest.mark.parametrize("spec", ["Flat", "HNSW16"])
def test_a_failed_write_leaves_the_index_as_it_was(
    store: Store, spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index add runs beside the transaction; a rollback takes the vectors out again."""
    from embedstore.store import writes

    coll = store.create_collection("c", "e", 16, index_spec=spec)
    first = coll.add_items(make_items(20))
    batch = make_items(10, seed=3, prefix="/more/")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(writes, "insert_vectors", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        coll.add_items(batch)
    monkeypatch.undo()
    assert coll.info().items == 20 and len(coll.indexes.indexes["vision"]) == 20
    scores, vids = coll.search_ids(batch[0].vectors[0].vector, 30, modality="vision")
    assert (vids[0] >= 0).sum() == 20 and scores[0, 0] < 0.999  # none of the rolled-back vectors
    again = coll.add_items(batch)
    assert coll.search(batch[0].vectors[0].vector, k=1)[0][0].id == again[0]
    assert sorted(first + again) == sorted(i.id for i in coll.list_items(limit=100))

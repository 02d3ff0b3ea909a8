"""Search: filters, pagination, segments, modalities, similar_to, every index kind, reindex."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from store_helpers import make_items, unit

from embedstore.errors import InvalidInput, InvalidQuery
from embedstore.store import NewItem, NewVector, Store
from indexers import ExactIndex


def test_filters_return_k_matching_results(store: Store) -> None:
    coll = store.create_collection("c", "e", 16)
    coll.add_items(make_items(300))
    q = unit(np.ones(16))
    cases = {
        "eq": ({"tag": "a"}, lambda m, u: m["tag"] == "a"),
        "bool": ({"even": True}, lambda m, u: m["even"]),
        "range": ({"n": {"gte": 10, "lt": 20}}, lambda m, u: 10 <= m["n"] < 20),
        "in": ({"n": {"in": [1, 2, 250]}}, lambda m, u: m["n"] in (1, 2, 250)),
        "prefix": ({"uri": {"prefix": "/data/0002"}}, lambda m, u: u.startswith("/data/0002")),
        "glob": ({"uri": {"glob": "*5.jpg"}}, lambda m, u: u.endswith("5.jpg")),
        "modality": ({"modality": "vision", "n": {"lte": 3}}, lambda m, u: m["n"] <= 3),
    }
    for name, (where, pred) in cases.items():
        hits = coll.search(q, k=10, where=where)[0]
        expected = min(10, sum(pred(it.metadata, it.uri) for it in make_items(300)))
        assert len(hits) == expected, name
        assert all(pred(h.metadata, h.uri) for h in hits), name
    assert coll.search(q, k=5, where={"tag": "zzz"})[0] == []
    with pytest.raises(InvalidQuery, match="prefix"):
        coll.search(q, where={"n": {"prefix": "x"}})


def test_like_wildcards_in_uris_are_literal(store: Store) -> None:
    coll = store.create_collection("c", "e", 16)
    coll.add_items(make_items(3, prefix="/a_b%/") + make_items(3, prefix="/axb/", seed=1))
    hits = coll.search(unit(np.ones(16)), k=10, where={"uri": {"prefix": "/a_b%/"}})[0]
    assert {h.uri[:6] for h in hits} == {"/a_b%/"} and len(hits) == 3
    assert len(coll.search(unit(np.ones(16)), k=10, where={"uri": {"glob": "/A_B%/*"}})[0]) == 0, (
        "case-sensitive"
    )


def test_pagination_is_consistent(store: Store) -> None:
    coll = store.create_collection("c", "e", 16)
    coll.add_items(make_items(50))
    q = unit(np.arange(16) - 4.0)
    full = [h.id for h in coll.search(q, k=30)[0]]
    pages = [h.id for off in (0, 10, 20) for h in coll.search(q, k=10, offset=off)[0]]
    assert pages == full and len(set(full)) == 30
    assert len(coll.search(q, k=10, offset=45)[0]) == 5


def test_video_segments_collapse_and_modalities(store: Store) -> None:
    coll = store.create_collection("media", "e", 16)
    rng = np.random.default_rng(3)
    clips = unit(rng.standard_normal((6, 16)))
    sound = unit(rng.standard_normal(16))
    video = NewItem(
        "/v/movie.mp4",
        "video",
        "hv",
        1,
        1.0,
        {"kind": "film"},
        [NewVector("vision", clips[i], segment=i, start=2.0 * i, end=2.0 * i + 2) for i in range(6)]
        + [NewVector("audio", sound)],
    )
    others = make_items(20, seed=4)
    vid, *_ = coll.add_items([video, *others])
    hits = coll.search(clips[3] + 0.01, k=5)[0]
    assert hits[0].id == vid and (hits[0].start, hits[0].end, hits[0].segment) == (6.0, 8.0, 3)
    assert [h.id for h in hits].count(vid) == 1, "one hit per item"
    assert len(hits) == 5
    audio_hits = coll.search(clips[3], k=5, modalities=["audio"])[0]
    assert [(h.id, h.modality) for h in audio_hits] == [(vid, "audio")]
    assert coll.search(sound, k=1, modalities=["audio", "vision"])[0][0].modality == "audio"
    assert coll.info().by_modality == {"vision": 26, "audio": 1}
    similar = coll.similar_to(vid, k=3)
    assert len(similar) == 3 and vid not in [h.id for h in similar]


@pytest.mark.parametrize("spec", ["Flat", "HNSW16", "IVF8,Flat", "PQ4x4", "IVF8,PQ4x4"])
def test_deletes_never_served_on_every_index_kind(store: Store, spec: str) -> None:
    coll = store.create_collection("c", "e", 16, index_spec=spec)
    batch = make_items(400)
    ids = coll.add_items(batch)
    # train now, although 400 vectors are fewer than the 39 per centroid ingest waits for;
    # no recall bar: PQ codes of 4 bits on 16 dims are lossy by design
    coll.reindex(min_recall=0.0)
    kind = coll.indexes.indexes["vision"]
    assert kind.is_trained and kind.spec == spec
    gone = set(ids[::3])
    coll.remove(ids=sorted(gone))
    coll.remove(uris=[batch[1].uri])
    gone.add(ids[1])
    q = np.stack([b.vectors[0].vector for b in batch[:40]])
    for row in coll.search(q, k=20):
        assert len(row) == 20 and not gone & {h.id for h in row}
    for row in coll.search(q, k=5, where={"n": {"lt": 30}}):
        assert {h.metadata["n"] for h in row} <= set(range(30)) and not gone & {h.id for h in row}


@pytest.mark.parametrize("spec", ["Flat", "HNSW16", "IVF16,Flat"])
def test_filtered_search_matches_exact_filtered_search(store: Store, spec: str) -> None:
    coll = store.create_collection("c", "e", 16, index_spec=spec)
    batch = make_items(2000, seed=7)
    ids = np.array(coll.add_items(batch))
    x = np.stack([b.vectors[0].vector for b in batch])
    q = unit(np.random.default_rng(8).standard_normal((20, 16)))
    where = {"n": {"gte": 100, "lt": 400}, "even": False}
    keep = np.array(
        [100 <= b.metadata["n"] < 400 and b.metadata["n"] % 2 for b in batch], dtype=bool
    )
    exact = ExactIndex(16)
    exact.add(ids[keep], x[keep])
    truth = exact.search(q, 10)[1]
    found = [[h.id for h in row] for row in coll.search(q, k=10, where=where)]
    assert np.array_equal(np.array(found), truth)


def test_ivf_trains_on_a_sample_of_every_modality(store: Store) -> None:
    coll = store.create_collection("mix", "e", 16, index_spec="IVF8,Flat")
    rng = np.random.default_rng(1)
    img = unit(rng.standard_normal((500, 16)) + 3)  # two modalities in different regions
    txt = unit(rng.standard_normal((500, 16)) - 3)
    coll.add_items(
        [NewItem(f"/i{i}", "vision", vectors=[NewVector("vision", img[i])]) for i in range(500)]
    )
    coll.add_items(
        [NewItem(f"/t{i}", "text", vectors=[NewVector("text", txt[i])]) for i in range(500)]
    )
    coll.reindex()
    with coll.store.engine.connect() as conn:
        sample = coll.indexes.training_sample(conn, 400)
    assert (sample @ unit(np.ones(16)) > 0).sum() == 200, "balanced: half of the sample from each"
    vision = coll.indexes.indexes["vision"]
    assert vision.is_trained and len(vision) == 500
    cross = coll.search(txt[:5], k=5, modalities=["vision"])  # text -> vision still finds k
    assert all(len(row) == 5 for row in cross)


def test_reindex_swaps_spec_and_keeps_results(store: Store) -> None:
    coll = store.create_collection("c", "e", 16)
    batch = make_items(300)
    coll.add_items(batch)
    q = np.stack([b.vectors[0].vector for b in batch[:10]])
    before = [[h.id for h in row] for row in coll.search(q, k=1)]
    coll.reindex("HNSW16")
    assert coll.info().index_spec == "HNSW16" and coll.indexes.indexes["vision"].spec == "HNSW16"
    assert [[h.id for h in row] for row in coll.search(q, k=1)] == before
    assert store.collection("c").index_spec == "HNSW16"
    with pytest.raises(InvalidInput, match="index spec"):
        coll.reindex("NOT,A,SPEC")


def test_index_files_are_a_cache(db_url: str, tmp_path: Path) -> None:
    batch = make_items(100)
    with Store(db_url, tmp_path / "idx") as s:
        coll = s.create_collection("c", "e", 16)
        ids = coll.add_items(batch[:60])
        coll.flush()
        path = coll.indexes.path("vision")
        stale = path.read_bytes()
        coll.add_items(batch[60:])
        coll.remove(ids=ids[:10])
    path.write_bytes(stale)  # an index file from before the last changes: caught up on open
    q = np.stack([b.vectors[0].vector for b in batch])
    with Store(db_url, tmp_path / "idx") as s:
        coll = s.collection("c")
        assert len(coll.indexes.indexes["vision"]) == 90
        assert {h.id for row in coll.search(q, k=1) for h in row}.isdisjoint(ids[:10])
    path.write_bytes(b"garbage")  # unreadable: rebuilt from the database
    with Store(db_url, tmp_path / "idx") as s:
        assert len(s.collection("c").indexes.indexes["vision"]) == 90
    path.unlink()
    with Store(db_url, tmp_path / "idx") as s:
        assert len(s.collection("c").search(q[50], k=100)[0]) == 90


def test_two_stores_see_each_others_writes(db_url: str, tmp_path: Path) -> None:
    a, b = Store(db_url, tmp_path / "idx"), Store(db_url, tmp_path / "idx")
    try:
        ca = a.create_collection("c", "e", 16)
        cb = b.collection("c")
        cb.indexes.refresh_interval = 0.0
        batch = make_items(10)
        ids = ca.add_items(batch)
        assert cb.search(batch[4].vectors[0].vector, k=1)[0][0].id == ids[4]
        ca.remove(ids=[ids[4]])
        assert cb.search(batch[4].vectors[0].vector, k=1)[0][0].id != ids[4]
    finally:
        a.close()
        b.close()


def test_concurrent_writers_and_readers(store: Store) -> None:
    coll = store.create_collection("c", "e", 16)
    coll.add_items(make_items(50))
    errors: list[BaseException] = []

    def write(t: int) -> None:
        try:
            for j in range(5):
                coll.add_items(make_items(20, seed=100 + 10 * t + j, prefix=f"/t{t}/{j}/"))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def read() -> None:
        try:
            for _ in range(20):
                assert len(coll.search(unit(np.ones(16)), k=10)[0]) == 10
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(3)] + [
        threading.Thread(target=read) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert coll.info().items == 350 and len(coll.indexes.indexes["vision"]) == 350


def test_rows_served_are_current_even_before_an_index_refresh(db_url: str, tmp_path: Path) -> None:
    """Hits' rows come from a cache that any commit invalidates, whoever commits."""
    a, b = Store(db_url, tmp_path / "idx"), Store(db_url, tmp_path / "idx")
    try:
        ca = a.create_collection("c", "e", 16)
        batch = make_items(10)
        ids = ca.add_items(batch)
        cb = b.collection("c")
        cb.indexes.refresh_interval = 3600.0  # b's index will not hear of a's writes
        q = batch[4].vectors[0].vector
        first = cb.search(q, k=3)[0]
        assert first[0].id == ids[4]
        first[0].metadata["n"] = "mutated by the caller"
        assert cb.search(q, k=3)[0][0].metadata["n"] == 4  # the cached row is a copy
        ca.move_item(ids[4], "/moved/4.jpg", 1, 1.0)
        assert cb.search(q, k=3)[0][0].uri == "/moved/4.jpg"
        ca.remove(ids=[ids[4]])
        hits = cb.search(q, k=3)[0]
        assert ids[4] not in [h.id for h in hits] and len(hits) == 3
    finally:
        a.close()
        b.close()

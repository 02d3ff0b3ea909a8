"""Keyword search and fusion on the Tux Paint captions (real text), SQLite FTS5 and PostgreSQL.

Expectations are checked by hand against the captions in ``tuxpaint-stamps-default``: six of its
952 captions mention a penguin, and BM25 / ``ts_rank_cd`` (length normalised) put the shortest
caption first and rank equally long ones equally (ties go to the lower item id, i.e. the path
that sorts first, since items are added in path order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from testdata import TUXPAINT_STAMPS

from embedstore.hybrid import fuse, reciprocal_rank_fusion
from embedstore.store import NewItem, NewVector, Store
from embedstore.store.captions import Caption
from embedstore.types import SearchResult

TUX_REASON = "Debian package tuxpaint-stamps-default is not installed (make test-data installs it)"
needs_tux = pytest.mark.data(TUXPAINT_STAMPS, TUX_REASON)
DIM = 8
PENGUINS = [  # "penguin" by rank: 2 tokens, three of 3 (path order), two of 7 (path order)
    "animals/birds/penguin",
    "animals/birds/cartoon/pengwin",
    "animals/birds/little-penguin",
    "animals/birds/magellanic_penguin",
    "vehicles/farming/cartoon/tux_tractor",
    "vehicles/ship/cartoon/bathyscape",
]
NEAR = {  # component along e0: the vector ranking of query e0 is tux_tractor, tux, little-penguin
    "vehicles/farming/cartoon/tux_tractor": 0.9,
    "animals/birds/cartoon/tux": 0.8,
    "animals/birds/little-penguin": 0.7,
}


def captions() -> list[tuple[str, str]]:
    """(stamp path without extension, English caption) for every stamp, in path order."""
    out = []
    for txt in sorted(TUXPAINT_STAMPS.rglob("*.txt")):
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines and lines[0].strip():
            out.append((str(txt.relative_to(TUXPAINT_STAMPS).with_suffix("")), lines[0].strip()))
    return out


def vectors(keys: list[str]) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(keys), DIM)).astype(np.float32)
    x[:, 0] = 0.0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for i, key in enumerate(keys):
        if key in NEAR:
            x[i] *= np.sqrt(1 - NEAR[key] ** 2)
            x[i, 0] = NEAR[key]
    return x


@pytest.fixture
def stamps(store: Store) -> tuple[object, dict[str, int]]:
    """A collection of every stamp with its caption in metadata; key -> item id."""
    pairs = captions()
    assert len(pairs) > 900  # the package's 952 captioned stamps
    keys = [k for k, _ in pairs]
    x = vectors(keys)
    coll = store.create_collection("stamps", "imagebind_test", DIM)
    batch = [
        NewItem(
            f"/stamps/{key}.png",
            "vision",
            metadata={"caption": cap, "folder": key.split("/")[-2]},
            vectors=[NewVector("vision", x[i])],
        )
        for i, (key, cap) in enumerate(pairs)
    ]
    ids = coll.add_items(batch)
    return coll, dict(zip(keys, ids))


def keys_of(hits: list[SearchResult], ids: dict[str, int]) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[h.id] for h in hits]


@needs_tux
@pytest.mark.slow
def test_keyword_search_finds_every_penguin_in_length_order(stamps) -> None:  # type: ignore[no-untyped-def]
    coll, ids = stamps
    hits = coll.keyword_search("penguin", 20)
    assert keys_of(hits, ids) == PENGUINS
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    # stemming: the plural finds the same captions; a word in no caption finds nothing
    assert keys_of(coll.keyword_search("Penguins", 20), ids) == PENGUINS
    assert coll.keyword_search("xylophonist", 5) == []


@needs_tux
@pytest.mark.slow
def test_keyword_search_ranks_the_caption_with_every_word_first(stamps) -> None:  # type: ignore[no-untyped-def]
    coll, ids = stamps
    top = keys_of(coll.keyword_search("great blue heron", 2), ids)
    assert sorted(top) == ["animals/birds/heron_greatblue", "animals/birds/heron_greatblue_flying"]


@needs_tux
@pytest.mark.slow
def test_keyword_search_filters_pages_and_modalities(stamps) -> None:  # type: ignore[no-untyped-def]
    coll, ids = stamps
    assert keys_of(coll.keyword_search("penguin", 2, offset=1), ids) == PENGUINS[1:3]
    birds = coll.keyword_search("penguin", 20, where={"folder": "birds"})
    assert keys_of(birds, ids) == [k for k in PENGUINS if k.split("/")[-2] == "birds"]
    assert coll.keyword_search("penguin", 20, modalities=["audio"]) == []


@needs_tux
@pytest.mark.slow
def test_reciprocal_rank_fusion_of_keyword_and_vector_rankings(stamps) -> None:  # type: ignore[no-untyped-def]
    coll, ids = stamps
    q = np.zeros((1, DIM), dtype=np.float32)
    q[0, 0] = 1.0
    vector_hits = coll.search(q, 3)[0]
    assert keys_of(vector_hits, ids) == list(NEAR)
    keyword_hits = coll.keyword_search("penguin", 10)
    fused = fuse(vector_hits, keyword_hits, 60.0, k=7)
    # tux_tractor 1/61 + 1/65 = 0.031778 beats little-penguin 1/63 + 1/63 = 0.031746; then the
    # single-list items: penguin 1/61, pengwin and tux 1/62 (tie: both rank 2, pengwin's id is
    # lower), magellanic 1/64, bathyscape 1/66
    assert keys_of(fused, ids) == [
        "vehicles/farming/cartoon/tux_tractor",
        "animals/birds/little-penguin",
        "animals/birds/penguin",
        "animals/birds/cartoon/pengwin",
        "animals/birds/cartoon/tux",
        "animals/birds/magellanic_penguin",
        "vehicles/ship/cartoon/bathyscape",
    ]
    # exact: the sums are of at most two terms, each a correctly rounded division
    assert fused[0].score == 1 / 61 + 1 / 65 and fused[1].score == 1 / 63 + 1 / 63
    assert fused[0].modality == "vision" and fused[0].uri.endswith("tux_tractor.png")
    # the constant matters: with c = 1 the top of either list dominates
    c1 = reciprocal_rank_fusion([vector_hits, keyword_hits], 1.0)
    assert keys_of(c1[:2], ids) == ["vehicles/farming/cartoon/tux_tractor", "animals/birds/penguin"]


def test_bodies_follow_their_item_in_every_write(store: Store, tmp_path: Path) -> None:
    coll = store.create_collection("w", "imagebind_test", DIM)
    v = np.eye(DIM, dtype=np.float32)
    note = tmp_path / "note.txt"
    note.write_text("Minutes of the badger society", encoding="utf-8")
    a, b, t = coll.add_items(
        [
            NewItem("/a.png", "vision", metadata={"caption": "A badger."}, vectors=[NewVector("vision", v[0])]),
            NewItem("/b.png", "vision", metadata={"tag": "badger sett"}, vectors=[NewVector("vision", v[1])]),
            NewItem(str(note), "text", vectors=[NewVector("text", v[2])]),
        ]
    )  # fmt: skip
    assert [h.id for h in coll.keyword_search("badger", 10)] == [a, t]  # caption, text item
    assert coll.set_text_fields(["tag"]) == 3  # declared fields are searchable from now on
    assert {h.id for h in coll.keyword_search("badger", 10)} == {a, b, t}
    assert [h.id for h in coll.keyword_search("sett", 10)] == [b]
    # a replaced item keeps only what its new version says
    coll.add_items([NewItem("/a.png", "vision", vectors=[NewVector("vision", v[3])])])
    assert a not in {h.id for h in coll.keyword_search("badger", 10)}
    # a caption replaces the previous one, with one text vector on the item
    n = coll.set_captions(
        [Caption(b, "Two otters.", "m", v[4]), Caption(b + 100, "gone", "m", v[5])]
    )
    assert n == 1  # the unknown item is left out
    assert coll.set_captions([Caption(b, "Three otters.", "m", v[5])]) == 1
    item = coll.get_item(b)
    assert item.metadata["caption"] == "Three otters." and item.metadata["caption_model"] == "m"
    assert [x.modality for x in coll.vectors_of(b)] == ["vision", "text"]
    assert [h.id for h in coll.keyword_search("otters", 10)] == [b]
    assert coll.search(v[5], 1)[0][0].id == b  # the caption's vector is searchable
    assert coll.info().by_modality["text"] == 2  # the note's and b's caption: the old one went
    # removal and failure take the body with the item
    coll.remove(ids=[b])
    assert coll.keyword_search("otters", 10) == []
    # a file that fails to re-index keeps its last good item, words included
    coll.record_failures([(str(note), "unreadable", 0, 0.0, None)])
    assert [h.id for h in coll.keyword_search("minutes", 10)] == [t]

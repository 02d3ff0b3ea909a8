"""The writer gate (store/gate.py): a held swap keeps other writers out, for a bounded time."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import make_items

from embedstore.errors import CollectionReplaced, Unavailable
from embedstore.store import Store


def test_a_writer_waits_for_the_swap_then_fails_naming_the_collection(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    coll = store.create_collection("gated", "test", 16)
    coll.add_items(make_items(2))
    # another store on the same catalog: its own gate, as a writer in another process has
    other = Store(db_url, tmp_path / "indexes", writer_gate_timeout_s=0.3)
    try:
        theirs = other.collection("gated")
        with store.gate.exclusive(coll.id, coll.name):
            with pytest.raises(Unavailable, match="'gated'.*writer_gate_timeout_s"):
                theirs.add_items(make_items(1, seed=1, prefix="/late/"))
            with pytest.raises(Unavailable, match="'gated'"):
                theirs.remove(uris=["/data/00000.jpg"])
        assert theirs.add_items(make_items(1, seed=1, prefix="/late/"))  # released: it goes in
        assert coll.info().items == 3  # the refused writes wrote nothing
    finally:
        other.close()


def test_a_write_to_a_replaced_collection_raises_instead_of_vanishing(store: Store) -> None:
    coll = store.create_collection("c", "test", 16)
    coll.add_items(make_items(2))
    store.drop_collection("c")
    if store.gate.dir is not None:  # SQLite: the dropped collection's lock file goes with it
        assert not (store.gate.dir / f"{coll.id}.lock").exists()
    store.create_collection("c", "test", 16)  # the same name, another collection
    with pytest.raises(CollectionReplaced, match="'c'"):
        coll.add_items(make_items(1, seed=1, prefix="/late/"))
    with pytest.raises(CollectionReplaced):
        coll.remove(uris=["/data/00000.jpg"])
    assert store.collection("c").info().items == 0

"""Re-embedding a collection with another encoder: build beside, verify, swap, drop the old."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from embedstore.errors import CollectionNotFound, Unavailable

if TYPE_CHECKING:
    from embedstore.engine import Engine
    from embedstore.ingest.walk import FileEntry
    from embedstore.store import Collection, Store


def _entries(engine: Engine, name: str) -> tuple[list[FileEntry], int]:
    from embedstore.ingest.walk import FileEntry

    coll = engine.collection(name)
    entries: list[FileEntry] = []
    missing, offset = 0, 0
    while True:
        page = coll.list_items(limit=1000, offset=offset, status="ok")
        for item in page:
            try:
                st = os.stat(item.uri)
            except OSError:
                missing += 1
                continue
            entries.append(
                FileEntry(
                    item.uri, os.path.basename(item.uri), st.st_size, st.st_mtime, item.modality
                )
            )
        if len(page) < 1000:
            return entries, missing
        offset += len(page)


def reembed_collection(
    engine: Engine, name: str, encoder: str, index_spec: str | None = None
) -> None:
    """Embed every file of ``name`` again with ``encoder`` into a new collection, then swap."""
    from embedstore.ingest.run import IndexOptions, index_entries

    store = engine.store
    old = engine.collection(name).info()
    staging = f"{name}.reembed"
    with contextlib.suppress(CollectionNotFound):
        store.drop_collection(staging)
    new = engine.create_collection(
        staging, encoder=encoder, index_spec=index_spec or old.index_spec
    )
    entries, _missing = _entries(engine, name)
    s = engine.settings
    report = index_entries(
        engine, new, entries, IndexOptions(batch_size=s.batch_size, workers=s.workers)
    )
    expected = len(entries) - len(report.failed)
    got = new.info().items
    if got != expected or not _finds_itself(new):
        store.drop_collection(staging)
        raise Unavailable(
            f"Re-embedding {name!r} produced {got} items, expected {expected}; kept the old one"
        )
    swap = getattr(store, "swap_collections", None) or (lambda a, b: _swap_names(store, a, b))
    swap(name, staging)
    store.drop_collection(staging)


def _finds_itself(coll: Collection) -> bool:
    """A stored vector searched in the new index comes back as its own item."""
    page = coll.list_items(limit=1, status="ok")
    if not page:
        return True
    vectors = coll.vectors_of(page[0].id)
    hits = coll.search(vectors[0].vector[None, :], 1, modalities=[vectors[0].modality])[0]
    return bool(hits) and hits[0].id == page[0].id


def _swap_names(store: Store, a: str, b: str) -> None:
    """Exchange two collections' names in one transaction (readers see the old or the new)."""
    from sqlalchemy import update

    from embedstore.store.schema import writer
    from embedstore.store.tables import collections

    tmp = f"{a}.swap"
    with writer(store.engine).begin() as conn:
        for old, new in ((a, tmp), (b, a), (tmp, b)):
            conn.execute(update(collections).where(collections.c.name == old).values(name=new))

"""Re-embedding a collection with another encoder: build beside, verify, swap, drop the old."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from embedstore.errors import CollectionNotFound, Unavailable

if TYPE_CHECKING:
    from embedstore.engine import Engine
    from embedstore.ingest.walk import FileEntry


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
    swap = getattr(store, "swap_collections", None)
    if swap is None:
        raise Unavailable("This store cannot swap collections; re-embedding needs swap_collections")
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
    if got != expected:
        store.drop_collection(staging)
        raise Unavailable(
            f"Re-embedding {name!r} produced {got} items, expected {expected}; kept the old one"
        )
    swap(name, staging)
    store.drop_collection(staging)

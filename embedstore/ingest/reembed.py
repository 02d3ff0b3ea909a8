"""Re-embedding a collection with another encoder: build beside, catch up, swap, drop the old.

Nothing is lost: every item keeps its id, metadata and uri. The files are embedded again into a
staging collection; writes that reach the old collection meanwhile are caught up in further
rounds. After ``FREE_ROUNDS`` of them the writers wait: this process's on the collection's
lock, every other process's on the writer gate's exclusive side (store/gate.py), so at most one
more catch-up round runs before the swap. The swap runs in one write transaction that first
checks that no write came in since the last round (else it catches up again). In that
transaction the old item rows move to the new collection and take the new vectors. A write that
waited for the swap then finds its collection replaced (CollectionReplaced; ``Engine.index``
runs again on the new one). Items whose files are gone, or that the new encoder cannot embed,
are kept (marked ``failed``, the reason in ``error``) and reported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from embedstore.errors import CollectionNotFound, Unavailable
from embedstore.types import Failure

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from embedstore.engine import Engine
    from embedstore.ingest.walk import FileEntry
    from embedstore.store import Collection

FREE_ROUNDS = 3  # catch-up rounds while writers (of any process) run freely; then they wait
MAX_ROUNDS = 20  # a safety net: with writers waiting, FREE_ROUNDS + 2 rounds suffice
Snapshot = dict[int, tuple[str, str, Any]]  # item id -> (uri, status, updated_at)


@dataclass(frozen=True)
class ReembedReport:
    """What a re-embedding did: every old item is still there, under its id."""

    items: int  # items carried over (all of the old collection's)
    reembedded: int  # embedded again with the new encoder
    missing: tuple[str, ...] = ()  # uris whose files were gone: kept, marked failed
    failed: tuple[Failure, ...] = ()  # files the new encoder could not embed: kept, failed
    rounds: int = 1  # passes over the old collection (more when writes came in meanwhile)

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "reembedded": self.reembedded,
            "missing": list(self.missing),
            "failed": [{"uri": f.uri, "reason": f.reason} for f in self.failed],
            "rounds": self.rounds,
        }


def _snapshot(conn: Connection, collection_id: int) -> Snapshot:
    from sqlalchemy import select

    from embedstore.store.tables import items

    q = select(items.c.id, items.c.uri, items.c.status, items.c.updated_at).where(
        items.c.collection_id == collection_id
    )
    return {int(i): (u, s, t) for i, u, s, t in conn.execute(q)}


def _entry(uri: str, modality: str) -> FileEntry | None:
    from embedstore.ingest.walk import FileEntry

    try:
        st = os.stat(uri)
    except OSError:
        return None
    return FileEntry(uri, os.path.basename(uri), st.st_size, st.st_mtime, modality)


def reembed_collection(
    engine: Engine,
    name: str,
    encoder: str,
    index_spec: str | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ReembedReport:
    """Embed every file of ``name`` again with ``encoder`` beside it, then swap atomically.

    ``progress(done, total)`` is called as files are embedded (each catch-up round anew).
    """
    from embedstore.ingest.run import IndexOptions, index_entries
    from embedstore.modalities.sources import DecodeLimits

    store = engine.store
    old = engine.collection(name)
    staging = f"{name}.reembed"
    with contextlib.suppress(CollectionNotFound):
        store.drop_collection(staging)
    new = engine.create_collection(
        staging,
        encoder=encoder,
        index_spec=index_spec or old.index_spec,
        index_backend=old.index_backend,  # a pgvector collection stays one
    )
    s = engine.settings
    options = IndexOptions(
        batch_size=s.batch_size, workers=s.workers, limits=DecodeLimits.from_settings(s)
    )
    seen: Snapshot = {}
    rounds = 0
    held: Connection | None = None  # PostgreSQL: the connection holding the writer gate
    hold = contextlib.ExitStack()
    try:
        while True:
            rounds += 1
            if rounds == FREE_ROUNDS + 1:  # writes keep coming: writers now wait for the swap
                hold.enter_context(old.indexes.lock)  # this process's
                held = hold.enter_context(store.gate.exclusive(old.id, name))  # other processes'
            if rounds > MAX_ROUNDS:
                raise Unavailable(
                    f"Re-embedding {name!r}: the collection kept changing over {MAX_ROUNDS} "
                    "rounds; the old one is kept, run it again when writes pause"
                )
            with store.engine.connect() as conn:
                now = _snapshot(conn, old.id)
            if now == seen:
                # in-process writers of the old collection wait until it is gone (after that
                # their writes raise CollectionReplaced instead of vanishing with it)
                with old.indexes.lock:
                    result = _swap(engine, old, new, seen, encoder, held)
                    if result is not None:
                        store.drop_collection(staging)  # now the old one's row, emptied
                        break
                continue  # a write came in between the last round and the swap: catch up
            _catch_up(engine, old, new, seen, now, index_entries, options, progress)
            seen = now
    except BaseException:
        with contextlib.suppress(Exception):
            store.drop_collection(staging)
        raise
    finally:
        hold.close()
    reembedded, missing, failed = result
    return ReembedReport(
        items=len(seen),
        reembedded=reembedded,
        missing=tuple(sorted(missing)),
        failed=tuple(sorted(failed, key=lambda f: f.uri)),
        rounds=rounds,
    )


def _catch_up(
    engine: Engine,
    old: Collection,
    new: Collection,
    seen: Snapshot,
    now: Snapshot,
    index_entries: Any,
    options: Any,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Bring the staging collection level with the old one's rows in ``now``."""
    live = {uri for uri, _, _ in now.values()}
    gone = [uri for uri, _, _ in seen.values() if uri not in live]
    if gone:
        new.remove(uris=gone)
    changed = [i for i, row in now.items() if seen.get(i) != row and row[1] == "ok"]
    entries = []
    for i in changed:
        item = old.get_item(i)
        entry = _entry(item.uri, item.modality)
        if entry is not None:
            entries.append(entry)
    if entries:
        index_entries(engine, new, entries, options, progress=progress)  # failures: in ``new``


def _swap(
    engine: Engine,
    old: Collection,
    new: Collection,
    seen: Snapshot,
    encoder: str,
    held: Connection | None = None,
) -> tuple[int, set[str], list[Failure]] | None:
    """In one write transaction: check nothing changed since ``seen``, move the old rows to the
    new collection with the new vectors, swap the names. None when a write came in meanwhile.

    ``held``: the connection holding the writer gate (PostgreSQL), which the transaction uses.
    """
    from sqlalchemy import bindparam, delete, select, update

    from embedstore.store import writes
    from embedstore.store.tables import collections, items, metadata, utcnow, vectors

    if not _finds_itself(new):
        raise Unavailable(
            f"Re-embedding {old.name!r}: the new index does not find its own vectors; "
            "kept the old collection"
        )
    reason = f"file missing when re-embedding with {encoder}"
    with old.indexes.lock, new.indexes.lock, _transaction(engine, held) as conn:
        writes.begin_write(conn, old.id, old.name)  # PostgreSQL: old-collection writers wait
        writes.begin_write(conn, new.id, new.name)
        if _snapshot(conn, old.id) != seen:
            return None
        staged = {
            uri: (iid, status, error, h, size, mtime)
            for iid, uri, status, error, h, size, mtime in conn.execute(
                select(
                    items.c.id,
                    items.c.uri,
                    items.c.status,
                    items.c.error,
                    items.c.content_hash,
                    items.c.size,
                    items.c.mtime,
                ).where(items.c.collection_id == new.id)
            )
        }
        with_vectors = {
            int(i)
            for (i,) in conn.execute(
                select(vectors.c.item_id).where(vectors.c.collection_id == new.id).distinct()
            )
        }
        stamp = utcnow()
        remap: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        missing: set[str] = set()
        failed: list[Failure] = []
        reembedded = 0
        for iid, (uri, status, _) in seen.items():
            got = staged.pop(uri, None)
            if got is not None and got[0] in with_vectors:
                sid, _, error, h, size, mtime = got
                remap.append({"_new": sid, "_old": iid})
                rows.append(_row(iid, "ok", error, stamp, h, size, mtime))
                reembedded += 1
            elif got is not None:
                rows.append(_row(iid, "failed", got[2], stamp))
                failed.append(Failure(uri, got[2] or "not embedded"))
            elif status == "ok":
                missing.add(uri)
                rows.append(_row(iid, "failed", reason, stamp))
        conn.execute(delete(vectors).where(vectors.c.collection_id == old.id))
        if remap:
            conn.execute(
                update(vectors)
                .where(vectors.c.item_id == bindparam("_new"))
                .values(item_id=bindparam("_old")),
                remap,
            )
        leftover = [sid for sid, *_ in staged.values()]  # staged rows the old one no longer has
        if leftover:
            writes.drop_vectors(conn, new.id, leftover, writes.Written())
        conn.execute(delete(items).where(items.c.collection_id == new.id))
        for table in metadata.sorted_tables:  # item-keyed side tables follow their items
            cols = table.c
            if table is not vectors and "item_id" in cols and "collection_id" in cols:
                conn.execute(
                    update(table).where(cols.collection_id == old.id).values(collection_id=new.id)
                )
        conn.execute(
            update(items).where(items.c.collection_id == old.id).values(collection_id=new.id)
        )
        if rows:
            for keys in {tuple(sorted(r)) for r in rows}:  # one executemany per row shape
                batch = [r for r in rows if tuple(sorted(r)) == keys]
                conn.execute(update(items).where(items.c.id == bindparam("_id")), batch)
        tmp = f"{old.name}.swap"
        for a, b in ((old.name, tmp), (new.name, old.name), (tmp, new.name)):
            conn.execute(update(collections).where(collections.c.name == a).values(name=b))
    return reembedded, missing, failed


@contextlib.contextmanager
def _transaction(engine: Engine, held: Connection | None) -> Iterator[Connection]:
    """A write transaction on ``held`` when given, else on a connection of the store's."""
    from embedstore.store.schema import writer

    if held is None:
        with writer(engine.store.engine).begin() as conn:
            yield conn
        return
    with held.begin():
        yield held


def _row(
    iid: int,
    status: str,
    error: str | None,
    stamp: datetime,
    h: str | None = None,
    size: int | None = None,
    mtime: float | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {"_id": iid, "status": status, "error": error, "updated_at": stamp}
    if status == "ok":
        row.update(content_hash=h, size=size, mtime=mtime)
    return row


def _finds_itself(coll: Collection) -> bool:
    """A stored vector searched in the new index comes back as its own item."""
    page = coll.list_items(limit=1, status="ok")
    if not page:
        return True
    vectors = coll.vectors_of(page[0].id)
    if not vectors:
        return True
    hits = coll.search(vectors[0].vector[None, :], 1, modalities=[vectors[0].modality])[0]
    return bool(hits) and hits[0].id == page[0].id

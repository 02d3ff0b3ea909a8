"""Deciding what each walked file needs: nothing, a stat touch, a move, a vector copy, or a model."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from embedstore.confine import check_opened
from embedstore.errors import EmbedstoreError
from embedstore.ingest import objects
from embedstore.ingest.walk import FileEntry

if TYPE_CHECKING:
    from embedstore.store import Collection

CHUNK = 500


@dataclass(slots=True)
class Group:
    """Files with the same bytes: the leader is decoded and embedded, the others get copies."""

    content_hash: str
    leader: FileEntry
    followers: list[FileEntry] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    """The work one ``index`` run has to do, file by file."""

    existing: dict[str, Any] = field(default_factory=dict)  # uri -> FileState
    unchanged: int = 0
    touch: list[tuple[int, FileEntry]] = field(default_factory=list)
    moves: list[tuple[int, FileEntry]] = field(default_factory=list)
    copies: list[tuple[int, FileEntry, str]] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    failures: list[tuple[FileEntry, str]] = field(default_factory=list)

    @property
    def to_embed(self) -> int:
        """Files whose leader needs decoding (the followers ride along)."""
        return sum(1 + len(g.followers) for g in self.groups)


def hash_file(path: str, roots: tuple[str, ...] = (), endpoint: str | None = None) -> str:
    """SHA-256 of a file's bytes, hex; with ``roots``, only a file opened inside them.

    An object storage URI is read through :mod:`embedstore.ingest.objects` (``endpoint``: S3's).
    """
    if objects.is_object_uri(path):
        return objects.hash_object(path, endpoint)
    with open(path, "rb") as f:
        if roots:
            check_opened(f.fileno(), path, roots)
        return hashlib.file_digest(f, "sha256").hexdigest()


HashAll = Callable[[Sequence[FileEntry], tuple[str, ...]], list[str | Exception]]


def hash_all_threads(
    entries: Sequence[FileEntry], roots: tuple[str, ...], endpoint: str | None = None
) -> list[str | Exception]:
    """SHA-256 of each file in 4 threads (the error where one cannot be read)."""

    def one(e: FileEntry) -> str | Exception:
        try:
            return hash_file(e.uri, roots, endpoint)
        except (OSError, EmbedstoreError) as err:
            return err

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, entries))


def _chunks(seq: Sequence[Any], n: int = CHUNK) -> list[Sequence[Any]]:
    return [seq[i : i + n] for i in range(0, len(seq), n)]


def make_plan(
    coll: Collection,
    entries: Sequence[FileEntry],
    *,
    on_changes: Callable[[int], None] | None = None,
    roots: tuple[str, ...] = (),
    hash_all: HashAll | None = None,
    endpoint: str | None = None,
) -> Plan:
    """Compare the walk with the catalog; hash only files whose (size, mtime) changed.

    ``on_changes(n)`` is called once, before hashing, when ``n`` files changed (likely work to
    decode).
    With ``roots``, a file whose opened descriptor lies outside them is a failure, not hashed.
    ``hash_all(files, roots)`` hashes the changed files (default: threads; the Ray job: tasks).
    ``endpoint``: the S3 endpoint of object storage URIs (a moved object's old URI is looked up).
    """
    plan = Plan()
    for chunk in _chunks(entries):
        plan.existing.update(coll.file_states([e.uri for e in chunk]))
    todo: list[FileEntry] = []
    for e in entries:
        st = plan.existing.get(e.uri)
        if st is not None and st.status == "ok" and st.size == e.size and st.mtime == e.mtime:
            plan.unchanged += 1
        else:
            todo.append(e)
    if not todo:
        return plan
    if on_changes is not None:
        on_changes(len(todo))
    hashed: list[tuple[FileEntry, str]] = []
    for e, h in zip(todo, (hash_all or hash_all_threads)(todo, roots)):
        if isinstance(h, EmbedstoreError):  # outside the roots; an object store's refusal
            plan.failures.append((e, str(h)))
            continue
        if not isinstance(h, str):
            reason = h.strerror if isinstance(h, OSError) and h.strerror else str(h)
            plan.failures.append((e, f"cannot read: {reason}"))
            continue
        st = plan.existing.get(e.uri)
        if st is not None and st.status == "ok" and st.content_hash == h:
            plan.touch.append((st.id, e))
        else:
            hashed.append((e, h))
    known: dict[str, int] = {}
    for chunk in _chunks(sorted({h for _, h in hashed})):
        known.update(coll.items_by_hash(list(chunk)))
    walked = {e.uri for e in entries}
    moved_from: set[int] = set()
    groups: dict[str, Group] = {}
    for e, h in hashed:
        if h in known:
            source = known[h]
            old_uri = coll.get_item(source).uri
            if source not in moved_from and old_uri not in walked and _gone(old_uri, endpoint):
                moved_from.add(source)
                plan.moves.append((source, e))
            else:
                plan.copies.append((source, e, h))
        elif h in groups:
            groups[h].followers.append(e)
        else:
            groups[h] = Group(h, e)
    plan.groups = list(groups.values())
    return plan


def _gone(uri: str, endpoint: str | None) -> bool:
    if objects.is_object_uri(uri):
        return uri in objects.missing([uri], endpoint)
    return not os.path.exists(uri)

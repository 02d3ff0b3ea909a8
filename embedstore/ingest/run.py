"""``index_paths``: one incremental, resumable indexing run over files and folders."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedstore.errors import EmbedstoreError
from embedstore.ingest import objects
from embedstore.ingest.pipeline import DecodeAhead, Embedder, FailureRow, Slot, Writer, items_of
from embedstore.ingest.plan import HashAll, Plan, hash_all_threads, make_plan
from embedstore.ingest.walk import FileEntry, walk
from embedstore.modalities.sources import DecodeLimits
from embedstore.types import Failure, IndexReport

if TYPE_CHECKING:
    from embedstore.encoders import Encoder
    from embedstore.engine import Engine
    from embedstore.modalities.pool import DecodePool
    from embedstore.store import Collection, NewItem

log = logging.getLogger(__name__)

INTERRUPT_GRACE_S = 30.0  # how long an interrupted run waits for queued batches to commit
# Runs with at most this many changed files decode in the indexing thread: starting a pool of
# decode processes took 1.3 s on the 2-core VM, decoding a photo 10-30 ms (docs/api.md).
IN_THREAD_MAX_FILES = 16


@dataclass(frozen=True, slots=True)
class IndexOptions:
    """How to walk and process the inputs of one run."""

    modality: str | None = None
    rules: dict[str, str] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    prune: bool = False
    batch_size: int = 32
    workers: int = 1
    limits: DecodeLimits | None = None
    decode_timeout_s: float | None = None
    within: tuple[str, ...] = ()  # every file must also lie inside these folders (API roots)
    metadata: dict[str, Any] = field(default_factory=dict)  # merged into every item written
    decode_device: str | None = None  # JPEGs decoded in batches on this device (gpu_decode)
    s3_endpoint: str | None = None  # of s3:// paths (ingest.objects); None: AWS_ENDPOINT_URL, AWS
    pool: DecodePool | None = None  # shared decode workers (Engine.decode_pool); None: start own


@dataclass(slots=True)
class _Counts:
    added: int = 0
    updated: int = 0
    moved: int = 0
    deduplicated: int = 0
    removed: int = 0
    failed: list[Failure] = field(default_factory=list)
    done: int = 0


def _failure_row(e: FileEntry, reason: str, content_hash: str | None = None) -> FailureRow:
    return (e.uri, reason, e.size, e.mtime, content_hash)


def _reason(err: BaseException) -> str:
    text = str(err) if isinstance(err, EmbedstoreError) else f"{type(err).__name__}: {err}"
    return " ".join(text.split()) or type(err).__name__


def index_paths(
    engine: Engine,
    coll: Collection,
    paths: Sequence[Path | str],
    options: IndexOptions,
    *,
    progress: Callable[[int, int], None] | None = None,
    embed: Callable[..., None] | None = None,
    hash_all: HashAll | None = None,
) -> IndexReport:
    """Walk, diff against the catalog, then decode, embed and write what changed.

    ``embed`` and ``hash_all`` replace the in-process steps (the Ray job's; see ray_job.py).

    Files are read only where the walk found them: the hash and the decoders check the opened
    file against the given paths (resolved), so a link swapped in after the walk is refused.
    A path may be an object storage URI (``s3://bucket/prefix``; :mod:`embedstore.ingest.objects`).
    """
    skipped: list[str] = []

    def skip(message: str) -> None:  # the report carries it; the CLI prints it on stderr
        log.info("%s", message)
        skipped.append(message)

    t0 = time.perf_counter()
    entries, roots = walk(
        paths,
        modality=options.modality,
        rules=options.rules,
        include=options.include,
        within=options.within,
        on_skip=skip,
        exclude=options.exclude,
        endpoint=options.s3_endpoint,
    )
    fences = tuple(
        os.path.realpath(os.path.expanduser(p)) for p in paths if not objects.is_object_uri(p)
    )
    limits = dataclasses.replace(options.limits or DecodeLimits(), roots=fences)
    report = index_entries(
        engine,
        coll,
        entries,
        dataclasses.replace(options, limits=limits),
        roots=roots,
        progress=progress,
        t0=t0,
        embed=embed,
        hash_all=hash_all,
    )
    return dataclasses.replace(report, skipped=tuple(skipped)) if skipped else report


def index_entries(
    engine: Engine,
    coll: Collection,
    entries: Sequence[FileEntry],
    options: IndexOptions,
    *,
    roots: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    t0: float | None = None,
    embed: Callable[..., None] | None = None,
    hash_all: HashAll | None = None,
) -> IndexReport:
    """Index already-walked files (each with its modality); prune under ``roots``."""
    t0 = time.perf_counter() if t0 is None else t0
    decoder: list[DecodeAhead] = []

    def start_decoder(changed: int) -> None:  # start the workers while the files are hashed
        opts = options
        if changed <= IN_THREAD_MAX_FILES:  # a pool's start-up costs more than these decodes
            opts = dataclasses.replace(options, workers=0, pool=None)
        decoder.append(_decoder(opts, coll.encoder))
        decoder[0].start()

    try:
        fences = options.limits.roots if options.limits else ()
        plan = make_plan(
            coll,
            entries,
            on_changes=start_decoder if embed is None else None,
            roots=fences,
            hash_all=hash_all or functools.partial(hash_all_threads, endpoint=options.s3_endpoint),
            endpoint=options.s3_endpoint,
        )
        ahead = decoder[0] if decoder else None
        return _run_plan(
            engine, coll, plan, options, ahead, roots, progress, t0, len(entries), embed=embed
        )
    finally:
        if decoder:
            decoder[0].cancel()


def _decoder(options: IndexOptions, encoder: str) -> DecodeAhead:
    """A decode thread whose workers start now; the groups to decode come later (``feed``).

    Its loaders use ``encoder``'s preprocessing recipe (``modalities.recipes``).
    """
    from embedstore.modalities.recipes import recipe_for_encoder

    return DecodeAhead(
        None,
        options.workers,
        2 * options.batch_size,
        limits=options.limits,
        timeout_s=options.decode_timeout_s,
        device=options.decode_device,
        batch_size=options.batch_size,
        recipe=recipe_for_encoder(encoder),
        pool=options.pool,
        endpoint=options.s3_endpoint,
    )


def _run_plan(
    engine: Engine,
    coll: Collection,
    plan: Plan,
    options: IndexOptions,
    decoder: DecodeAhead | None,
    roots: Sequence[str],
    progress: Callable[[int, int], None] | None,
    t0: float,
    total: int,
    embed: Callable[..., None] | None = None,
) -> IndexReport:
    """Apply a plan: cheap catalog updates, then decode, embed and write; prune; the report.

    ``embed`` replaces the in-process decode/embed step (the Ray job's, same arguments).
    """
    c = _Counts(done=plan.unchanged)

    def tick(n: int) -> None:
        c.done += n
        if progress is not None:
            progress(min(c.done, total), total)

    tick(0)
    writer = Writer(coll, tick, options.metadata)
    writer.start()
    try:
        _apply_cheap(coll, plan, c, writer, options.batch_size)
        (embed or _embed)(engine, coll, plan, c, writer, options, decoder)
    except BaseException:  # Ctrl-C or an error: save finished batches, but never hang here
        with contextlib.suppress(Exception):
            writer.close(timeout=INTERRUPT_GRACE_S)
        raise
    writer.close()
    if options.prune:
        c.removed = _prune(coll, roots, options.s3_endpoint)
    return IndexReport(
        added=c.added,
        updated=c.updated,
        unchanged=plan.unchanged + len(plan.touch),
        removed=c.removed,
        moved=c.moved,
        deduplicated=c.deduplicated,
        failed=tuple(c.failed),
        seconds=time.perf_counter() - t0,
    )


def _count(c: _Counts, plan: Plan, uri: str) -> None:
    if uri in plan.existing:
        c.updated += 1
    else:
        c.added += 1


def _apply_cheap(coll: Collection, plan: Plan, c: _Counts, writer: Writer, batch: int) -> None:
    """Touches, moves and copies of stored vectors: no decoding, no model."""
    from embedstore.store import NewItem

    for item_id, e in plan.touch:
        coll.move_item(item_id, e.uri, e.size, e.mtime)
    for item_id, e in plan.moves:
        st = plan.existing.get(e.uri)
        if st is not None and st.id != item_id:
            coll.remove(ids=[st.id])
        coll.move_item(item_id, e.uri, e.size, e.mtime)
        c.moved += 1
    c.done += len(plan.touch) + len(plan.moves)
    rows: list[FailureRow] = []
    for e, reason in plan.failures:
        rows.append(_failure_row(e, reason))
        c.failed.append(Failure(e.uri, reason))
    writer.put([], rows)
    pending: list[NewItem] = []
    for source, e, h in plan.copies:
        from embedstore.ingest.pipeline import metadata_of

        src = coll.get_item(source)
        pending.append(
            NewItem(
                e.uri, src.modality, h, e.size, e.mtime, metadata_of(e), coll.vectors_of(source)
            )
        )
        _count(c, plan, e.uri)
        c.deduplicated += 1
        if len(pending) >= batch:
            writer.put(pending)
            pending = []
    writer.put(pending)


def supported_groups(
    engine: Engine, coll: Collection, plan: Plan, c: _Counts, writer: Writer
) -> list[Any]:
    """The plan's groups that the collection's encoder can embed; the others are recorded failed."""
    from embedstore.encoders import get_encoder_info

    if not plan.groups:
        return []
    info = get_encoder_info(coll.encoder, engine.settings)
    supported = []
    for g in plan.groups:
        needs = "vision" if g.leader.modality == "video" else g.leader.modality
        if needs in info.modalities:
            supported.append(g)
            continue
        reason = f"encoder {info.name} cannot embed {needs}"
        group = (g.leader, *g.followers)
        writer.put([], [_failure_row(e, reason, g.content_hash) for e in group])
        c.failed.extend(Failure(e.uri, reason) for e in group)
    return supported


def _embed(
    engine: Engine,
    coll: Collection,
    plan: Plan,
    c: _Counts,
    writer: Writer,
    options: IndexOptions,
    decoder: DecodeAhead | None = None,
) -> None:
    """Decode the group leaders in workers, embed in batches, hand finished items to the writer."""
    supported = supported_groups(engine, coll, plan, c, writer)
    if not supported:
        return
    ahead = decoder or _decoder(options, coll.encoder)
    ahead.feed(supported)
    if ahead.ident is None:
        ahead.start()  # workers start up while the model loads
    try:
        # torch's thread count is process-wide: set once at start (embedstore.runtime), never here
        encoder = engine.collection_encoder(coll)
        _embed_groups(engine, encoder, ahead, plan, c, writer, options)
    finally:
        ahead.close()


def _embed_groups(
    engine: Engine,
    encoder: Encoder,
    ahead: DecodeAhead,
    plan: Plan,
    c: _Counts,
    writer: Writer,
    options: IndexOptions,
) -> None:
    """The decode -> embed loop: failures and finished items go to the writer as they come.

    This thread takes decoded items, collates the next batch while the model thread runs the
    previous one, and hands the items of the batches that ran to the writer (``Embedder``).
    """

    def done(slots: list[Slot]) -> None:  # once per batch that ran
        items: list[NewItem] = []
        for slot in slots:
            for e in [slot.group.leader, *slot.group.followers]:
                _count(c, plan, e.uri)
            c.deduplicated += len(slot.group.followers)
            items.extend(items_of(slot))
        writer.put(items)

    def fail(group_entries: list[FileEntry], reason: str, h: str) -> None:
        writer.put([], [_failure_row(e, reason, h) for e in group_entries])
        c.failed.extend(Failure(e.uri, reason) for e in group_entries)

    embedder = Embedder(engine, encoder, options.batch_size, done)
    try:
        for group, result in ahead:
            if isinstance(result, BaseException):
                fail([group.leader, *group.followers], _reason(result), group.content_hash)
            else:
                embedder.add(group, group.leader.modality, result)
        embedder.flush()
    finally:
        embedder.close()
    log.debug("embed step: %s", embedder.stats.as_dict())


def _prune(coll: Collection, roots: Sequence[str], endpoint: str | None = None) -> int:
    """Remove items under the walked folders whose files no longer exist, or that now resolve
    outside the folder (indexed through a link leading out, which the walk no longer follows).
    Under an object storage prefix: items whose objects are gone."""
    from embedstore.confine import inside

    gone: list[int] = []
    for root in roots:
        if objects.is_object_uri(root):
            gone.extend(_pruned_objects(coll, root, endpoint))
            continue
        prefix = root.rstrip(os.sep) + os.sep
        real_root = os.path.realpath(root)
        offset = 0
        while True:
            page = coll.list_items(where={"uri": {"prefix": prefix}}, limit=1000, offset=offset)
            gone.extend(
                i.id
                for i in page
                if not os.path.exists(i.uri) or not inside(os.path.realpath(i.uri), real_root)
            )
            if len(page) < 1000:
                break
            offset += len(page)
    return coll.remove(ids=gone) if gone else 0


def _pruned_objects(coll: Collection, root: str, endpoint: str | None) -> list[int]:
    """Ids of the items under the object storage prefix ``root`` whose objects are gone."""
    out: list[int] = []
    offset = 0
    while True:
        page = coll.list_items(where={"uri": {"prefix": root + "/"}}, limit=1000, offset=offset)
        gone = objects.missing([i.uri for i in page], endpoint) if page else set()
        out.extend(i.id for i in page if i.uri in gone)
        if len(page) < 1000:
            return out
        offset += len(page)

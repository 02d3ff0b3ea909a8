"""Query embedding and search for the API: decoding off the loop, encoding through the batcher."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from embedstore.api.batcher import Batcher, BatchObserver
from embedstore.errors import (
    DimensionMismatch,
    InvalidMedia,
    InvalidQuery,
    UnknownModality,
    UnsupportedMediaType,
    UnsupportedModality,
)
from embedstore.types import SearchResult

if TYPE_CHECKING:
    from embedstore.api.batcher import DynamicBatcher
    from embedstore.config import Settings
    from embedstore.engine import Engine
    from embedstore.store import Collection


@dataclass(frozen=True, slots=True)
class Target:
    """The collection a query runs against, with what the query path needs to know about it."""

    collection: Collection
    encoder: str
    dim: int
    modalities: frozenset[str]


SearchKey = tuple[str, int, int, tuple[str, ...] | None, str | None]
"""Queries with equal (collection, k, offset, modalities, where) are searched together."""


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """Where to look and how many hits: the part of a search shared by every kind of query."""

    k: int = 10
    offset: int = 0
    modalities: list[str] | None = None
    where: dict[str, Any] | None = None

    def key(self, collection: str) -> SearchKey:
        """The batching key of a search with these options."""
        mods = tuple(sorted(set(self.modalities))) if self.modalities else None
        where = json.dumps(self.where, sort_keys=True) if self.where is not None else None
        return (collection, self.k, self.offset, mods, where)


class QueryService:
    """Turns API queries into vectors (batched on the model) and runs them against the store."""

    def __init__(
        self,
        engine: Engine,
        batcher: DynamicBatcher,
        settings: Settings,
        *,
        observe_search: BatchObserver | None = None,
    ) -> None:
        self.engine = engine
        self.batcher = batcher
        self.settings = settings
        self.searcher: Batcher[SearchKey, np.ndarray, list[SearchResult]] = Batcher(
            self._search_batch,
            max_batch=settings.batch_size,
            wait_ms=0.0,  # queries leave the encoder together; no second wait window
            observe=observe_search,
        )

    # -- validation --------------------------------------------------------------------------------
    def check_options(self, opts: SearchOptions) -> SearchOptions:
        """Enforce ``max_k`` and known modalities (400/422 naming the field)."""
        from embedstore.modalities import list_modalities

        max_k = self.settings.max_k
        if opts.k > max_k:
            raise InvalidQuery(f"k={opts.k} exceeds the server's max_k={max_k}", field="k")
        if opts.k + opts.offset > max_k:
            raise InvalidQuery(
                f"k + offset = {opts.k + opts.offset} exceeds the server's max_k={max_k}",
                field="offset",
            )
        if opts.where is not None:
            _check_where(opts.where)
        if opts.modalities:
            known = set(list_modalities())
            unknown = sorted(set(opts.modalities) - known)
            if unknown:
                raise UnknownModality(
                    f"Unknown modality {unknown[0]!r} in 'modalities'; known: "
                    f"{', '.join(sorted(known))}",
                    field="modalities",
                )
        return opts

    @staticmethod
    def check_modality(modality: str | None) -> None:
        """422 for a modality name that is not registered (None passes)."""
        from embedstore.modalities import list_modalities

        if modality is not None and modality not in list_modalities():
            raise UnknownModality(
                f"Unknown modality {modality!r}; known: {', '.join(sorted(list_modalities()))}",
                field="modality",
            )

    def check_text(self, text: str) -> str:
        """Enforce ``max_query_chars``."""
        if len(text) > self.settings.max_query_chars:
            raise InvalidQuery(
                f"Query text has {len(text)} characters; the limit is "
                f"{self.settings.max_query_chars} (max_query_chars)",
                field="text",
            )
        return text

    # -- resolution (runs in a worker thread) ------------------------------------------------------
    def target(self, name: str) -> Target:
        """The collection and its encoder (loaded on first use)."""
        coll = self.engine.collection(name)
        enc = self.engine.encoder(coll.encoder)  # cached; coll.info() would count rows
        return Target(coll, coll.encoder, coll.dim, frozenset(enc.modalities))

    def _decode(
        self, name: str, modality: str, source: str | bytes, label: str | None = None
    ) -> tuple[Target, Any]:
        from embedstore.modalities import DecodeLimits, load
        from embedstore.modalities.recipes import recipe_of

        target = self.target(name)
        check = modality if modality != "video" else "vision"
        if check not in target.modalities:
            raise UnsupportedModality(
                f"Encoder {target.encoder!r} of collection {name!r} cannot embed {modality!r}; "
                f"it knows: {', '.join(sorted(target.modalities))}",
                field="modality",
            )
        try:
            item = load(
                modality,
                source,
                limits=DecodeLimits.from_settings(self.settings),
                recipe=recipe_of(self.engine.encoder(target.encoder)),  # cached
            )
        except (InvalidMedia, UnsupportedMediaType) as e:
            if label is None:
                raise
            raise type(e)(f"Upload {label!r}: {e}", field="file") from e
        return target, item

    # -- queries -----------------------------------------------------------------------------------
    async def embed(
        self, name: str, modality: str, source: str | bytes, label: str | None = None
    ) -> tuple[Target, np.ndarray]:
        """Decode ``source`` off the event loop and embed it through the batcher: ``(dim,)``.

        ``label`` names an uploaded file in error messages.
        """
        from embedstore.modalities import VideoItem

        target, item = await run_in_threadpool(self._decode, name, modality, source, label)
        if isinstance(item, VideoItem):  # many clips: one direct call, their mean is the query
            return target, await run_in_threadpool(self._embed_clips, target, item.clips)
        return target, await self.batcher.embed(target.encoder, modality, item)

    def _embed_clips(self, target: Target, clips: Any) -> np.ndarray:
        enc = self.engine.encoder(target.encoder)
        vec = self.engine.encode(enc, "vision", clips).mean(axis=0)
        return np.asarray(vec / max(float(np.linalg.norm(vec)), 1e-12), dtype=np.float32)

    async def search_source(
        self,
        name: str,
        modality: str,
        source: str | bytes,
        opts: SearchOptions,
        label: str | None = None,
    ) -> list[SearchResult]:
        """Search with text (``modality='text'``) or the bytes of a media file.

        When nothing is queued or running (one client, or a quiet moment), the query is decoded,
        embedded and searched in one worker thread, without waiting in the batchers; while
        it runs, the batchers count as busy, so queries arriving meanwhile queue up there and
        share the next calls.
        """
        if self.batcher.idle() and self.searcher.idle():
            with self.batcher.hold(), self.searcher.hold():
                return await run_in_threadpool(
                    self._search_alone, name, modality, source, opts, label
                )
        _, vec = await self.embed(name, modality, source, label)
        return await self.searcher.submit(opts.key(name), vec)

    def _search_alone(
        self, name: str, modality: str, source: str | bytes, opts: SearchOptions, label: str | None
    ) -> list[SearchResult]:
        """Decode, embed and search one query in this (worker) thread."""
        from embedstore.modalities import VideoItem

        target, item = self._decode(name, modality, source, label)
        if isinstance(item, VideoItem):
            vec = self._embed_clips(target, item.clips)
        else:
            vec = self.batcher.run_alone((target.encoder, modality), item)
        return self.searcher.run_alone(
            opts.key(name), vec, lambda key, vecs: self._search_in(target.collection, key, vecs)
        )

    async def search_vector(
        self, name: str, vector: Sequence[float], opts: SearchOptions
    ) -> list[SearchResult]:
        """Search with a raw vector (normalised here, so scores stay cosine similarities)."""

        def check() -> np.ndarray:
            dim = self.engine.collection(name).dim
            if len(vector) != dim:
                raise DimensionMismatch(
                    f"Vector has {len(vector)} dimensions; collection {name!r} has {dim}",
                    field="vector",
                )
            q = np.asarray(vector, dtype=np.float64)
            norm = float(np.linalg.norm(q))
            if not math.isfinite(norm) or norm == 0.0:
                raise InvalidQuery("Vector must be finite and non-zero", field="vector")
            return (q / norm).astype(np.float32)

        return await self.searcher.submit(opts.key(name), await run_in_threadpool(check))

    async def search_item(self, name: str, item_id: int, opts: SearchOptions) -> list[SearchResult]:
        """Neighbours of a stored item."""

        def run() -> list[SearchResult]:
            coll = self.engine.collection(name)
            return coll.similar_to(
                item_id, opts.k, modalities=opts.modalities, where=opts.where, offset=opts.offset
            )

        return await run_in_threadpool(run)

    def _search_batch(self, key: SearchKey, vectors: list[np.ndarray]) -> list[list[SearchResult]]:
        """One index search for every queued query with the same key (runs in a thread)."""
        return self._search_in(self.engine.collection(key[0]), key, vectors)

    @staticmethod
    def _search_in(
        coll: Collection, key: SearchKey, vectors: list[np.ndarray]
    ) -> list[list[SearchResult]]:
        _, k, offset, mods, where = key
        queries = np.ascontiguousarray(np.stack(vectors), dtype=np.float32)
        return coll.search(
            queries,
            k,
            modalities=list(mods) if mods else None,
            where=json.loads(where) if where is not None else None,
            offset=offset,
        )


INT64 = (-(2**63), 2**63 - 1)


def _check_where(value: Any, depth: int = 0) -> None:
    """Reject filters the catalog cannot store: integers beyond 64 bits, absurd nesting."""
    if depth > 8:
        raise InvalidQuery("'where' is nested too deeply", field="where")
    if isinstance(value, dict):
        for v in value.values():
            _check_where(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_where(v, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool):
        if not INT64[0] <= value <= INT64[1]:
            raise InvalidQuery(f"'where' holds an integer beyond 64 bits: {value}", field="where")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidQuery("'where' holds NaN or an infinite number", field="where")


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()`` value), rounded to 0.01."""
    return round((time.perf_counter() - start) * 1000.0, 2)

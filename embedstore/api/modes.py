"""Keyword and hybrid search for the API: the text is embedded through the batcher as usual."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from embedstore.hybrid import depth, fuse
from embedstore.types import SearchResult

if TYPE_CHECKING:
    from embedstore.api.deps import ApiState
    from embedstore.api.queries import SearchOptions


async def text_mode_search(
    state: ApiState, name: str, text: str, mode: str, opts: SearchOptions
) -> list[SearchResult]:
    """``keyword``: full-text ranking alone; ``hybrid``: fused with the vector ranking."""
    engine = state.engine
    n = depth(opts.k, opts.offset, state.settings.hybrid_candidates)

    def keyword(k: int, offset: int) -> list[SearchResult]:
        coll = engine.collection(name)
        return coll.keyword_search(
            text, k, modalities=opts.modalities, where=opts.where, offset=offset
        )

    if mode == "keyword":
        return await run_in_threadpool(keyword, opts.k, opts.offset)
    _, vec = await state.queries.embed(name, "text", text)

    def both() -> tuple[list[SearchResult], list[SearchResult]]:
        coll = engine.collection(name)
        hits = coll.search(vec, n, modalities=opts.modalities, where=opts.where)[0]
        return hits, keyword(n, 0)

    vector_hits, keyword_hits = await run_in_threadpool(both)
    return fuse(vector_hits, keyword_hits, state.settings.rrf_k, opts.k, opts.offset)

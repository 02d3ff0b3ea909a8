"""Search modes: ``vector`` (the embedding index), ``keyword`` (full text) and ``hybrid``.

``hybrid`` fuses the two rankings by reciprocal rank fusion (Cormack et al., 2009): an item's
score is the sum over the rankings it appears in of ``1 / (c + rank)``, rank counted from 1,
with ``c`` the ``rrf_k`` setting (60 by default, the paper's value).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from embedstore.errors import InvalidQuery
from embedstore.types import SearchResult

if TYPE_CHECKING:
    from embedstore.engine import Engine
    from embedstore.store import Collection

MODES = ("vector", "keyword", "hybrid")


def check_mode(mode: str) -> str:
    """``mode`` if it is a known search mode, else InvalidQuery naming the field."""
    if mode not in MODES:
        raise InvalidQuery(
            f"Unknown search mode {mode!r}; use one of: {', '.join(MODES)}", field="mode"
        )
    return mode


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[SearchResult]], c: float
) -> list[SearchResult]:
    """Fuse rankings (best first) into one, scored ``sum 1 / (c + rank)``, best first.

    An item in several rankings keeps the hit of the first ranking that holds it (its matching
    modality and time span). Ties go to the item with the better single rank, then the lower id.
    """
    score: dict[int, float] = {}
    best: dict[int, int] = {}
    hit: dict[int, SearchResult] = {}
    for ranking in rankings:
        for rank, h in enumerate(ranking, start=1):
            score[h.id] = score.get(h.id, 0.0) + 1.0 / (c + rank)
            best[h.id] = min(best.get(h.id, rank), rank)
            hit.setdefault(h.id, h)
    order = sorted(score, key=lambda i: (-score[i], best[i], i))
    return [dataclasses.replace(hit[i], score=score[i]) for i in order]


def depth(k: int, offset: int, candidates: int) -> int:
    """How many hits each side of a hybrid search contributes."""
    return max(k + offset, candidates)


def fuse(
    vector_hits: Sequence[SearchResult],
    keyword_hits: Sequence[SearchResult],
    c: float,
    k: int,
    offset: int = 0,
) -> list[SearchResult]:
    """The ``k`` best fused hits after ``offset``."""
    return reciprocal_rank_fusion([vector_hits, keyword_hits], c)[offset : offset + k]


def text_search(
    engine: Engine,
    coll: Collection,
    text: str,
    mode: str,
    *,
    k: int,
    offset: int = 0,
    modalities: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
) -> list[SearchResult]:
    """A text query in ``keyword`` or ``hybrid`` mode (``vector`` goes through the engine)."""
    check_mode(mode)
    if mode == "keyword":
        return coll.keyword_search(text, k, modalities=modalities, where=where, offset=offset)
    n = depth(k, offset, engine.settings.hybrid_candidates)
    q = engine.embed_query(coll, "text", text)
    vector_hits = coll.search(q, n, modalities=modalities, where=where)[0]
    keyword_hits = coll.keyword_search(text, n, modalities=modalities, where=where)
    return fuse(vector_hits, keyword_hits, engine.settings.rrf_k, k, offset)

"""Choosing an index spec from the collection size."""

from __future__ import annotations

import math

EXACT_LIMIT = 20_000  # brute force is exact and a few ms per query up to here
IVF_FLAT_LIMIT = 2_000_000  # beyond this, raw float32 vectors no longer fit comfortably in RAM


def auto_spec(n: int, dim: int = 1024) -> str:
    """Pick an index factory spec for ``n`` vectors of ``dim``: Flat, then IVF-Flat, then IVF-PQ."""
    if n <= EXACT_LIMIT:
        return "Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    if n <= IVF_FLAT_LIMIT:
        return f"IVF{nlist},Flat"
    m = next(m for m in (64, 48, 32, 16, 8, 4, 2, 1) if dim % m == 0 and m <= dim)
    return f"IVF{nlist},PQ{m}"


def training_size(min_points: int, n_available: int) -> int:
    """How many vectors to train on: ~50 per centroid, at least the minimum, at most what exists."""
    return min(n_available, max(min_points, 50 * min_points, 10_000))

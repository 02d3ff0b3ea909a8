"""ExactIndex: brute-force numpy search, the ground truth for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from indexers.base import (
    FORMAT_VERSION,
    Metric,
    as_ids,
    as_queries,
    as_vectors,
    atomic_savez,
    brute_force,
    contains,
    empty_result,
)
from indexers.errors import InvalidVectors


class ExactIndex:
    """Exact inner-product (or L2) search over vectors held in one numpy matrix."""

    spec = "exact"

    def __init__(self, dim: int, metric: Metric = "ip") -> None:
        self.dim = dim
        self.metric: Metric = metric
        self.meta: dict[str, Any] = {}
        self._ids = np.empty(0, dtype=np.int64)  # sorted
        self._x = np.empty((0, dim), dtype=np.float32)  # a view of the first rows of _rows
        self._rows = self._x  # storage with spare capacity, so appends are amortised O(1)

    @property
    def is_trained(self) -> bool:
        """Always true: brute force needs no training."""
        return True

    def train(self, sample: np.ndarray) -> None:
        """Nothing to train."""

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ``ids`` (ids must be new)."""
        x = as_vectors(vectors, self.dim)
        ids = as_ids(ids, len(x))
        if len(np.unique(ids)) != len(ids) or contains(self._ids, ids).any():
            raise InvalidVectors("ids: duplicate ids (remove them first)")
        all_ids = np.concatenate([self._ids, ids])
        if len(self._ids) and len(ids) and ids.min() <= self._ids[-1] or not _is_sorted(ids):
            order = np.argsort(all_ids, kind="stable")
            self._ids, self._x = all_ids[order], np.concatenate([self._x, x])[order]
            self._rows = self._x
            return
        n0, n1 = len(self._ids), len(all_ids)
        if len(self._rows) < n1:
            grown = np.empty((max(n1, 2 * len(self._rows)), self.dim), dtype=np.float32)
            grown[:n0] = self._x
            self._rows = grown
        self._rows[n0:n1] = x
        self._ids, self._x = all_ids, self._rows[:n1]

    def remove(self, ids: np.ndarray) -> int:
        """Remove the given ids; returns how many were present."""
        ids = as_ids(ids)
        keep = ~np.isin(self._ids, ids)
        removed = int(len(self._ids) - keep.sum())
        if removed:
            self._ids, self._x = self._ids[keep], self._x[keep]
            self._rows = self._x
        return removed

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None, **_: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k (scores, ids), restricted to ``allowed`` ids when given; -1 pads."""
        q = as_queries(queries, self.dim)
        if allowed is None:
            return brute_force(q, self._ids, self._x, k, self.metric)
        mask = np.isin(self._ids, as_ids(allowed))
        if not mask.any():
            return empty_result(len(q), k, self.metric)
        return brute_force(q, self._ids[mask], self._x[mask], k, self.metric)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (all must be present)."""
        ids = as_ids(ids)
        if not contains(self._ids, ids).all():
            raise InvalidVectors("reconstruct: unknown ids")
        return self._x[np.searchsorted(self._ids, ids)]

    def ids(self) -> np.ndarray:
        """Sorted ids of the live vectors."""
        return self._ids.copy()

    def __len__(self) -> int:
        return len(self._ids)

    def save(self, path: Path | str) -> None:
        """Write the index atomically (temp file + rename)."""
        header = {"kind": "exact", "format": FORMAT_VERSION, "dim": self.dim}
        header |= {"metric": self.metric, "meta": self.meta}
        atomic_savez(path, header, ids=self._ids, x=self._x)

    @classmethod
    def from_arrays(cls, header: dict[str, Any], arrays: Any) -> ExactIndex:
        """Rebuild from what :meth:`save` wrote."""
        index = cls(int(header["dim"]), header["metric"])
        index.meta = dict(header.get("meta", {}))
        index._ids = np.asarray(arrays["ids"], dtype=np.int64)
        index._x = index._rows = np.ascontiguousarray(arrays["x"], dtype=np.float32)
        return index


def _is_sorted(a: np.ndarray) -> bool:
    return bool(len(a) < 2 or (a[1:] > a[:-1]).all())

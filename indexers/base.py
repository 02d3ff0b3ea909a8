"""The protocol every index implements, and input validation shared by the implementations."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from indexers.errors import InvalidVectors

Metric = Literal["ip", "l2"]
FORMAT_VERSION = 1


@runtime_checkable
class Index(Protocol):
    """A vector index keyed by caller-chosen int64 ids."""

    dim: int
    metric: Metric
    spec: str
    meta: dict[str, Any]

    @property
    def is_trained(self) -> bool: ...

    def train(self, sample: np.ndarray) -> None: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def ids(self) -> np.ndarray: ...

    def save(self, path: Path | str) -> None: ...

    def __len__(self) -> int: ...


def as_vectors(vectors: Any, dim: int, what: str = "vectors") -> np.ndarray:
    """Return ``vectors`` as a C-contiguous float32 ``(n, dim)`` array, or raise InvalidVectors."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InvalidVectors(f"{what}: expected shape (n, {dim}), got {tuple(np.shape(vectors))}")
    if not np.isfinite(arr).all():
        raise InvalidVectors(f"{what}: contains NaN or infinite values")
    return np.ascontiguousarray(arr)


def as_queries(queries: Any, dim: int) -> np.ndarray:
    """Queries as C-contiguous float32 ``(nq, dim)``; cheap when they already are (no NaN scan)."""
    if (
        isinstance(queries, np.ndarray)
        and queries.dtype == np.float32
        and queries.ndim == 2
        and queries.shape[1] == dim
        and queries.flags.c_contiguous
    ):
        return queries
    return as_vectors(queries, dim, "queries")


def as_ids(ids: Any, n: int | None = None) -> np.ndarray:
    """Return ``ids`` as a 1-d int64 array (of length ``n`` when given), or raise InvalidVectors."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InvalidVectors(
            f"ids: expected a 1-d integer array, got dtype {arr.dtype} shape {arr.shape}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if n is not None and len(arr) != n:
        raise InvalidVectors(f"ids: {len(arr)} ids for {n} vectors")
    if arr.size and arr.min() < 0:
        raise InvalidVectors("ids: must be >= 0")
    return arr


def empty_result(nq: int, k: int, metric: Metric) -> tuple[np.ndarray, np.ndarray]:
    """Scores and ids for ``nq`` queries that found nothing (ids -1, FAISS's sentinel scores)."""
    fill = -np.finfo(np.float32).max if metric == "ip" else np.finfo(np.float32).max
    return np.full((nq, k), fill, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)


def brute_force(
    queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int, metric: Metric
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of ``queries`` against ``vectors`` (labelled ``ids``), best first."""
    nq = len(queries)
    scores, out_ids = empty_result(nq, k, metric)
    n = len(ids)
    if n == 0 or k <= 0:
        return scores, out_ids
    sims = queries @ vectors.T
    if metric == "l2":
        sims = (queries**2).sum(1)[:, None] - 2 * sims + (vectors**2).sum(1)[None, :]
        sims = -sims
    kk = min(k, n)
    part = (
        np.argpartition(-sims, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (nq, 1))
    )
    top = np.take_along_axis(sims, part, 1)
    order = np.argsort(-top, axis=1, kind="stable")
    best = np.take_along_axis(part, order, 1)
    top = np.take_along_axis(top, order, 1)
    scores[:, :kk] = top if metric == "ip" else -top
    out_ids[:, :kk] = ids[best]
    return scores, out_ids


def atomic_savez(path: Path | str, header: dict[str, Any], **arrays: np.ndarray) -> None:
    """Write arrays plus a JSON header to ``path`` through a temp file, fsync and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - directories cannot be fsynced on some platforms
        pass


def sorted_union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Union of two sorted unique id arrays (cheap when ``b`` is all above ``a``)."""
    if not len(a):
        return np.unique(b)
    if not len(b):
        return a
    b = np.unique(b)
    if b[0] > a[-1]:
        return np.concatenate([a, b])
    return np.union1d(a, b)


def contains(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``ids`` are in the sorted array ``sorted_ids``."""
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=bool)
    pos = np.searchsorted(sorted_ids, ids).clip(max=len(sorted_ids) - 1)
    return np.asarray(sorted_ids[pos] == ids)

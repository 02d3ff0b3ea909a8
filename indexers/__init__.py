"""FAISS index wrappers keyed by our int64 ids (numpy and faiss only; never imports embedstore).

FAISS itself loads on first use (``FaissIndex``, a FAISS spec, or a FAISS index file), so code
that only reads the catalog, or uses exact indexes, never imports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from indexers.base import Index, Metric, brute_force
from indexers.errors import (
    IndexError_,
    InvalidSpec,
    InvalidVectors,
    NotTrained,
    UnsupportedOperation,
)
from indexers.exact import ExactIndex
from indexers.spec import auto_spec, training_size

if TYPE_CHECKING:
    from indexers.faiss_index import FaissIndex, build_faiss, companions  # noqa: F401

_FAISS_NAMES = ("FaissIndex", "build_faiss", "companions")


def __getattr__(name: str) -> Any:
    if name in _FAISS_NAMES:
        from indexers import faiss_index

        return getattr(faiss_index, name)
    raise AttributeError(f"module 'indexers' has no attribute {name!r}")


def create_index(
    spec: str, dim: int, *, metric: Metric = "ip", n: int = 0
) -> ExactIndex | FaissIndex:
    """Build an empty index: ``"exact"`` (numpy), ``"auto"`` (sized for ``n``) or any FAISS spec."""
    if spec == "exact":
        return ExactIndex(dim, metric)
    from indexers.faiss_index import FaissIndex

    return FaissIndex(auto_spec(n, dim) if spec == "auto" else spec, dim, metric)


def load_index(path: Path | str) -> ExactIndex | FaissIndex:
    """Read an index written by ``save``; raises IndexError_ when the file is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            header = json.loads(str(arrays["header"]))
            if header.get("kind") == "exact":
                return ExactIndex.from_arrays(header, arrays)
            if header.get("kind") == "faiss":
                from indexers.faiss_index import FaissIndex

                return FaissIndex.from_arrays(header, arrays, Path(path).parent)
    except (OSError, ValueError, KeyError, RuntimeError, EOFError) as e:
        raise IndexError_(f"cannot read index file {path}: {e}") from e
    raise IndexError_(f"cannot read index file {path}: unknown kind {header.get('kind')!r}")


def remove_index(path: Path | str) -> None:
    """Delete an index file and the FAISS data file(s) beside it."""
    from indexers.faiss_index import companions

    for file in [Path(path), *companions(path)]:
        file.unlink(missing_ok=True)


def validate_spec(spec: str, dim: int, metric: Metric = "ip") -> None:
    """Raise InvalidSpec unless ``spec`` is ``auto``, ``exact`` or a spec FAISS can build."""
    if spec not in ("auto", "exact"):
        from indexers.faiss_index import build_faiss

        build_faiss(spec, dim, metric)


__all__ = [
    "ExactIndex",
    "FaissIndex",
    "Index",
    "IndexError_",
    "InvalidSpec",
    "InvalidVectors",
    "Metric",
    "NotTrained",
    "UnsupportedOperation",
    "auto_spec",
    "brute_force",
    "create_index",
    "load_index",
    "remove_index",
    "training_size",
    "validate_spec",
]

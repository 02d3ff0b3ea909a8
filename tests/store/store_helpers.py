"""Test data for the store tests."""

from __future__ import annotations

import numpy as np

from embedstore.store import NewItem, NewVector


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_items(
    n: int, dim: int = 16, *, seed: int = 0, prefix: str = "/data/", modality: str = "vision"
) -> list[NewItem]:
    """``n`` items with one random unit vector each and metadata ``{"n": i, "even": bool}``."""
    x = unit(np.random.default_rng(seed).standard_normal((n, dim)))
    return [
        NewItem(
            uri=f"{prefix}{i:05d}.jpg",
            modality=modality,
            content_hash=f"h{seed}-{i}",
            size=100 + i,
            mtime=float(i),
            metadata={"n": i, "even": i % 2 == 0, "tag": "ab"[i % 2]},
            vectors=[NewVector(modality, x[i])],
        )
        for i in range(n)
    ]

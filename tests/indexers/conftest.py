"""Seeded, structured synthetic vectors (clusters on the unit sphere) for index tests."""

from __future__ import annotations

import numpy as np
import pytest


def clustered(
    n: int, dim: int, *, clusters: int = 32, seed: int = 0, spread: float = 0.25
) -> np.ndarray:
    """``n`` L2-normalised float32 vectors drawn around ``clusters`` random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim)).astype(
        np.float32
    )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


@pytest.fixture(autouse=True)
def _one_faiss_thread(one_faiss_thread: None) -> None:
    """Every index test runs FAISS on one thread (see ``one_faiss_thread``)."""


@pytest.fixture(scope="session")
def dataset() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, base vectors, queries): 6000 x 32, ids that are not row numbers."""
    x = clustered(6100, 32)
    ids = np.arange(6000, dtype=np.int64) * 3 + 7
    return ids, x[:6000], x[6000:]


@pytest.fixture(scope="session")
def tuning_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, base vectors, unseen queries): 10k x 32 in 64 looser clusters, for knob tuning."""
    x = clustered(10_300, 32, clusters=64, spread=0.5, seed=4)
    return np.arange(10_000, dtype=np.int64) + 100, x[:10_000], x[10_000:]

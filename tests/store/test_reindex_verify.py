"""``Collection.reindex`` checks a rebuilt index (recall@10 against exact search) before the swap."""

from __future__ import annotations

import numpy as np
import pytest
from store_helpers import make_items

from embedstore.errors import InvalidInput
from embedstore.store import Store
from embedstore.store.verify import recall_at_k
from indexers import ExactIndex, create_index


def test_a_good_index_is_measured_and_swapped_in(store: Store) -> None:
    coll = store.create_collection("c", "e", 16, index_spec="Flat")
    coll.add_items(make_items(2000))
    coll.reindex("HNSW32")
    assert coll.info().index_spec == "HNSW32"
    assert set(coll.verified) == {"vision"} and coll.verified["vision"] >= 0.9


def test_a_lossy_index_below_the_bar_is_refused(store: Store) -> None:
    coll = store.create_collection("c", "e", 16, index_spec="Flat")
    batch = make_items(400)
    coll.add_items(batch)
    q = np.stack([b.vectors[0].vector for b in batch[:5]])
    before = [[h.id for h in row] for row in coll.search(q, k=3)]
    # 4 sub-quantisers of 4 bits for 16 dims: about half of the true top 10 (0.53 measured)
    with pytest.raises(InvalidInput, match=r"recall@10 0\.\d+ against exact search .* below 0\.9"):
        coll.reindex("PQ4x4")
    assert coll.info().index_spec == "Flat" and coll.indexes.indexes["vision"].spec == "Flat"
    assert [[h.id for h in row] for row in store.collection("c").search(q, k=3)] == before
    coll.reindex("PQ4x4", min_recall=0.3)  # accepted when the caller lowers the bar
    assert coll.info().index_spec == "PQ4x4" and 0.3 <= coll.verified["vision"] < 0.9


def test_recall_counts_ties_and_exact_is_perfect() -> None:
    x = np.repeat(make_unit(50), 3, axis=0)  # every vector three times: ties everywhere
    ids = np.arange(1, len(x) + 1, dtype=np.int64)
    exact = ExactIndex(16)
    exact.add(ids, x)
    assert recall_at_k(exact, ids, x) == (1.0, 150)
    broken = create_index("Flat", 16)
    broken.add(ids[:10], x[:10])  # an index missing most vectors
    recall, _ = recall_at_k(broken, ids, x)
    assert recall < 0.2


def make_unit(n: int) -> np.ndarray:
    x = np.random.default_rng(3).standard_normal((n, 16)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_tuned_graph_on_clustered_data_passes_the_check(store: Store) -> None:
    """Clustered vectors, like real embeddings: a graph tuned to 0.96 on held-out vectors must
    pass. Queries between two random clusters, where no query goes, read about 0.65 here."""
    from benchmarks.common import synthetic_clustered
    from embedstore.store import NewItem, NewVector

    x = synthetic_clustered(4000, 1, 64, seed=0).xb
    coll = store.create_collection("c", "e", 64, index_spec="Flat")
    coll.add_items(
        [
            NewItem(f"/data/{i}.jpg", "vision", f"h{i}", 1, 0.0, {}, [NewVector("vision", v)])
            for i, v in enumerate(x)
        ]  # fmt: skip
    )
    coll.reindex("HNSW32")
    assert coll.info().index_spec == "HNSW32" and coll.verified["vision"] >= 0.9

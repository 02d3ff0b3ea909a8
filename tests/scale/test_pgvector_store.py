"""The pgvector index backend on a real PostgreSQL 16 + pgvector 0.8 server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from embedstore.errors import InvalidInput, Unavailable
from embedstore.store import NewItem, NewVector, Store
from embedstore.store.pgvector import index_name

pytestmark = pytest.mark.postgres

DIM = 64
N = 3000  # above HNSW_MIN, so flush builds the graph


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 30 centres: neighbours are close, as with real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, dim)).astype(np.float32)
    x = centres[rng.integers(0, 30, n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def meta(i: int) -> dict[str, object]:
    return {"pct1": i % 100, "pct10": i % 10, "rare": i in (5, 905, 1805, 2705)}


def exact_top(x: np.ndarray, q: np.ndarray, k: int, keep: np.ndarray | None = None) -> list[int]:
    s = x @ q
    if keep is not None:
        s = np.where(keep, s, -np.inf)
    return [int(i) for i in np.argsort(-s, kind="stable")[:k] if np.isfinite(s[i])]


@pytest.fixture
def loaded(pgvector_url: str, coll_name: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    store = Store(pgvector_url, tmp_path / "indexes")
    coll = store.create_collection(coll_name, "synthetic", DIM, index_backend="pgvector")
    x = clustered(N, DIM)
    for start in range(0, N, 500):
        coll.add_items(
            [
                NewItem(f"/lib/{i:05d}.jpg", "vision", f"h{i}", 1, 0.0, meta(i),
                        [NewVector("vision", x[i])])
                for i in range(start, start + 500)
            ]
        )  # fmt: skip
    yield store, coll, x
    store.drop_collection(coll_name)
    with store.engine.connect() as conn:  # the collection's HNSW index went with it
        left = conn.execute(
            text("SELECT count(*) FROM pg_indexes WHERE indexname = :n"),
            {"n": index_name(coll.id, "vision")},
        ).scalar()
    store.close()
    assert left == 0


def uri_index(hits: list) -> list[int]:  # type: ignore[type-arg]
    return [int(h.uri.rsplit("/", 1)[1].split(".")[0]) for h in hits]


def test_exact_before_the_graph_then_hnsw_tuned_and_used(loaded) -> None:  # type: ignore[no-untyped-def]
    store, coll, x = loaded
    assert coll.info().index_backend == "pgvector" and coll.info().vectors == N
    # loaded without a graph: searched exactly
    assert coll.indexes.indexes == {"vision": None}
    q = x[17]
    assert uri_index(coll.search(q, 10)[0]) == exact_top(x, q, 10)
    coll.flush()  # builds the partial HNSW index and tunes ef_search
    ef = coll.indexes.indexes["vision"]
    assert ef is not None
    with store.engine.connect() as conn:
        params = conn.execute(
            text("SELECT index_params FROM collections WHERE id = :i"), {"i": coll.id}
        ).scalar()
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                text(
                    f"EXPLAIN SELECT id FROM vectors WHERE collection_id = {coll.id} AND "
                    f"modality = 'vision' ORDER BY embedding::halfvec({DIM}) <#> "
                    f"CAST(:q AS halfvec({DIM})) LIMIT 10"
                ),
                {"q": str(x[0].tolist())},
            )
        )
    assert params["ef_search"]["vision"] == ef
    assert params["recall_at_10"]["vision"] >= 0.95  # measured by the tuning against exact
    assert index_name(coll.id, "vision") in plan  # the served query walks the partial index
    # fresh queries (perturbed stored vectors): recall@10 against exact float32 search. 20
    # queries sample the 0.95 the tuning reached, and halfvec rounds each score by ~1e-3, so a
    # bound of 0.9 leaves room for that noise while still catching a broken graph or ordering.
    rng = np.random.default_rng(1)
    qs = x[rng.choice(N, 20, replace=False)] + 0.05 * rng.standard_normal((20, DIM))
    qs = (qs / np.linalg.norm(qs, axis=1, keepdims=True)).astype(np.float32)
    got = coll.search(qs, 10)
    recall = np.mean(
        [len(set(uri_index(h)) & set(exact_top(x, q, 10))) / 10 for h, q in zip(got, qs)]
    )
    assert recall >= 0.9


def test_filtered_searches_return_k_hits_when_k_exist(loaded) -> None:  # type: ignore[no-untyped-def]
    store, coll, x = loaded
    coll.flush()
    assert coll.indexes.indexes["vision"] is not None
    ids = np.arange(N)
    rng = np.random.default_rng(2)
    for q in x[rng.choice(N, 5, replace=False)]:
        ten = coll.search(q, 10, where={"pct10": 3})[0]  # 10% of the items pass
        assert len(ten) == 10 and all(h.metadata["pct10"] == 3 for h in ten)
        one = coll.search(q, 10, where={"pct1": 42})[0]  # 1%: 30 items pass
        assert len(one) == 10 and all(h.metadata["pct1"] == 42 for h in one)
        truth = exact_top(x, q, 10, keep=ids % 100 == 42)
        assert len(set(uri_index(one)) & set(truth)) >= 8  # the same graph, 30 candidates
        rare = coll.search(q, 10, where={"rare": True})[0]  # 4 pass: all 4, best first
        assert uri_index(rare) == exact_top(x, q, 10, keep=np.isin(ids, [5, 905, 1805, 2705]))
        paged = coll.search(q, 5, offset=25, where={"pct1": 42})[0]  # the last 5 of 30
        assert len(paged) == 5
    assert coll.indexes.stats["exact_fallbacks"] >= 5  # the rare filter fell back each time
    prefix = coll.search(x[0], 10, where={"uri": {"prefix": "/lib/001"}})[0]  # 100 pass
    assert len(prefix) == 10 and all(h.uri.startswith("/lib/001") for h in prefix)


def test_a_write_is_searchable_from_another_store_at_once(loaded, pgvector_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store, coll, x = loaded
    coll.flush()
    other = Store(pgvector_url, tmp_path / "other")  # another process's view: no shared files
    try:
        theirs = other.collection(coll.name)
        v = clustered(1, DIM, seed=9)[0]
        coll.add_items(
            [NewItem("/lib/new.jpg", "vision", "hn", 1, 0.0, {}, [NewVector("vision", v)])]
        )
        assert theirs.search(v, 1)[0][0].uri == "/lib/new.jpg"
        coll.remove(uris=["/lib/new.jpg"])
        assert theirs.search(v, 1)[0][0].uri != "/lib/new.jpg"
    finally:
        other.close()


def test_backend_errors_name_the_problem(tmp_path: Path, postgres_url: str) -> None:
    sqlite = Store(f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "idx")
    with pytest.raises(InvalidInput, match="needs a PostgreSQL catalog") as e:
        sqlite.create_collection("c", "x", 8, index_backend="pgvector")
    assert e.value.field == "index_backend"
    with pytest.raises(InvalidInput, match="Unknown index backend"):
        sqlite.create_collection("c", "x", 8, index_backend="annoy")
    assert sqlite.create_collection("c", "x", 8).info().index_backend == "faiss"  # the default
    sqlite.close()
    plain = Store(postgres_url, tmp_path / "idx2")  # Debian's PostgreSQL: no pgvector
    try:
        with pytest.raises(Unavailable, match="no pgvector extension"):
            plain.create_collection("pgv", "x", 8, index_backend="pgvector")
    finally:
        plain.close()

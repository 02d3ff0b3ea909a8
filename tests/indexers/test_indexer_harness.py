"""One harness over every index kind: add, recall against ExactIndex, save/load, remove, len."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

import indexers
from indexers import ExactIndex, FaissIndex

SPECS: dict[
    str, float | None
] = {  # spec -> the recall@10 it must reach on the clustered data (PQ: 1-recall@10)
    "exact": 1.0,
    "Flat": 1.0,
    "auto": 1.0,
    "HNSW16": 0.9,
    "IVF16,Flat": 0.9,
    "IVF16,SQ8": 0.85,
    "PQ8x4": None,  # 4-bit codes keep training fast on a busy CPU
    "IVF16,PQ8x4": None,
}


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """|found ∩ truth| / |truth| averaged over queries."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def raw_faiss(spec: str, ids: np.ndarray, x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Top-10 ids from the same spec built with FAISS directly."""
    index = faiss.index_factory(x.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = 8
    else:
        index = faiss.IndexIDMap2(index)
    index.train(x)
    index.add_with_ids(x, ids)
    return index.search(q, 10)[1]


def build(spec: str, ids: np.ndarray, x: np.ndarray) -> ExactIndex | FaissIndex:
    index = indexers.create_index(spec, x.shape[1], n=len(x))
    index.add(ids[:100], x[:100])  # before training: buffered, still searchable
    assert len(index) == 100
    index.train(x)
    index.add(ids[100:], x[100:])
    return index


@pytest.mark.parametrize("spec", list(SPECS))
def test_index_harness(spec: str, dataset, tmp_path: Path) -> None:
    ids, x, q = dataset
    exact = ExactIndex(x.shape[1])
    exact.add(ids, x)
    _, truth = exact.search(q, 10)

    index = build(spec, ids, x)
    assert len(index) == len(ids)
    assert index.is_trained
    scores, found = index.search(q, 10)
    if "PQ" in spec:  # lossy codes: as good as the same FAISS index used directly
        assert recall(found, raw_faiss(spec, ids, x, q)) >= 0.95
    else:
        assert recall(found, truth) >= SPECS[spec]
    assert (np.diff(scores, axis=1) <= 1e-5).all(), "best first"

    index.save(tmp_path / "a.index")
    loaded = indexers.load_index(tmp_path / "a.index")
    assert len(loaded) == len(index) and loaded.spec == index.spec
    np.testing.assert_array_equal(loaded.search(q, 10)[1], found)

    gone = ids[::2]
    assert index.remove(gone) == len(gone)
    assert index.remove(gone) == 0, "removing twice is a no-op"
    assert len(index) == len(ids) - len(gone)
    _, after = index.search(q, 50)
    assert not np.isin(after, gone).any(), "a removed vector was served"
    assert (after >= 0).all(), "still k results after deleting half"
    np.testing.assert_array_equal(index.ids(), np.setdiff1d(ids, gone))

    index.save(tmp_path / "b.index")
    reloaded = indexers.load_index(tmp_path / "b.index")
    assert not np.isin(reloaded.search(q, 50)[1], gone).any()


@pytest.mark.parametrize("spec", ["Flat", "HNSW16", "IVF16,Flat", "PQ8x4", "IVF16,PQ8x4"])
def test_filtered_search_returns_k_within_allowed(spec: str, dataset) -> None:
    ids, x, q = dataset
    index = build(spec, ids, x)
    exact = ExactIndex(x.shape[1])
    exact.add(ids, x)
    for allowed in (ids[5:25], ids[::7], ids[: len(ids) * 9 // 10]):
        _, found = index.search(q, 10, allowed=allowed)
        assert np.isin(found, allowed).all(), "every hit passes the filter, none is missing"
        if spec in ("Flat", "HNSW16", "IVF16,Flat") and len(allowed) <= FaissIndex.exact_threshold:
            np.testing.assert_array_equal(found, exact.search(q, 10, allowed=allowed)[1])


def test_hnsw_remove_tombstones_then_compaction_flag(dataset) -> None:
    ids, x, q = dataset
    index = build("HNSW16", ids, x)
    assert isinstance(index, FaissIndex) and not index.supports_remove
    index.remove(ids[:2000])
    assert index.tombstones == 2000 and index.needs_compaction
    _, found = index.search(x[:10], 5)
    assert not np.isin(found, ids[:2000]).any()


def test_untrained_index_serves_from_buffer_and_saves(dataset, tmp_path: Path) -> None:
    ids, x, q = dataset
    index = indexers.create_index("IVF64,Flat", x.shape[1])
    index.add(ids[:50], x[:50])
    assert not index.is_trained and len(index) == 50
    assert index.search(x[:1], 1)[1][0, 0] == ids[0]
    index.save(tmp_path / "u.index")
    loaded = indexers.load_index(tmp_path / "u.index")
    assert len(loaded) == 50 and not loaded.is_trained
    with pytest.raises(indexers.UnsupportedOperation, match="at least 64"):
        loaded.train(x[:10])
    loaded.train(x)
    assert loaded.is_trained and len(loaded) == 50
    assert loaded.search(x[:1], 1)[1][0, 0] == ids[0]


def test_bad_input_raises_indexer_errors(dataset, tmp_path: Path) -> None:
    ids, x, _ = dataset
    with pytest.raises(indexers.InvalidSpec, match="NOPE"):
        indexers.create_index("NOPE", 32)
    index = indexers.create_index("Flat", 32)
    with pytest.raises(indexers.InvalidVectors, match=r"\(n, 32\)"):
        index.add(ids[:2], x[:2, :16])
    index.add(ids[:2], x[:2])
    with pytest.raises(indexers.InvalidVectors, match="duplicate"):
        index.add(ids[:1], x[:1])
    with pytest.raises(indexers.InvalidVectors, match="NaN"):
        index.add(ids[5:6], np.full((1, 32), np.nan, dtype=np.float32))
    (tmp_path / "junk.index").write_bytes(b"not an index")
    with pytest.raises(indexers.IndexError_, match="junk.index"):
        indexers.load_index(tmp_path / "junk.index")


def test_search_params_and_empty_index() -> None:
    index = indexers.create_index("IVF16,Flat", 8)
    scores, found = index.search(np.ones((2, 8), dtype=np.float32), 3)
    assert (found == -1).all() and scores.shape == (2, 3)
    assert isinstance(index, FaissIndex)
    index.set_params("nprobe=4")
    assert index.nprobe == 4
    with pytest.raises(indexers.UnsupportedOperation):
        index.set_params("efSearch=10,bogus=3")


def test_auto_spec_grows_with_the_collection() -> None:
    assert indexers.auto_spec(1000) == "Flat"
    assert indexers.auto_spec(20_000) == "Flat"
    assert indexers.auto_spec(200_000) == "IVF2048,Flat"
    assert indexers.auto_spec(1_000_000).startswith("IVF") and indexers.auto_spec(
        1_000_000
    ).endswith(",Flat")
    assert "PQ" in indexers.auto_spec(10_000_000, 1024)
    for n in (1000, 1_000_000, 10_000_000):
        indexers.validate_spec(indexers.auto_spec(n, 1024), 1024)


def test_save_keeps_one_faiss_file_and_survives_a_crash_between_writes(
    dataset, tmp_path: Path
) -> None:
    ids, x, q = dataset
    path = tmp_path / "vision.index"
    index = build("HNSW16", ids, x)
    index.save(path)
    index.remove(ids[:10])
    index.save(path)
    files = indexers.faiss_index.companions(path)
    assert len(files) == 1  # the previous save's FAISS file is gone
    # a save killed after writing its FAISS file but before the header: the old pair still loads
    (tmp_path / "vision.index.deadbeef.faiss").write_bytes(b"half-written")
    loaded = indexers.load_index(path)
    assert isinstance(loaded, FaissIndex)
    assert len(loaded) == len(ids) - 10 and loaded.tombstones == 10
    np.testing.assert_array_equal(loaded.search(q, 10)[1], index.search(q, 10)[1])
    # the header names a missing FAISS file: a clear error, which the store answers by rebuilding
    files[0].unlink()
    with pytest.raises(indexers.IndexError_, match="vision.index"):
        indexers.load_index(path)
    indexers.remove_index(path)
    assert list(tmp_path.iterdir()) == []


def test_exact_index_appends_in_batches_and_out_of_order(dataset) -> None:
    ids, x, q = dataset
    whole = ExactIndex(x.shape[1])
    whole.add(ids, x)
    parts = ExactIndex(x.shape[1])
    for start in range(0, 4000, 500):  # ascending batches fill spare capacity
        parts.add(ids[start : start + 500], x[start : start + 500])
    parts.add(ids[5000:], x[5000:])
    parts.add(ids[4000:5000], x[4000:5000])  # below the highest id: re-sorted
    np.testing.assert_array_equal(parts.ids(), whole.ids())
    np.testing.assert_array_equal(parts.reconstruct(ids[::7]), x[::7])
    (got_scores, got_ids), (want_scores, want_ids) = parts.search(q, 10), whole.search(q, 10)
    np.testing.assert_array_equal(got_ids, want_ids)
    # float32 dot products over 64 dims; BLAS may sum in another order for another buffer layout
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-6)
    parts.remove(ids[:100])
    parts.add(ids[:100], x[:100])
    np.testing.assert_array_equal(parts.search(q, 10)[1], whole.search(q, 10)[1])


@pytest.mark.parametrize("spec", ["IVF64,Flat", "HNSW16"])
def test_add_tuned_picks_the_cheapest_knob_reaching_the_target(
    spec: str, tuning_data, tmp_path: Path
) -> None:
    ids, xb, q = tuning_data
    exact = ExactIndex(32)
    exact.add(ids, xb)
    truth = exact.search(q, 10)[1]
    index = indexers.create_index(spec, 32)
    assert isinstance(index, FaissIndex)
    if not index.is_trained:
        index.train(xb)
    chosen = index.add_tuned(ids, xb, target=0.95, holdout=500)
    assert len(index) == 10_000 and chosen["recall"] >= 0.96  # target + margin on the holdout
    knob, attr, steps = (
        ("nprobe", "nprobe", indexers.faiss_index.NPROBE_STEPS)
        if spec.startswith("IVF")
        else ("efSearch", "ef_search", indexers.faiss_index.EF_STEPS)
    )
    assert chosen["knob"] == knob and getattr(index, attr) == chosen["value"]
    assert recall(index.search(q, 10)[1], truth) >= 0.93  # queries it has never seen
    if chosen["value"] != steps[0]:  # the step below was measured and fell short
        below = steps[steps.index(chosen["value"]) - 1]
        assert (
            recall(index.search(q, 10, **{attr: below})[1], truth)
            < recall(index.search(q, 10)[1], truth) + 1e-9
        )
    index.save(tmp_path / "t.index")  # the chosen knob is kept with the index
    assert getattr(indexers.load_index(tmp_path / "t.index"), attr) == chosen["value"]


def test_a_filter_widens_the_tuned_graph_search() -> None:
    """The knob is tuned unfiltered; a filter passing 35 % of the vectors leaves about 35 % of the
    candidates it visits, so the search widens by 1/0.35 (recall 0.94 here at the tuned efSearch
    alone, 0.9975 widened)."""
    from benchmarks.common import synthetic_clustered

    data = synthetic_clustered(12000, 200, 128, seed=0)
    ids = np.arange(1, len(data.xb) + 1, dtype=np.int64)
    index = indexers.create_index("HNSW32", 128, n=len(ids))
    index.add_tuned(ids, data.xb)
    allowed = np.sort(np.random.default_rng(1).choice(ids, 4200, replace=False))
    assert len(allowed) > index.exact_threshold  # the graph search, not the brute-force subset
    truth = allowed[np.argsort(-(data.xq @ data.xb[allowed - 1].T), axis=1)[:, :10]]
    _, found = index.search(data.xq, 10, allowed=allowed)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    assert recall >= 0.97

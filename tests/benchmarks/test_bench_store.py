"""The store benchmark in smoke mode: ingest phases and search overhead rows."""

from __future__ import annotations

from benchmarks import store


def test_smoke_run_reports_ingest_phases_and_search_overhead(run_json, check_doc) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(store.main, "--smoke")
    check_doc(doc, "store")
    ingest = [r for r in doc["rows"] if r["kind"] == "ingest"]
    assert [(r["spec"], r["phase"]) for r in ingest] == [
        ("Flat", "from_empty"),
        ("Flat", "into_trained"),
        ("IVF64,Flat", "from_empty"),
        ("IVF64,Flat", "into_trained"),
    ]
    assert all(r["vectors_per_s"] > 0 and r["trained"] for r in ingest)
    for r in ingest:  # committed: up to the last commit; the flushed time adds the index files
        assert 0 < r["committed_s"] <= r["seconds"] + 0.01 and r["committed_per_s"] > 0
    assert [r["total"] for r in ingest] == [5000, 7000, 5000, 7000]
    search = [r for r in doc["rows"] if r["kind"] == "search"]
    assert [r["spec"] for r in search] == ["Flat", "HNSW32"]
    for r in search:
        assert r["n"] == 5000 and r["raw_faiss_ms"] > 0
        assert r["store_rows_ms"] > 0 and isinstance(r["rows_overhead_pct"], float)
        assert r["store_rows_cold_ms"] > 0 and r["raw_short_queries"] == 0

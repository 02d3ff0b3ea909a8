"""The encoder throughput benchmark in a trimmed smoke run: its JSON keys, types and ranges."""

from __future__ import annotations

import pytest

from benchmarks import throughput


def test_smoke_run_end_to_end(run_json, check_doc) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(
        throughput.main,
        "--smoke",
        "--modality",
        "vision,text",
        "--precision",
        "fp32",
        "--batch",
        "2",
        "--runs",
        "1",
        "--warmup",
        "0",
    )
    check_doc(doc, "throughput")
    assert doc["params"]["smoke"] is True and doc["params"]["device"] == "cpu"
    rows = doc["rows"]
    assert {r["modality"] for r in rows} == {"vision", "text"}
    for r in rows:
        assert r["batch"] == 2 and r["precision"] == "fp32" and r["mode"] in ("fast", "official")
        assert 0 < r["median_s"] <= r["p90_s"] + 1e-9
        assert r["items_per_s"] == pytest.approx(2 / r["median_s"])
        assert r["peak_mem_mb"] > 0

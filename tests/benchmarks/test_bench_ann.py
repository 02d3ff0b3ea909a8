"""The ANN benchmark in smoke mode: its JSON, recall ranges, our overhead ratios and auto choice."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from click.testing import CliRunner
from testdata import require_data

from benchmarks import ann
from benchmarks.ann_layers import default_specs, param_sweep, store_available

LAYERS = "faiss,indexers,store"  # the store is part of this project: it must import


def test_the_store_layer_is_available() -> None:
    assert store_available()


def test_default_specs_and_sweeps() -> None:
    assert default_specs(100_000, 1024) == ["Flat", "IVF1024,Flat", "HNSW32", "IVF1024,PQ128"]
    assert default_specs(2000, 64)[-1].endswith("x4")  # too few points for 8-bit codebooks
    assert param_sweep("IVF4,Flat", {"nprobe": (1, 2, 8)}) == [("nprobe", 1), ("nprobe", 2)]
    assert param_sweep("Flat") == [(None, None)]


def test_smoke_run_end_to_end(run_json, check_doc) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(ann.main, "--smoke", "--layers", LAYERS)
    check_doc(doc, "ann")
    p = doc["params"]
    assert p["n"] == 2000 and p["k"] == 10 and p["smoke"] is True
    layers = {r["layer"] for r in doc["rows"]}
    views = {"store": {"store", "store_ids", "store_faiss"}}  # one collection, searched 3 ways
    assert layers == set().union(*(views.get(x, {x}) for x in LAYERS.split(",")))
    for r in doc["rows"]:
        assert 0.0 <= r["recall_at_k"] <= 1.0 and r["build_s"] >= 0
        assert r["qps"] > 0 and r["qps_cpu"] > 0 and r["index_mb"] > 0
        assert r["batch"] in (1, 256)
        if r["spec"] == "Flat":
            assert r["recall_at_k"] == 1.0
    for spec in ("Flat", "HNSW32"):  # every layer finds the same neighbours at the same knobs
        recalls = {
            (r["value"], r["layer"]): r["recall_at_k"] for r in doc["rows"] if r["spec"] == spec
        }
        assert max(recalls.values()) - min(recalls.values()) < 0.05
    assert doc["overhead"] and all(
        o["qps_ratio"] > 0 and o["cpu_ratio"] > 0 for o in doc["overhead"]
    )
    assert {o["layer"] for o in doc["overhead"]} == layers - {"faiss", "store_faiss"}
    for o in doc["overhead"]:  # the store is compared with FAISS on its own index: same recall
        if o["layer"].startswith("store"):
            assert o["reference"] == "store_faiss"
            assert o["recall_at_k"] == pytest.approx(o["faiss_recall_at_k"], abs=0.02)
    auto = doc["auto"]
    assert auto["auto_spec"] and 0.0 <= auto["recall_at_k"] <= 1.0
    assert auto["meets_target"] == (auto["recall_at_k"] >= p["target"])


def test_plot_writes_a_png(tmp_path: Path) -> None:
    require_data(
        importlib.util.find_spec("matplotlib") is not None,
        "matplotlib is not installed (pip install -e '.[dev]')",
    )
    png = tmp_path / "ann.png"
    result = CliRunner().invoke(
        ann.main,
        ["--smoke", "--layers", "faiss", "--spec", "Flat", "--spec", "IVF16,Flat"]
        + ["--out", str(tmp_path / "a.json"), "--plot", str(png)],
    )
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.stdout == ""


def test_unknown_layer_is_a_usage_error() -> None:
    result = CliRunner().invoke(ann.main, ["--smoke", "--layers", "faiss,nope"])
    assert result.exit_code == 2 and "nope" in result.output

"""``benchmarks.throughput --levers``: one row per lever, errors for levers the CPU cannot run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.throughput import main

LEVERS = "eager,cuda_graphs,sdpa_flash,sdpa_math,sdpa_cudnn,batch_sweep"


@pytest.mark.slow  # four tiny encoders built, each timed: ~10 s on 2 shared cores
def test_levers_write_one_row_per_lever_and_a_sweep(tmp_path: Path) -> None:
    out = tmp_path / "levers.json"
    args = [
        "--smoke",
        "--precision",
        "fp32",
        "--modality",
        "imu,text",
        "--batch",
        "2",
        "--runs",
        "1",
    ]
    args += ["--levers", LEVERS, "--sweep-batches", "1,2,4", "--mem-budget-mb", "1e9"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert list(doc["params"]["levers"]) == LEVERS.split(",")
    assert doc["params"]["partial"] is False  # the saves after each lever said True
    assert doc["params"]["levers"]["sdpa_flash"] == {"sdpa_backend": "flash"}
    rows = doc["rows"]
    by = {(r["lever"], r["modality"], r["batch"]): r for r in rows}
    for lever in ("eager", "sdpa_flash", "sdpa_math"):
        for modality in ("imu", "text"):
            row = by[(lever, modality, 2)]
            assert row["items_per_s"] > 0 and row["peak_mem_mb"] > 0 and "mfu" in row
            assert row["gflops_per_item"] > 0 and row["first_call_s"] >= 0
            # the same float32 model through another attention kernel: only sum order differs
            assert row["cosine_vs_eager_min"] > 1 - 1e-5
    for lever, why in (("cuda_graphs", "needs a CUDA device"), ("sdpa_cudnn", "no kernel")):
        for modality in ("imu", "text"):
            row = by[(lever, modality, 2)]
            assert row["items_per_s"] is None and why in row["error"]
    sweep = [r for r in rows if r["lever"] == "batch_sweep"]
    assert [(r["modality"], r["batch"]) for r in sweep] == [
        (m, b) for m in ("imu", "text") for b in (1, 2, 4)
    ]
    assert all(r["within_budget"] and r["mem_budget_mb"] == 1e9 for r in sweep)
    for modality in ("imu", "text"):
        best = [r for r in sweep if r["modality"] == modality and r.get("best")]
        fastest = max(
            (r for r in sweep if r["modality"] == modality), key=lambda r: r["items_per_s"]
        )
        assert best == [fastest]


def test_a_sweep_stops_at_the_first_batch_over_the_budget(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    args = ["--smoke", "--precision", "fp32", "--modality", "depth", "--sweep"]
    # on CPU the peak memory is the process's peak RSS, far above 1 MB: the first batch is over
    result = CliRunner().invoke(
        main, [*args, "--sweep-batches", "1,2", "--mem-budget-mb", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert [(r["lever"], r["batch"], r["within_budget"]) for r in rows] == [
        ("batch_sweep", 1, False)
    ]
    assert "best" not in rows[0]

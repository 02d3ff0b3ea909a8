"""The throughput benchmark's smoke preset runs and writes one JSON document."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from benchmarks.throughput import main


def test_smoke_preset_writes_rows_for_each_mode(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    result = CliRunner().invoke(
        main, ["--smoke", "--modality", "text,imu", "--precision", "fp32", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "throughput" and doc["params"]["smoke"] is True
    assert {r["precision"] for r in doc["rows"]} == {"fp32"}
    assert {"device", "torch", "cpu_count"} <= set(doc["machine"])
    rows = doc["rows"]
    assert {(r["modality"], r["batch"], r["mode"]) for r in rows} == {
        (m, b, mode) for m in ("text", "imu") for b in (1, 4) for mode in ("fast", "official")
    }
    assert all(r["items_per_s"] > 0 and r["median_s"] > 0 and r["peak_mem_mb"] > 0 for r in rows)

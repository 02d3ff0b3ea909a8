"""The end-to-end GPU indexing benchmark in its smoke preset (imagebind_test on the CPU)."""

from __future__ import annotations

import pytest

from benchmarks import gpu_ingest


def test_smoke_run_end_to_end(run_json, check_doc) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(gpu_ingest.main, "--smoke")
    check_doc(doc, "gpu_ingest")
    p = doc["params"]
    assert p["smoke"] is True and p["device"] == "cpu" and p["model"] == "imagebind_test"
    rows = {(r["stage"], r.get("decode"), r.get("precision")): r for r in doc["rows"]}
    assert set(rows) == {
        ("decode_only", "device", None),
        ("decode_only", "cpu", None),
        ("encode_only", None, "fp32"),
        ("embed_only", None, "fp32"),
        ("index", "device", "fp32"),
        ("index", "cpu", "fp32"),
        ("pipeline", "device", "fp32"),
        ("pipeline", "cpu", "fp32"),
    }
    for r in rows.values():
        assert "error" not in r, r
        # files_per_s is rounded to 0.1 and seconds to 1 ms (5e-4 / seconds relative)
        rate = r["files"] / r["seconds"]
        assert (
            r["seconds"] > 0
            and abs(r["files_per_s"] - rate) <= 0.05 + rate * (5e-4 / r["seconds"]) + 1e-9
        ), r
    model = rows[("encode_only", None, "fp32")]
    alone = rows[("embed_only", None, "fp32")]  # Embedder over decoded images: every one embedded
    assert alone["files"] == alone["items"] == 48 and alone["batches"] == 3
    for decode in ("device", "cpu"):
        index = rows[("index", decode, "fp32")]
        assert index["files"] == index["added"] == 48 and index["failed"] == 0
        for r in (index, alone, rows[("pipeline", decode, "fp32")]):  # share of the model's rate
            want = (r["files"] / r["seconds"]) / (model["files"] / model["seconds"])
            assert abs(r["vs_model"] - want) <= 5e-4 + 1e-9, r  # rounded to 3 digits
        pipe = rows[("pipeline", decode, "fp32")]  # every file went through the model
        assert pipe["items"] == 48 and pipe["batches"] == 3 and pipe["model_s"] > 0


def test_sizes_are_parsed_and_checked() -> None:
    import click

    assert gpu_ingest.parse_sizes("640x480:2048, 1920X1080:512") == [
        (640, 480, 2048),
        (1920, 1080, 512),
    ]
    with pytest.raises(click.BadParameter, match="WxH:COUNT"):
        gpu_ingest.parse_sizes("640x480")

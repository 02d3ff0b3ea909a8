"""``--mode official_code`` (the official ImageBind code on our tensors) and ``--precision fp8`` of
the throughput benchmark, in trimmed CPU runs of the tiny config.

The official code is a benchmark tool, never a project dependency (its licence lets us run it,
not ship it): without the ``imagebind-unofficial`` package the comparison test skips, in CI too.
"""

from __future__ import annotations

import importlib.util

import click
import pytest

from benchmarks import throughput

OFFICIAL_CODE = importlib.util.find_spec("imagebind") is not None
ARGS = ("--smoke", "--precision", "fp32", "--batch", "2", "--runs", "1", "--warmup", "0")

# ours and the official code compute the same float32 functions in different op orders
# (fused vs unfused attention, the 2-D patch kernel, the pooled last block): measured 1e-7 apart
# on unit vectors; 1e-5 leaves room for other CPUs' BLAS and is far below any real difference
# (a wrong weight or mask moves the cosine by > 1e-2).
SAME_COSINE = 1 - 1e-5


@pytest.mark.skipif(
    not OFFICIAL_CODE, reason="pip install --no-deps imagebind-unofficial (benchmark tool only)"
)
@pytest.mark.slow  # six towers through both implementations: ~10-20 s on the shared 2 cores
def test_official_code_rows_beside_fast_rows_agree(run_json, check_doc) -> None:  # type: ignore[no-untyped-def]
    modalities = "vision,text,audio,depth,thermal,imu"
    doc = run_json(
        throughput.main,
        *ARGS,
        "--modality",
        modalities,
        "--mode",
        "fast,official_code",
        "--peak-tflops",
        "1.5",
    )
    check_doc(doc, "throughput")
    rows = doc["rows"]
    assert {(r["modality"], r["mode"]) for r in rows} == {
        (m, mode) for m in modalities.split(",") for mode in ("fast", "official_code")
    }
    for r in rows:
        assert r["items_per_s"] > 0 and r["peak_mem_mb"] > 0
        assert r["gflops_per_item"] > 0
        assert r["mfu"] == pytest.approx(r["tflops"] / 1.5, rel=1e-3, abs=1e-4)
        if r["mode"] == "official_code":
            assert r["cosine_vs_fast_min"] >= SAME_COSINE, r
    by = {(r["modality"], r["mode"]): r for r in rows}
    # the official code computes every token of every block: never fewer FLOPs than ours
    for m in modalities.split(","):
        assert by[m, "official_code"]["gflops_per_item"] >= by[m, "fast"]["gflops_per_item"]


def test_mfu_is_absent_without_a_known_peak(run_json) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(throughput.main, *ARGS, "--modality", "depth", "--mode", "fast")
    (row,) = doc["rows"]
    assert row["mfu"] is None and row["tflops"] > 0 and row["gflops_per_item"] > 0


def test_fp8_on_cpu_is_a_clear_error() -> None:
    with pytest.raises(click.UsageError, match="fp8 needs a CUDA GPU with compute capability"):
        throughput.main.main(
            [*ARGS, "--precision", "fp8", "--modality", "vision", "--json"], standalone_mode=False
        )


def test_official_code_is_imagebind_only() -> None:
    with pytest.raises(click.UsageError, match="official_code runs ImageBind"):
        throughput.main.main(
            ["--config", "lb_image", "--device", "cpu", "--mode", "official_code", "--json"],
            standalone_mode=False,
        )


def test_fp8_rows_report_their_cosine_to_float32(run_json) -> None:  # type: ignore[no-untyped-def]
    # the fp8 path emulated on CPU (same quantised operands, float32 matmuls); the bound is the
    # tiny model's, derived in tests/encoders/test_fp8.py (measured 0.997-0.9994 there)
    doc = run_json(
        throughput.main,
        *ARGS,
        "--precision",
        "fp8",
        "--fp8-emulate",
        "--modality",
        "vision,text,imu",
        "--mode",
        "fast",
    )
    assert doc["params"]["fp8_emulate"] is True
    for r in doc["rows"]:
        assert r["precision"] == "fp8" and r["mfu"] is None
        assert 0.995 <= r["cosine_vs_fp32_min"] <= r["cosine_vs_fp32_mean"] < 1 - 1e-6, r

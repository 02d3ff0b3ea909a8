"""The device decode benchmark in its smoke preset on CPU: JSON keys, types and ranges."""

from __future__ import annotations

from benchmarks import gpu_decode


def test_smoke_run_end_to_end(run_json, check_doc) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(gpu_decode.main, "--smoke", "--device", "cpu")
    check_doc(doc, "gpu_decode")
    assert doc["params"]["smoke"] is True and doc["params"]["device"] == "cpu"
    rows = doc["rows"]
    layouts = [r for r in rows if r["kind"] == "deviation" and r["set"].startswith("layout:")]
    deviation = [r for r in rows if r["kind"] == "deviation" and r not in layouts]
    speed = [r for r in rows if r["kind"] == "speed"]
    sets = {r["set"] for r in deviation}
    assert {"imagebind-assets", "640x480", "1920x1080", "sounds"} <= sets
    for r in deviation:
        # ViSP's three grey Solvay JPEGs declare 2x2 sampling: the device decoder never sees them
        assert r["files"] >= 1 and r["fallbacks"] == (3 if r["set"] == "visp-jpeg" else 0)
        assert 0 <= r["mean_abs"] <= r["max_abs"] <= 0.05, r
        assert 0 <= r["differing"] <= 0.01
        for key in ("tensor_cos_min", "embed_cos_min"):
            assert 0.995 <= r[key] <= r[key.replace("_min", "_mean")] + 1e-9 <= 1 + 1e-6
    assert {(r["set"], r["path"]) for r in speed} == {
        (s, p) for s in ("640x480", "1920x1080", "sounds") for p in ("exact", "device")
    }
    for r in speed:  # files_per_s is rounded to 0.1, median_s to 0.1 ms (5e-5 / median_s relative)
        rate = r["files"] / r["median_s"]
        assert (
            r["median_s"] > 0
            and abs(r["files_per_s"] - rate) <= 0.05 + rate * (5e-5 / r["median_s"]) + 1e-9
        ), r
    summary = doc["summary"]
    assert summary["bar"] == 0.995 and summary["passes"] is (summary["min_cosine"] >= 0.995)
    assert summary["images"] == sum(r["files"] for r in deviation if r["modality"] == "vision")
    # each reference photo in five JPEG layouts, through the decoder with no layout gate
    kinds = sorted(r["set"].rsplit("-", 1)[1] for r in layouts)
    assert kinds == sorted(["444", "422", "420", "grey", "grey2x2"] * 3)
    assert all(r["embed_cos_min"] >= 0.995 for r in layouts)  # libjpeg-turbo decodes all alike


def test_exported_media_give_the_same_rows(run_json, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    media = tmp_path / "media"
    args = ["--smoke", "--device", "cpu"]
    result = CliRunner().invoke(gpu_decode.main, [*args, "--export-media", str(media)])
    assert result.exit_code == 0, result.output
    assert (media / "imagebind-assets").is_dir() and any((media / "sounds").iterdir())
    here = run_json(gpu_decode.main, *args)
    there = run_json(gpu_decode.main, *args, "--media", str(media))
    key = ("set", "files", "fallbacks", "max_abs", "embed_cos_min")
    pick = lambda doc: sorted(  # noqa: E731
        tuple(r[k] for k in key) for r in doc["rows"] if r["kind"] == "deviation"
    )
    assert pick(here) == pick(there)

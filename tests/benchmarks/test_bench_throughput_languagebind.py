"""The throughput benchmark runs LanguageBind towers with their own input shapes, both modes."""

from __future__ import annotations

from benchmarks import throughput


def test_languagebind_smoke_rows(run_json, check_doc) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(
        throughput.main,
        "--smoke",
        "--encoder",
        "languagebind_test",
        "--precision",
        "fp32",
        "--batch",
        "2",
        "--modality",
        "video,text,audio",
        "--runs",
        "1",
    )
    check_doc(doc, "throughput")
    rows = {(r["modality"], r["mode"]) for r in doc["rows"]}
    assert rows == {(m, mode) for m in ("video", "text", "audio") for mode in ("fast", "official")}
    assert all(r["items_per_s"] > 0 and r["batch"] == 2 for r in doc["rows"])


def test_languagebind_inputs_take_each_tower_shape() -> None:
    from embedstore.encoders import create_encoder

    enc = create_encoder("languagebind_test", device="cpu")
    shapes = enc.input_shapes()  # type: ignore[attr-defined]
    assert shapes["video"] == (3, 8, 224, 224) and shapes["audio"] == (3, 112, 1036)
    ids = throughput.make_inputs("text", 3, shapes=shapes)
    assert (ids.argmax(dim=1) > 0).all()  # padded with the end-of-text id, pooled at the first
    official = throughput.languagebind_official(enc, "text", ids)()
    fast = enc.encode("text", ids)
    import torch

    torch.testing.assert_close(
        torch.nn.functional.normalize(official.float(), dim=-1),
        torch.from_numpy(fast),
        atol=1e-5,
        rtol=0,
    )

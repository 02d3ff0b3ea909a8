"""The recall benchmark: metrics on known rankings, the smoke run end to end, the embedding cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import recall
from benchmarks.recall import ranks_exact, ranks_from_ids, retrieval_metrics, smoke_manifest
from benchmarks.recall_data import read_manifest
from embedstore.errors import InvalidInput

EYE = np.eye(8, dtype=bool)  # query i's only relevant item is gallery item i


def test_a_correct_ranking_scores_perfectly() -> None:
    x = np.eye(8, dtype=np.float32)
    m = retrieval_metrics(ranks_exact(x, x), EYE)
    assert m == {
        "recall_at_1": 1.0,
        "recall_at_5": 1.0,
        "recall_at_10": 1.0,
        "median_rank": 1.0,
        "map": 1.0,
    }


def test_a_shuffled_ranking_fails() -> None:
    x = np.eye(8, dtype=np.float32)
    shuffled = x[np.random.default_rng(0).permutation(8)]
    broken = retrieval_metrics(ranks_exact(x, shuffled), EYE)
    assert broken["recall_at_1"] < 1.0 and broken["map"] < 1.0
    reversed_ids = np.tile(np.arange(8)[::-1], (8, 1))  # every query gets the same wrong order
    m = retrieval_metrics(ranks_from_ids(reversed_ids, 8), EYE)
    assert m["recall_at_1"] == pytest.approx(1 / 8, abs=1e-4)
    assert m["median_rank"] == 4.5


def test_ann_misses_count_as_not_found() -> None:
    ids = np.array([[1, 0], [2, 3]])  # query 1's target (gallery 1) was not returned
    m = retrieval_metrics(ranks_from_ids(ids, 4), np.eye(2, 4, dtype=bool))
    assert m["recall_at_1"] == 0.0 and m["recall_at_5"] == 0.5
    assert m["map"] == pytest.approx((1 / 2 + 0) / 2, abs=1e-4)


def test_map_with_several_relevant_items() -> None:
    ranks = np.array([[1.0, 2.0, 3.0, 4.0]])
    relevant = np.array([[True, False, True, False]])
    assert retrieval_metrics(ranks, relevant)["map"] == pytest.approx((1 / 1 + 2 / 3) / 2, abs=1e-4)


def test_smoke_run_end_to_end(run_json, check_doc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "cache"
    doc = run_json(recall.main, "--smoke", "--cache-dir", str(cache))
    check_doc(doc, "recall")
    assert doc["params"]["encoder"] == "imagebind_test" and doc["params"]["embedded"] > 0
    rows = doc["rows"]
    pairs = {(r["query_modality"], r["target_modality"]) for r in rows if r["task"] == "retrieval"}
    assert pairs == {("vision", "vision"), ("text", "vision"), ("vision", "text")}
    for r in rows:
        if r["task"] == "retrieval":
            assert r["index"] in ("exact", "HNSW16")
            for key in ("recall_at_1", "recall_at_5", "recall_at_10", "map"):
                assert 0.0 <= r[key] <= 1.0
            assert r["recall_at_1"] <= r["recall_at_5"] <= r["recall_at_10"]
            assert r["median_rank"] is None or 1 <= r["median_rank"] <= r["gallery"]
    same = [r for r in rows if r["query_modality"] == r["target_modality"] == "vision"]
    assert len(same) == 2 and all(r["recall_at_1"] == 1.0 and r["map"] == 1.0 for r in same)
    assert next(r for r in same if r["index"] != "exact")["lost_at_1"] == 0.0
    (zs,) = [r for r in rows if r["task"] == "zero-shot"]
    assert zs["queries"] == 6 and zs["gallery"] == 3 and 0.0 <= zs["accuracy"] <= 1.0


def test_a_rerun_with_another_index_uses_only_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, cache = smoke_manifest(tmp_path), tmp_path / "cache"
    first = recall.run(manifest, cache, "imagebind_test", "HNSW16", device="cpu")
    assert first["params"]["embedded"] > 0

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the encoder was built although every vector is cached")

    monkeypatch.setattr("embedstore.encoders.create_encoder", no_model)
    second = recall.run(manifest, cache, "imagebind_test", "Flat", device="cpu")
    assert second["params"]["embedded"] == 0
    exact = [r for r in second["rows"] if r["index"] == "exact"]
    assert exact == [r for r in first["rows"] if r["index"] == "exact"]


def test_csv_manifest_and_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(
        "query,query_modality,target,target_modality,label\na dog,text,a.png,vision,dog\n"
    )
    (pair,) = read_manifest(csv_file)
    assert pair.query == ("text", "a dog") and pair.target == ("vision", str(tmp_path / "a.png"))
    assert pair.label == "dog"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "x", "query_modality": "text", "target": "a.png"}) + "\n")
    with pytest.raises(InvalidInput, match=r"bad.jsonl:1: missing field 'target_modality'"):
        read_manifest(bad)
    bad.write_text(
        json.dumps(
            {
                "query": "x",
                "query_modality": "text",
                "target": "no.png",
                "target_modality": "vision",
            }
        )
    )
    with pytest.raises(InvalidInput, match="no.png does not exist"):
        read_manifest(bad)


def test_two_encoders_side_by_side_on_the_same_pairs(run_json, check_doc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = run_json(
        recall.main,
        "--smoke",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--encoder",
        "imagebind_test",
        "--encoder",
        "languagebind_test",
    )
    check_doc(doc, "recall")
    assert doc["params"]["encoders"] == ["imagebind_test", "languagebind_test"]
    assert "random weights" in doc["params"]["note"]
    retrieval = [r for r in doc["rows"] if r["task"] == "retrieval"]
    by_encoder = {e: [r for r in retrieval if r["encoder"] == e] for e in doc["params"]["encoders"]}
    pairs = {
        e: [(r["query_modality"], r["target_modality"], r["index"]) for r in rows]
        for e, rows in by_encoder.items()
    }
    assert pairs["imagebind_test"] == pairs["languagebind_test"]  # the same pairs, row by row
    for rows in by_encoder.values():
        same = [r for r in rows if r["query_modality"] == r["target_modality"] == "vision"]
        assert all(r["recall_at_1"] == 1.0 for r in same)  # an image finds itself
        assert all(r["chance_at_1"] == pytest.approx(1 / r["gallery"], abs=1e-4) for r in rows)

"""Reading pairs: CSV and JSONL manifests, the shared-stem folder convention, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedstore.bind import Pair, read_pairs
from embedstore.bind.pairs import split_pairs
from embedstore.errors import InvalidInput


def test_folder_pairs_files_that_share_a_stem(library: Path):
    pairs = read_pairs(library, "vision", "audio")
    assert len(pairs) == 6
    assert all(p.anchor.stem == p.target.stem for p in pairs)  # type: ignore[union-attr]
    captions = read_pairs(library, "vision", "text")
    assert Pair(library / "red.png", "A red square.") in captions  # first line only


def test_csv_manifest_with_relative_paths_and_literal_captions(library: Path):
    (library / "pairs.csv").write_text("anchor,target\nred.png,a red thing\nblue.png,blue.txt\n")
    pairs = read_pairs(library / "pairs.csv", "vision", "text")
    assert pairs == [
        Pair(library / "red.png", "a red thing"),
        Pair(library / "blue.png", "A blue square."),
    ]


def test_jsonl_manifest_may_name_columns_by_modality(library: Path, tmp_path: Path):
    rows = [{"vision": str(library / "red.png"), "audio": str(library / "red.wav")}]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_pairs(tmp_path / "pairs.jsonl", "vision", "audio") == [
        Pair(library / "red.png", library / "red.wav")
    ]


def test_errors_name_the_file_and_line(library: Path, tmp_path: Path):
    bad = tmp_path / "pairs.csv"
    bad.write_text("anchor,target\nred.png,missing.wav\n")
    with pytest.raises(InvalidInput, match=r"pairs.csv:2: file not found"):
        read_pairs(bad, "vision", "audio")
    bad.write_text("image,sound\nred.png,red.wav\n")
    with pytest.raises(InvalidInput, match=r"pairs.csv:2: missing column 'anchor' or 'vision'"):
        read_pairs(bad, "vision", "audio")
    (tmp_path / "x.jsonl").write_text("{nope\n")
    with pytest.raises(InvalidInput, match=r"x.jsonl:1: invalid JSON"):
        read_pairs(tmp_path / "x.jsonl", "vision", "audio")
    with pytest.raises(InvalidInput, match="no \\(vision, imu\\) pairs"):
        read_pairs(library, "vision", "imu")


def test_split_is_seeded_and_disjoint():
    train, val = split_pairs(20, 0.2, seed=3)
    assert len(val) == 4 and not set(train) & set(val)
    assert (split_pairs(20, 0.2, seed=3)[1] == val).all()
    with pytest.raises(InvalidInput, match="too few"):
        split_pairs(2, 0.5)

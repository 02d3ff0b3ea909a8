"""Manifests of pairs: CSV/TSV with a header or JSON Lines, errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedstore.errors import InvalidInput
from embedstore.manifests import iter_rows


def test_csv_tsv_and_jsonl_rows_carry_their_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("anchor,target\na.png,a.wav\nb.png,b.wav\n")
    (tmp_path / "p.tsv").write_text("anchor\ttarget\na.png\ta.wav\n")
    (tmp_path / "p.jsonl").write_text('{"anchor": "a.png"}\n\n{"anchor": "b.png"}\n')
    assert list(iter_rows(tmp_path / "p.csv")) == [
        (2, {"anchor": "a.png", "target": "a.wav"}),
        (3, {"anchor": "b.png", "target": "b.wav"}),
    ]
    assert list(iter_rows(tmp_path / "p.tsv")) == [(2, {"anchor": "a.png", "target": "a.wav"})]
    assert list(iter_rows(tmp_path / "p.jsonl")) == [
        (1, {"anchor": "a.png"}),
        (3, {"anchor": "b.png"}),
    ]


def test_bad_json_lines_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"anchor": "a.png"}\n[1, 2]\n')
    with pytest.raises(InvalidInput, match=r"bad.jsonl:2: expected a JSON object"):
        list(iter_rows(bad))
    bad.write_text("{not json\n")
    with pytest.raises(InvalidInput, match=r"bad.jsonl:1: invalid JSON"):
        list(iter_rows(bad))

"""Walking folders: globs, rules and modalities."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedstore.errors import UnknownModality
from embedstore.ingest import glob_match, walk


@pytest.mark.parametrize(
    ("rel", "pattern", "expected"),
    [
        ("a/b/c.png", "*.png", True),
        ("a/b/c.png", "a/*.png", False),
        ("a/b/c.png", "a/**", True),
        ("a/b/c.png", "a/**/*.png", True),
        ("c.png", "**/*.png", True),
        ("scans/x/d.png", "scans/**", True),
        ("other/d.png", "scans/**", False),
        ("a/c.jpg", "*.[jp]pg", True),
    ],
)
def test_glob_match(rel: str, pattern: str, expected: bool) -> None:
    assert glob_match(rel, pattern) is expected


def test_walk_guesses_and_filters(library: Path) -> None:
    (library / "notes.bin").write_bytes(b"\0\1")
    (library / ".hidden.png").write_bytes(b"x")
    entries, roots = walk([library], exclude=["*.txt"])
    assert roots == [str(library)]
    assert sorted((e.rel, e.modality) for e in entries) == [
        ("images/bird.png", "vision"),
        ("images/car.png", "vision"),
        ("images/dog.png", "vision"),
        ("sounds/bird.wav", "audio"),
        ("sounds/car.wav", "audio"),
        ("sounds/dog.wav", "audio"),
    ]


def test_walk_rules_and_explicit_modality(library: Path) -> None:
    entries, _ = walk([library], rules={"images/**": "depth"}, include=["*.png", "*.wav"])
    mods = {e.rel: e.modality for e in entries}
    assert mods["images/dog.png"] == "depth" and mods["sounds/dog.wav"] == "audio"
    entries, _ = walk([library / "images"], modality="thermal")
    assert {e.modality for e in entries} == {"thermal"}
    with pytest.raises(UnknownModality):
        walk([library], modality="smell")

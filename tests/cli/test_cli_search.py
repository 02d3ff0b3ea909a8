"""Searching from the command line: text, files of each modality, filters, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from ingest_media import index_json


@pytest.fixture
def indexed(invoke, library: Path) -> Path:
    index_json(invoke, library, "-c", "media")
    return library


def hits_of(invoke, *args) -> list[dict]:
    hits = json.loads(invoke("search", *args, "-c", "media", "--json").stdout)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    for h in hits:
        assert {"id", "uri", "modality", "score"} <= set(h)
    return hits


def test_text_search_in_each_target(invoke, indexed: Path) -> None:
    assert len(hits_of(invoke, "a dog", "-k", "9")) == 9
    for target, suffix in [("vision", ".png"), ("audio", ".wav"), ("text", ".txt")]:
        hits = hits_of(invoke, "a dog", "-k", "5", "--in", target)
        assert len(hits) == 3 and all(h["uri"].endswith(suffix) for h in hits)
    hits = hits_of(invoke, "a dog", "-k", "9", "--in", "vision,audio")
    assert {h["modality"] for h in hits} == {"vision", "audio"}


@pytest.mark.parametrize(
    ("rel", "modality"),
    [("images/car.png", "vision"), ("sounds/bird.wav", "audio"), ("dog.txt", "text")],
)
def test_file_query_finds_itself_first(invoke, indexed: Path, rel: str, modality: str) -> None:
    hits = hits_of(invoke, "--file", indexed / rel, "-k", "3")
    assert hits[0]["uri"] == str(indexed / rel) and hits[0]["modality"] == modality
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_query_from_a_new_file_and_explicit_modality(invoke, indexed: Path, tmp_path: Path) -> None:
    data, sr = sf.read(indexed / "sounds" / "dog.wav")
    sf.write(tmp_path / "louder.flac", np.clip(data * 1.5, -1, 1), sr)
    hits = hits_of(invoke, "--file", tmp_path / "louder.flac", "-k", "2", "--in", "audio")
    assert len(hits) == 2
    hits = hits_of(
        invoke, "--file", indexed / "images" / "dog.png", "--modality", "depth", "-k", "1"
    )
    assert len(hits) == 1


def test_where_filters(invoke, indexed: Path) -> None:
    hits = hits_of(invoke, "a dog", "-k", "9", "--where", "ext=.wav")
    assert len(hits) == 3 and all(h["uri"].endswith(".wav") for h in hits)
    big = hits_of(invoke, "a dog", "-k", "9", "--where", "size>=1000")
    assert big and all(Path(h["uri"]).stat().st_size >= 1000 for h in big)
    hits = hits_of(invoke, "a dog", "-k", "9", "--where", '{"folder": "images"}')
    assert len(hits) == 3


def test_table_output_and_bad_usage(invoke, indexed: Path) -> None:
    out = invoke("search", "a bird", "-c", "media", "-k", "2").stdout
    assert out.splitlines()[0].split()[:2] == ["SCORE", "MODALITY"] and len(out.splitlines()) == 3
    assert invoke("search", "-c", "media", ok=False).exit_code == 2
    bad = invoke("search", "x", "-c", "media", "--where", "???", ok=False)
    assert bad.exit_code == 2 and "where" in bad.stderr
    doubled = invoke("search", "x", "-c", "media", "--where", "size>>3", ok=False)
    assert doubled.exit_code == 2 and "size>>3" in doubled.stderr
    typo = invoke("search", "x", "-c", "media", "--in", "audio,smell", ok=False)
    assert typo.exit_code == 4 and "Unknown modality 'smell'" in typo.stderr


def test_similar_ls_show_rm_stats(invoke, indexed: Path) -> None:
    dog = indexed / "images" / "dog.png"
    similar = json.loads(invoke("similar", dog, "-c", "media", "-k", "3", "--json").stdout)
    assert len(similar) == 3 and str(dog) not in {h["uri"] for h in similar}
    shown = json.loads(invoke("show", dog, "-c", "media").stdout)
    by_id = json.loads(invoke("similar", shown["id"], "-c", "media", "-k", "3", "--json").stdout)
    assert [h["id"] for h in by_id] == [h["id"] for h in similar]
    listed = json.loads(invoke("ls", "-c", "media", "--json").stdout)
    assert len(listed) == 9
    assert invoke("ls", "-c", "media", "--paths").stdout.count("\n") == 9
    invoke("rm", dog, "-c", "media")
    stats = json.loads(invoke("stats", "-c", "media", "--json").stdout)
    assert stats["items"] == 8 and stats["by_modality"]["vision"] == 2
    assert "media: 8 items" in invoke("stats").stdout


def test_collections_and_encoders(invoke, indexed: Path) -> None:
    invoke("init", "empty", "--encoder", "imagebind_test", "--index-spec", "Flat")
    names = [c["name"] for c in json.loads(invoke("collections", "list", "--json").stdout)]
    assert names == ["empty", "media"]
    assert json.loads(invoke("collections", "show", "media").stdout)["items"] == 9
    assert invoke("init", "empty", ok=False).exit_code == 5
    invoke("collections", "drop", "empty", "--yes")
    assert invoke("collections", "show", "empty", ok=False).exit_code == 3
    encoders = {e["name"]: e for e in json.loads(invoke("encoders", "--json").stdout)}
    assert encoders["imagebind_test"]["weights"] == "present"
    assert encoders["imagebind_huge"]["weights"] == "missing"

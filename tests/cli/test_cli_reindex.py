"""``embedstore reindex``: a new index spec or a new encoder, swapped in when verified."""

from __future__ import annotations

import json
from pathlib import Path

from ingest_media import index_json


def test_reindex_with_new_spec_keeps_search_working(invoke, library: Path) -> None:
    index_json(invoke, library, "-c", "media")
    before = json.loads(invoke("search", "a dog", "-c", "media", "-k", "3", "--json").stdout)
    invoke("reindex", "-c", "media", "--index-spec", "HNSW16")
    info = json.loads(invoke("collections", "show", "media").stdout)
    assert info["index_spec"] == "HNSW16" and info["items"] == 9
    after = json.loads(invoke("search", "a dog", "-c", "media", "-k", "3", "--json").stdout)
    assert [h["id"] for h in after] == [h["id"] for h in before]


def test_reindex_with_new_encoder_swaps_the_collection(invoke, library: Path) -> None:
    index_json(invoke, library / "images", "-c", "media")
    old_ids = {h["uri"]: h["id"] for h in json.loads(invoke("ls", "-c", "media", "--json").stdout)}
    out = invoke("reindex", "-c", "media", "--encoder", "openclip_test", "--json").stdout
    info = json.loads(out)
    assert info["encoder"] == "openclip_test" and info["items"] == 3
    names = [c["name"] for c in json.loads(invoke("collections", "list", "--json").stdout)]
    assert names == ["media"]
    hits = json.loads(invoke("search", "a car", "-c", "media", "-k", "3", "--json").stdout)
    assert {h["uri"] for h in hits} == set(old_ids)
    now = {h["uri"]: h["id"] for h in json.loads(invoke("ls", "-c", "media", "--json").stdout)}
    assert now == old_ids  # every item keeps its id
    assert info["reembed"]["reembedded"] == 3 and info["reembed"]["missing"] == []


def test_reindex_with_new_encoder_reports_missing_files(invoke, library: Path) -> None:
    index_json(invoke, library / "images", "-c", "media")
    (library / "images" / "bird.png").unlink()
    result = invoke("reindex", "-c", "media", "--encoder", "openclip_test", "--json")
    assert f"kept {library}/images/bird.png: file missing" in result.stderr
    info = json.loads(result.stdout)
    assert info["items"] == 3 and info["reembed"]["missing"] == [f"{library}/images/bird.png"]

"""Captions, keyword/hybrid search and ask through the CLI, with the tiny seeded ``llava_test``.

The generator's words are gibberish from a random model, so the tests check the plumbing end to
end: what is stored (metadata, the text vector, the keyword row in the same database), what
is skipped, what each search mode returns, and which items an answer cites.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from ingest_media import index_json, make_library
from testdata import require_module

from embedstore.hybrid import reciprocal_rank_fusion
from embedstore.types import SearchResult

require_module("transformers", "the [llava] extra is not installed")
IMAGES = ("bird", "car", "dog")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A library indexed and captioned once per module: (library, its data folder)."""
    from click.testing import CliRunner

    from cli.main import cli

    root = tmp_path_factory.mktemp("llava-cli")
    library, data = make_library(root / "lib"), root / "data"
    env = {"EMBEDSTORE_DATA_DIR": str(data), "EMBEDSTORE_WORKERS": "0"}
    args = ["--device", "cpu", "index", str(library), "-c", "media", "--encoder", "imagebind_test"]
    result = CliRunner().invoke(cli, [*args, "--caption", "llava_test", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] == 9
    assert report["captions"] == {"captioned": 3, "skipped": 0, "failed": 0}
    return library, data


@pytest.fixture
def captioned(template: tuple[Path, Path], data_dir: Path) -> Path:
    """This test's own copy of the captioned catalog (the library files are shared: read only)."""
    library, data = template
    shutil.copytree(data, data_dir)
    return library


def items(invoke) -> list[dict]:
    return json.loads(invoke("ls", "-c", "media", "--json").stdout)


def search(invoke, *args: str) -> list[dict]:
    return json.loads(invoke("search", *args, "-c", "media", "--json").stdout)


@pytest.mark.slow
def test_index_caption_stores_caption_vector_and_keyword_row(
    invoke, captioned: Path, data_dir: Path
) -> None:
    rows = {r["uri"]: r for r in items(invoke)}
    db = sqlite3.connect(data_dir / "embedstore.db")
    for name in IMAGES:
        item = rows[str(captioned / "images" / f"{name}.png")]
        meta = item["metadata"]
        assert meta["caption_model"] == "llava_test" and meta["caption"].strip()
        assert item["vectors"] == 2  # the picture's and its caption's (modality text)
        (body,) = db.execute(
            "SELECT body FROM item_text WHERE item_id = ?", (item["id"],)
        ).fetchone()
        assert body == meta["caption"]
        word = meta["caption"].split()[0]
        assert item["id"] in [
            h["id"] for h in search(invoke, word, "--mode", "keyword", "-k", "20")
        ]
    for name in IMAGES:  # sounds are not captioned; text items are keyword-searchable as they are
        assert "caption" not in rows[str(captioned / "sounds" / f"{name}.wav")]["metadata"]
    assert [h["uri"] for h in search(invoke, "photo of a car", "--mode", "keyword", "-k", "1")] == [
        str(captioned / "car.txt")
    ]
    stats = json.loads(invoke("collections", "show", "media").stdout)
    assert stats["by_modality"]["text"] == 6  # three text files, three captions


@pytest.mark.slow
def test_caption_is_incremental_and_reports_failures(
    invoke, captioned: Path, tmp_path: Path
) -> None:
    def run(*args: str) -> dict:
        out = invoke("caption", "-c", "media", "--model", "llava_test", "--json", *args)
        return json.loads(out.stdout)

    assert run() == {"captioned": 0, "skipped": 3, "failed": 0}
    assert run("--where", "name=car.png") == {"captioned": 0, "skipped": 1, "failed": 0}
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(captioned / "images" / "car.png", extra / "car-copy.png")
    shutil.copy(captioned / "images" / "dog.png", extra / "gone.png")
    (extra / "gone.png").write_bytes((extra / "gone.png").read_bytes() + b"\0")  # not a duplicate
    index_json(invoke, extra, "-c", "media")
    (extra / "gone.png").unlink()  # indexed, then gone before it is captioned
    result = invoke("caption", "-c", "media", "--model", "llava_test", "--json", ok=False)
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"captioned": 1, "skipped": 3, "failed": 1}
    assert f"skipping {extra / 'gone.png'}" in result.stderr
    copy = {r["uri"]: r for r in items(invoke)}[str(extra / "car-copy.png")]
    assert copy["metadata"]["caption_model"] == "llava_test"
    # re-embedding with another encoder keeps captions but not their vectors: captioning again
    # embeds the stored captions (no generation) with the new text tower
    result = invoke("reindex", "-c", "media", "--encoder", "openclip_test", ok=False)
    assert result.exit_code in (0, 1)  # openclip_test cannot embed the sounds: kept, failed
    assert json.loads(invoke("collections", "show", "media").stdout)["by_modality"]["text"] == 3
    before = {
        r["id"]: r["metadata"]["caption"] for r in items(invoke) if "caption" in r["metadata"]
    }
    assert run()["captioned"] == 4
    after = {r["id"]: r["metadata"]["caption"] for r in items(invoke) if "caption" in r["metadata"]}
    assert after == before
    stats = json.loads(invoke("collections", "show", "media").stdout)
    assert stats["encoder"] == "openclip_test" and stats["by_modality"]["text"] == 3 + 4


@pytest.mark.slow
def test_search_modes_and_hybrid_is_their_reciprocal_rank_fusion(invoke, captioned: Path) -> None:
    vector = search(invoke, "a photo of a dog", "-k", "50")
    keyword = search(invoke, "a photo of a dog", "--mode", "keyword", "-k", "50")
    hybrid = search(invoke, "a photo of a dog", "--mode", "hybrid", "-k", "5")
    assert len(vector) == 9 and keyword and len(hybrid) == 5

    def hits(rows: list[dict]) -> list[SearchResult]:
        return [SearchResult(r["id"], r["uri"], r["modality"], r["score"]) for r in rows]

    expected = reciprocal_rank_fusion([hits(vector), hits(keyword)], 60.0)[:5]
    assert [h["id"] for h in hybrid] == [h.id for h in expected]
    # the same two-term sums in the same order: equal up to JSON's round trip of a float
    assert [h["score"] for h in hybrid] == pytest.approx([h.score for h in expected], rel=1e-12)
    vision = search(invoke, "a photo of a dog", "--mode", "hybrid", "--in", "vision")
    assert {Path(h["uri"]).suffix for h in vision} == {".png"}
    result = invoke(
        "search", "--file", str(captioned / "dog.txt"), "-c", "media", "--mode", "keyword", ok=False
    )
    assert result.exit_code == 2
    # metadata fields a collection declares searchable join the keyword bodies
    assert search(invoke, "sounds", "--mode", "keyword") == []
    assert json.loads(invoke("collections", "searchable", "media", "folder").stdout) == ["folder"]
    found = search(invoke, "sounds", "--mode", "keyword")
    assert sorted(Path(h["uri"]).name for h in found) == ["bird.wav", "car.wav", "dog.wav"]


@pytest.mark.slow
def test_ask_cites_the_items_it_was_given(
    invoke, captioned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDSTORE_ASK_MAX_ANSWER_TOKENS", "12")
    out = json.loads(
        invoke(
            "ask", "Which animal is this?", "-c", "media", "--model", "llava_test", "--json"
        ).stdout
    )
    assert isinstance(out["answer"], str) and out["answer"]
    from embedstore.generators.tiny import build_tokenizer

    assert len(build_tokenizer()(out["answer"], add_special_tokens=False)["input_ids"]) <= 12
    stored = {r["id"]: r["uri"] for r in items(invoke)}
    assert 1 <= len(out["items"]) <= 4
    assert all(stored[i["id"]] == i["uri"] for i in out["items"])
    pics = json.loads(
        invoke(
            "ask",
            "Which animal?",
            "-c",
            "media",
            "--model",
            "llava_test",
            "--json",
            "-k",
            "2",
            "--in",
            "vision",
        ).stdout
    )
    assert len(pics["items"]) == 2 and all(i["uri"].endswith(".png") for i in pics["items"])
    plain = invoke(
        "ask", "Which animal?", "-c", "media", "--model", "llava_test", "-k", "1", "--in", "text"
    )
    lines = plain.stdout.rstrip("\n").split("\n")
    assert lines[-1].startswith("[1] ") and lines[-1].endswith(".txt") and lines[0]
    # limits and errors map to exit codes
    assert invoke("ask", "?", "-c", "nope", "--model", "llava_test", ok=False).exit_code == 3
    assert invoke("ask", "  ", "-c", "media", "--model", "llava_test", ok=False).exit_code == 2
    assert invoke("ask", "hi", "-c", "media", "--model", "gpt-5", ok=False).exit_code == 4

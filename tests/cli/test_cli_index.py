"""``embedstore index``: JSON report, exit codes, incremental runs and stderr chatter."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ingest_media import copy, index_json

from cli.main import cli
from embedstore.engine import Engine


def test_index_reports_and_is_incremental(invoke, library: Path, monkeypatch) -> None:
    calls = []
    original = Engine.encode

    def counting(self, encoder, modality, batch):
        calls.append(len(batch))
        return original(self, encoder, modality, batch)

    monkeypatch.setattr(Engine, "encode", counting)
    report = index_json(invoke, library, "-c", "media")
    assert report["added"] == 9 and report["failed"] == [] and sum(calls) == 9
    for key in ("updated", "unchanged", "removed"):
        assert report[key] == 0
    calls.clear()
    result = invoke("index", library, "-c", "media", "--json")
    assert json.loads(result.stdout)["unchanged"] == 9 and calls == []
    assert "0 added" in result.stderr and "9 unchanged" in result.stderr


def test_rename_modify_prune(invoke, library: Path) -> None:
    index_json(invoke, library, "-c", "media")
    os.rename(library / "images" / "car.png", library / "images" / "auto.png")
    (library / "dog.txt").write_text("A dog running on a beach.\n")
    (library / "sounds" / "bird.wav").unlink()
    report = index_json(invoke, library, "-c", "media", "--prune")
    assert (report["moved"], report["updated"], report["removed"]) == (1, 1, 1)
    assert report["unchanged"] == 6


def test_corrupt_files_exit_1_and_are_listed(invoke, library: Path) -> None:
    (library / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (library / "sounds" / "noise.wav").write_bytes(os.urandom(300))
    result = invoke(
        "index", library, "-c", "media", "--encoder", "imagebind_test", "--json", ok=False
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["added"] == 9
    assert sorted(Path(f["uri"]).name for f in report["failed"]) == ["broken.png", "noise.wav"]
    assert all(f["reason"] for f in report["failed"])
    assert f"skipping {library / 'images' / 'broken.png'}: " in result.stderr
    listed = json.loads(invoke("ls", "-c", "media", "--failed", "--json").stdout)
    assert {Path(i["uri"]).name for i in listed} == {"broken.png", "noise.wav"}


def test_explicit_modality_and_rules(invoke, library: Path) -> None:
    scans = library / "scans"
    scans.mkdir()
    copy(library / "images" / "dog.png", scans / "d1.png")
    report = index_json(invoke, library, "-c", "media", "--rule", "scans/**=depth")
    assert report["added"] == 10
    shown = json.loads(invoke("show", scans / "d1.png", "-c", "media").stdout)
    assert shown["modality"] == "depth" and shown["vectors"][0]["modality"] == "depth"
    report = index_json(invoke, scans, "-c", "thermal", "--modality", "thermal")
    assert report["added"] == 1


def test_encoder_mismatch_is_an_error(invoke, library: Path) -> None:
    index_json(invoke, library / "dog.txt", "-c", "media")
    result = invoke("index", library, "-c", "media", "--encoder", "imagebind_huge", ok=False)
    assert result.exit_code == 5
    assert result.stderr.startswith("Error: ") and "imagebind_test" in result.stderr


def test_unknown_collection_exit_code(runner) -> None:
    result = runner.invoke(cli, ["search", "x", "-c", "nope"])
    assert result.exit_code == 3 and "Error:" in result.stderr and "nope" in result.stderr


def test_progress_bar_on_stderr(invoke, library: Path) -> None:
    result = invoke("index", library, "-c", "media", "--encoder", "imagebind_test", "--progress")
    assert "file/s" in result.stderr or "s/file" in result.stderr
    assert "9/9" in result.stderr and result.stdout == ""


def test_weights_path_flag_names_the_missing_file(invoke, library: Path, tmp_path: Path) -> None:
    missing = tmp_path / "imagebind_huge.pth"
    r = invoke(
        "--weights-path",
        missing,
        "index",
        library,
        "-c",
        "huge",
        "--encoder",
        "imagebind_huge",
        ok=False,
    )
    assert r.exit_code == 6
    assert str(missing) in r.stderr and "EMBEDSTORE_WEIGHTS_PATH" in r.stderr

"""Incremental indexing through the engine: no model work for what is already stored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ingest_media import copy

from embedstore.engine import Engine
from embedstore.errors import EncoderMismatch

ENC = "imagebind_test"


def test_index_then_reindex_does_no_model_work(engine: Engine, library: Path) -> None:
    first = engine.index([library], "media", encoder=ENC)
    assert (first.added, first.updated, first.unchanged, first.failed) == (9, 0, 0, ())
    embedded = engine.encoded_items
    assert embedded == 9
    again = engine.index([library], "media", encoder=ENC)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 9)
    assert engine.encoded_items == embedded
    info = engine.collection("media").info()
    assert info.items == 9 and info.encoder == ENC


def test_rename_duplicate_modify_prune(engine: Engine, library: Path) -> None:
    engine.index([library], "media", encoder=ENC)
    n = engine.encoded_items
    dog = library / "images" / "dog.png"
    os.rename(dog, library / "images" / "hound.png")
    report = engine.index([library], "media")
    assert (report.moved, report.added, engine.encoded_items) == (1, 0, n)
    copy(library / "images" / "car.png", library / "car-copy.png")
    report = engine.index([library], "media")
    assert (report.added, report.deduplicated, engine.encoded_items) == (1, 1, n)
    (library / "bird.txt").write_text("A small bird singing on a branch.\n")
    report = engine.index([library], "media")
    assert (report.updated, report.unchanged, engine.encoded_items) == (1, 9, n + 1)
    (library / "sounds" / "car.wav").unlink()
    assert engine.index([library], "media").removed == 0
    report = engine.index([library], "media", prune=True)
    assert report.removed == 1
    uris = {i.uri for i in engine.collection("media").list_items(limit=100)}
    assert str(library / "images" / "hound.png") in uris
    assert str(library / "images" / "dog.png") not in uris
    assert str(library / "sounds" / "car.wav") not in uris


def test_same_bytes_twice_in_one_run_are_embedded_once(engine: Engine, library: Path) -> None:
    copy(library / "images" / "dog.png", library / "dog-again.png")
    report = engine.index([library], "media", encoder=ENC)
    assert (report.added, report.deduplicated, engine.encoded_items) == (10, 1, 9)


def test_other_encoder_is_refused(engine: Engine, library: Path) -> None:
    engine.index([library / "dog.txt"], "media", encoder=ENC)
    with pytest.raises(EncoderMismatch, match="imagebind_test"):
        engine.index([library], "media", encoder="imagebind_huge")


def test_corrupt_files_are_recorded_and_retried(engine: Engine, library: Path) -> None:
    (library / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (library / "sounds" / "empty.wav").write_bytes(b"")
    report = engine.index([library], "media", encoder=ENC)
    assert report.added == 9
    failed = {Path(f.uri).name: f.reason for f in report.failed}
    assert set(failed) == {"broken.png", "empty.wav"}
    assert all(f.reason.startswith(f"{f.uri}: ") for f in report.failed)  # names the file
    assert failed["broken.png"].endswith(": not an image format Pillow can read")
    assert failed["empty.wav"].endswith(": file is empty")
    stored = engine.collection("media").list_items(status="failed", limit=10)
    assert {Path(i.uri).name for i in stored} == {"broken.png", "empty.wav"}
    again = engine.index([library], "media")
    assert (again.unchanged, len(again.failed)) == (9, 2)


def test_search_from_each_modality(engine: Engine, library: Path) -> None:
    engine.index([library], "media", encoder=ENC)
    hits = engine.search("media", text="a dog", k=3, modalities=["vision"])
    assert len(hits) == 3 and {h.modality for h in hits} == {"vision"}
    assert hits[0].score >= hits[-1].score
    hits = engine.search("media", file=library / "sounds" / "dog.wav", k=9)
    assert hits[0].uri == str(library / "sounds" / "dog.wav")
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    hits = engine.search("media", file=library / "images" / "car.png", k=1)
    assert hits[0].uri.endswith("car.png")
    similar = engine.similar("media", str(library / "bird.txt"), k=2)
    assert similar and all(h.uri != str(library / "bird.txt") for h in similar)


def test_touched_file_is_hashed_but_not_embedded(engine: Engine, library: Path) -> None:
    engine.index([library], "media", encoder=ENC)
    n = engine.encoded_items
    dog = library / "images" / "dog.png"
    os.utime(dog, (1_000_000_000, 1_000_000_000))
    report = engine.index([library], "media")
    assert (report.unchanged, report.updated, engine.encoded_items) == (9, 0, n)
    assert engine.collection("media").get_item(str(dog)).mtime == 1_000_000_000
    assert engine.index([library], "media").unchanged == 9
